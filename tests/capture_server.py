"""A local PostHog capture endpoint for tests: records every request the real client sends.

It answers like PostHog (v0 ``/batch/`` and the v1 ``/i/v1/...`` paths), and can be told to
refuse, fail, delay or hold requests so tests can check that the application never waits for it.
The recipe is ``posthog-reference.md`` §8.3.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CaptureServer:
    """A threaded HTTP server on 127.0.0.1 recording PostHog batches."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.gate = threading.Event()  # cleared: requests wait on it (bounded) before answering
        self.gate.set()
        self.gate_timeout = 10.0
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else every POST stalls ~40 ms

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                server.gate.wait(server.gate_timeout)
                status = server.status
                if status == 200:
                    with server._received:
                        server.requests.append(
                            {
                                "path": self.path,
                                "headers": dict(self.headers),
                                "json": json.loads(raw),
                            }
                        )
                        server._received.notify_all()
                out = b'{"results": {}}' if self.path.startswith("/i/v1/") else b'{"status": 1}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event received so far, across batches, v0 and v1 alike."""
        with self._lock:
            out: list[dict[str, Any]] = []
            for request in self.requests:
                out.extend(request["json"].get("batch", []))
            return out

    def close(self) -> None:
        """Stop serving (held requests are released first)."""
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
