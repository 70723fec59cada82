"""Sinks: where closed scopes go.

``PostHogSink`` hands each closed scope to a daemon worker thread through a bounded, lock-free
queue; the worker builds the event and calls ``posthog.Client.capture``. The decorated call only
pays for a ``put``: it never waits on the PostHog client, its enrichment or the network.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
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
_WARN_INTERVAL = 60.0


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
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class PostHogSink:
    """Deliver events through a ``posthog`` client from a background worker thread."""

    def __init__(self, client: Any, *, max_queue: int = MAX_QUEUE) -> None:
        self.client = client
        self._max_queue = max_queue
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self._last_warning = 0.0
        _live_sinks.append(self)

    def emit(self, scope: Scope, config: Config) -> None:
        """Queue ``scope`` for delivery (dropped and counted when the queue is full)."""
        q = self._queue
        if q.qsize() >= self._max_queue or self._stopped:
            self._drop()
            return
        q.put((scope, config))
        if self._thread is None:
            self._start()

    def _drop(self) -> None:
        stats_counters.dropped.incr()
        now = time.monotonic()
        if now - self._last_warning >= _WARN_INTERVAL:
            self._last_warning = now
            log.warning(
                "hogtrace: delivery queue full (%d events) or stopped; dropping events"
                " (see hogtrace.stats()['dropped'])",
                self._max_queue,
            )

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopped:
                thread = threading.Thread(target=self._run, name="hogtrace-delivery", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            if item is _STOP:
                return
            if isinstance(item, _FlushMarker):
                item.done.set()
                continue
            self._deliver(*item)

    def _deliver(self, scope: Scope, config: Config) -> None:
        client = self.client
        if getattr(client, "disabled", False):
            return  # a disabled client would still spend ~22 µs enriching the event
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

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the worker has handed everything to the client, then flush the client."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is not None and self._thread.is_alive():
            marker = _FlushMarker()
            self._queue.put(marker)
            if not marker.done.wait(timeout):
                log.warning("hogtrace: flush timed out with events still queued")
                return
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            try:
                self.client.flush(timeout_seconds=remaining)
            except TypeError:  # posthog clients without a timeout argument
                self.client.flush()
        except Exception as err:
            log_internal_error("posthog client flush()", err)

    def shutdown(self) -> None:
        """Stop the worker after it has delivered what is queued."""
        self._stopped = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=10.0)
        if self in _live_sinks:
            _live_sinks.remove(self)

    def _after_fork(self) -> None:
        # The worker thread does not exist in a forked child; what the parent had queued is the
        # parent's to deliver. Start afresh.
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._start_lock = threading.Lock()


_live_sinks: list[PostHogSink] = []


def _after_fork_in_child() -> None:
    for sink in _live_sinks:
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
        for sink in self.sinks:
            sink.flush(timeout)

    def shutdown(self) -> None:
        for sink in self.sinks:
            sink.shutdown()
