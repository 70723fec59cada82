"""No-op scopes: what ``current()`` and its typed accessors give when nothing is recorded.

Inside a decorated function with tracing off (``enabled=False``, after ``shutdown()``), and from
``current_span()`` / ``current_generation()`` / ``current_trace()`` outside any scope, user code
still gets an object with the full scope API; every call on it does nothing. They are shared,
so they never change.
"""

from __future__ import annotations

from typing import Any

from hogtrace._generation import GenerationScope
from hogtrace._scope import MISSING, Scope, StandInScope

__all__ = ["NOOP_GENERATION", "NOOP_SCOPE", "is_noop"]


class _Noop:
    """Every setter of the scope API, doing nothing."""

    __slots__ = ()

    def set_input(self, value: Any) -> None:
        """Nothing is recorded."""

    def set_output(self, value: Any) -> None:
        """Nothing is recorded."""

    def set_properties(self, **props: Any) -> None:
        """Nothing is recorded."""

    def set_error(self, error: BaseException | str) -> None:
        """Nothing is recorded."""

    def set_name(self, name: str) -> None:
        """Nothing is recorded."""

    def set_distinct_id(self, distinct_id: str) -> None:
        """Nothing is recorded."""

    def close(self, result: Any = MISSING, exc: BaseException | None = None) -> None:
        """A no-op scope never closes."""


class NoopScope(_Noop, StandInScope):
    """A span, trace or session that records nothing."""

    __slots__ = ()
    kind = "noop"


class NoopGeneration(_Noop, GenerationScope):
    """A generation that records nothing (``set_usage`` and the rest do nothing)."""

    __slots__ = ()
    kind = "noop"

    def __init__(self) -> None:
        super().__init__("generation", None)
        self.id = ""
        self.trace_id = self.parent_id = self.child_parent_id = None
        self._other_root = None
        self._roots_trace = False
        self.sampled = False

    def set_model(self, model: str, provider: str | None = None) -> None:
        """Nothing is recorded."""

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Nothing is recorded."""

    def set_cost(
        self,
        input_cost_usd: float | None = None,
        output_cost_usd: float | None = None,
        total_cost_usd: float | None = None,
    ) -> None:
        """Nothing is recorded."""

    def set_prompt(self, name: str, version: int | str | None = None) -> None:
        """Nothing is recorded."""


NOOP_SCOPE: Scope = NoopScope("span")
NOOP_GENERATION: GenerationScope = NoopGeneration()


def is_noop(scope: object) -> bool:
    """True for the shared no-op scopes."""
    return scope is NOOP_SCOPE or scope is NOOP_GENERATION
