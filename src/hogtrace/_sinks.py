"""Sinks: where closed scopes go.

``PostHogSink`` hands each closed scope to a daemon worker thread through a bounded, lock-free
queue; the worker builds the event and gives it to the ``posthog`` client's ``capture()`` (or
``capture_ai()`` on the AI lane). The decorated call only pays for a ``deque`` append
(``_HandOff``: no wake-up per event): it never waits on the PostHog client, its enrichment or
the network, and nothing the worker or the client does (an outage, a full queue, a bug)
reaches it. Sinks see scopes only through the read-only `ClosedScope` view.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from hogtrace import _posthog, _state
from hogtrace._context import current_scope
from hogtrace._errors import RateLimit, log_internal_error
from hogtrace._events import Event, build_event
from hogtrace._options import Config
from hogtrace._protocols import Annotation, Emitted, Sink
from hogtrace._stats import stats_counters
from hogtrace._tree import render_tree

__all__ = [
    "ConsoleSink",
    "DropSink",
    "FanoutSink",
    "ClientLedger",
    "PostHogSink",
    "build_event_or_count",
    "forget_settled",
    "ledger_of",
    "reconcile_settled",
]

log = logging.getLogger("hogtrace")

#: Closed scopes waiting for the worker. Past this, new ones are dropped and counted.
MAX_QUEUE = 10_000
#: In a multiprocessing Pool worker, how long a finished trace waits at most for its delivery,
#: and, when it had to give up, how long the next traces are not waited for.
CHILD_FLUSH_TIMEOUT = 0.5
CHILD_FLUSH_PAUSE = 30.0
#: How often a waiting worker (client queue full) or flush (worker busy) looks again.
_POLL = 0.05
#: The attribute that marks an exception already sent to PostHog error tracking.
_EXCEPTION_ID = "__hogtrace_exception_event_id__"


def build_event_or_count(
    scope: Emitted, config: Config, max_bytes: int | None = None
) -> Event | None:
    """``build_event``, or ``None`` when it fails (counted in ``stats()["failed"]``, logged)."""
    try:
        return build_event(scope, config, max_bytes)
    except Exception as err:
        stats_counters.failed.incr()
        log_internal_error("building an event", err)
        return None


class DropSink:
    """No destination configured: events are dropped after one warning."""

    def __init__(self, *, silent: bool = False) -> None:
        self._warned = silent

    def emit(self, scope: Emitted, config: Config) -> None:
        stats_counters.dropped.incr()
        scope.release()
        if not self._warned:
            self._warned = True
            log.warning(
                "hogtrace: no PostHog client configured, events are dropped. Call"
                " hogtrace.configure(posthog_client), set POSTHOG_API_KEY, or set"
                " HOGTRACE_CONSOLE=1 to print traces."
            )

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        return False

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self, timeout: float | None = None) -> None:
        pass


class _FlushMarker:
    """Queued behind the events a ``flush()`` waits for; the worker sets it on reaching it."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()

#: The most closed scopes the worker takes at once: their events built, then captured.
_BATCH = 32

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


def _hogtrace_events(batch: list[Any]) -> int:
    lost = 0
    for msg in batch:
        try:
            if msg["properties"].get("$ai_lib") == "hogtrace":
                lost += 1
        except Exception:
            continue
    return lost


class ClientLedger:
    """``on_error`` of a client hogtrace builds: counts what the client loses, and settles.

    While the client is in use, each batch it gives up on (after its retries) is counted in
    ``stats()["undelivered"]``. When hogtrace retires the client (``shutdown()``, ``reset()``,
    ``configure()`` replacing it, exit) and it has not finished sending within the bound,
    `settle` counts everything it still holds at once: the queued events are taken out (they
    will not be sent) and the batch it is sending is counted too. A later give-up of that batch
    is then not counted again; if it is delivered after all, `reconcile` takes it back out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled = False
        self._in_flight = 0  # counted when settling, still being sent
        self._late_lost = 0  # of those, what the client then gave up on
        self._queues: list[Any] = []  # the retired client's, while it sends that batch
        _ledgers.add(self)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it), nothing in flight."""
        self._lock = threading.Lock()
        self._in_flight = self._late_lost = 0
        self._queues = []

    def __call__(self, error: Exception, batch: list[Any]) -> None:
        lost = _hogtrace_events(batch)
        with self._lock:
            if self._settled:
                self._late_lost += lost
                return
            stats_counters.undelivered.add(lost)
        if lost and _undelivered_warning.ready():
            log.warning(
                "hogtrace: the PostHog client could not deliver %d events (%s). See"
                " hogtrace.stats()['undelivered'].",
                lost,
                error,
            )

    def settle(self, client: Any) -> int:
        """Count what ``client`` still holds as undelivered (and stop the queued part); how many."""
        queues = _posthog.lane_queues(client)
        with self._lock:
            self._settled = True
            held = _posthog.unfinished(queues)
            self._in_flight = max(0, held - _posthog.discard_queued(queues))
            stats_counters.undelivered.add(held)
            if self._in_flight:
                self._queues = queues
                _settling.add(self)
        return held

    def reconcile(self) -> None:
        """Once the batch counted in flight is done: what was not lost was delivered."""
        with self._lock:
            if _posthog.unfinished(self._queues):
                return  # still sending
            stats_counters.redelivered.add(max(0, self._in_flight - self._late_lost))
            self._in_flight = 0
            self._queues = []
            _settling.discard(self)


