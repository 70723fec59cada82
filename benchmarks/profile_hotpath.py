"""cProfile of hogtrace's two halves: the calling thread, and the delivery worker.

    .venv/bin/python benchmarks/profile_hotpath.py W1        # or W2 ... W5
    .venv/bin/python benchmarks/profile_hotpath.py W4 --top 25

The calling thread is profiled with a sink that only keeps the closed scopes (so the worker
does not run); delivery is then profiled on this thread by handing those scopes to the real
``PostHogSink`` delivery step and a real ``posthog.Posthog`` client (``send=False``: the
client enriches and queues nothing, so its consumer thread stays out of the picture).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import dataclasses
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead


class _Keep:
    """A sink that keeps closed scopes for the delivery half."""

    def __init__(self) -> None:
        self.scopes: list[Any] = []

    def emit(self, scope: Any, config: Any) -> None:
        self.scopes.append(scope)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self) -> None:
        pass


def _table(profile: cProfile.Profile, top: int, sort: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(sort).print_stats(top)
    text = out.getvalue()
    return text[text.index("   ncalls") :] if "   ncalls" in text else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=overhead.WORKLOADS)
    parser.add_argument("--units", type=int, default=0)
    parser.add_argument("--top", type=int, default=18)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()

    import posthog

    import hogtrace
    from hogtrace import _sinks, _state
    from hogtrace._events import build_event
    from hogtrace._sinks import PostHogSink

    client = posthog.Posthog("phc_profile", host="http://127.0.0.1:9", send=False)
    hogtrace.configure(client)
    keep = _Keep()
    _state.set_state(dataclasses.replace(_state.state, sink=keep))
    units = args.units or (2000 if args.workload == "W4" else 20000)
    if args.workload == "W3":
        units //= 10
    ways = _functions(hogtrace)
    overhead.run_units(ways, args.workload, 50)  # warm-up
    keep.scopes.clear()

    caller = cProfile.Profile()
    caller.enable()
    overhead.run_units(ways, args.workload, units)
    caller.disable()
    events = len(keep.scopes)
    profiled = list(keep.scopes)
    print(f"{args.workload}: {events} events")
    plain = _best(lambda: overhead.run_units(ways, args.workload, units), keep, events)
    print(f"\n== calling thread: {plain:.2f} µs per event without the profiler (best of 5) ==")
    print(_table(caller, args.top, args.sort))

    sink = PostHogSink(client)
    config = _state.state.config
    # Delivering releases a scope's content: every run gets its own shallow copies.
    batches = [[copy.copy(scope) for scope in profiled] for _ in range(18)]

    def deliver() -> None:  # as the worker does: what is queued, up to its batch size
        batch = [(scope, config) for scope in batches.pop()]
        for start in range(0, len(batch), _sinks._BATCH):
            sink._deliver_all(batch[start : start + _sinks._BATCH])

    def build() -> None:
        for scope in batches.pop():
            build_event(scope, config)

    from hogtrace import _posthog

    built = [[build_event(scope, config) for scope in batch] for batch in batches[-6:]]
    del batches[-6:]

    def capture() -> None:
        for event in built.pop():
            _posthog.capture(client, sink.ai_lane, *event)

    plain = _best(deliver, None, events)
    building = _best(build, None, events)
    capturing = _best(capture, None, events)
    worker = cProfile.Profile()
    worker.enable()
    deliver()
    worker.disable()
    print(
        f"== delivery (worker thread): {plain:.2f} µs per event without the profiler (best of 5),"
        f" of which hogtrace's build_event {building:.2f} µs and the client's capture() of the"
        f" built event {capturing:.2f} µs =="
    )
    print(_table(worker, args.top, args.sort))


def _best(run: Any, keep: _Keep | None, events: int) -> float:
    """µs per event: the fastest of five runs (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(5):
        if keep is not None:
            keep.scopes.clear()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best / events * 1e6


def _functions(hogtrace: Any) -> Any:
    """The hogtrace way's functions, built like ``overhead.HogtraceWay`` without a server."""
    way = object.__new__(overhead.HogtraceWay)
    overhead.Way.__init__(way)
    overhead.HogtraceWay._build(way)
    return way


if __name__ == "__main__":
    main()
