"""Tests for the text tree shared by the console sink and ``hogtrace.testing``."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

import hogtrace
from hogtrace._events import Event
from hogtrace._tree import label, render_tree
from hogtrace.testing import capture_events

_NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def ev(event: str, **props: Any) -> Event:
    """A bare event with ``$ai_*`` properties given without their prefix."""
    return Event(event, "user", {f"$ai_{k}": v for k, v in props.items()}, _NOW)


@hogtrace.span
def retrieve(query: str) -> list[str]:
    return [query]


@hogtrace.generation(model="gpt-4o", provider="openai")
def chat(messages: list[dict[str, str]]) -> str:
    scope = hogtrace.current()
    assert isinstance(scope, hogtrace.GenerationScope)
    scope.set_usage(input_tokens=12, output_tokens=5)
    return "Paris"


@hogtrace.trace
def answer(question: str) -> str:
    retrieve(question)
    with hogtrace.span("rerank"), hogtrace.span("score"):
        pass
    return chat([{"role": "user", "content": question}])


class TestCapturedTrees:
    def test_nested_spans(self) -> None:
        """Spans nest under the scope they ran in, in the order they ran."""
        with capture_events() as events:
            answer("capital of France?")

        assert (
            "answer [trace]\n"
            "├── retrieve [span]\n"
            "├── rerank [span]\n"
            "│   └── score [span]\n"
            "└── chat [generation, gpt-4o, tokens in=12 out=5]"
        ) == events.tree()

    def test_generation_named_after_its_model(self) -> None:
        """The model is not repeated when it is the generation's name."""
        with capture_events() as events, hogtrace.trace("t"), hogtrace.generation("gpt-4o") as g:
            g.set_model("gpt-4o")

        assert "t [trace]\n└── gpt-4o [generation]" == events.tree()

    def test_error(self) -> None:
        """A failed scope is marked with its error."""

        @hogtrace.span(name="check")
        def check() -> None:
            raise ValueError("bad input")

        with (
            capture_events() as events,
            hogtrace.trace("t"),
            pytest.raises(ValueError, match="bad"),
        ):
            check()

        assert "t [trace]\n└── check [span] ✗ ValueError: bad input" == events.tree()

    def test_self_rooted_generation(self) -> None:
        """A generation with no trace around it is a tree of its own."""
        with capture_events() as events:
            chat([{"role": "user", "content": "hi"}])

        assert "chat [generation, gpt-4o, tokens in=12 out=5]" == events.tree()

    def test_two_traces_in_one_session(self) -> None:
        """Each trace is its own tree, and each shows its session."""
        with capture_events() as events, hogtrace.session("conv-1"):
            answer("one")
            chat([{"role": "user", "content": "two"}])

        assert (
            "answer [trace, session conv-1]\n"
            "├── retrieve [span]\n"
            "├── rerank [span]\n"
            "│   └── score [span]\n"
            "└── chat [generation, gpt-4o, tokens in=12 out=5]\n"
            "chat [generation, gpt-4o, tokens in=12 out=5, session conv-1]"
        ) == events.tree()

    def test_session_shown_where_it_changes(self) -> None:
        """A session opened inside a trace without one tags the root; the tree shows it there."""
        with capture_events() as events, hogtrace.trace("t"):
            with hogtrace.session("inner"), hogtrace.span("a"), hogtrace.span("b"):
                pass
            with hogtrace.span("c"):
                pass

        assert (
            "t [trace, session inner]\n├── a [span]\n│   └── b [span]\n└── c [span]"
        ) == events.tree()

    def test_metric_and_feedback(self) -> None:
        """Metrics and feedback hang under their trace, where they were sent."""
        with capture_events() as events, hogtrace.trace("t"):
            with hogtrace.span("a"):
                hogtrace.metric("relevance", 0.9)
            hogtrace.feedback("great answer")
            hogtrace.metric("verdict", "good")

        assert (
            "t [trace]\n"
            "├── a [span]\n"
            "├── metric relevance=0.9\n"
            "├── feedback 'great answer'\n"
            "└── metric verdict='good'"
        ) == events.tree()

    def test_metric_after_the_trace(self) -> None:
        """A metric sent later with the trace id joins that trace's tree."""
        with capture_events() as events:
            with hogtrace.trace("t") as t:
                pass
            with hogtrace.trace("other"):
                pass
            hogtrace.metric("score", 1, trace_id=t.trace_id)

        assert "t [trace]\n└── metric score=1\nother [trace]" == events.tree()

    def test_embedding_with_input_tokens_only(self) -> None:
        """Only the token counts that are known are shown."""
        with (
            capture_events() as events,
            hogtrace.trace("t"),
            hogtrace.embedding("embed", model="text-embedding-3-small") as e,
        ):
            e.set_usage(input_tokens=8)

        assert "t [trace]\n└── embed [embedding, text-embedding-3-small, tokens in=8]" == (
            events.tree()
        )

    async def test_siblings_in_the_order_they_opened(self) -> None:
        """Concurrent siblings appear in the order they started, not the order they ended."""

        async def step(name: str, wait_for: asyncio.Event, done: asyncio.Event) -> None:
            async with hogtrace.span(name):
                await wait_for.wait()
                done.set()

        go, first_done, second_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        go.set()
        with capture_events() as events:
            async with hogtrace.trace("t"):
                # "first" starts first but waits for "second" to finish.
                await asyncio.gather(
                    step("first", second_done, first_done), step("second", go, second_done)
                )

        assert ["second", "first", "t"] == [e.name for e in events]
        assert "t [trace]\n├── first [span]\n└── second [span]" == events.tree()

    def test_same_output_every_run(self) -> None:
        """Capturing the same workflow twice renders the same tree."""
        trees = []
        for _ in range(2):
            with capture_events() as events, hogtrace.session():
                answer("q")
            trees.append(events.tree())

        assert trees[0] == trees[1]


