"""Assert the PostHog events your code emits: ``capture_events()`` and a pytest fixture.

The fixture is ``hogtrace_events`` (registered through the ``pytest11`` entry point).

``capture_events()`` changes only where events go: they are built exactly as for PostHog (same
properties, redaction, privacy mode and size limit), synchronously, and recorded in a list
instead of being sent. Ids are deterministic inside it, and under ``freezegun.freeze_time``
timestamps are the frozen time and latencies exactly what the test ticked. This module does not
import pytest.

Example:
    ```py
    from hogtrace.testing import capture_events

    with capture_events() as events:
        answer("What is PostHog?")
    assert events.one(name="answer").properties["$ai_output_state"] == "..."
    print(events.tree())
    ```
"""

from __future__ import annotations

import contextlib
import datetime
import weakref
from collections.abc import Iterator
from typing import Any

import pydantic

from hogtrace import _config
from hogtrace._errors import log_internal_error
from hogtrace._events import build_event
from hogtrace._ids import DeterministicIds, set_id_source
from hogtrace._scope import Scope
from hogtrace._tree import render_tree

__all__ = ["CapturedEvent", "CapturedEvents", "capture_events"]

_VOLATILE = {
    "$ai_latency": "<latency>",
    "$ai_time_to_first_token": "<time_to_first_token>",
    "$ai_lib_version": "<version>",
}


class CapturedEvent(pydantic.BaseModel):
    """One recorded event, as PostHog would receive it."""

    model_config = pydantic.ConfigDict(frozen=True, arbitrary_types_allowed=True)

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime.datetime
    uuid: str

    @property
    def name(self) -> str | None:
        """``$ai_span_name``."""
        return self.properties.get("$ai_span_name")

    @property
    def trace_id(self) -> str | None:
        """``$ai_trace_id``."""
        return self.properties.get("$ai_trace_id")

    @property
    def span_id(self) -> str | None:
        """``$ai_span_id``."""
        return self.properties.get("$ai_span_id")

    @property
    def parent_id(self) -> str | None:
        """``$ai_parent_id`` (``None`` on the ``$ai_trace`` root)."""
        return self.properties.get("$ai_parent_id")

    @property
    def session_id(self) -> str | None:
        """``$ai_session_id``."""
        return self.properties.get("$ai_session_id")

    @property
    def latency(self) -> float | None:
        """``$ai_latency`` in seconds."""
        return self.properties.get("$ai_latency")

    @property
    def is_error(self) -> bool:
        """Whether the scope failed (``$ai_is_error``)."""
        return bool(self.properties.get("$ai_is_error"))

    def as_dict(self, *, normalize: bool = True) -> dict[str, Any]:
        """A plain dict of the event.

        Args:
            normalize: replace volatile values (timestamp, uuid, latency, library version) by
                placeholders, so the dict can be compared to a snapshot.
        """
        props = dict(self.properties)
        if normalize:
            for key, placeholder in _VOLATILE.items():
                if key in props:
                    props[key] = placeholder
        return {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "properties": props,
            "timestamp": "<timestamp>" if normalize else self.timestamp.isoformat(),
            "uuid": "<uuid>" if normalize else self.uuid,
        }


