"""Usage examples that mypy --strict must accept, with the decorated types preserved.

Not collected by pytest (no ``test_`` prefix); checked by ``mypy`` through ``[tool.mypy] files``.
A ``# type: ignore[...]`` below proves the signature is still enforced: strict mode's
``warn_unused_ignores`` fails if a decorator ever erased the signature to ``(...)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from typing_extensions import assert_type

import hogtrace
from hogtrace.testing import CapturedEvents, capture_events

# -- bare and parenthesised decorators ------------------------------------------------------


@hogtrace.span
def bare(question: str, /) -> list[str]:
    return [question]


@hogtrace.span("retrieve")
def named(question: str, /) -> list[str]:
    return [question]


@hogtrace.span(name="retrieve", properties={"k": 1}, capture_input=False)
def keywords(question: str, /) -> list[str]:
    return [question]


@hogtrace.trace
def answer(question: str, *, k: int = 3) -> str:
    return question * k


@hogtrace.trace("nightly", id=lambda run: f"run-{run}", distinct_id="eval-bot")
def nightly(run: int) -> None:
    return None


@hogtrace.session
def conversation(chat_id: str) -> str:
    return answer(chat_id)


@hogtrace.session("conv-1")
def fixed_conversation() -> None:
    return None


@hogtrace.session(id=lambda chat_id, text: chat_id, distinct_id="u-1")
def handle(chat_id: str, text: str) -> str:
    return answer(text)


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def chat(messages: list[dict[str, str]], /) -> str:
    return messages[-1]["content"]


@hogtrace.generation
def bare_chat(prompt: str, /) -> str:
    return prompt


@hogtrace.embedding(model="text-embedding-3-small")
def embed(texts: list[str], /) -> list[list[float]]:
    return [[0.0] for _ in texts]


@hogtrace.embedding
def bare_embed(texts: list[str], /) -> list[list[float]]:
    return [[0.0] for _ in texts]


assert_type(bare, Callable[[str], list[str]])
assert_type(named, Callable[[str], list[str]])
assert_type(keywords, Callable[[str], list[str]])
assert_type(chat, Callable[[list[dict[str, str]]], str])
assert_type(bare_chat, Callable[[str], str])
assert_type(embed, Callable[[list[str]], list[list[float]]])
assert_type(bare_embed, Callable[[list[str]], list[list[float]]])
assert_type(answer("q", k=2), str)
assert_type(handle("c", text="t"), str)
assert_type(conversation("c"), str)
assert_type(fixed_conversation(), None)
assert_type(nightly(1), None)

answer("q", j=2)  # type: ignore[call-arg]
answer(1)  # type: ignore[arg-type]
handle("c")  # type: ignore[call-arg]
named(1)  # type: ignore[arg-type]
conversation()  # type: ignore[call-arg]


# -- async, generators, async generators ------------------------------------------------------


@hogtrace.span
async def fetch(url: str, /) -> bytes:
    return url.encode()


@hogtrace.trace("agent")
async def agent(goal: str, /) -> str:
    return (await fetch(goal)).decode()


@hogtrace.span
def tokens(n: int, /) -> Iterator[int]:
    yield from range(n)


@hogtrace.generation("stream")
async def stream(prompt: str, /) -> AsyncIterator[str]:
    yield prompt


assert_type(fetch, Callable[[str], Coroutine[Any, Any, bytes]])
assert_type(agent, Callable[[str], Coroutine[Any, Any, str]])
assert_type(tokens, Callable[[int], Iterator[int]])
assert_type(stream, Callable[[str], AsyncIterator[str]])


async def use_async() -> None:
    assert_type(await agent("goal"), str)
    async for chunk in stream("p"):
        assert_type(chunk, str)
    for token in tokens(3):
        assert_type(token, int)


# -- methods ------------------------------------------------------------------------------------


class Agent:
    prefix = "agent"

    @hogtrace.span
    def run(self, goal: str) -> str:
        return self.prefix + goal

    @hogtrace.trace("arun")
    async def arun(self, goal: str) -> str:
        return goal

    @hogtrace.session(id=lambda self, chat_id: chat_id)
    def chat(self, chat_id: str) -> int:
        return len(chat_id)

    @classmethod
    @hogtrace.span
    def build(cls, name: str) -> Agent:
        return cls()

    @hogtrace.span
    @classmethod
    def build_over(cls, name: str) -> Agent:
        return cls()

    @staticmethod
    @hogtrace.span("helper")
    def helper(x: int) -> int:
        return x

    @hogtrace.span
    @staticmethod
    def helper_over(x: int) -> int:
        return x

    @hogtrace.span
    def items(self, n: int) -> Iterator[str]:
        for i in range(n):
            yield f"{self.prefix}{i}"


async def use_methods() -> None:
    agent = Agent.build("a")
    assert_type(agent, Agent)
    assert_type(Agent.build_over("a"), Agent)
    assert_type(agent.run("goal"), str)
    assert_type(await agent.arun("goal"), str)
    assert_type(agent.chat("c"), int)
    assert_type(Agent.helper(1), int)
    assert_type(Agent.helper_over(1), int)
    assert_type(list(agent.items(2)), list[str])
    agent.run(1)  # type: ignore[arg-type]
    Agent.helper("x")  # type: ignore[arg-type]


# -- with blocks and scope objects ----------------------------------------------------------------


def use_with_blocks() -> None:
    with hogtrace.session("conv-1") as session:
        assert_type(session, hogtrace.SessionScope)
        with hogtrace.trace("turn", distinct_id="u") as turn:
            assert_type(turn.trace_id, str | None)
            turn.set_properties(step=1)
            with hogtrace.span("rerank") as span:
                assert_type(span, hogtrace.Scope)
                span.set_input({"docs": [1, 2]})
                span.set_output([2, 1])
                span.set_error("soft failure")
            with hogtrace.generation("llm", model="m") as gen:
                assert_type(gen, hogtrace.GenerationScope)
                gen.set_model("m", provider="p")
                gen.set_usage(input_tokens=1, output_tokens=2)
                gen.set_cost(total_cost_usd=0.1)
            with hogtrace.embedding("embed") as emb:
                emb.set_usage(input_tokens=3)
    assert_type(span.latency, float | None)
    metrics = span.metrics
    if metrics is not None:
        assert_type(metrics, hogtrace.Metrics)
        assert_type(metrics.input_tokens, int)
    current = hogtrace.current()
    assert_type(current, hogtrace.Scope | None)
    if current is not None:
        assert_type(current.id, str)


async def use_async_with_blocks() -> None:
    async with hogtrace.trace("t") as t, hogtrace.span("s") as s:
        assert_type(s.parent_id, str | None)
        t.set_output("done")


# -- configuration, propagation, testing ----------------------------------------------------------


def use_helpers() -> None:
    hogtrace.configure(distinct_id="u", properties={"env": "dev"}, sample_rate=0.5)
    hogtrace.configure(enabled=False)
    hogtrace.reset()
    assert_type(hogtrace.stats(), dict[str, int])
    hogtrace.flush(timeout=1.0)

    def work(n: int, /) -> str:
        return str(n)

    carried = hogtrace.propagate(work)
    assert_type(carried, Callable[[int], str])
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert_type(pool.submit(carried, 1).result(), str)

    headers = hogtrace.inject()
    assert_type(headers, dict[str, str])
    hogtrace.metric("relevance", 0.9)
    hogtrace.feedback("great")
    hogtrace.shutdown()


def use_testing() -> None:
    with capture_events() as events:
        answer("q")
    assert_type(events, CapturedEvents)
    assert_type(events.one(name="answer").properties, dict[str, Any])
    assert_type(events.tree(), str)


def use_current_accessors() -> None:
    # Never None: no narrowing, no cast, under mypy --strict.
    hogtrace.current_span().set_properties(documents=3)
    generation = hogtrace.current_generation()
    assert_type(generation, hogtrace.GenerationScope)
    generation.set_usage(input_tokens=12, output_tokens=5)
    generation.set_cost(total_cost_usd=0.01)
    root = hogtrace.current_trace()
    assert_type(root, hogtrace.Scope)
    root.set_name("chat")
    root.set_distinct_id("user-1")
    root.set_properties(plan="pro")
    root.set_input({"q": "hi"})
    root.set_output("hello")


def use_span_kinds() -> None:
    @hogtrace.tool
    def lookup(city: str) -> int:
        return len(city)

    @hogtrace.agent("bot")
    def run(task: str, /) -> str:
        return task

    assert_type(lookup(city="x"), int)  # the parameter names are kept
    assert_type(lookup("x"), int)
    assert_type(run("t"), str)
    with hogtrace.span("s", kind="retriever") as s:
        s.set_output(1)


# -- hogtrace.testing reached as an attribute after a bare `import hogtrace` -------------------


def uses_the_attribute() -> None:
    with hogtrace.testing.capture_events() as captured:
        assert_type(captured, CapturedEvents)
