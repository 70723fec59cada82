"""Sinks: where closed scopes go.

``PostHogSink`` hands each closed scope to a daemon worker thread through a bounded, lock-free
queue; the worker builds the event and gives it to the ``posthog`` client (``_DirectCapture``:
the client's own ``capture()`` steps, without those that only repeat work hogtrace did). The
decorated call only pays for a ``deque`` append (``_HandOff``: no wake-up per event): it never
waits on the PostHog client, its enrichment or the network, and nothing the worker or the
client does (an outage, a full queue, a bug) reaches it.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from hogtrace._errors import log_internal_error
from hogtrace._events import Event, build_event
from hogtrace._stats import stats_counters
from hogtrace._tree import render_tree

if TYPE_CHECKING:
    from hogtrace._config import Config
    from hogtrace._scope import Scope

__all__ = [
    "ConsoleSink",
    "DropSink",
    "FanoutSink",
    "PostHogSink",
    "Sink",
    "build_event_or_count",
]

log = logging.getLogger("hogtrace")

#: Closed scopes waiting for the worker. Past this, new ones are dropped and counted.
MAX_QUEUE = 10_000
#: At most one warning about dropped events (or a stalled flush) per this many seconds.
WARN_INTERVAL = 60.0
#: How long ``shutdown()`` lets the worker hand queued events over before dropping the rest.
SHUTDOWN_TIMEOUT = 10.0
#: How often a waiting worker (client queue full) or flush (worker busy) looks again.
_POLL = 0.05


class Sink(Protocol):
    """Receives closed scopes."""

    def emit(self, scope: Scope, config: Config) -> None:
        """Take a closed scope. Must not block and must not raise."""

    def flush(self, timeout: float | None = None) -> None:
        """Deliver what is queued, waiting at most ``timeout`` seconds."""

    def shutdown(self) -> None:
        """Stop background work (after a flush)."""


def build_event_or_count(scope: Scope, config: Config) -> Event | None:
    """``build_event``, or ``None`` when it fails (counted in ``stats()["failed"]``, logged)."""
    try:
        return build_event(scope, config)
    except Exception as err:
        stats_counters.failed.incr()
        log_internal_error("building an event", err)
        return None


class DropSink:
    """No destination configured: events are dropped after one warning."""

    def __init__(self, *, silent: bool = False) -> None:
        self._warned = silent

    def emit(self, scope: Scope, config: Config) -> None:
        stats_counters.dropped.incr()
        if not self._warned:
            self._warned = True
            log.warning(
                "hogtrace: no PostHog client configured, events are dropped. Call"
                " hogtrace.configure(posthog_client), set POSTHOG_API_KEY, or set"
                " HOGTRACE_CONSOLE=1 to print traces."
            )

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _FlushMarker:
    """Queued behind the events a ``flush()`` waits for; the worker sets it on reaching it."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()

#: How long the worker naps when it runs out of events (events put meanwhile wait for it: the
#: PostHog client batches for seconds anyway), and how many empty naps before it parks.
_NAP = 0.05
_IDLE_NAPS = 20


class _HandOff:
    """The queue from calling threads to the worker; ``put()`` does not wake the worker per item.

    A ``queue.SimpleQueue`` wakes a waiting consumer on every ``put()``: a futex call on the
    calling thread (~5 µs on a VM, as much as the rest of a decorated call) for the first event
    after every pause. Here ``put()`` is a ``deque`` append. The worker, out of events, naps
    ``_NAP`` seconds at a time and picks up what arrived; only after ``_IDLE_NAPS`` empty naps
    (a second of silence) does it park, and only a parked worker is woken by ``put()`` (once).
    ``flush()`` and ``shutdown()`` always wake it. Lock-free on the calling thread: ``append``,
    ``len`` and ``popleft`` are atomic, and the ``Event`` is touched only to wake.
    """

    __slots__ = ("_wake", "items", "parked")

    def __init__(self) -> None:
        #: Queued items; ``PostHogSink.emit`` appends here directly (then checks ``parked``).
        self.items: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self.parked = False

    def put(self, item: Any, wake: bool = False) -> None:
        """Queue ``item``; wake the worker if ``wake`` or if it is parked."""
        self.items.append(item)
        if wake or self.parked:
            self._wake.set()

    def wake(self) -> None:
        """Wake the worker (it is parked, or something waits for it)."""
        self._wake.set()

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def get_nowait(self) -> Any:
        try:
            return self.items.popleft()
        except IndexError:
            raise queue.Empty from None

    def get(self) -> Any:
        """The next item (the worker only): nap while there is none, park after a while."""
        items = self.items
        wake = self._wake
        naps = 0
        while True:
            try:
                return items.popleft()
            except IndexError:
                pass
            if naps < _IDLE_NAPS:
                naps += 1
                wake.wait(_NAP)
            else:
                self.parked = True
                # Checked after parking: a put() before it did not wake us, one after it will.
                if not items:
                    wake.wait()
                self.parked = False
                naps = 0
            wake.clear()  # what woke us is in items now (a wake-up lost here finds it there)


