"""Scopes: nesting, sessions, trace ids, identity, properties, errors and the scope object."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import hogtrace
from hogtrace import _scope
from hogtrace.testing import CapturedEvents


class TestNesting:
    def test_outermost_span_is_trace(self, hogtrace_events: CapturedEvents) -> None:
        """The outermost span emits ``$ai_trace`` whose span id is the trace id, with no parent."""
        with hogtrace.span("root") as root:
            pass

        event = hogtrace_events.one()
        expected = "$ai_trace"
        assert expected == event.event
        assert root.id == root.trace_id == event.trace_id == event.span_id
        assert "$ai_parent_id" not in event.properties
        assert root.parent_id is None

    def test_outermost_trace_is_trace(self, hogtrace_events: CapturedEvents) -> None:
        """The outermost trace emits ``$ai_trace`` whose span id is the trace id."""

        @hogtrace.trace
        def run() -> None:
            pass

        run()
        event = hogtrace_events.one()
        assert ("$ai_trace", event.trace_id) == (event.event, event.span_id)
        assert "$ai_parent_id" not in event.properties

    def test_direct_children_point_at_trace(self, hogtrace_events: CapturedEvents) -> None:
        """Direct children of the root are ``$ai_span`` events whose parent is the trace id."""
        with hogtrace.trace("root") as root:
            with hogtrace.span("a"):
                pass
            with hogtrace.span("b"):
                pass

        a, b, trace = hogtrace_events
        expected = ["$ai_span", "$ai_span", "$ai_trace"]
        assert expected == [a.event, b.event, trace.event]
        assert {root.id} == {a.parent_id, b.parent_id, a.trace_id, b.trace_id}
        assert len({a.span_id, b.span_id, trace.span_id}) == 3

    def test_deeper_children_point_at_parent_span(self, hogtrace_events: CapturedEvents) -> None:
        """Grandchildren point at their parent span's id, all sharing one trace id."""
        with (
            hogtrace.trace("root") as root,
            hogtrace.span("a") as a,
            hogtrace.span("b") as b,
            hogtrace.span("c") as c,
        ):
            assert (root.id, a.id, b.id) == (a.parent_id, b.parent_id, c.parent_id)

        by_name = {e.name: e for e in hogtrace_events}
        assert root.id == by_name["a"].parent_id
        assert a.id == by_name["b"].parent_id
        assert b.id == by_name["c"].parent_id
        assert {root.id} == {e.trace_id for e in hogtrace_events}

    def test_trace_inside_trace_is_span(self, hogtrace_events: CapturedEvents) -> None:
        """A ``@trace`` function called inside a trace emits a ``$ai_span``."""

        @hogtrace.trace("step")
        def step() -> int:
            return 1

        @hogtrace.trace("workflow")
        def workflow() -> int:
            return step() + step()

        expected = 1
        assert expected == step()
        expected = 2
        assert expected == workflow()

        alone, first, second, outer = hogtrace_events
        expected = "$ai_trace"
        assert expected == alone.event
        expected = ["$ai_span", "$ai_span", "$ai_trace"]
        assert expected == [e.event for e in (first, second, outer)]
        assert {outer.span_id} == {first.parent_id, second.parent_id, first.trace_id}
        assert alone.trace_id != outer.trace_id

    def test_children_emitted_before_parents(self, hogtrace_events: CapturedEvents) -> None:
        """Events come out in closing order: every child before its parent."""

        @hogtrace.span
        def leaf() -> None:
            pass

        @hogtrace.span
        def middle() -> None:
            leaf()
            leaf()

        @hogtrace.trace("root")
        def root() -> None:
            middle()
            leaf()

        root()
        position = {e.span_id: i for i, e in enumerate(hogtrace_events)}
        for event in hogtrace_events:
            if event.parent_id is not None:
                assert position[event.span_id] < position[event.parent_id]
        expected = "root"
        assert expected == hogtrace_events[-1].name

    def test_tree(self, hogtrace_events: CapturedEvents) -> None:
        """The captured tree shows the nesting PostHog will show."""
        with hogtrace.trace("root"):
            with hogtrace.span("a"), hogtrace.span("b"):
                pass
            with hogtrace.span("c"):
                pass

        expected = "root [trace]\n├── a [span]\n│   └── b [span]\n└── c [span]"
        assert expected == hogtrace_events.tree()

    def test_generation_alone_starts_a_trace(self, hogtrace_events: CapturedEvents) -> None:
        """A generation outside any trace has its own trace id as parent and no ``$ai_trace``."""
        with hogtrace.generation("llm") as gen:
            pass
        with hogtrace.embedding("embed"):
            pass

        first, second = hogtrace_events
        expected = ["$ai_generation", "$ai_embedding"]
        assert expected == [first.event, second.event]
        assert first.trace_id == first.parent_id == gen.trace_id
        assert first.span_id != first.trace_id
        assert second.trace_id == second.parent_id != first.trace_id

    def test_generation_inside_span(self, hogtrace_events: CapturedEvents) -> None:
        """A generation inside a span is that span's child."""

        @hogtrace.generation
        def call(prompt: str) -> str:
            return "answer"

        with hogtrace.trace("root") as root, hogtrace.span("step") as step:
            call("q")

        gen = hogtrace_events.generations[0]
        assert (root.id, step.id) == (gen.trace_id, gen.parent_id)

    def test_siblings_after_block_exit(self, hogtrace_events: CapturedEvents) -> None:
        """After a block exits, the enclosing scope is current again."""
        with hogtrace.trace("root") as root:
            with hogtrace.span("a"):
                pass
            assert root is hogtrace.current()
        assert hogtrace.current() is None


