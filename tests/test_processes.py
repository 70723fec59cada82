"""Events made in child processes reach PostHog without the child's code flushing.

``multiprocessing`` children (``Process`` and ``Pool`` workers, fork and spawn) and a plain
``os.fork()`` child deliver through the real ``posthog`` client to the local capture server.
A forked child inherits the configured client; a spawned one builds its own from
``POSTHOG_API_KEY`` / ``POSTHOG_HOST``. Every wait is bounded.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import collections
import multiprocessing
import os
import select
import signal
import warnings
from typing import Any

import pytest

import hogtrace
import hogtrace.testing
from tests.capture_server import CaptureServer, Clients

pytestmark = [
    pytest.mark.slow,
    # Python 3.12+ warns when a process with threads (the capture server's) forks.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

#: How long a test waits at most for a child process or a pool result.
BOUND = 60.0
#: Start methods available here (fork is POSIX only).
METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]
ITEMS = 10


@hogtrace.trace
def work(item: int) -> int:
    """One trace: the ``work`` root and its ``step`` span."""
    with hogtrace.span("step"):
        pass
    return item * 2


def run_work(count: int) -> None:
    """A ``Process`` target: ``count`` traces, no flush."""
    for item in range(count):
        work(item)


def traces(server: CaptureServer) -> collections.Counter[str]:
    """How many events of each span name the server received (the parent's warm-up left out)."""
    return collections.Counter(
        e["properties"]["$ai_span_name"]
        for e in server.events
        if e["properties"]["$ai_span_name"] != "warm-up"
    )


@pytest.fixture
def destination(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capture_server: CaptureServer,
    clients: Clients,
) -> Any:
    """The start method's context; its children send to the capture server.

    ``fork``: the child inherits the client configured here, before the parent traced
    anything; ``fork-warm``: after the parent traced (its sink exists at the fork); ``spawn``:
    the child builds a client from ``POSTHOG_API_KEY`` / ``POSTHOG_HOST``.
    """
    method = request.param
    for name in ("HOGTRACE_CONSOLE", "HOGTRACE_ENABLED", "POSTHOG_PROJECT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    if method == "spawn":
        monkeypatch.setenv("POSTHOG_API_KEY", "phc_test")
        monkeypatch.setenv("POSTHOG_HOST", capture_server.url)
        return multiprocessing.get_context("spawn")
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    hogtrace.configure(clients())
    if method == "fork-warm":
        with hogtrace.span("warm-up"):
            pass
        hogtrace.flush(timeout=10)
    return multiprocessing.get_context("fork")


def start_methods(**bugs: str) -> Any:
    """Run the test for each start method; ``bugs`` maps a method to its xfail reason."""
    methods = [m for m in ("fork", "fork-warm", "spawn") if m.split("-")[0] in METHODS]
    params = [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=bugs[m])) if m in bugs else m
        for m in methods
    ]
    return pytest.mark.parametrize("destination", params, indirect=True)


class TestProcess:
    @start_methods()
    def test_process_delivers_without_flush(
        self, destination: Any, capture_server: CaptureServer
    ) -> None:
        """A Process whose target traces and returns has delivered its events when it exits."""
        child = destination.Process(target=run_work, args=(3,))
        child.start()
        child.join(BOUND)

        assert 0 == child.exitcode
        assert {"work": 3, "step": 3} == traces(capture_server)


