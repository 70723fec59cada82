"""hogtrace across processes: a client calls an HTTP service, and both halves form ONE trace.

The client opens a session and a trace, and sends its request with ``hogtrace.inject()``
headers (W3C ``traceparent`` and ``baggage``). The service, a separate process running stdlib
``http.server``, wraps its handler in ``hogtrace.continue_trace(self.headers)``: its spans are
children of the client's HTTP span, in the client's trace and session.

In production each process sends its own events to PostHog, which joins them by
``$ai_trace_id`` / ``$ai_parent_id``. To run offline, both processes here use a PostHog client
with ``send=False`` and a ``before_send`` that keeps a copy of each event; the service returns
its events in the response and the client prints the merged events as one tree. Set
POSTHOG_API_KEY (and POSTHOG_HOST) to also send everything to your PostHog project.

    python examples/distributed.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import posthog

import hogtrace
from hogtrace.testing import CapturedEvent, CapturedEvents


def posthog_client(kept: list[dict[str, Any]]) -> posthog.Posthog:
    """A PostHog client that keeps a copy of every event (and sends only with an API key)."""
    api_key = os.environ.get("POSTHOG_API_KEY")

    def keep(msg: dict[str, Any]) -> dict[str, Any]:
        kept.append(msg)
        return msg

    return posthog.Posthog(
        api_key or "phc_offline_demo",
        host=os.environ.get("POSTHOG_HOST") or "https://us.i.posthog.com",
        send=bool(api_key),
        before_send=keep,
    )


# -- the service ---------------------------------------------------------------------------------

KNOWLEDGE = {
    "sessions": "Sessions group traces by $ai_session_id.",
    "traces": "A trace is a tree of spans, generations and embeddings.",
}


@hogtrace.span
def lookup(question: str) -> list[str]:
    """Pretend retrieval."""
    return [text for key, text in KNOWLEDGE.items() if key in question.lower()]


@hogtrace.generation(provider="openai")
def chat(messages: list[dict[str, str]], model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A fake model returning an OpenAI chat-completion-shaped response."""
    context = " ".join(m["content"] for m in messages if m["role"] == "system")
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"In short: {context}"},
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43},
    }


@hogtrace.span(name="service:answer")
def answer(question: str) -> str:
    """The service's work: retrieve, then ask the model."""
    docs = lookup(question)
    reply = chat(
        [{"role": "system", "content": " ".join(docs)}, {"role": "user", "content": question}]
    )
    return str(reply["choices"][0]["message"]["content"])


def serve() -> None:
    """Run the service on a free port; print the port on the first line of stdout."""
    kept: list[dict[str, Any]] = []
    client = posthog_client(kept)
    hogtrace.configure(client)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:  # one request at a time, so the events returned are this request's
                # The caller's trace, span, session and distinct id come from the headers.
                with hogtrace.continue_trace(self.headers):
                    text = answer(body["question"])
                hogtrace.flush()  # the events reach the client (and `kept`) now
                events, kept[:] = list(kept), []
            out = json.dumps({"answer": text, "events": events}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        client.shutdown()


# -- the client ----------------------------------------------------------------------------------


@hogtrace.span(name="http:POST /answer")
def ask_service(url: str, question: str) -> dict[str, Any]:
    """Call the service with the current trace in the request headers."""
    headers = hogtrace.inject({"Content-Type": "application/json"})
    request = urllib.request.Request(
        url, data=json.dumps({"question": question}).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        reply: dict[str, Any] = json.loads(response.read())
    return reply


@hogtrace.span
def rewrite(question: str) -> str:
    """A local step before the remote call."""
    return question.strip().rstrip("?") + "?"


def main() -> None:
    """Start the service in a child process, run the client, print the single tree."""
    service = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert service.stdout is not None
        port = int(service.stdout.readline())
        kept: list[dict[str, Any]] = []
        client = posthog_client(kept)
        hogtrace.configure(client)

        with hogtrace.session("conv-42", distinct_id="user-1"), hogtrace.trace("ask") as trace:
            question = rewrite("  How do sessions and traces work  ")
            reply = ask_service(f"http://127.0.0.1:{port}/answer", question)
            trace.set_output(reply["answer"])
        hogtrace.flush()
        client.shutdown()
    finally:
        service.terminate()
        service.wait(timeout=10)

    events = CapturedEvents(CapturedEvent.model_validate(msg) for msg in [*kept, *reply["events"]])
    print(f"answer: {reply['answer']}")
    print(f"{len(kept)} events from the client, {len(reply['events'])} from the service:")
    print(events.tree())


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        main()
