"""The current scope across asyncio tasks, threads, executors and generators (SPEC §2)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import hogtrace
from hogtrace.testing import CapturedEvents


def plain_name(fn: Any) -> str:
    """The default scope name: the ``__qualname__`` without ``<locals>.`` segments."""
    return str(fn.__qualname__).replace("<locals>.", "")


class TestAsyncio:
    async def test_task_inherits_scope(self, hogtrace_events: CapturedEvents) -> None:
        """A task created inside a scope sees it as current, and its spans are its children."""

        async def child() -> str | None:
            scope = hogtrace.current()
            async with hogtrace.span("in-task"):
                await asyncio.sleep(0)
            return None if scope is None else scope.name

        async with hogtrace.trace("root") as root:
            task = asyncio.create_task(child())
            expected = "root"
            assert expected == await task

        assert root.id == hogtrace_events.one(name="in-task").parent_id

    async def test_gather_children_are_siblings(self, hogtrace_events: CapturedEvents) -> None:
        """Decorated coroutines gathered inside a span are siblings under it."""

        @hogtrace.span
        async def step(n: int) -> int:
            await asyncio.sleep(0)
            with hogtrace.span(f"leaf-{n}"):
                await asyncio.sleep(0)
            return n

        async with hogtrace.trace("root") as root:
            expected = [0, 1, 2]
            assert expected == await asyncio.gather(step(0), step(1), step(2))

        steps = hogtrace_events.named(plain_name(step))
        expected = 3
        assert expected == len(steps)
        assert {root.id} == {e.parent_id for e in steps}
        for n in range(3):
            leaf = hogtrace_events.one(name=f"leaf-{n}")
            parent = next(e for e in steps if e.span_id == leaf.parent_id)
            assert {"n": n} == parent.properties["$ai_input_state"]

    async def test_task_created_outside_sees_nothing(self, hogtrace_events: CapturedEvents) -> None:
        """A task created before a scope opens does not see that scope."""
        gate = asyncio.Event()

        async def waiter() -> hogtrace.Scope | None:
            await gate.wait()
            return hogtrace.current()

        task = asyncio.create_task(waiter())
        async with hogtrace.trace("root"):
            gate.set()
            assert await task is None

    async def test_fifty_concurrent_sessions(self, hogtrace_events: CapturedEvents) -> None:
        """50 interleaved sessions keep their session ids, traces and parents apart."""

        @hogtrace.span
        async def retrieve(conv: str, depth: int) -> str:
            await asyncio.sleep(0)
            scope = hogtrace.current()
            assert scope is not None
            scope.set_properties(conv=conv)
            if depth:
                await asyncio.sleep(0)
                await retrieve(conv, depth - 1)
            await asyncio.sleep(0)
            return conv

        @hogtrace.trace
        async def turn(conv: str) -> str:
            scope = hogtrace.current()
            assert scope is not None
            scope.set_properties(conv=conv)
            await asyncio.sleep(0)
            results = await asyncio.gather(retrieve(conv, 2), retrieve(conv, 0))
            async with hogtrace.generation("llm") as gen:
                gen.set_properties(conv=conv)
                await asyncio.sleep(0)
            return results[0]

        @hogtrace.session(id=lambda conv: f"session-{conv}")
        async def handle(conv: str) -> str:
            await asyncio.sleep(0)
            return await turn(conv)

        convs = [f"c{i}" for i in range(50)]
        assert convs == await asyncio.gather(*(handle(c) for c in convs))

        # Per conversation: 1 trace, 3 + 1 retrieve spans, 1 generation.
        expected = 50 * 6
        assert expected == len(hogtrace_events)
        trace_of: dict[str, str | None] = {}
        spans_by_id = {e.span_id: e for e in hogtrace_events}
        for event in hogtrace_events:
            conv = event.properties["conv"]
            assert f"session-{conv}" == event.session_id
            assert trace_of.setdefault(conv, event.trace_id) == event.trace_id
            if event.parent_id is not None:
                assert conv == spans_by_id[event.parent_id].properties["conv"]
        expected = 50
        assert expected == len(set(trace_of.values()))
        expected = 50
        assert expected == len(hogtrace_events.traces)

    async def test_concurrent_with_blocks_one_spec(self, hogtrace_events: CapturedEvents) -> None:
        """One spec entered concurrently by many tasks closes each task's own scope."""
        spec = hogtrace.span("shared")

        async def run(n: int) -> tuple[str, str]:
            async with spec as scope:
                scope.set_properties(n=n)
                await asyncio.sleep(0)
                inner_id = scope.id
                await asyncio.sleep(0)
            return inner_id, scope.id

        async with hogtrace.trace("root") as root:
            pairs = await asyncio.gather(*(run(n) for n in range(20)))

        assert all(a == b for a, b in pairs)
        shared = hogtrace_events.named("shared")
        assert {root.id} == {e.parent_id for e in shared}
        assert {n: pairs[n][0] for n in range(20)} == {e.properties["n"]: e.span_id for e in shared}

    async def test_session_per_task(self, hogtrace_events: CapturedEvents) -> None:
        """``async with`` sessions in concurrent tasks do not leak into each other."""

        async def run(n: int) -> None:
            async with hogtrace.session(f"s{n}"):
                await asyncio.sleep(0)
                async with hogtrace.span("work") as work:
                    work.set_properties(n=n)
                    await asyncio.sleep(0)

        await asyncio.gather(*(run(n) for n in range(10)))
        assert {f"s{n}" for n in range(10)} == {e.session_id for e in hogtrace_events}
        for event in hogtrace_events:
            assert f"s{event.properties['n']}" == event.session_id


