"""Celery: a session survives the queue (``hogtrace.celery``), with a real app and worker."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

celery = pytest.importorskip("celery")

from celery import Celery, signals  # noqa: E402
from celery.contrib.testing.worker import start_worker  # noqa: E402

import hogtrace  # noqa: E402
import hogtrace.celery  # noqa: E402
from hogtrace.testing import capture_events  # noqa: E402
from tests.capture_server import CaptureServer, Clients  # noqa: E402

TIMEOUT = 20


def make_app(name: str) -> Celery:
    app = Celery(name, broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        broker_transport_options={"polling_interval": 0.01},  # the memory broker polls
        task_default_queue=name,
    )
    return app


app = make_app("hogtrace-tests")


@app.task(name="add")
def add(x: int, y: int) -> int:
    with hogtrace.span("sum"):
        return x + y


@app.task(name="fail")
def fail() -> None:
    raise ValueError("boom")


@app.task(name="flaky", bind=True, max_retries=3, default_retry_delay=0)
def flaky(self: Any, failures: int) -> str:
    if self.request.retries < failures:
        raise self.retry(exc=ValueError(f"attempt {self.request.retries} failed"), countdown=0)
    return "ok"


started = threading.Event()
release = threading.Event()


@app.task(name="block")
def block() -> None:
    started.set()
    assert release.wait(TIMEOUT)


@app.task(name="fan_out")
def fan_out() -> None:
    add.delay(1, 1)


def outcome(result: Any) -> Any:
    """The task's result (or exception), polling the result backend every 10 ms."""
    return result.get(timeout=TIMEOUT, interval=0.01)


