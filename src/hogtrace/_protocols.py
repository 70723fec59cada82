"""The read-only views the layers use to talk to each other.

Scopes sit above the sinks and the event builder: those never import a scope class; they see
a closed scope through `ClosedScope`. The testing kit plugs in through `Capture`, which
production code calls by these declared names.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hogtrace._options import Config

__all__ = ["Annotation", "Capture", "ClosedScope", "Emitted", "Sink"]


class ClosedScope(Protocol):
    """What the event builder and the sinks read from a scope that has closed."""

    @property
    def kind(self) -> str:
        """The scope kind: ``"trace"``, ``"span"``, ``"generation"``, ``"annotation"``, etc."""

    @property
    def event_name(self) -> str:
        """The PostHog event this scope is sent as (``$ai_span``, ``$ai_generation``, …)."""

    @property
    def id(self) -> str:
        """``$ai_span_id``."""

    @property
    def trace_id(self) -> str | None:
        """``$ai_trace_id``."""

    @property
    def parent_id(self) -> str | None:
        """``$ai_parent_id`` (``None`` on the ``$ai_trace`` root)."""

    @property
    def session_id(self) -> str | None:
        """``$ai_session_id``."""

    @property
    def name(self) -> str:
        """``$ai_span_name``."""

    @property
    def distinct_id(self) -> str | None:
        """The PostHog person, if one is known."""

    @property
    def latency(self) -> float | None:
        """``$ai_latency`` in seconds."""

    @property
    def timestamp(self) -> datetime.datetime | None:
        """When the scope closed (UTC)."""

    @property
    def error(self) -> BaseException | str | None:
        """The error it ended with, if any."""

    @property
    def inherited(self) -> Mapping[str, Any]:
        """Properties of the sessions and traces around it (and of itself, if it is one)."""

    @property
    def own_properties(self) -> Mapping[str, Any] | None:
        """Properties set on this scope only."""

    @property
    def local_root(self) -> bool:
        """True when no scope around it in this process emits an event."""

    @property
    def has_deferred(self) -> bool:
        """True when its snapshots hold arrays still to convert (``_serialize.thaw``)."""

    @property
    def cut(self) -> int:
        """The content its snapshots cut at ``max_items``: bits of ``_names.CUT_KEYS``."""

    def content(self) -> dict[str, Any]:
        """Its content properties (input, output, tools), as snapshots.

        Plain chat messages may be an ``_extract.TextMessages``, their strings: the event
        builder makes them the messages (and knows their size and what redaction needs);
        rows of plain values an ``_extract.PrintedRows``, which it prints as messages.
        """

    def add_properties(self, props: dict[str, Any]) -> None:
        """Add the properties only its kind has (model, tokens, stream facts, …)."""

    def release(self) -> None:
        """Drop its content once the event is built (it may stay reachable a long time)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Annotation:
    """``$ai_metric`` / ``$ai_feedback``: a plain record on a trace, emitted at once."""

    event_name: str
    payload: Mapping[str, Any]
    trace_id: str
    session_id: str | None
    distinct_id: str | None
    inherited: Mapping[str, Any]
    timestamp: datetime.datetime
    kind: str = "annotation"

    def release(self) -> None:
        """Annotations are dropped whole once sent: nothing to release."""


#: What a sink receives.
Emitted = ClosedScope | Annotation


class Sink(Protocol):
    """Receives closed scopes."""

    def emit(self, scope: Emitted, config: Config) -> None:
        """Take a closed scope. Must not block and must not raise."""

    def flush(self, timeout: float | None = None) -> None:
        """Deliver what is queued, waiting at most ``timeout`` seconds."""

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop background work (after a flush), waiting at most ``timeout`` seconds."""

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        """See an event of PostHog's own wrappers; True if it was consumed (not to be sent)."""


class Capture(Sink, Protocol):
    """``hogtrace.testing.capture_events()``: a sink that also sees every scope open."""

    def opened(self, scope: object) -> None:
        """Called by every scope that opens while the capture is active."""