class TestSessions:
    def test_literal_id_every_event(self, hogtrace_events: CapturedEvents) -> None:
        """Every event inside a session carries its id; the session emits no event itself."""

        @hogtrace.generation
        def llm() -> str:
            return "hi"

        with hogtrace.session("conv-1"), hogtrace.trace("t"), hogtrace.span("s"):
            llm()

        expected = 3
        assert expected == len(hogtrace_events)
        assert {"conv-1"} == {e.properties["$ai_session_id"] for e in hogtrace_events}

    def test_empty_session_emits_nothing(self, hogtrace_events: CapturedEvents) -> None:
        """A session with nothing inside emits nothing."""

        @hogtrace.session("s")
        def f() -> int:
            return 1

        expected = 1
        assert expected == f()
        with hogtrace.session(id="s2"):
            pass
        expected = []
        assert expected == list(hogtrace_events)

    def test_positional_and_keyword_id(self, hogtrace_events: CapturedEvents) -> None:
        """``session("x")`` and ``session(id="x")`` give the same session id."""

        @hogtrace.session("pos")
        @hogtrace.span("a")
        def a() -> None:
            pass

        @hogtrace.session(id="kw")
        @hogtrace.span("b")
        def b() -> None:
            pass

        a()
        b()
        expected = ["pos", "kw"]
        assert expected == [e.session_id for e in hogtrace_events]

    def test_callable_id_receives_arguments(self, hogtrace_events: CapturedEvents) -> None:
        """A callable id receives the function's arguments exactly as the function does."""
        calls: list[tuple[Any, ...]] = []

        def pick(chat_id: str, text: str, *, lang: str = "en") -> str:
            calls.append((chat_id, text, lang))
            return f"chat-{chat_id}"

        @hogtrace.session(id=pick)
        @hogtrace.trace("turn")
        def handle(chat_id: str, text: str, *, lang: str = "en") -> str:
            return text

        handle("7", "hi", lang="fr")
        handle("8", text="yo")

        expected = [("7", "hi", "fr"), ("8", "yo", "en")]
        assert expected == calls
        expected = ["chat-7", "chat-8"]
        assert expected == [e.session_id for e in hogtrace_events]

    def test_callable_id_receives_self(self, hogtrace_events: CapturedEvents) -> None:
        """On a method, the callable id receives ``self`` first."""

        class Bot:
            def __init__(self, name: str) -> None:
                self.name = name

            @hogtrace.session(id=lambda self, text: f"{self.name}:{text}")
            @hogtrace.span("reply")
            def reply(self, text: str) -> str:
                return text

        Bot("a").reply("x")
        Bot("b").reply(text="y")
        expected = ["a:x", "b:y"]
        assert expected == [e.session_id for e in hogtrace_events]

    @pytest.mark.parametrize("order", ["over", "under"])
    def test_callable_id_on_classmethod(self, order: str, hogtrace_events: CapturedEvents) -> None:
        """On a classmethod, the callable id receives the class first."""
        decorate = hogtrace.session(id=lambda cls, n: f"{cls.__name__}-{n}")
        if order == "over":

            class Bot:
                @decorate
                @classmethod
                def run(cls, n: int) -> None:
                    with hogtrace.span("in"):
                        pass

        else:

            class Bot:  # type: ignore[no-redef]
                @classmethod
                @decorate
                def run(cls, n: int) -> None:
                    with hogtrace.span("in"):
                        pass

        Bot.run(3)
        expected = "Bot-3"
        assert expected == hogtrace_events.one().session_id

    async def test_callable_id_async(self, hogtrace_events: CapturedEvents) -> None:
        """A callable id works on an ``async def``."""

        @hogtrace.session(id=lambda user: f"u-{user}")
        @hogtrace.trace
        async def chat(user: str) -> str:
            await asyncio.sleep(0)
            return user

        expected = "z"
        assert expected == await chat("z")
        expected = "u-z"
        assert expected == hogtrace_events.one().session_id

    def test_generated_id_per_call(self, hogtrace_events: CapturedEvents) -> None:
        """Without an id, each call and each ``with`` block gets a new session id."""
        spec = hogtrace.session()

        @hogtrace.session
        @hogtrace.span("call")
        def call() -> None:
            pass

        call()
        call()
        for _ in range(2):
            with spec, hogtrace.span("block"):
                pass

        ids = [e.session_id for e in hogtrace_events]
        expected = 4
        assert expected == len(set(ids))
        assert None not in ids

    def test_inner_session_wins(self, hogtrace_events: CapturedEvents) -> None:
        """A session inside a session wins for its extent; the outer one resumes after it."""
        with hogtrace.session("outer"), hogtrace.trace("t"):
            with hogtrace.span("before"):
                pass
            with hogtrace.session("inner"), hogtrace.span("in"):
                pass
            with hogtrace.span("after"):
                pass

        expected = {"before": "outer", "in": "inner", "after": "outer", "t": "outer"}
        assert expected == {e.name: e.session_id for e in hogtrace_events}

    def test_session_in_trace_keeps_tree(self, hogtrace_events: CapturedEvents) -> None:
        """A session opened inside a trace does not change the parent of spans inside it."""
        with (
            hogtrace.trace("t") as t,
            hogtrace.span("s") as s,
            hogtrace.session("x"),
            hogtrace.span("inner"),
        ):
            pass

        inner = hogtrace_events.one(name="inner")
        assert (t.id, s.id, "x") == (inner.trace_id, inner.parent_id, inner.session_id)

    def test_session_scope_object(self, hogtrace_events: CapturedEvents) -> None:
        """A session is ``current()`` inside it, with its id as ``id`` and ``session_id``."""
        with hogtrace.session("conv-9") as session:
            assert session is hogtrace.current()
            expected = ("conv-9", "conv-9")
            assert expected == (session.id, session.session_id)
            assert session.trace_id is None
            with hogtrace.span("a") as a:
                expected = "conv-9"
                assert expected == a.session_id
        assert hogtrace.current() is None
        assert session.latency is not None


