"""hogtrace RAG pipeline: retrieve → rerank → generate, one trace per question.

Runs offline with nothing but hogtrace installed: a toy embedding model, an in-memory vector
index and a fake LLM stand in for the real services, and return the same shapes as OpenAI
(embeddings and chat completions), so hogtrace reads model, tokens and output from them exactly
as it would from the real SDK. Each finished trace is printed as a tree; set POSTHOG_API_KEY (and
POSTHOG_HOST) to also send the events to your PostHog project.

    python examples/rag_pipeline.py

What each step becomes in PostHog:

- ``answer`` (``@hogtrace.trace``) is the trace: ``$ai_trace``, named ``answer``, with the
  question as input and the answer as output.
- ``embed`` (``@hogtrace.embedding``) is a ``$ai_embedding`` with its token count (vectors are
  never sent).
- ``retrieve`` and ``rerank`` (``@hogtrace.span``) are ``$ai_span`` children with their inputs
  and outputs; ``embed`` is a child of ``retrieve`` because ``retrieve`` calls it.
- ``generate`` (``@hogtrace.generation``) is a ``$ai_generation`` with the prompt messages, the
  answer, the model, the token counts and the temperature.
- ``hogtrace.metric`` attaches a ``$ai_metric`` (here: how well the context matched) to the trace.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import hogtrace

CORPUS = [
    "Sessions group traces: every event of a conversation carries the same $ai_session_id.",
    "A trace is a tree: each event points at its parent with $ai_parent_id.",
    "Generations carry the model, the messages, the output and the token counts.",
    "PostHog computes the cost of a generation from its model and token counts.",
    "The console tree shows each trace as soon as its outermost scope ends.",
    "Privacy mode sends inputs and outputs as null but keeps token counts and latency.",
]
DIMENSIONS = 64


def tokens(text: str) -> list[str]:
    """A stand-in tokenizer: lowercase words."""
    return re.findall(r"[a-z$_]+", text.lower())


def vector(text: str) -> list[float]:
    """A toy embedding: hashed bag of words, normalised."""
    v = [0.0] * DIMENSIONS
    for word in tokens(text):
        v[sum(map(ord, word)) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


# --- the traced pipeline ----------------------------------------------------------------------


@hogtrace.embedding(provider="openai")
def embed(input: list[str], model: str = "text-embedding-3-small") -> dict[str, Any]:
    """One embedding call; returns an OpenAI-shaped embeddings response."""
    return {
        "object": "list",
        "model": model,
        "data": [
            {"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(input)
        ],
        "usage": {"prompt_tokens": sum(len(tokens(t)) for t in input), "total_tokens": 0},
    }


INDEX = [(text, vector(text)) for text in CORPUS]  # built offline, not traced


@hogtrace.span
def retrieve(question: str, k: int = 4) -> list[str]:
    """Vector search: the k passages closest to the question."""
    query = embed([question])["data"][0]["embedding"]
    scored = sorted(
        INDEX, key=lambda item: -sum(a * b for a, b in zip(query, item[1], strict=True))
    )
    return [text for text, _ in scored[:k]]


@hogtrace.span
def rerank(question: str, passages: list[str], top_n: int = 2) -> list[dict[str, Any]]:
    """Keep the passages sharing the most words with the question, with their scores."""
    words = set(tokens(question))
    scored = [{"text": p, "score": len(words & set(tokens(p))) / len(words)} for p in passages]
    return sorted(scored, key=lambda item: -item["score"])[:top_n]


@hogtrace.generation(provider="openai")
def generate(
    messages: list[dict[str, str]], model: str = "gpt-4o-mini", temperature: float = 0.1
) -> dict[str, Any]:
    """The LLM call; a fake model answering with an OpenAI chat-completion-shaped response."""
    context = messages[0]["content"].splitlines()
    answer = f"{context[0]} (from {len(context)} passages)"
    prompt_tokens = sum(len(tokens(m["content"])) for m in messages)
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer},
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens(answer))},
    }


@hogtrace.trace
def answer(question: str) -> str:
    """Retrieve, rerank, generate."""
    passages = rerank(question, retrieve(question))
    hogtrace.metric("context_match", round(passages[0]["score"], 2))
    messages = [
        {"role": "system", "content": "\n".join(p["text"] for p in passages)},
        {"role": "user", "content": question},
    ]
    response = generate(messages)
    return str(response["choices"][0]["message"]["content"])


def main() -> None:
    if os.environ.get("POSTHOG_API_KEY"):
        print("POSTHOG_API_KEY is set: the events also go to PostHog.\n")
    hogtrace.configure(console=True)  # print each finished trace as a tree (on stderr)

    # One session per user conversation: PostHog's Sessions tab groups both traces.
    with hogtrace.session("docs-chat-7", distinct_id="user-7") as session:
        for question in ["How are traces grouped into sessions?", "What does a generation carry?"]:
            print(f"Q: {question}\nA: {answer(question)}\n", flush=True)

    totals = session.metrics
    assert totals is not None  # set when the session exits
    print(
        f"session {session.id}: {totals.generations} model calls,"
        f" {totals.input_tokens} input / {totals.output_tokens} output tokens"
    )
    hogtrace.shutdown()  # flush what is queued (when sending to PostHog) and stop


if __name__ == "__main__":
    main()
