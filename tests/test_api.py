"""The public helpers of ``_api``: the typed ``current_*`` accessors and the running trace."""

from __future__ import annotations

from typing import Any

import posthog

import hogtrace
from hogtrace.testing import CapturedEvents


class TestAccessorsOutsideScopes:
    def test_never_none_and_harmless(self, hogtrace_events: CapturedEvents) -> None:
        """Outside any scope the accessors give no-op scopes whose methods do nothing."""
        hogtrace.current_span().set_properties(a=1)
        hogtrace.current_span().set_output("x")
        hogtrace.current_generation().set_usage(input_tokens=3)
        hogtrace.current_generation().set_model("m")
        hogtrace.current_trace().set_name("n")
        hogtrace.current_trace().set_distinct_id("u")

        assert (None, []) == (hogtrace.current(), list(hogtrace_events))
        assert {} == dict(hogtrace.current_generation().usage)


class TestAccessorsInsideScopes:
    def test_current_span_skips_sessions(self, hogtrace_events: CapturedEvents) -> None:
        """``current_span()`` is the innermost scope that emits, not a session around it."""
        with hogtrace.span("outer") as outer, hogtrace.session("s"):
            assert outer is hogtrace.current_span()

    def test_current_generation_from_a_nested_span(self, hogtrace_events: CapturedEvents) -> None:
        """Inside a span inside a generation, ``current_generation()`` is that generation."""

        @hogtrace.generation(model="m")
        def chat() -> str:
            with hogtrace.span("parse"):
                hogtrace.current_generation().set_usage(input_tokens=7, output_tokens=2)
            return "ok"

        chat()

        props = hogtrace_events.one("$ai_generation").properties
        assert (7, 2) == (props["$ai_input_tokens"], props["$ai_output_tokens"])

    def test_current_trace_is_the_root(self, hogtrace_events: CapturedEvents) -> None:
        """``current_trace()`` deep inside a trace is its root scope."""
        with hogtrace.trace("root") as root, hogtrace.span("a"), hogtrace.span("b"):
            assert root is hogtrace.current_trace()


class TestRunningTrace:
    def test_name_properties_input_output_of_the_root(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """Code deep inside a trace sets the root's name, properties, input and output."""

        @hogtrace.span
        def route() -> None:
            trace = hogtrace.current_trace()
            trace.set_name("GET /chat/{id}")
            trace.set_properties(route="/chat/{id}")
            trace.set_input({"id": "c-1"})
            trace.set_output({"status": 200})

        with hogtrace.trace("GET /chat/c-1"):
            route()

        root = hogtrace_events.one("$ai_trace")
        assert ("GET /chat/{id}", "/chat/{id}") == (root.name, root.properties["route"])
        assert ({"id": "c-1"}, {"status": 200}) == (root.input, root.output)

    def test_distinct_id_learned_mid_trace(self, hogtrace_events: CapturedEvents) -> None:
        """A person set mid-trace gets the root and every event closed after it."""
        with hogtrace.trace("handle"):
            with hogtrace.span("before-auth"):
                pass
            with hogtrace.span("auth"):
                hogtrace.current_trace().set_distinct_id("alice")
            with hogtrace.span("after-auth"):
                pass

        people = {
            e.name: (e.distinct_id, e.properties.get("$process_person_profile"))
            for e in hogtrace_events
        }
        root = hogtrace_events.one("$ai_trace")
        assert (root.trace_id, False) == people["before-auth"]
        assert {
            "auth": ("alice", None),
            "after-auth": ("alice", None),
            "handle": ("alice", None),
        } == {k: v for k, v in people.items() if k != "before-auth"}

    def test_identify_context_mid_trace(self, hogtrace_events: CapturedEvents) -> None:
        """posthog's ``identify_context()`` inside a trace sends the root to that person too."""
        with posthog.new_context(capture_exceptions=False), hogtrace.trace("handle"):
            posthog.identify_context("bob")
            with hogtrace.span("after"):
                pass

        assert {"bob"} == {e.distinct_id for e in hogtrace_events}

    def test_session_opened_inside_a_trace_tags_its_root(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A session opened in a running trace without one tags that trace's root event."""

        @hogtrace.session(id=lambda conversation: conversation)
        def in_conversation(conversation: str) -> None:
            with hogtrace.span("step"):
                pass

        with hogtrace.trace("request"):
            in_conversation("conv-7")

        sessions: dict[str, Any] = {e.name: e.session_id for e in hogtrace_events}
        assert {"request": "conv-7", "step": "conv-7"} == sessions


class TestRunningTraceEdges:
    def test_session_with_a_person_opened_inside_a_trace(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A session with a distinct id opened inside a trace gives the root that person too."""
        with (
            hogtrace.trace("handle"),
            hogtrace.session("conv-1", distinct_id="user-7"),
            hogtrace.span("answer"),
        ):
            pass

        assert {"user-7"} == {e.distinct_id for e in hogtrace_events}

    def test_person_set_after_the_root_closed_is_ignored(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A scope outliving its trace cannot change the person of the already-closed root."""
        with hogtrace.trace("handle", distinct_id="anon-1"):
            late = hogtrace.span("late")
            scope = late.__enter__()
        scope.set_distinct_id("user-42")
        late.__exit__(None, None, None)

        people = {e.name: e.distinct_id for e in hogtrace_events}
        assert ("anon-1", "user-42") == (people["handle"], people["late"])
