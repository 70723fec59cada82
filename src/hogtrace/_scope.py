"""Scopes: what ``with hogtrace.span(...) as s`` gives and what ``hogtrace.current()`` returns.

A scope copies everything it inherits from its parent when it opens (trace id, session id,
distinct id, inherited properties, sampling decision), so nothing walks the parent chain later.
When it closes it measures its latency, rolls its totals up into its parent and hands itself
to the sink, which sees it through the read-only `ClosedScope` view and turns it into a PostHog
event off the calling thread. Generations and embeddings are in ``_generation``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from hogtrace import _state
from hogtrace._errors import log_internal_error
from hogtrace._ids import monotonic_ns, new_id, utc_now
from hogtrace._metrics import Metrics, Totals
from hogtrace._names import CUT_INPUT, CUT_OUTPUT, CUT_YIELDED
from hogtrace._posthog import context_distinct_id
from hogtrace._protocols import Sink
from hogtrace._sampling import sampled
from hogtrace._serialize import Walk, snapshot
from hogtrace._stats import stats_counters
from hogtrace._w3c import is_valid_id

__all__ = [
    "MAX_GENERATOR_ITEMS",
    "MISSING",
    "RemoteScope",
    "Scope",
    "SessionScope",
    "StandInScope",
    "TraceScope",
    "is_cancellation",
    "is_plain",
    "valid_trace_id",
]

log = logging.getLogger("hogtrace")

#: "No value recorded" (``None`` is a value).
MISSING: Final = object()
#: Exact types whose values are immutable and JSON-safe as they are.
_IMMUTABLE: Final = frozenset({str, bool, type(None)})
#: Ints and floats are too within these bounds (and floats when finite); the rest goes
#: through ``to_json_safe``, which decides what a huge or non-finite number becomes.
_NUMBER_LIMIT: Final = 2**53


def is_plain(value: Any) -> bool:
    """True for an immutable scalar that ``to_json_safe`` would return unchanged."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if kind is int or kind is float:
        within: bool = -_NUMBER_LIMIT < value < _NUMBER_LIMIT  # False for NaN and infinities
        return within
    return False


_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: Yielded items kept for a generator's ``$ai_output_state``; the rest are counted in a marker.
MAX_GENERATOR_ITEMS = 1000


def _text_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ raises
        return "<unprintable message>"


def valid_trace_id(value: object) -> bool:
    """PostHog's rule for ``$ai_trace_id`` (and session ids): letters, digits, ``-_~.@()!':|``."""
    return isinstance(value, str) and is_valid_id(value)


def is_cancellation(exc: BaseException) -> bool:
    """Cancellation closes a scope without marking it an error (OpenTelemetry does the same)."""
    return not isinstance(exc, Exception)  # CancelledError, GeneratorExit, KeyboardInterrupt, ...