class TestThreads:
    def test_thread_does_not_inherit(self, hogtrace_events: CapturedEvents) -> None:
        """A plain thread starts with no current scope; its spans start their own trace."""
        seen: list[Any] = []

        def work() -> None:
            seen.append(hogtrace.current())
            with hogtrace.span("in-thread"):
                pass

        with hogtrace.trace("root") as root:
            t = threading.Thread(target=work)
            t.start()
            t.join()

        expected = [None]
        assert expected == seen
        in_thread = hogtrace_events.one(name="in-thread")
        expected = "$ai_trace"
        assert expected == in_thread.event
        assert root.id != in_thread.trace_id

    def test_propagate_carries_scope(self, hogtrace_events: CapturedEvents) -> None:
        """``propagate(fn)`` runs ``fn`` in another thread inside the current scope."""
        seen: list[Any] = []

        @hogtrace.span("in-thread")
        def work(x: int) -> int:
            seen.append(hogtrace.current())
            return x * 2

        with hogtrace.session("conv"), hogtrace.trace("root") as root:
            wrapped = hogtrace.propagate(work)
            result: list[int] = []
            t = threading.Thread(target=lambda: result.append(wrapped(21)))
            t.start()
            t.join()

        expected = [42]
        assert expected == result
        event = hogtrace_events.one(name="in-thread")
        assert (root.id, root.id, "conv") == (event.trace_id, event.parent_id, event.session_id)
        assert hogtrace.current() is None

    def test_propagate_keeps_metadata(self) -> None:
        """``propagate`` keeps the wrapped function's name and docstring."""

        def fetch(url: str) -> str:
            """Fetch."""
            return url

        wrapped = hogtrace.propagate(fetch)
        expected = ("fetch", "Fetch.", "u")
        assert expected == (wrapped.__name__, wrapped.__doc__, wrapped("u"))

    def test_executor_with_propagate(self, hogtrace_events: CapturedEvents) -> None:
        """With ``propagate``, 8 pool workers all nest their spans under the submitting span."""
        barrier = threading.Barrier(8)

        @hogtrace.span
        def fetch(n: int) -> int:
            barrier.wait(timeout=10)
            with hogtrace.span(f"inner-{n}"):
                pass
            return n

        with (
            ThreadPoolExecutor(max_workers=8) as pool,
            hogtrace.session("conv"),
            hogtrace.trace("fan-out") as root,
        ):
            futures = [pool.submit(hogtrace.propagate(fetch), n) for n in range(8)]
            assert list(range(8)) == [f.result(timeout=10) for f in futures]

        fetches = hogtrace_events.named(plain_name(fetch))
        expected = 8
        assert expected == len(fetches)
        assert {root.id} == {e.parent_id for e in fetches}
        assert {root.id} == {e.trace_id for e in hogtrace_events}
        assert {"conv"} == {e.session_id for e in hogtrace_events}
        for n in range(8):
            inner = hogtrace_events.one(name=f"inner-{n}")
            parent = next(e for e in fetches if e.span_id == inner.parent_id)
            assert {"n": n} == parent.properties["$ai_input_state"]

    def test_executor_without_propagate(self, hogtrace_events: CapturedEvents) -> None:
        """Without ``propagate``, pool workers do not see the submitting scope."""
        with ThreadPoolExecutor(max_workers=2) as pool, hogtrace.trace("root"):
            assert pool.submit(hogtrace.current).result(timeout=10) is None

    def test_propagated_function_reused(self, hogtrace_events: CapturedEvents) -> None:
        """One propagated function can run in several threads at once."""
        barrier = threading.Barrier(4)

        def work() -> str | None:
            barrier.wait(timeout=10)
            with hogtrace.span("w") as w:
                return w.parent_id

        with ThreadPoolExecutor(max_workers=4) as pool, hogtrace.trace("root") as root:
            wrapped = hogtrace.propagate(work)
            futures = [pool.submit(wrapped) for _ in range(4)]
            assert [root.id] * 4 == [f.result(timeout=10) for f in futures]

    def test_propagate_outside_scope(self, hogtrace_events: CapturedEvents) -> None:
        """``propagate`` outside any scope runs the function with no current scope."""
        wrapped = hogtrace.propagate(hogtrace.current)
        with hogtrace.trace("later"):
            assert wrapped() is None


