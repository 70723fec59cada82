"""hogtrace + OpenTelemetry: GenAI spans from an instrumentation join your hogtrace traces.

Your own functions are traced with hogtrace; the OpenAI calls inside them are traced by
OpenTelemetry's official instrumentation (``opentelemetry-instrumentation-openai-v2``), and an
agent framework's OpenTelemetry spans (here written by hand) mark the agent and its tool.
One line, ``provider.add_span_processor(hogtrace.otel.SpanProcessor())``, turns those GenAI spans
into hogtrace generations and spans, nested in the trace that was running when they started.

Runs offline: the OpenAI SDK talks to a fake model through an httpx transport (no server, no
key). Needs ``pip install hogtrace[otel] opentelemetry-instrumentation-openai-v2``. Prints each
finished trace as a tree. Set POSTHOG_API_KEY (and POSTHOG_HOST) to send the events to PostHog.

    python examples/otel_bridge.py
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

import hogtrace
import hogtrace.otel

# OpenTelemetry's instrumentation records prompts and replies only when asked to.
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")


def fake_model(request: httpx.Request) -> httpx.Response:
    """An OpenAI-compatible chat endpoint: asks for the weather tool once, then answers."""
    body = json.loads(request.content)
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        message: dict[str, Any] = {"role": "assistant", "content": "It is 18°C in Paris."}
        finish, usage = "stop", (61, 9)
    else:
        call = {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
        }
        finish, usage = "tool_calls", (48, 15)
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_726_000_000,
            "model": f"{body['model']}-2024-07-18",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        },
    )


# -- setup: a TracerProvider of your own (or the one your app already has) ------------------------
provider = TracerProvider()
provider.add_span_processor(hogtrace.otel.SpanProcessor())
OpenAIInstrumentor().instrument(tracer_provider=provider)
tracer = provider.get_tracer("my-agent-framework")

client = openai.OpenAI(
    api_key="sk-fake",
    base_url="https://api.openai.example/v1",
    http_client=httpx.Client(transport=httpx.MockTransport(fake_model)),
)
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


def get_weather(city: str) -> dict[str, Any]:
    # What an agent framework's instrumentation does around a tool call.
    with tracer.start_as_current_span(
        "execute_tool get_weather",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.arguments": json.dumps({"city": city}),
        },
    ) as span:
        result = {"city": city, "celsius": 18}
        span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
        return result


def lookup_stock(symbol: str) -> None:
    with tracer.start_as_current_span(
        "execute_tool lookup_stock",
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_stock"},
    ) as span:
        span.add_event(
            "exception",
            {"exception.type": "builtins.LookupError", "exception.message": f"no {symbol}"},
        )
        span.set_status(Status(StatusCode.ERROR, f"no {symbol}"))


@hogtrace.trace
def answer(question: str) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    with tracer.start_as_current_span(
        "invoke_agent weather-bot",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather-bot"},
    ):
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], temperature=0
        )
        call = first.choices[0].message.tool_calls[0]
        result = get_weather(**json.loads(call.function.arguments))
        lookup_stock("ACME")  # a failing tool: recorded as an error, nothing raised
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
        ]
        final = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    return final.choices[0].message.content or ""


if __name__ == "__main__":
    hogtrace.configure(console=True)  # print each finished trace
    with hogtrace.session("weather-chat-1") as chat:
        print(answer("What's the weather in Paris?"))
    assert chat.metrics is not None
    print(
        f"session: {chat.metrics.generations} model calls, "
        f"{chat.metrics.input_tokens} input / {chat.metrics.output_tokens} output tokens, "
        f"{chat.metrics.errors} error"
    )
    # Outside every hogtrace scope a model call is still sent: a standalone generation.
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()
    hogtrace.flush()