class Scope:
    """An open (or finished) session, trace, span, generation or embedding.

    Attributes:
        id: this scope's span id (a session's is the session id).
        trace_id: the trace this scope belongs to (``None`` for a session outside any trace).
        parent_id: the ``$ai_parent_id`` of its event (``None`` on a root).
        session_id: the session id every event inside carries, if any.
        name: ``$ai_span_name``.
    """

    __slots__ = (
        "__weakref__",
        "_born",
        "_capture_input",
        "_capture_output",
        "_end",
        "_input",
        "_learned_distinct_id",
        "_other_root",
        "_output",
        "_output_on_error",
        "_parent",
        "_roots_trace",
        "_start",
        "child_parent_id",
        "cut",
        "distinct_id",
        "error",
        "has_deferred",
        "id",
        "inherited",
        "is_root",
        "local_root",
        "name",
        "own_properties",
        "parent_id",
        "sampled",
        "session_id",
        "timestamp",
        "totals",
        "trace_id",
    )

    kind: ClassVar[str] = "span"
    #: False for kinds that never emit an event themselves (sessions, remote parents).
    emits: ClassVar[bool] = True

    # Options may be passed by position: the decorators do, as keywords cost ~0.2 µs a call.
    def __init__(
        self,
        name: str,
        parent: Scope | None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self.name = name
        self._parent = parent
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._input: Any = MISSING
        self._output: Any = MISSING
        self._output_on_error = False
        self.has_deferred = False
        #: The content its snapshots cut at ``max_items`` (`_names.CUT_INPUT`, ...): what
        #: `set_input()` or `set_output()` replaces is no longer cut.
        self.cut = 0
        self.error: BaseException | str | None = None
        self.own_properties: dict[str, Any] | None = dict(properties) if properties else None
        self.totals: Totals | None = None
        self._end: int | None = None
        self.timestamp: datetime.datetime | None = None
        if parent is None:
            self.trace_id: str | None = None
            self.session_id: str | None = None
            # PostHog's own identify_context(), read here: events are built on another thread.
            self.distinct_id: str | None = context_distinct_id()
            self.inherited: Mapping[str, Any] = _EMPTY
            self.child_parent_id: str | None = None
            self.sampled = True
            self.local_root = True
        else:
            self.trace_id = parent.trace_id
            self.session_id = parent.session_id
            # identify_context() may have been called inside the parent (after auth, say).
            self.distinct_id = parent.distinct_id or context_distinct_id()
            self.inherited = parent.inherited
            self.child_parent_id = parent.child_parent_id
            self.sampled = parent.sampled
            # The first emitting scope of this process: under a parent opened before a fork
            # (a Pool started inside a trace), the child's own root (the parent process
            # emits that parent, never this one).
            self.local_root = (
                parent.local_root and not parent.emits
            ) or parent._born != _state.forks
        self._learned_distinct_id: str | None = None
        self._born: int = _state.forks
        self._link()
        root: Scope | None = None
        if parent is not None:
            root = parent if parent._roots_trace else parent._other_root  # no property call
            if root is not None and self.distinct_id is not None and parent.distinct_id is None:
                # identify_context() was called inside the trace: the root goes to that person.
                root.learn_distinct_id(self.distinct_id, explicit=False)
        # A root does not refer to itself: a scope in a reference cycle outlives its event until
        # the garbage collector finds it (and costs every collection until then).
        self._other_root: Scope | None = root
        self._roots_trace: bool = root is None and self.emits
        self._start = monotonic_ns()

    @property
    def trace_root(self) -> Scope | None:
        """The scope whose event is this trace's root in this process (``current_trace()``)."""
        return self if self._roots_trace else self._other_root

    @property
    def event_distinct_id(self) -> str | None:
        """The distinct id an event closed in this scope now gets (before the configured one).

        A person learned mid-trace (``set_distinct_id``, ``identify``) applies to every event
        closed after it: `close` applies the same rule, inline.
        """
        root = self._other_root
        if root is not None:
            if root._learned_distinct_id is not None:
                return root._learned_distinct_id
            if self.distinct_id is None:
                return root.distinct_id
        return self.distinct_id

    def _link(self) -> None:
        """Place this scope in the trace tree (trace and span: the outermost one is the root)."""
        self.id = new_id()
        if self.trace_id is None:
            self._become_root(self.id)
        else:
            self.is_root = False
            self.parent_id = self.child_parent_id
            self.child_parent_id = self.id

    def _become_root(self, trace_id: str) -> None:
        self.id = self.trace_id = trace_id
        self.is_root = True
        self.parent_id = None
        self.child_parent_id = trace_id
        rate = _state.state.config.sample_rate
        if rate < 1.0:
            self.sampled = sampled(self.session_id or trace_id, rate)

    # -- the public scope API ---------------------------------------------------------------

    @property
    def event_name(self) -> str:
        """The PostHog event this scope is sent as."""
        return "$ai_trace" if self.is_root else "$ai_span"

    @property
    def closed(self) -> bool:
        """True once the scope has ended."""
        return self._end is not None

    @property
    def latency(self) -> float | None:
        """Seconds between open and close (``None`` while open)."""
        if self._end is None:
            return None
        return (self._end - self._start) / 1e9

    @property
    def metrics(self) -> Metrics | None:
        """Totals of this scope and everything inside it (``None`` while open)."""
        latency = self.latency
        if latency is None:
            return None
        totals = self.totals
        return Metrics(latency=latency) if totals is None else totals.metrics(latency)

    @property
    def parent(self) -> Scope | None:
        """The enclosing scope when this one opened (a session, remote parent or span)."""
        return self._parent

    @property
    def wants_output(self) -> bool:
        """Whether a returned or yielded value is recorded as this scope's output."""
        return self._capture_output and self.sampled

    def set_input(self, value: Any) -> None:
        """Record ``value`` as this scope's input (replaces the captured arguments).

        An explicit call is kept even with ``capture_input=False``.
        """
        if self._writable("set_input") and self.sampled:
            self.cut &= ~CUT_INPUT  # the input replaced is no longer sent
            self._input = self.snapshot(value, CUT_INPUT)

    def set_output(self, value: Any) -> None:
        """Record ``value`` as this scope's output (replaces the return value).

        An explicit call is kept even with ``capture_output=False``.
        """
        if self._writable("set_output") and self.sampled:
            self.cut &= ~CUT_OUTPUT
            self._output = self.snapshot(value, CUT_OUTPUT)

    def set_properties(self, **props: Any) -> None:
        """Add properties to this scope's event (and, on sessions and traces, to those inside)."""
        if self._writable("set_properties"):
            if self.own_properties is None:
                self.own_properties = {}
            self.own_properties.update(props)

    def set_error(self, error: BaseException | str) -> None:
        """Mark this scope as failed without raising (``$ai_is_error``, ``$ai_error``)."""
        if self._writable("set_error"):
            self.error = error

    def set_name(self, name: str) -> None:
        """Rename this scope (``$ai_span_name``; on the root, the trace's name in PostHog)."""
        given: object = name  # checked at run time: user code need not be type-checked
        if not isinstance(given, str):
            log.warning("hogtrace: set_name(%r) ignored: the name must be a string", given)
            return
        if self._writable("set_name"):
            self.name = name

    def set_distinct_id(self, distinct_id: str) -> None:
        """Send this scope, its trace's root and later events of the trace to ``distinct_id``.

        For a user who becomes known part-way through (after authentication, say).
        """
        if not isinstance(distinct_id, str) or not distinct_id:
            log.warning(
                "hogtrace: set_distinct_id(%r) ignored: not a non-empty string", distinct_id
            )
            return
        if self._writable("set_distinct_id"):
            self.distinct_id = distinct_id
            root = self._other_root
            if root is not None:
                root.learn_distinct_id(distinct_id, explicit=True)
            else:
                self._learned_distinct_id = distinct_id

    def learn_distinct_id(self, distinct_id: str, *, explicit: bool) -> None:
        """The trace's person became known inside it (the root only; not once it closed)."""
        if self._end is not None:
            return
        if explicit:
            self._learned_distinct_id = self.distinct_id = distinct_id
        elif self.distinct_id is None:
            self.distinct_id = distinct_id

    def __repr__(self) -> str:
        state = "open" if self._end is None else f"{self.latency:.6f}s"
        return f"<hogtrace {self.kind} {self.name!r} id={self.id} trace={self.trace_id} {state}>"

    # -- what the decorators and the interop hook call ------------------------------------------

    def _writable(self, what: str) -> bool:
        if self._end is None:
            return True
        log.warning("hogtrace: %s() on %r after it closed is ignored", what, self)
        return False

    def snapshot(self, value: Any, part: int) -> Any:
        """``value`` as a JSON-safe copy taken now (``None`` under privacy mode).

        Large numeric arrays are copied but converted only when the event is built (see
        `hogtrace._serialize.Deferred`); `has_deferred` then tells the event builder. ``part``
        is the content it is (`CUT_INPUT`, `CUT_OUTPUT`, `CUT_TOOLS`), noted in `cut` if the
        copy is cut at ``max_items``.
        """
        config = _state.state.config
        return self.snapshot_within(value, config.event_limit, config.max_items, part)[0]

    def snapshot_within(
        self, value: Any, budget: int, items: int, part: int
    ) -> tuple[Any, int, int]:
        """`snapshot`, cut at ``budget`` bytes of JSON and ``items`` items.

        Returns the copy, a lower bound of its JSON size and how many items it took.
        """
        if _state.state.config.content_hidden:
            return None, 0, 0  # never serialised: privacy mode sends content keys as null
        try:
            # Bounded by what can be sent: a huge argument is cut here, not copied whole.
            copy, size, walk = snapshot(value, budget, items)
        except Exception as err:  # snapshot never raises; this guards against our own bugs
            log_internal_error("serializing content", err)
            return "<unserializable>", 16, 0
        return self.adopt(copy, size, walk, part)

    def adopt(self, copy: Any, size: int, walk: Walk, part: int) -> tuple[Any, int, int]:
        """Keep a `snapshot` of ``part`` taken already (its flags): as `snapshot_within`."""
        if walk.deferred:
            self.has_deferred = True
        if walk.cut:
            self.cut |= part
        return copy, size, walk.used

    def capture_call(self, arguments: dict[str, Any]) -> None:
        """Snapshot the decorated function's bound arguments as they are when the scope opens.

        ``arguments`` is a fresh dict made by the binder for this call. When every value in it
        is an immutable scalar (a no-argument function, ids, flags, short strings), it already
        is a snapshot nothing can mutate, and it is kept as is instead of copied.
        """
        if self._capture_input and self.sampled:
            for value in arguments.values():
                if type(value) not in _IMMUTABLE and not is_plain(value):
                    self._input = self.snapshot(arguments, CUT_INPUT)
                    return
            self._input = None if _state.state.config.content_hidden else arguments

    def close(self, result: Any = MISSING, exc: BaseException | None = None) -> None:
        """Finish: measure, record the outcome, roll totals up, emit. Never raises."""
        if self._end is not None:
            return
        try:
            self._end = monotonic_ns()
            self.timestamp = utc_now()
            root = self._other_root
            if root is not None:
                # A person learned mid-trace applies to every event closed after it (as
                # `event_distinct_id`, inline: this runs for every decorated call).
                if root._learned_distinct_id is not None:
                    self.distinct_id = root._learned_distinct_id
                elif self.distinct_id is None:
                    self.distinct_id = root.distinct_id
            if exc is not None and not is_cancellation(exc) and self.error is None:
                self.error = exc
            if self.error is not None:
                self.count().errors += 1
            if result is not MISSING:
                self._record_result(result)
            parent = self._parent
            if parent is not None and self.totals is not None:
                parent.count().add(self.totals)
            if self.emits and self.sampled and _state.state.active:
                if self._born == _state.forks:
                    _emit(self)
                else:  # opened before a fork: the parent process emits it
                    self.release()
        except Exception as err:
            log_internal_error("closing a scope", err)

    def close_with_items(self, items: list[Any], exc: BaseException | None) -> None:
        """Close a generator's scope: its yielded items are the output, kept also on error.

        The items are snapshots already (taken as they were yielded): they are not copied (and
        cut, losing their markers' counts) a second time.
        """
        self._output_on_error = True
        if self._output is MISSING and self._capture_output and self.sampled:
            self._output = None if _state.state.config.content_hidden else items
            if self.cut & CUT_YIELDED:
                self.cut |= CUT_OUTPUT
        self.cut &= ~CUT_YIELDED  # (else replaced by set_output(), or not kept)
        self.close(MISSING, exc)

    def count(self) -> Totals:
        """This scope's totals, created on first use."""
        totals = self.totals
        if totals is None:
            totals = self.totals = Totals()
        return totals

    def _record_result(self, result: Any) -> None:
        if self._output is MISSING and self._capture_output and self.sampled:
            if type(result) in _IMMUTABLE or is_plain(result):
                # Immutable and JSON-safe: to_json_safe would return it as is.
                self._output = None if _state.state.config.content_hidden else result
            else:
                self._output = self.snapshot(result, CUT_OUTPUT)

    # -- the ClosedScope view (read by the event builder, off the calling thread) ------------

    def content(self) -> dict[str, Any]:
        """``$ai_input_state`` and ``$ai_output_state`` as recorded (see `_names.CUT_KEYS`)."""
        out: dict[str, Any] = {}
        if self._input is not MISSING:
            out["$ai_input_state"] = self._input
        if self._output is not MISSING and (self.error is None or self._output_on_error):
            out["$ai_output_state"] = self._output
        return out

    def add_properties(self, props: dict[str, Any]) -> None:
        """Traces and spans have no properties of their own kind."""

    def release(self) -> None:
        """Drop the recorded content: its event has been built.

        A finished scope may stay reachable for a long time (a task, a timer or a generator
        created inside it holds it as its context's current scope); its content must not.
        """
        self._input = self._output = MISSING
        error = self.error
        if isinstance(error, BaseException):
            # The exception holds its traceback and every local of its frames: keep its text.
            self.error = f"{type(error).__name__}: {_text_of(error)}"


def _emit(scope: Scope) -> None:
    current = _state.state
    stats_counters.emitted.incr()
    try:
        sink: Sink | None = current.capture  # State.destination(), without a call when set
        if sink is None:
            sink = current.sink
            if sink is None:
                sink = current.destination()
        sink.emit(scope, current.config)
    except Exception as err:
        stats_counters.failed.incr()
        log_internal_error("handing an event to the sink", err)


class _InheritingScope(Scope):
    """Sessions and traces: their properties apply to every event inside them."""

    __slots__ = ()

    def set_properties(self, **props: Any) -> None:
        """Add properties to this scope's event and to every scope opened inside it from now."""
        if self._writable("set_properties"):
            self.inherited = {**self.inherited, **props}


class StandInScope(Scope):
    """Given by a ``with`` block when opening its real scope failed: records, emits nothing."""

    __slots__ = ()

    def __init__(self, name: str) -> None:  # no ids, no clock: those are what may have failed
        self.name = name
        self.id = ""
        self.trace_id = self.parent_id = self.session_id = self.distinct_id = None
        self.is_root = False
        self.local_root = False
        self.sampled = False
        self._parent = None
        self._other_root = None
        self._roots_trace = False
        self._learned_distinct_id = None
        self._born: int = _state.forks
        self._capture_input = self._capture_output = False
        self._input = self._output = MISSING
        self._output_on_error = False
        self.error = None
        self.own_properties = None
        self.totals = None
        self.inherited = _EMPTY
        self.child_parent_id = None
        self._start = 0
        self._end = None
        self.timestamp = None

    def close(self, result: Any = MISSING, exc: BaseException | None = None) -> None:
        """Nothing to measure or emit."""
        self._end = self._start


class TraceScope(_InheritingScope):
    """A unit of work; the outermost trace-or-span is the PostHog trace (``$ai_trace``)."""

    __slots__ = ("_requested_id",)
    kind = "trace"

    def __init__(
        self,
        name: str,
        parent: Scope | None,
        trace_id: str | None = None,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self._requested_id = trace_id  # read once by _link
        super().__init__(name, parent, None, capture_input, capture_output)
        if distinct_id is not None:
            self.distinct_id = distinct_id
        if properties:
            self.inherited = {**self.inherited, **properties}

    def _link(self) -> None:
        requested = self._requested_id
        if self.trace_id is None:
            if requested is not None and not valid_trace_id(requested):
                log.warning("hogtrace: invalid trace id %r replaced by a fresh one", requested)
                requested = None
            self._become_root(requested or new_id())
            return
        if requested is not None:
            log.warning(
                "hogtrace: trace(id=%r) ignored: %r is inside trace %s",
                requested,
                self.name,
                self.trace_id,
            )
        super()._link()


class SessionScope(_InheritingScope):
    """Groups traces: every event inside carries ``$ai_session_id``. Emits no event."""

    __slots__ = ()
    kind = "session"
    emits = False

    def __init__(
        self,
        session_id: str,
        parent: Scope | None,
        *,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__("session", parent)
        self.id = self.session_id = session_id
        if distinct_id is not None:
            self.distinct_id = distinct_id
        if properties:
            self.inherited = {**self.inherited, **properties}
        root = self.trace_root
        if root is not None and root.session_id is None and root.closed is False:
            # A session opened inside a running trace that had none: the trace belongs to it
            # (its root carries the session id and, if given, the person). The trace keeps its
            # own sampling decision: events may already have gone out under it.
            root.session_id = session_id
            if distinct_id is not None:
                root.learn_distinct_id(distinct_id, explicit=False)

    def _link(self) -> None:
        # A session is not a node of the trace tree: it keeps its parent's position.
        self.is_root = False
        self.parent_id = self.child_parent_id


class RemoteScope(Scope):
    """The caller's span in another process (``continue_trace``). Emits no event."""

    __slots__ = ()
    kind = "remote"
    emits = False

    def __init__(
        self,
        parent: Scope | None,
        *,
        trace_id: str | None,
        span_id: str | None,
        session_id: str | None,
        distinct_id: str | None,
        sampled: bool,
    ) -> None:
        super().__init__("remote", parent)
        # No trace id (headers missing or malformed): scopes inside start a fresh trace.
        self.id = span_id or trace_id or new_id()
        self.trace_id = trace_id
        self.child_parent_id = span_id or trace_id
        if session_id is not None:
            self.session_id = session_id
        if distinct_id is not None:
            self.distinct_id = distinct_id
        self.sampled = sampled

    def _link(self) -> None:
        self.is_root = False
        self.parent_id = None
