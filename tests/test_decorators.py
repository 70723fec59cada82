"""Decorator forms, the callables they wrap, captured arguments and generators (SPEC §1-3)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import hogtrace
from hogtrace import _errors
from hogtrace.testing import CapturedEvents, capture_events

KINDS = ["trace", "span", "generation", "embedding"]
EVENT_OF = {
    "trace": "$ai_trace",
    "span": "$ai_trace",  # the outermost trace-or-span is the root
    "generation": "$ai_generation",
    "embedding": "$ai_embedding",
}


def plain_name(fn: Any) -> str:
    """The default scope name: the ``__qualname__`` without ``<locals>.`` segments."""
    return str(fn.__qualname__).replace("<locals>.", "")


def factory(kind: str) -> Any:
    """The public scope factory of ``kind`` (``hogtrace.span`` for ``"span"``)."""
    return getattr(hogtrace, kind)


class TestForms:
    @pytest.mark.parametrize("kind", KINDS)
    def test_bare(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """The bare decorator traces the function under its qualified name."""

        @factory(kind)
        def work(x: int) -> int:
            return x + 1

        expected = 2
        assert expected == work(1)
        event = hogtrace_events.one()
        assert EVENT_OF[kind] == event.event
        assert plain_name(work) == event.name

    @pytest.mark.parametrize("kind", KINDS)
    def test_positional_name(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """A positional string is the scope name."""

        @factory(kind)("named")
        def work() -> int:
            return 1

        expected = 1
        assert expected == work()
        expected = "named"
        assert expected == hogtrace_events.one().name

    @pytest.mark.parametrize("kind", KINDS)
    def test_keyword_name(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """``name=`` is the scope name."""

        @factory(kind)(name="named")
        def work() -> int:
            return 1

        expected = 1
        assert expected == work()
        expected = "named"
        assert expected == hogtrace_events.one().name

    @pytest.mark.parametrize("kind", KINDS)
    def test_empty_parentheses(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """``@factory()`` behaves like the bare decorator."""

        @factory(kind)()
        def work() -> int:
            return 1

        expected = 1
        assert expected == work()
        assert plain_name(work) == hogtrace_events.one().name

    @pytest.mark.parametrize("kind", KINDS)
    def test_with_block(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """A ``with`` block gives the open scope and emits one event named as given."""
        with factory(kind)("block") as scope:
            assert scope is hogtrace.current()

        event = hogtrace_events.one()
        assert EVENT_OF[kind] == event.event
        assert ("block", scope.id) == (event.name, event.span_id)

    @pytest.mark.parametrize("kind", KINDS)
    async def test_async_with_block(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """An ``async with`` block gives the open scope and emits one event named as given."""
        async with factory(kind)(name="block") as scope:
            await asyncio.sleep(0)
            assert scope is hogtrace.current()

        event = hogtrace_events.one()
        assert EVENT_OF[kind] == event.event
        assert ("block", scope.id) == (event.name, event.span_id)

    @pytest.mark.parametrize("kind", KINDS)
    def test_with_block_default_name_is_kind(
        self, kind: str, hogtrace_events: CapturedEvents
    ) -> None:
        """A ``with`` block without a name is named after its kind."""
        with factory(kind)():
            pass

        assert kind == hogtrace_events.one().name

    @pytest.mark.parametrize(
        "decorate",
        [
            hogtrace.session,
            hogtrace.session("conv-1"),
            hogtrace.session(id="conv-1"),
            hogtrace.session(),
        ],
    )
    def test_session_forms(
        self, decorate: Callable[[Callable[[], str | None]], Callable[[], str | None]]
    ) -> None:
        """Every session form decorates, and the session is current inside the function."""
        with capture_events() as events:

            @decorate
            def work() -> str | None:
                with hogtrace.span("inner"):
                    pass
                scope = hogtrace.current()
                return None if scope is None else scope.session_id

            session_id = work()
        assert session_id is not None
        assert [session_id] == [e.session_id for e in events]

    def test_session_with_blocks(self, hogtrace_events: CapturedEvents) -> None:
        """``with`` and ``async with`` open a session, which emits no event of its own."""

        async def run() -> None:
            async with hogtrace.session("conv-a"), hogtrace.span("a"):
                pass

        with hogtrace.session("conv-w"), hogtrace.span("w"):
            pass
        asyncio.run(run())

        expected = [("w", "conv-w"), ("a", "conv-a")]
        assert expected == [(e.name, e.session_id) for e in hogtrace_events]

    @pytest.mark.parametrize("kind", KINDS)
    def test_spec_is_reusable(self, kind: str, hogtrace_events: CapturedEvents) -> None:
        """One spec object decorates several functions and opens several blocks, each fresh."""
        spec = factory(kind)("shared")

        @spec
        def one() -> int:
            return 1

        @spec
        def two() -> int:
            return 2

        expected = (1, 1, 2)
        assert expected == (one(), one(), two())
        with spec as first:
            pass
        with spec as second:
            pass

        assert first is not second
        span_ids = [e.span_id for e in hogtrace_events]
        assert 5 == len(hogtrace_events) == len(set(span_ids))
        assert {"shared"} == {e.name for e in hogtrace_events}

    def test_spec_nested_in_itself(self, hogtrace_events: CapturedEvents) -> None:
        """The same spec entered inside itself opens a child scope."""
        spec = hogtrace.span("again")
        with spec as outer, spec as inner:
            assert inner is hogtrace.current()
        assert outer is not inner

        expected = ["$ai_span", "$ai_trace"]
        assert expected == [e.event for e in hogtrace_events]
        assert outer.id == hogtrace_events[0].parent_id

    def test_decorated_spec_in_threads(self, hogtrace_events: CapturedEvents) -> None:
        """Calls of one decorated function running at once in threads each get their own trace."""
        barrier = threading.Barrier(8)

        @hogtrace.trace("job")
        def job(n: int) -> str | None:
            barrier.wait(timeout=10)
            scope = hogtrace.current()
            return None if scope is None else scope.id

        seen: dict[int, str | None] = {}
        threads = [
            threading.Thread(target=lambda n=n: seen.__setitem__(n, job(n))) for n in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        expected = 8
        assert expected == len(hogtrace_events.traces)
        by_input = {e.properties["$ai_input_state"]["n"]: e.span_id for e in hogtrace_events}
        assert seen == by_input
        expected = 8
        assert expected == len(set(by_input.values()))

    def test_with_spec_in_threads(self, hogtrace_events: CapturedEvents) -> None:
        """One spec entered at once in threads gives each thread its own scope, closed by it."""
        spec = hogtrace.trace("job")
        barrier = threading.Barrier(8)
        seen: dict[int, tuple[str, bool, bool]] = {}

        def run(n: int) -> None:
            with spec as scope:
                scope.set_properties(n=n)
                barrier.wait(timeout=10)
                mine = hogtrace.current() is scope
            seen[n] = (scope.id, mine, scope.latency is not None)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        expected = 8
        assert expected == len(hogtrace_events.traces)
        assert {n: (e_id, True, True) for n, (e_id, _, _) in seen.items()} == seen
        assert {n: seen[n][0] for n in range(8)} == {
            e.properties["n"]: e.span_id for e in hogtrace_events
        }


class TestCallables:
    def test_sync_function(self, hogtrace_events: CapturedEvents) -> None:
        """A plain function returns its value and records it as output."""

        @hogtrace.span
        def add(a: int, b: int) -> int:
            return a + b

        expected = 5
        assert expected == add(2, 3)
        event = hogtrace_events.one()
        expected = {"a": 2, "b": 3}
        assert expected == event.properties["$ai_input_state"]
        expected = 5
        assert expected == event.properties["$ai_output_state"]

    async def test_async_function(self, hogtrace_events: CapturedEvents) -> None:
        """An ``async def`` scope covers the awaited body, not just the coroutine's creation."""

        @hogtrace.span
        async def fetch(x: int) -> int:
            await asyncio.sleep(0)
            with hogtrace.span("inside"):
                await asyncio.sleep(0)
            return x * 2

        coro = fetch(4)
        expected = []
        assert expected == list(hogtrace_events)
        expected = 8
        assert expected == await coro

        inside, outer = hogtrace_events
        assert outer.span_id == inside.parent_id
        expected = 8
        assert expected == outer.properties["$ai_output_state"]

    def test_generator_function(self, hogtrace_events: CapturedEvents) -> None:
        """A generator function stays a generator and records the yielded items."""

        @hogtrace.span
        def count(n: int) -> Iterator[int]:
            yield from range(n)

        gen = count(3)
        assert inspect.isgenerator(gen)
        expected = [0, 1, 2]
        assert expected == list(gen)
        expected = [0, 1, 2]
        assert expected == hogtrace_events.one().properties["$ai_output_state"]

    async def test_async_generator_function(self, hogtrace_events: CapturedEvents) -> None:
        """An async generator function stays one and records the yielded items."""

        @hogtrace.span
        async def count(n: int) -> AsyncIterator[int]:
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        agen = count(3)
        assert inspect.isasyncgen(agen)
        expected = [0, 1, 2]
        assert expected == [i async for i in agen]
        expected = [0, 1, 2]
        assert expected == hogtrace_events.one().properties["$ai_output_state"]

    def test_instance_method(self, hogtrace_events: CapturedEvents) -> None:
        """An instance method receives ``self``, which is not recorded as input."""

        class Agent:
            factor = 3

            @hogtrace.span
            def run(self, x: int, y: int = 1) -> int:
                return self.factor * x + y

        agent = Agent()
        expected = 7
        assert expected == agent.run(2)
        expected = 7
        assert expected == Agent.run(agent, 2)

        for event in hogtrace_events:
            expected = "TestCallables.test_instance_method.Agent.run"
            assert expected == event.name
            expected = {"x": 2, "y": 1}
            assert expected == event.properties["$ai_input_state"]

    @pytest.mark.parametrize("order", ["span-over-classmethod", "classmethod-over-span"])
    def test_classmethod(self, order: str, hogtrace_events: CapturedEvents) -> None:
        """A classmethod works with the decorator above or below ``@classmethod``."""
        if order == "span-over-classmethod":

            class Agent:
                base = 10

                @hogtrace.span
                @classmethod
                def make(cls, x: int) -> int:
                    return cls.base + x

        else:

            class Agent:  # type: ignore[no-redef]
                base = 10

                @classmethod
                @hogtrace.span
                def make(cls, x: int) -> int:
                    return cls.base + x

        class Child(Agent):
            base = 20

        expected = (11, 21, 11)
        assert expected == (Agent.make(1), Child.make(1), Agent().make(1))
        expected = 3
        assert expected == len(hogtrace_events)
        for event in hogtrace_events:
            expected = {"x": 1}
            assert expected == event.properties["$ai_input_state"]
            assert event.name.endswith("Agent.make")

    @pytest.mark.parametrize("order", ["span-over-staticmethod", "staticmethod-over-span"])
    def test_staticmethod(self, order: str, hogtrace_events: CapturedEvents) -> None:
        """A staticmethod works with the decorator above or below ``@staticmethod``."""
        if order == "span-over-staticmethod":

            class Tools:
                @hogtrace.span
                @staticmethod
                def double(x: int) -> int:
                    return 2 * x

        else:

            class Tools:  # type: ignore[no-redef]
                @staticmethod
                @hogtrace.span
                def double(x: int) -> int:
                    return 2 * x

        expected = (4, 4)
        assert expected == (Tools.double(2), Tools().double(2))
        expected = 2
        assert expected == len(hogtrace_events)
        for event in hogtrace_events:
            expected = {"x": 2}
            assert expected == event.properties["$ai_input_state"]

    @pytest.mark.parametrize("order", ["over", "under"])
    async def test_async_classmethod(self, order: str, hogtrace_events: CapturedEvents) -> None:
        """An ``async`` classmethod is awaited inside its scope in either decorator order."""
        if order == "over":

            class Agent:
                @hogtrace.span
                @classmethod
                async def run(cls, x: int) -> str:
                    await asyncio.sleep(0)
                    return f"{cls.__name__}:{x}"

        else:

            class Agent:  # type: ignore[no-redef]
                @classmethod
                @hogtrace.span
                async def run(cls, x: int) -> str:
                    await asyncio.sleep(0)
                    return f"{cls.__name__}:{x}"

        assert inspect.iscoroutinefunction(Agent.run)
        expected = "Agent:1"
        assert expected == await Agent.run(1)
        event = hogtrace_events.one()
        expected = ({"x": 1}, "Agent:1")
        assert expected == (
            event.properties["$ai_input_state"],
            event.properties["$ai_output_state"],
        )

    @pytest.mark.parametrize("order", ["over", "under"])
    def test_generator_classmethod(self, order: str, hogtrace_events: CapturedEvents) -> None:
        """A generator classmethod yields inside its scope in either decorator order."""
        if order == "over":

            class Agent:
                @hogtrace.span
                @classmethod
                def items(cls, n: int) -> Iterator[str]:
                    for i in range(n):
                        yield f"{cls.__name__}{i}"

        else:

            class Agent:  # type: ignore[no-redef]
                @classmethod
                @hogtrace.span
                def items(cls, n: int) -> Iterator[str]:
                    for i in range(n):
                        yield f"{cls.__name__}{i}"

        assert inspect.isgeneratorfunction(Agent.items)
        expected = ["Agent0", "Agent1"]
        assert expected == list(Agent.items(2))
        event = hogtrace_events.one()
        expected = {"n": 2}
        assert expected == event.properties["$ai_input_state"]
        expected = ["Agent0", "Agent1"]
        assert expected == event.properties["$ai_output_state"]

    async def test_async_generator_method(self, hogtrace_events: CapturedEvents) -> None:
        """An async generator method records its items without ``self``."""

        class Stream:
            @hogtrace.span("stream")
            async def chunks(self, words: list[str]) -> AsyncIterator[str]:
                for w in words:
                    yield w

        expected = ["a", "b"]
        assert expected == [c async for c in Stream().chunks(["a", "b"])]
        event = hogtrace_events.one(name="stream")
        expected = {"words": ["a", "b"]}
        assert expected == event.properties["$ai_input_state"]
        expected = ["a", "b"]
        assert expected == event.properties["$ai_output_state"]


