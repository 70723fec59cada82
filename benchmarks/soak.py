"""Soak test: a million spans with PostHog down, and with PostHog up.

    .venv/bin/python benchmarks/soak.py [--spans N] [--phase all|down|up|paced]

Each phase runs in its own process (clean RSS figures) and prints one JSON line; the parent
prints a summary table.

- ``down``: the capture endpoint is a closed port (connections refused), client defaults
  (``max_retries=3``). Reports RSS before / peak / after, and where events went (queued, dropped
  by hogtrace, still inside the posthog client). The posthog client would spend ~7 s of retries
  per batch of 100 draining its queue on shutdown, so this phase ends with ``os._exit`` after
  measuring.
- ``up``: a local counting capture server (another process, so it does not share our GIL) and
  spans emitted in a tight loop, far faster than the client can send: reports delivered /
  emitted, what was dropped, and the delivery throughput.
- ``paced``: the same, but the loop calls ``hogtrace.flush()`` every 10,000 spans (a batch
  job), so nothing is dropped: delivered should equal emitted.

Spans come as traces of 10 (one ``@trace`` root with 9 child spans), each in its own session.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPANS_PER_TRACE = 10


# -- a counting capture server (its own process) -------------------------------------------------


def serve(port_file: str) -> None:
    """Answer PostHog batches with 200 and count their events; GET /count returns the count."""
    count = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            nonlocal count
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            batch = json.loads(raw).get("batch", [])
            with lock:
                count += len(batch)
            self._answer(b'{"results": {}}' if self.path.startswith("/i/v1/") else b'{"status": 1}')

        def do_GET(self) -> None:
            with lock:
                self._answer(json.dumps({"count": count}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port_file = f"/tmp/hogtrace-soak-{os.getpid()}.port"
    if os.path.exists(port_file):
        os.remove(port_file)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
    port = ""
    for _ in range(200):  # bounded: at most ~10 s
        if os.path.exists(port_file):
            with open(port_file) as f:
                port = f.read()
            if port:
                break
        time.sleep(0.05)
    os.remove(port_file)
    return proc, f"http://127.0.0.1:{port}"


def delivered(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{url}/count", timeout=10) as response:
        return int(json.loads(response.read())["count"])


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- measuring --------------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class LogCounter(logging.Handler):
    """Counts WARNING+ records per logger instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] = self.counts.get(record.name, 0) + 1


def count_logs() -> LogCounter:
    counter = LogCounter()
    for name in ("hogtrace", "posthog"):
        logger = logging.getLogger(name)
        logger.addHandler(counter)
        logger.propagate = False
    return counter


# -- the workload -------------------------------------------------------------------------------


def run_spans(total: int, flush_every: int | None = None) -> float:
    """Emit ``total`` spans (traces of 10, one session each); return seconds spent."""
    import hogtrace

    @hogtrace.trace
    def handle(request_id: int) -> int:
        for step in range(SPANS_PER_TRACE - 1):
            with hogtrace.span("step") as span:
                span.set_output(step)
        return request_id

    started = time.perf_counter()
    for i in range(total // SPANS_PER_TRACE):
        with hogtrace.session(f"session-{i}"):
            handle(i)
        if flush_every and (i + 1) * SPANS_PER_TRACE % flush_every == 0:
            hogtrace.flush()
    return time.perf_counter() - started


def phase_down(spans: int) -> dict[str, Any]:
    import posthog

    import hogtrace
    from hogtrace import _state
    from hogtrace._stats import stats_counters

    logs = count_logs()
    client = posthog.Posthog("phc_soak", host=closed_port_url())
    hogtrace.configure(client)
    run_spans(1000)  # warm-up: imports, the worker, the client's threads
    stats_counters.reset()
    rss_before = rss_mb()
    peak = [rss_before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = run_spans(spans)
    stop.set()
    sampler.join()
    rss_after = rss_mb()
    stats = hogtrace.stats()
    sink = _state.state.sink
    queued_here = sink._queue.qsize() if sink is not None else 0  # type: ignore[attr-defined]
    queued_client = client.queue.qsize()  # the public attribute (the analytics lane's queue)
    return {
        "phase": "down",
        "spans": spans,
        "seconds": round(seconds, 1),
        "us_per_span": round(seconds / spans * 1e6, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(max(peak[0], rss_after), 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb": round(rss_after - rss_before, 1),
        **stats,
        "queued_in_hogtrace": queued_here,
        "queued_in_posthog_client": queued_client,
        "handed_to_client": stats["emitted"] - stats["dropped"] - stats["failed"] - queued_here,
        "warnings_logged": logs.counts,
    }


def phase_up(spans: int, *, paced: bool) -> dict[str, Any]:
    import posthog

    import hogtrace

    logs = count_logs()
    server, url = start_server()
    try:
        client = posthog.Posthog("phc_soak", host=url)
        hogtrace.configure(client)
        run_spans(1000)
        hogtrace.flush()
        hogtrace.reset()
        warm = delivered(url)
        hogtrace.configure(client)
        rss_before = rss_mb()
        started = time.perf_counter()
        seconds = run_spans(spans, flush_every=10_000 if paced else None)
        hogtrace.flush()
        total_seconds = time.perf_counter() - started
        stats = hogtrace.stats()
        arrived = delivered(url) - warm
        result = {
            "phase": "paced" if paced else "up",
            "spans": spans,
            "loop_seconds": round(seconds, 1),
            "us_per_span_in_loop": round(seconds / spans * 1e6, 1),
            "seconds_until_delivered": round(total_seconds, 1),
            "delivered_per_second": round(arrived / total_seconds),
            **stats,
            "delivered": arrived,
            "delivered_over_emitted": round(arrived / max(1, stats["emitted"]), 4),
            "rss_before_mb": round(rss_before, 1),
            "rss_after_mb": round(rss_mb(), 1),
            "rss_peak_mb": round(peak_rss_mb(), 1),
            "warnings_logged": logs.counts,
        }
        hogtrace.shutdown()
        client.shutdown()
        return result
    finally:
        server.kill()
        server.wait()


# -- driver -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=["all", "down", "up", "paced"], default="all")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.phase == "down":
        print(json.dumps(phase_down(args.spans)), flush=True)
        os._exit(0)  # skip the posthog client's retry-paced drain of its full queue
    if args.phase in ("up", "paced"):
        print(json.dumps(phase_up(args.spans, paced=args.phase == "paced")), flush=True)
        return
    for phase in ("down", "up", "paced"):
        out = subprocess.run(
            [sys.executable, __file__, "--phase", phase, "--spans", str(args.spans)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"\n## {phase}")
        for key, value in result.items():
            print(f"  {key:28} {value}")


if __name__ == "__main__":
    main()
