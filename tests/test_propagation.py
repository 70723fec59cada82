"""Carrying a trace across threads, processes and services (``hogtrace._propagation``)."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import concurrent.futures
import contextvars
import email.message
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import posthog
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hogtrace
from hogtrace import _propagation
from hogtrace._errors import RateLimit
from hogtrace._w3c import RemoteContext, decode, encode
from hogtrace.testing import capture_events
from tests.capture_server import CaptureServer

ROOT = Path(__file__).resolve().parent.parent
TRACE = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
SPAN = "00f067aa-0ba9-42b7-8c3d-1a2b3c4d5e6f"
REMOTE = encode(RemoteContext(TRACE, SPAN, session_id="conv-9", distinct_id="user-3"))


@pytest.fixture(autouse=True)
def _unthrottled() -> Iterator[None]:
    """Every test sees continue_trace's first warning (they are throttled to one a minute)."""
    _propagation._warnings = RateLimit()
    yield
    _propagation._warnings = RateLimit()


def in_fresh_context(fn: Any, *args: Any) -> Any:
    """Run ``fn`` as another process would: with no hogtrace scope open."""
    return contextvars.Context().run(fn, *args)


class TestInject:
    def test_outside_any_scope(self) -> None:
        """Outside any scope there is nothing to carry: ``{}``."""
        assert {} == hogtrace.inject()

    def test_outside_any_scope_keeps_headers(self) -> None:
        """Outside any scope, given headers come back unchanged (and are not mutated)."""
        headers = {"Accept": "application/json", "baggage": "team=a"}

        assert {"Accept": "application/json", "baggage": "team=a"} == hogtrace.inject(headers)
        assert {"Accept": "application/json", "baggage": "team=a"} == headers

    def test_carries_trace_span_session_distinct_id(self) -> None:
        """Inside a span the headers decode to its trace, itself, the session and distinct id."""
        with (
            hogtrace.session("conv-1", distinct_id="user-1"),
            hogtrace.trace("t") as trace,
            hogtrace.span("s") as span,
        ):
            headers = hogtrace.inject()

        assert {"traceparent", "baggage"} == set(headers)
        assert RemoteContext(trace.trace_id, span.id, "conv-1", "user-1", True) == decode(headers)

    def test_root_carries_itself(self) -> None:
        """Directly in the root trace the parent carried is the trace itself."""
        with hogtrace.trace("t") as trace:
            headers = hogtrace.inject()

        assert RemoteContext(trace.trace_id, trace.trace_id) == decode(headers)

    def test_updates_headers_in_place(self) -> None:
        """Given headers are updated in place: old trace headers replaced, other baggage kept."""
        headers = {
            "Content-Type": "application/json",
            "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "Baggage": "team=growth,hogtrace.session_id=stale",
        }
        with hogtrace.trace("t") as trace:
            returned = hogtrace.inject(headers)

        assert returned == headers
        assert {"Content-Type", "traceparent", "baggage"} == set(headers)
        assert "team=growth" in headers["baggage"]
        assert "stale" not in headers["baggage"]
        remote = decode(headers)
        assert remote is not None
        assert (trace.trace_id, None) == (remote.trace_id, remote.session_id)

    def test_session_without_trace(self) -> None:
        """In a session with no trace open only the session and distinct id travel."""
        with hogtrace.session("conv-1", distinct_id="user-1"):
            headers = hogtrace.inject()

        assert {"baggage": "hogtrace.session_id=conv-1,hogtrace.distinct_id=user-1"} == headers

    def test_sampling_decision(self) -> None:
        """A trace dropped by sampling says so, so the other side drops its part too."""
        hogtrace.configure(sample_rate=0.0)
        with hogtrace.trace("t"):
            headers = hogtrace.inject()

        assert headers["traceparent"].endswith("-00")
        remote = decode(headers)
        assert remote is not None
        assert remote.sampled is False