class Postruns:
    """Counts finished tasks, so a test can wait for the worker's events without sleeping.

    Connected after ``hogtrace.celery.instrument()``, so its ``task_postrun`` handler runs after
    hogtrace's, which has emitted the task's event by then.
    """

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self, **_: Any) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= n, timeout=TIMEOUT), self.count


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    """A real Celery worker (a thread of this process) consuming ``app``'s queue."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    hogtrace.celery.instrument()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=TIMEOUT):
            yield
    finally:
        hogtrace.celery.uninstrument()
        # The worker sets up logging (root at ERROR, a stderr handler): give the others theirs.
        root.setLevel(level)
        root.handlers[:] = handlers


@pytest.fixture
def postruns(worker: None) -> Iterator[Postruns]:
    hogtrace.celery.instrument()  # a test may have changed the options: back to the defaults
    counter = Postruns()
    signals.task_postrun.connect(counter, weak=False, dispatch_uid="tests.postruns")
    yield counter
    signals.task_postrun.disconnect(dispatch_uid="tests.postruns")
    hogtrace.celery.instrument()


class TestAcrossTheQueue:
    def test_task_is_a_child_of_the_sending_span(self, postruns: Postruns) -> None:
        """A task sent inside a span runs in the worker as that span's child, in its trace."""
        with capture_events() as events:
            with (
                hogtrace.session("conv-1"),
                hogtrace.trace("request"),
                hogtrace.span("enqueue") as enqueue,
            ):
                result = add.delay(2, 3)
            assert 5 == outcome(result)
            postruns.wait(1)

        task = events.one(name="add")
        assert (
            "request [trace, session conv-1]\n└── enqueue [span]\n    └── add [span]\n"
            "        └── sum [span]"
        ) == events.tree()
        assert (enqueue.trace_id, enqueue.id) == (task.trace_id, task.parent_id)
        assert "$ai_span" == task.event

    def test_session_and_distinct_id_cross_the_queue(self, postruns: Postruns) -> None:
        """The worker's events carry the sender's session id and distinct id."""
        with capture_events() as events:
            with hogtrace.session("conv-2", distinct_id="user-7"), hogtrace.trace("request"):
                result = add.delay(1, 2)
            outcome(result)
            postruns.wait(1)

        worker_events = [events.one(name="add"), events.one(name="sum")]
        assert [("conv-2", "user-7")] * 2 == [(e.session_id, e.distinct_id) for e in worker_events]

    def test_task_records_its_arguments_result_and_id(self, postruns: Postruns) -> None:
        """The task's event has its args and kwargs as input, its result as output, its id."""
        with capture_events() as events:
            with hogtrace.trace("request"):
                result = add.apply_async(args=(2,), kwargs={"y": 40})
            assert 42 == outcome(result)
            postruns.wait(1)

        task = events.one(name="add")
        assert ({"args": [2], "kwargs": {"y": 40}}, 42) == (task.input, task.output)
        assert (result.id, 0, "SUCCESS") == (
            task.properties["celery_task_id"],
            task.properties["celery_retries"],
            task.properties["celery_state"],
        )

    def test_task_sent_outside_any_scope_is_its_own_trace(self, postruns: Postruns) -> None:
        """Work the worker does outside any sent context is a trace of its own."""
        with capture_events() as events:
            outcome(add.delay(1, 1))
            postruns.wait(1)

        task = events.one(name="add")
        assert ("$ai_trace", None, None) == (task.event, task.parent_id, task.session_id)
        assert "add [trace]\n└── sum [span]" == events.tree()

    def test_consecutive_tasks_do_not_leak_into_each_other(self, postruns: Postruns) -> None:
        """Each task closes its scope: the next one is in its own sender's trace, or its own."""
        with capture_events() as events:
            with hogtrace.trace("first") as first:
                outcome(add.delay(1, 1))
            with hogtrace.trace("second") as second:
                outcome(add.delay(2, 2))
            outcome(add.delay(3, 3))
            postruns.wait(3)

        tasks = events.named("add")
        assert [first.trace_id, second.trace_id] == [t.trace_id for t in tasks[:2]]
        assert ["$ai_span", "$ai_span", "$ai_trace"] == [t.event for t in tasks]
        assert tasks[2].trace_id not in (first.trace_id, second.trace_id)
        assert [] == events.open_scopes()

    def test_task_sent_from_a_task_nests_under_it(self, postruns: Postruns) -> None:
        """A task the worker sends from inside a task is that task's child, same trace."""
        with capture_events() as events:
            with hogtrace.trace("request"):
                outcome(fan_out.delay())
            postruns.wait(2)

        expected = "request [trace]\n└── fan_out [span]\n    └── add [span]\n        └── sum [span]"
        assert expected == events.tree()

    def test_sampling_decision_crosses_the_queue(self, postruns: Postruns) -> None:
        """A task sent from a trace that sampling dropped is dropped in the worker too."""
        started.clear()
        release.clear()
        with capture_events() as events:
            busy = block.delay()  # holds the (solo) worker until the sample rate is back at 1
            assert started.wait(TIMEOUT)
            hogtrace.configure(sample_rate=0.0)
            with hogtrace.trace("dropped"):
                dropped = add.delay(1, 1)
            hogtrace.configure(sample_rate=1.0)
            with hogtrace.trace("kept") as kept_trace:
                kept = add.delay(2, 2)  # the control: the same task from a kept trace
            release.set()
            assert (None, 2, 4) == tuple(outcome(r) for r in (busy, dropped, kept))
            postruns.wait(3)

        assert ["block", "kept"] == sorted(e.name for e in events.traces)
        assert [kept_trace.trace_id] == [e.trace_id for e in events.named("add")]


