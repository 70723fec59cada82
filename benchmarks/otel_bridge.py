"""What ``hogtrace.otel.SpanProcessor`` adds to OpenTelemetry GenAI tracing.

    .venv/bin/python benchmarks/otel_bridge.py            # ~10 s
    .venv/bin/python benchmarks/otel_bridge.py --calls 500 --reps 3

One "call" is what an instrumented agent step produces: an ``invoke_agent`` span around a
``chat`` span (the attributes OpenTelemetry's openai instrumentation sets, with 6 messages of
~300 characters in and one out, as JSON strings) and an ``execute_tool`` span. Both ways run
the same spans through a private ``TracerProvider`` with a ``SimpleSpanProcessor`` and an
in-memory exporter:

- ``otel``: OpenTelemetry only;
- ``otel+hogtrace``: the same provider with hogtrace's processor added, each call inside a
  ``hogtrace.trace`` (so one ``$ai_trace``, two ``$ai_span`` and one ``$ai_generation`` per call),
  events recorded by ``hogtrace.testing.capture_events()`` (built on the calling thread, no
  network).

Prints the median wall time per call over the repetitions, and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hogtrace
import hogtrace.otel
from hogtrace.testing import capture_events

TEXT = "PostHog is an open-source product analytics platform. " * 5
INPUT = json.dumps(
    [{"role": "user", "parts": [{"type": "text", "content": f"{i}: {TEXT}"}]} for i in range(6)]
)
OUTPUT = json.dumps(
    [{"role": "assistant", "parts": [{"type": "text", "content": TEXT}], "finish_reason": "stop"}]
)


def make_call(provider: TracerProvider) -> Callable[[], None]:
    tracer = provider.get_tracer("bench")

    def call() -> None:
        with tracer.start_as_current_span(
            "invoke_agent bot", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.provider.name": "openai",
                },
            ) as chat:
                chat.set_attributes(
                    {
                        "gen_ai.request.temperature": 0.2,
                        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                        "gen_ai.response.finish_reasons": ("stop",),
                        "gen_ai.usage.input_tokens": 120,
                        "gen_ai.usage.output_tokens": 60,
                        "gen_ai.input.messages": INPUT,
                        "gen_ai.output.messages": OUTPUT,
                    }
                )
            with tracer.start_as_current_span(
                "execute_tool search",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.call.arguments": '{"q": "posthog"}',
                },
            ) as tool:
                tool.set_attribute("gen_ai.tool.call.result", '["doc-1", "doc-2"]')

    return call


def provider_with(bridge: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    if bridge:
        provider.add_span_processor(hogtrace.otel.SpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def run(calls: int, reps: int) -> dict[str, float]:
    results: dict[str, list[float]] = {"otel": [], "otel+hogtrace": []}
    plain, plain_exporter = provider_with(bridge=False)
    bridged, bridged_exporter = provider_with(bridge=True)
    plain_call, bridged_call = make_call(plain), make_call(bridged)
    traced = hogtrace.trace("turn")
    with capture_events() as events:
        for call in (plain_call, bridged_call):  # warm up
            with traced:
                call()
        events.clear()
        for _ in range(reps):  # the ways take turns, so machine noise hits both alike
            gc.collect()
            start = time.perf_counter()
            for _ in range(calls):
                plain_call()
            results["otel"].append((time.perf_counter() - start) / calls)
            plain_exporter.clear()

            gc.collect()
            start = time.perf_counter()
            for _ in range(calls):
                with traced:
                    bridged_call()
            results["otel+hogtrace"].append((time.perf_counter() - start) / calls)
            bridged_exporter.clear()
            made = len(events)
            events.clear()
            assert made == 4 * calls, f"expected {4 * calls} events, got {made}"
    return {way: statistics.median(times) * 1e6 for way, times in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median reported)")
    args = parser.parse_args()
    medians = run(args.calls, args.reps)
    print(f"{args.calls} calls x {args.reps} repetitions; 3 OTel spans per call")
    for way, micros in medians.items():
        print(f"  {way:<14} {micros:8.1f} µs per call")
    ratio = medians["otel+hogtrace"] / medians["otel"]
    print(f"  ratio          {ratio:8.2f}x  (otel+hogtrace / otel)")


if __name__ == "__main__":
    main()
