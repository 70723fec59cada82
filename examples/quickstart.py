"""hogtrace quickstart: trace a small RAG + tool-calling workflow and print its events.

Runs offline: with no PostHog account the traces are printed as trees on the console. Set
POSTHOG_API_KEY (and POSTHOG_HOST) to send the same events to your PostHog project.

    python examples/quickstart.py
"""

from __future__ import annotations

import json
import os
from typing import Any

import hogtrace
from hogtrace.testing import capture_events

DOCS = {
    "pricing": "PostHog LLM analytics is free for the first 100k events each month.",
    "sessions": "Sessions group traces by $ai_session_id.",
}


@hogtrace.span
def retrieve(query: str, k: int = 2) -> list[str]:
    """Pretend vector search."""
    return [text for key, text in DOCS.items() if key in query.lower()][:k] or list(DOCS.values())


@hogtrace.span(name="tool:word_count")
def word_count(text: str) -> int:
    """A tool the model can call."""
    return len(text.split())


@hogtrace.generation(provider="openai")
def chat(
    messages: list[dict[str, Any]], model: str = "gpt-4o-mini", temperature: float = 0.2
) -> dict[str, Any]:
    """A fake model that answers with an OpenAI chat-completion-shaped response."""
    question = messages[-1]["content"]
    answer = f"Based on {len(messages) - 1} context message(s): {question.rstrip('?')}."
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
        "usage": {"prompt_tokens": 12 * len(messages), "completion_tokens": len(answer.split())},
    }


@hogtrace.trace
def answer(question: str) -> str:
    """One turn: retrieve, generate, call a tool."""
    context = retrieve(question)
    messages = [{"role": "system", "content": c} for c in context]
    messages.append({"role": "user", "content": question})
    response = chat(messages)
    text: str = response["choices"][0]["message"]["content"]
    with hogtrace.span("postprocess") as step:
        step.set_output({"words": word_count(text)})
    return text


@hogtrace.session(id=lambda conversation_id, questions: conversation_id, distinct_id="user-42")
def conversation(conversation_id: str, questions: list[str]) -> list[str]:
    """Every turn of one conversation shares one $ai_session_id."""
    return [answer(q) for q in questions]


def main() -> None:
    if os.environ.get("POSTHOG_API_KEY"):
        hogtrace.configure(
            api_key=os.environ["POSTHOG_API_KEY"], host=os.environ.get("POSTHOG_HOST")
        )
        print("Sending events to PostHog and printing them here.\n")
    hogtrace.configure(console=True)

    print("Trace trees (what PostHog's AI Observability shows):\n")
    conversation("conv-1", ["What does pricing look like?", "How do sessions work?"])
    hogtrace.flush()

    print("\nThe events of one more turn of the conversation, as PostHog receives them:\n")
    with capture_events() as events:
        conversation("conv-1", ["How do sessions work?"])
    for event in events:
        print(
            json.dumps(
                {
                    "event": event.event,
                    "distinct_id": event.distinct_id,
                    "properties": event.properties,
                },
                indent=2,
            )
        )
    print(f"\nstats: {hogtrace.stats()}")
    hogtrace.shutdown()


if __name__ == "__main__":
    main()
