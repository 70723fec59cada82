"""What the service integrations cost: the ASGI middleware per request, Celery's handlers per task.

    .venv/bin/pip install -q -e '.[test]'      # starlette, httpx, celery
    .venv/bin/python benchmarks/services.py    # ~20 s on 2 vCPUs; --quick: a third of it

Everything runs in one process, the bare and the traced way taking turns round by round (so
background load on the machine hits both alike); each figure is the median over the rounds.
Events go to a ``posthog.Posthog(send=False)`` client through hogtrace's background queue; each
timed loop ends with ``hogtrace.flush()``, so the figures include building and handing over
every event (hogtrace's work and the client's), not the network. That delivery work, not the
middleware's own code, is most of the added time: compare it with the e2e cost per event in
``benchmarks/README.md``.

- ASGI: a Starlette JSON endpoint (one route with a path parameter, its handler does no
  tracing), called through ``httpx.ASGITransport`` in-process: bare, and wrapped in
  ``HogtraceMiddleware`` (with a session header, a distinct id function and a continued
  ``traceparent``). Also a raw ASGI app (no framework), which shows the middleware's own cost
  against the smallest possible app.
  A third row opens the same three scopes by hand around the raw app, without the middleware:
  the difference between the second and third rows is the middleware's own code.
- Celery: one task, ``task.apply()`` (runs the ``task_prerun`` / ``task_postrun`` handlers in
  this thread) and ``task.apply_async()`` to the in-memory broker (runs ``before_task_publish``),
  with and without ``hogtrace.celery.instrument()``, sent from inside a trace.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import posthog
from celery import Celery
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import hogtrace
import hogtrace.celery
from hogtrace.asgi import HogtraceMiddleware

# -- ASGI -------------------------------------------------------------------------------------


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"item": request.path_params["item_id"]})


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def raw_app_scopes_by_hand(scope: Any, receive: Any, send: Any) -> None:
    """``raw_app`` inside the scopes the middleware opens, written by hand: the event's cost."""
    async with (
        hogtrace.continue_trace(scope["headers"]),
        hogtrace.session("bench-1"),
        hogtrace.trace(f"GET {scope['path']}", distinct_id="user-1"),
    ):
        await raw_app(scope, receive, send)


def user_of(scope: Any) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-user-id":
            return str(value.decode())
    return None


async def per_request(app: Any, n: int, headers: dict[str, str]) -> float:
    """Seconds per request: ``n`` requests through ``httpx.ASGITransport``, then a flush."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        start = time.perf_counter()
        for i in range(n):
            await client.get(f"/items/{i}", headers=headers)
        hogtrace.flush()  # the events' delivery work is part of the cost
        return (time.perf_counter() - start) / n


def compare(
    label: str, bare: Callable[[], float], traced: Callable[[], float], rounds: int
) -> dict[str, Any]:
    """Alternate the two ways for ``rounds`` rounds; medians, added µs and the ratio."""
    b: list[float] = []
    t: list[float] = []
    for _ in range(rounds):
        b.append(bare())
        t.append(traced())
    mb, mt = statistics.median(b), statistics.median(t)
    row = {"what": label, "bare_us": mb * 1e6, "traced_us": mt * 1e6}
    row["added_us"] = row["traced_us"] - row["bare_us"]
    row["ratio"] = mt / mb
    return row


def bench_asgi(rounds: int, n: int) -> list[dict[str, Any]]:
    starlette_app = Starlette(routes=[Route("/items/{item_id}", item)])
    options: dict[str, Any] = {"distinct_id": user_of}
    with hogtrace.trace("caller"):
        headers = hogtrace.inject({"x-session-id": "bench-1", "x-user-id": "user-1"})
    rows = []
    ways = [
        ("ASGI, Starlette endpoint", starlette_app, HogtraceMiddleware(starlette_app, **options)),
        ("ASGI, raw app", raw_app, HogtraceMiddleware(raw_app, **options)),
        ("ASGI, raw app, scopes by hand", raw_app, raw_app_scopes_by_hand),
    ]
    for label, app, wrapped in ways:

        def run(target: Any, app: Any = app) -> float:
            return asyncio.run(per_request(target, n, headers))

        run(app)  # warm up both
        run(wrapped)
        rows.append(compare(label, lambda app=app: run(app), lambda w=wrapped: run(w), rounds))
    return rows


# -- Celery -----------------------------------------------------------------------------------


def bench_celery(rounds: int, n: int) -> list[dict[str, Any]]:
    app = Celery("bench", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    def loop(call: Callable[[int], Any], instrumented: bool) -> float:
        if instrumented:
            hogtrace.celery.instrument(app)
        else:
            hogtrace.celery.uninstrument()
        with hogtrace.trace("sender"):
            start = time.perf_counter()
            for i in range(n):
                call(i)
            hogtrace.flush()
            elapsed = (time.perf_counter() - start) / n
        hogtrace.celery.uninstrument()
        return elapsed

    def run_task(i: int) -> Any:
        return add.apply(args=(i, 1))

    def publish(i: int) -> Any:
        return add.apply_async(args=(i, 1))

    rows = []
    for label, call in [
        ("Celery, task run (prerun/postrun)", run_task),
        ("Celery, publish", publish),
    ]:
        loop(call, False)
        loop(call, True)
        rows.append(
            compare(label, lambda c=call: loop(c, False), lambda c=call: loop(c, True), rounds)
        )
    with app.connection_for_write() as conn:  # empty the in-memory queue the publishes filled
        conn.default_channel.queue_purge("celery")
    return rows


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    client = posthog.Posthog("phc_bench", host="http://127.0.0.1:9", send=False)
    hogtrace.configure(client)
    try:
        rows = bench_asgi(rounds, 300) + bench_celery(rounds, 300)
    finally:
        hogtrace.shutdown()
        client.shutdown()
    print(f"{'':38} {'bare µs':>9} {'traced µs':>10} {'added µs':>9} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['what']:38} {row['bare_us']:9.1f} {row['traced_us']:10.1f} "
            f"{row['added_us']:9.1f} {row['ratio']:6.2f}"
        )
    stats = hogtrace.stats()
    print(f"\nevents: {stats}")


if __name__ == "__main__":
    main()
