"""hogtrace agent loop: a tool-calling agent, three turns of one conversation in one session.

Runs offline with nothing but hogtrace installed: a scripted fake model answers with OpenAI
chat-completion-shaped responses, including ``tool_calls``, so hogtrace reads the model, the
tokens, the tool calls and the stop reason from them as it would from the real SDK. Each turn is
printed as a tree when it ends; set POSTHOG_API_KEY (and POSTHOG_HOST) to also send the events to
your PostHog project.

    python examples/agent_loop.py

In PostHog each turn is a trace named ``agent-turn``; the three traces share one
``$ai_session_id`` (the Sessions tab shows them together) and one person (``distinct_id``).
Inside a turn, every model call is a ``$ai_generation`` (with the tool definitions in
``$ai_tools`` and the requested calls in ``$ai_output_choices``) and every tool run is a
``$ai_span`` named ``tool:<name>``. A tool that raises is marked as an error (red in PostHog);
the agent reports the error to the model and carries on.
"""

from __future__ import annotations

import json
import os
from typing import Any

import hogtrace

MAX_STEPS = 5
TOOL_SPECS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    },
]
WEATHER = {"Paris": (18, "cloudy"), "Oslo": (9, "rain"), "Lisbon": (24, "sunny")}
EXPRESSIONS = {"fahrenheit": "20 * 9 / 5 + 32", "divided": "10 / 0"}


# --- the tools ----------------------------------------------------------------------------------


@hogtrace.span(name="tool:get_weather")
def get_weather(city: str) -> dict[str, Any]:
    """A tool: look up the weather (a stand-in for an HTTP API)."""
    celsius, sky = WEATHER[city]
    return {"city": city, "celsius": celsius, "sky": sky}


@hogtrace.span(name="tool:calculator")
def calculator(expression: str) -> float:
    """A tool: evaluate ``a op b op c ...`` left to right (no eval())."""
    parts = expression.split()
    result = float(parts[0])
    for op, operand in zip(parts[1::2], parts[2::2], strict=True):
        value = float(operand)
        if op == "/":
            result /= value  # raises ZeroDivisionError: the span records it
        else:
            result = {"+": result + value, "-": result - value, "*": result * value}[op]
    return result


TOOLS = {"get_weather": get_weather, "calculator": calculator}


# --- the fake model -------------------------------------------------------------------------------


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """A stand-in tokenizer: words in every message."""
    return sum(len(json.dumps(m).split()) for m in messages)


def fake_model(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Ask for tools after a user message; answer from the tool results after tool messages."""
    last = messages[-1]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if last["role"] == "user":
        text = last["content"]
        calls = [("get_weather", {"city": c}) for c in WEATHER if c in text]
        calls += [("calculator", {"expression": e}) for k, e in EXPRESSIONS.items() if k in text]
        message["tool_calls"] = [
            {
                "id": f"call_{len(messages)}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(calls)
        ]
        finish = "tool_calls"
    else:
        results = []
        for m in reversed(messages):
            if m["role"] != "tool":
                break
            results.insert(0, m["content"])
        message["content"] = "Here is what I found: " + "; ".join(results)
        finish = "stop"
    completion_tokens = len(json.dumps(message).split())
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": count_tokens(messages), "completion_tokens": completion_tokens},
    }


# --- the agent ------------------------------------------------------------------------------------


@hogtrace.generation(name="llm", provider="openai")
def llm(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    model: str = "gpt-4o-mini",
    temperature: float = 0.0,
) -> dict[str, Any]:
    """One model call. hogtrace records messages, tools, output, tokens and temperature."""
    return fake_model(model, messages)


def call_tool(call: dict[str, Any]) -> str:
    """Run one requested tool; a failure goes back to the model as text."""
    function = call["function"]
    try:
        result = TOOLS[function["name"]](**json.loads(function["arguments"]))
    except Exception as exc:  # the tool's span has already recorded the error
        return f"{function['name']} failed: {type(exc).__name__}: {exc}"
    return json.dumps(result)


@hogtrace.trace(name="agent-turn")
def run_turn(history: list[dict[str, Any]], user_message: str) -> str:
    """Call the model until it stops asking for tools."""
    history.append({"role": "user", "content": user_message})
    for step in range(1, MAX_STEPS + 1):
        message = llm(history, tools=TOOL_SPECS)["choices"][0]["message"]
        history.append(message)
        if not message.get("tool_calls"):
            hogtrace.metric("steps", step)
            return str(message["content"])
        for call in message["tool_calls"]:
            history.append({"role": "tool", "tool_call_id": call["id"], "content": call_tool(call)})
    raise RuntimeError(f"no answer after {MAX_STEPS} steps")


def main() -> None:
    if os.environ.get("POSTHOG_API_KEY"):
        print("POSTHOG_API_KEY is set: the events also go to PostHog.\n")
    hogtrace.configure(console=True)  # print each finished trace as a tree (on stderr)

    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a travel helper."}]
    questions = [
        "What is the weather in Paris and in Oslo?",
        "What is 20 degrees Celsius in fahrenheit?",
        "And what is 10 divided by 0?",
    ]
    with hogtrace.session("travel-chat-1", distinct_id="user-1") as session:
        for question in questions:
            print(f"user: {question}\nagent: {run_turn(history, question)}\n", flush=True)

    totals = session.metrics
    assert totals is not None  # set when the session exits
    print(
        f"session {session.id}: {len(questions)} turns, {totals.generations} model calls,"
        f" {totals.input_tokens + totals.output_tokens} tokens, {totals.errors} failed tool call(s)"
    )
    hogtrace.shutdown()  # flush what is queued (when sending to PostHog) and stop


if __name__ == "__main__":
    main()
