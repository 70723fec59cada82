"""Delivery checked on the wire: the AI lane, size limits, error tracking, stats, bounded exits.

Every test uses the real ``posthog`` client against the local capture server
(``tests/capture_server.py``) and reads what the server received.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from posthog.ai.openai import OpenAI
from posthog.consumer import AI_MAX_MSG_SIZE, MAX_MSG_SIZE

import hogtrace
from hogtrace._options import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_ITEMS
from hogtrace._serialize import count_items
from hogtrace._sinks import PostHogSink
from tests.capture_server import CaptureServer, Clients
from tests.openai_server import OpenAIServer

ANALYTICS_PATH = "/batch/"
AI_PATH = "/i/v0/ai/batch/"
#: A 3 MB model input: larger than the analytics lane takes, smaller than the AI lane's 8 MiB.
HUGE = 3_000_000
#: How long a test waits at most for a thread that must finish (never a timing assertion).
BOUND = 15.0


@hogtrace.trace
def answer(question: str) -> str:
    with hogtrace.span("retrieve"):
        pass
    return question.upper()


@hogtrace.trace
def chat(messages: Any) -> str:
    return "ok"


def huge_messages() -> list[dict[str, str]]:
    """A chat input whose JSON is about 3 MB."""
    return [{"role": "user", "content": "x" * HUGE}]


def wire_size(event: dict[str, Any]) -> int:
    """An event's size as the posthog client measures it (``Consumer._event_size``)."""
    return len(json.dumps(event).encode())


def paths(server: CaptureServer) -> set[str]:
    """The request paths the server answered."""
    return {r["path"] for r in server.requests}


def flushed(server: CaptureServer) -> list[dict[str, Any]]:
    """Every event the server received once hogtrace and its client have flushed."""
    hogtrace.flush(timeout=10)
    return server.events


def run_bounded(step: Callable[[], None]) -> threading.Thread:
    """Run ``step`` in a thread and wait for it at most ``BOUND`` seconds; return the thread."""
    thread = threading.Thread(target=step, name="bounded-step", daemon=True)
    thread.start()
    thread.join(BOUND)
    return thread


