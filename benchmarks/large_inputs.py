"""What a huge argument costs, before and after the snapshot's byte budget (issue 15 item 5).

    .venv/bin/python benchmarks/large_inputs.py            # ~1-2 min on 2 vCPUs
    .venv/bin/python benchmarks/large_inputs.py --quick    # fewer repetitions

For each input, as a decorated function's argument (``{"args": [value]}``):

- ``call``: calling-thread time of the scope's snapshot: before, ``to_json_safe`` without a
  budget (the old behaviour); after, ``snapshot`` with the default limit (800,000 bytes),
  which cuts what cannot be sent and leaves a large numeric array as a copy (`Deferred`);
- ``worker``: worker time of what the event builder does with that snapshot: converting a
  deferred array (``thaw``), built-in redaction, then ``fit_event`` to the same limit.

Inputs: a 10 MB numpy float64 array (1.25M floats; skipped without numpy), the same as a
Python list, 1.25M embedding-like floats (normal, sd 0.03), a 3 MB string, a 100,000-item
list of chat-message dicts, and shapes each sized item by item: a dict of a million ints,
200,000 small records, a million empty dicts, 1.2M mixed scalars, 125,000 lists of 10 floats,
1,000 lists of 1,000 floats;
and shapes read one item at a time in Python: 200,000 dataclasses, NumPy ints (as a list),
datetimes, dicts with int keys, a dict of 60 lists of 100,000 ints, a pydantic model
holding a list of a million strings, 1,000 records wrapped in ten lists, and 5,000 ints of
3,000 digits (printing one takes ~0.15 ms).

A second table times what the application feels: the calling thread's CPU time
(``time.thread_time``) of a ``@span`` and a ``@generation`` call given each input (as the
generation's ``messages``, and as its one message: ``[value]``, which posthog's converter
sends as ``str(value)``), hogtrace configured with a real posthog client that posts to a
local capture server; a third, of a ``@generation`` given one message of 200,000 content
parts (Anthropic, Gemini, OpenAI; Gemini's also as a tuple, which posthog sends as the
message's ``str()``) or 50,000 google-genai ``Part`` objects, and of 125,000 rows of 10
floats as the messages beside a system prompt (OpenAI, Gemini), and of a million rows,
strings or chat messages (100,000 Gemini messages or `Content` objects, 100,000 OpenAI
Responses output items) beside one. A last table times the
redaction of a typical chat generation (a few messages of ~1 KB) and of an error string.
Times are the best of several runs (ms, or µs for redaction); ratios are before / after.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from collections.abc import Callable
from typing import Any

import pydantic

from hogtrace._limits import fit_event
from hogtrace._options import DEFAULT_MAX_ITEMS as ITEMS
from hogtrace._redact import redact_secrets
from hogtrace._serialize import snapshot, thaw, to_json_safe

LIMIT = 800_000
CONTENT = frozenset({"$ai_input"})


class Tagged(pydantic.BaseModel):
    """A pydantic model holding a long list."""

    id: int
    tags: list[str]


@dataclasses.dataclass
class Row:
    """A small record of the kind an application passes around."""

    id: int
    name: str
    score: float


def best(run: Callable[[], object], reps: int) -> float:
    """Best wall time of ``reps`` runs, in seconds."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def inputs() -> dict[str, Any]:
    """The large arguments, built once."""
    import random

    rng = random.Random(0)
    floats = [rng.random() for _ in range(1_250_000)]
    values: dict[str, Any] = {}
    try:
        import numpy

        values["numpy 10 MB"] = numpy.array(floats)
    except ImportError:
        print("(numpy is not installed: the numpy row is skipped)")
    values["1.25M-float list"] = floats
    # Embedding-like values: some fall in [1e-5, 1e-4), which pydantic-core spells unlike json.
    values["1.25M N(0, 0.03)"] = [rng.gauss(0, 0.03) for _ in range(1_250_000)]
    values["3 MB string"] = "x" * 3_000_000
    values["100k dicts"] = [
        {"role": "user", "content": f"message {i}: " + "lorem ipsum dolor " * 6}
        for i in range(100_000)
    ]
    values["1M-int dict"] = {f"k{i}": i for i in range(1_000_000)}
    values["200k records"] = [{"x": i + 0.5, "y": "a"} for i in range(200_000)]
    values["[{}] * 1M"] = [{}] * 1_000_000
    values["mixed scalars"] = [1, "a", None, 2.5] * 300_000
    values["125k 10-floats"] = [floats[i * 10 : i * 10 + 10] for i in range(125_000)]
    values["1k 1k-floats"] = [floats[i * 1_000 : i * 1_000 + 1_000] for i in range(1_000)]
    values["200k dataclasses"] = [Row(i, f"n{i}", i / 3) for i in range(200_000)]
    if "numpy 10 MB" in values:
        values["200k numpy ints"] = list(numpy.arange(200_000))
    start = datetime.datetime(2026, 1, 1)
    values["200k datetimes"] = [start + datetime.timedelta(seconds=i) for i in range(200_000)]
    values["200k int-key dicts"] = [{1: i, 2: "x"} for i in range(200_000)]
    values["60 x 100k ints"] = {f"k{i}": list(range(100_000)) for i in range(60)}
    values["model, 1M strings"] = Tagged(id=1, tags=[str(i) for i in range(1_000_000)])
    deep: Any = [{"id": i, "name": "n", "ok": True} for i in range(1_000)]
    for _ in range(10):
        deep = [deep]
    values["10-deep 1k records"] = deep
    values["5k 3,000-digit ints"] = [10**2999 + i for i in range(5_000)]
    return values


