"""A local PostHog capture endpoint for tests: records every request the real client sends.

It answers like PostHog (v0 ``/batch/`` and the v1 ``/i/v1/...`` paths), and can be told to
refuse connections, answer errors, delay, hold, or close connections mid-request, so tests can
check that the application never waits for it. The recipe is ``posthog-reference.md`` §8.3.

Every wait in here is bounded, so a test that forgets to release the server still ends.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``fail_next()`` outcome: read the request, then close the connection without answering.
DROP = "drop"


class CaptureServer:
    """A threaded HTTP server on 127.0.0.1 recording PostHog batches.

    Attributes:
        requests: every request answered 200, with ``path``, ``headers`` and ``json``.
        attempts: every request that reached the server, whatever it was answered.
        gate: cleared, requests wait on it (at most ``gate_timeout`` seconds) before answering.
        delay: seconds every request waits before it is answered (bounded by ``close()``).
        up: set while the server answers 200 (``refuse()``, ``fail()`` and ``drop()`` clear it,
            ``recover()`` sets it); a test can make the client's retry backoff wait on it.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.attempts = 0
        self.gate = threading.Event()
        self.gate.set()
        self.gate_timeout = 10.0
        self.delay = 0.0
        self.retry_after: float | None = None
        self.up = threading.Event()
        self.up.set()
        self._status = 200
        self._drop = False
        self._script: collections.deque[int | str] = collections.deque()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self._port}"

    # -- what the server does ---------------------------------------------------------------

    @property
    def status(self) -> int:
        """The HTTP status every request is answered with (200 unless told otherwise)."""
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self._update_up()

    def fail(self, status: int, *, retry_after: float | None = None) -> None:
        """Answer every request with ``status`` (500, 503, 429, ...) until ``recover()``."""
        self.retry_after = retry_after
        self.status = status

    def drop(self) -> None:
        """Close every connection mid-request (after reading it, before answering)."""
        self._drop = True
        self._update_up()

    def fail_next(self, *outcomes: int | str) -> None:
        """Answer the next requests with these statuses (or ``DROP``), then as before."""
        with self._lock:
            self._script.extend(outcomes)

    def refuse(self) -> None:
        """Stop listening and close open connections: new connections are refused."""
        with self._lock:
            server, self._server = self._server, None
        self.up.clear()
        if server is not None:
            server.shutdown()
            server.server_close()
        self._close_connections()

    def recover(self) -> None:
        """Listen again on the same port, answer 200, release held requests."""
        self._status = 200
        self._drop = False
        self.retry_after = None
        with self._lock:
            self._script.clear()
            listening = self._server is not None
        if not listening:
            self._listen(self._port)
        self.gate.set()
        self._update_up()

    def _update_up(self) -> None:
        with self._lock:
            healthy = self._status == 200 and not self._drop and self._server is not None
        if healthy:
            self.up.set()
        else:
            self.up.clear()

    # -- what tests read --------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event received so far, across batches, v0 and v1 alike."""
        with self._lock:
            out: list[dict[str, Any]] = []
            for request in self.requests:
                out.extend(request["json"].get("batch", []))
            return out

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait (at most ``timeout`` seconds) until ``count`` events arrived; return them all."""
        with self._changed:
            self._changed.wait_for(lambda: self._event_count() >= count, timeout)
        return self.events

    def wait_for_attempts(self, count: int, timeout: float = 10.0) -> int:
        """Wait (at most ``timeout`` seconds) until ``count`` requests reached the server."""
        with self._changed:
            self._changed.wait_for(lambda: self.attempts >= count, timeout)
            return self.attempts

    def _event_count(self) -> int:
        return sum(len(r["json"].get("batch", [])) for r in self.requests)

    def close(self) -> None:
        """Stop serving (held and delayed requests are released first)."""
        self._closing.set()
        self.gate.set()
        self.refuse()

    # -- plumbing -----------------------------------------------------------------------------

    def _listen(self, port: int = 0) -> None:
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        # Connections are closed by refuse()/close() instead: joining handler threads would
        # wait on keep-alive connections the posthog client pools across tests.
        server.block_on_close = False
        self._port = server.server_address[1]
        with self._lock:
            self._server = server
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="capture-server", daemon=True
        ).start()

    def _close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _next_outcome(self) -> int | str:
        with self._changed:
            self.attempts += 1
            self._changed.notify_all()
            if self._script:
                return self._script.popleft()
        return DROP if self._drop else self._status

    def _record(self, path: str, headers: dict[str, str], body: Any) -> None:
        with self._changed:
            self.requests.append({"path": path, "headers": headers, "json": body})
            self._changed.notify_all()


def _make_handler(server: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every POST stalls ~40 ms

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            # The connection may have been shut down under us (refuse/close).
            with contextlib.suppress(OSError):
                super().finish()

        def handle(self) -> None:
            # A connection shut down by refuse()/close() or by the client.
            with contextlib.suppress(OSError):
                super().handle()

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding")
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            outcome = server._next_outcome()
            server.gate.wait(server.gate_timeout)
            if server.delay:
                server._closing.wait(server.delay)
            if outcome == DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status = int(outcome)
            if status == 200:
                server._record(self.path, dict(self.headers), json.loads(raw))
            out = b'{"results": {}}' if self.path.startswith("/i/v1/") else b'{"status": 1}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            if status != 200 and server.retry_after is not None:
                self.send_header("Retry-After", str(server.retry_after))
            self.end_headers()
            self.wfile.write(out)

    return Handler


class Clients:
    """Real ``posthog.Posthog`` clients pointed at a capture server; ``close()`` shuts them down.

    ``close()`` brings the server back first, so a client's final drain never waits out an
    outage a test left in place.
    """

    def __init__(self, server: CaptureServer) -> None:
        self.server = server
        self._clients: list[Any] = []

    def __call__(self, **options: Any) -> Any:
        """A new client for ``phc_test`` (``host`` defaults to the capture server)."""
        import posthog

        options.setdefault("host", self.server.url)
        client = posthog.Posthog("phc_test", **options)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Shut every client down (after the server is answering again)."""
        self.server.recover()
        for client in self._clients:
            client.shutdown()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


__all__ = ["DROP", "CaptureServer", "Clients", "closed_port_url"]