class TestContextDiscipline:
    def test_generator_in_another_thread(self, hogtrace_events: CapturedEvents) -> None:
        """A decorated generator consumed in another thread still nests under its call site."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            with hogtrace.span("inside"):
                yield 1
            yield 2

        with hogtrace.trace("root") as root:
            it = gen()
            items: list[int] = []
            t = threading.Thread(target=lambda: items.extend(it))
            t.start()
            t.join()

        expected = [1, 2]
        assert expected == items
        gen_event = hogtrace_events.one(name="gen")
        assert root.id == gen_event.parent_id
        assert gen_event.span_id == hogtrace_events.one(name="inside").parent_id

    def test_generator_does_not_leak_into_caller(self, hogtrace_events: CapturedEvents) -> None:
        """Advancing a decorated generator leaves the caller's current scope untouched."""

        @hogtrace.span("gen")
        def gen() -> Iterator[int]:
            with hogtrace.span("open-across-yield"):
                yield 1
                yield 2

        it = gen()
        next(it)
        assert hogtrace.current() is None
        with hogtrace.trace("other") as other:
            next(it)
            assert other is hogtrace.current()
        it.close()
        assert hogtrace.current() is None

    def test_with_block_exited_in_other_context(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A block entered in one context and exited in another is closed, never raising."""
        spec = hogtrace.span("moved")
        caplog.set_level(logging.DEBUG, logger="hogtrace")

        scope = contextvars.copy_context().run(spec.__enter__)
        spec.__exit__(None, None, None)

        assert scope.latency is not None
        expected = "moved"
        assert expected == hogtrace_events.one().name

    def test_scope_restored_after_exception_in_task(self, hogtrace_events: CapturedEvents) -> None:
        """A failing coroutine restores the caller's scope."""

        @hogtrace.span
        async def boom() -> None:
            await asyncio.sleep(0)
            raise ValueError("boom")

        async def main() -> bool:
            async with hogtrace.trace("root") as root:
                with pytest.raises(ValueError, match="boom"):
                    await boom()
                return root is hogtrace.current()

        assert asyncio.run(main())
        assert hogtrace.current() is None
