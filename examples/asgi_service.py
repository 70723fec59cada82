"""hogtrace in an ASGI service (FastAPI): one middleware, one trace per request.

``HogtraceMiddleware`` makes every HTTP request a trace named after its route, in the session
given by the ``x-session-id`` header, for the user a function of the request names. A caller
that sends ``hogtrace.inject()``'s headers gets the request as a child of its own span: one tree
across both services. The trace stays open through a streaming response and the response's
background task, which are its children.

The example starts uvicorn on 127.0.0.1 (a free port) in a thread, calls itself with httpx,
stops, and prints the trees PostHog would draw. It runs offline.

    pip install 'hogtrace[asgi]' fastapi uvicorn httpx
    python examples/asgi_service.py
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse

import hogtrace
from hogtrace.asgi import HogtraceMiddleware, httpx_hook
from hogtrace.testing import capture_events

# --- the service ----------------------------------------------------------------------------


@hogtrace.span
def load_history(chat_id: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"(earlier messages of {chat_id})"}]


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def llm(messages: list[dict[str, str]]) -> dict[str, Any]:
    """A fake model call with an OpenAI-shaped response."""
    return {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sure: ..."}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
async def llm_stream(prompt: str) -> AsyncIterator[str]:
    for token in ["Traces ", "nest ", "by ", "parent ", "id."]:
        yield token


@hogtrace.span
def save_turn(chat_id: str, reply: str) -> None:
    """Runs as a background task, after the response: still inside the request's trace."""


def user_of(scope: dict[str, Any]) -> str | None:
    """The distinct id: here a header; in a real service, your authenticated user."""
    return dict(scope["headers"]).get(b"x-user-id", b"").decode() or None


api = FastAPI()


@api.post("/chat/{chat_id}")
async def chat(chat_id: str, request: Request, background: BackgroundTasks) -> dict[str, str]:
    body = await request.json()
    messages = [*load_history(chat_id), {"role": "user", "content": body["message"]}]
    reply = llm(messages)["choices"][0]["message"]["content"]
    background.add_task(save_turn, chat_id, reply)
    return {"reply": reply}


@api.get("/chat/{chat_id}/stream")
async def stream(chat_id: str) -> StreamingResponse:
    return StreamingResponse(llm_stream(f"explain traces to {chat_id}"), media_type="text/plain")


app = HogtraceMiddleware(api, session_id="x-session-id", distinct_id=user_of)


# --- the demo: serve, call ourselves, stop ------------------------------------------------------


@hogtrace.trace(name="frontend: send message")
def frontend(client: httpx.Client, url: str, chat_id: str, message: str) -> str:
    """A caller in another service: its httpx hook sends the trace along."""
    with hogtrace.span("render"):
        pass
    response = client.post(f"{url}/chat/{chat_id}", json={"message": message})
    return str(response.json()["reply"])


def serve() -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    with capture_events() as events:
        server, thread, url = serve()
        print(f"serving on {url}")
        headers = {"x-session-id": "chat-7", "x-user-id": "user-1"}
        try:
            with httpx.Client(event_hooks={"request": [httpx_hook]}) as client:
                r = client.post(f"{url}/chat/chat-7", json={"message": "hi"}, headers=headers)
                print(f"POST /chat/chat-7 -> {r.status_code} {r.json()}")
                with client.stream("GET", f"{url}/chat/chat-7/stream", headers=headers) as r:
                    print(f"GET /chat/chat-7/stream -> {r.status_code} {r.read().decode()!r}")
                with hogtrace.session("chat-8", distinct_id="user-2"):
                    print(f"frontend -> {frontend(client, url, 'chat-8', 'hello')!r}")
        finally:
            server.should_exit = True  # uvicorn finishes the requests in flight, then stops
            thread.join()
    print()
    print(events.tree())
    print()
    for root in events.traces:
        props = root.properties
        print(f"{root.name}: user {root.distinct_id}, status {props.get('http_status', '-')}")


if __name__ == "__main__":
    main()
