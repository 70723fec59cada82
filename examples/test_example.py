"""How to test code traced with hogtrace: a test module you can copy next to your own tests.

The ``hogtrace_events`` fixture comes with hogtrace (no conftest needed). It records the events
your code would send to PostHog, in memory, with deterministic ids, and never touches the
network. Run this file with ``pytest examples/test_example.py``; the async test needs
pytest-asyncio and the timing tests need freezegun.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time

import hogtrace
from hogtrace.testing import CapturedEvents, capture_events

# -- The application under test (in your project, import it from your code) ------------------

DOCS = {
    "pricing": "LLM analytics is free for the first 100k events each month.",
    "sessions": "Sessions group traces by $ai_session_id.",
}


@hogtrace.span
def retrieve(question: str) -> list[str]:
    return [text for key, text in DOCS.items() if key in question.lower()]


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def chat(messages: list[dict[str, str]]) -> dict[str, Any]:
    """A stand-in for an OpenAI call: returns a chat-completion-shaped response."""
    return {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "It is free up to 100k events."},
            }
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7},
    }


@hogtrace.trace
def answer(question: str) -> str:
    context = retrieve(question)
    if not context:
        raise LookupError(f"nothing known about {question!r}")
    messages = [{"role": "system", "content": c} for c in context]
    messages.append({"role": "user", "content": question})
    response = chat(messages)
    text: str = response["choices"][0]["message"]["content"]
    hogtrace.metric("answer_length", len(text))
    return text


@hogtrace.session(id=lambda conversation_id, questions: conversation_id)
def conversation(conversation_id: str, questions: list[str]) -> list[str]:
    return [answer(q) for q in questions]


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def stream_reply(prompt: str) -> Iterator[str]:
    """A streamed generation: hogtrace joins the chunks and times the first one."""
    yield "Hello"
    yield " world"


@hogtrace.span
async def fetch(url: str) -> str:
    await asyncio.sleep(0)
    return f"contents of {url}"


@hogtrace.trace
async def crawl(urls: list[str]) -> list[str]:
    return list(await asyncio.gather(*(fetch(u) for u in urls)))


# -- Tests ---------------------------------------------------------------------------------------


def test_trace_tree(hogtrace_events: CapturedEvents) -> None:
    """Compare the whole trace to a literal tree: readable, stable, and shown on failure."""
    answer("What does pricing look like?")

    expected = """\
answer [trace]
├── retrieve [span]
├── chat [generation, gpt-4o-mini, tokens in=42 out=7]
└── metric answer_length=29"""
    assert hogtrace_events.tree() == expected


def test_generation_properties(hogtrace_events: CapturedEvents) -> None:
    """Look at one event: ``one()`` fails listing what was captured if there is not exactly one."""
    answer("What does pricing look like?")

    generation = hogtrace_events.one("generation", name="chat")
    assert generation.model == "gpt-4o-mini"
    assert generation.properties["$ai_input_tokens"] == 42
    assert generation.input[-1]["content"] == "What does pricing look like?"
    assert hogtrace_events.one("trace").span_id == generation.parent_id


def test_session(hogtrace_events: CapturedEvents) -> None:
    """Every event of a conversation carries its session id; each turn is its own trace."""
    conversation("conv-1", ["Pricing?", "How do sessions work?"])

    assert {e.session_id for e in hogtrace_events} == {"conv-1"}
    assert [t.name for t in hogtrace_events.traces] == ["answer", "answer"]


def test_error_is_recorded(hogtrace_events: CapturedEvents) -> None:
    """A failing scope is an error event; the exception still reaches the caller."""
    with pytest.raises(LookupError):
        answer("What about the weather?")

    trace = hogtrace_events.one("trace")
    assert trace.is_error
    assert trace.error == "LookupError: nothing known about 'What about the weather?'"
    assert [e.name for e in hogtrace_events.errors] == ["answer"]


def test_stream(hogtrace_events: CapturedEvents) -> None:
    """A streamed generation records the joined output."""
    assert list(stream_reply("hi")) == ["Hello", " world"]

    generation = hogtrace_events.one("generation")
    assert generation.properties["$ai_stream"] is True
    assert generation.output == [{"role": "assistant", "content": "Hello world"}]


def test_latency_with_freezegun(hogtrace_events: CapturedEvents) -> None:
    """Under freezegun, latencies are exactly what the test ticked and timestamps are frozen."""
    with freeze_time("2025-01-01 12:00:00") as frozen, hogtrace.trace("pipeline"):
        frozen.tick(0.25)
        with hogtrace.span("step"):
            frozen.tick(1.5)

    assert hogtrace_events.one(name="step").latency == 1.5
    assert hogtrace_events.one(name="pipeline").latency == 1.75
    assert hogtrace_events[-1].timestamp.isoformat() == "2025-01-01T12:00:01.750000+00:00"


@pytest.mark.asyncio
async def test_async(hogtrace_events: CapturedEvents) -> None:
    """Async code is traced the same way; concurrent siblings are listed in the order they began."""
    await crawl(["a.example", "b.example"])

    expected = "crawl [trace]\n├── fetch [span]\n└── fetch [span]"
    assert hogtrace_events.tree() == expected


def test_snapshot(hogtrace_events: CapturedEvents) -> None:
    """``as_dicts()`` is a plain view with volatile values normalised, for snapshot tests."""
    retrieve("pricing")

    expected = {
        "event": "$ai_trace",
        "distinct_id": "00000000-0000-4000-8000-000000000001",
        "properties": {
            "$ai_trace_id": "00000000-0000-4000-8000-000000000001",
            "$ai_span_id": "00000000-0000-4000-8000-000000000001",
            "$ai_span_name": "retrieve",
            "$ai_latency": "<latency>",
            "$ai_lib": "hogtrace",
            "$ai_lib_version": "<version>",
            "$ai_input_state": {"question": "pricing"},
            "$ai_output_state": [DOCS["pricing"]],
            "$process_person_profile": False,
        },
        "timestamp": "<timestamp>",
        "uuid": "<uuid>",
    }
    assert hogtrace_events.as_dicts() == [expected]


def test_without_the_fixture() -> None:
    """``capture_events()`` is the same thing as a context manager, usable outside pytest."""
    with capture_events() as events:
        answer("How do sessions work?")

    assert [e.event for e in events] == ["$ai_span", "$ai_generation", "$ai_metric", "$ai_trace"]