class TestFailuresAndRetries:
    def test_failing_task_emits_an_error_event(self, postruns: Postruns) -> None:
        """A task that raises emits its event with the exception as the error."""
        with capture_events() as events:
            with hogtrace.trace("request"):
                result = fail.delay()
            with pytest.raises(ValueError, match="boom"):
                outcome(result)
            postruns.wait(1)

        task = events.one(name="fail")
        assert (True, "ValueError: boom") == (task.is_error, task.error)
        assert "FAILURE" == task.properties["celery_state"]

    def test_retries_keep_the_trace_each_attempt_a_span(self, postruns: Postruns) -> None:
        """Each attempt is a span under the sender; the retried ones carry their error."""
        with capture_events() as events:
            with hogtrace.trace("request") as request:
                result = flaky.delay(2)
            assert "ok" == outcome(result)
            postruns.wait(3)

        attempts = events.named("flaky")
        assert [request.id] * 3 == [a.parent_id for a in attempts]
        assert [request.trace_id] * 3 == [a.trace_id for a in attempts]
        assert [0, 1, 2] == [a.properties["celery_retries"] for a in attempts]
        assert [
            "ValueError: attempt 0 failed",
            "ValueError: attempt 1 failed",
            None,
        ] == [a.error for a in attempts]
        assert ["RETRY", "RETRY", "SUCCESS"] == [a.properties["celery_state"] for a in attempts]

    def test_retries_of_a_task_sent_outside_a_scope_stay_in_its_trace(
        self, postruns: Postruns
    ) -> None:
        """With no sender scope, the first attempt is the trace and later ones its children."""
        with capture_events() as events:
            assert "ok" == outcome(flaky.delay(2))
            postruns.wait(3)

        assert (
            "flaky [trace] ✗ ValueError: attempt 0 failed\n"
            "├── flaky [span] ✗ ValueError: attempt 1 failed\n"
            "└── flaky [span]"
        ) == events.tree()

    @pytest.mark.parametrize("how", ["session only", "the user's own baggage"])
    def test_retries_sent_with_baggage_but_no_trace_stay_in_one_trace(
        self, postruns: Postruns, how: str
    ) -> None:
        """A message that carried no trace (only a session, or baggage of the user's) makes the
        first attempt the trace; later attempts are its children (they were traces of their
        own)."""
        with capture_events() as events:
            if how == "session only":
                with hogtrace.session("s1"):
                    result = flaky.delay(2)
            else:
                result = flaky.apply_async(args=(2,), headers={"baggage": "tenant=acme"})
            assert "ok" == outcome(result)
            postruns.wait(3)

        session = ", session s1" if how == "session only" else ""
        assert (
            f"flaky [trace{session}] ✗ ValueError: attempt 0 failed\n"
            "├── flaky [span] ✗ ValueError: attempt 1 failed\n"
            "└── flaky [span]"
        ) == events.tree()


class TestSetup:
    def test_instrument_is_idempotent(self, postruns: Postruns) -> None:
        """Calling ``instrument()`` again connects nothing twice: one event per task."""
        hogtrace.celery.instrument()
        hogtrace.celery.instrument()

        with capture_events() as events:
            with hogtrace.trace("request"):
                outcome(add.delay(1, 1))
            postruns.wait(1)

        assert 1 == len(events.named("add"))

    def test_uninstrument_stops_tracing_tasks(self, postruns: Postruns) -> None:
        """After ``uninstrument()``, messages carry no trace headers and tasks emit nothing."""
        published: list[dict[str, Any]] = []

        def spy(headers: dict[str, Any], **_: Any) -> None:
            published.append(dict(headers))

        signals.before_task_publish.connect(spy, weak=False, dispatch_uid="tests.spy")
        hogtrace.celery.uninstrument()
        try:
            with capture_events() as events:
                with hogtrace.trace("request"):
                    outcome(add.delay(1, 1))
                postruns.wait(1)
        finally:
            signals.before_task_publish.disconnect(dispatch_uid="tests.spy")

        assert (False, False) == (hogtrace.celery.is_instrumented(), "traceparent" in published[0])
        assert [] == events.named("add")
        assert "$ai_trace" == events.one(name="sum").event  # the task body, on its own

    def test_app_filter_leaves_other_apps_untraced(self, postruns: Postruns) -> None:
        """``instrument(app=other)`` traces only ``other``'s tasks, not this app's."""
        hogtrace.celery.instrument(app=make_app("someone-else"))

        with capture_events() as events:
            outcome(add.delay(1, 1))
            postruns.wait(1)

        assert [] == events.named("add")

    def test_options_name_and_capture(self, postruns: Postruns) -> None:
        """``name=`` names the scope from the task; capture can be turned off."""
        hogtrace.celery.instrument(
            name=lambda task: f"task:{task.name}", capture_input=False, capture_output=False
        )

        with capture_events() as events:
            outcome(add.delay(1, 1))
            postruns.wait(1)

        task = events.one(name="task:add")
        assert (None, None) == (task.input, task.output)

    def test_eager_apply_in_a_scope_is_its_child(self, worker: None) -> None:
        """``task.apply()`` runs in the caller's thread: still one tree, signature unchanged."""
        with capture_events() as events, hogtrace.trace("request"):
            assert 3 == add.apply(args=(1, 2)).get()

        assert "request [trace]\n└── add [span]\n    └── sum [span]" == events.tree()
        assert 3 == add(1, 2)  # a plain call is a plain call


