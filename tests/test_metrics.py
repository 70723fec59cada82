"""Scope ``metrics`` (SPEC §5), ``hogtrace.metric`` / ``hogtrace.feedback``, and the chat example.

Totals stay in process: the tests check both what ``scope.metrics`` says and that no span or
trace event carries token or cost properties (PostHog sums those over generations itself).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import hogtrace
from hogtrace.testing import CapturedEvents

USER = [{"role": "user", "content": "hi"}]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat_loop.py"
#: Properties only generations and embeddings may carry.
USAGE_KEYS = (
    "$ai_input_tokens",
    "$ai_output_tokens",
    "$ai_cache_read_input_tokens",
    "$ai_cache_creation_input_tokens",
    "$ai_reasoning_tokens",
    "$ai_input_cost_usd",
    "$ai_output_cost_usd",
    "$ai_total_cost_usd",
)


def completion(input_tokens: int, output_tokens: int, cached: int = 0) -> ChatCompletion:
    """An OpenAI chat completion reporting the given usage."""
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    )


def chunks(input_tokens: int, output_tokens: int, cached: int = 0) -> list[ChatCompletionChunk]:
    """An OpenAI chat stream whose last chunk carries the usage."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    delta = {"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}
    usage = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return [
        ChatCompletionChunk.model_validate({**base, "choices": [delta]}),
        ChatCompletionChunk.model_validate({**base, "choices": [], "usage": usage}),
    ]


# Four ways a generation learns its usage; each takes (input, output, cached, cost in USD).


@hogtrace.generation
def by_return(messages: list[dict[str, str]], usage: tuple[int, int, int, float]) -> ChatCompletion:
    """The usage comes from the returned response."""
    input_tokens, output_tokens, cached, cost = usage
    _current_generation().set_cost(total_cost_usd=cost)
    return completion(input_tokens, output_tokens, cached)


@hogtrace.generation
def by_stream(
    messages: list[dict[str, str]], usage: tuple[int, int, int, float]
) -> Iterator[ChatCompletionChunk]:
    """The usage comes from the stream's last chunk."""
    input_tokens, output_tokens, cached, cost = usage
    _current_generation().set_cost(total_cost_usd=cost)
    yield from chunks(input_tokens, output_tokens, cached)


def by_set_output(messages: list[dict[str, str]], usage: tuple[int, int, int, float]) -> None:
    """The usage comes from set_output(response) in a with block."""
    input_tokens, output_tokens, cached, cost = usage
    with hogtrace.generation("by_set_output") as g:
        g.set_output(completion(input_tokens, output_tokens, cached))
        g.set_cost(total_cost_usd=cost)


def by_set_usage(messages: list[dict[str, str]], usage: tuple[int, int, int, float]) -> None:
    """The usage is given with set_usage; the cost as input + output cost."""
    input_tokens, output_tokens, cached, cost = usage
    with hogtrace.generation("by_set_usage") as g:
        g.set_usage(input_tokens, output_tokens, cache_read_input_tokens=cached)
        g.set_cost(input_cost_usd=cost / 2, output_cost_usd=cost / 2)


def _current_generation() -> hogtrace.GenerationScope:
    scope = hogtrace.current()
    assert isinstance(scope, hogtrace.GenerationScope)
    return scope


def _drain(result: Any) -> None:
    if isinstance(result, Iterator):
        for _ in result:
            pass


WAYS = [
    pytest.param(by_return, id="return"),
    pytest.param(by_stream, id="stream"),
    pytest.param(by_set_output, id="set_output"),
    pytest.param(by_set_usage, id="set_usage"),
]
# Binary fractions, so the cost totals are exact.
USAGES = [(10, 1, 2, 0.5), (20, 2, 0, 0.25), (30, 3, 4, 0.125), (40, 4, 0, 0.0625)]


@pytest.fixture
def events(hogtrace_events: CapturedEvents) -> CapturedEvents:
    """The plugin's fixture (which also fails a test that leaves a scope open), named short."""
    return hogtrace_events


