"""hogtrace with Celery: a conversation's session survives the queue.

A web request (a trace in session ``conv-1``) enqueues two Celery tasks. The worker runs each as
a child of the span that sent it, in the same trace and session, with the same user: PostHog
shows one tree per request, the worker's work included. A flaky task is retried (each attempt
is a span, the failed one carries its error), and a nightly job sent from outside any scope is
a trace of its own.

One line does it: ``hogtrace.celery.instrument()``, imported by the sender and the worker.

The example runs offline with one command: an in-memory broker and result backend, and a
worker thread in this process. It prints the trees PostHog would draw.

    pip install 'hogtrace[celery]'
    python examples/celery_app.py
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker

import hogtrace
import hogtrace.celery
from hogtrace.testing import capture_events

app = Celery("example", broker="memory://", backend="cache+memory://")
app.conf.broker_transport_options = {"polling_interval": 0.01}
app.conf.broker_connection_retry_on_startup = True

hogtrace.celery.instrument(app)  # the one line: sender and worker both run it


# --- tasks: unchanged Celery tasks, with hogtrace scopes inside as anywhere else ----------------


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def summarize_llm(messages: list[dict[str, str]]) -> dict[str, Any]:
    """A fake model call with an OpenAI-shaped response."""
    text = messages[-1]["content"]
    return {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text[:24]}}],
        "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 4},
    }


@app.task(name="summarize_conversation")
def summarize_conversation(conversation_id: str, text: str) -> str:
    reply = summarize_llm([{"role": "user", "content": f"Summarize: {text}"}])
    return str(reply["choices"][0]["message"]["content"])


@app.task(name="index_document", bind=True, max_retries=2, default_retry_delay=0)
def index_document(self: Any, doc_id: str) -> int:
    try:
        with hogtrace.span("embed"):
            if self.request.retries == 0:  # the vector store times out once
                raise TimeoutError("vector store timed out")
    except TimeoutError as exc:
        raise self.retry(exc=exc, countdown=0) from exc
    return 1


@app.task(name="nightly_cleanup")
def nightly_cleanup() -> int:
    with hogtrace.span("delete-expired"):
        return 3


# --- the web side: a request handler that enqueues work ---------------------------------------


@hogtrace.session(id=lambda conversation_id, text: conversation_id, distinct_id="user-42")
@hogtrace.trace(name="POST /conversations/{id}/close")
def close_conversation(conversation_id: str, text: str) -> list[Any]:
    with hogtrace.span("enqueue"):
        return [
            summarize_conversation.delay(conversation_id, text),
            index_document.delay(f"{conversation_id}-transcript"),
        ]


def main() -> None:
    # Leaving the block stops the worker first: every task's event has been emitted by then.
    with capture_events() as events, start_worker(app, pool="solo", perform_ping_check=False):
        results = close_conversation("conv-1", "The user asked how sessions group traces.")
        results.append(nightly_cleanup.delay())  # outside any scope: its own trace
        for result in results:
            print(f"{result.id[:8]} -> {result.get(timeout=30)!r}")
    print()
    print(events.tree())
    worker_events = [e for e in events if e.session_id == "conv-1"]
    print(f"\n{len(worker_events)} events carry session conv-1 and user {events[0].distinct_id}")


if __name__ == "__main__":
    main()
