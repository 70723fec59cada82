"""Sampling and ``enabled=False`` through real scopes: whole traces, whole sessions, no cost.

``configure(sample_rate=...)`` keeps or drops a conversation (inside a session) or a trace
(outside one) as a whole, with a decision derived from its id alone, so every process agrees.
Dropped scopes still run the user's code and measure their metrics; they only emit nothing.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import posthog
import pytest

import hogtrace
from hogtrace.testing import CapturedEvents, capture_events
from tests.capture_server import CaptureServer

TRACE_IDS = [f"trace-{n}" for n in range(400)]
SESSION_IDS = [f"conv-{n}" for n in range(150)]

USAGE = {"prompt_tokens": 10, "completion_tokens": 4}


def chat_completion() -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": USAGE,
    }


@hogtrace.generation
def chat(messages: Any) -> Any:
    return chat_completion()


@hogtrace.embedding(model="text-embedding-3-small")
def embed(input: Any) -> Any:
    return {"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 3}}


@hogtrace.span
def retrieve(query: str) -> list[str]:
    return [f"doc about {query}"]


def workflow(trace_id: str) -> None:
    """One trace with every kind of event in it: 7 events when kept."""
    with hogtrace.trace("answer", id=trace_id):
        retrieve("q")
        with hogtrace.span("plan"):
            chat("hi")
        embed("hi")
        hogtrace.metric("relevance", 0.9)
        hogtrace.feedback("good")


def by_trace(events: CapturedEvents) -> collections.Counter[str]:
    """How many events each trace id got."""
    return collections.Counter(e.properties["$ai_trace_id"] for e in events)


def by_session(events: CapturedEvents) -> collections.Counter[str]:
    """How many events each session id got."""
    return collections.Counter(e.properties["$ai_session_id"] for e in events)


def kept_traces(rate: float, trace_ids: list[str]) -> set[str]:
    """The trace ids kept at ``rate``, observed through a capture."""
    hogtrace.configure(sample_rate=rate)
    with capture_events() as events:
        for trace_id in trace_ids:
            with hogtrace.trace("t", id=trace_id):
                pass
    return {e.trace_id for e in events if e.trace_id is not None}


def kept_sessions(rate: float, session_ids: list[str]) -> set[str]:
    """The session ids kept at ``rate``, observed through a capture."""
    hogtrace.configure(sample_rate=rate)
    with capture_events() as events:
        for session_id in session_ids:
            with hogtrace.session(session_id), hogtrace.trace("t"):
                pass
    return {e.session_id for e in events if e.session_id is not None}


# --- rates ---------------------------------------------------------------------------------------


class TestRates:
    def test_rate_one_keeps_everything(self) -> None:
        """At 1.0 every trace and every event kind is sent."""
        hogtrace.configure(sample_rate=1.0)
        with capture_events() as events:
            for trace_id in TRACE_IDS[:50]:
                workflow(trace_id)

        assert dict.fromkeys(TRACE_IDS[:50], 7) == dict(by_trace(events))

    def test_rate_zero_drops_everything(self) -> None:
        """At 0.0 no event of any kind is sent, standalone generations included."""
        hogtrace.configure(sample_rate=0.0)
        with capture_events() as events:
            for trace_id in TRACE_IDS[:50]:
                workflow(trace_id)
            chat("standalone")
            embed("standalone")
            with hogtrace.session("conv-1"):
                workflow("in-session")

        assert [] == list(events)

    def test_rate_zero_sends_nothing_to_posthog(self, capture_server: CaptureServer) -> None:
        """At 0.0 the real client receives nothing at all."""
        client = posthog.Posthog("phc_test", host=capture_server.url)
        try:
            hogtrace.configure(client, sample_rate=0.0)
            for trace_id in TRACE_IDS[:20]:
                workflow(trace_id)
            hogtrace.flush(timeout=10)
            client.flush()

            assert [] == capture_server.requests
        finally:
            hogtrace.reset()
            client.shutdown()

    @pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
    def test_rate_is_honoured(self, rate: float) -> None:
        """About ``rate`` of the traces are kept (the ids are fixed, so this is exact)."""
        kept = kept_traces(rate, TRACE_IDS)

        assert abs(len(kept) / len(TRACE_IDS) - rate) < 0.1

    def test_raising_the_rate_keeps_what_was_kept(self) -> None:
        """Every trace kept at a lower rate is also kept at a higher one."""
        low, middle, high = (kept_traces(rate, TRACE_IDS) for rate in (0.2, 0.5, 0.8))

        assert low <= middle <= high
        assert low != middle != high


# --- whole traces --------------------------------------------------------------------------------


class TestWholeTraces:
    def test_each_trace_is_kept_or_dropped_whole(self) -> None:
        """At 0.5 each trace sends all 7 of its events or none, and both happen."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for trace_id in TRACE_IDS[:100]:
                workflow(trace_id)

        counts = by_trace(events)
        assert {7} == set(counts.values())
        assert 20 < len(counts) < 80

    def test_standalone_generation_is_its_own_trace(self) -> None:
        """A generation outside any trace is kept or dropped with its own trace id."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            kept = []
            for _ in range(100):
                with hogtrace.generation("g") as g:
                    pass
                kept.append(g.trace_id)
                hogtrace.metric("score", 1, trace_id=g.trace_id)

        counts = by_trace(events)
        assert {2} == set(counts.values())  # the generation and its later metric, together
        assert 20 < len(counts) < 80

    def test_later_annotation_by_trace_id_follows_the_trace(self) -> None:
        """``metric`` / ``feedback`` sent later, by trace id, are kept exactly when the trace is."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for trace_id in TRACE_IDS[:100]:
                with hogtrace.trace("t", id=trace_id):
                    pass
            for trace_id in TRACE_IDS[:100]:
                hogtrace.feedback("thanks", trace_id=trace_id)

        assert {2} == set(by_trace(events).values())

    async def test_concurrent_tasks(self) -> None:
        """Traces running concurrently in asyncio tasks are each kept or dropped whole."""

        @hogtrace.span
        async def step(n: int) -> int:
            await asyncio.sleep(0)
            return n

        async def one(trace_id: str) -> None:
            with hogtrace.trace("t", id=trace_id):
                await asyncio.gather(step(1), step(2), step(3))

        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            await asyncio.gather(*(one(trace_id) for trace_id in TRACE_IDS[:60]))

        counts = by_trace(events)
        assert {4} == set(counts.values())
        assert 10 < len(counts) < 50

    def test_threads_through_propagate(self) -> None:
        """Spans run in a thread pool through ``propagate`` share their trace's decision."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events, concurrent.futures.ThreadPoolExecutor(2) as pool:
            for trace_id in TRACE_IDS[:40]:
                with hogtrace.trace("t", id=trace_id):
                    futures = [pool.submit(hogtrace.propagate(retrieve), str(n)) for n in range(3)]
                    for future in futures:
                        future.result()

        counts = by_trace(events)
        assert {4} == set(counts.values())
        assert 5 < len(counts) < 35

    def test_generators_across_yields(self) -> None:
        """A generator span and the spans opened between its yields go with their trace."""

        @hogtrace.span
        def pages() -> Iterator[int]:
            yield 1
            yield 2

        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for trace_id in TRACE_IDS[:60]:
                with hogtrace.trace("t", id=trace_id):
                    for page in pages():
                        retrieve(str(page))

        counts = by_trace(events)
        assert {4} == set(counts.values())
        assert 10 < len(counts) < 50


# --- whole sessions ------------------------------------------------------------------------------


class TestWholeSessions:
    def test_each_session_is_kept_or_dropped_whole(self) -> None:
        """At 0.5 every trace and standalone generation of a session shares one fate."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for session_id in SESSION_IDS[:60]:
                with hogtrace.session(session_id):
                    for turn in range(3):
                        workflow(f"{session_id}-turn-{turn}")
                    chat("standalone")

        counts = by_session(events)
        assert {3 * 7 + 1} == set(counts.values())
        assert 10 < len(counts) < 50

    def test_session_decision_wins_over_the_trace_decision(self) -> None:
        """A trace that would be dropped on its own is kept inside a kept session, and back."""
        kept_alone = kept_traces(0.5, TRACE_IDS[:40])
        dropped_alone = set(TRACE_IDS[:40]) - kept_alone
        kept_conv = kept_sessions(0.5, SESSION_IDS[:20])
        dropped_conv = set(SESSION_IDS[:20]) - kept_conv
        assert kept_alone
        assert dropped_alone
        assert kept_conv
        assert dropped_conv

        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            with hogtrace.session(min(kept_conv)):
                for trace_id in sorted(dropped_alone):
                    with hogtrace.trace("t", id=trace_id):
                        pass
            with hogtrace.session(min(dropped_conv)):
                for trace_id in sorted(kept_alone):
                    with hogtrace.trace("t", id=trace_id):
                        pass

        assert dropped_alone == {e.trace_id for e in events}

    def test_session_id_from_arguments(self) -> None:
        """Calls that compute the same session id from their arguments share one decision."""

        @hogtrace.session(id=lambda user, conversation, text: conversation)
        @hogtrace.trace
        def turn(user: str, conversation: str, text: str) -> str:
            return chat(text)["model"]

        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for conversation in SESSION_IDS[:40]:
                for text in ("hello", "more", "bye"):
                    assert "gpt-4o" == turn("ada", conversation, text)

        counts = by_session(events)
        assert {6} == set(counts.values())
        assert 5 < len(counts) < 35

    def test_session_continued_in_another_service(self) -> None:
        """A session carried by ``inject`` / ``continue_trace`` keeps the caller's decision."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for session_id in SESSION_IDS[:40]:
                with hogtrace.session(session_id):
                    headers = hogtrace.inject()
                    workflow(f"{session_id}-here")
                with hogtrace.continue_trace(headers):
                    workflow(f"{session_id}-there")

        counts = by_session(events)
        assert {14} == set(counts.values())
        assert 5 < len(counts) < 35

    def test_later_feedback_for_a_trace_in_a_session(self) -> None:
        """Feedback given later, outside the session, with its ids follows its trace."""
        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for session_id in SESSION_IDS[:40]:
                with hogtrace.session(session_id), hogtrace.trace("t", id=f"{session_id}-t"):
                    pass
            for session_id in SESSION_IDS[:40]:
                hogtrace.feedback("thanks", trace_id=f"{session_id}-t", session_id=session_id)

        assert {2} == set(by_trace(events).values())


# --- across processes ----------------------------------------------------------------------------


DECISIONS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import hogtrace
    from hogtrace.testing import capture_events

    rate, trace_ids, session_ids = json.loads(sys.stdin.read())
    hogtrace.configure(sample_rate=rate)
    with capture_events() as events:
        for trace_id in trace_ids:
            with hogtrace.trace("t", id=trace_id):
                pass
        for session_id in session_ids:
            with hogtrace.session(session_id), hogtrace.trace("t"):
                pass
    print(json.dumps({
        "traces": sorted({e.trace_id for e in events if e.session_id is None}),
        "sessions": sorted({e.session_id for e in events if e.session_id is not None}),
    }))
    """
)