def worker(copy: Any, deferred: bool = False) -> None:
    """What the event builder does with a snapshot: conversion, redaction, the size limit."""
    content = thaw(copy) if deferred else copy
    props = {"$ai_trace_id": "t" * 36, "$ai_span_id": "s" * 36, "$ai_input": content}
    props["$ai_input"] = redact_secrets(props["$ai_input"])
    fit_event(props, LIMIT, CONTENT)


def large(reps: int) -> None:
    """Print the before/after table for the large inputs."""
    print(
        f"{'input':18} | {'call before':>11} {'call after':>10} {'ratio':>7} | "
        f"{'worker before':>13} {'worker after':>12} {'ratio':>7}"
    )
    for name, value in inputs().items():
        args = {"args": [value]}
        slow_reps = max(1, reps // 3)
        call_before = best(lambda a=args: to_json_safe(a), slow_reps)
        call_after = best(lambda a=args: snapshot(a, LIMIT, ITEMS), reps)
        whole = to_json_safe(args)
        bounded, _, walk = snapshot(args, LIMIT, ITEMS)
        deferred = walk.deferred
        worker_before = best(lambda w=whole: worker(w), slow_reps)
        worker_after = best(lambda b=bounded, d=deferred: worker(b, d), reps)
        print(
            f"{name:18} | {call_before * 1e3:9.1f}ms {call_after * 1e3:8.2f}ms "
            f"{call_before / call_after:6.0f}x | {worker_before * 1e3:11.1f}ms "
            f"{worker_after * 1e3:10.1f}ms {worker_before / worker_after:6.0f}x"
        )


def decorated(reps: int) -> None:
    """Print the calling thread's CPU time of decorated calls given each large input."""
    import posthog
    from overhead import start_server

    import hogtrace

    server, url = start_server()
    try:
        hogtrace.configure(posthog.Posthog("phc_large_inputs", host=url))

        @hogtrace.span
        def span(value: Any) -> int:
            return 0

        @hogtrace.generation(model="m", provider="openai")
        def generation(messages: Any) -> str:
            return "ok"

        def cpu(run: Callable[[], object]) -> float:
            times = []
            for _ in range(reps):
                hogtrace.flush()  # the worker idle: nothing else holds the GIL
                start = time.thread_time()
                run()
                times.append(time.thread_time() - start)
            return min(times)

        print(
            f"\n{'decorated call':18} | {'@span':>9} {'@generation':>12} {'[value]':>10}"
            "   (calling thread CPU)"
        )
        for name, value in inputs().items():
            spent = cpu(lambda v=value: span(v))
            generated = cpu(lambda v=value: generation(v))
            alone = cpu(lambda v=value: generation([v]))  # one message that is no message
            print(
                f"{name:18} | {spent * 1e3:7.2f}ms {generated * 1e3:10.2f}ms {alone * 1e3:8.2f}ms"
            )

        print(f"\n{'one message of many parts, or rows':44} | @generation (calling thread CPU)")
        for name, provider, arguments in many_parts():

            @hogtrace.generation(model="m", provider=provider)
            def call(**arguments: Any) -> str:
                return "ok"

            spent = cpu(lambda a=arguments, c=call: c(**a))
            print(f"{name:44} | {spent * 1e3:9.2f}ms")
        hogtrace.shutdown()
    finally:
        server.terminate()
        server.wait()


def many_parts() -> list[tuple[str, str, dict[str, Any]]]:
    """Generation inputs of one message holding 200,000 content parts, for each provider."""
    count = 200_000
    blocks = [{"type": "text", "text": f"part {i}"} for i in range(count)]
    parts = [{"text": f"part {i}"} for i in range(count)]
    message = {"role": "user", "content": blocks}
    cases = [
        ("Anthropic, 200k blocks", "anthropic", {"messages": [message]}),
        ("Gemini, 200k part dicts", "gemini", {"contents": [{"role": "user", "parts": parts}]}),
        (
            "Gemini, 200k part dicts, with a config",
            "gemini",
            {
                "contents": [{"role": "user", "parts": parts}],
                "config": {"system_instruction": "Be brief."},
            },
        ),
        ("OpenAI, 200k blocks", "openai", {"messages": [message]}),
        (  # posthog reads only a list as parts: the message is made its str()
            "Gemini, 200k part dicts in a tuple",
            "gemini",
            {"contents": [{"role": "user", "parts": tuple(parts)}]},
        ),
    ]
    # Not parts: rows of numbers as the messages, beside a system prompt (added unless a
    # message is a system one, so the whole list is read for one).
    rows = [[i / 7] * 10 for i in range(125_000)]
    cases += [
        ("OpenAI, 125k rows of 10 floats, system=", "openai", {"messages": rows, "system": "S"}),
        (
            "Gemini, 125k rows of 10 floats, config",
            "gemini",
            {"contents": rows, "config": {"system_instruction": "S"}},
        ),
    ]
    # A million items beside a system prompt: the call reads 10,000 of them for a system
    # message, the event builder the rest.
    million = 1_000_000
    chats = [{"role": "user", "content": f"message {i}"} for i in range(million)]
    gemini = [{"role": "user", "parts": [{"text": f"message {i}"}]} for i in range(million // 10)]
    cases += [
        ("OpenAI, 1M rows of 10 floats, system=", "openai", {"messages": rows * 8, "system": "S"}),
        (
            "OpenAI, 1M strings, system=",
            "openai",
            {"messages": [f"s{i}" for i in range(million)], "system": "S"},
        ),
        ("OpenAI, 1M chat messages, system=", "openai", {"messages": chats, "system": "S"}),
        (
            "OpenAI, 1M chat messages, instructions=",
            "openai",
            {"input": chats, "instructions": "B"},
        ),
        (
            "Gemini, 100k messages, config",
            "gemini",
            {"contents": gemini, "config": {"system_instruction": "S"}},
        ),
    ]
    try:
        from google.genai import types
    except ImportError:  # the test extra holds it
        return cases
    sdk = [types.Part(text=f"part {i}") for i in range(50_000)]
    content = types.Content(role="user", parts=sdk)
    cases.append(("Gemini, 50k google-genai Part objects", "gemini", {"contents": [content]}))
    history = [
        types.Content(role="user" if i % 2 else "model", parts=[types.Part(text=f"m{i}")])
        for i in range(100_000)
    ]
    config = types.GenerateContentConfig(system_instruction="S")
    cases.append(
        ("Gemini, 100k Content objects, config", "gemini", {"contents": history, "config": config})
    )
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    def item(i: int) -> Any:  # what an agent loop feeds back: messages and function calls
        if i % 2:
            text = ResponseOutputText(type="output_text", text=f"a{i}", annotations=[])
            return ResponseOutputMessage(
                id=f"m{i}", role="assistant", status="completed", type="message", content=[text]
            )
        return ResponseFunctionToolCall(
            type="function_call", call_id=f"c{i}", name="f", arguments="{}"
        )

    items = [item(i) for i in range(100_000)]
    cases.append(
        (
            "OpenAI, 100k Responses items, instructions=",
            "openai",
            {"input": items, "instructions": "B"},
        )
    )
    return cases


def _fresh(messages: list[dict[str, str]], count: int) -> list[list[dict[str, str]]]:
    """``count`` copies of ``messages`` whose strings are new and differ (never seen before)."""
    return [
        [{"role": m["role"], "content": f"{m['content']} ({i})"} for m in messages]
        for i in range(count)
    ]


def redaction(reps: int) -> None:
    """Print what redaction costs on a typical generation's content, first seen and resent.

    Strings found free of secrets are remembered (by hash), so a chat history sent again
    with every call is scanned once: "first seen" gives each call new strings.
    """
    import random

    sentence = "Summarise the attached report and list the three main risks for next quarter. "
    messages = [
        {"role": "system", "content": "You are a careful analyst. " * 10},
        {"role": "user", "content": sentence * 13},
        {"role": "assistant", "content": sentence * 12},
        {"role": "user", "content": "Thanks. Now shorten it to one paragraph please."},
    ]
    # Prose with what real text has: capitals, digits, '-', '_', '@', URLs, code.
    prose = (
        "The quick brown fox jumps over a lazy dog. In 2024, revenue grew 12% to $3.4M; see"
        " https://example.com/docs/api-v2 and user_id fields. A well-known e-mail:"
        " team@example.org. Error E1234 at line 56: KeyError('session_id'). Use `pip install"
        " posthog-ai` then run main_loop(). AWS region us-east-1."
    )
    words = prose.split()
    rng = random.Random(1)
    text = " ".join(rng.choice(words) for _ in range(1700))[:10_000]
    real = [{"role": "user", "content": text[i * 500 : (i + 1) * 500]} for i in range(20)]
    with_key = [*messages, {"role": "user", "content": "my key is sk-proj-abc123def456ghi"}]
    error = "AuthenticationError: Error code: 401 - Incorrect API key provided: sk-proj-****abcd."
    loops = 500
    print(f"\n{'redaction':52} | µs per call")
    for name, value in (
        ("4 chat messages, ~2.3 KB, no secret: first seen", _fresh(messages, loops)),
        ("the same, resent (a chat history)", [messages] * loops),
        ("20 messages of real-looking text, 10 KB: first seen", _fresh(real, loops)),
        ("the same, resent", [real] * loops),
        ("5 chat messages, one with a key", [with_key] * loops),
        ("OpenAI 401 error string", [error] * loops),
        ("plain error string", ["ValueError: invalid literal for int() with base 10: 'x'"] * loops),
    ):
        per = best(lambda batch=value: [redact_secrets(v) for v in batch], reps) / loops
        print(f"{name:52} | {per * 1e6:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    reps = 3 if parser.parse_args().quick else 9
    large(reps)
    decorated(reps)
    redaction(reps)


if __name__ == "__main__":
    main()