async def _coro(a: int, *, b: str = "x") -> str:
    """Async doc."""
    return f"{a}{b}"


def _gen(n: int) -> Iterator[int]:
    """Gen doc."""
    yield n


async def _agen(n: int) -> AsyncIterator[int]:
    """Async gen doc."""
    yield n


def _plain(a: int, b: str = "x", *rest: int, flag: bool = False, **extra: Any) -> str:
    """Plain doc."""
    return f"{a}{b}"


class TestMetadata:
    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fn", [_plain, _coro, _gen, _agen])
    def test_function_metadata(self, kind: str, fn: Callable[..., Any]) -> None:
        """Name, qualname, docstring, signature, annotations and kind survive decoration."""
        for decorated in (factory(kind)(fn), factory(kind)("n")(fn)):
            assert fn.__name__ == decorated.__name__
            assert fn.__qualname__ == decorated.__qualname__
            assert fn.__doc__ == decorated.__doc__
            assert fn.__module__ == decorated.__module__
            assert inspect.signature(fn) == inspect.signature(decorated)
            assert fn.__annotations__ == decorated.__annotations__
            assert inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(decorated)
            assert inspect.isgeneratorfunction(fn) == inspect.isgeneratorfunction(decorated)
            assert inspect.isasyncgenfunction(fn) == inspect.isasyncgenfunction(decorated)

    @pytest.mark.parametrize("fn", [_plain, _coro, _gen, _agen])
    def test_session_metadata(self, fn: Callable[..., Any]) -> None:
        """A session decorator keeps the function's metadata and kind too."""
        decorated = hogtrace.session(id="s")(fn)
        assert (fn.__name__, fn.__doc__) == (decorated.__name__, decorated.__doc__)
        assert inspect.signature(fn) == inspect.signature(decorated)
        assert inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(decorated)
        assert inspect.isgeneratorfunction(fn) == inspect.isgeneratorfunction(decorated)
        assert inspect.isasyncgenfunction(fn) == inspect.isasyncgenfunction(decorated)

    def test_method_metadata(self) -> None:
        """Methods, classmethods and staticmethods keep their bound signatures and kind."""

        class Agent:
            @hogtrace.span
            async def run(self, q: str) -> str:
                """Run."""
                return q

            @hogtrace.span
            @classmethod
            def build(cls, n: int) -> int:
                """Build."""
                return n

            @staticmethod
            @hogtrace.span
            def helper(x: int) -> int:
                """Help."""
                return x

        agent = Agent()
        expected = "(q: 'str') -> 'str'"
        assert expected == str(inspect.signature(agent.run))
        expected = "(n: 'int') -> 'int'"
        assert expected == str(inspect.signature(Agent.build))
        expected = "(x: 'int') -> 'int'"
        assert expected == str(inspect.signature(Agent.helper))
        assert inspect.iscoroutinefunction(agent.run)
        expected = ("run", "Run.")
        assert expected == (agent.run.__name__, agent.run.__doc__)
        expected = ("build", "Build.")
        assert expected == (Agent.build.__name__, Agent.build.__doc__)
        expected = ("helper", "Help.")
        assert expected == (Agent.helper.__name__, Agent.helper.__doc__)