class TestLanes:
    @pytest.mark.parametrize(
        ("options", "capture_ai", "expected"),
        [
            ({}, None, ANALYTICS_PATH),
            ({}, False, ANALYTICS_PATH),
            ({}, True, AI_PATH),
            ({"enable_full_ai_capture": True}, None, AI_PATH),
            ({"enable_full_ai_capture": True}, False, ANALYTICS_PATH),
        ],
    )
    def test_events_go_to_the_lane_chosen(
        self,
        capture_server: CaptureServer,
        clients: Clients,
        options: dict[str, Any],
        capture_ai: bool | None,
        expected: str,
    ) -> None:
        """hogtrace posts to the AI endpoint exactly when capture_ai (or the client) asks for it."""
        hogtrace.configure(clients(**options), capture_ai=capture_ai)

        answer("hi")
        events = flushed(capture_server)

        assert {expected} == paths(capture_server)
        assert ["retrieve", "answer"] == [e["properties"]["$ai_span_name"] for e in events]

    def test_ai_lane_takes_an_event_above_the_analytics_limit(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A 3 MB string input arrives whole on the AI lane: its 8 MiB limit applies."""
        hogtrace.configure(clients(), capture_ai=True)

        chat("x" * HUGE)
        [event] = flushed(capture_server)

        assert {AI_PATH} == paths(capture_server)
        assert "$ai_truncated" not in event["properties"]
        assert "x" * HUGE == event["properties"]["$ai_input_state"]["messages"]
        assert MAX_MSG_SIZE < wire_size(event) <= AI_MAX_MSG_SIZE

    def test_ai_lane_takes_a_message_list_above_the_analytics_limit(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A 3 MB message list arrives whole on the AI lane, like a 3 MB string does."""
        hogtrace.configure(clients(), capture_ai=True)

        chat(huge_messages())
        [event] = flushed(capture_server)

        assert {AI_PATH} == paths(capture_server)
        assert huge_messages() == event["properties"]["$ai_input_state"]["messages"]
        assert MAX_MSG_SIZE < wire_size(event) <= AI_MAX_MSG_SIZE

    def test_ai_lane_event_cut_anywhere_is_marked(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """An event whose content was cut carries $ai_truncated, whichever step cut it."""
        hogtrace.configure(clients(), capture_ai=True, max_event_bytes=100_000)

        chat(huge_messages())
        [event] = flushed(capture_server)
        content = event["properties"]["$ai_input_state"]["messages"][0]["content"]

        assert content.endswith("chars]")
        assert event["properties"].get("$ai_truncated") is True
        assert wire_size(event) <= 100_000

    @pytest.mark.parametrize("huge", ["string", "messages"])
    def test_analytics_lane_truncates_to_the_default_limit(
        self, capture_server: CaptureServer, clients: Clients, huge: str
    ) -> None:
        """On /batch/ a 3 MB input arrives cut, marked, and within the default max_event_bytes."""
        hogtrace.configure(clients())

        chat("x" * HUGE if huge == "string" else huge_messages())
        [event] = flushed(capture_server)

        assert {ANALYTICS_PATH} == paths(capture_server)
        assert event["properties"]["$ai_truncated"] is True
        assert wire_size(event) <= DEFAULT_MAX_EVENT_BYTES

    @pytest.mark.parametrize("capture_ai", [False, True])
    def test_configured_limit_holds_for_the_event_the_client_sends(
        self, capture_server: CaptureServer, clients: Clients, capture_ai: bool
    ) -> None:
        """With max_event_bytes=50,000 every event, as the client sent it, is at most that."""
        client = clients(super_properties={"deployment": "eu-west-" + "1" * 500})
        hogtrace.configure(client, capture_ai=capture_ai, max_event_bytes=50_000)

        with hogtrace.trace("t") as t:
            t.set_input("q" * HUGE)
            chat(huge_messages())
            with hogtrace.generation("llm", model="m") as g:
                g.set_input(huge_messages())
                g.set_output({"role": "assistant", "content": "a" * HUGE})
        events = flushed(capture_server)

        assert 3 == len(events)
        assert [True, True, True] == [e["properties"]["$ai_truncated"] for e in events]
        assert {"eu-west-" + "1" * 500} == {e["properties"]["deployment"] for e in events}
        sizes = [wire_size(e) for e in events]
        assert all(size <= 50_000 for size in sizes), sizes


class TestLongInputs:
    @pytest.mark.parametrize(
        "messages",
        [
            [{"role": "user", "content": "hi"}] * 1_000_000,
            [{"role": "user", "content": [{"type": "text", "text": "hi"}]}] * 200_000,
            {f"k{i}": i for i in range(1_000_000)},
        ],
        ids=["plain messages", "content parts", "dict of ints"],
    )
    def test_read_as_far_as_the_limit_and_delivered(
        self, capture_server: CaptureServer, clients: Clients, messages: Any
    ) -> None:
        """A generation given a million-item input sends what fits, and the count cut."""
        hogtrace.configure(clients())

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm(messages)
        [event] = flushed(capture_server)

        sent = event["properties"]["$ai_input"]
        assert event["properties"]["$ai_truncated"] is True
        assert wire_size(event) <= DEFAULT_MAX_EVENT_BYTES
        if isinstance(messages, dict):  # not messages: the argument as it is, cut
            assert sent["…"] == f"…[truncated {len(messages) - len(sent) + 1:,} keys]"
            assert len(sent) - 1 == DEFAULT_MAX_ITEMS
        else:
            assert sent[-1] == f"…[truncated {len(messages) - len(sent) + 1:,} items]"
            # Cut at max_items: each message and each item in it counts (the last one kept
            # may be cut short, with a marker entry of its own).
            assert DEFAULT_MAX_ITEMS - 8 < count_items(sent[:-1], 10**9) <= DEFAULT_MAX_ITEMS + 1


class TestErrorTracking:
    def test_one_exception_event_linked_from_every_scope(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """An exception crossing a span and its trace sends one $exception that both link."""
        hogtrace.configure(clients(enable_exception_autocapture=True))

        with (
            pytest.raises(ValueError, match="boom"),
            hogtrace.trace("t") as t,
            hogtrace.span("s") as s,
        ):
            raise ValueError("boom")
        events = flushed(capture_server)

        kinds = collections.Counter(e["event"] for e in events)
        assert {"$exception": 1, "$ai_span": 1, "$ai_trace": 1} == kinds
        [exception] = [e for e in events if e["event"] == "$exception"]
        linked = {
            e["properties"]["$ai_span_name"]: e["properties"].get("$exception_event_id")
            for e in events
            if e["event"] != "$exception"
        }
        assert {"s": exception["uuid"], "t": exception["uuid"]} == linked
        assert (t.trace_id, s.id) == (
            exception["properties"]["$ai_trace_id"],
            exception["properties"]["$ai_span_id"],
        )
        assert "ValueError" == exception["properties"]["$exception_list"][0]["type"]

    def test_exception_the_app_captured_is_not_sent_again(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """An exception the app already sent to error tracking is not sent a second time."""
        client = clients(enable_exception_autocapture=True)
        hogtrace.configure(client)

        def handle() -> None:
            with hogtrace.span("s"):
                try:
                    raise ValueError("boom")
                except ValueError as err:
                    client.capture_exception(err, distinct_id="user-1")
                    raise

        with pytest.raises(ValueError, match="boom"):
            handle()
        events = flushed(capture_server)

        assert 1 == sum(e["event"] == "$exception" for e in events)

    def test_app_capturing_after_hogtrace_sends_no_second_exception(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """The app sending the exception after hogtrace did: posthog sees it was sent."""
        client = clients(enable_exception_autocapture=True)
        hogtrace.configure(client)

        with pytest.raises(ValueError, match="boom") as caught, hogtrace.span("s"):
            raise ValueError("boom")
        hogtrace.flush(timeout=10)  # hogtrace's worker has sent it by now
        again = client.capture_exception(caught.value, distinct_id="user-1")
        events = flushed(capture_server)

        assert again is None

        assert 1 == sum(e["event"] == "$exception" for e in events)

    def test_each_exception_is_sent_once(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Two traces failing with two exceptions send two $exception events, each linked."""
        hogtrace.configure(clients(enable_exception_autocapture=True))

        for name in ("a", "b"):
            with pytest.raises(KeyError), hogtrace.trace(name), hogtrace.span(f"{name}-inner"):
                raise KeyError(name)
        events = flushed(capture_server)

        exceptions = {
            e["properties"]["$ai_span_name"]: e for e in events if e["event"] == "$exception"
        }
        assert {"a-inner", "b-inner"} == set(exceptions)
        linked = {
            e["properties"]["$ai_span_name"]: e["properties"]["$exception_event_id"]
            for e in events
            if e["event"] != "$exception"
        }
        assert {
            "a": exceptions["a-inner"]["uuid"],
            "a-inner": exceptions["a-inner"]["uuid"],
            "b": exceptions["b-inner"]["uuid"],
            "b-inner": exceptions["b-inner"]["uuid"],
        } == linked

    @pytest.mark.parametrize("where", ["hogtrace", "client"])
    def test_privacy_mode_sends_no_exception(
        self, capture_server: CaptureServer, clients: Clients, where: str
    ) -> None:
        """Under privacy mode (hogtrace's or the client's) no $exception event is sent."""
        client = clients(enable_exception_autocapture=True, privacy_mode=where == "client")
        hogtrace.configure(client, privacy_mode=where == "hogtrace")

        with pytest.raises(ValueError, match="secret"), hogtrace.trace("t"), hogtrace.span("s"):
            raise ValueError("secret")
        events = flushed(capture_server)

        assert ["$ai_span", "$ai_trace"] == [e["event"] for e in events]
        assert [] == [e for e in events if "$exception_event_id" in e["properties"]]

    def test_without_autocapture_no_exception_is_sent(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A client without exception autocapture gets no $exception and no link."""
        hogtrace.configure(clients())

        with pytest.raises(ValueError, match="boom"), hogtrace.trace("t"), hogtrace.span("s"):
            raise ValueError("boom")
        events = flushed(capture_server)

        assert ["$ai_span", "$ai_trace"] == [e["event"] for e in events]
        assert [] == [e for e in events if "$exception_event_id" in e["properties"]]
        assert all(e["properties"]["$ai_is_error"] for e in events)


def accounted(server: CaptureServer) -> dict[str, int]:
    """``stats()`` beside what the server received, for the balance emitted = the rest."""
    stats = hogtrace.stats()
    delivered = sum(e["properties"].get("$ai_lib") == "hogtrace" for e in server.events)
    return {
        "emitted": stats["emitted"],
        "accounted": stats["dropped"] + stats["failed"] + stats["undelivered"] + delivered,
        "delivered": delivered,
        "undelivered": stats["undelivered"],
    }


class TestStats:
    def test_client_shut_down_by_the_user(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Events a shut-down client refuses are undelivered; the balance holds on the wire."""
        client = clients()
        hogtrace.configure(client)
        answer("before")
        hogtrace.flush(timeout=10)
        client.shutdown()

        for _ in range(3):
            answer("after")
        hogtrace.flush(timeout=10)

        assert {"emitted": 8, "accounted": 8, "delivered": 2, "undelivered": 6} == accounted(
            capture_server
        )

    def test_events_the_built_client_reports_lost(self, capture_server: CaptureServer) -> None:
        """Batches a client hogtrace built loses (HTTP 400, not retried) count as undelivered."""
        hogtrace.configure(api_key="phc_test", host=capture_server.url)
        answer("delivered")
        hogtrace.flush(timeout=10)
        capture_server.fail(400)

        for _ in range(3):
            answer("lost")
        hogtrace.flush(timeout=10)
        capture_server.recover()
        answer("delivered")
        hogtrace.flush(timeout=10)

        assert {"emitted": 10, "accounted": 10, "delivered": 4, "undelivered": 6} == accounted(
            capture_server
        )
        assert capture_server.attempts > len(capture_server.requests)

    def test_other_events_lost_with_them_are_not_counted(
        self, capture_server: CaptureServer
    ) -> None:
        """Only hogtrace's own events in a lost batch count; a user's capture() does not."""
        hogtrace.configure(api_key="phc_test", host=capture_server.url)
        client = hogtrace._state.state.config.client
        capture_server.fail(400)

        answer("lost")
        client.capture("signup", distinct_id="u1")
        hogtrace.flush(timeout=10)

        assert {"emitted": 2, "accounted": 2, "delivered": 0, "undelivered": 2} == accounted(
            capture_server
        )

    def test_metric_values_the_client_cannot_serialise_still_arrive(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """The client drops an event it cannot serialise (an int too large for JSON), with only
        a log line: a metric's value is made JSON-safe like any property."""
        hogtrace.configure(clients())
        with hogtrace.trace("t"):
            hogtrace.metric("big", 10**5000)
            hogtrace.metric("nested", {"scores": [10**5000, 0.5]})

        events = flushed(capture_server)
        metrics = {
            e["properties"]["$ai_metric_name"]: e["properties"]["$ai_metric_value"]
            for e in events
            if e["event"] == "$ai_metric"
        }
        assert {
            "big": "<int of 16,610 bits>",
            "nested": {"scores": ["<int of 16,610 bits>", 0.5]},
        } == metrics
        assert {"emitted": 3, "accounted": 3, "delivered": 3, "undelivered": 0} == accounted(
            capture_server
        )


class TestBoundedExit:
    @pytest.fixture
    def held(self, capture_server: CaptureServer) -> CaptureServer:
        """The capture server holds every request for longer than any bound below."""
        capture_server.gate_timeout = 60.0
        capture_server.gate.clear()
        return capture_server

    def test_shutdown_returns_while_the_server_holds(
        self, held: CaptureServer, clients: Clients
    ) -> None:
        """shutdown() returns with events queued everywhere while PostHog never answers."""
        client = clients(max_queue_size=2, flush_at=1)
        hogtrace.configure(client, shutdown_timeout=1.0)
        with hogtrace.span("first"):
            pass
        held.wait_for_attempts(1)  # the client's consumer is held on "first"
        for _ in range(20):
            answer("queued")
        sink = hogtrace._state.state.sink
        assert isinstance(sink, PostHogSink)
        worker = sink._thread
        assert worker is not None

        stopping = run_bounded(hogtrace.shutdown)

        assert not stopping.is_alive()
        assert [] == held.requests  # it returned while the server still held the first batch
        assert "HI" == answer("hi")  # tracing is a silent no-op now
        held.gate.set()
        worker.join(BOUND)  # it counts what it abandoned as it goes
        client.flush()
        balance = accounted(held)
        assert not worker.is_alive()
        assert (41, 41) == (balance["emitted"], balance["accounted"])
        assert 0 < balance["delivered"] < 41

    @pytest.mark.parametrize("outcome", [200, 400])
    def test_a_built_client_given_up_on_is_counted_once(
        self, held: CaptureServer, outcome: int
    ) -> None:
        """When shutdown() gives up on a client hogtrace built, everything it holds is counted
        at once, the batch it is sending included; the queued rest is not sent later. When that
        batch ends, a loss is not counted twice, and a delivery is taken back out."""
        held.fail_next(outcome)  # how the held first batch will be answered (400: not retried)
        hogtrace.configure(api_key="phc_test", host=held.url, shutdown_timeout=1.0)
        consumers = list(hogtrace._state.state.config.client.consumers)
        answer("first")
        hogtrace.flush(timeout=0.2)
        held.wait_for_attempts(1)  # the client is sending a batch of 2 events
        for _ in range(9):
            answer("queued")
        hogtrace.flush(timeout=0.2)  # 18 more handed to the client, queued behind it

        stopping = run_bounded(hogtrace.shutdown)

        assert not stopping.is_alive()
        after = {"emitted": 20, "accounted": 20, "delivered": 0, "undelivered": 20}
        assert after == accounted(held)
        held.gate.set()
        for consumer in consumers:
            consumer.join(BOUND)
        delivered = 2 if outcome == 200 else 0
        assert {
            "emitted": 20,
            "accounted": 20,
            "delivered": delivered,
            "undelivered": 20 - delivered,
        } == accounted(held)
        assert 1 == held.attempts  # the 18 queued were never sent

    def test_a_user_client_still_holding_events_is_logged(
        self, held: CaptureServer, clients: Clients, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Your own client keeps what it holds (not counted: it may still send it), and the
        shutdown says how much."""
        hogtrace.configure(clients(), shutdown_timeout=1.0)
        for _ in range(5):
            answer("held")

        stopping = run_bounded(hogtrace.shutdown)

        assert not stopping.is_alive()
        assert 0 == hogtrace.stats()["undelivered"]
        assert any(
            "your PostHog client still holds 10 events" in r.getMessage() for r in caplog.records
        )

    def test_reset_returns_while_the_server_holds(self, held: CaptureServer) -> None:
        """reset() of a client hogtrace built returns while PostHog never answers; the retired
        client's loss, reported after the reset, does not reach the fresh counts."""
        held.fail_next(400)
        hogtrace.configure(api_key="phc_test", host=held.url, shutdown_timeout=1.0)
        client = hogtrace._state.state.config.client
        consumers = list(client.consumers)
        for _ in range(20):
            answer("queued")
        hogtrace.flush(timeout=0.5)
        held.wait_for_attempts(1)

        resetting = run_bounded(hogtrace.reset)

        assert not resetting.is_alive()
        assert [] == held.requests
        assert client is not hogtrace._state.state.config.client
        assert {"emitted": 0, "dropped": 0, "failed": 0, "undelivered": 0} == hogtrace.stats()
        held.gate.set()  # the held batch is answered 400: the retired client reports it lost
        for consumer in consumers:
            consumer.join(BOUND)
        assert {"emitted": 0, "dropped": 0, "failed": 0, "undelivered": 0} == hogtrace.stats()

    def test_configure_returns_while_the_server_holds(
        self, held: CaptureServer, clients: Clients
    ) -> None:
        """Replacing a held client with configure() returns, and the new client delivers."""
        hogtrace.configure(clients(max_queue_size=2, flush_at=1), shutdown_timeout=1.0)
        with hogtrace.span("first"):
            pass
        held.wait_for_attempts(1)
        for _ in range(20):
            answer("queued")
        fresh = CaptureServer()
        try:
            switching = run_bounded(lambda: hogtrace.configure(clients(host=fresh.url)))
            answer("new")
            hogtrace.flush(timeout=10)

            assert not switching.is_alive()
            assert [] == held.requests
            assert ["retrieve", "answer"] == [
                e["properties"]["$ai_span_name"] for e in fresh.events
            ]
        finally:
            fresh.close()


class TestConsole:
    def test_tree_shows_posthog_wrapper_generation(
        self,
        capture_server: CaptureServer,
        clients: Clients,
        llm_server: OpenAIServer,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The printed tree has the OpenAI wrapper's generation under the trace."""
        client = clients()
        hogtrace.configure(client, console=True)
        oai = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-test", max_retries=0
        )
        try:
            with hogtrace.trace("t"):
                oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
        finally:
            oai.close()
        events = flushed(capture_server)

        lines = capsys.readouterr().err.splitlines()
        assert 2 == len(lines), lines
        assert lines[0].startswith("t [trace]")
        assert lines[1].startswith("└── gpt-4o-mini [generation, tokens in=12 out=5]")
        assert ["$ai_generation", "$ai_trace"] == [e["event"] for e in events]