class TestAcrossProcesses:
    def test_another_process_makes_the_same_decisions(self) -> None:
        """A fresh interpreter with another hash seed keeps exactly the same traces and sessions."""
        rate = 0.5
        env = {**os.environ, "PYTHONHASHSEED": "12345"}
        env.pop("POSTHOG_API_KEY", None)
        env.pop("POSTHOG_PROJECT_API_KEY", None)
        child = subprocess.run(
            [sys.executable, "-c", DECISIONS_SCRIPT],
            input=json.dumps([rate, TRACE_IDS, SESSION_IDS]),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        theirs = json.loads(child.stdout)

        ours = {
            "traces": sorted(kept_traces(rate, TRACE_IDS)),
            "sessions": sorted(kept_sessions(rate, SESSION_IDS)),
        }
        assert ours == theirs
        assert 0 < len(ours["traces"]) < len(TRACE_IDS)
        assert 0 < len(ours["sessions"]) < len(SESSION_IDS)

    @pytest.mark.parametrize("caller_keeps", [True, False])
    def test_continued_trace_follows_the_caller(self, caller_keeps: bool) -> None:
        """Inside ``continue_trace`` the caller's decision wins over the local one."""
        kept_here = kept_traces(0.5, TRACE_IDS[:40])
        # Trace ids whose local decision is the opposite of the caller's.
        candidates = sorted(set(TRACE_IDS[:40]) - kept_here if caller_keeps else kept_here)
        assert candidates

        headers = []
        hogtrace.configure(sample_rate=1.0 if caller_keeps else 0.0)
        for trace_id in candidates:
            with hogtrace.trace("caller", id=trace_id):
                headers.append(hogtrace.inject())

        hogtrace.configure(sample_rate=0.5)
        with capture_events() as events:
            for carried in headers:
                with hogtrace.continue_trace(carried):
                    retrieve("q")

        expected = candidates if caller_keeps else []
        assert expected == sorted(e.trace_id for e in events)


# --- what sampled-out scopes still do ------------------------------------------------------------


class Watched:
    """Counts conversions of itself, to show a value was not serialized."""

    def __init__(self) -> None:
        self.conversions = 0

    def tolist(self) -> list[int]:
        self.conversions += 1
        return [1]


class TestSampledOut:
    def test_user_code_runs_and_returns(self) -> None:
        """A dropped trace runs every step and returns every value."""
        calls: list[str] = []

        @hogtrace.trace
        def answer(question: str) -> str:
            calls.append("answer")
            docs = retrieve(question)
            return f"{docs[0]} / {chat(question)['model']}"

        hogtrace.configure(sample_rate=0.0)
        with capture_events() as events:
            result = answer("q")

        assert ("doc about q / gpt-4o", ["answer"]) == (result, calls)
        assert [] == list(events)

    def test_metrics_are_still_computed(self) -> None:
        """Tokens, generations, errors and latency roll up in a dropped trace and session."""
        hogtrace.configure(sample_rate=0.0)
        with hogtrace.session("conv-1") as session, hogtrace.trace("t") as trace:
            chat("a")
            with hogtrace.span("inner") as inner:
                chat("b")
            with pytest.raises(KeyError), hogtrace.generation("failing"):
                raise KeyError("k")

        for scope in (trace, session):
            metrics = scope.metrics
            assert metrics is not None
            assert (20, 8, 3, 1) == (
                metrics.input_tokens,
                metrics.output_tokens,
                metrics.generations,
                metrics.errors,
            )
        assert inner.metrics is not None
        assert (10, 1) == (inner.metrics.input_tokens, inner.metrics.generations)
        assert trace.latency is not None
        assert trace.latency >= 0.0

    def test_exceptions_pass_through_unchanged(self) -> None:
        """An exception leaves a dropped scope as the very same object."""
        error = ConnectionError("down")

        @hogtrace.span
        def fetch() -> None:
            raise error

        hogtrace.configure(sample_rate=0.0)
        with pytest.raises(ConnectionError) as info:
            fetch()

        assert error is info.value

    def test_generators_pass_through(self) -> None:
        """A dropped generator yields, receives ``send`` values and closes as the original."""
        received: list[Any] = []

        @hogtrace.span
        def echo() -> Iterator[int]:
            value = 0
            while True:
                received.append((yield value))
                value += 1

        hogtrace.configure(sample_rate=0.0)
        with capture_events() as events:
            gen = echo()
            assert 0 == next(gen)
            assert 1 == gen.send("a")
            assert 2 == gen.send("b")
            gen.close()

        assert (["a", "b"], []) == (received, list(events))

    async def test_async_functions_and_generators(self) -> None:
        """Dropped ``async def`` and async generator scopes return and yield as the original."""

        @hogtrace.trace
        async def ask(question: str) -> str:
            return question.upper()

        @hogtrace.span
        async def stream() -> AsyncIterator[int]:
            yield 1
            yield 2

        hogtrace.configure(sample_rate=0.0)
        with capture_events() as events:
            assert "Q" == await ask("q")
            assert [1, 2] == [item async for item in stream()]

        assert [] == list(events)

    def test_content_is_not_serialized(self) -> None:
        """A dropped scope does not convert its arguments, result or explicit content."""
        watched = Watched()

        @hogtrace.span
        def work(value: Any) -> Any:
            return value

        hogtrace.configure(sample_rate=0.0)
        with hogtrace.trace("t"), hogtrace.span("s") as s:
            work(watched)
            s.set_input(watched)
            s.set_output(watched)

        assert 0 == watched.conversions

    def test_scope_api_still_works(self) -> None:
        """Inside a dropped trace the scope has ids and says it is not sampled to other services."""
        hogtrace.configure(sample_rate=0.0)
        with hogtrace.trace("t", id="trace-dropped") as t, hogtrace.span("s") as s:
            assert s is hogtrace.current()
            assert ("trace-dropped", "trace-dropped") == (s.trace_id, s.parent_id)
            headers = hogtrace.inject()
            s.set_properties(step=1)

        assert headers["traceparent"].endswith("-00")
        assert t.latency is not None


# --- enabled=False -------------------------------------------------------------------------------


class TestDisabled:
    def test_functions_emit_nothing(self) -> None:
        """Disabled decorators emit nothing (a capture started later records: see testing)."""

        @hogtrace.trace
        def outer() -> str:
            return inner()

        @hogtrace.generation
        def inner() -> str:
            return "done"

        hogtrace.configure(enabled=False)
        assert "done" == outer()

        assert 0 == hogtrace.stats()["emitted"]

    def test_arguments_are_not_touched(self) -> None:
        """Disabled decorators neither bind nor convert arguments, nor call id callables."""
        watched = Watched()
        id_calls: list[Any] = []

        def conversation_of(value: Any) -> str:
            id_calls.append(value)
            return "conv"

        @hogtrace.session(id=conversation_of)
        @hogtrace.trace(id=lambda value: id_calls.append(value) or "t-1")
        @hogtrace.span
        def work(value: Any) -> Any:
            return value

        hogtrace.configure(enabled=False)
        assert watched is work(watched)

        assert (0, []) == (watched.conversions, id_calls)

    def test_generators_are_the_originals(self) -> None:
        """A disabled decorator returns the function's own generator objects."""

        @hogtrace.span
        def numbers() -> Iterator[int]:
            yield 1

        @hogtrace.span
        async def ask() -> int:
            return 1

        @hogtrace.span
        async def chunks() -> AsyncIterator[int]:
            yield 1

        hogtrace.configure(enabled=False)
        gen, agen = numbers(), chunks()
        try:
            assert "numbers" == gen.gi_code.co_name
            assert "chunks" == agen.ag_code.co_name
        finally:
            gen.close()
        assert 1 == asyncio.run(ask())

    def test_current_is_a_no_op_scope_inside_decorated_functions(self) -> None:
        """With tracing off, ``current()`` inside a decorated function is a scope that records
        nothing, so documented calls on it never fail."""
        seen: list[Any] = []

        @hogtrace.generation
        def chat() -> str:
            scope = hogtrace.current()
            assert scope is not None
            scope.set_properties(tier="pro")
            hogtrace.current_generation().set_usage(input_tokens=3)
            hogtrace.current_trace().set_distinct_id("u-1")
            seen.append(scope)
            return "ok"

        @hogtrace.span
        async def step() -> str:
            scope = hogtrace.current()
            assert scope is not None
            scope.set_output("x")
            seen.append(scope)
            return "done"

        hogtrace.configure(enabled=False)
        assert ("ok", "done") == (chat(), asyncio.run(step()))
        hogtrace.shutdown()
        assert "ok" == chat()

        assert [True, True, True] == [s.kind == "noop" for s in seen]
        assert 0 == hogtrace.stats()["emitted"]

    def test_annotations_are_not_sent(self) -> None:
        """``metric`` and ``feedback`` are silent no-ops while disabled."""
        hogtrace.configure(enabled=False)
        hogtrace.metric("score", 1.0, trace_id="trace-1")
        hogtrace.feedback("good", trace_id="trace-1")

        assert {"emitted": 0, "dropped": 0} == {
            k: v for k, v in hogtrace.stats().items() if k in ("emitted", "dropped")
        }