class _RateLimit:
    """Allows one log line per ``WARN_INTERVAL`` (the first one at once)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: float | None = None

    def ready(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < WARN_INTERVAL:
            return False
        self._last = now
        return True


class PostHogSink:
    """Deliver events through a ``posthog`` client from a background worker thread.

    Memory is bounded twice: by ``max_queue`` closed scopes here, and by the client's own
    ``max_queue_size``. When the client's queue is full (PostHog unreachable for a while), the
    worker waits for room instead of handing events over for the client to drop one warning at
    a time, so excess events are dropped here: counted in ``stats()["dropped"]``, one warning
    per minute, and the calling thread never waits.

    Args:
        client: a ``posthog.Posthog`` client.
        max_queue: closed scopes that may wait for the worker (default ``MAX_QUEUE``).
    """

    def __init__(self, client: Any, *, max_queue: int | None = None) -> None:
        self.client = client
        self._max_queue = MAX_QUEUE if max_queue is None else max_queue
        self._queue = _HandOff()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self._abandon = threading.Event()  # shutdown gave up: drop what is left, fast
        self._drop_warning = _RateLimit()
        self._stall_warning = _RateLimit()
        self._direct = _DirectCapture.for_client(client)
        self._room: tuple[Any, Any] | None = None
        self._room_known = False
        _live_sinks.add(self)

    # -- the calling thread ---------------------------------------------------------------

    def emit(self, scope: Scope, config: Config) -> None:
        """Queue ``scope`` for delivery (dropped and counted when the queue is full)."""
        try:
            q = self._queue
            items = q.items  # put() and qsize(), inlined: this runs on every decorated call
            if self._stopped or len(items) >= self._max_queue:
                self._drop()
                return
            items.append((scope, config))
            if q.parked:
                q.wake()
            if self._thread is None:
                self._start()
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("queueing an event", err)

    def _drop(self) -> None:
        stats_counters.dropped.incr()
        if self._drop_warning.ready():
            reason = "hogtrace was shut down" if self._stopped else "the delivery queue is full"
            log.warning(
                "hogtrace: dropping events: %s (%d waiting; PostHog unreachable or too slow?)."
                " See hogtrace.stats()['dropped'].",
                reason,
                self._queue.qsize(),
            )

    def _start(self) -> bool:
        """Start the worker unless one runs; False if none can run (stopped, interpreter exit)."""
        with self._start_lock:
            if self._thread is not None:
                return True
            if self._stopped:
                return False
            thread = threading.Thread(target=self._run, name="hogtrace-delivery", daemon=True)
            self._thread = thread
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._thread = None
                return False
            return True

    # -- the worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        try:
            while True:
                item = q.get()
                if item is _STOP:
                    return
                self._handle(item)
        finally:
            # However the worker ends (stop, or an error escaping in strict mode), the next
            # emit() or flush() starts a fresh one for whatever is still queued.
            with self._start_lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _handle(self, item: Any) -> None:
        if isinstance(item, _FlushMarker):
            item.done.set()
        elif self._abandon.is_set():
            stats_counters.dropped.incr()
        else:
            self._deliver(*item)

    def _deliver(self, scope: Scope, config: Config) -> None:
        client = self.client
        if getattr(client, "disabled", False) is True:
            return  # a disabled client would still spend ~22 µs enriching the event
        if not self._wait_for_room(client):
            stats_counters.dropped.incr()
            return
        event = build_event_or_count(scope, config)
        if event is None:
            return
        try:
            direct = self._direct
            if direct is not None and direct.usable():
                direct.capture(event)
            else:
                client.capture(
                    event.event,
                    distinct_id=event.distinct_id,
                    properties=event.properties,
                    timestamp=event.timestamp,
                )
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("posthog client capture()", err)

    def _wait_for_room(self, client: Any) -> bool:
        """Wait while the client's own queue is full; False if the client cannot take events.

        A full client queue drops each new event with its own WARNING, which during an outage
        floods the application's log; waiting here instead moves the overflow to our queue,
        where it is counted and warned about once a minute. A closed client (the user shut it
        down) would likewise warn per event, so its events are dropped here.
        """
        if not self._room_known:  # looked up once per sink: the client's lane is fixed
            self._room = _client_queue(client)
            self._room_known = True
        found = self._room
        if found is None:
            return True
        lane, q = found
        while True:
            try:
                if getattr(lane, "_closed", False) is True:
                    if self._drop_warning.ready():
                        log.warning(
                            "hogtrace: the PostHog client was shut down; dropping events."
                            " Configure a new client with hogtrace.configure()."
                        )
                    return False
                if q.full() is not True:
                    return True
            except Exception:  # not the posthog internals we know: just capture()
                return True
            if self._abandon.wait(_POLL):
                return False

    # -- flush and shutdown ---------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the worker has handed everything to the client, then flush the client.

        ``timeout`` bounds the whole call. If the worker is still busy when it runs out (the
        client is blocked, or its queue is full during an outage), the events stay queued for
        later and the client is not flushed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._drain(deadline):
            if self._stall_warning.ready():
                log.warning(
                    "hogtrace: flush timed out with %d events still queued (the PostHog client"
                    " is not taking events: unreachable or blocked?)",
                    self._queue.qsize(),
                )
            return
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            try:
                self.client.flush(timeout_seconds=remaining)
            except TypeError:  # posthog clients without a timeout argument
                self.client.flush()
        except Exception as err:
            log_internal_error("posthog client flush()", err)

    def _drain(self, deadline: float | None) -> bool:
        """Wait until everything queued before now was handed to the client (or deadline)."""
        if threading.current_thread() is self._thread:
            return True  # flush() from inside capture() (a before_send hook): cannot wait on us
        if self._thread is None and self._queue.empty():
            return True
        marker = _FlushMarker()
        self._queue.put(marker, wake=True)
        while True:
            if self._thread is None and not self._start():
                return self._drain_here(deadline)
            wait = _POLL
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return marker.done.is_set()
            # Woken every _POLL to notice a worker that died (its successor takes over).
            if marker.done.wait(wait):
                return True

    def _drain_here(self, deadline: float | None) -> bool:
        """No worker can run (stopped, or the interpreter is exiting): deliver on this thread."""
        while deadline is None or time.monotonic() < deadline:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True
            if item is _STOP:
                self._queue.put(_STOP, wake=True)
                return True
            self._handle(item)
        return self._queue.empty()

    def shutdown(self) -> None:
        """Stop the worker after it has handed what is queued to the client.

        Waits at most ``SHUTDOWN_TIMEOUT`` seconds; what the client has not taken by then is
        dropped (counted in ``stats()["dropped"]``).
        """
        self._stopped = True
        _live_sinks.discard(self)
        thread = self._thread
        if thread is threading.current_thread():
            return
        if thread is None:
            self._drain_here(time.monotonic() + SHUTDOWN_TIMEOUT)
            return
        self._queue.put(_STOP, wake=True)
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            self._abandon.set()
            log.warning(
                "hogtrace: shutdown: the PostHog client did not take the %d queued events"
                " within %.0f s; they are dropped",
                self._queue.qsize(),
                SHUTDOWN_TIMEOUT,
            )

    def _after_fork(self) -> None:
        # The worker thread does not exist in a forked child, and its queue's lock may have
        # been held at fork time; what the parent had queued is the parent's to deliver.
        self._queue = _HandOff()
        self._thread = None
        self._start_lock = threading.Lock()
        self._abandon = threading.Event()


#: ``posthog`` releases whose ``Client.capture()`` `_DirectCapture` reproduces: [from, to).
_DIRECT_VERSIONS = ((7, 91), (8, 0))
#: The ``posthog.Client`` methods it calls or stands in for; overriding any of them (in a
#: subclass, or on the instance, as tests do with ``capture``) means ``capture()`` is used.
_DIRECT_METHODS = (
    "capture",
    "_capture",
    "_capture_properties",
    "_capture_legacy_flag_properties",
    "_enqueue",
    "_normalize_event_timestamp",
    "_normalize_event_uuid",
    "_enrich_event_properties",
    "_run_before_send",
    "_submit_event",
)
_NO_ATTRIBUTES: dict[str, Any] = {}
#: Exact types ``posthog.utils.clean()`` returns unchanged.
_PLAIN = frozenset({str, int, float, bool, type(None)})


class _DirectCapture:
    """``posthog.Client.capture()`` for hogtrace's own events, minus work already done.

    It queues exactly the message ``capture()`` would (``tests/test_perf_structure.py`` checks
    this at a capture server), calling the client's own steps in ``capture()``'s order, but
    skips what is pure repetition for events hogtrace built (about 30 µs of ``capture()``'s
    ~55 µs for a small event; more for large content):

    - ``system_context()`` (runtime, OS and distro) is computed once per client instead of for
      every event, where it reads the distro information again (``posthog-reference.md``
      §7.2: the bulk of ``capture()``'s enrichment cost).
    - ``clean()`` does not copy content that hogtrace already made JSON-safe (``Event.safe_keys``:
      snapshots taken on the calling thread, redacted and truncated by hogtrace), nor scalars;
      everything else (user properties, super properties) is cleaned as ``capture()`` does.
    - The second ``clean()`` after ``before_send`` is skipped when the hook is hogtrace's own
      (``_interop``) and returns the event unchanged, as it does for hogtrace's events. A user's
      ``before_send`` runs exactly as in ``capture()``, on a fully cleaned message.

    Any other client (another posthog release, a subclass or instance that overrides these
    methods, ``capture_trace_context``) gets a plain ``capture()`` call.
    """

    __slots__ = ("_clean", "_clean_dict", "_client", "_context_tags", "_identity", "_system")

    def __init__(self, client: Any) -> None:
        import posthog.client as ph_client
        import posthog.utils as ph_utils

        self._client = client
        # The names capture() itself calls (posthog.client imports system_context).
        system_context: Callable[[], dict[str, Any]] = vars(ph_client)["system_context"]
        self._system = system_context()
        self._context_tags: Callable[..., Any] = ph_client.add_context_tags
        self._identity: Callable[..., Any] = ph_client.get_identity_state
        self._clean: Callable[..., Any] = ph_utils.clean
        self._clean_dict: Callable[..., Any] = ph_utils._clean_dict

    @classmethod
    def for_client(cls, client: Any) -> _DirectCapture | None:
        """The direct path for ``client``, or ``None`` if ``capture()`` must be called."""
        try:
            import posthog.client as ph_client
            import posthog.utils as ph_utils
            from posthog.version import VERSION

            major, minor = (int(part) for part in VERSION.split(".")[:2])
            low, high = _DIRECT_VERSIONS
            if not low <= (major, minor) < high:
                return None
            base = ph_client.Client
            if not isinstance(client, base):
                return None
            kind = type(client)
            for name in _DIRECT_METHODS:
                if getattr(kind, name, None) is not getattr(base, name):
                    return None
            for name in ("add_context_tags", "get_identity_state", "system_context"):
                if not callable(getattr(ph_client, name, None)):
                    return None
            if not callable(getattr(ph_utils, "_clean_dict", None)):
                return None
            if not hasattr(client, "_analytics_lane"):
                return None
            return cls(client)
        except Exception:
            return None

    def usable(self) -> bool:
        """Checked per event: the instance may have been patched or reconfigured since."""
        client = self._client
        attributes = getattr(client, "__dict__", _NO_ATTRIBUTES)
        for name in _DIRECT_METHODS:
            if name in attributes:
                return False
        return getattr(client, "capture_trace_context", True) is False

    def capture(self, event: Event) -> None:
        """``client.capture(event.event, distinct_id=..., properties=..., timestamp=...)``."""
        client = self._client
        given = event.properties
        # Client._capture / _capture_properties:
        properties = self._context_tags({**given, **self._system})
        distinct_id, personless = self._identity(event.distinct_id)
        if personless and "$process_person_profile" not in properties:
            properties["$process_person_profile"] = False
        msg: dict[str, Any] = {
            "properties": properties,
            "timestamp": event.timestamp,
            "distinct_id": distinct_id,
            "event": event.event,
            "uuid": None,
        }
        extra = client._capture_legacy_flag_properties(distinct_id, None, None, False)
        if extra:
            msg["properties"] = {**extra, **properties}
        # Client._enqueue:
        lane = client._analytics_lane
        if client.disabled:
            return
        client._normalize_event_timestamp(msg)
        client._normalize_event_uuid(msg)
        client._enrich_event_properties(msg, None, None, None)
        hook = client.before_send
        own_hook = hook is None or _is_own_hook(hook)
        # Content may go uncopied only when no user hook gets the message.
        msg = self._clean_msg(msg, event.safe_keys if own_hook else (), given)
        if hook is not None:
            if own_hook:
                # hogtrace's hook returns hogtrace's events as they are: cleaning the very same
                # (already clean) message again would copy it for nothing.
                result: Any = hook(msg)
                if result is None:
                    return
                if result is not msg:
                    if not isinstance(result, dict):
                        return
                    result = self._clean(result)
                msg = result
            else:
                hooked: dict[str, Any] | None = client._run_before_send(msg, None)
                if hooked is None:
                    return
                msg = hooked
        client._normalize_event_uuid(msg)
        sent_uuid = msg["uuid"]
        client.log.debug("queueing: %s", msg)
        client._submit_event(msg, lane, sent_uuid)

    def _clean_msg(
        self, msg: dict[str, Any], safe: AbstractSet[str] | tuple[()], given: dict[str, Any]
    ) -> dict[str, Any]:
        """``posthog.utils.clean(msg)``, without copying values clean() returns unchanged."""
        clean_dict = self._clean_dict
        out: dict[str, Any] = {}
        for key, value in msg.items():
            if type(value) in _PLAIN:
                out[key] = value
            elif key == "properties" and type(value) is dict:
                props: dict[str, Any] = {}
                for name, item in value.items():
                    if type(item) in _PLAIN or (name in safe and item is given.get(name)):
                        props[name] = item
                    else:
                        props.update(clean_dict({name: item}))  # its own warning on failure
                out[key] = props
            else:
                out.update(clean_dict({key: value}))
        return out


_own_hook_type: type | None = None


class _NoHook:
    """Stands for hogtrace's hook type if ``_interop`` no longer has it: nothing matches."""


def _is_own_hook(hook: Any) -> bool:
    """True for hogtrace's ``before_send`` with no user hook chained behind it."""
    global _own_hook_type
    if _own_hook_type is None:
        try:  # _interop sits above this module: imported when first needed
            from hogtrace import _interop

            _own_hook_type = getattr(_interop, "_BeforeSend", _NoHook)
        except ImportError:  # then every hook is treated as a user's (the safe side)
            _own_hook_type = _NoHook
    return type(hook) is _own_hook_type and getattr(hook, "previous", None) is None


def _client_queue(client: Any) -> tuple[Any, Any] | None:
    """``(lane, queue)`` of a posthog client: the analytics lane (posthog 7) or ``client.queue``.

    ``None`` for anything else (a custom client): then events are just handed to ``capture()``.
    """
    lane = getattr(client, "_analytics_lane", None)
    q = getattr(lane, "queue", None) if lane is not None else getattr(client, "queue", None)
    if q is None or not callable(getattr(q, "full", None)):
        return None
    return lane, q


_live_sinks: weakref.WeakSet[PostHogSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sink in list(_live_sinks):
        sink._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ConsoleSink:
    """Print each finished trace as a tree on stderr (``console=True``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._pending: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def emit(self, scope: Scope, config: Config) -> None:
        event = build_event_or_count(scope, config)
        if event is None:
            return
        try:
            trace_id = event.properties["$ai_trace_id"]
            with self._lock:
                events = self._pending.setdefault(trace_id, [])
                events.append(event)
                if not _is_local_root(scope):
                    if len(self._pending) > 1000:  # traces whose root never closes
                        self._pending.pop(next(iter(self._pending)))
                    return
                del self._pending[trace_id]
            self._write(render_tree(events))
        except Exception as err:  # e.g. stderr closed at interpreter exit
            stats_counters.failed.incr()
            log_internal_error("printing a trace", err)

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(text + "\n")
        except UnicodeEncodeError:
            stream.write(text.encode("ascii", "replace").decode("ascii") + "\n")
        stream.flush()

    def flush(self, timeout: float | None = None) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for events in pending.values():
            self._write(render_tree(events))

    def shutdown(self) -> None:
        self.flush()


def _is_local_root(scope: Scope) -> bool:
    """True for the outermost event-emitting scope in this process."""
    parent = scope.parent
    while parent is not None:
        if parent.emits:
            return False
        parent = parent.parent
    return True


class FanoutSink:
    """Send every scope to several sinks (a PostHog client and the console)."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, scope: Scope, config: Config) -> None:
        for sink in self.sinks:
            sink.emit(scope, config)

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for sink in self.sinks:
            sink.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        for sink in self.sinks:
            sink.shutdown()
