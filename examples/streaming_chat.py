"""hogtrace streaming chat: a generator generation that yields chunks, with time to first token.

Runs offline with nothing but hogtrace installed: a fake model streams OpenAI
``chat.completion.chunk``-shaped dicts (the last one carries the token usage, as with
``stream_options={"include_usage": True}``), with a short pause before each chunk to stand in for
the network. Set POSTHOG_API_KEY (and POSTHOG_HOST) to also send the events to your PostHog
project.

    python examples/streaming_chat.py

A ``@hogtrace.generation`` on a generator function (or an ``async def`` generator) is a stream:

- every chunk reaches the caller unchanged, as it arrives;
- hogtrace joins the chunks into one ``$ai_output_choices`` message, takes the model, the stop
  reason and the token counts from the chunks that carry them, and sets ``$ai_stream: true``;
- ``$ai_time_to_first_token`` is the time from the call to the first chunk, and ``$ai_latency``
  runs until the stream ends, or until the caller stops reading and the generator is closed
  (the output is then what was streamed so far).

Three turns of one conversation: a full stream, a stream the reader stops early, and the same
with an async generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import hogtrace

CHUNK_DELAY = 0.01  # seconds before each chunk: the network, in this fake
FIRST_CHUNK_DELAY = 0.05  # the model "thinking" before the first token


def fake_openai_stream(model: str, messages: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
    """OpenAI chat.completion.chunk dicts answering the last message, then a usage chunk."""
    words = f"You asked: {messages[-1]['content']} Here is a streamed answer.".split(" ")
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
    time.sleep(FIRST_CHUNK_DELAY)
    for i, word in enumerate(words):
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        time.sleep(CHUNK_DELAY)
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    prompt_tokens = sum(len(m["content"].split()) for m in messages)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words)}
    yield {**base, "choices": [], "usage": usage}


def text_of(chunk: dict[str, Any]) -> str:
    """The text a chunk adds ("" for the final and usage chunks)."""
    choices = chunk["choices"]
    return str(choices[0]["delta"].get("content") or "") if choices else ""


class ChatClient:
    """The application's model client; ``last_generation`` keeps the latest call's scope."""

    def __init__(self) -> None:
        self.last_generation: hogtrace.GenerationScope | None = None

    @hogtrace.generation(name="chat", provider="openai")
    def stream(
        self, messages: list[dict[str, str]], model: str = "gpt-4o-mini", temperature: float = 0.7
    ) -> Iterator[dict[str, Any]]:
        """Stream a reply. With the real SDK: ``yield from client.chat.completions.create(
        model=model, messages=messages, temperature=temperature, stream=True,
        stream_options={"include_usage": True})``.
        """
        # While the body runs, the current scope is this call's generation.
        generation = hogtrace.current()
        assert isinstance(generation, hogtrace.GenerationScope)
        self.last_generation = generation
        yield from fake_openai_stream(model, messages)

    @hogtrace.generation(name="chat", provider="openai")
    async def astream(
        self, messages: list[dict[str, str]], model: str = "gpt-4o-mini", temperature: float = 0.7
    ) -> AsyncIterator[dict[str, Any]]:
        """The same stream from an async generator (``await client.chat.completions.create``)."""
        generation = hogtrace.current()
        assert isinstance(generation, hogtrace.GenerationScope)
        self.last_generation = generation
        for chunk in fake_openai_stream(model, messages):
            await asyncio.sleep(0)
            yield chunk


def report(client: ChatClient) -> None:
    """Print what hogtrace measured for the latest generation."""
    generation = client.last_generation
    assert generation is not None
    assert generation.latency is not None  # closed by now
    ttft = generation.time_to_first_token
    print(
        f"\n  [time to first token {ttft * 1000:.0f} ms, whole stream"
        f" {generation.latency * 1000:.0f} ms, tokens {generation.usage}]\n",
        flush=True,
    )


@hogtrace.trace(name="chat-turn")
def turn(client: ChatClient, history: list[dict[str, str]], text: str) -> str:
    """Stream the whole reply to the screen as it arrives."""
    history.append({"role": "user", "content": text})
    print(f"user: {text}\nassistant: ", end="", flush=True)
    reply = ""
    for chunk in client.stream(history):
        reply += text_of(chunk)
        print(text_of(chunk), end="", flush=True)
    history.append({"role": "assistant", "content": reply})
    report(client)
    return reply


@hogtrace.trace(name="chat-turn-interrupted")
def interrupted_turn(client: ChatClient, history: list[dict[str, str]], text: str) -> str:
    """The reader stops after three words: closing the stream ends the generation there."""
    history.append({"role": "user", "content": text})
    print(f"user: {text}\nassistant: ", end="", flush=True)
    reply = ""
    # closing() ends the generation as soon as we stop reading (without it, when the
    # generator is garbage-collected); its output is what was streamed so far.
    with contextlib.closing(client.stream(history)) as chunks:
        for chunk in chunks:
            reply += text_of(chunk)
            print(text_of(chunk), end="", flush=True)
            if len(reply.split()) == 3:
                print(" [stopped by the user]", end="")
                break
    history.append({"role": "assistant", "content": reply})
    report(client)
    return reply


@hogtrace.trace(name="chat-turn-async")
async def async_turn(client: ChatClient, history: list[dict[str, str]], text: str) -> str:
    """The same turn in async code."""
    history.append({"role": "user", "content": text})
    print(f"user: {text}\nassistant: ", end="", flush=True)
    reply = ""
    async for chunk in client.astream(history):
        reply += text_of(chunk)
        print(text_of(chunk), end="", flush=True)
    history.append({"role": "assistant", "content": reply})
    report(client)
    return reply


def main() -> None:
    if os.environ.get("POSTHOG_API_KEY"):
        print("POSTHOG_API_KEY is set: the events also go to PostHog.\n")
    hogtrace.configure(console=True)  # print each finished trace as a tree (on stderr)

    client = ChatClient()
    history = [{"role": "system", "content": "You are brief."}]
    with hogtrace.session("stream-chat-1", distinct_id="user-3"):
        turn(client, history, "How does streaming work?")
        interrupted_turn(client, history, "Tell me a very long story.")
        asyncio.run(async_turn(client, history, "And from async code?"))
    hogtrace.shutdown()  # flush what is queued (when sending to PostHog) and stop


if __name__ == "__main__":
    main()
