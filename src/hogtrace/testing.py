"""Assert the PostHog events your code emits: ``capture_events()`` and a pytest fixture.

``capture_events()`` changes only where events go: they are built exactly as for PostHog (same
properties, redaction, privacy mode and size limit), synchronously, and recorded in a list
instead of being sent. Ids are deterministic inside it (the same workflow gives the same ids on
every run), and under ``freezegun.freeze_time`` timestamps are the frozen time and latencies
exactly what the test ticked. This module does not import pytest; the pytest fixture is
``hogtrace_events`` (``hogtrace_pytest``, registered through the ``pytest11`` entry
point).

Example:
    ```py
    from hogtrace.testing import capture_events

    with capture_events() as events:
        answer("What is PostHog?")
    assert "Paris" == events.one("trace").output
    assert events.tree() == '''
    answer [trace]
    ├── retrieve [span]
    └── chat [generation, gpt-4o, tokens in=12 out=5]
    '''.strip()
    ```
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, overload

import pydantic

from hogtrace import _config
from hogtrace._ids import DeterministicIds, set_id_source
from hogtrace._options import Config
from hogtrace._protocols import Emitted
from hogtrace._scope import Scope
from hogtrace._sinks import build_event_or_count
from hogtrace._tree import render_tree

__all__ = ["CapturedEvent", "CapturedEvents", "capture_events"]

#: Values that change from run to run or machine to machine, replaced by ``as_dict()``.
_VOLATILE = {
    "$ai_latency": "<latency>",
    "$ai_time_to_first_token": "<time_to_first_token>",
    "$ai_lib_version": "<version>",
    # Added by the PostHog client to the events of its own LLM wrappers.
    "$lib_version": "<version>",
    "$python_version": "<python_version>",
    "$python_runtime": "<python_runtime>",
    "$os": "<os>",
    "$os_version": "<os_version>",
    "$os_distro": "<os_distro>",
}


def _event_name(kind: str) -> str:
    """``"span"`` → ``"$ai_span"``; full event names pass through."""
    return kind if kind.startswith("$") else f"$ai_{kind}"


class CapturedEvent(pydantic.BaseModel):
    """One recorded event, as PostHog would receive it.

    Attributes:
        event: ``$ai_trace``, ``$ai_span``, ``$ai_generation``, ``$ai_embedding``,
            ``$ai_metric`` or ``$ai_feedback``.
        distinct_id: the person the event belongs to (the trace id when there is none).
        properties: every ``$ai_*`` property and your own.
        timestamp: when the scope closed (UTC; the frozen time under ``freezegun``).
        uuid: the event's uuid (deterministic inside a capture).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime.datetime
    uuid: str
    # When the scope opened, relative to the others in the capture (orders the tree).
    _order: int = pydantic.PrivateAttr(default=0)

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
        """``$ai_span_id`` (on the ``$ai_trace`` root, the trace id)."""
        return self.properties.get("$ai_span_id")

    @property
    def parent_id(self) -> str | None:
        """``$ai_parent_id`` (``None`` on the ``$ai_trace`` root)."""
        return self.properties.get("$ai_parent_id")

    @property
    def session_id(self) -> str | None:
        """``$ai_session_id`` (``None`` outside a session)."""
        return self.properties.get("$ai_session_id")

    @property
    def latency(self) -> float | None:
        """``$ai_latency`` in seconds."""
        return self.properties.get("$ai_latency")

    @property
    def is_error(self) -> bool:
        """Whether the scope failed (``$ai_is_error``)."""
        return bool(self.properties.get("$ai_is_error"))

    @property
    def error(self) -> str | None:
        """``$ai_error``: ``"<ExceptionType>: <message>"``, or ``None`` on success."""
        return self.properties.get("$ai_error")

    @property
    def model(self) -> str | None:
        """``$ai_model`` (generations and embeddings)."""
        return self.properties.get("$ai_model")

    @property
    def input(self) -> Any:
        """What went in: ``$ai_input`` (generations, embeddings) or ``$ai_input_state``."""
        props = self.properties
        return props["$ai_input"] if "$ai_input" in props else props.get("$ai_input_state")

    @property
    def output(self) -> Any:
        """What came out: ``$ai_output_choices`` (generations) or ``$ai_output_state``."""
        props = self.properties
        if "$ai_output_choices" in props:
            return props["$ai_output_choices"]
        return props.get("$ai_output_state")

    def as_dict(self, *, normalize: bool = True) -> dict[str, Any]:
        """The event as a plain dict (for snapshot libraries and literal comparisons).

        Args:
            normalize: replace what changes between runs or machines (timestamp, uuid,
                latencies, library and platform versions) by placeholders such as
                ``"<latency>"``. Ids need no normalising: they are deterministic in a capture.
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

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # A compact repr keeps pytest's assertion messages readable; the properties are one
        # attribute away.
        yield "event", self.event
        yield "name", self.name
        yield "span_id", self.span_id
        yield "parent_id", self.parent_id
        if self.is_error:
            yield "error", self.error


class CapturedEvents(list[CapturedEvent]):
    """The recorded events in emission order (children before parents), with filters.

    Filters return ``CapturedEvents`` too, so they chain: ``events.spans.named("retrieve")``.
    """

    __slots__ = ("_capture",)

    def __init__(
        self, events: Iterable[CapturedEvent] = (), *, _capture: _CaptureSink | None = None
    ) -> None:
        super().__init__(events)
        self._capture = _capture

    def _subset(self, events: Iterable[CapturedEvent]) -> CapturedEvents:
        return CapturedEvents(events, _capture=self._capture)

    @overload
    def __getitem__(self, index: SupportsIndex) -> CapturedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> CapturedEvents: ...

    def __getitem__(self, index: SupportsIndex | slice) -> CapturedEvent | CapturedEvents:
        if isinstance(index, slice):
            return self._subset(super().__getitem__(index))
        return super().__getitem__(index)

    def __repr__(self) -> str:
        # Short, because pytest prints it for a failing assertion (and the fixture argument).
        items = ", ".join(
            f"{e.event} {e.name or e.properties.get('$ai_metric_name') or ''}".rstrip()
            for e in self
        )
        return f"<CapturedEvents: {items or 'none'}>"

    # -- filters --------------------------------------------------------------------------------

    def of(self, event: str) -> CapturedEvents:
        """Events of one type: ``"span"`` or ``"$ai_span"``, ``"generation"``, …."""
        wanted = _event_name(event)
        return self._subset(e for e in self if e.event == wanted)

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

    @property
    def errors(self) -> CapturedEvents:
        """Events of failed scopes (``$ai_is_error``)."""
        return self._subset(e for e in self if e.is_error)

    def named(self, name: str) -> CapturedEvents:
        """Events whose ``$ai_span_name`` is ``name``."""
        return self._subset(e for e in self if e.name == name)

    def children_of(self, parent: CapturedEvent) -> CapturedEvents:
        """Events directly inside ``parent`` (their ``$ai_parent_id`` is its span id)."""
        return self._subset(e for e in self if e.parent_id == parent.span_id and e is not parent)

    def one(self, event: str | None = None, *, name: str | None = None) -> CapturedEvent:
        """The single event of type ``event`` (e.g. ``"span"``) named ``name``.

        Either filter may be left out: ``events.spans.one()``, ``events.one(name="answer")``.

        Raises:
            AssertionError: no event or several match; the message lists what was captured.
        """
        __tracebackhide__ = True  # pytest: the failure is the caller's line, not this one
        wanted = _event_name(event) if event is not None else None
        found = [
            e
            for e in self
            if (wanted is None or e.event == wanted) and (name is None or e.name == name)
        ]
        if len(found) == 1:
            return found[0]
        what = " ".join(
            part
            for part in (
                wanted or "event",
                f"named {name!r}" if name is not None else "",
            )
            if part
        )
        message = [f"expected exactly one {what}, found {len(found) or 'none'}"]
        if found:
            message.extend(f"  {e!r}" for e in found)
        everything = self._capture.events if self._capture is not None else self
        message.append(f"captured {_count(len(everything))}:")
        message.append(everything.tree() or "(nothing)")
        raise AssertionError("\n".join(message))

    # -- views ----------------------------------------------------------------------------------

    def tree(self) -> str:
        """The events as an indented text tree, one trace after another.

        Stable (no ids, timestamps or latencies), so it can be compared to a literal. Siblings
        appear in the order their scopes opened.
        """
        return render_tree(self, show_latency=False, order=_opened_at)

    def as_dicts(self, *, normalize: bool = True) -> list[dict[str, Any]]:
        """Plain dicts of every event (see ``CapturedEvent.as_dict``)."""
        return [e.as_dict(normalize=normalize) for e in self]

    def open_scopes(self) -> list[Scope]:
        """Scopes opened during the capture that have not closed yet, oldest first.

        An unfinished generator someone still holds, a task still running, a ``with`` block
        entered by hand and never exited.
        """
        return self._capture.open_scopes() if self._capture is not None else []


def _opened_at(event: Any) -> int:
    return event._order  # type: ignore[no-any-return]


def _count(n: int) -> str:
    return f"{n} event" if n == 1 else f"{n} events"


class _CaptureSink:
    """Builds each event synchronously, as it would be sent, and records it."""

    def __init__(self) -> None:
        self.events = CapturedEvents(_capture=self)
        self._uuid_counter = itertools.count(1)  # apart from span ids, so those stay consecutive
        self._sequence = itertools.count()
        # Strong references: a scope entered by hand and never exited must still be reported
        # when nothing else holds it. A closed scope's entry goes when it emits.
        self._open_order: dict[Any, int] = {}
        self._lock = threading.Lock()

    def _uuid(self) -> str:
        # Variant digit ``a`` (span ids use ``8``): an event uuid never looks like a span id.
        return f"00000000-0000-4000-a000-{next(self._uuid_counter):012x}"

    def _record(self, event: CapturedEvent, order: int | None) -> None:
        event._order = next(self._sequence) if order is None else order
        self.events.append(event)

    def emit(self, scope: Emitted, config: Config) -> None:
        event = build_event_or_count(scope, config)
        scope.release()
        if event is None:
            return
        with self._lock:
            order = self._open_order.pop(scope, None)
        self._record(
            CapturedEvent(
                event=event.event,
                distinct_id=event.distinct_id,
                properties=event.properties,
                timestamp=event.timestamp,
                uuid=self._uuid(),
            ),
            order,
        )

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        """Record an event of PostHog's own LLM wrappers, as its ``before_send`` saw it."""
        timestamp = msg.get("timestamp")
        if isinstance(timestamp, str):
            timestamp = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        if not isinstance(timestamp, datetime.datetime):
            timestamp = datetime.datetime.now(datetime.timezone.utc)
        self._record(
            CapturedEvent(
                event=msg["event"],
                distinct_id=str(msg.get("distinct_id")),
                properties=dict(msg.get("properties") or {}),
                timestamp=timestamp,
                # The client's random uuid is never sent (the event stays here): deterministic.
                uuid=self._uuid(),
            ),
            None,
        )
        return True  # recorded here, never sent

    def opened(self, scope: object) -> None:
        """Called by every scope that opens during the capture (open-scope check, tree order)."""
        with self._lock:
            self._open_order[scope] = next(self._sequence)

    def open_scopes(self) -> list[Scope]:
        with self._lock:
            # Sessions and unsampled scopes never emit: forget them here once closed.
            for scope in [s for s in self._open_order if s.closed]:
                del self._open_order[scope]
            pending = sorted(self._open_order.items(), key=lambda pair: pair[1])
        return [scope for scope, _ in pending]

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self, timeout: float | None = None) -> None:
        pass


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Record every event in memory instead of sending it, for assertions.

    Only the destination changes: the rest of the configuration stays (privacy mode,
    redaction, properties, distinct id, size limit), and the previous configuration comes back
    on exit, also when the block raises. ``configure()`` inside the block keeps events going to
    the capture. Events of PostHog's own LLM wrappers captured through the configured client
    are recorded too, and not sent. Ids are deterministic inside the block.

    Yields:
        The list of captured events, filled as scopes close.

    Example:
        ```py
        with capture_events() as events:
            answer("What is PostHog?")
        assert ["retrieve", "chat"] == [e.name for e in events.spans]
        ```
    """
    sink = _CaptureSink()
    previous_ids = set_id_source(DeterministicIds())
    try:
        previous = _config.start_capture(sink)
    except BaseException:
        set_id_source(previous_ids)
        raise
    try:
        yield sink.events
    finally:
        _config.end_capture(previous)
        set_id_source(previous_ids)