class TestPool:
    @start_methods()
    def test_pool_closed_and_joined(self, destination: Any, capture_server: CaptureServer) -> None:
        """Every trace a pool worker made arrives after close() and join()."""
        pool = destination.Pool(2)
        try:
            doubled = pool.map_async(work, range(ITEMS)).get(BOUND)
            pool.close()
            pool.join()
        finally:
            pool.terminate()

        assert [2 * i for i in range(ITEMS)] == doubled
        assert {"work": ITEMS, "step": ITEMS} == traces(capture_server)

    @start_methods()
    def test_pool_as_context_manager(self, destination: Any, capture_server: CaptureServer) -> None:
        """Every trace arrives whole though leaving the with block terminates the workers."""
        with destination.Pool(3) as pool:
            doubled = pool.map_async(work, range(ITEMS)).get(BOUND)

        events = [e for e in capture_server.events if e["properties"]["$ai_span_name"] != "warm-up"]
        roots = {e["properties"]["$ai_trace_id"] for e in events if e["event"] == "$ai_trace"}
        parents = [e["properties"]["$ai_parent_id"] for e in events if e["event"] == "$ai_span"]
        assert [2 * i for i in range(ITEMS)] == doubled
        assert {"work": ITEMS, "step": ITEMS} == traces(capture_server)
        assert ITEMS == len(roots)
        assert roots == set(parents)

    @pytest.mark.skipif("fork" not in METHODS, reason="fork start method is POSIX only")
    def test_pool_started_inside_an_open_trace(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Forked workers inherit the open trace: each worker's trace is still its own to
        deliver before ``with Pool()`` terminates it (the parent sends the outer one)."""
        hogtrace.configure(clients())
        with hogtrace.trace("batch"), multiprocessing.get_context("fork").Pool(2) as pool:
            doubled = pool.map_async(work, range(ITEMS)).get(BOUND)
        hogtrace.flush(timeout=10)

        assert [2 * i for i in range(ITEMS)] == doubled
        assert {"batch": 1, "work": ITEMS, "step": ITEMS} == traces(capture_server)


def fork_child(code: Any) -> tuple[int, int]:
    """Fork; the child runs ``code()`` and exits 0 if it returns True (else 1).

    Returns the child's pid and the read end of a pipe that reaches end-of-file when it exits.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # multi-threaded fork, 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            status = 0 if code() is True else 1
        except BaseException:
            status = 2
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def join_fork(pid: int, read_end: int, timeout: float = BOUND) -> int | None:
    """The child's exit code, or ``None`` (child killed) if it has not exited within ``timeout``."""
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        os.close(read_end)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
class TestForkWhileQueueFull:
    def test_child_delivers_once_the_server_is_released(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A child forked while the parent's client queue is full delivers its own events."""
        capture_server.gate_timeout = 2 * BOUND
        hogtrace.configure(clients(max_queue_size=2, flush_at=1))
        capture_server.gate.clear()
        with hogtrace.session("parent"):
            work(0)
        capture_server.wait_for_attempts(1)  # the parent's client is held on its first batch
        with hogtrace.session("parent"):
            for item in range(5):
                work(item)

        def child() -> bool:
            with hogtrace.session("child"):
                for item in range(3):
                    work(item)
            hogtrace.flush(timeout=BOUND / 2)
            stats = hogtrace.stats()
            return (0, 0, 0) == (stats["dropped"], stats["failed"], stats["undelivered"])

        pid, done = fork_child(child)
        capture_server.gate.set()
        exit_code = join_fork(pid, done)
        hogtrace.flush(timeout=10)

        assert 0 == exit_code
        sessions = collections.Counter(
            e["properties"]["$ai_session_id"] for e in capture_server.events
        )
        assert 6 == sessions["child"]
        assert 12 >= sessions["parent"] > 0  # the parent's overflow may have been dropped
        assert 12 == sessions["parent"] + hogtrace.stats()["dropped"]

    def test_child_does_not_wait_on_the_parents_queue(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """The child's flush reaches the server while the parent's queue is still full."""
        capture_server.gate_timeout = 2 * BOUND
        hogtrace.configure(clients(max_queue_size=2, flush_at=1))
        capture_server.gate.clear()
        work(0)
        capture_server.wait_for_attempts(1)
        for item in range(5):
            work(item)
        attempts_before = capture_server.attempts

        def child() -> bool:
            with hogtrace.session("child"):
                work(0)
            hogtrace.flush(timeout=BOUND / 2)
            return True

        pid, done = fork_child(child)
        # The child's own request reaches the server while the parent's is still held.
        reached = capture_server.wait_for_attempts(attempts_before + 1, timeout=BOUND / 2)
        capture_server.gate.set()
        exit_code = join_fork(pid, done)

        assert 0 == exit_code
        assert attempts_before + 1 <= reached
        assert 2 == sum(
            e["properties"].get("$ai_session_id") == "child" for e in capture_server.events
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
class TestForkWhileAnotherThreadTraces:
    def test_a_shared_with_object_works_in_the_child(self) -> None:
        """A spec shared between threads (``STEP = hogtrace.span("step")``, ``with STEP:``)
        guards its open scopes with a lock; held by another thread at the fork, it would be
        held forever in the child."""
        step = hogtrace.span("step")
        with step:  # the lock exists and has been used
            pass
        step._lock.acquire()  # as another thread inside ``with step:`` at the fork
        try:

            def child() -> bool:
                with hogtrace.testing.capture_events() as events, step:
                    pass
                return ["step"] == [e.name for e in events]

            pid, done = fork_child(child)
            exit_code = join_fork(pid, done, timeout=10)
        finally:
            step._lock.release()

        assert 0 == exit_code