def totals(metrics: hogtrace.Metrics | None) -> dict[str, Any]:
    """Metrics without the latency (which the tests do not control unless frozen)."""
    assert metrics is not None
    values = dataclasses.asdict(metrics)
    del values["latency"]
    return values


class TestSessionTotals:
    @pytest.mark.parametrize("generate", WAYS)
    def test_two_traces_of_two_generations(self, events: CapturedEvents, generate: Any) -> None:
        """A session totals exactly the four generations of its two traces."""
        with hogtrace.session("conv-1") as session:
            with hogtrace.trace("turn-1") as first:
                _drain(generate(USER, USAGES[0]))
                _drain(generate(USER, USAGES[1]))
            with hogtrace.trace("turn-2") as second:
                _drain(generate(USER, USAGES[2]))
                _drain(generate(USER, USAGES[3]))
        expected_first = {
            "input_tokens": 30,
            "output_tokens": 3,
            "cache_read_input_tokens": 2,
            "total_cost_usd": 0.75,
            "generations": 2,
            "errors": 0,
        }
        expected_second = {
            "input_tokens": 70,
            "output_tokens": 7,
            "cache_read_input_tokens": 4,
            "total_cost_usd": 0.1875,
            "generations": 2,
            "errors": 0,
        }
        expected_session = {
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_read_input_tokens": 6,
            "total_cost_usd": 0.9375,
            "generations": 4,
            "errors": 0,
        }
        assert expected_first == totals(first.metrics)
        assert expected_second == totals(second.metrics)
        assert expected_session == totals(session.metrics)
        expected_events = [4, 2]
        assert expected_events == [len(events.generations), len(events.traces)]

    @pytest.mark.parametrize("generate", [by_return, by_stream, by_set_output, by_set_usage])
    def test_spans_and_traces_carry_no_usage(self, events: CapturedEvents, generate: Any) -> None:
        """Token and cost properties appear on generations only, never on spans or traces."""
        with hogtrace.session("conv-1"), hogtrace.trace("turn"):
            _drain(generate(USER, USAGES[0]))
            with hogtrace.span("step"):
                _drain(generate(USER, USAGES[1]))
        expected = ["$ai_generation", "$ai_generation", "$ai_span", "$ai_trace"]
        assert expected == [e.event for e in events]
        for event in [*events.spans, *events.traces]:
            assert not set(USAGE_KEYS) & set(event.properties)
        for event in events.generations:
            assert "$ai_input_tokens" in event.properties

    def test_standalone_generations_count_in_the_session(self, events: CapturedEvents) -> None:
        """Generations outside any trace but inside a session count in the session's totals."""
        with hogtrace.session("conv-1") as session:
            by_set_usage(USER, USAGES[0])
            by_set_usage(USER, USAGES[1])
        expected = {
            "input_tokens": 30,
            "output_tokens": 3,
            "cache_read_input_tokens": 2,
            "total_cost_usd": 0.75,
            "generations": 2,
            "errors": 0,
        }
        assert expected == totals(session.metrics)
        assert not events.traces

    def test_decorated_session(self, events: CapturedEvents) -> None:
        """A decorated session's metrics are read from the scope current inside it."""
        seen: list[hogtrace.Scope] = []

        @hogtrace.session(id=lambda user: f"conv-{user}")
        def conversation(user: str) -> None:
            scope = hogtrace.current()
            assert scope is not None
            seen.append(scope)
            with hogtrace.trace("turn"):
                by_set_usage(USER, USAGES[2])

        conversation("ada")
        expected = {
            "input_tokens": 30,
            "output_tokens": 3,
            "cache_read_input_tokens": 4,
            "total_cost_usd": 0.125,
            "generations": 1,
            "errors": 0,
        }
        assert expected == totals(seen[0].metrics)
        expected_id = "conv-ada"
        assert expected_id == seen[0].id


