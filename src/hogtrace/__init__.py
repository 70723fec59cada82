"""hogtrace: trace your LLM application into PostHog LLM analytics.

Decorate your workflow with ``@hogtrace.session``, ``@hogtrace.trace``, ``@hogtrace.span``,
``@hogtrace.generation`` and ``@hogtrace.embedding`` (or use them as ``with`` blocks); every
scope emits one ``$ai_*`` event, linked into PostHog's trace tree and tagged with its session.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from hogtrace._api import (
    agent,
    current,
    current_generation,
    current_span,
    current_trace,
    embedding,
    feedback,
    generation,
    metric,
    propagate,
    session,
    span,
    stats,
    tool,
    trace,
)
from hogtrace._config import configure, flush, reset, shutdown
from hogtrace._generation import EmbeddingScope, GenerationScope
from hogtrace._metrics import Metrics
from hogtrace._propagation import continue_trace, inject, posthog_properties
from hogtrace._scope import Scope, SessionScope
from hogtrace._version import __version__

#: Submodules reachable as attributes without being imported up front (``hogtrace.testing``).
_LAZY_SUBMODULES = frozenset({"testing", "otel", "celery", "asgi"})

if _TYPE_CHECKING:  # what __getattr__ gives, for type checkers (hogtrace.testing....)
    from hogtrace import testing as testing


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"hogtrace.{name}")
    raise AttributeError(f"module 'hogtrace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})


__all__ = [
    # scopes
    "session",
    "trace",
    "span",
    "generation",
    "embedding",
    "tool",
    "agent",
    # configuration and delivery
    "configure",
    "reset",
    "flush",
    "shutdown",
    "stats",
    # helpers
    "current",
    "current_span",
    "current_generation",
    "current_trace",
    "propagate",
    "inject",
    "continue_trace",
    "posthog_properties",
    "metric",
    "feedback",
    # types
    "Scope",
    "SessionScope",
    "GenerationScope",
    "EmbeddingScope",
    "Metrics",
    "__version__",
]
