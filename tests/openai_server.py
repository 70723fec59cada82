"""A local OpenAI- and Anthropic-compatible endpoint for tests (stdlib only, 127.0.0.1).

Point the real SDKs at it: ``openai.OpenAI(base_url=server.openai_url, api_key="sk-test")`` and
``anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test")``. It answers

- ``POST /v1/chat/completions``: a ``chat.completion``; with ``"stream": true`` an SSE stream of
  ``chat.completion.chunk`` events, then (with ``stream_options.include_usage``) a usage chunk
  with empty ``choices``, then ``data: [DONE]``;
- ``POST /v1/embeddings``: an ``embedding`` list;
- ``POST /v1/responses``: a ``response`` (Responses API);
- ``POST /v1/messages``: an Anthropic ``message``; with ``"stream": true`` its SSE events
  (``message_start`` … ``message_stop``);

with realistic bodies and fixed token counts (`USAGE`), and records every request body. A request
whose last message contains ``"FAIL"`` gets a 429 error body, as the providers send it.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Token counts every answer reports: (input, output). Embeddings report input tokens only.
USAGE = {
    "chat": (12, 5),
    "responses": (14, 7),
    "embeddings": (6, 0),
    "messages": (21, 9),
}
ANSWER = "PostHog is an open-source product analytics platform."


class OpenAIServer:
    """A threaded HTTP server on 127.0.0.1 answering like OpenAI (and Anthropic's Messages API)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(
                        {"path": path, "headers": dict(self.headers), "json": body}
                    )
                    n = next(server._ids)
                if _fails(body):
                    self._json(429, _error(path))
                elif "CUT" in _last_text(body) and body.get("stream"):
                    # One chunk, then an error event: a stream that fails part-way.
                    first = _chat_chunks(body, n)[0]
                    self._sse([first, {"error": {"message": "overloaded", "type": "server"}}])
                elif path == "/v1/chat/completions":
                    if body.get("stream"):
                        self._sse(_chat_chunks(body, n))
                    else:
                        self._json(200, _chat(body, n))
                elif path == "/v1/embeddings":
                    self._json(200, _embeddings(body))
                elif path == "/v1/responses":
                    if body.get("stream"):
                        self._events(_response_events(body, n))
                    else:
                        self._json(200, _response(body, n))
                elif path == "/v1/messages":
                    if body.get("stream"):
                        self._events(_message_events(body, n))
                    else:
                        self._json(200, _message(body, n))
                else:
                    self._json(404, {"error": {"message": f"no route {path}", "type": "invalid"}})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-request-id", f"req_{status}")
                self.end_headers()
                self.wfile.write(out)

            def _sse(self, chunks: list[dict[str, Any]]) -> None:
                out = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
                out += b"" if "error" in chunks[-1] else b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def _events(self, events: list[dict[str, Any]]) -> None:
                out = b"".join(
                    f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        #: ``base_url`` for the OpenAI SDK (Anthropic's SDK takes `url` and adds ``/v1``).
        self.openai_url = f"{self.url}/v1"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _last_text(body: dict[str, Any]) -> str:
    for key in ("messages", "input"):
        value = body.get(key)
        if isinstance(value, list) and value:
            last = value[-1]
            content = last.get("content") if isinstance(last, dict) else last
            return json.dumps(content) if not isinstance(content, str) else content
        if isinstance(value, str):
            return value
    return ""


def _fails(body: dict[str, Any]) -> bool:
    return "FAIL" in _last_text(body)


def _error(path: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Rate limit exceeded (FAIL)"},
        }
    return {
        "error": {
            "message": "Rate limit reached for requests (FAIL)",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def _chat(body: dict[str, Any], n: int) -> dict[str, Any]:
    prompt, completion = USAGE["chat"]
    return {
        "id": f"chatcmpl-test{n:04d}",
        "object": "chat.completion",
        "created": 1_726_000_000,
        "model": f"{body.get('model', 'gpt-4o-mini')}-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "system_fingerprint": "fp_test",
    }


def _chat_chunks(body: dict[str, Any], n: int) -> list[dict[str, Any]]:
    prompt, completion = USAGE["chat"]
    base = {
        "id": f"chatcmpl-test{n:04d}",
        "object": "chat.completion.chunk",
        "created": 1_726_000_000,
        "model": f"{body.get('model', 'gpt-4o-mini')}-2024-07-18",
        "system_fingerprint": "fp_test",
    }
    words = ANSWER.split(" ")
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": w if i == 0 else f" {w}"} for i, w in enumerate(words)]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    )
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        chunks.append(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
            }
        )
    return chunks


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    prompt, _ = USAGE["embeddings"]
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.0123, -0.0456, 0.0789]}
            for i in range(count)
        ],
        "model": body.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def _response(body: dict[str, Any], n: int) -> dict[str, Any]:
    prompt, completion = USAGE["responses"]
    return {
        "id": f"resp_test{n:04d}",
        "object": "response",
        "created_at": 1_726_000_000,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": f"{body.get('model', 'gpt-4o-mini')}-2024-07-18",
        "output": [
            {
                "type": "message",
                "id": f"msg_test{n:04d}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
        "user": None,
        "metadata": {},
    }


def _response_events(body: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The Responses API's stream events for `_response` (text in one delta)."""
    done = _response(body, n)
    item = done["output"][0]
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    ids = {"output_index": 0, "item_id": item["id"], "content_index": 0}
    part = {"type": "output_text", "text": ANSWER, "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **ids, "part": {**part, "text": ""}},
        {"type": "response.output_text.delta", **ids, "delta": ANSWER, "logprobs": []},
        {"type": "response.output_text.done", **ids, "text": ANSWER, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]
    return [{**event, "sequence_number": i} for i, event in enumerate(events)]


def _message(body: dict[str, Any], n: int) -> dict[str, Any]:
    prompt, completion = USAGE["messages"]
    return {
        "id": f"msg_test{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-3-5-haiku-latest"),
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _message_events(body: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The Anthropic streaming events for `_message`: the text in three deltas."""
    message = _message(body, n)
    completion = USAGE["messages"][1]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    third = len(ANSWER) // 3
    pieces = [ANSWER[:third], ANSWER[third : 2 * third], ANSWER[2 * third :]]
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": completion},
        },
        {"type": "message_stop"},
    ]
