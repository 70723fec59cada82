"""Sinks: delivery through the real posthog client, the bounded queue, flush and shutdown."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import datetime
import io
import logging
import threading
from typing import Any

import posthog.client
import posthog.utils
import pytest

import hogtrace
import hogtrace.testing
from hogtrace import _errors, _sinks, _state
from hogtrace._sinks import ConsoleSink, DropSink, FanoutSink, PostHogSink
from tests.capture_server import CaptureServer, Clients, closed_port_url


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Internal errors are logged, not raised, and each is logged afresh."""
    monkeypatch.setattr(_errors, "STRICT", False)
    monkeypatch.setattr(_errors, "_seen", set())


@hogtrace.trace
def answer(question: str) -> str:
    with hogtrace.span("retrieve") as s:
        s.set_output(["doc-1"])
    return question.upper()


def by_name(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["properties"]["$ai_span_name"]: e for e in events}


def closed_scope(name: str = "span") -> Any:
    """A closed root scope, as a sink receives it."""
    with hogtrace.testing.capture_events(), hogtrace.span(name) as scope:
        pass
    return scope


class TestPostHogSinkDelivery:
    def test_batch_carries_the_trace_tree(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """The /batch/ body holds one $ai_trace and its $ai_span, linked and in the session."""
        hogtrace.configure(clients())

        with hogtrace.session("sess-1"):
            assert "HI" == answer("hi")
        hogtrace.flush(timeout=10)

        [request] = capture_server.requests
        assert "/batch/" == request["path"]
        assert "phc_test" == request["json"]["api_key"]
        events = by_name(request["json"]["batch"])
        root, child = events["answer"], events["retrieve"]
        trace_id = root["properties"]["$ai_trace_id"]
        assert ("$ai_trace", "$ai_span") == (root["event"], child["event"])
        assert trace_id == root["properties"]["$ai_span_id"]
        assert "$ai_parent_id" not in root["properties"]
        assert trace_id == child["properties"]["$ai_trace_id"]
        assert trace_id == child["properties"]["$ai_parent_id"]
        assert trace_id != child["properties"]["$ai_span_id"]
        for event in (root, child):
            props = event["properties"]
            assert "sess-1" == props["$ai_session_id"]
            assert "hogtrace" == props["$ai_lib"]
            assert hogtrace.__version__ == props["$ai_lib_version"]
            assert "sess-1" == event["distinct_id"]  # personless: one person per conversation
            assert props["$process_person_profile"] is False
            assert isinstance(props["$ai_latency"], float)
        assert {"question": "hi"} == root["properties"]["$ai_input_state"]
        assert "HI" == root["properties"]["$ai_output_state"]
        assert ["doc-1"] == child["properties"]["$ai_output_state"]

    def test_children_arrive_before_parents(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Events reach the client in the order scopes exit: children first."""
        hogtrace.configure(clients())

        answer("hi")
        hogtrace.flush(timeout=10)

        assert ["retrieve", "answer"] == [
            e["properties"]["$ai_span_name"] for e in capture_server.events
        ]

    def test_timestamp_is_the_scope_exit_time(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Each event's timestamp is the time its scope exited, not the time it was sent."""
        hogtrace.configure(clients())

        with hogtrace.trace("outer") as outer, hogtrace.span("inner") as inner:
            pass
        hogtrace.flush(timeout=10)

        events = by_name(capture_server.events)
        assert inner.timestamp is not None
        assert outer.timestamp is not None
        assert inner.timestamp == datetime.datetime.fromisoformat(events["inner"]["timestamp"])
        assert outer.timestamp == datetime.datetime.fromisoformat(events["outer"]["timestamp"])
        assert inner.timestamp <= outer.timestamp

    def test_generation_carries_model_and_usage(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A generation arrives as $ai_generation with its model and token counts."""
        hogtrace.configure(clients(), distinct_id="user-1")

        with hogtrace.trace("chat"), hogtrace.generation("llm", model="gpt-x") as g:
            g.set_usage(input_tokens=3, output_tokens=5)
        hogtrace.flush(timeout=10)

        generation = by_name(capture_server.events)["llm"]
        assert "$ai_generation" == generation["event"]
        assert "user-1" == generation["distinct_id"]
        assert "gpt-x" == generation["properties"]["$ai_model"]
        assert (3, 5) == (
            generation["properties"]["$ai_input_tokens"],
            generation["properties"]["$ai_output_tokens"],
        )

    def test_capture_v1_works_unchanged(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """With capture_mode="v1" the same events go to /i/v1/analytics/events."""
        hogtrace.configure(clients(capture_mode="v1"))

        with hogtrace.session("sess-v1"):
            answer("hi")
        hogtrace.flush(timeout=10)

        [request] = capture_server.requests
        assert "/i/v1/analytics/events" == request["path"]
        assert "Bearer phc_test" == request["headers"]["Authorization"]
        events = by_name(request["json"]["batch"])
        assert {"$ai_trace", "$ai_span"} == {e["event"] for e in events.values()}
        trace_id = events["answer"]["properties"]["$ai_trace_id"]
        assert trace_id == events["retrieve"]["properties"]["$ai_parent_id"]
        assert {"sess-v1"} == {e["properties"]["$ai_session_id"] for e in events.values()}

    def test_capture_runs_off_the_calling_thread(self, clients: Clients) -> None:
        """client.capture() is called by the delivery worker, never by the traced code."""
        client = clients()
        threads: list[threading.Thread] = []
        real_capture = client.capture

        def capture(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread())
            return real_capture(*args, **kwargs)

        client.capture = capture
        hogtrace.configure(client)

        answer("hi")
        hogtrace.flush(timeout=10)

        assert 2 == len(threads)
        assert threading.current_thread() not in threads

    def test_calls_return_while_a_blocking_client_is_held(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A client that blocks in capture() (sync_mode, server held) never holds up the call."""
        hogtrace.configure(clients(sync_mode=True))
        capture_server.gate.clear()

        assert "HI" == answer("hi")
        capture_server.wait_for_attempts(1)
        results = [answer(f"q{i}") for i in range(3)]

        # The server is still holding the first request: nothing has been answered yet.
        assert [] == capture_server.requests
        assert ["Q0", "Q1", "Q2"] == results
        capture_server.gate.set()
        hogtrace.flush(timeout=10)
        assert 8 == len(capture_server.events)

    def test_unreachable_endpoint_never_raises(self, clients: Clients) -> None:
        """With nothing listening, traced calls and flush() return normally."""
        hogtrace.configure(clients(host=closed_port_url(), max_retries=0))

        assert "HI" == answer("hi")
        hogtrace.flush(timeout=5)

        assert {"emitted": 2, "dropped": 0, "failed": 0, "undelivered": 0} == hogtrace.stats()

    def test_disabled_client_is_not_called(self, clients: Clients) -> None:
        """Events for a disabled client are skipped before the client spends time on them."""
        client = clients(disabled=True)
        calls: list[str] = []
        client.capture = lambda event, **kwargs: calls.append(event)
        hogtrace.configure(client)

        answer("hi")
        hogtrace.flush(timeout=10)

        assert [] == calls


class TestPostHogSinkQueue:
    def test_full_queue_drops_counts_and_warns_once(
        self,
        capture_server: CaptureServer,
        clients: Clients,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Past max_queue, emit() drops and counts without blocking, with one warning."""
        sink = PostHogSink(clients(sync_mode=True), max_queue=3)
        capture_server.gate.clear()
        sink.emit(closed_scope("first"), _state.state.config)
        capture_server.wait_for_attempts(1)  # the worker is blocked sending "first"

        for _ in range(10):
            sink.emit(closed_scope(), _state.state.config)

        assert 7 == hogtrace.stats()["dropped"]
        assert 1 == sum("dropping events" in r.getMessage() for r in caplog.records)
        capture_server.gate.set()
        sink.flush(timeout=10)
        sink.shutdown()
        assert 4 == len(capture_server.events)

    def test_max_queue_defaults_to_module_constant(
        self, monkeypatch: pytest.MonkeyPatch, clients: Clients
    ) -> None:
        """A sink built without max_queue reads MAX_QUEUE when it is made."""
        monkeypatch.setattr(_sinks, "MAX_QUEUE", 7)

        sink = PostHogSink(clients())

        assert 7 == sink._max_queue
        sink.shutdown()

    def test_flush_waits_for_queued_events(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """flush() returns once everything queued before it reached the server."""
        sink = PostHogSink(clients())
        for _ in range(50):
            sink.emit(closed_scope(), _state.state.config)

        sink.flush(timeout=10)

        assert 50 == len(capture_server.events)
        sink.shutdown()

    def test_flush_timeout_returns_while_worker_is_blocked(
        self,
        capture_server: CaptureServer,
        clients: Clients,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """flush(timeout) gives up on a worker stuck in capture(), and a later flush delivers."""
        sink = PostHogSink(clients(sync_mode=True))
        capture_server.gate.clear()
        for _ in range(3):
            sink.emit(closed_scope(), _state.state.config)
        capture_server.wait_for_attempts(1)

        sink.flush(timeout=0.2)

        assert [] == capture_server.requests  # returned while the server still held it
        assert 1 == sum("flush timed out" in r.getMessage() for r in caplog.records)
        capture_server.gate.set()
        sink.flush(timeout=10)
        assert 3 == len(capture_server.events)
        sink.shutdown()

    def test_flush_inside_capture_does_not_wait_on_itself(
        self, clients: Clients, caplog: pytest.LogCaptureFixture
    ) -> None:
        """hogtrace.flush() from a before_send hook (on the worker) returns at once."""
        flushed = threading.Event()

        def before_send(msg: dict[str, Any]) -> dict[str, Any]:
            hogtrace.flush(timeout=5)
            flushed.set()
            return msg

        hogtrace.configure(clients(before_send=before_send))

        answer("hi")
        hogtrace.flush(timeout=10)

        assert flushed.is_set()
        assert not any("flush timed out" in r.getMessage() for r in caplog.records)

    @pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
    def test_worker_that_dies_is_replaced(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """If the worker thread dies, flush() and emit() start a new one; nothing hangs."""
        sink = PostHogSink(clients())
        deliver = sink._deliver_all
        died = threading.Event()

        def die_once(batch: Any) -> None:
            if not died.is_set():
                died.set()
                raise RuntimeError("worker killed")
            deliver(batch)

        sink._deliver_all = die_once  # type: ignore[method-assign]
        sink.emit(closed_scope("lost"), _state.state.config)
        dead = sink._thread
        sink.flush(timeout=10)
        assert dead is not None
        # Its exception reaches threading.excepthook (pytest's) before join() returns: reported
        # in this test (where the warning is filtered), not in the next one's teardown.
        dead.join(10)
        sink.emit(closed_scope("kept"), _state.state.config)
        sink.flush(timeout=10)

        assert died.is_set()
        assert ["kept"] == [e["properties"]["$ai_span_name"] for e in capture_server.events]
        sink.shutdown()

    def test_queued_scopes_are_delivered_in_order_around_a_failure(
        self, capture_server: CaptureServer, clients: Clients, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The worker takes what is queued together: built in order, then captured in order.

        One that fails to build is counted and the others still go, each once.
        """
        sink = PostHogSink(clients())
        config = _state.state.config
        scopes = [closed_scope(f"s{i}") for i in range(100)]
        real = _sinks.build_event

        def build(scope: Any, *args: Any) -> Any:
            if scope.name == "s37":
                raise RuntimeError("broken")
            return real(scope, *args)

        monkeypatch.setattr(_sinks, "build_event", build)
        monkeypatch.setattr(_errors, "STRICT", False)  # as in production: logged, counted
        before = hogtrace.stats()["failed"]
        for scope in scopes:  # queued faster than the worker takes them: batches
            sink.emit(scope, config)
        sink.flush(timeout=10)
        names = [e["properties"]["$ai_span_name"] for e in capture_server.events]
        assert [f"s{i}" for i in range(100) if i != 37] == names
        assert before + 1 == hogtrace.stats()["failed"]
        sink.shutdown()

    def test_shutdown_delivers_queued_events_then_stops(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """shutdown() hands every queued event to the client; later emits are dropped."""
        client = clients()
        sink = PostHogSink(client)
        for _ in range(20):
            sink.emit(closed_scope(), _state.state.config)

        sink.shutdown()
        sink.emit(closed_scope(), _state.state.config)
        client.flush()

        assert 20 == len(capture_server.events)
        assert 1 == hogtrace.stats()["dropped"]

    def test_shutdown_is_idempotent(self, clients: Clients) -> None:
        """A second shutdown() is a no-op."""
        sink = PostHogSink(clients())
        sink.emit(closed_scope(), _state.state.config)

        sink.shutdown()
        sink.shutdown()

        assert sink._thread is None

    def test_shutdown_drops_what_a_blocked_client_never_takes(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capture_server: CaptureServer,
        clients: Clients,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """shutdown() waits a bounded time for a stuck worker, then drops and counts the rest."""
        sink = PostHogSink(clients(sync_mode=True))
        capture_server.gate.clear()
        for _ in range(5):
            sink.emit(closed_scope(), _state.state.config)
        capture_server.wait_for_attempts(1)
        worker = sink._thread
        assert worker is not None

        sink.shutdown(0.2)

        assert [] == capture_server.requests  # returned while the server still held one
        # Counted and logged when shutdown() returns, the stop marker not among them.
        assert 4 == hogtrace.stats()["dropped"]
        assert any("4 queued events were not handed" in r.getMessage() for r in caplog.records)
        capture_server.gate.set()
        worker.join(10)
        assert not worker.is_alive()
        assert 4 == hogtrace.stats()["dropped"]
        assert 1 == len(capture_server.events)

    def test_shutdown_counts_what_the_worker_built_but_could_not_hand_over(
        self, capture_server: CaptureServer, clients: Clients, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Five scopes the worker takes together, the client stuck on the first: four dropped.

        They are off the queue, built, waiting their turn: counted and logged when shutdown()
        gives up, each once (the worker, coming back, skips them).
        """
        sink = PostHogSink(clients(sync_mode=True))
        config = _state.state.config
        capture_server.gate.clear()
        sink._queue.items.extend((closed_scope(), config) for _ in range(4))
        sink.emit(closed_scope(), config)  # starts the worker: it takes all five at once
        capture_server.wait_for_attempts(1)
        worker = sink._thread
        assert worker is not None

        sink.shutdown(0.2)

        assert 4 == hogtrace.stats()["dropped"]
        assert any("4 queued events were not handed" in r.getMessage() for r in caplog.records)
        capture_server.gate.set()
        worker.join(10)
        assert 4 == hogtrace.stats()["dropped"]
        assert 1 == len(capture_server.events)

    def test_a_pool_worker_waits_for_one_trace_at_most_while_posthog_is_down(
        self, capture_server: CaptureServer, clients: Clients, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A Pool worker delivers each trace as it ends; when PostHog does not answer in time,
        the next traces are not waited for (an outage costs a worker one wait, not one per
        task), and they are still delivered later."""
        sink = PostHogSink(clients())
        sink._child_checked = True  # as _check_child() finds it in a Pool worker
        sink._in_child = sink._in_pool_worker = True
        flushes: list[float | None] = []
        flush = sink.flush
        monkeypatch.setattr(
            sink, "flush", lambda timeout=None: flushes.append(timeout) or flush(timeout)
        )
        config = _state.state.config

        sink.emit(closed_scope("up"), config)
        capture_server.gate.clear()  # PostHog stops answering
        for _ in range(5):
            sink.emit(closed_scope("down"), config)
        waited = len(flushes)
        capture_server.gate.set()
        flush(10)

        assert [_sinks.CHILD_FLUSH_TIMEOUT] * 2 == flushes[:waited]  # "up", then the first "down"
        assert 6 == len(capture_server.events)

    def test_the_first_event_runs_nothing_of_the_clients_on_the_calling_thread(
        self, clients: Clients, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """posthog's system context runs ``lsb_release`` under a lock that a fork at that
        moment leaves held in the child: hogtrace never computes it on the calling thread
        (the client does, in hogtrace's worker)."""
        threads: list[str] = []
        real = posthog.utils.system_context

        def spy() -> Any:
            threads.append(threading.current_thread().name)
            return real()

        monkeypatch.setattr(posthog.utils, "system_context", spy)
        monkeypatch.setattr(posthog.client, "system_context", spy, raising=False)
        hogtrace.configure(clients())
        with hogtrace.span("first"):
            pass
        hogtrace.flush(timeout=10)

        assert threading.current_thread().name not in threads
        assert threads  # the client did compute it, in the worker

    def test_full_client_queue_moves_overflow_here(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capture_server: CaptureServer,
        clients: Clients,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """While the client's own queue is full, events wait here, and overflow is counted."""
        monkeypatch.setattr(_sinks, "MAX_QUEUE", 5)
        hogtrace.configure(clients(max_queue_size=2, flush_at=1))
        capture_server.gate.clear()
        with hogtrace.span("first"):
            pass
        capture_server.wait_for_attempts(1)  # the client's consumer is held on "first"

        for _ in range(30):
            with hogtrace.span("more"):
                pass

        dropped = hogtrace.stats()["dropped"]
        assert dropped >= 30 - (2 + 5 + 1)  # client queue + our queue + the one in hand
        posthog_warnings = [r for r in caplog.records if r.name == "posthog"]
        assert [] == [r.getMessage() for r in posthog_warnings if "full" in r.getMessage()]
        capture_server.gate.set()
        hogtrace.flush(timeout=10)
        assert 31 - dropped == len(capture_server.events)

    def test_closed_client_counts_undelivered(
        self, clients: Clients, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Events a client the user shut down refuses are counted as undelivered, one warning."""
        client = clients()
        hogtrace.configure(client)
        client.shutdown()

        for _ in range(3):
            answer("hi")
        hogtrace.flush(timeout=10)

        assert (6, 0) == (hogtrace.stats()["undelivered"], hogtrace.stats()["dropped"])
        hogtrace_warnings = [r for r in caplog.records if r.name == "hogtrace"]
        assert 1 == sum("did not accept" in r.getMessage() for r in hogtrace_warnings)

    def test_fork_handler_gives_a_fresh_queue_and_worker(self, clients: Clients) -> None:
        """After a fork the sink forgets the parent's queue and worker (started on next emit)."""
        sink = PostHogSink(clients(sync_mode=True))
        sink.emit(closed_scope(), _state.state.config)
        sink.flush(timeout=10)
        old_queue = sink._queue

        _sinks._after_fork_in_child()

        assert sink._thread is None
        assert sink._queue is not old_queue
        sink.shutdown()

    def test_queueing_fault_is_counted_not_raised(
        self, clients: Clients, lenient: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failure while queueing is logged once and counted; the call is unaffected."""

        class BrokenQueue:
            def qsize(self) -> int:
                return 0

            def put(self, item: Any) -> None:
                raise RuntimeError("queue broke")

        hogtrace.configure(clients())
        sink = _state.state.destination()
        assert isinstance(sink, PostHogSink)
        working = sink._queue
        sink._queue = BrokenQueue()  # type: ignore[assignment]
        try:
            assert ["HI", "HI"] == [answer("hi"), answer("hi")]
        finally:
            sink._queue = working

        assert 4 == hogtrace.stats()["failed"]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert 1 == len(errors)
        assert "queueing an event" in errors[0].getMessage()


class TestConsoleSink:
    def test_prints_each_finished_trace_as_a_tree(self) -> None:
        """A trace is printed once, when its root closes, with its children below it."""
        stream = io.StringIO()
        sink = ConsoleSink(stream)
        with (
            hogtrace.testing.capture_events(),
            hogtrace.trace("root") as root,
            hogtrace.span("child") as child,
        ):
            pass

        sink.emit(child, _state.state.config)
        printed_before_root = stream.getvalue()
        sink.emit(root, _state.state.config)

        text = stream.getvalue()
        assert "" == printed_before_root
        assert text.index("root") < text.index("child")
        assert 1 == text.count("child")

    def test_flush_prints_unfinished_traces(self) -> None:
        """flush() prints what it holds for traces whose root has not closed."""
        stream = io.StringIO()
        sink = ConsoleSink(stream)
        with (
            hogtrace.testing.capture_events(),
            hogtrace.trace("root"),
            hogtrace.span("child") as child,
        ):
            pass
        sink.emit(child, _state.state.config)
        assert "" == stream.getvalue()

        sink.flush()

        assert "child" in stream.getvalue()

    def test_broken_stream_is_counted_not_raised(self, lenient: None) -> None:
        """A stream that cannot be written to costs the trace, not the call."""

        class Closed(io.StringIO):
            def write(self, text: str) -> int:
                raise ValueError("I/O operation on closed file")

        sink = ConsoleSink(Closed())

        sink.emit(closed_scope(), _state.state.config)

        assert 1 == hogtrace.stats()["failed"]


class TestDropSink:
    def test_counts_and_warns_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """Every event is counted as dropped; the warning is logged once."""
        sink = DropSink()

        for _ in range(3):
            sink.emit(closed_scope(), _state.state.config)

        assert 3 == hogtrace.stats()["dropped"]
        assert 1 == sum("no PostHog client" in r.getMessage() for r in caplog.records)

    def test_silent_drop_sink_does_not_warn(self, caplog: pytest.LogCaptureFixture) -> None:
        """DropSink(silent=True) counts without a warning."""
        DropSink(silent=True).emit(closed_scope(), _state.state.config)

        assert [] == caplog.records
        assert 1 == hogtrace.stats()["dropped"]


class TestFanoutSink:
    def test_every_sink_gets_every_event(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A PostHog sink and a console sink both receive the trace."""
        stream = io.StringIO()
        posthog_sink = PostHogSink(clients())
        sink = FanoutSink([posthog_sink, ConsoleSink(stream)])

        sink.emit(closed_scope("both"), _state.state.config)
        sink.flush(timeout=10)
        sink.shutdown()

        assert ["both"] == [e["properties"]["$ai_span_name"] for e in capture_server.events]
        assert "both" in stream.getvalue()
