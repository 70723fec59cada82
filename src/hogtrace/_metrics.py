"""Named totals: what a scope and everything inside it counted (``Scope.metrics``)."""

from __future__ import annotations

import dataclasses

__all__ = ["Metrics", "Totals"]


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Totals a scope measured, itself and everything inside it included."""

    latency: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    total_cost_usd: float = 0.0
    generations: int = 0
    errors: int = 0


class Totals:
    """The running sums behind `Metrics` (one per scope that counted anything)."""

    __slots__ = (
        "cache_read_input_tokens",
        "errors",
        "generations",
        "input_tokens",
        "output_tokens",
        "total_cost_usd",
    )

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_input_tokens = 0
        self.total_cost_usd = 0.0
        self.generations = 0
        self.errors = 0

    def add(self, other: Totals) -> None:
        """Add ``other``'s sums to these (a child's totals rolling up into its parent)."""
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.total_cost_usd += other.total_cost_usd
        self.generations += other.generations
        self.errors += other.errors

    def add_generation(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        total_cost_usd: float = 0.0,
    ) -> None:
        """Count one model call with its tokens and cost."""
        self.generations += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_input_tokens += cache_read_input_tokens
        self.total_cost_usd += total_cost_usd

    def metrics(self, latency: float) -> Metrics:
        """A frozen `Metrics` of these sums."""
        return Metrics(
            latency,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.total_cost_usd,
            self.generations,
            self.errors,
        )