class TestContinueTrace:
    def test_outermost_scope_is_span_of_remote_trace(self) -> None:
        """The outermost scope inside is a ``$ai_span`` under the remote span, in its session."""
        with (
            capture_events() as events,
            hogtrace.continue_trace(REMOTE),
            hogtrace.span("handle") as span,
        ):
            pass

        event = events.one()
        assert "$ai_span" == event.event
        assert (TRACE, SPAN, "conv-9", "user-3") == (
            event.trace_id,
            event.parent_id,
            event.session_id,
            event.distinct_id,
        )
        assert (TRACE, SPAN) == (span.trace_id, span.parent_id)

    def test_round_trip_forms_one_tree(self) -> None:
        """inject() on one side and continue_trace() on the other give one tree."""

        @hogtrace.span("service")
        def service(headers: dict[str, str]) -> None:
            with hogtrace.generation("llm", model="m") as gen:
                gen.set_usage(input_tokens=3, output_tokens=2)

        def handle(headers: dict[str, str]) -> None:
            with hogtrace.continue_trace(headers):
                service(headers)

        with (
            capture_events() as events,
            hogtrace.session("conv-1"),
            hogtrace.trace("client") as trace,
            hogtrace.span("call") as call,
        ):
            in_fresh_context(handle, hogtrace.inject())

        remote = events.one(name="service")
        assert (trace.trace_id, call.id) == (remote.trace_id, remote.parent_id)
        assert {"conv-1"} == {e.session_id for e in events}
        assert 1 == len(events.traces)
        assert "client" in events.tree().splitlines()[0]

    async def test_async_with(self) -> None:
        """``async with continue_trace(...)`` works like ``with``."""
        with capture_events() as events:
            async with hogtrace.continue_trace(REMOTE), hogtrace.span("handle"):
                pass

        assert (TRACE, SPAN) == (events.one().trace_id, events.one().parent_id)

    def test_decorator_with_headers_callable(self) -> None:
        """As a decorator, a callable receives the function's arguments and returns headers."""

        class Request:
            def __init__(self, headers: dict[str, str]) -> None:
                self.headers = headers

        @hogtrace.continue_trace(lambda request, **_: request.headers)
        @hogtrace.span("handle")
        def handle(request: Request, *, verbose: bool = False) -> str:
            return "ok"

        with capture_events() as events:
            result = handle(Request(REMOTE), verbose=True)

        assert "ok" == result
        assert (TRACE, SPAN, "handle") == (
            events.one().trace_id,
            events.one().parent_id,
            events.one().name,
        )

    def test_decorator_on_method(self) -> None:
        """On a method, the headers callable receives ``self`` too."""

        class Service:
            headers = REMOTE

            @hogtrace.continue_trace(lambda self, question: self.headers)
            def handle(self, question: str) -> str:
                with hogtrace.span("inner"):
                    return question.upper()

        with capture_events() as events:
            assert "Q" == Service().handle("q")

        assert (TRACE, SPAN) == (events.one().trace_id, events.one().parent_id)

    def test_decorator_on_async_function(self) -> None:
        """On an ``async def`` the scope covers the awaited body."""

        @hogtrace.continue_trace(REMOTE)
        async def handle() -> None:
            with hogtrace.span("inner"):
                pass

        import asyncio

        with capture_events() as events:
            asyncio.run(handle())

        assert (TRACE, SPAN) == (events.one().trace_id, events.one().parent_id)

    def test_generation_directly_inside(self) -> None:
        """A generation directly inside joins the remote trace instead of starting one."""
        with (
            capture_events() as events,
            hogtrace.continue_trace(REMOTE),
            hogtrace.generation("llm"),
        ):
            pass

        generation = events.one("$ai_generation")
        assert (TRACE, SPAN) == (generation.trace_id, generation.parent_id)

    def test_remote_session_only(self) -> None:
        """Headers carrying only a session start a trace here, in that session."""
        with hogtrace.session("conv-1", distinct_id="user-1"):
            headers = hogtrace.inject()

        with (
            capture_events() as events,
            hogtrace.continue_trace(headers),
            hogtrace.trace("handle") as trace,
        ):
            pass

        event = events.one()
        assert ("$ai_trace", trace.trace_id) == (event.event, event.trace_id)
        assert ("conv-1", "user-1") == (event.session_id, event.distinct_id)

    def test_unsampled_remote_trace_emits_nothing(self) -> None:
        """A trace the caller's sampling dropped is dropped here too."""
        headers = encode(RemoteContext(TRACE, SPAN, sampled=False))

        with capture_events() as events, hogtrace.continue_trace(headers), hogtrace.span("handle"):
            pass

        assert [] == list(events)

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param(list(REMOTE.items()), id="pairs"),
            pytest.param([(k.encode(), v.encode()) for k, v in REMOTE.items()], id="asgi-bytes"),
            pytest.param({k.upper(): v for k, v in REMOTE.items()}, id="upper-case"),
            pytest.param(
                {"HTTP_TRACEPARENT": REMOTE["traceparent"], "HTTP_BAGGAGE": REMOTE["baggage"]},
                id="wsgi-environ",
            ),
        ],
    )
    def test_header_shapes(self, headers: Any) -> None:
        """Pairs, ASGI bytes, any header case and a WSGI environ are all read."""
        with capture_events() as events, hogtrace.continue_trace(headers), hogtrace.span("handle"):
            pass

        assert (TRACE, SPAN) == (events.one().trace_id, events.one().parent_id)

    def test_http_server_headers(self) -> None:
        """``http.server``'s headers object (an ``email.message.Message``) is read."""
        message = email.message.Message()
        for key, value in REMOTE.items():
            message[key] = value

        with capture_events() as events, hogtrace.continue_trace(message), hogtrace.span("handle"):
            pass

        assert (TRACE, SPAN) == (events.one().trace_id, events.one().parent_id)