#: Ledgers of retired clients still sending a batch counted as undelivered.
_settling: set[ClientLedger] = set()
#: Every ledger, for a forked child to renew.
_ledgers: weakref.WeakSet[ClientLedger] = weakref.WeakSet()


def reconcile_settled() -> None:
    """Take back out of ``undelivered`` the batches retired clients delivered after all."""
    for ledger in list(_settling):
        ledger.reconcile()


def forget_settled() -> None:
    """After ``reset()``: the retired clients' batches belong to the counts that were reset."""
    _settling.clear()


def ledger_of(client: Any) -> ClientLedger | None:
    """The `ClientLedger` of a client hogtrace built (its ``on_error``), else None."""
    try:
        on_error = getattr(client, "on_error", None)
    except Exception:
        return None
    return on_error if isinstance(on_error, ClientLedger) else None


_undelivered_warning = RateLimit()


class PostHogSink:
    """Deliver events through a ``posthog`` client from a background worker thread.

    Memory is bounded twice: by ``max_queue`` closed scopes here, and by the client's own
    ``max_queue_size``. When the client's queue is full (PostHog unreachable for a while), the
    worker waits for room instead of handing events over for the client to drop one warning at
    a time, so excess events are dropped here: counted in ``stats()["dropped"]``, one warning
    per minute, and the calling thread never waits.

    Args:
        client: a ``posthog.Posthog`` client.
        ai_lane: send with ``capture_ai()`` (``None``: as the client is set up).
        max_queue: closed scopes that may wait for the worker (default ``MAX_QUEUE``).
    """

    def __init__(
        self,
        client: Any,
        *,
        ai_lane: bool | None = None,
        max_queue: int | None = None,
        prepare: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        #: Called before each delivery until it returns True (installs the wrapper hook late).
        self._prepare = prepare
        self.ai_lane = _posthog.uses_ai_lane(client, ai_lane)
        self._lane_limit = _posthog.AI_LANE_LIMIT if self.ai_lane else _posthog.ANALYTICS_LANE_LIMIT
        # What the client adds to each event after hogtrace measured it: taken off the budget
        # so that the limit holds for the event as the client sends it.
        self._client_bytes = _posthog.enriched_size(client)
        self._max_queue = MAX_QUEUE if max_queue is None else max_queue
        self._queue = _HandOff()
        # Events the worker built and has not handed to the client yet (`_deliver_all`).
        self._held: collections.deque[tuple[Event, BaseException | str | None, Config]] = (
            collections.deque()
        )
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self._abandon = threading.Event()  # shutdown gave up: drop what is left, fast
        self._drop_warning = RateLimit()
        self._stall_warning = RateLimit()
        self._refused_warning = RateLimit()
        self._in_child = False  # a multiprocessing child: flush at its exit
        self._in_pool_worker = False  # a Pool worker: deliver each trace as it ends
        self._flush_paused_until = 0.0  # PostHog did not answer a trace's flush in time
        self._child_checked = False
        _live_sinks.add(self)

    # -- the calling thread ---------------------------------------------------------------

    def emit(self, scope: Emitted, config: Config) -> None:
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
            if not self._child_checked:
                self._check_child()
            if self._in_pool_worker and getattr(scope, "local_root", False):
                self._flush_trace(config)
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("queueing an event", err)

    def _check_child(self) -> None:
        """In a multiprocessing child (Process target, Pool worker), deliver without atexit.

        Such children leave through ``os._exit``, so no exit hook runs: a multiprocessing
        finalizer flushes at exit. A ``multiprocessing.Pool`` worker may also be terminated
        (as a ``with Pool()`` block does to its workers), which skips even that: there each
        finished trace is flushed at once (`_flush_trace`). Checked at the first event in the
        process, when multiprocessing has set itself up (it has not yet when the fork hooks
        run).
        """
        self._child_checked = True
        self._in_child = _in_multiprocessing_child()
        if self._in_child:
            _finalize_in_child(self)
            self._in_pool_worker = _in_pool_worker()

    def _flush_trace(self, config: Config) -> None:
        """Deliver a finished trace now, in a Pool worker: a short, fixed wait at most.

        If PostHog does not answer in time (down, or slow), the next traces are not waited for
        during `CHILD_FLUSH_PAUSE`: an outage costs a worker one wait, not one per task. Their
        events are still delivered in the background, and at the worker's exit.
        """
        now = time.monotonic()
        if now < self._flush_paused_until:
            return
        self.flush(min(CHILD_FLUSH_TIMEOUT, config.shutdown_timeout))
        if not self._queue.empty() or _posthog.unfinished(_posthog.lane_queues(self.client)):
            self._flush_paused_until = time.monotonic() + CHILD_FLUSH_PAUSE

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        return False  # PostHog's own wrapper events go out through the client as they are

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
        items = q.items
        try:
            while True:
                item = q.get()
                # What else is queued, up to `_BATCH`: built all, then captured all (see
                # `_deliver_all`). A flush marker or the stop ends a batch.
                batch: list[Any] = []
                while item is not _STOP and not isinstance(item, _FlushMarker):
                    batch.append(item)
                    if len(batch) == _BATCH or not items:
                        item = None
                        break
                    item = items.popleft()
                if batch:
                    self._deliver_all(batch)
                if item is _STOP:
                    return
                if item is not None:
                    item.done.set()
        finally:
            # However the worker ends (stop, or an error escaping in strict mode), the next
            # emit() or flush() starts a fresh one for whatever is still queued.
            with self._start_lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _budget(self, config: Config) -> int:
        """The bytes hogtrace's own properties may take: the limit, less what the client adds."""
        limit = min(config.event_limit, self._lane_limit)
        return max(1000, limit - self._client_bytes)

    def _handle(self, item: Any) -> None:
        """One queued item, on a thread other than the worker (`_drain_here`)."""
        if isinstance(item, _FlushMarker):
            item.done.set()
        else:
            self._deliver_all([item])

    def _deliver_all(self, batch: list[tuple[Emitted, Config]]) -> None:
        """Build the events of ``batch``, then hand each to the client, in order.

        Building them all first and capturing them after costs ~10 µs an event less than
        alternating (measured in ``benchmarks/profile_hotpath.py``: each loop stays in
        its own code and data).
        """
        client = self.client
        prepare = self._prepare
        if prepare is not None and prepare():
            self._prepare = None
        built: list[tuple[Event, BaseException | str | None, Config]] = []
        abandoned = self._abandon.is_set()
        disabled = getattr(client, "disabled", False) is True
        budget, budget_of = 0, None
        for scope, config in batch:
            if abandoned:
                stats_counters.dropped.incr()
                continue
            if disabled:
                scope.release()
                continue  # a disabled client would still spend ~22 µs enriching the event
            if config is not budget_of:
                budget, budget_of = self._budget(config), config
            event = build_event_or_count(scope, config, budget)
            error = None if isinstance(scope, Annotation) else scope.error
            scope.release()
            if event is not None:
                built.append((event, error, config))
        roomy = _posthog.has_room(client, len(built))  # else each waits for room
        # Held where a shutdown that gives up finds (and counts) what is not handed over yet.
        held = self._held
        held.extend(built)
        while True:
            try:
                event, error, config = held.popleft()
            except IndexError:
                return
            if self._abandon.is_set() or not (roomy or self._wait_for_room(client)):
                stats_counters.dropped.incr()
                continue
            self._capture(event, error, config)

    def _capture(self, event: Event, error: BaseException | str | None, config: Config) -> None:
        client = self.client
        try:
            if error is not None:
                self._link_exception(error, event, config)
            accepted = _posthog.capture(
                client,
                self.ai_lane,
                event.event,
                event.distinct_id,
                event.properties,
                event.timestamp,
            )
            if accepted is None:
                # The client dropped it (shut down, its queue full, a before_send returning
                # None, a failed send in sync mode): it reports that by returning no uuid.
                stats_counters.undelivered.incr()
                if self._refused_warning.ready():
                    log.warning(
                        "hogtrace: the PostHog client did not accept an event (shut down, queue"
                        " full, or dropped by before_send). See hogtrace.stats()['undelivered']."
                    )
        except Exception as err:
            stats_counters.failed.incr()
            log_internal_error("posthog client capture()", err)

    def _link_exception(self, error: BaseException | str, event: Event, config: Config) -> None:
        """Send the exception to PostHog error tracking once, and link it (``$exception_event_id``).

        Only where the client has exception autocapture on and content is not hidden; the
        first (innermost) scope the exception closes sends it, the scopes it passes through
        link the same ``$exception`` event.
        """
        if not isinstance(error, BaseException) or config.content_hidden:
            return
        client = self.client
        if not _posthog.wants_exception_capture(client):
            return
        props = event.properties
        try:
            event_id = getattr(error, _EXCEPTION_ID, None)
        except Exception:  # an exception class whose __getattr__ raises
            event_id = None
        if not isinstance(event_id, str):
            if _posthog.exception_already_captured(error):
                return  # the app (or posthog's excepthook) sent it: not a second $exception
            linked: dict[str, Any] = {
                key: props[key]
                for key in ("$ai_trace_id", "$ai_span_id", "$ai_session_id", "$ai_span_name")
                if key in props
            }
            event_id = _posthog.capture_exception(client, error, event.distinct_id, linked)
            if event_id is None:
                return
            # An exception that refuses attributes is linked only here.
            with contextlib.suppress(Exception):
                setattr(error, _EXCEPTION_ID, event_id)
        props["$exception_event_id"] = event_id

    def _wait_for_room(self, client: Any) -> bool:
        """Wait while the client's own queue is full.

        A full client queue drops each new event with its own WARNING, which during an outage
        floods the application's log; waiting here instead moves the overflow to our queue,
        where it is counted and warned about once a minute. The queue is looked up every time
        (a public attribute): after a fork the client has a new one.
        """
        q = _posthog.client_queue(client)
        if q is None:
            return True
        while True:
            try:
                if q.full() is not True:
                    return True
            except Exception:
                return True
            if self._abandon.wait(_POLL):
                return False
            q = _posthog.client_queue(client) or q

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
            _posthog.flush_client(self.client, remaining)
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

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the worker after it has handed what is queued to the client.

        Waits at most ``timeout`` seconds (the configured ``shutdown_timeout`` when ``None``);
        what the client has not taken by then is dropped (counted in ``stats()["dropped"]``,
        logged once).
        """
        if timeout is None:
            timeout = _state.state.config.shutdown_timeout
        self._stopped = True
        _live_sinks.discard(self)
        thread = self._thread
        if thread is threading.current_thread():
            return
        if thread is None:
            if not self._drain_here(time.monotonic() + timeout):
                self._drop_queued()
            return
        self._queue.put(_STOP, wake=True)
        thread.join(timeout)
        if thread.is_alive():
            self._abandon.set()  # the event the worker is on, if any, is dropped by it
            self._drop_queued()

    def _drop_queued(self) -> None:
        """Drop (and count, and log once) the events still queued when shutdown gave up."""
        dropped = 0
        while True:  # built by the worker, not handed over yet
            try:
                self._held.popleft()
            except IndexError:
                break
            stats_counters.dropped.incr()
            dropped += 1
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _FlushMarker):
                item.done.set()
            elif item is not _STOP:
                stats_counters.dropped.incr()
                dropped += 1
        self._queue.put(_STOP, wake=True)  # a worker that comes back finds it, and ends
        if dropped:
            log.warning(
                "hogtrace: shutdown: %d queued events were not handed to the PostHog client in"
                " time (it is not taking events: PostHog unreachable?); they are dropped. See"
                " hogtrace.stats()['dropped'].",
                dropped,
            )

    def after_fork(self) -> None:
        """In a forked child: a fresh queue and worker (the parent's are not ours to use)."""
        # The worker thread does not exist in a forked child, and its queue's lock may have
        # been held at fork time; what the parent had queued is the parent's to deliver.
        self._queue = _HandOff()
        self._held = collections.deque()
        self._thread = None
        self._start_lock = threading.Lock()
        self._abandon = threading.Event()
        self._child_checked = False  # multiprocessing sets itself up after the fork hooks
        self._in_child = self._in_pool_worker = False
        self._flush_paused_until = 0.0


def _in_multiprocessing_child() -> bool:
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return False
    try:
        return mp.parent_process() is not None
    except Exception:
        return False


def _in_pool_worker() -> bool:
    """A ``multiprocessing.Pool`` worker (which ``Pool.terminate()`` may kill at any time).

    Pool names its workers ``ForkPoolWorker-N`` / ``SpawnPoolWorker-N``, ...;
    ``ProcessPoolExecutor`` workers and ``Process`` targets always exit through
    multiprocessing's own exit path, which runs finalizers.
    """
    try:
        from multiprocessing import current_process

        return "PoolWorker" in current_process().name
    except Exception:
        return False


def _finalize_in_child(sink: PostHogSink) -> None:
    """Flush when a multiprocessing child exits: it skips ``atexit`` (``os._exit``)."""
    try:
        from multiprocessing import util

        timeout = _state.state.config.shutdown_timeout
        util.Finalize(sink, _flush_sink, args=(weakref.ref(sink), timeout), exitpriority=100)
    except Exception as err:
        log_internal_error("registering the flush at process exit", err)


def _flush_sink(ref: weakref.ref[PostHogSink], timeout: float) -> None:
    sink = ref()
    if sink is not None:
        sink.flush(timeout)


_live_sinks: weakref.WeakSet[PostHogSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # stats() counts this process's events: the parent's counts and its retired clients'
    # batches stay the parent's.
    stats_counters.reset()
    _settling.clear()
    for ledger in list(_ledgers):
        ledger.after_fork()
    for sink in list(_live_sinks):
        sink.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ConsoleSink:
    """Print each finished trace as a tree on stderr (``console=True``)."""

    def __init__(self, stream: TextIO | None = None, *, releases: bool = True) -> None:
        self._stream = stream
        self._releases = releases  # False beside a PostHog sink, which builds the event later
        self._pending: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def emit(self, scope: Emitted, config: Config) -> None:
        event = build_event_or_count(scope, config)
        if self._releases:
            scope.release()
        if event is None:
            return
        try:
            self._add(event, event.properties["$ai_trace_id"], getattr(scope, "local_root", False))
        except Exception as err:  # e.g. stderr closed at interpreter exit
            stats_counters.failed.incr()
            log_internal_error("printing a trace", err)

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        """Hold a PostHog wrapper's event for its trace's tree (it is still sent as usual).

        Outside every hogtrace scope no root of ours will close its trace: printed at once.
        """
        try:
            props = msg.get("properties")
            trace_id = props.get("$ai_trace_id") if isinstance(props, dict) else None
            if isinstance(trace_id, str):
                event = Event(str(msg.get("event")), str(msg.get("distinct_id")), props, None)  # type: ignore[arg-type]
                self._add(event, trace_id, complete=current_scope() is None)
        except Exception as err:
            log_internal_error("recording a wrapper event for the console", err)
        return False

    def _add(self, event: Event, trace_id: str, complete: bool) -> None:
        """Add an event to its trace's tree; print the tree when ``complete``.

        At most `_MAX_PENDING` trees wait for their root: past it the oldest is printed as
        it is (a root that never closes, in this process).
        """
        done: list[list[Event]] = []
        with self._lock:
            events = self._pending.setdefault(trace_id, [])
            events.append(event)
            if complete:
                done.append(self._pending.pop(trace_id))
            elif len(self._pending) > _MAX_PENDING:
                done.append(self._pending.pop(next(iter(self._pending))))
        for tree in done:
            self._write(render_tree(tree))

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

    def shutdown(self, timeout: float | None = None) -> None:
        self.flush()


#: Traces the console holds while their root is open.
_MAX_PENDING = 1000


class FanoutSink:
    """Send every scope to several sinks (a PostHog client and the console)."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, scope: Emitted, config: Config) -> None:
        for sink in self.sinks:
            sink.emit(scope, config)

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        consumed = False
        for sink in self.sinks:
            consumed = sink.wrapper_event(msg) or consumed
        return consumed

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for sink in self.sinks:
            sink.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def shutdown(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for sink in self.sinks:
            sink.shutdown(None if deadline is None else max(0.0, deadline - time.monotonic()))
