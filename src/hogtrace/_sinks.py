"""Sinks: where closed scopes go.

``PostHogSink`` hands each closed scope to a daemon worker thread through a bounded, lock-free
queue; the worker builds the event and calls ``posthog.Client.capture``. The decorated call only
pays for a ``put``: it never waits on the PostHog client, its enrichment or the network, and
nothing the worker or the client does (an outage, a full queue, a bug) reaches it.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from hogtrace._errors import log_internal_error
from hogtrace._events import Event, build_event
from hogtrace._stats import stats_counters
from hogtrace._tree import render_tree

if TYPE_CHECKING:
    from hogtrace._config import Config
    from hogtrace._scope import Scope

__all__ = ["ConsoleSink", "DropSink", "FanoutSink", "PostHogSink", "Sink"]

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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self._abandon = threading.Event()  # shutdown gave up: drop what is left, fast
        self._drop_warning = _RateLimit()
        self._stall_warning = _RateLimit()
        _live_sinks.add(self)

    # -- the calling thread ---------------------------------------------------------------

    def emit(self, scope: Scope, config: Config) -> None:
        """Queue ``scope`` for delivery (dropped and counted when the queue is full)."""
        try:
            q = self._queue
            if self._stopped or q.qsize() >= self._max_queue:
                self._drop()
                return
            q.put((scope, config))
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
        try:
            event = build_event(scope, config)
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("building an event", err)
            return
        try:
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
        found = _client_queue(client)
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
        self._queue.put(marker)
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
                self._queue.put(_STOP)
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
        self._queue.put(_STOP)
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
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._start_lock = threading.Lock()
        self._abandon = threading.Event()


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
        try:
            event = build_event(scope, config)
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("building an event", err)
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