class CapturedEvents(list[CapturedEvent]):
    """The recorded events, in emission order (children before parents), with filters."""

    def of(self, event: str) -> CapturedEvents:
        """Events of one type, e.g. ``"$ai_span"``."""
        return CapturedEvents(e for e in self if e.event == event)

    @property
    def traces(self) -> CapturedEvents:
        """``$ai_trace`` events."""
        return self.of("$ai_trace")

    @property
    def spans(self) -> CapturedEvents:
        """``$ai_span`` events."""
        return self.of("$ai_span")

    @property
    def generations(self) -> CapturedEvents:
        """``$ai_generation`` events."""
        return self.of("$ai_generation")

    @property
    def embeddings(self) -> CapturedEvents:
        """``$ai_embedding`` events."""
        return self.of("$ai_embedding")

    @property
    def metrics(self) -> CapturedEvents:
        """``$ai_metric`` events."""
        return self.of("$ai_metric")

    @property
    def feedback(self) -> CapturedEvents:
        """``$ai_feedback`` events."""
        return self.of("$ai_feedback")

    def named(self, name: str) -> CapturedEvents:
        """Events whose ``$ai_span_name`` is ``name``."""
        return CapturedEvents(e for e in self if e.name == name)

    def one(self, event: str | None = None, *, name: str | None = None) -> CapturedEvent:
        """The single event matching ``event`` and ``name``; fails listing what was captured."""
        found = [
            e
            for e in self
            if (event is None or e.event == event) and (name is None or e.name == name)
        ]
        if len(found) != 1:
            wanted = ", ".join(
                f"{k}={v!r}" for k, v in (("event", event), ("name", name)) if v is not None
            )
            raise AssertionError(
                f"expected exactly one event matching {wanted or 'anything'}, found {len(found)}."
                f" Captured:\n{self.tree() or '(no events)'}"
            )
        return found[0]

    def open_scopes(self) -> list[Scope]:
        """Scopes opened during the capture that have not closed (e.g. an unfinished generator)."""
        opened: weakref.WeakSet[Scope] = getattr(self, "_opened", weakref.WeakSet())
        return [s for s in opened if s._end is None]

    def tree(self) -> str:
        """The captured traces as an indented text tree (no latencies, so it is stable)."""
        return render_tree(self, show_latency=False)

    def as_dicts(self, *, normalize: bool = True) -> list[dict[str, Any]]:
        """Plain dicts of every event (see ``CapturedEvent.as_dict``)."""
        return [e.as_dict(normalize=normalize) for e in self]


class _CaptureSink:
    """Builds each event synchronously, as it would be sent, and records it."""

    def __init__(self) -> None:
        self.events = CapturedEvents()
        self._opened: weakref.WeakSet[Scope] = weakref.WeakSet()
        self.events._opened = self._opened  # type: ignore[attr-defined]
        self._uuids = DeterministicIds()  # apart from span ids, so those stay consecutive

    def emit(self, scope: Scope, config: _config.Config) -> None:
        try:
            event = build_event(scope, config)
        except Exception as err:
            log_internal_error("building an event", err)
            return
        self.events.append(
            CapturedEvent(
                event=event.event,
                distinct_id=event.distinct_id,
                properties=event.properties,
                timestamp=event.timestamp,
                uuid=self._uuids(),
            )
        )

    def record_message(self, msg: dict[str, Any]) -> None:
        """A PostHog wrapper's event, as its ``before_send`` saw it."""
        timestamp = msg.get("timestamp")
        if isinstance(timestamp, str):
            timestamp = datetime.datetime.fromisoformat(timestamp)
        self.events.append(
            CapturedEvent(
                event=msg["event"],
                distinct_id=str(msg.get("distinct_id")),
                properties=dict(msg.get("properties") or {}),
                timestamp=timestamp or datetime.datetime.now(datetime.timezone.utc),
                uuid=str(msg.get("uuid") or self._uuids()),
            )
        )

    def opened(self, scope: Scope) -> None:
        self._opened.add(scope)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self) -> None:
        pass


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Record every event in memory instead of sending it, for assertions.

    Only the destination changes: the rest of the configuration stays, and the previous
    configuration comes back on exit (also when the block raises). ``configure()`` inside the
    block keeps events going to the capture. Events of PostHog's own LLM wrappers captured through
    the configured client are recorded too, and not sent.

    Yields:
        The list of captured events, filled as scopes close.
    """
    sink = _CaptureSink()
    previous_ids = set_id_source(DeterministicIds())
    previous = _config.start_capture(sink)
    try:
        yield sink.events
    finally:
        _config.end_capture(previous)
        set_id_source(previous_ids)