class TestScopeMetrics:
    def test_none_while_open(self) -> None:
        """Metrics and latency are None until the scope exits."""
        with hogtrace.trace("t") as t, hogtrace.generation("g") as g:
            assert t.metrics is None
            assert g.metrics is None
            assert t.latency is None
        assert t.metrics is not None
        assert g.metrics is not None

    def test_empty_scope(self, events: CapturedEvents) -> None:
        """A scope with nothing inside has zero totals and its own latency."""
        with freeze_time("2025-01-01") as clock, hogtrace.span("s") as s:
            clock.tick(1.5)
        expected = hogtrace.Metrics(latency=1.5)
        assert expected == s.metrics

    def test_latency_is_exact_under_freezegun(self, events: CapturedEvents) -> None:
        """Each scope's metrics latency is its own duration, exactly what the test ticked."""
        with freeze_time("2025-01-01") as clock, hogtrace.trace("t") as t:
            clock.tick(1)
            with hogtrace.generation("g") as g:
                clock.tick(0.25)
            clock.tick(2)
        expected = (3.25, 0.25)
        assert t.metrics is not None
        assert g.metrics is not None
        assert expected == (t.metrics.latency, g.metrics.latency)
        assert expected == (events.traces[0].latency, events.generations[0].latency)

    def test_generation_metrics_are_its_own(self, events: CapturedEvents) -> None:
        """A generation's metrics count itself once, with its tokens and cost."""
        expected = {
            "input_tokens": 10,
            "output_tokens": 1,
            "cache_read_input_tokens": 2,
            "total_cost_usd": 0.5,
            "generations": 1,
            "errors": 0,
        }
        with hogtrace.generation("g") as g:
            g.set_usage(10, 1, cache_read_input_tokens=2)
            g.set_cost(total_cost_usd=0.5)
        assert expected == totals(g.metrics)

    def test_total_cost_prefers_the_given_total(self, events: CapturedEvents) -> None:
        """With a total cost given it is used as is; without one, input + output cost."""
        with hogtrace.trace("t") as t:
            with hogtrace.generation("a") as a:
                a.set_cost(input_cost_usd=1.0, output_cost_usd=1.0, total_cost_usd=0.5)
            with hogtrace.generation("b") as b:
                b.set_cost(input_cost_usd=0.25, output_cost_usd=0.125)
        expected = (0.5, 0.375, 0.875)
        assert expected == tuple(
            m.total_cost_usd for m in (a.metrics, b.metrics, t.metrics) if m is not None
        )

    def test_unknown_counts_total_as_zero(self, events: CapturedEvents) -> None:
        """A generation without usage adds nothing to the token totals, and sends no counts."""
        with hogtrace.trace("t") as t, hogtrace.generation("g") as g:
            g.set_output("no usage here")
        expected = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "total_cost_usd": 0.0,
            "generations": 1,
            "errors": 0,
        }
        assert expected == totals(t.metrics)
        assert "$ai_input_tokens" not in events.generations[0].properties

    def test_spans_sum_their_children(self, events: CapturedEvents) -> None:
        """A span totals what is inside it; its parent totals the span and its siblings."""
        with hogtrace.trace("t") as t:
            with hogtrace.span("retrieve") as retrieve:
                by_set_usage(USER, USAGES[0])
                with hogtrace.span("rerank") as rerank:
                    by_set_usage(USER, USAGES[1])
            by_set_usage(USER, USAGES[2])
        expected = ((20, 1), (30, 2), (60, 3))
        assert expected == tuple(
            (m.input_tokens, m.generations)
            for m in (rerank.metrics, retrieve.metrics, t.metrics)
            if m is not None
        )

    def test_embeddings_add_their_input_tokens(self, events: CapturedEvents) -> None:
        """An embedding's input tokens count in the totals, as PostHog sums them too."""
        response = CreateEmbeddingResponse.model_validate(
            {
                "object": "list",
                "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            }
        )
        with hogtrace.trace("t") as t:
            with hogtrace.embedding("e") as e:
                e.set_output(response)
            by_set_usage(USER, USAGES[0])
        assert t.metrics is not None
        expected = 17
        assert expected == t.metrics.input_tokens

    async def test_async_tasks_roll_up(self, events: CapturedEvents) -> None:
        """Generations in concurrent asyncio tasks count in the trace that created the tasks."""

        @hogtrace.generation
        async def ask(messages: list[dict[str, str]], n: int) -> None:
            await asyncio.sleep(0)
            _current_generation().set_usage(input_tokens=n, output_tokens=1)

        with hogtrace.trace("fan-out") as t:
            await asyncio.gather(*(ask(USER, n) for n in (1, 2, 3, 4)))
        assert t.metrics is not None
        expected = (10, 4, 4)
        assert expected == (t.metrics.input_tokens, t.metrics.output_tokens, t.metrics.generations)

    def test_propagated_threads_roll_up(self, events: CapturedEvents) -> None:
        """Generations run in worker threads through propagate() count in the calling trace."""
        with hogtrace.trace("fan-out") as t, concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(hogtrace.propagate(by_set_usage), USER, usage) for usage in USAGES
            ]
            for future in futures:
                future.result()
        expected = {
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_read_input_tokens": 6,
            "total_cost_usd": 0.9375,
            "generations": 4,
            "errors": 0,
        }
        assert expected == totals(t.metrics)

    def test_metrics_without_any_destination(self) -> None:
        """Metrics are computed even when events go nowhere (nothing configured)."""
        with hogtrace.trace("t") as t:
            by_set_usage(USER, USAGES[0])
        assert t.metrics is not None
        expected = (10, 1)
        assert expected == (t.metrics.input_tokens, t.metrics.generations)

    def test_metrics_of_a_sampled_out_trace(self, events: CapturedEvents) -> None:
        """A trace dropped by sample_rate sends nothing but still measures its totals."""
        hogtrace.configure(sample_rate=0.0)
        with hogtrace.trace("t") as t:
            by_set_usage(USER, USAGES[0])
        assert not events
        assert t.metrics is not None
        expected = (10, 1)
        assert expected == (t.metrics.input_tokens, t.metrics.generations)

    def test_metrics_are_frozen(self) -> None:
        """Metrics is an immutable value."""
        with hogtrace.span("s") as s:
            pass
        assert s.metrics is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.metrics.input_tokens = 1  # type: ignore[misc]