class TestNamesAndState:
    def test_default_name_is_qualname(self, hogtrace_events: CapturedEvents) -> None:
        """The default name is the ``__qualname__`` with the class, without ``<locals>``."""

        class Agent:
            @hogtrace.trace
            def run(self) -> None:
                helper()

        @hogtrace.span
        def helper() -> None:
            pass

        Agent().run()
        expected = [
            "TestNamesAndState.test_default_name_is_qualname.helper",
            "TestNamesAndState.test_default_name_is_qualname.Agent.run",
        ]
        assert expected == [e.name for e in hogtrace_events]

    def test_input_defaults_applied(self, hogtrace_events: CapturedEvents) -> None:
        """The input holds every bound argument by name, defaults applied, in signature order."""

        @hogtrace.span
        def f(a: int, b: str = "bee", c: list[int] | None = None) -> None:
            pass

        f(1, c=[2])
        expected = {"a": 1, "b": "bee", "c": [2]}
        assert expected == hogtrace_events.one().properties["$ai_input_state"]
        expected = ["a", "b", "c"]
        assert expected == list(hogtrace_events.one().properties["$ai_input_state"])

    def test_input_with_varargs_and_keyword_only(self, hogtrace_events: CapturedEvents) -> None:
        """``*args``, keyword-only and ``**kwargs`` parameters are recorded by their names."""
        expected = "1x"
        assert expected == hogtrace.span(_plain)(1, "x", 2, 3, flag=True, extra=4)
        expected = {
            "a": 1,
            "b": "x",
            "rest": [2, 3],
            "flag": True,
            "extra": {"extra": 4},
        }
        assert expected == hogtrace_events.one().properties["$ai_input_state"]

    def test_positional_only(self, hogtrace_events: CapturedEvents) -> None:
        """Positional-only parameters are recorded by name too."""

        @hogtrace.span
        def f(a: int, /, b: int = 2) -> int:
            return a + b

        expected = 3
        assert expected == f(1)
        expected = {"a": 1, "b": 2}
        assert expected == hogtrace_events.one().properties["$ai_input_state"]

    def test_output_state(self, hogtrace_events: CapturedEvents) -> None:
        """The return value is the output; a with block without ``set_output`` has none."""

        @hogtrace.span
        def f() -> dict[str, Any]:
            return {"answer": [1, 2]}

        f()
        with hogtrace.span("block"):
            pass

        expected = {"answer": [1, 2]}
        assert expected == hogtrace_events.one(name=plain_name(f)).properties["$ai_output_state"]
        block = hogtrace_events.one(name="block").properties
        assert "$ai_output_state" not in block
        assert "$ai_input_state" not in block

    def test_none_output_is_recorded(self, hogtrace_events: CapturedEvents) -> None:
        """A function returning ``None`` records ``None`` as its output."""

        @hogtrace.span
        def f() -> None:
            pass

        f()
        props = hogtrace_events.one().properties
        assert "$ai_output_state" in props
        assert props["$ai_output_state"] is None

    def test_input_is_a_snapshot(self, hogtrace_events: CapturedEvents) -> None:
        """Arguments are recorded as they were when the scope opened."""

        @hogtrace.span
        def f(items: list[int]) -> None:
            items.append(99)

        f([1])
        expected = {"items": [1]}
        assert expected == hogtrace_events.one().properties["$ai_input_state"]

    def test_capture_flags(self, hogtrace_events: CapturedEvents) -> None:
        """``capture_input=False`` / ``capture_output=False`` leave the content out."""

        @hogtrace.span(capture_input=False)
        def no_input(x: int) -> int:
            return x

        @hogtrace.trace(capture_output=False)
        def no_output(x: int) -> int:
            return x

        no_input(1)
        no_output(2)
        first, second = (e.properties for e in hogtrace_events)
        assert ("$ai_input_state" in first, first["$ai_output_state"]) == (False, 1)
        assert (second["$ai_input_state"], "$ai_output_state" in second) == ({"x": 2}, False)

    def test_set_output_overrides_return(self, hogtrace_events: CapturedEvents) -> None:
        """``set_output`` inside the function replaces the return value as output."""

        @hogtrace.span
        def f() -> int:
            scope = hogtrace.current()
            assert scope is not None
            scope.set_output("chosen")
            scope.set_input({"q": "replaced"})
            return 1

        expected = 1
        assert expected == f()
        props = hogtrace_events.one().properties
        expected = ("chosen", {"q": "replaced"})
        assert expected == (
            props["$ai_output_state"],
            props["$ai_input_state"],
        )