class TestPoolChildExit:
    def test_a_pool_child_delivers_before_it_exits(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A prefork child recycled by ``worker_max_tasks_per_child`` leaves through
        ``os._exit`` after Celery's ``worker_process_shutdown``: the events of its last task
        (emitted after the task body, at postrun) are delivered then."""
        hogtrace.configure(clients(flush_interval=60))  # nothing leaves on its own
        was_instrumented = hogtrace.celery.is_instrumented()
        hogtrace.celery.instrument()
        try:
            with hogtrace.trace("last task"):
                pass
            signals.worker_process_shutdown.send(sender=None, pid=1234, exitcode=0)
        finally:
            if not was_instrumented:
                hogtrace.celery.uninstrument()

        assert ["$ai_trace"] == [e["event"] for e in capture_server.events]


class TestEager:
    def test_an_exception_propagated_to_the_caller_is_recorded(self, postruns: Postruns) -> None:
        """``apply(throw=True)`` (or ``task_eager_propagates``): Celery re-raises before its
        failure signal, and its postrun has no state: the error is read from the exception."""
        with (
            capture_events() as events,
            hogtrace.trace("request"),
            pytest.raises(ValueError, match="boom"),
        ):
            fail.apply(throw=True)

        task = events.one(name="fail")
        assert ("ValueError: boom", "FAILURE") == (task.error, task.properties["celery_state"])

    def test_an_eager_retry_nests_the_next_attempt_in_the_first(self, postruns: Postruns) -> None:
        """Applied eagerly, a retry runs the next attempt inside the first: each is its own span
        with its own outcome (the second replaced the first, closed before its retry)."""
        with capture_events() as events, hogtrace.trace("request"):
            assert "ok" == flaky.apply(args=(1,)).get()

        attempts = sorted(events.named("flaky"), key=lambda e: e.properties["celery_retries"])
        assert [("RETRY", "ValueError: attempt 0 failed"), ("SUCCESS", None)] == [
            (e.properties["celery_state"], e.error) for e in attempts
        ]


threads_app = make_app("hogtrace-threads")


@threads_app.task(name="flaky_threads", bind=True, max_retries=1, default_retry_delay=0)
def flaky_threads(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("attempt 0 failed"), countdown=0)
    with hogtrace.span("work"):
        return "ok"


class TestThreadPool:
    def test_a_retry_that_starts_before_its_first_attempt_ends(self) -> None:
        """In a thread pool the retry (same task id) can start in another thread while the
        first attempt is still in its retry handlers: each attempt keeps its own scope."""
        second_started = threading.Event()

        def hold_first_attempt(request: Any = None, **_: Any) -> None:  # after hogtrace's
            assert second_started.wait(TIMEOUT)

        def note_second(task: Any = None, **_: Any) -> None:
            if task.name == "flaky_threads" and task.request.retries == 1:
                second_started.set()

        counter = Postruns()
        hogtrace.celery.instrument(threads_app)
        signals.task_retry.connect(hold_first_attempt, weak=False, dispatch_uid="tests.hold")
        signals.task_prerun.connect(note_second, weak=False, dispatch_uid="tests.note")
        signals.task_postrun.connect(counter, weak=False, dispatch_uid="tests.count")
        try:
            with (
                start_worker(
                    threads_app,
                    pool="threads",
                    concurrency=2,
                    perform_ping_check=False,
                    shutdown_timeout=TIMEOUT,
                ),
                capture_events() as events,
            ):
                with hogtrace.trace("request"):
                    result = flaky_threads.delay()
                assert "ok" == outcome(result)
                counter.wait(2)
        finally:
            for uid in ("tests.hold", "tests.note", "tests.count"):
                for signal in (signals.task_retry, signals.task_prerun, signals.task_postrun):
                    signal.disconnect(dispatch_uid=uid)
            hogtrace.celery.uninstrument()

        assert (
            "request [trace]\n"
            "├── flaky_threads [span] ✗ ValueError: attempt 0 failed\n"
            "└── flaky_threads [span]\n"
            "    └── work [span]"
        ) == events.tree()
        first, second = sorted(
            events.named("flaky_threads"), key=lambda e: e.properties["celery_retries"]
        )
        assert ("RETRY", "SUCCESS", "ok") == (
            first.properties["celery_state"],
            second.properties["celery_state"],
            second.output,
        )