class TestErrorCounts:
    def test_caught_generation_error(self, events: CapturedEvents) -> None:
        """A failed generation counts one error in its trace, which itself did not fail."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> None:
            raise TimeoutError("slow")

        with hogtrace.trace("t") as t:
            with pytest.raises(TimeoutError):
                ask(USER)
            by_set_usage(USER, USAGES[0])
        assert t.metrics is not None
        expected = (1, 2)
        assert expected == (t.metrics.errors, t.metrics.generations)
        assert not events.traces[0].is_error

    def test_every_failed_scope_counts(self, events: CapturedEvents) -> None:
        """An error escaping through generation, span and trace counts once per failed scope."""
        with (
            pytest.raises(ValueError, match="bad"),
            hogtrace.trace("t") as t,
            hogtrace.span("s") as s,
            hogtrace.generation("g") as g,
        ):
            raise ValueError("bad")
        expected = (1, 2, 3)
        assert expected == tuple(
            m.errors for m in (g.metrics, s.metrics, t.metrics) if m is not None
        )

    def test_set_error_counts(self, events: CapturedEvents) -> None:
        """set_error marks a scope failed and counts in the totals without raising."""
        with hogtrace.trace("t") as t, hogtrace.generation("g") as g:
            g.set_error("content filter")
        assert t.metrics is not None
        expected = 1
        assert expected == t.metrics.errors

    async def test_cancellation_is_not_an_error(self, events: CapturedEvents) -> None:
        """A cancelled generation counts as a generation, not as an error."""

        @hogtrace.generation
        async def ask(messages: list[dict[str, str]]) -> None:
            await asyncio.Event().wait()

        with hogtrace.trace("t") as t:
            task = asyncio.ensure_future(ask(USER))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert t.metrics is not None
        expected = (0, 1)
        assert expected == (t.metrics.errors, t.metrics.generations)

    def test_broken_stream_counts_its_usage_and_error(self, events: CapturedEvents) -> None:
        """A stream that fails after its usage chunk counts both the usage and the error."""

        @hogtrace.generation
        def stream(messages: list[dict[str, str]]) -> Iterator[ChatCompletionChunk]:
            yield from chunks(5, 2)
            raise ConnectionError("reset")

        with hogtrace.trace("t") as t, pytest.raises(ConnectionError):
            _drain(stream(USER))
        expected = {
            "input_tokens": 5,
            "output_tokens": 2,
            "cache_read_input_tokens": 0,
            "total_cost_usd": 0.0,
            "generations": 1,
            "errors": 1,
        }
        assert expected == totals(t.metrics)


# --- hogtrace.metric / hogtrace.feedback ----------------------------------------------------------


class TestMetric:
    def test_on_the_current_trace(self, events: CapturedEvents) -> None:
        """metric() inside a trace sends $ai_metric with the name, the value and the trace id."""
        with hogtrace.trace("t") as t, hogtrace.span("step"):
            hogtrace.metric("relevance", 0.92)
        event = events.one("$ai_metric")
        expected = {
            "$ai_metric_name": "relevance",
            "$ai_metric_value": 0.92,
            "$ai_trace_id": t.trace_id,
        }
        assert expected == {k: event.properties.get(k) for k in expected}
        assert "$ai_session_id" not in event.properties

    @pytest.mark.parametrize("value", [1, 0.5, "good", True, None])
    def test_value_is_sent_as_given(self, events: CapturedEvents, value: Any) -> None:
        """The value keeps its type."""
        with hogtrace.trace("t"):
            hogtrace.metric("score", value)
        actual = events.one("$ai_metric").properties["$ai_metric_value"]
        assert (value, type(value)) == (actual, type(actual))

    def test_session_id_inside_a_session(self, events: CapturedEvents) -> None:
        """Inside a session the metric carries $ai_session_id."""
        with hogtrace.session("conv-1"), hogtrace.trace("t"):
            hogtrace.metric("score", 1)
        expected = "conv-1"
        assert expected == events.one("$ai_metric").session_id

    def test_given_trace_id(self, events: CapturedEvents) -> None:
        """With trace_id, the metric goes to that trace even outside any scope."""
        hogtrace.metric("score", 3, trace_id="trace-from-yesterday")
        expected = "trace-from-yesterday"
        assert expected == events.one("$ai_metric").trace_id

    def test_given_trace_id_in_a_session(self, events: CapturedEvents) -> None:
        """A metric for a given trace inside a session carries the session id."""
        with hogtrace.session("conv-1"):
            hogtrace.metric("score", 3, trace_id="earlier-trace")
        event = events.one("$ai_metric")
        expected = ("earlier-trace", "conv-1")
        assert expected == (event.trace_id, event.session_id)

    def test_inside_a_standalone_generation(self, events: CapturedEvents) -> None:
        """Inside a generation with no trace around it, the metric uses that generation's trace."""
        with hogtrace.generation("g") as g:
            hogtrace.metric("score", 1)
        expected = g.trace_id
        assert expected == events.one("$ai_metric").trace_id

    def test_sent_at_once(self, events: CapturedEvents) -> None:
        """The metric is emitted when called, before its trace ends."""
        with hogtrace.trace("t"):
            hogtrace.metric("score", 1)
            expected = ["$ai_metric"]
            assert expected == [e.event for e in events]

    def test_distinct_id_of_the_trace(self, events: CapturedEvents) -> None:
        """The metric goes to the trace's person."""
        with hogtrace.trace("t", distinct_id="user-7"):
            hogtrace.metric("score", 1)
        expected = "user-7"
        assert expected == events.one("$ai_metric").distinct_id

    def test_outside_any_trace_is_dropped(
        self, events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With no trace and no trace_id nothing is sent, a warning is logged, one is dropped."""
        with caplog.at_level(logging.WARNING, logger="hogtrace"):
            hogtrace.metric("score", 1)
        assert not events
        assert "metric() outside any trace" in caplog.text
        expected = 1
        assert expected == hogtrace.stats()["dropped"]

    def test_inside_a_session_without_trace_is_dropped(self, events: CapturedEvents) -> None:
        """A session alone is no trace: without trace_id the metric is not sent."""
        with hogtrace.session("conv-1"):
            hogtrace.metric("score", 1)
        assert not events

    @pytest.mark.parametrize(
        ("name", "kwargs"), [(1, {}), ("ok", {"trace_id": 123})], ids=["name", "trace_id"]
    )
    def test_wrong_types_raise(self, name: Any, kwargs: dict[str, Any]) -> None:
        """A non-string name or trace id is a TypeError."""
        with pytest.raises(TypeError):
            hogtrace.metric(name, 1, **kwargs)

    def test_after_shutdown_nothing_is_sent(self, events: CapturedEvents) -> None:
        """After shutdown() metric() is a silent no-op."""
        hogtrace.shutdown()
        hogtrace.metric("score", 1, trace_id="t1")
        assert not events


class TestFeedback:
    def test_huge_text_is_truncated_to_the_limit(self, events: CapturedEvents) -> None:
        """A 2 MB feedback text is cut with a marker to fit max_event_bytes, not sent whole."""
        hogtrace.feedback("f" * 2_000_000, trace_id="t-1")
        event = events.one("$ai_feedback")
        import json

        assert len(json.dumps(event.properties).encode()) <= 800_000
        assert event.properties["$ai_truncated"] is True
        assert "…[truncated" in event.properties["$ai_feedback_text"]

    def test_on_the_current_trace_in_a_session(self, events: CapturedEvents) -> None:
        """feedback() sends $ai_feedback with the text, the trace id and the session id."""
        with hogtrace.session("conv-1"), hogtrace.trace("t") as t:
            hogtrace.feedback("Great answer")
        event = events.one("$ai_feedback")
        expected = {
            "$ai_feedback_text": "Great answer",
            "$ai_trace_id": t.trace_id,
            "$ai_session_id": "conv-1",
        }
        assert expected == {k: event.properties.get(k) for k in expected}

    def test_given_trace_id(self, events: CapturedEvents) -> None:
        """With trace_id, feedback goes to that trace outside any scope."""
        hogtrace.feedback("thumbs down", trace_id="trace-1")
        expected = ("trace-1", "thumbs down")
        event = events.one("$ai_feedback")
        assert expected == (event.trace_id, event.properties["$ai_feedback_text"])

    def test_redact_hook_applies(self, events: CapturedEvents) -> None:
        """The configure(redact=...) hook applies to the feedback text."""
        hogtrace.configure(redact=lambda value: "[hidden]" if isinstance(value, str) else value)
        hogtrace.feedback("my email is a@b.c", trace_id="trace-1")
        expected = "[hidden]"
        assert expected == events.one("$ai_feedback").properties["$ai_feedback_text"]

    def test_non_string_text_raises(self) -> None:
        """Feedback text must be a string."""
        with pytest.raises(TypeError):
            hogtrace.feedback(5, trace_id="trace-1")  # type: ignore[arg-type]


# --- examples/chat_loop.py ------------------------------------------------------------------------


def _session_line(stdout: str) -> str:
    """The line of the example's output that gives the session totals."""
    return next(line for line in stdout.splitlines() if line.startswith("session chat-42:"))


class TestChatLoopExample:
    def test_runs_and_links_both_turns(
        self, events: CapturedEvents, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Two traces of one session, two generations each, printed with the session totals."""
        runpy.run_path(str(EXAMPLE))["main"]()
        expected_kinds = {"$ai_trace": 2, "$ai_generation": 4, "$ai_metric": 2}
        assert expected_kinds == {kind: len(events.of(kind)) for kind in expected_kinds}
        assert {"chat-42"} == {e.session_id for e in events}
        assert {"user-42"} == {e.distinct_id for e in events}
        streams = [e for e in events.generations if e.properties["$ai_stream"]]
        expected_streams = [("title", "anthropic"), ("title", "anthropic")]
        assert expected_streams == [(e.name, e.properties["$ai_provider"]) for e in streams]
        for event in events.traces:
            assert not set(USAGE_KEYS) & set(event.properties)
        assert "4 generations" in _session_line(capsys.readouterr().out)

    def test_session_totals_match_the_generations(self, events: CapturedEvents) -> None:
        """The session's metrics equal the sums over its generation events."""
        totals_ = runpy.run_path(str(EXAMPLE))["main"]()
        generations = events.generations

        def total(key: str) -> Any:
            return sum(e.properties.get(key, 0) for e in generations)

        expected = (
            total("$ai_input_tokens"),
            total("$ai_output_tokens"),
            total("$ai_cache_read_input_tokens"),
            len(generations),
        )
        assert expected == (
            totals_.input_tokens,
            totals_.output_tokens,
            totals_.cache_read_input_tokens,
            totals_.generations,
        )
        assert totals_.cache_read_input_tokens > 0

    def test_runs_without_the_sdks(self, events: CapturedEvents, capsys: Any) -> None:
        """With openai and anthropic not importable the example falls back to dicts, same totals."""
        runpy.run_path(str(EXAMPLE))["main"]()
        with_sdks = _session_line(capsys.readouterr().out)
        code = (
            "import runpy, sys\n"
            "sys.modules['openai'] = sys.modules['anthropic'] = None\n"
            f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
            "assert 'openai.types' not in sys.modules\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            # Without POSTHOG_* / HOGTRACE_* variables the example only prints.
            env={k: v for k, v in os.environ.items() if not k.startswith(("POSTHOG", "HOGTRACE"))},
        )
        expected = (0, "")
        assert expected == (result.returncode, result.stderr.partition("Traceback")[1])
        assert with_sdks == _session_line(result.stdout)
        assert "title [generation" in result.stderr  # the console tree


class TestAnnotationsPostHogShows:
    def test_zero_metric_is_sent_as_a_string(self, hogtrace_events: CapturedEvents) -> None:
        """0 and False, which PostHog's trace view hides, are sent as "0" and "false"."""
        with hogtrace.trace("t"):
            hogtrace.metric("errors", 0)
            hogtrace.metric("passed", False)
            hogtrace.metric("score", 0.5)

        values = [e.properties["$ai_metric_value"] for e in hogtrace_events.metrics]
        assert ["0", "false", 0.5] == values

    def test_distinct_id_for_late_feedback(self, hogtrace_events: CapturedEvents) -> None:
        """Feedback sent later, outside the trace, can name its user."""
        hogtrace.feedback("great", trace_id="trace-1", distinct_id="user-9")
        hogtrace.metric("stars", 5, trace_id="trace-1", distinct_id="user-9")

        assert [("user-9", None)] * 2 == [
            (e.distinct_id, e.properties.get("$process_person_profile")) for e in hogtrace_events
        ]

    def test_inherits_the_scopes_distinct_id(self, hogtrace_events: CapturedEvents) -> None:
        """Without ``distinct_id=``, an annotation goes to the current scope's person."""
        with hogtrace.trace("t", distinct_id="alice"):
            hogtrace.feedback("ok")

        assert "alice" == hogtrace_events.feedback.one().distinct_id