MALFORMED = [
    pytest.param({"traceparent": "00-nonsense"}, id="bad-traceparent"),
    pytest.param({"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}, id="zero-trace"),
    pytest.param({"baggage": "hogtrace.trace_id=not a valid id"}, id="bad-baggage-id"),
    pytest.param({"baggage": "hogtrace.trace_id=%FF%FE"}, id="bad-utf8"),
    pytest.param({"traceparent": [1, 2]}, id="non-string-value"),
    pytest.param("traceparent: 00-abc", id="string"),
    pytest.param(42, id="int"),
    pytest.param([("traceparent",)], id="short-pair"),
    pytest.param(object(), id="object"),
]


class TestMalformedHeaders:
    @pytest.mark.parametrize("headers", [None, {}, []], ids=["none", "empty", "empty-list"])
    def test_missing_starts_fresh_trace(self, headers: Any) -> None:
        """No headers: scopes inside start a fresh trace of their own."""
        with (
            capture_events() as events,
            hogtrace.continue_trace(headers),
            hogtrace.span("handle") as span,
        ):
            pass

        event = events.one()
        assert ("$ai_trace", span.trace_id, None) == (event.event, event.trace_id, event.parent_id)

    @pytest.mark.parametrize("headers", MALFORMED)
    def test_malformed_starts_fresh_trace_and_logs(
        self, headers: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Malformed headers never raise: a fresh trace starts and a warning is logged."""
        caplog.set_level(logging.DEBUG, logger="hogtrace")
        with (
            capture_events() as events,
            hogtrace.continue_trace(headers),
            hogtrace.span("handle") as span,
        ):
            pass

        event = events.one()
        assert ("$ai_trace", span.trace_id) == (event.event, event.trace_id)
        assert TRACE != event.trace_id
        assert any(r.levelno >= logging.WARNING for r in caplog.records)

    def test_headers_callable_raises(self, caplog: pytest.LogCaptureFixture) -> None:
        """A headers callable that raises is logged; the function still runs, freshly traced."""

        def boom(*_: Any) -> dict[str, str]:
            raise KeyError("headers")

        @hogtrace.continue_trace(boom)
        @hogtrace.span
        def handle() -> str:
            return "ok"

        with capture_events() as events:
            assert "ok" == handle()

        assert "$ai_trace" == events.one().event
        assert "raised" in caplog.text

    def test_inside_open_scope_stays_in_it(self) -> None:
        """With nothing to continue, scopes inside stay in the scope already open."""
        with (
            capture_events() as events,
            hogtrace.session("local"),
            hogtrace.trace("worker") as trace,
            hogtrace.continue_trace({"traceparent": "garbage"}),
            hogtrace.span("handle"),
        ):
            pass

        handle = events.one(name="handle")
        assert (trace.trace_id, trace.id, "local") == (
            handle.trace_id,
            handle.parent_id,
            handle.session_id,
        )

    @pytest.mark.parametrize("headers", [{}, {"traceparent": "garbage"}], ids=["none", "bad"])
    def test_isolated_inside_open_scope_starts_its_own_trace(self, headers: Any) -> None:
        """``isolated``: a scope left current (a server's previous request) is not inherited."""
        with (
            capture_events() as events,
            hogtrace.session("previous-user"),
            hogtrace.trace("previous", distinct_id="user-a", properties={"tenant": "a"}) as left,
        ):
            with hogtrace.continue_trace(headers, isolated=True), hogtrace.trace("request"):
                pass
            assert left is hogtrace.current_trace()  # restored on the way out

        request = events.one(name="request")
        assert "$ai_trace" == request.event
        assert request.trace_id != left.trace_id
        assert (None, None) == (request.parent_id, request.session_id)
        assert "user-a" != request.distinct_id
        assert "tenant" not in request.properties

    def test_isolated_inside_open_scope_continues_the_remote_trace_only(self) -> None:
        with (
            capture_events() as events,
            hogtrace.trace("previous", properties={"tenant": "a"}),
            hogtrace.continue_trace(REMOTE, isolated=True),
            hogtrace.span("handle"),
        ):
            pass

        handle = events.one(name="handle")
        assert (TRACE, SPAN, "conv-9", "user-3") == (
            handle.trace_id,
            handle.parent_id,
            handle.session_id,
            handle.distinct_id,
        )
        assert "tenant" not in handle.properties

    def test_warnings_are_throttled(self, caplog: pytest.LogCaptureFixture) -> None:
        """A flood of bad headers logs one warning, the rest at debug."""
        caplog.set_level(logging.DEBUG, logger="hogtrace")
        for _ in range(5):
            with hogtrace.continue_trace({"traceparent": "garbage"}):
                pass

        ours = [r for r in caplog.records if r.name == "hogtrace" and "continue_trace" in r.msg]
        assert [logging.WARNING] + [logging.DEBUG] * 4 == [r.levelno for r in ours]

    @settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        st.dictionaries(
            st.sampled_from(["traceparent", "baggage", "Baggage", "x-other"]) | st.text(),
            st.text()
            | st.builds(
                lambda a, b: f"hogtrace.trace_id={a},hogtrace.span_id={b}", st.text(), st.text()
            ),
            max_size=4,
        )
    )
    def test_arbitrary_headers_never_raise(self, headers: dict[str, str]) -> None:
        """Whatever the headers hold, the block runs and its span is emitted in some trace."""
        with (
            capture_events() as events,
            hogtrace.continue_trace(headers),
            hogtrace.span("handle") as span,
        ):
            pass

        assert [span.trace_id] == [e.trace_id for e in events]
        assert span.trace_id


class TestPropagateThreads:
    def test_pool_of_eight_workers(self) -> None:
        """Spans opened in 8 pool threads through ``propagate`` are children of the submitter."""
        barrier = threading.Barrier(8, timeout=10)

        @hogtrace.span("work")
        def work(i: int) -> int:
            barrier.wait()  # all eight run at once
            return i * i

        with (
            capture_events() as events,
            hogtrace.session("conv-1"),
            hogtrace.trace("fan-out") as trace,
            concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool,
        ):
            futures = [pool.submit(hogtrace.propagate(work), i) for i in range(8)]
            results = [f.result() for f in futures]

        workers = events.named("work")
        assert [i * i for i in range(8)] == results
        assert 8 == len(workers)
        assert {(trace.trace_id, trace.id, "conv-1")} == {
            (e.trace_id, e.parent_id, e.session_id) for e in workers
        }
        assert 8 == len({e.span_id for e in workers})

    def test_children_after_parent_exited(self) -> None:
        """A worker that starts after its parent exited still lands under it, in its trace."""
        start = threading.Event()

        def late() -> str:
            start.wait(10)
            with hogtrace.span("late") as span:
                return span.parent_id or ""

        with capture_events() as events, concurrent.futures.ThreadPoolExecutor(2) as pool:
            with hogtrace.trace("request") as trace, hogtrace.span("enqueue") as parent:
                futures = [pool.submit(hogtrace.propagate(late)) for _ in range(2)]
            assert parent.latency is not None  # the parent has exited
            start.set()
            parents = [f.result() for f in futures]

        assert [parent.id, parent.id] == parents
        late_events = events.named("late")
        assert {(trace.trace_id, parent.id)} == {(e.trace_id, e.parent_id) for e in late_events}
        assert 2 == len(late_events)

    def test_without_propagate_threads_start_own_trace(self) -> None:
        """A plain thread does not inherit the scope (contextvars): its span is a new trace."""

        def alone() -> None:
            with hogtrace.span("alone"):
                pass

        with capture_events() as events, hogtrace.trace("request") as trace:
            thread = threading.Thread(target=alone)
            thread.start()
            thread.join()

        event = events.one(name="alone")
        assert "$ai_trace" == event.event
        assert trace.trace_id != event.trace_id

    def test_one_propagated_callable_in_many_threads(self) -> None:
        """One propagated callable can run in several threads at once."""
        barrier = threading.Barrier(4, timeout=10)

        def work() -> str | None:
            barrier.wait()
            with hogtrace.span("w") as span:
                return span.parent_id

        with capture_events(), hogtrace.trace("t") as trace:
            wrapped = hogtrace.propagate(work)
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                parents = [f.result() for f in [pool.submit(wrapped) for _ in range(4)]]

        assert [trace.id] * 4 == parents


CHILD = """
import json, sys
import posthog, hogtrace

client = posthog.Posthog("phc_test", host=sys.argv[1])
hogtrace.configure(client)

@hogtrace.continue_trace(lambda headers: headers)
def handle(headers):
    with hogtrace.span("child-work"), hogtrace.generation("child-llm", model="m") as gen:
        gen.set_usage(input_tokens=4, output_tokens=2)

handle(json.loads(sys.stdin.read()))
hogtrace.flush()
client.shutdown()
"""


class TestSubprocess:
    def test_child_process_continues_trace(self, capture_server: CaptureServer) -> None:
        """A child process continuing from injected headers completes the parent's tree."""
        client = posthog.Posthog("phc_test", host=capture_server.url)
        try:
            hogtrace.configure(client)
            with (
                hogtrace.session("conv-1", distinct_id="user-1"),
                hogtrace.trace("parent") as trace,
                hogtrace.span("spawn") as spawn,
            ):
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, capture_server.url],
                    input=json.dumps(hogtrace.inject()),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            hogtrace.flush()
        finally:
            client.shutdown()

        assert 0 == done.returncode, done.stderr
        events = {e["properties"]["$ai_span_name"]: e for e in capture_server.events}
        assert {"parent", "spawn", "child-work", "child-llm"} == set(events)
        assert {trace.trace_id} == {e["properties"]["$ai_trace_id"] for e in events.values()}
        assert {"conv-1"} == {e["properties"]["$ai_session_id"] for e in events.values()}
        assert {"user-1"} == {e["distinct_id"] for e in events.values()}
        child = events["child-work"]["properties"]
        assert ("$ai_span", spawn.id) == (events["child-work"]["event"], child["$ai_parent_id"])
        assert child["$ai_span_id"] == events["child-llm"]["properties"]["$ai_parent_id"]
        assert ["$ai_trace"] == [e["event"] for e in events.values() if e["event"] == "$ai_trace"]


class TestExample:
    def test_distributed_example_prints_one_tree(self) -> None:
        """``examples/distributed.py`` runs offline and prints the two processes as one tree."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "distributed.py")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )

        assert 0 == done.returncode, done.stderr
        tree = done.stdout.split(" from the service:\n", 1)[1].splitlines()
        assert tree[0].startswith("ask [trace, session conv-42")
        assert 1 == sum(not line.startswith(("│", "├", "└", " ")) for line in tree)
        assert any("http:POST /answer" in line for line in tree)
        assert any(line.startswith("    └── service:answer") for line in tree)
        assert any("chat [generation" in line for line in tree)
