"""hogtrace chat loop: two turns of one conversation, with tokens, costs and session totals.

Runs offline with nothing but hogtrace installed. A fake model stands in for the LLM and answers
with provider-shaped responses: real ``openai`` / ``anthropic`` SDK objects when those packages
are importable, plain dicts of the same shape otherwise (hogtrace reads both the same way, without
importing either SDK itself).

Each turn is a trace with two generations: an OpenAI-style chat completion that answers, and an
Anthropic-style *stream* that titles the conversation (hogtrace joins the chunks, reads the usage
from the stream events and measures the time to first token). Each finished trace is printed as a
tree with its token counts; at the end the session's metrics total both turns. Set
POSTHOG_API_KEY (and POSTHOG_HOST) to send the same events to your PostHog project.

    python examples/chat_loop.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import hogtrace

try:  # optional: the fake model builds real SDK objects when the SDKs are installed
    from openai.types.chat import ChatCompletion
except ImportError:
    ChatCompletion = None
try:
    import anthropic.types as anthropic_types
except ImportError:
    anthropic_types = None

#: USD per token (input, cached input, output): the app prices its calls itself with set_cost.
PRICES = {"gpt-4o-mini": (0.15e-6, 0.075e-6, 0.6e-6)}
SYSTEM = {"role": "system", "content": "You are a concise assistant for PostHog questions."}
QUESTIONS = [
    "What does hogtrace send to PostHog?",
    "And how are the two turns of this chat linked?",
]


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


def as_dict(response: Any) -> dict[str, Any]:
    """An SDK response (pydantic model) or a dict, as a dict."""
    return response if isinstance(response, dict) else response.model_dump()


# --- the fake model: provider-shaped responses ----------------------------------------------------


def fake_chat_completion(model: str, messages: list[dict[str, str]]) -> Any:
    """An OpenAI chat completion answering the last message (earlier turns count as cached)."""
    question = messages[-1]["content"]
    answer = f"Short answer to {question!r}: one $ai_* event per scope, linked into a tree."
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    # From the second turn on, the provider has the conversation so far (the prefix) cached.
    cached_tokens = prompt_tokens - count_tokens(question) if len(messages) > 2 else 0
    data = {
        "id": f"chatcmpl-{len(messages)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count_tokens(answer),
            "total_tokens": prompt_tokens + count_tokens(answer),
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }
    return ChatCompletion.model_validate(data) if ChatCompletion is not None else data


def fake_anthropic_stream(model: str, messages: list[dict[str, str]]) -> Iterator[Any]:
    """Anthropic raw stream events (message_start ... message_stop) for a short title."""
    words = ["Chat", " about", " hogtrace"]
    input_tokens = sum(count_tokens(m["content"]) for m in messages)
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in words
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(words)},
        },
        {"type": "message_stop"},
    ]
    for event in events:
        yield _anthropic_event(event) if anthropic_types is not None else event


def _anthropic_event(event: dict[str, Any]) -> Any:
    assert anthropic_types is not None
    classes = {
        "message_start": anthropic_types.RawMessageStartEvent,
        "content_block_start": anthropic_types.RawContentBlockStartEvent,
        "content_block_delta": anthropic_types.RawContentBlockDeltaEvent,
        "content_block_stop": anthropic_types.RawContentBlockStopEvent,
        "message_delta": anthropic_types.RawMessageDeltaEvent,
        "message_stop": anthropic_types.RawMessageStopEvent,
    }
    return classes[event["type"]].model_validate(event)


# --- the application ------------------------------------------------------------------------------


@hogtrace.generation(provider="openai")
def chat(
    messages: list[dict[str, str]], model: str = "gpt-4o-mini", temperature: float = 0.3
) -> Any:
    """One LLM call. Model, tokens and output are read from the returned completion."""
    response = fake_chat_completion(model, messages)
    usage = as_dict(response)["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    price_in, price_cached, price_out = PRICES[model]
    generation = hogtrace.current()
    assert isinstance(generation, hogtrace.GenerationScope)
    generation.set_cost(
        input_cost_usd=(usage["prompt_tokens"] - cached) * price_in + cached * price_cached,
        output_cost_usd=usage["completion_tokens"] * price_out,
    )
    return response


@hogtrace.generation(name="title", provider="anthropic")
def stream_title(
    messages: list[dict[str, str]], model: str = "claude-haiku-4-5", max_tokens: int = 16
) -> Iterator[Any]:
    """A streamed LLM call: every event reaches the caller unchanged, and hogtrace joins them."""
    yield from fake_anthropic_stream(model, messages)


def text_of(event: Any) -> str:
    """The text an Anthropic stream event adds ("" for the others)."""
    return str((as_dict(event).get("delta") or {}).get("text") or "")


@hogtrace.trace(name="turn")
def turn(history: list[dict[str, str]], question: str) -> str:
    """One turn of the chat: answer the question, then stream a title for the conversation."""
    history.append({"role": "user", "content": question})
    answer: str = as_dict(chat(list(history)))["choices"][0]["message"]["content"]
    history.append({"role": "assistant", "content": answer})
    title = "".join(text_of(event) for event in stream_title(list(history)))
    hogtrace.metric("answer_words", count_tokens(answer))
    print(f"user: {question}\nassistant: {answer}\n(title: {title})\n", flush=True)
    return answer


def main() -> hogtrace.Metrics:
    """Run two turns in one session; print each trace tree and the session totals."""
    if os.environ.get("POSTHOG_API_KEY"):
        hogtrace.configure(
            api_key=os.environ["POSTHOG_API_KEY"], host=os.environ.get("POSTHOG_HOST")
        )
    hogtrace.configure(console=True)  # each trace is printed as a tree (stderr) when it ends
    history = [SYSTEM]
    with hogtrace.session("chat-42", distinct_id="user-42") as conversation:
        for question in QUESTIONS:
            turn(history, question)
    totals = conversation.metrics
    assert totals is not None  # set once the session has exited
    print(
        f"session {conversation.id}: {totals.generations} generations,"
        f" {totals.input_tokens} input tokens ({totals.cache_read_input_tokens} cached),"
        f" {totals.output_tokens} output tokens, ${totals.total_cost_usd:.8f},"
        f" {totals.errors} errors"
    )
    print(f"session latency: {totals.latency * 1000:.1f} ms", flush=True)
    return totals


if __name__ == "__main__":
    main()
    hogtrace.shutdown()