class TestGenerators:
    def test_caller_loop_body_is_not_inside(self, hogtrace_events: CapturedEvents) -> None:
        """Between yields the caller's scope is current; spans in the loop body are siblings."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            for i in range(2):
                with hogtrace.span(f"in-{i}"):
                    pass
                yield i

        with hogtrace.trace("root") as root:
            for i in gen():
                assert root is hogtrace.current()
                with hogtrace.span(f"loop-{i}"):
                    pass

        by_name = {e.name: e for e in hogtrace_events}
        gen_id = by_name["gen"].span_id
        assert root.id == by_name["gen"].parent_id
        assert {"in-0": gen_id, "in-1": gen_id, "loop-0": root.id, "loop-1": root.id} == {
            n: by_name[n].parent_id for n in ("in-0", "in-1", "loop-0", "loop-1")
        }

    def test_current_inside_body(self, hogtrace_events: CapturedEvents) -> None:
        """While the body runs, the generator's scope is current."""
        seen: list[str | None] = []

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            for i in range(2):
                scope = hogtrace.current()
                seen.append(None if scope is None else scope.name)
                yield i

        expected = [0, 1]
        assert expected == list(gen())
        expected = ["gen", "gen"]
        assert expected == seen
        assert hogtrace.current() is None

    def test_parent_is_scope_at_call_time(self, hogtrace_events: CapturedEvents) -> None:
        """The parent is the scope current when the generator function was called."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1

        with hogtrace.trace("root"):
            with hogtrace.span("caller") as caller:
                it = gen()
            with hogtrace.span("consumer"):
                expected = [1]
                assert expected == list(it)

        assert caller.id == hogtrace_events.one(name="gen").parent_id

    def test_send_throw_close_pass_through(self, hogtrace_events: CapturedEvents) -> None:
        """``send``, ``throw`` and ``close`` reach the generator body."""
        received: list[Any] = []

        @hogtrace.span("echo")
        def echo() -> Iterator[Any]:
            value = yield "ready"
            while True:
                try:
                    received.append(value)
                    value = yield value * 2
                except KeyError as err:
                    value = yield f"caught {err.args[0]}"
                except GeneratorExit:
                    received.append("closed")
                    raise

        gen = echo()
        expected = "ready"
        assert expected == next(gen)
        expected = 10
        assert expected == gen.send(5)
        expected = "caught k"
        assert expected == gen.throw(KeyError("k"))
        expected = 14
        assert expected == gen.send(7)
        gen.close()

        expected = [5, 7, "closed"]
        assert expected == received
        event = hogtrace_events.one()
        expected = ["ready", 10, "caught k", 14]
        assert expected == event.properties["$ai_output_state"]
        assert not event.is_error

    def test_throw_uncaught_marks_error(self, hogtrace_events: CapturedEvents) -> None:
        """An exception thrown in and not caught ends the scope as an error and propagates."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1
            yield 2

        it = gen()
        next(it)
        err = ValueError("thrown")
        with pytest.raises(ValueError, match="thrown") as info:
            it.throw(err)
        assert err is info.value
        event = hogtrace_events.one()
        expected = (True, "ValueError: thrown")
        assert expected == (
            event.properties["$ai_is_error"],
            event.properties["$ai_error"],
        )

    def test_return_value_passes_through(self, hogtrace_events: CapturedEvents) -> None:
        """The generator's return value reaches ``yield from``."""

        @hogtrace.span("inner")
        def inner() -> Iterator[int]:
            yield 1
            return "done"

        def outer() -> Iterator[Any]:
            result = yield from inner()
            yield result

        expected = [1, "done"]
        assert expected == list(outer())
        expected = [1]
        assert expected == hogtrace_events.one().properties["$ai_output_state"]

    def test_break_ends_scope(self, hogtrace_events: CapturedEvents) -> None:
        """Breaking out of the loop ends the scope once, without error, with the items so far."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield from range(10)

        for i in gen():
            if i == 2:
                break

        event = hogtrace_events.one()
        expected = [0, 1, 2]
        assert expected == event.properties["$ai_output_state"]
        assert not event.is_error

    def test_close_ends_scope_once(self, hogtrace_events: CapturedEvents) -> None:
        """``close()`` ends the scope; closing again emits nothing more."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1
            yield 2

        it = gen()
        next(it)
        it.close()
        it.close()
        del it
        gc.collect()

        expected = [[1]]
        assert expected == [e.properties["$ai_output_state"] for e in hogtrace_events]
        assert not hogtrace_events.one().is_error

    def test_garbage_collection_ends_scope(self, hogtrace_events: CapturedEvents) -> None:
        """A started generator dropped without closing ends its scope when collected."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1
            yield 2

        it = gen()
        next(it)
        expected = []
        assert expected == list(hogtrace_events)
        del it
        gc.collect()

        event = hogtrace_events.one()
        expected = ([1], False)
        assert expected == (event.properties["$ai_output_state"], event.is_error)

    def test_exhaustion_emits_once(self, hogtrace_events: CapturedEvents) -> None:
        """An exhausted generator emits exactly one event, even after further ``next`` calls."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1

        it = gen()
        expected = [1]
        assert expected == list(it)
        expected = []
        assert expected == list(it)
        del it
        gc.collect()
        expected = 1
        assert expected == len(hogtrace_events)

    def test_never_started_emits_nothing(self, hogtrace_events: CapturedEvents) -> None:
        """A generator that is created but never started emits nothing."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1

        with hogtrace.trace("root"):
            it = gen()
            del it
            gc.collect()

        expected = ["root"]
        assert expected == [e.name for e in hogtrace_events]

    def test_body_exception_marks_error(self, hogtrace_events: CapturedEvents) -> None:
        """An exception raised in the body ends the scope as an error and reaches the caller."""
        err = RuntimeError("broke")

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            yield 1
            raise err

        with pytest.raises(RuntimeError) as info:
            list(gen())
        assert err is info.value
        props = hogtrace_events.one().properties
        # The items yielded before the error are kept with it.
        assert ("RuntimeError: broke", [1]) == (props["$ai_error"], props["$ai_output_state"])

    def test_with_block_across_yield_resumed_in_thread(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A ``with`` block spanning a ``yield`` nests properly when resumed from another thread."""

        @hogtrace.span("gen")
        def gen() -> Iterator[str | None]:
            with hogtrace.span("held") as held:
                yield held.name
                scope = hogtrace.current()
                yield None if scope is None else scope.name
            scope = hogtrace.current()
            yield None if scope is None else scope.name

        it = gen()
        expected = "held"
        assert expected == next(it)
        results: list[Any] = []
        worker = threading.Thread(target=lambda: results.extend(it))
        worker.start()
        worker.join()

        expected = ["held", "gen"]
        assert expected == results
        held, outer = hogtrace_events
        assert (outer.span_id, "held") == (held.parent_id, held.name)
        assert hogtrace.current() is None

    def test_with_block_across_yield_resumed_in_other_context(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Resuming from a copied context closes the inner block without any log or error."""
        import contextvars

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            with hogtrace.span("held"):
                yield 1
            yield 2

        caplog.set_level(logging.DEBUG, logger="hogtrace")
        it = gen()
        expected = 1
        assert expected == next(it)
        expected = [2]
        assert expected == contextvars.copy_context().run(list, it)

        expected = ["held", "gen"]
        assert expected == [e.name for e in hogtrace_events]
        expected = []
        assert expected == caplog.records

    async def test_async_generator_pass_through(self, hogtrace_events: CapturedEvents) -> None:
        """``asend``, ``athrow`` and ``aclose`` reach the async generator body."""
        received: list[Any] = []

        @hogtrace.span("echo")
        async def echo() -> Any:
            value = yield "ready"
            while True:
                try:
                    received.append(value)
                    await asyncio.sleep(0)
                    value = yield value * 2
                except KeyError as err:
                    value = yield f"caught {err.args[0]}"
                except GeneratorExit:
                    received.append("closed")
                    raise

        agen = echo()
        expected = "ready"
        assert expected == await agen.asend(None)
        expected = 10
        assert expected == await agen.asend(5)
        expected = "caught k"
        assert expected == await agen.athrow(KeyError("k"))
        expected = 14
        assert expected == await agen.asend(7)
        await agen.aclose()

        expected = [5, 7, "closed"]
        assert expected == received
        event = hogtrace_events.one()
        expected = ["ready", 10, "caught k", 14]
        assert expected == event.properties["$ai_output_state"]
        assert not event.is_error

    async def test_async_generator_break(self, hogtrace_events: CapturedEvents) -> None:
        """Breaking out of ``async for`` and closing ends the scope once without error."""

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[int]:
            for i in range(10):
                yield i

        it = agen()
        async for i in it:
            if i == 1:
                break
        await it.aclose()
        await it.aclose()

        event = hogtrace_events.one()
        expected = ([0, 1], False)
        assert expected == (event.properties["$ai_output_state"], event.is_error)

    async def test_async_generator_loop_body_is_sibling(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """Spans in the ``async for`` body are siblings of the async generator's scope."""

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[int]:
            with hogtrace.span("in"):
                yield 1

        async with hogtrace.trace("root") as root:
            async for _ in agen():
                assert root is hogtrace.current()
                with hogtrace.span("loop"):
                    pass

        agen_event = hogtrace_events.one(name="agen")
        assert root.id == agen_event.parent_id
        assert root.id == hogtrace_events.one(name="loop").parent_id
        assert agen_event.span_id == hogtrace_events.one(name="in").parent_id

    async def test_async_generator_exception(self, hogtrace_events: CapturedEvents) -> None:
        """An exception in an async generator is recorded and re-raised unchanged."""
        err = ValueError("boom")

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[int]:
            yield 1
            raise err

        with pytest.raises(ValueError, match="boom") as info:
            [i async for i in agen()]
        assert err is info.value
        expected = "ValueError: boom"
        assert expected == hogtrace_events.one().properties["$ai_error"]

    async def test_async_generator_never_started(self, hogtrace_events: CapturedEvents) -> None:
        """An async generator created but never iterated emits nothing."""

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[int]:
            yield 1

        it = agen()
        del it
        gc.collect()
        expected = []
        assert expected == list(hogtrace_events)

    async def test_async_generator_garbage_collected(self, hogtrace_events: CapturedEvents) -> None:
        """A started async generator dropped without closing ends its scope once, without error."""
        closed = asyncio.Event()

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                closed.set()

        it = agen()
        expected = 1
        assert expected == await it.__anext__()
        del it
        gc.collect()
        await asyncio.wait_for(closed.wait(), timeout=10)
        for _ in range(5):  # let the loop's finaliser task finish after the body's finally
            await asyncio.sleep(0)

        event = hogtrace_events.one()
        expected = ([1], False)
        assert expected == (event.properties["$ai_output_state"], event.is_error)

    async def test_async_generator_resumed_from_other_task(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """An async generator's inner ``with`` across a ``yield`` survives resumption elsewhere."""

        @hogtrace.span("agen")
        async def agen() -> AsyncIterator[str | None]:
            async with hogtrace.span("held"):
                yield "first"
                scope = hogtrace.current()
                yield None if scope is None else scope.name

        it = agen()
        expected = "first"
        assert expected == await it.__anext__()
        rest = await asyncio.create_task(_drain(it))

        expected = ["held"]
        assert expected == rest
        held, outer = hogtrace_events
        assert outer.span_id == held.parent_id


async def _drain(it: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in it]


class TestStackedGenerators:
    def test_session_over_trace_on_a_generator(self, hogtrace_events: CapturedEvents) -> None:
        """A session stacked on a traced generator function tags the trace with its id."""

        @hogtrace.session("s1")
        @hogtrace.trace
        def stream() -> Iterator[int]:
            yield 1

        assert [1] == list(stream())
        expected = "s1"
        assert expected == hogtrace_events.one("$ai_trace").session_id

    def test_trace_over_span_on_a_generator(self, hogtrace_events: CapturedEvents) -> None:
        """The inner decorator's scope is a child of the outer one's."""

        @hogtrace.trace("outer")
        @hogtrace.span("inner")
        def twice() -> Iterator[int]:
            yield 1

        assert [1] == list(twice())
        outer = hogtrace_events.one(name="outer")
        inner = hogtrace_events.one(name="inner")
        expected = ("$ai_span", outer.span_id)
        assert expected == (inner.event, inner.parent_id)

    def test_continue_trace_over_trace_on_a_generator(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A traced streaming handler under continue_trace joins the remote trace."""
        with hogtrace.trace("caller") as caller:
            headers = hogtrace.inject()

        @hogtrace.continue_trace(lambda h: h)
        @hogtrace.trace("handler")
        def handler(h: dict[str, str]) -> Iterator[str]:
            yield "chunk"

        assert ["chunk"] == list(handler(headers))
        event = hogtrace_events.one(name="handler")
        expected = ("$ai_span", caller.trace_id, caller.id)
        assert expected == (event.event, event.trace_id, event.parent_id)

    async def test_session_over_span_on_an_async_generator(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """Stacking works the same on async generator functions."""

        @hogtrace.session("s2")
        @hogtrace.span("inner")
        async def agen() -> AsyncIterator[int]:
            yield 1

        assert [1] == [x async for x in agen()]
        expected = "s2"
        assert expected == hogtrace_events.one(name="inner").session_id


class TestDecorationErrors:
    @pytest.mark.parametrize(
        "make",
        [
            lambda: hogtrace.span(name=123),
            lambda: hogtrace.trace(name=b"x"),
            lambda: hogtrace.generation(name=1.5),
            lambda: hogtrace.embedding(name=["x"]),
            lambda: hogtrace.span(123),
            lambda: hogtrace.span(properties=[("a", 1)]),
            lambda: hogtrace.trace(properties="a=1"),
            lambda: hogtrace.session(properties=1),
            lambda: hogtrace.generation(properties=()),
            lambda: hogtrace.span(capture_input=1),
            lambda: hogtrace.trace(capture_output="yes"),
            lambda: hogtrace.generation(capture_input=None),
            lambda: hogtrace.session(id=123),
            lambda: hogtrace.session(123),
            lambda: hogtrace.session(distinct_id=42),
            lambda: hogtrace.trace(id=42),
            lambda: hogtrace.trace(distinct_id=object()),
            lambda: hogtrace.span("x")(42),
        ],
    )
    def test_bad_input_raises_type_error(self, make: Callable[[], Any]) -> None:
        """Bad options raise ``TypeError`` when the decorator is built, not when called."""
        with pytest.raises(TypeError, match="hogtrace"):
            make()

    def test_invalid_literal_trace_id(self) -> None:
        """A literal invalid trace id raises ``ValueError`` at decoration time."""
        with pytest.raises(ValueError, match="invalid trace id"):
            hogtrace.trace(id="has space")
        with pytest.raises(ValueError, match="invalid trace id"):
            hogtrace.trace(id="")


class TestDisabled:
    def test_enabled_false_is_pass_through(self, hogtrace_events: CapturedEvents) -> None:
        """With ``enabled=False`` every form runs unchanged and nothing is emitted."""

        @hogtrace.trace
        def f(x: int) -> int:
            return x + 1

        @hogtrace.span
        def gen() -> Iterator[int]:
            yield 1

        @hogtrace.session(id="s")
        async def coro() -> int:
            return 3

        hogtrace.configure(enabled=False)
        expected = 2
        assert expected == f(1)
        expected = [1]
        assert expected == list(gen())
        expected = 3
        assert expected == asyncio.run(coro())
        with hogtrace.span("block"), hogtrace.generation("g"):
            pass

        expected = []
        assert expected == list(hogtrace_events)
        expected = 0
        assert expected == hogtrace.stats()["emitted"]

    def test_enabled_false_exception_unchanged(self, hogtrace_events: CapturedEvents) -> None:
        """A disabled decorator lets the exception through unchanged."""
        err = KeyError("k")

        @hogtrace.span
        def f() -> None:
            raise err

        hogtrace.configure(enabled=False)
        with pytest.raises(KeyError) as info:
            f()
        assert err is info.value
        expected = []
        assert expected == list(hogtrace_events)

    def test_enabled_again(self, hogtrace_events: CapturedEvents) -> None:
        """``configure(enabled=True)`` turns tracing back on for already decorated functions."""

        @hogtrace.span
        def f() -> int:
            return 1

        hogtrace.configure(enabled=False)
        f()
        hogtrace.configure(enabled=True)
        f()
        expected = 1
        assert expected == len(hogtrace_events)

    def test_shutdown_is_silent_until_configure(self, capture_server: Any) -> None:
        """After ``shutdown()`` scopes emit nothing until ``configure()`` is called again."""
        import posthog

        client = posthog.Posthog("phc_test", host=capture_server.url, sync_mode=True)
        try:

            @hogtrace.span("work")
            def work() -> int:
                return 7

            hogtrace.configure(client, distinct_id="u")
            hogtrace.shutdown()
            expected = 7
            assert expected == work()
            with hogtrace.span("block"):
                pass
            hogtrace.flush()
            expected = 0
            assert expected == hogtrace.stats()["emitted"]

            hogtrace.configure(client)
            expected = 7
            assert expected == work()
            hogtrace.flush()
            client.flush()
            expected = ["work"]
            assert expected == [e["properties"]["$ai_span_name"] for e in capture_server.events]
        finally:
            client.shutdown()

    def test_shutdown_is_silent_until_reset(self) -> None:
        """After ``shutdown()`` nothing is emitted; ``reset()`` turns tracing back on."""

        @hogtrace.span
        def f() -> int:
            return 1

        hogtrace.shutdown()
        expected = 1
        assert expected == f()
        expected = 0
        assert expected == hogtrace.stats()["emitted"]
        hogtrace.reset()
        expected = 1
        assert expected == f()
        expected = 1
        assert expected == hogtrace.stats()["emitted"]

    def test_configure_after_shutdown_inside_capture(self, hogtrace_events: CapturedEvents) -> None:
        """Inside a capture, ``configure()`` after ``shutdown()`` records events again."""

        @hogtrace.span
        def f() -> int:
            return 1

        hogtrace.shutdown()
        expected = 1
        assert expected == f()
        expected = []
        assert expected == list(hogtrace_events)
        hogtrace.configure()
        expected = 1
        assert expected == f()
        expected = 1
        assert expected == len(hogtrace_events)


TARGETS = [
    "hogtrace._scope.new_id",
    "hogtrace._scope.monotonic_ns",
    "hogtrace._scope.snapshot",
    "hogtrace._scope._emit",
    "hogtrace._scope.utc_now",
    "hogtrace._sinks.build_event",
    "hogtrace._decorators.Binder.bind",
]


class TestInternalFailures:
    @pytest.fixture
    def lenient(self) -> Iterator[None]:
        _errors.STRICT = False
        yield
        _errors.STRICT = True

    def test_exploding_property_value(self, hogtrace_events: CapturedEvents) -> None:
        """A property whose serialization explodes does not change the result or the event."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("repr")

            def __str__(self) -> str:
                raise RuntimeError("str")

        @hogtrace.span(properties={"bad": Hostile()})
        def f(x: Any) -> str:
            return "ok"

        expected = "ok"
        assert expected == f(Hostile())
        props = hogtrace_events.one().properties
        assert isinstance(props["bad"], str)
        expected = "ok"
        assert expected == props["$ai_output_state"]

    def test_a_result_whose_class_refuses_attribute_lookups(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A class whose metaclass ``__getattr__`` raises (not ``AttributeError``) is returned
        as it is: hogtrace asks its type whether it is a stream, and must take no for an
        answer it cannot get."""

        class Refusing(type):
            def __getattr__(cls, name: str) -> Any:
                raise RuntimeError(f"no {name}")

        class Thing(metaclass=Refusing):
            pass

        thing = Thing()

        @hogtrace.span
        def make() -> Thing:
            return thing

        assert make() is thing
        assert hogtrace_events.one().name.endswith(".make")

    @pytest.mark.parametrize("target", TARGETS)
    @pytest.mark.usefixtures("lenient")
    def test_decorated_calls_unaffected(
        self, target: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An internal function that raises never changes a decorated call's result or error."""
        err = ValueError("user")

        @hogtrace.trace
        def ok(x: list[int]) -> int:
            return 42 + len(step(x))

        @hogtrace.span
        def step(x: list[int]) -> list[int]:
            return x

        @hogtrace.span
        def fails() -> None:
            raise err

        @hogtrace.span
        def gen() -> Iterator[int]:
            yield 1
            yield 2

        @hogtrace.session(id=lambda: "s")
        async def coro() -> str:
            return "async"

        @hogtrace.generation
        async def agen() -> AsyncIterator[int]:
            yield 3

        async def drain() -> list[int]:
            return [i async for i in agen()]

        caplog.set_level(logging.DEBUG, logger="hogtrace")
        with capture_events():
            monkeypatch.setattr(target, _explode)
            expected = 43
            assert expected == ok([1])
            with pytest.raises(ValueError, match="user") as info:
                fails()
            assert err is info.value
            expected = [1, 2]
            assert expected == list(gen())
            expected = "async"
            assert expected == asyncio.run(coro())
            expected = [3]
            assert expected == asyncio.run(drain())

        assert any("internal error" in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize(
        "target",
        [
            t
            for t in TARGETS
            if "Binder" not in t  # with blocks bind no arguments
        ],
    )
    @pytest.mark.usefixtures("lenient")
    def test_with_blocks_unaffected(
        self, target: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An internal function that raises never changes what a ``with`` block does."""
        err = ValueError("user")

        async def run() -> str:
            async with hogtrace.span("async block") as scope:
                scope.set_input("in")
                return "async"

        caplog.set_level(logging.DEBUG, logger="hogtrace")
        with capture_events():
            monkeypatch.setattr(target, _explode)
            with hogtrace.trace("block") as block:
                block.set_output("x")
                block.set_properties(a=1)
                block.set_error("soft")
            expected = "async"
            assert expected == asyncio.run(run())
            with pytest.raises(ValueError, match="user") as info, hogtrace.span("failing block"):
                raise err
            assert err is info.value
            assert hogtrace.current() is None

        assert any("internal error" in r.getMessage() for r in caplog.records)


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("internal")


class TestContextManagerFactories:
    def test_decorating_a_contextmanager_function_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A scope over a ``@contextmanager`` function says it times only the creation."""
        import contextlib

        @hogtrace.span
        @contextlib.contextmanager
        def session_of(user: str) -> Iterator[str]:
            yield user

        with session_of("u") as user:
            assert "u" == user

        warnings = [r for r in caplog.records if "@contextmanager" in r.getMessage()]
        assert 1 == len(warnings)

    def test_decorator_below_contextmanager_times_the_block(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Below ``@contextmanager`` the scope is the generator's: it ends with the block."""
        import contextlib

        @contextlib.contextmanager
        @hogtrace.span("connection")
        def connection() -> Iterator[str]:
            yield "conn"

        with connection() as conn:
            assert [] == list(hogtrace_events)  # still open inside the block
        assert ("conn", ["conn"]) == (conn, hogtrace_events.one().output)
        assert not [r for r in caplog.records if "@contextmanager" in r.getMessage()]