class TestRenderTree:
    def test_no_events(self) -> None:
        """Nothing renders as an empty string."""
        assert "" == render_tree([])

    def test_latency_on_the_console(self) -> None:
        """The console shows each scope's latency in milliseconds."""
        events = [ev("$ai_trace", trace_id="t", span_id="t", span_name="t", latency=0.0125)]

        assert "t [trace] 12.5 ms" == render_tree(events)
        assert "t [trace]" == render_tree(events, show_latency=False)

    def test_orphan_is_a_root(self) -> None:
        """An event whose parent was not captured is shown as a root."""
        events = [ev("$ai_span", trace_id="t", span_id="s", parent_id="missing", span_name="a")]

        assert "a [span]" == render_tree(events)

    def test_parent_cycle(self) -> None:
        """Events whose parents form a cycle are still shown, once each."""
        events = [
            ev("$ai_span", trace_id="t", span_id="a", parent_id="b", span_name="a"),
            ev("$ai_span", trace_id="t", span_id="b", parent_id="a", span_name="b"),
        ]

        assert "a [span]\n└── b [span]" == render_tree(events)

    def test_unknown_event_type(self) -> None:
        """Other ``$ai_*`` events are shown with their event name."""
        events = [
            ev("$ai_trace", trace_id="t", span_id="t", span_name="t"),
            ev("$ai_evaluation", trace_id="t", span_id="e", parent_id="t", span_name="judge"),
        ]

        assert "t [trace]\n└── judge [$ai_evaluation]" == render_tree(events)

    def test_roots_of_one_trace_stay_together(self) -> None:
        """Roots are grouped by trace, in the order each trace first appears."""
        events = [
            ev("$ai_span", trace_id="t1", span_id="a", parent_id="x", span_name="a"),
            ev("$ai_span", trace_id="t2", span_id="b", parent_id="y", span_name="b"),
            ev("$ai_span", trace_id="t1", span_id="c", parent_id="z", span_name="c"),
        ]

        assert "a [span]\nc [span]\nb [span]" == render_tree(events)

    def test_order_key(self) -> None:
        """``order`` sorts siblings."""
        events = [
            ev("$ai_span", trace_id="t", span_id="b", parent_id="t", span_name="b"),
            ev("$ai_span", trace_id="t", span_id="a", parent_id="t", span_name="a"),
            ev("$ai_trace", trace_id="t", span_id="t", span_name="t"),
        ]
        rank = {"t": 0, "a": 1, "b": 2}

        assert "t [trace]\n├── a [span]\n└── b [span]" == render_tree(
            events, order=lambda e: rank[e.properties["$ai_span_id"]]
        )


class TestLabel:
    def test_multiline_error(self) -> None:
        """Line breaks in an error are escaped, so one event stays one line."""
        event = ev("$ai_span", span_name="a", is_error=True, error="ValueError: one\ntwo")

        assert "a [span] ✗ ValueError: one\\ntwo" == label(event)

    def test_long_error(self) -> None:
        """A long error is cut with an ellipsis."""
        event = ev("$ai_span", span_name="a", is_error=True, error="E: " + "x" * 500)

        text = label(event)

        assert text.endswith("x…")
        assert len("a [span] ✗ ") + 200 == len(text)

    def test_error_without_text(self) -> None:
        """An error flag without ``$ai_error`` still shows the mark."""
        assert "a [span] ✗ error" == label(ev("$ai_span", span_name="a", is_error=True))

    def test_unnamed_generation_uses_its_model(self) -> None:
        """A wrapper generation without a span name is labelled with its model."""
        assert "gpt-4o [generation, tokens out=3]" == label(
            ev("$ai_generation", model="gpt-4o", output_tokens=3)
        )

    def test_session_can_be_hidden(self) -> None:
        """``show_session=False`` leaves the session out."""
        event = ev("$ai_span", span_name="a", session_id="s")

        assert ("a [span, session s]", "a [span]") == (
            label(event),
            label(event, show_session=False),
        )