class TestTraceId:
    def test_literal_id(self, hogtrace_events: CapturedEvents) -> None:
        """A literal valid id is the trace id (and the root's span id) of every event."""

        @hogtrace.trace(id="conv-42:turn-1")
        def run() -> None:
            with hogtrace.span("s"):
                pass

        run()
        span, trace = hogtrace_events
        assert "conv-42:turn-1" == trace.trace_id == trace.span_id == span.trace_id
        expected = "conv-42:turn-1"
        assert expected == span.parent_id

    def test_all_allowed_characters(self, hogtrace_events: CapturedEvents) -> None:
        """Letters, digits and ``-_~.@()!':|`` are all accepted."""
        allowed = "aZ09-_~.@()!':|"
        with hogtrace.trace(id=allowed):
            pass
        assert allowed == hogtrace_events.one().trace_id

    @pytest.mark.parametrize("bad", ["has space", "slash/", "tab\t", "é", "a,b", ""])
    def test_literal_invalid_raises(self, bad: str) -> None:
        """A literal invalid id raises ``ValueError`` when the decorator is built."""
        with pytest.raises(ValueError, match="trace id"):
            hogtrace.trace(id=bad)

    def test_callable_id(self, hogtrace_events: CapturedEvents) -> None:
        """A callable id is computed from the call's arguments."""

        @hogtrace.trace(id=lambda run_id: f"run-{run_id}")
        def job(run_id: int) -> None:
            pass

        job(1)
        job(2)
        expected = ["run-1", "run-2"]
        assert expected == [e.trace_id for e in hogtrace_events]

    def test_callable_invalid_id_replaced(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An invalid id computed at call time is logged and replaced by a fresh one."""

        @hogtrace.trace(id=lambda q: q)
        def job(q: str) -> str:
            return q

        with caplog.at_level(logging.WARNING, logger="hogtrace"):
            expected = "not valid!"
            assert expected == job("not valid!")

        event = hogtrace_events.one()
        assert event.trace_id is not None
        assert event.trace_id != "not valid!"
        assert event.trace_id == event.span_id
        assert any("not valid!" in r.getMessage() for r in caplog.records)

    def test_callable_raising_uses_fresh_id(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A callable id that raises is logged; the call runs under a fresh trace id."""

        def broken(x: int) -> str:
            raise LookupError("nope")

        @hogtrace.trace(id=broken)
        def job(x: int) -> int:
            return x

        with caplog.at_level(logging.WARNING, logger="hogtrace"):
            expected = 5
            assert expected == job(5)
        assert hogtrace_events.one().trace_id is not None
        assert any("nope" in r.getMessage() for r in caplog.records)

    def test_id_on_non_root_ignored(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``id`` on a trace that is not a root is ignored with a warning."""

        @hogtrace.trace(id="inner-id")
        def inner() -> None:
            pass

        with caplog.at_level(logging.WARNING, logger="hogtrace"), hogtrace.trace(id="outer-id"):
            inner()

        nested, _ = hogtrace_events
        expected = ("outer-id", "outer-id")
        assert expected == (nested.trace_id, nested.parent_id)
        assert nested.span_id != "inner-id"
        assert any(
            r.levelno == logging.WARNING and "inner-id" in r.getMessage() for r in caplog.records
        )

    def test_same_literal_id_twice(self, hogtrace_events: CapturedEvents) -> None:
        """Two runs with the same literal id land in the same trace."""
        for _ in range(2):
            with hogtrace.trace(id="fixed"):
                pass
        expected = ["fixed", "fixed"]
        assert expected == [e.trace_id for e in hogtrace_events]


class TestIdentityAndProperties:
    def test_personless_fallback(self, hogtrace_events: CapturedEvents) -> None:
        """With no distinct id anywhere, events use the trace id and are personless."""
        with hogtrace.trace("t"), hogtrace.span("s"):
            pass

        for event in hogtrace_events:
            assert event.trace_id == event.distinct_id
            assert event.properties["$process_person_profile"] is False

    def test_configure_default(self, hogtrace_events: CapturedEvents) -> None:
        """``configure(distinct_id=...)`` is the default distinct id."""
        hogtrace.configure(distinct_id="default-user")
        with hogtrace.trace("t"), hogtrace.span("s"):
            pass

        assert {"default-user"} == {e.distinct_id for e in hogtrace_events}
        assert all("$process_person_profile" not in e.properties for e in hogtrace_events)

    def test_session_distinct_id(self, hogtrace_events: CapturedEvents) -> None:
        """A session's distinct id applies to every event inside, over the configured one."""
        hogtrace.configure(distinct_id="default-user")
        with (
            hogtrace.session("s", distinct_id="alice"),
            hogtrace.trace("t"),
            hogtrace.span("s"),
            hogtrace.generation("g"),
        ):
            pass

        expected = ["alice"] * 3
        assert expected == [e.distinct_id for e in hogtrace_events]

    def test_innermost_distinct_id_wins(self, hogtrace_events: CapturedEvents) -> None:
        """A trace's distinct id wins over its session's, for the trace's extent only."""
        with hogtrace.session("s", distinct_id="alice"):
            with hogtrace.trace("bob-trace", distinct_id="bob"), hogtrace.span("bob-span"):
                pass
            with hogtrace.trace("alice-trace"):
                pass

        expected = {"bob-span": "bob", "bob-trace": "bob", "alice-trace": "alice"}
        assert expected == {e.name: e.distinct_id for e in hogtrace_events}

    def test_callable_distinct_id(self, hogtrace_events: CapturedEvents) -> None:
        """A callable distinct id receives the function's arguments."""

        @hogtrace.trace(distinct_id=lambda user, q: user)
        def ask(user: str, q: str) -> str:
            return q

        @hogtrace.session(distinct_id=lambda user: f"s-{user}")
        def chat(user: str) -> str:
            return ask(user, "q")

        ask("u1", "q")
        chat("u2")
        expected = ["u1", "u2"]
        assert expected == [e.distinct_id for e in hogtrace_events]

    def test_properties_inherit_innermost_wins(self, hogtrace_events: CapturedEvents) -> None:
        """Session and trace properties reach every event inside; the innermost value wins."""
        with (
            hogtrace.session("s", properties={"tier": "free", "app": "chat", "who": "session"}),
            hogtrace.trace("t", properties={"who": "trace", "env": "prod"}),
        ):
            with hogtrace.span("leaf", properties={"who": "span"}):
                pass
            with hogtrace.span("plain"):
                pass

        props = {e.name: e.properties for e in hogtrace_events}
        for name in ("leaf", "plain", "t"):
            expected = ("free", "chat", "prod")
            assert expected == (
                props[name]["tier"],
                props[name]["app"],
                props[name]["env"],
            )
        expected = {"leaf": "span", "plain": "trace", "t": "trace"}
        assert expected == {n: p["who"] for n, p in props.items()}

    def test_span_properties_stay_on_the_span(self, hogtrace_events: CapturedEvents) -> None:
        """A span's own properties are on its event only, not its children's."""
        with hogtrace.span("outer", properties={"mine": 1}), hogtrace.span("inner"):
            pass

        assert "mine" not in hogtrace_events.one(name="inner").properties
        expected = 1
        assert expected == hogtrace_events.one(name="outer").properties["mine"]

    def test_configured_properties_lose_to_scopes(self, hogtrace_events: CapturedEvents) -> None:
        """``configure(properties=...)`` is on every event; scope values of a key win."""
        hogtrace.configure(properties={"env": "dev", "region": "eu"})
        with hogtrace.trace("t", properties={"env": "prod"}):
            pass

        props = hogtrace_events.one().properties
        expected = ("prod", "eu")
        assert expected == (props["env"], props["region"])

    def test_set_properties_on_trace_inherits(self, hogtrace_events: CapturedEvents) -> None:
        """``set_properties`` on a trace reaches scopes opened inside it afterwards."""
        with hogtrace.trace("t") as t:
            t.set_properties(step=1)
            with hogtrace.span("s") as s:
                s.set_properties(own=True)

        expected = 1
        assert expected == hogtrace_events.one(name="s").properties["step"]
        assert True is hogtrace_events.one(name="s").properties["own"]
        expected = 1
        assert expected == hogtrace_events.one(name="t").properties["step"]

    def test_posthog_identify_context(self, hogtrace_events: CapturedEvents) -> None:
        """PostHog's ``identify_context`` supplies the distinct id when no scope gives one."""
        import posthog

        with posthog.new_context(capture_exceptions=False):
            posthog.identify_context("user-42")
            with hogtrace.trace("t"):
                pass

        event = hogtrace_events.one()
        expected = "user-42"
        assert expected == event.distinct_id
        assert "$process_person_profile" not in event.properties

    def test_identify_context_inside_a_trace(self, hogtrace_events: CapturedEvents) -> None:
        """``identify_context`` called inside an open trace reaches the scopes opened after it."""
        import posthog

        with posthog.new_context(capture_exceptions=False), hogtrace.trace("handle"):
            posthog.identify_context("user-42")
            with hogtrace.generation("llm"):
                pass

        event = hogtrace_events.one(name="llm")
        expected = "user-42"
        assert expected == event.distinct_id
        assert "$process_person_profile" not in event.properties

    def test_scope_distinct_id_beats_identify_context(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A scope's distinct id wins over PostHog's ``identify_context``."""
        import posthog

        with posthog.new_context(capture_exceptions=False):
            posthog.identify_context("user-42")
            with hogtrace.trace("t", distinct_id="explicit"):
                pass

        expected = "explicit"
        assert expected == hogtrace_events.one().distinct_id


class TestErrors:
    def test_error_properties(self, hogtrace_events: CapturedEvents) -> None:
        """A raised exception sets ``$ai_is_error`` and ``$ai_error``; the same object re-raises."""
        err = ValueError("boom")

        @hogtrace.span
        def f() -> None:
            raise err

        with pytest.raises(ValueError, match="boom") as info:
            f()
        assert err is info.value

        props = hogtrace_events.one().properties
        expected = (True, "ValueError: boom")
        assert expected == (props["$ai_is_error"], props["$ai_error"])
        assert "$ai_output_state" not in props

    def test_no_error_keys_on_success(self, hogtrace_events: CapturedEvents) -> None:
        """A successful scope carries neither ``$ai_is_error`` nor ``$ai_error``."""
        with hogtrace.trace("t"), hogtrace.span("s"):
            pass

        for event in hogtrace_events:
            assert "$ai_is_error" not in event.properties
            assert "$ai_error" not in event.properties

    def test_error_in_with_block(self, hogtrace_events: CapturedEvents) -> None:
        """An exception leaving a ``with`` block marks it and propagates unchanged."""
        err = KeyError("k")
        with pytest.raises(KeyError) as info, hogtrace.span("s"):
            raise err
        assert err is info.value
        expected = "KeyError: 'k'"
        assert expected == hogtrace_events.one().properties["$ai_error"]

    async def test_error_in_async(self, hogtrace_events: CapturedEvents) -> None:
        """An exception in an ``async def`` is recorded and re-raised as the same object."""
        err = RuntimeError("late")

        @hogtrace.span
        async def f() -> None:
            await asyncio.sleep(0)
            raise err

        with pytest.raises(RuntimeError) as info:
            await f()
        assert err is info.value
        expected = "RuntimeError: late"
        assert expected == hogtrace_events.one().properties["$ai_error"]

    def test_caught_inside_parent(self, hogtrace_events: CapturedEvents) -> None:
        """A parent that catches its child's exception is not an error."""

        @hogtrace.span("child")
        def child() -> None:
            raise ValueError("boom")

        @hogtrace.trace("parent")
        def parent() -> str:
            try:
                child()
            except ValueError:
                return "recovered"
            return "unreachable"

        expected = "recovered"
        assert expected == parent()
        assert hogtrace_events.one(name="child").is_error
        parent_props = hogtrace_events.one(name="parent").properties
        assert "$ai_is_error" not in parent_props
        expected = "recovered"
        assert expected == parent_props["$ai_output_state"]

    def test_passes_through_parent(self, hogtrace_events: CapturedEvents) -> None:
        """An exception passing through every scope marks each of them."""
        with (
            pytest.raises(ValueError, match="boom"),
            hogtrace.trace("t"),
            hogtrace.span("a"),
            hogtrace.span("b"),
        ):
            raise ValueError("boom")

        expected = 3
        assert expected == len(hogtrace_events)
        assert {"ValueError: boom"} == {e.properties["$ai_error"] for e in hogtrace_events}

    def test_message_less_exception(self, hogtrace_events: CapturedEvents) -> None:
        """An exception without a message is reported by its type name."""

        class QuietError(Exception):
            pass

        with pytest.raises(QuietError), hogtrace.span("s"):
            raise QuietError

        expected = "QuietError"
        assert expected == hogtrace_events.one().properties["$ai_error"]

    def test_set_error_message(self, hogtrace_events: CapturedEvents) -> None:
        """``set_error`` with a message marks the scope without raising."""
        with hogtrace.span("s") as s:
            s.set_error("rate limited")
            after = "ran"

        expected = "ran"
        assert expected == after
        props = hogtrace_events.one().properties
        expected = (True, "rate limited")
        assert expected == (props["$ai_is_error"], props["$ai_error"])

    def test_set_error_exception(self, hogtrace_events: CapturedEvents) -> None:
        """``set_error`` with an exception records its type and message; the function returns."""

        @hogtrace.span
        def f() -> str:
            scope = hogtrace.current()
            assert scope is not None
            scope.set_error(TimeoutError("slow"))
            return "fallback"

        expected = "fallback"
        assert expected == f()
        props = hogtrace_events.one().properties
        expected = (True, "TimeoutError: slow")
        assert expected == (props["$ai_is_error"], props["$ai_error"])

    def test_set_error_does_not_reach_parent(self, hogtrace_events: CapturedEvents) -> None:
        """``set_error`` marks only its own scope."""
        with hogtrace.trace("t"), hogtrace.span("s") as s:
            s.set_error("bad")
        assert not hogtrace_events.one(name="t").is_error

    async def test_cancelled_error(self, hogtrace_events: CapturedEvents) -> None:
        """A cancelled task closes its scopes without marking them errors."""
        started = asyncio.Event()

        @hogtrace.span("slow")
        async def slow() -> None:
            async with hogtrace.span("inner"):
                started.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        expected = ["inner", "slow"]
        assert expected == [e.name for e in hogtrace_events]
        for event in hogtrace_events:
            assert "$ai_is_error" not in event.properties
            assert "$ai_error" not in event.properties

    def test_keyboard_interrupt(self, hogtrace_events: CapturedEvents) -> None:
        """``KeyboardInterrupt`` closes the scope without error and propagates unchanged."""
        interrupt = KeyboardInterrupt()

        @hogtrace.span
        def f() -> None:
            raise interrupt

        with pytest.raises(KeyboardInterrupt) as info:
            f()
        assert interrupt is info.value
        event = hogtrace_events.one()
        assert not event.is_error
        assert "$ai_error" not in event.properties

    def test_generator_close_is_not_error(self, hogtrace_events: CapturedEvents) -> None:
        """Closing a suspended generator ends its scope without marking an error."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            with hogtrace.span("inner"):
                yield 1
                yield 2

        it = gen()
        next(it)
        it.close()
        expected = ["inner", "gen"]
        assert expected == [e.name for e in hogtrace_events]
        assert not any(e.is_error for e in hogtrace_events)


class TestScopeObject:
    def test_attributes(self, hogtrace_events: CapturedEvents) -> None:
        """A scope exposes its ids, session and name, matching its event."""
        with hogtrace.session("conv"), hogtrace.trace("t") as t, hogtrace.span("s") as s:
            assert (s.trace_id, s.parent_id, s.session_id, s.name) == (t.id, t.id, "conv", "s")
            assert (t.trace_id, t.parent_id, t.session_id, t.name) == (t.id, None, "conv", "t")

        event = hogtrace_events.one(name="s")
        assert (s.id, s.trace_id, s.parent_id, s.session_id) == (
            event.span_id,
            event.trace_id,
            event.parent_id,
            event.session_id,
        )

    def test_latency_and_metrics(self, hogtrace_events: CapturedEvents) -> None:
        """``latency`` and ``metrics`` are ``None`` while open and set after exit."""
        with hogtrace.span("s") as s:
            assert s.latency is None
            assert s.metrics is None

        assert isinstance(s.latency, float)
        assert s.latency >= 0.0
        assert s.metrics is not None
        assert s.latency == s.metrics.latency
        assert s.latency == hogtrace_events.one().latency

    def test_metrics_count_errors_and_generations(self, hogtrace_events: CapturedEvents) -> None:
        """A parent's metrics total the generations and errors inside it."""
        with hogtrace.trace("t") as t:
            with hogtrace.generation("g") as g:
                g.set_usage(input_tokens=3, output_tokens=4)
            with hogtrace.span("bad") as bad:
                bad.set_error("x")

        assert t.metrics is not None
        expected = (1, 1, 3, 4)
        assert expected == (
            t.metrics.generations,
            t.metrics.errors,
            t.metrics.input_tokens,
            t.metrics.output_tokens,
        )

    def test_set_input_output_properties(self, hogtrace_events: CapturedEvents) -> None:
        """``set_input``, ``set_output`` and ``set_properties`` fill the event."""
        with hogtrace.span("s") as s:
            s.set_input({"q": "hi"})
            s.set_output(["a", "b"])
            s.set_properties(score=0.5, tag="x")

        props = hogtrace_events.one().properties
        expected = {"q": "hi"}
        assert expected == props["$ai_input_state"]
        expected = ["a", "b"]
        assert expected == props["$ai_output_state"]
        expected = (0.5, "x")
        assert expected == (props["score"], props["tag"])

    def test_setters_after_exit_ignored(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Setters on a closed scope are ignored with a warning and change nothing."""
        with hogtrace.span("s") as s:
            pass
        with caplog.at_level(logging.WARNING, logger="hogtrace"):
            s.set_output("late")
            s.set_error("late")
        assert "$ai_output_state" not in hogtrace_events.one().properties
        expected = 2
        assert expected == len([r for r in caplog.records if "after it closed" in r.getMessage()])

    def test_current(self, hogtrace_events: CapturedEvents) -> None:
        """``current()`` is the innermost open scope of any kind, session included."""
        assert hogtrace.current() is None
        with hogtrace.session("s") as session:
            assert session is hogtrace.current()
            with hogtrace.trace("t") as t:
                assert t is hogtrace.current()
                with hogtrace.generation("g") as g:
                    assert g is hogtrace.current()
                assert t is hogtrace.current()
            assert session is hogtrace.current()
        assert hogtrace.current() is None

    def test_current_in_decorated(self, hogtrace_events: CapturedEvents) -> None:
        """Inside a decorated function, ``current()`` is that function's scope."""

        @hogtrace.span("named")
        def f() -> str | None:
            scope = hogtrace.current()
            return None if scope is None else scope.name

        expected = "named"
        assert expected == f()
        assert hogtrace.current() is None

    def test_current_restored_after_error(self, hogtrace_events: CapturedEvents) -> None:
        """After an exception leaves a scope, the previous scope is current again."""

        @hogtrace.span
        def f() -> None:
            raise ValueError("f")

        with hogtrace.trace("t") as t:
            with pytest.raises(ValueError, match="f"):
                f()
            with pytest.raises(ValueError, match="b"), hogtrace.span("b"):
                raise ValueError("b")
            assert t is hogtrace.current()
        assert hogtrace.current() is None

    def test_generation_scope_setters(self, hogtrace_events: CapturedEvents) -> None:
        """Generation scopes have ``set_model``, ``set_usage`` and ``set_cost``."""
        with hogtrace.generation("g") as g:
            g.set_model("gpt-x", provider="openai")
            g.set_usage(input_tokens=10, output_tokens=0)
            g.set_cost(total_cost_usd=0.5)

        props = hogtrace_events.one().properties
        expected = ("gpt-x", "openai", 10, 0, 0.5)
        assert expected == (
            props["$ai_model"],
            props["$ai_provider"],
            props["$ai_input_tokens"],
            props["$ai_output_tokens"],
            props["$ai_total_cost_usd"],
        )

    def test_every_event_has_lib_fields(self, hogtrace_events: CapturedEvents) -> None:
        """Every event names the library and its version."""
        with hogtrace.trace("t"), hogtrace.span("s"):
            pass
        for event in hogtrace_events:
            assert ("hogtrace", hogtrace.__version__) == (
                event.properties["$ai_lib"],
                event.properties["$ai_lib_version"],
            )


class TestCallingThread:
    def test_immutable_arguments_and_results_are_not_serialized(
        self, monkeypatch: pytest.MonkeyPatch, hogtrace_events: Any
    ) -> None:
        """Scalar arguments and return values need no JSON-safe copy: they cannot change."""
        calls: list[object] = []
        real = _scope.snapshot

        def counting(value: object, budget: int, items: int) -> Any:
            calls.append(value)
            return real(value, budget, items)

        monkeypatch.setattr(_scope, "snapshot", counting)

        @hogtrace.span(name="step")
        def step(a: int, b: str, c: float = 0.5, d: bool | None = None) -> str:
            return b * a

        @hogtrace.trace(name="none")
        def none() -> None:
            return None

        step(2, "x")
        none()

        assert [] == calls
        spans = {e.name: e.properties for e in hogtrace_events}
        assert {"a": 2, "b": "x", "c": 0.5, "d": None} == spans["step"]["$ai_input_state"]
        assert "xx" == spans["step"]["$ai_output_state"]
        assert {} == spans["none"]["$ai_input_state"]

    def test_mutable_arguments_are_still_snapshotted(self, hogtrace_events: Any) -> None:
        """A list argument mutated after the call is recorded as it was at the call."""
        items = [1, 2]

        @hogtrace.span
        def step(values: list[int], label: str) -> int:
            values.append(3)
            return len(values)

        step(items, "l")

        assert {"values": [1, 2], "label": "l"} == hogtrace_events.one().properties[
            "$ai_input_state"
        ]

    @pytest.mark.parametrize("value", [2**53, -(2**70), float("inf"), float("nan"), True])
    def test_huge_or_non_finite_numbers_go_through_the_serializer(
        self, value: object, monkeypatch: pytest.MonkeyPatch, hogtrace_events: Any
    ) -> None:
        """Only numbers JavaScript holds exactly skip the serializer; it does the rest."""
        calls: list[object] = []
        real = _scope.snapshot

        def counting(item: object, budget: int, items: int) -> Any:
            calls.append(item)
            return real(item, budget, items)

        monkeypatch.setattr(_scope, "snapshot", counting)

        @hogtrace.span
        def number() -> object:
            return value

        number()

        expected = [] if value is True else [value]
        assert repr(expected) == repr(calls)

    def test_non_finite_float_result_is_still_made_json_safe(self, hogtrace_events: Any) -> None:
        """A NaN return value is spelled as a string, not passed through."""

        @hogtrace.span
        def ratio() -> float:
            return float("nan")

        ratio()

        assert "NaN" == hogtrace_events.one().properties["$ai_output_state"]


class TestReferenceCycles:
    """A finished scope is freed by reference counting, not left for the garbage collector.

    A scope in a reference cycle lives until a collection finds it, and every collection until
    then walks it and what it holds (a generation's messages, say): in a busy service that is
    more and longer collections.
    """

    @staticmethod
    def _cyclic_scopes(run: Any) -> list[str]:
        """The kinds of scope left in unreachable cycles after ``run()``."""
        enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            run()
            hogtrace.flush()
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            return sorted(type(o).__name__ for o in gc.garbage if isinstance(o, _scope.Scope))
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if enabled:
                gc.enable()

    def test_traces_spans_sessions_and_generations(self, hogtrace_events: CapturedEvents) -> None:
        """Roots (which are their trace's root), children, sessions and generations."""

        @hogtrace.generation(provider="openai")
        def chat(messages: list[dict[str, str]], model: str = "gpt-4o") -> dict[str, Any]:
            return {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}

        @hogtrace.span
        def step(n: int) -> int:
            hogtrace.current_trace().set_distinct_id("user-1")
            return n

        def run() -> None:
            chat([{"role": "user", "content": "hello"}])  # a generation that is its own trace
            with hogtrace.session("conv"), hogtrace.trace("t"):
                step(1)
                chat([{"role": "user", "content": "again"}])
            with hogtrace.span("alone"):
                pass

        assert [] == self._cyclic_scopes(run)
        assert 5 == len(hogtrace_events)

    def test_async_and_generators(self, hogtrace_events: CapturedEvents) -> None:
        """A coroutine's scope and a generator's scope."""

        @hogtrace.trace
        async def answer() -> int:
            return 42

        @hogtrace.span
        def numbers() -> Iterator[int]:
            yield from range(3)

        def run() -> None:
            asyncio.run(answer())
            assert [0, 1, 2] == list(numbers())

        assert [] == self._cyclic_scopes(run)
        assert 2 == len(hogtrace_events)
