"""Instructions per delivered event, hogtrace against raw ``capture()``: a measure without noise.

    .venv/bin/python benchmarks/instructions.py                # W1-W5, ~8 min on 2 vCPUs
    .venv/bin/python benchmarks/instructions.py --workloads W4

`overhead.py`'s CPU ratios move by ±0.05-0.2x from run to run on a shared VM (the raw
baseline's own CPU per event moves as much). This counts instead the instructions the client
process executes (all its threads, user space) under valgrind's cachegrind, which are the
same from run to run to a fraction of a percent. It runs `overhead.py`'s ``hogtrace`` and
``capture`` ways (the same functions, client and local capture server) in child processes:
each workload twice, with N and 2N units after the same warm-up, so that start-up, imports
and warm-up cancel in the difference.

What it does not see is what the CPU ratio adds to it: cache misses and memory traffic (data
made on one thread and read on another, objects the garbage collector walks), and time in
the kernel. The gap between the two ratios is that part. Needs ``valgrind`` on the PATH;
events are delivered to the local capture server as in `overhead.py` (lost events abort).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead

#: Units per workload for the N run (the 2N run doubles them): ~1,000 events each.
UNITS = {"W1": 1000, "W2": 1000, "W3": 100, "W4": 300, "W5": 1000}
WAYS = ("hogtrace", "capture")


def child(url: str, way_name: str, workload: str, units: int) -> None:
    """Warm up, then run ``units`` units and wait until they are delivered; print the counts."""
    way = overhead.make_ways(url, (way_name,))[way_name]
    overhead.run_units(way, workload, 50)
    way.finish()
    before, made = way.delivered(), way.made
    overhead.run_units(way, workload, units)
    way.finish()
    print(json.dumps({"made": way.made - made, "delivered": way.delivered() - before}))


def instructions(url: str, way: str, workload: str, units: int, out: Path) -> tuple[int, int]:
    """Instructions of one child process under cachegrind, and the events it delivered."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        f"--cachegrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        url,
        way,
        workload,
        str(units),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    if counts["made"] != counts["delivered"]:
        raise SystemExit(f"{workload} {way}: {counts['made'] - counts['delivered']} events lost")
    summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
    if summary is None:
        raise SystemExit(f"no instruction count in {out}")
    return int(summary.group(1)), counts["delivered"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(UNITS))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, way, workload, units = args.child
        child(url, way, workload, int(units))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in UNITS:
            parser.error(f"unknown workload {w}")
    proc, url = overhead.start_server()
    print("instructions per delivered event (cachegrind; N and 2N units, difference)")
    print(f"   {'':4} {'hogtrace':>12} {'capture':>12} {'hog/cap':>8}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workload in workloads:
                started = time.perf_counter()
                per_event = {}
                for way in WAYS:
                    n = UNITS[workload]
                    small, events_small = instructions(url, way, workload, n, Path(tmp, "a"))
                    large, events_large = instructions(url, way, workload, 2 * n, Path(tmp, "b"))
                    per_event[way] = (large - small) / (events_large - events_small)
                hog, cap = per_event["hogtrace"], per_event["capture"]
                print(
                    f"   {workload:4} {hog:>12,.0f} {cap:>12,.0f} {hog / cap:>7.3f}x"
                    f"   ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
