"""hogtrace in a small HTTP service: one session per conversation id taken from the request.

A stdlib ``http.server`` chat endpoint (``POST /chat`` with a JSON body ``{"conversation_id",
"user_id", "message"}``). Each request is one trace; the conversation id from the body becomes
the ``$ai_session_id`` and the user id the ``distinct_id``, so PostHog's Sessions tab shows each
conversation's requests together, whichever server thread handled them.

The example starts the server on 127.0.0.1 (a free port) in a thread, sends a few requests to
itself, prints each request's trace tree, and stops. It runs offline; set POSTHOG_API_KEY (and
POSTHOG_HOST) to also send the events to your PostHog project.

    python examples/http_service.py

The same pattern works in any framework: open the session (decorator with a callable ``id=``,
or ``with hogtrace.session(conversation_id, distinct_id=user_id):``) in the request handler.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hogtrace

HISTORY: dict[str, list[dict[str, str]]] = {}  # conversation id -> messages (a database, here)
HISTORY_LOCK = threading.Lock()


# --- the application --------------------------------------------------------------------------


@hogtrace.span
def load_history(conversation_id: str) -> list[dict[str, str]]:
    """Fetch the conversation so far."""
    with HISTORY_LOCK:
        return list(HISTORY.get(conversation_id, []))


@hogtrace.generation(provider="openai")
def chat(messages: list[dict[str, str]], model: str = "gpt-4o-mini") -> dict[str, Any]:
    """The LLM call; a fake model answering with an OpenAI chat-completion-shaped response."""
    turns = sum(m["role"] == "user" for m in messages)
    answer = f"(turn {turns}) You said: {messages[-1]['content']}"
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
        "usage": {
            "prompt_tokens": sum(len(m["content"].split()) for m in messages),
            "completion_tokens": len(answer.split()),
        },
    }


@hogtrace.trace(name="POST /chat", properties={"service": "chat-api"})
def reply(conversation_id: str, message: str) -> str:
    """One request's work: load the history, ask the model, store the turn."""
    if not message.strip():
        raise ValueError("empty message")
    messages = [*load_history(conversation_id), {"role": "user", "content": message}]
    answer = str(chat(messages)["choices"][0]["message"]["content"])
    with HISTORY_LOCK:
        HISTORY[conversation_id] = [*messages, {"role": "assistant", "content": answer}]
    return answer


@hogtrace.session(
    id=lambda request: request["conversation_id"],
    distinct_id=lambda request: request["user_id"],
)
def handle_chat(request: dict[str, str]) -> dict[str, str]:
    """Every event inside carries the conversation's session id and the user's distinct id."""
    return {"reply": reply(request["conversation_id"], request["message"])}


class Handler(BaseHTTPRequestHandler):
    """``POST /chat``: 200 with the reply, 400 for a bad request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the example's output to the trees

    def do_POST(self) -> None:
        if self.path != "/chat":
            self._send(404, {"error": "not found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            self._send(200, handle_chat(body))
        except ValueError as exc:  # already recorded on the trace: $ai_is_error, $ai_error
            self._send(400, {"error": str(exc)})

    def _send(self, status: int, payload: dict[str, str]) -> None:
        out = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


# --- the demo: start, call ourselves, stop ---------------------------------------------------


def post(url: str, payload: dict[str, str]) -> tuple[int, dict[str, str]]:
    """POST JSON, return (status, JSON body), for error statuses too."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def main() -> None:
    if os.environ.get("POSTHOG_API_KEY"):
        print("POSTHOG_API_KEY is set: the events also go to PostHog.\n")
    hogtrace.configure(console=True)  # print each finished trace as a tree (on stderr)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="http-service", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/chat"
    print(f"serving on {url}\n", flush=True)
    try:
        for conversation_id, user_id, message in [
            ("conv-A", "user-1", "Hi, what can you do?"),
            ("conv-B", "user-2", "How are requests grouped?"),
            ("conv-A", "user-1", "Tell me more."),
            ("conv-B", "user-2", "   "),
        ]:
            payload = {"conversation_id": conversation_id, "user_id": user_id, "message": message}
            status, body = post(url, payload)
            print(f"{conversation_id} {user_id} {message!r} -> {status} {body}\n", flush=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    hogtrace.shutdown()  # flush what is queued (when sending to PostHog) and stop


if __name__ == "__main__":
    main()
