"""Captured content through real scopes: JSON-safe values, snapshots, the size limit, delivery.

`_serialize` and `_limits` have unit tests of their own (tests/test_serialize.py,
tests/test_limits.py). Here every value goes in as an argument and comes out as a return value of
decorated spans, traces, generations and embeddings, and the events are checked as PostHog would
receive them: through `capture_events()` and through the real posthog client to a local server.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import decimal
import enum
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import posthog
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hogtrace
from hogtrace import _errors
from hogtrace._extract import extract_generation
from hogtrace._options import DEFAULT_MAX_ITEMS
from hogtrace._serialize import snapshot
from hogtrace.testing import CapturedEvent, capture_events
from tests.capture_server import CaptureServer
from tests.hostile import FakeArray, Hostile, HostileList

#: The default ``max_event_bytes``: SPEC §4, below PostHog's 900 KiB per-event limit.
DEFAULT_LIMIT = 800_000
#: PostHog's per-event limit on ``/batch/`` (``posthog/consumer.py:MAX_MSG_SIZE``).
POSTHOG_LIMIT = 900 * 1024
STRING_CUT = re.compile(r"…\[truncated [\d,]+ chars\]$")
LIST_CUT = re.compile(r"…\[truncated [\d,]+ items\]")


def size(properties: dict[str, Any]) -> int:
    """The JSON size of an event's properties, measured the way the posthog client measures."""
    return len(json.dumps(properties, allow_nan=False).encode())


def wire_size(event: dict[str, Any]) -> int:
    """The size of a whole event as received by the server."""
    return len(json.dumps(event, allow_nan=False).encode())


# --- values of every kind the issue names ------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Priority(enum.IntEnum):
    HIGH = 3


class Message(pydantic.BaseModel):
    role: str
    content: str


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Custom:
    def __repr__(self) -> str:
        return "Custom(42)"


class HostileMapping(dict[str, int]):
    def items(self) -> Any:
        raise RuntimeError("items")

    def keys(self) -> Any:
        raise RuntimeError("keys")

    def __iter__(self) -> Any:
        raise RuntimeError("iter")


class BrokenToList:
    def tolist(self) -> Any:
        raise RuntimeError("tolist")

    def __repr__(self) -> str:
        return "BrokenToList()"


class BrokenModel(pydantic.BaseModel):
    x: int = 1

    def model_dump(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("model_dump")


class ReprNotStr:
    def __repr__(self) -> Any:
        return 5


class LockedDown:
    """Even attribute lookup on the instance raises."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(name)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str")


UTC = datetime.timezone.utc

# (id, value, JSON-safe form): SPEC §4 and the list of types.
TYPED_VALUES: list[tuple[str, Any, Any]] = [
    ("pydantic", Message(role="user", content="hi"), {"role": "user", "content": "hi"}),
    ("dataclass", Point(1, "a"), {"x": 1, "label": "a"}),
    ("enum", Color.RED, "red"),
    ("int-enum", Priority.HIGH, 3),
    ("datetime", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
    ("date", datetime.date(2024, 1, 2), "2024-01-02"),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("decimal", decimal.Decimal("1.10"), "1.10"),
    ("set", {"only"}, ["only"]),
    ("frozenset", frozenset({7}), [7]),
    ("tuple", (1, "a", None), [1, "a", None]),
    ("deque", collections.deque([1, 2]), [1, 2]),
    ("bytes", b"abc", "<3 bytes>"),
    ("bytearray", bytearray(b"ab"), "<2 bytes>"),
    ("memoryview", memoryview(b"abcd"), "<4 bytes>"),
    ("tolist", FakeArray(), [[1, 2], [3, 4]]),
    ("repr", Custom(), "Custom(42)"),
    ("non-str-keys", {1: "a", None: "b"}, {"1": "a", "null": "b"}),
    ("nan", float("nan"), "NaN"),
    ("nested", {"when": [datetime.date(2024, 1, 2)], "who": (Point(2, "b"),)}, None),
]
NESTED_EXPECTED = {"when": ["2024-01-02"], "who": [{"x": 2, "label": "b"}]}


def expected_form(expected: Any) -> Any:
    return NESTED_EXPECTED if expected is None else expected


@hogtrace.span
def echo(value: Any) -> Any:
    return value


@hogtrace.trace
def echo_trace(value: Any) -> Any:
    return value


@hogtrace.generation(model="m")
def echo_generation(messages: Any) -> Any:
    return messages


@hogtrace.embedding(model="e")
def echo_embedding(input: Any) -> Any:
    return input


@hogtrace.span
def echo_items(value: Any) -> Iterator[Any]:
    yield value
    yield value


@hogtrace.span
async def echo_async(value: Any) -> Any:
    return value


@hogtrace.span
async def echo_async_items(value: Any) -> AsyncIterator[Any]:
    yield value


# --- serialization -------------------------------------------------------------------------------


class TestTypesAsSpanContent:
    @pytest.mark.parametrize(
        ("value", "expected"), [v[1:] for v in TYPED_VALUES], ids=[v[0] for v in TYPED_VALUES]
    )
    def test_span_argument_and_return_value(self, value: Any, expected: Any) -> None:
        """A value passed to and returned by a span is sent in its JSON-safe form."""
        with capture_events() as events:
            returned = echo(value)

        event = events.one("trace")
        assert returned is value
        expected = expected_form(expected)
        assert {"value": expected} == event.properties["$ai_input_state"]
        assert expected == event.properties["$ai_output_state"]

    @pytest.mark.parametrize(
        ("value", "expected"), [v[1:] for v in TYPED_VALUES], ids=[v[0] for v in TYPED_VALUES]
    )
    def test_span_and_trace_nested_in_containers(self, value: Any, expected: Any) -> None:
        """Inside a list, the value is sent JSON-safe by a child span and by its root trace."""

        @hogtrace.trace
        def root(items: list[Any]) -> list[Any]:
            return echo(items)

        with capture_events() as events:
            root([value])

        expected = [expected_form(expected)]
        span, trace = events.one("span"), events.one("trace")
        assert ({"value": expected}, expected) == (span.input, span.output)
        assert ({"items": expected}, expected) == (trace.input, trace.output)

    @pytest.mark.parametrize(
        ("value", "expected"), [v[1:] for v in TYPED_VALUES], ids=[v[0] for v in TYPED_VALUES]
    )
    def test_set_input_and_set_output(self, value: Any, expected: Any) -> None:
        """``set_input`` / ``set_output`` on a ``with`` block serialize like arguments do."""
        with capture_events() as events, hogtrace.trace("t"), hogtrace.span("s") as s:
            s.set_input(value)
            s.set_output(value)

        event = events.one("span")
        expected = expected_form(expected)
        assert (expected, expected) == (event.input, event.output)

    def test_generator_items(self) -> None:
        """The items a decorated generator yields are sent JSON-safe."""
        with capture_events() as events:
            items = list(echo_items(Point(1, "a")))

        assert [Point(1, "a")] * 2 == items
        assert [{"x": 1, "label": "a"}] * 2 == events.one().output

    async def test_coroutine_and_async_generator(self) -> None:
        """``async def`` spans and async generator spans serialize their content too."""
        with capture_events() as events:
            await echo_async(uuid.UUID(int=2))
            [item async for item in echo_async_items(b"xyz")]

        expected = ["00000000-0000-0000-0000-000000000002", ["<3 bytes>"]]
        assert expected == [e.output for e in events]


def user_messages(*contents: str) -> list[dict[str, str]]:
    """What posthog's ``_format_chat_input_message`` makes of ``messages`` items not dicts."""
    return [{"role": "user", "content": content} for content in contents]


# `messages` given as a list or tuple are read item by item, as posthog's OpenAI wrapper reads
# them; any other value (bytes, a dict, a set, an iterator) keeps its JSON-safe form.
GENERATION_INPUT: dict[str, Any] = {
    "tuple": user_messages("1", "a", "None"),
}
GENERATION_INPUT_CASES = [
    pytest.param(value, GENERATION_INPUT.get(name, expected), id=name)
    for name, value, expected in TYPED_VALUES
    if name != "pydantic"
]


class TestTypesAsGenerationContent:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [v[1:] for v in TYPED_VALUES if v[0] != "pydantic"],
        ids=[v[0] for v in TYPED_VALUES if v[0] != "pydantic"],
    )
    def test_generation_output(self, value: Any, expected: Any) -> None:
        """A generation's unrecognised return value is sent JSON-safe."""
        with capture_events() as events:
            returned = echo_generation(value)

        event = events.one("generation")
        assert returned is value
        assert expected_form(expected) == event.properties["$ai_output_choices"]

    @pytest.mark.parametrize(("value", "expected"), GENERATION_INPUT_CASES)
    def test_generation_input(self, value: Any, expected: Any) -> None:
        """A generation's ``messages`` are sent JSON-safe, a collection as one message per item."""
        with capture_events() as events:
            returned = echo_generation(value)

        assert returned is value
        assert expected_form(expected) == events.one("generation").properties["$ai_input"]

    def test_pydantic_message_is_read_as_a_message(self) -> None:
        """A returned pydantic message is one output message, its content as posthog sends it."""
        with capture_events() as events:
            echo_generation(Message(role="user", content="hi"))

        expected = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        assert expected == events.one("generation").properties["$ai_output_choices"]

    def test_pydantic_message_input_is_sent_as_a_dict(self) -> None:
        """A pydantic message given as ``messages`` is sent as a dict."""
        with capture_events() as events:
            echo_generation(Message(role="user", content="hi"))

        assert {"role": "user", "content": "hi"} == events.one("generation").properties["$ai_input"]

    @pytest.mark.parametrize(
        ("value", "expected"), [v[1:] for v in TYPED_VALUES], ids=[v[0] for v in TYPED_VALUES]
    )
    def test_embedding_input(self, value: Any, expected: Any) -> None:
        """An embedding's ``input`` is sent JSON-safe."""
        with capture_events() as events:
            echo_embedding(value)

        assert expected_form(expected) == events.one("embedding").properties["$ai_input"]

    def test_generation_model_parameters_and_tools(self) -> None:
        """Model parameters and tools given as arbitrary objects are sent JSON-safe."""

        @hogtrace.generation
        def chat(messages: Any, tools: Any, temperature: Any, stop: Any) -> str:
            return "ok"

        with capture_events() as events:
            chat("hi", tools=(Point(1, "tool"),), temperature=decimal.Decimal("0.5"), stop={"x"})

        props = events.one().properties
        assert [{"x": 1, "label": "tool"}] == props["$ai_tools"]
        assert {"temperature": "0.5", "stop": ["x"]} == props["$ai_model_parameters"]


HOSTILE: list[tuple[str, Callable[[], Any], str]] = [
    ("repr-raises", Hostile, "<unrepresentable Hostile>"),
    ("repr-not-str", ReprNotStr, "<unrepresentable ReprNotStr>"),
    ("iteration-raises", lambda: HostileList([1]), "<unrepresentable HostileList>"),
    ("tolist-raises", BrokenToList, "BrokenToList()"),
    ("attribute-lookup-raises", LockedDown, "<tests.test_content.LockedDown object at 0x"),
]


class TestHostileValues:
    @pytest.mark.parametrize(
        ("make", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
    )
    def test_hostile_value_becomes_its_repr_or_a_placeholder(
        self, make: Callable[[], Any], expected: str
    ) -> None:
        """A value is sent as its repr, or as a placeholder naming its type if that raises."""
        value = make()
        with capture_events() as events:
            returned = echo(value)

        assert returned is value
        event = events.one()
        assert ["value"] == list(event.input)
        assert event.input["value"].startswith(expected)
        assert event.output.startswith(expected)

    def test_hostile_mapping_is_never_null(self) -> None:
        """A mapping whose iteration raises is sent as some string, never as null."""
        with capture_events() as events:
            echo(HostileMapping(a=1))

        assert isinstance(events.one().output, str)

    def test_broken_pydantic_model_falls_back_to_its_fields(self) -> None:
        """A pydantic model whose ``model_dump`` raises is sent from its fields."""
        with capture_events() as events:
            echo(BrokenModel())

        assert {"x": 1} == events.one().output

    @pytest.mark.parametrize("kind", ["span", "generation", "embedding", "stream"])
    def test_hostile_values_never_reach_user_code(self, kind: str) -> None:
        """Hostile values in and out of every kind of scope leave the user's call unchanged."""
        values = [Hostile(), {"k": [Hostile(), LockedDown()]}, HostileList([1]), ReprNotStr()]

        @hogtrace.generation
        def stream(messages: Any) -> Iterator[Any]:
            yield from messages

        functions = {
            "span": echo,
            "generation": echo_generation,
            "embedding": echo_embedding,
            "stream": lambda v: list(stream([v])),
        }
        with capture_events() as events:
            returned = [functions[kind](v) for v in values]

        if kind != "stream":
            assert all(r is v for r, v in zip(returned, values, strict=True))
        assert len(values) == len(events)
        for event in events:
            json.dumps(event.properties, allow_nan=False)

    def test_exception_message_is_recorded(self) -> None:
        """An exception with an ordinary message is recorded as ``"Type: message"``."""
        with capture_events() as events, pytest.raises(ValueError, match="bad"):
            echo_raises(ValueError("bad"))

        assert "ValueError: bad" == events.one().error

    def test_exception_whose_str_raises_is_still_sent(self) -> None:
        """An exception whose ``__str__`` raises still yields an error event naming its type."""
        _errors.STRICT = False
        with capture_events() as events, pytest.raises(UnprintableError):
            echo_raises(UnprintableError())

        event = events.one()
        assert event.is_error
        assert event.error is not None
        assert event.error.startswith("UnprintableError")

    def test_exception_whose_str_raises_reaches_the_caller_unchanged(self) -> None:
        """Even when its message cannot be read, the user's exception reaches the caller."""
        _errors.STRICT = False
        error = UnprintableError()
        with capture_events(), pytest.raises(UnprintableError) as info:
            echo_raises(error)

        assert error is info.value


@hogtrace.span
def echo_raises(error: BaseException) -> None:
    raise error


class TestCyclesAndDepth:
    def test_cyclic_argument_and_output(self) -> None:
        """A structure that contains itself is sent with a cycle marker in place of the loop."""
        messages: list[Any] = [{"role": "user", "content": "hi"}]
        messages.append(messages)
        with capture_events() as events:
            echo(messages)

        expected = [{"role": "user", "content": "hi"}, "<cycle>"]
        event = events.one()
        assert ({"value": expected}, expected) == (event.input, event.output)

    def test_self_referencing_object_graph(self) -> None:
        """A dataclass that points back at its container is cut, not recursed forever."""
        node = Point(1, "a")
        graph: dict[str, Any] = {"node": node}
        node.label = graph  # type: ignore[assignment]
        with capture_events() as events:
            echo(graph)

        assert {"node": {"x": 1, "label": "<cycle>"}} == events.one().output

    def test_excessive_depth_is_cut(self) -> None:
        """A value nested thousands of levels deep is cut with a depth marker."""
        deep: Any = "bottom"
        for _ in range(5_000):
            deep = [deep]
        with capture_events() as events:
            echo(deep)

        text = json.dumps(events.one().output)
        assert "<max depth>" in text
        assert "bottom" not in text


# --- snapshots ------------------------------------------------------------------------------------


class TestSnapshotAtOpen:
    def test_agent_loop_appending_to_messages(self) -> None:
        """Appending to ``messages`` after the call does not change the recorded ``$ai_input``."""

        @hogtrace.generation(model="m")
        def chat(messages: list[dict[str, str]]) -> str:
            return "answer"

        messages = [{"role": "user", "content": "q1"}]
        with capture_events() as events, hogtrace.trace("agent"):
            for turn in ("q2", "q3"):
                messages.append({"role": "assistant", "content": chat(messages)})
                messages.append({"role": "user", "content": turn})

        first, second = events.generations
        assert [{"role": "user", "content": "q1"}] == first.input
        expected = [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "q2"},
        ]
        assert expected == second.input

    def test_messages_inside_keyword_arguments(self) -> None:
        """A pass-through ``create(**kwargs)`` records ``messages`` as they were at the call."""

        @hogtrace.generation
        def create(**kwargs: Any) -> str:
            return "answer"

        messages = [{"role": "user", "content": "q1"}]
        with capture_events() as events:
            create(model="m", messages=messages)
            messages.append({"role": "user", "content": "q2"})

        assert [{"role": "user", "content": "q1"}] == events.one().input

    def test_mutation_inside_the_call(self) -> None:
        """The function's own changes to its argument do not change what was recorded."""

        @hogtrace.span
        def consume(queue: list[str]) -> int:
            queue.clear()
            return 0

        with capture_events() as events:
            consume(["a", "b"])

        assert {"queue": ["a", "b"]} == events.one().input

    def test_nested_objects_are_copied(self) -> None:
        """Mutating an object nested inside an argument later does not change the record."""
        inner = {"content": "before"}
        with capture_events() as events:
            echo({"messages": [inner]})
            inner["content"] = "after"

        assert {"messages": [{"content": "before"}]} == events.one().output

    def test_set_input_and_set_output_are_snapshots(self) -> None:
        """``set_input`` / ``set_output`` record the value as it was when called."""
        state = {"step": [1]}
        with capture_events() as events, hogtrace.span("s") as s:
            s.set_input(state)
            s.set_output(state)
            state["step"].append(2)

        assert ({"step": [1]}, {"step": [1]}) == (events.one().input, events.one().output)

    def test_output_is_a_snapshot_at_return(self) -> None:
        """A returned object mutated by the caller afterwards is recorded as returned."""
        with capture_events() as events:
            result = echo([1])
            result.append(2)

        assert [1] == events.one().output

    def test_generator_items_are_recorded_as_yielded(self) -> None:
        """Each yielded item is recorded as it was when yielded, not as it ends up."""

        @hogtrace.span
        def steps() -> Iterator[dict[str, int]]:
            state = {"step": 0}
            for step in range(3):
                state["step"] = step
                yield state

        with capture_events() as events:
            for _ in steps():
                pass

        assert [{"step": 0}, {"step": 1}, {"step": 2}] == events.one().output

    def test_snapshot_is_taken_before_the_delivery_worker_runs(
        self, capture_server: CaptureServer
    ) -> None:
        """With the real client, the messages list mutated after the call is sent as it was."""
        worker_may_build = threading.Event()

        def hold_worker(value: Any) -> Any:
            worker_may_build.wait(10)  # the worker builds the event only after the mutation
            return value

        client = posthog.Posthog("phc_test", host=capture_server.url)
        try:
            hogtrace.configure(client, redact=hold_worker)
            messages = [{"role": "user", "content": "q1"}]
            echo_generation(messages)
            messages.append({"role": "assistant", "content": "LEAKED-LATER"})
            messages[0]["content"] = "CHANGED-LATER"
            worker_may_build.set()
            hogtrace.flush(timeout=10)
            client.flush()

            [event] = capture_server.events
            assert [{"role": "user", "content": "q1"}] == event["properties"]["$ai_input"]
        finally:
            worker_may_build.set()
            hogtrace.reset()
            client.shutdown()


# --- the size limit -------------------------------------------------------------------------------


@hogtrace.span
def huge_string() -> str:
    return "x" * 3_000_000


@hogtrace.span
def huge_list() -> list[str]:
    return [f"item-{i:06d}" for i in range(100_000)]


def assert_fits(event: CapturedEvent, limit: int = DEFAULT_LIMIT) -> None:
    """The event is valid JSON, within the limit, and says it was truncated."""
    __tracebackhide__ = True
    assert True is event.properties.get("$ai_truncated")
    # `$ai_truncated` itself is left out of the size here; TestSizeLimit covers it separately
    # (see test_truncated_event_with_its_flag_fits).
    props = {k: v for k, v in event.properties.items() if k != "$ai_truncated"}
    assert size(props) <= limit


class TestSizeLimit:
    def test_three_megabyte_string_output(self) -> None:
        """A 3 MB string returned by a span is cut to fit, with a visible marker."""
        with capture_events() as events:
            returned = huge_string()

        assert 3_000_000 == len(returned)
        event = events.one()
        assert_fits(event)
        output = event.output
        assert output.startswith("xxxx")
        assert STRING_CUT.search(output)
        assert len(output) > DEFAULT_LIMIT // 2  # most of the room is used, not thrown away

    def test_hundred_thousand_item_list_output(self) -> None:
        """A 100,000-item list keeps its first items intact and ends with a marker item."""
        with capture_events() as events:
            huge_list()

        event = events.one()
        assert_fits(event)
        output = event.output
        assert isinstance(output, list)
        assert ["item-000000", "item-000001"] == output[:2]
        assert LIST_CUT.fullmatch(output[-1])
        assert len(output) > 1_000

    def test_three_megabyte_argument(self) -> None:
        """A 3 MB argument is cut inside ``$ai_input_state``, keeping the parameter name."""
        with capture_events() as events:
            echo("y" * 3_000_000)

        event = events.one()
        assert_fits(event)
        assert ["value"] == list(event.input)
        assert STRING_CUT.search(event.input["value"])
        assert STRING_CUT.search(event.output)

    def test_one_huge_message_among_small_ones(self) -> None:
        """In a generation, only the huge message is cut; the small ones and roles stay."""
        messages = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "z" * 2_000_000},
            {"role": "user", "content": "thanks"},
        ]
        with capture_events() as events:
            echo_generation(messages)

        event = events.one()
        assert_fits(event)
        sent = event.properties["$ai_input"]
        assert messages[0] == sent[0]
        assert messages[2] == sent[2]
        assert "user" == sent[1]["role"]
        assert STRING_CUT.search(sent[1]["content"])

    def test_huge_error_message(self) -> None:
        """A 3 MB exception message is cut in ``$ai_error``; the error is still flagged."""
        with capture_events() as events, pytest.raises(ValueError, match=r"^eee"):
            echo_raises(ValueError("e" * 3_000_000))

        event = events.one()
        assert_fits(event)
        assert event.is_error
        assert event.error.startswith("ValueError: eee")
        assert STRING_CUT.search(event.error)

    @pytest.mark.parametrize("limit", [1_000, 10_000, 100_000])
    def test_configured_limit(self, limit: int) -> None:
        """``max_event_bytes`` is honoured for every event kind, small limits included."""
        hogtrace.configure(max_event_bytes=limit)
        big = [{"role": "user", "content": "w" * 50_000}] * 5
        with capture_events() as events, hogtrace.trace("t") as t:
            t.set_input(big)
            echo(big)
            echo_generation(big)
            echo_embedding(big)

        assert 4 == len(events)
        for event in events:
            assert_fits(event, limit)

    def test_small_events_are_not_marked(self) -> None:
        """An event that fits is sent unchanged, without ``$ai_truncated``."""
        with capture_events() as events:
            echo("small")

        assert "$ai_truncated" not in events.one().properties
        assert "small" == events.one().output

    def test_ids_survive_truncation(self) -> None:
        """Truncation never touches the ids that link the event into its trace."""
        with capture_events() as events, hogtrace.session("conv-1"), hogtrace.trace("t") as t:
            huge_string()

        span = events.one("span")
        assert_fits(span)
        assert (t.trace_id, t.id, "conv-1", "huge_string") == (
            span.trace_id,
            span.parent_id,
            span.session_id,
            span.name,
        )

    def test_truncated_event_with_its_flag_fits(self) -> None:
        """The truncated event, ``$ai_truncated`` included, is within ``max_event_bytes``."""
        with capture_events() as events:
            huge_string()

        assert size(events.one().properties) <= DEFAULT_LIMIT

    def test_cut_counts_are_of_the_original_values_beside_an_array(self) -> None:
        """A large array converted on the worker leaves the other cut values' counts alone."""
        np = pytest.importorskip("numpy")
        hogtrace.configure(max_event_bytes=100_000)

        @hogtrace.trace
        def f(values: Any, xs: list[float], text: str) -> None:
            return None

        with capture_events() as events:
            f(np.zeros(300_000), [i + 0.5 for i in range(300_000)], "x" * 300_000)

        args = events.one().properties["$ai_input_state"]
        assert f"…[truncated {300_000 - (len(args['xs']) - 1):,} items]" == args["xs"][-1]
        kept = args["text"].index("…")
        assert f"…[truncated {300_000 - kept:,} chars]" == args["text"][kept:]
        assert f"…[truncated {300_000 - (len(args['values']) - 1):,} items]" == args["values"][-1]
        assert_fits(events.one(), 100_000)

    def test_huge_user_property_fits(self) -> None:
        """A scope's own huge property is cut so the event fits."""
        hogtrace.configure(max_event_bytes=10_000)
        with capture_events() as events, hogtrace.span("s", properties={"ids": [["x"]] * 5_000}):
            pass

        assert_fits(events.one(), 10_000)


# --- the item limit -------------------------------------------------------------------------------


def items_in(value: Any) -> int:
    """The items of a value's lists and dicts at every depth, as ``max_items`` counts plain
    JSON read at C speed (a list or dict inside another counts one more), without markers."""
    if type(value) is dict:
        return sum(one_item(v) for k, v in value.items() if not k.startswith("…"))
    if type(value) is list:
        return sum(one_item(v) for v in value if not (type(v) is str and v.startswith("…[")))
    return 0


def one_item(value: Any) -> int:
    """What an item holding ``value`` counts: itself, and a container one more and its own."""
    return 2 + items_in(value) if type(value) in (dict, list) else 1


class TestItemLimit:
    """``max_items``: a captured value keeps at most that many items, cut visibly."""

    def test_huge_input_and_output_are_cut_at_max_items(self) -> None:
        """200,000 records in and out: each value keeps its first 5,000 items, marked (the
        argument ``rows``, read by itself, takes 6)."""
        records = [{"id": i, "name": f"user{i}"} for i in range(200_000)]

        @hogtrace.span
        def load(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return rows

        with capture_events() as events:
            assert load(records) is records

        event = events.one()
        assert event.properties["$ai_truncated"] is True
        rows = event.input["rows"]
        # `items_in` counts the argument 2; read by itself, it takes 6.
        assert DEFAULT_MAX_ITEMS - 4 < items_in(event.input) + 4 <= DEFAULT_MAX_ITEMS
        assert records[: len(rows) - 2] == rows[:-2]
        assert f"…[truncated {len(records) - len(rows) + 1:,} items]" == rows[-1]
        assert DEFAULT_MAX_ITEMS - 4 < items_in(event.output) <= DEFAULT_MAX_ITEMS
        assert records[: len(event.output) - 2] == event.output[:-2]

    def test_configured_max_items(self) -> None:
        """configure(max_items=...) moves the cut."""
        hogtrace.configure(max_items=300)

        @hogtrace.span
        def f(xs: list[int]) -> None:
            return None

        with capture_events() as events:
            f(list(range(1_000)))

        xs = events.one().input["xs"]
        # The argument "xs" is an item too, read by itself: it takes 6.
        assert [*list(range(294)), "…[truncated 706 items]"] == xs
        assert events.one().properties["$ai_truncated"] is True

    def test_a_value_within_max_items_is_whole_and_not_flagged(self) -> None:
        """999 records of three fields (5 items each: itself, 1 more, its 3) and the argument
        (1 and 1 more): 4,997 items, all kept."""
        records = [{"id": i, "name": "n", "ok": True} for i in range(999)]

        @hogtrace.span
        def f(rows: list[dict[str, Any]]) -> None:
            return None

        with capture_events() as events:
            f(records)

        assert {"rows": records} == events.one().input
        assert "$ai_truncated" not in events.one().properties

    def test_small_arguments_after_a_huge_one_are_kept(self) -> None:
        """The huge first argument is cut; the query and options after it are whole."""

        @hogtrace.span
        def rank(documents: list[str], query: str, options: dict[str, Any]) -> None:
            return None

        with capture_events() as events:
            rank([f"doc {i}" for i in range(100_000)], "what is x", {"k": 5, "tags": ["a"]})

        sent = events.one().input
        assert ("what is x", {"k": 5, "tags": ["a"]}) == (sent["query"], sent["options"])
        assert sent["documents"][-1].startswith("…[truncated ")

    def test_generator_items_share_max_items(self) -> None:
        """A generator's yielded values hold max_items together; the rest are counted."""

        @hogtrace.span
        def rows() -> Iterator[dict[str, int]]:
            for i in range(1_000):
                # 11 items with its place in the list (a dict one more) and its 9
                yield {f"f{j}": i for j in range(9)}

        with capture_events() as events:
            assert 1_000 == len(list(rows()))

        output = events.one().output
        assert DEFAULT_MAX_ITEMS - 11 < items_in(output) <= DEFAULT_MAX_ITEMS
        assert f"…[{1_000 - (len(output) - 1)} more items]" == output[-1]
        assert events.one().properties["$ai_truncated"] is True

    def test_yielded_objects_count_as_objects(self) -> None:
        """A yielded dataclass takes what it would in a returned list (16, and its fields):
        a generator of them keeps about as many, not 1,000 (a helper's review)."""

        @hogtrace.span
        def points() -> Iterator[Point]:
            for i in range(5_000):
                yield Point(i, "a")

        with capture_events() as events:
            assert 5_000 == len(list(points()))

        output = events.one().output
        kept = len(output) - 1
        assert DEFAULT_MAX_ITEMS // (16 + 2) == kept  # itself and its 2 fields
        assert [{"x": i, "label": "a"} for i in range(kept)] == output[:-1]
        assert f"…[{5_000 - kept} more items]" == output[-1]

    def test_the_last_item_left_is_not_an_empty_container(self) -> None:
        """A yielded dict that cannot keep any of its items is counted, not sent empty."""
        hogtrace.configure(max_items=100)

        @hogtrace.span
        def rows() -> Iterator[dict[str, Any]]:
            for i in range(10):
                yield {"i": i, "v": list(range(9))}  # 14 items with its place in the list

        with capture_events() as events:
            list(rows())

        output = events.one().output
        assert {"i": 6, "v": list(range(9))} == output[-2]  # 7 of 14 items each: 98 taken
        assert "…[3 more items]" == output[-1]

    def test_a_generator_past_its_item_cap_is_flagged(self) -> None:
        """The 1,000-item cap of a generator's output is a cut too."""

        @hogtrace.span
        def numbers() -> Iterator[int]:
            yield from range(1_500)

        with capture_events() as events:
            list(numbers())

        assert "…[500 more items]" == events.one().output[-1]
        assert events.one().properties["$ai_truncated"] is True

    def test_a_small_array_is_cut_at_max_items_without_converting_it_whole(self) -> None:
        """An array under the size limit (88,000 x 3) but over max_items keeps its first rows."""
        np = pytest.importorskip("numpy")
        hogtrace.configure(max_items=1_000)
        values = np.arange(264_000, dtype=np.float64).reshape(88_000, 3)

        @hogtrace.span
        def f(values: Any) -> None:
            return None

        with capture_events() as events:
            f(values)

        sent = events.one().input["values"]
        assert values[: len(sent) - 2].tolist() == sent[:-2]
        assert f"…[truncated {88_000 - len(sent) + 1:,} items]" == sent[-1]
        # The argument's entry, an object read by itself, takes 16; each row 5 (itself, 1
        # more, its 3).
        assert 1_000 - 16 - 5 < items_in(sent) <= 1_000 - 16

    def test_generation_input_and_tools(self) -> None:
        """A generation's messages and tools are cut at max_items like any value."""
        hogtrace.configure(max_items=1_000)
        tools = [{"type": "function", "function": {"name": f"t{i}"}} for i in range(500)]
        messages = [{"role": "user", "content": f"m{i}"} for i in range(2_000)]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> str:
            return "ok"

        with capture_events() as events:
            llm(messages, tools)

        props = events.one().properties
        assert props["$ai_truncated"] is True
        assert 990 < items_in(props["$ai_input"]) <= 1_000
        assert 990 < items_in(props["$ai_tools"]) <= 1_000
        assert messages[:240] == props["$ai_input"][:240]  # 4 items a message

    def test_generation_text_output_of_many_choices_is_cut(self) -> None:
        """A text-only output (kept as extracted when small) is counted too: 40 choices are
        5 + 4 x 40 items, over 100."""
        hogtrace.configure(max_items=100)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": f"c{i}"}} for i in range(40)
        ]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[dict[str, str]]) -> dict[str, Any]:
            return {"object": "chat.completion", "model": "m", "choices": choices}

        with capture_events() as events:
            llm([{"role": "user", "content": "hi"}])

        props = events.one().properties
        [message] = props["$ai_output_choices"]
        assert message["content"][-1].startswith("…[truncated ")
        assert items_in(props["$ai_output_choices"]) <= 100
        assert props["$ai_truncated"] is True

    @pytest.mark.parametrize(
        "case",
        [
            "output then error",
            "generation output then error",
            "yields after set_output",
            "embedding yields",
            "privacy yields",
        ],
    )
    def test_cut_content_not_sent_is_not_flagged(self, case: str) -> None:
        """Cut content that is not sent (an output on error, an embedding's output, a
        generator's items that set_output() replaced, content nulled for privacy) does not
        flag the event; a helper's review found each flagged. The control: the same cut
        content sent (no error, a span, no set_output, no privacy) is flagged."""
        hogtrace.configure(max_items=100)
        big = list(range(1_000))

        @hogtrace.span
        def span(fail: bool) -> None:
            hogtrace.current_span().set_output(big)
            if fail:
                raise ValueError("boom")

        @hogtrace.generation(model="m", provider="openai")
        def llm(fail: bool) -> None:
            hogtrace.current_generation().set_output(big)
            if fail:
                raise ValueError("boom")

        def items(replace: bool) -> Iterator[int]:
            if replace:
                hogtrace.current_span().set_output("summary")
            yield from big

        def chunks() -> Iterator[dict[str, Any]]:
            for i in range(6_000):
                yield {"choices": [{"index": i, "delta": {"content": "x"}}]}

        with capture_events() as events:
            for not_sent in (True, False):
                with contextlib.suppress(ValueError):
                    if case == "output then error":
                        span(not_sent)
                    elif case == "generation output then error":
                        llm(not_sent)
                    elif case == "yields after set_output":
                        list(hogtrace.span(items)(not_sent))
                    elif case == "embedding yields":  # a stream of 6,000 choices
                        kind = hogtrace.embedding if not_sent else hogtrace.generation
                        list(kind(chunks)())
                    else:
                        hogtrace.configure(privacy_mode=not_sent)
                        list(hogtrace.span(items)(False))

        first, second = events
        assert "$ai_truncated" not in first.properties
        assert second.properties["$ai_truncated"] is True

    @pytest.mark.parametrize(("choices", "items"), [(1_000, 4_004), (1_100, 4_410), (1_100, 4_420)])
    def test_many_choices_cut_where_a_snapshot_cuts(self, choices: int, items: int) -> None:
        """Text choices kept as extracted are counted as a snapshot counts them: past 1,024
        blocks (read a chunk at a time, 13 items more) they are left to the snapshot."""
        hogtrace.configure(max_items=items)
        result = {
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": f"c{i}"}}
                for i in range(choices)
            ],
        }

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[dict[str, str]]) -> dict[str, Any]:
            return result

        with capture_events() as events:
            llm([{"role": "user", "content": "hi"}])
        extracted = extract_generation(result)
        assert extracted is not None
        copy, _, walk = snapshot(extracted.output, 10**9, items)
        props = events.one().properties
        assert copy == props["$ai_output_choices"]
        assert props.get("$ai_truncated") is (True if walk.cut else None)

    def test_generation_tools_alone_cut_are_flagged(self) -> None:
        """Only the tools over max_items: the event still says it was cut."""
        hogtrace.configure(max_items=1_000)
        tools = [{"type": "function", "function": {"name": f"t{i}"}} for i in range(500)]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> str:
            return "ok"

        with capture_events() as events:
            llm([{"role": "user", "content": "hi"}], tools)

        props = events.one().properties
        assert props["$ai_tools"][-1].startswith("…[truncated ")
        assert props["$ai_truncated"] is True

    @pytest.mark.parametrize(
        "replace",
        ["set_input", "set_output", "generation set_input", "generation set_output", "yielded"],
    )
    def test_content_replaced_is_no_longer_flagged(self, replace: str) -> None:
        """A cut value that set_input() / set_output() replaced is not sent: no flag for it.

        Each case is called twice: replacing the cut value, then not (still flagged).
        """
        hogtrace.configure(max_items=100)
        big = list(range(1_000))
        messages = [{"role": "user", "content": f"m{i}"} for i in range(100)]

        @hogtrace.span
        def span(rows: list[int], replaced: bool) -> None:
            current = hogtrace.current_span()
            assert current is not None
            if replace == "set_output":
                current.set_output(big)
            if replaced:
                getattr(current, replace)("short")

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[dict[str, str]], replaced: bool) -> None:
            current = hogtrace.current_generation()
            assert current is not None
            if replace == "generation set_output":
                current.set_output(big)
            if replaced:
                getattr(current, replace.split()[1])([{"role": "user", "content": "short"}])

        @hogtrace.span
        def rows(replaced: bool) -> Iterator[int]:
            yield from big
            current = hogtrace.current_span()
            assert current is not None
            if replaced:
                current.set_output("summary")

        with capture_events() as events:
            for replaced in (True, False):
                if replace in ("set_input", "set_output"):
                    span(big if replace == "set_input" else [], replaced)
                elif replace == "yielded":
                    assert big == list(rows(replaced))
                else:
                    llm(messages if replace == "generation set_input" else [], replaced)

        first, second = events
        assert "$ai_truncated" not in first.properties
        assert second.properties["$ai_truncated"] is True
        # What replaced the cut value is sent, whole.
        replaced_value = {
            "set_input": ("input", "short"),
            "set_output": ("output", "short"),
            "generation set_input": ("input", [{"role": "user", "content": "short"}]),
            "generation set_output": ("output", [{"role": "user", "content": "short"}]),
            "yielded": ("output", "summary"),
        }
        attribute, value = replaced_value[replace]
        assert value == getattr(first, attribute)


# --- delivery through the real client -------------------------------------------------------------


@pytest.fixture
def client(capture_server: CaptureServer) -> Iterator[Any]:
    """A real posthog client to the capture server, configured as hogtrace's destination."""
    made = posthog.Posthog("phc_test", host=capture_server.url)
    try:
        hogtrace.configure(made)
        yield made
    finally:
        hogtrace.reset()
        made.shutdown()


def delivered(client: Any, server: CaptureServer) -> dict[str, dict[str, Any]]:
    """Flush hogtrace and the client; the received events by span name."""
    hogtrace.flush(timeout=10)
    client.flush()
    return {e["properties"]["$ai_span_name"]: e for e in server.events}


class TestDelivery:
    def test_huge_string_and_list_arrive(self, client: Any, capture_server: CaptureServer) -> None:
        """Truncated 3 MB and 100,000-item events reach the server: the client drops neither."""
        huge_string()
        huge_list()
        with hogtrace.span("after"):
            pass

        events = delivered(client, capture_server)
        assert {"huge_string", "huge_list", "after"} == set(events)
        for name in ("huge_string", "huge_list"):
            event = events[name]
            assert event["properties"]["$ai_truncated"] is True
            assert wire_size(event) <= POSTHOG_LIMIT
        assert STRING_CUT.search(events["huge_string"]["properties"]["$ai_output_state"])
        assert LIST_CUT.fullmatch(events["huge_list"]["properties"]["$ai_output_state"][-1])
        assert "$ai_truncated" not in events["after"]["properties"]

    def test_huge_numpy_argument_arrives_as_it_was_at_the_call(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """A 10 MB array is copied at the call and converted by the worker: the event shows
        the values of the call even when the caller overwrites the array right after it."""
        np = pytest.importorskip("numpy")
        values = np.arange(1_250_000, dtype=np.float64) / 7

        @hogtrace.span("embed")
        def embed(values: Any) -> int:
            return 1

        embed(values)
        values[:] = -1.0  # the caller reuses its buffer before the event is built

        event = delivered(client, capture_server)["embed"]
        sent = event["properties"]["$ai_input_state"]["values"]
        kept = len(sent) - 1
        # The argument's entry, an object read by itself, takes 16 items; its values the rest.
        assert DEFAULT_MAX_ITEMS - 16 == kept
        assert (np.arange(kept, dtype=np.float64) / 7).tolist() == sent[:-1]
        assert f"…[truncated {1_250_000 - kept:,} items]" == sent[-1]
        assert event["properties"]["$ai_truncated"] is True
        assert wire_size(event) <= POSTHOG_LIMIT

    def test_many_huge_events_in_one_flush(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """Several near-limit events queued together all arrive (the client splits batches)."""
        for index in range(8):
            with hogtrace.span(f"big-{index}") as s:
                s.set_output("q" * 1_000_000)

        events = delivered(client, capture_server)
        assert {f"big-{index}" for index in range(8)} == set(events)
        assert all(e["properties"]["$ai_truncated"] for e in events.values())

    def test_objects_the_client_would_null_arrive_as_text(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """Values the posthog client turns into null arrive in hogtrace's JSON-safe form."""
        value = {
            "custom": Custom(),
            "bytes": b"\x00\xff",
            "nan": float("nan"),
            "decimal": decimal.Decimal("1.10"),
            "point": Point(1, "a"),
            "enum": Color.RED,
            "array": FakeArray(),
            "hostile": Hostile(),
        }
        echo(value)

        event = delivered(client, capture_server)["echo"]
        expected = {
            "custom": "Custom(42)",
            "bytes": "<2 bytes>",
            "nan": "NaN",
            "decimal": "1.10",
            "point": {"x": 1, "label": "a"},
            "enum": "red",
            "array": [[1, 2], [3, 4]],
            "hostile": "<unrepresentable Hostile>",
        }
        assert expected == event["properties"]["$ai_output_state"]
        assert {"value": expected} == event["properties"]["$ai_input_state"]

    def test_huge_model_parameters_arrive(self, client: Any, capture_server: CaptureServer) -> None:
        """A generation with a huge ``response_format`` schema is cut and still arrives."""

        @hogtrace.generation("structured")
        def structured(messages: Any, response_format: Any) -> str:
            return "{}"

        schema = {
            "type": "json_schema",
            "properties": {f"field_{i}": "s" * 200 for i in range(8000)},
        }
        structured("hi", response_format=schema)

        event = delivered(client, capture_server)["structured"]
        assert event["properties"]["$ai_truncated"] is True
        assert wire_size(event) <= POSTHOG_LIMIT

    def test_huge_user_property_arrives(self, client: Any, capture_server: CaptureServer) -> None:
        """A span whose own properties are huge is cut to fit and still arrives."""
        with hogtrace.span("tagged", properties={"doc_ids": [["x"]] * 400_000}):
            pass

        assert "tagged" in delivered(client, capture_server)

    def test_huge_integer_arrives(self, client: Any, capture_server: CaptureServer) -> None:
        """An integer too long for ``json.dumps`` still lets its event arrive."""
        echo(10**5000)

        assert "echo" in delivered(client, capture_server)


class TestHugeIntegers:
    def test_huge_integer_content_is_valid_json(self) -> None:
        """An integer beyond Python's int-to-str limit leaves the event encodable as JSON."""
        with capture_events() as events:
            echo({"n": 10**5000})

        json.dumps(events.one().properties)


# --- properties over arbitrary values -------------------------------------------------------------


class Token:
    """Stands for a hostile object in a hypothesis example (whose repr must not raise)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"Token({self.index})"


class Loop:
    """Stands for a list that contains ``item`` and itself."""

    def __init__(self, item: Any) -> None:
        self.item = item

    def __repr__(self) -> str:
        return f"Loop({self.item!r})"


MAKERS: list[Callable[[], Any]] = [
    Hostile,
    lambda: HostileList([1]),
    lambda: HostileMapping(a=1),
    BrokenToList,
    BrokenModel,
    ReprNotStr,
    LockedDown,
    Custom,
    FakeArray,
    lambda: Message(role="user", content="hi"),
    lambda: Point(1, "p"),
]
KEYS = st.sampled_from(
    ["api_key", "Authorization", "password", "session_id", "input_tokens", "role", "content"]
) | st.text(max_size=6)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # huge ints: TestHugeIntegers
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["\ud800", "a\udfffb", "é" * 40, "\U0001f600" * 20])
    | st.binary(max_size=8)
    | st.datetimes()
    | st.uuids()
    | st.decimals()
    | st.sampled_from([Color.RED, Priority.HIGH])
    | st.integers(0, len(MAKERS) - 1).map(Token)
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.dictionaries(st.integers(), children, max_size=2)
        | st.frozensets(st.integers(), max_size=3)
        | children.map(Loop)
    ),
    max_leaves=20,
)


def build(value: Any) -> Any:
    """Turn tokens of a hypothesis example into the hostile objects they stand for."""
    if isinstance(value, Token):
        return MAKERS[value.index]()
    if isinstance(value, Loop):
        loop = [build(value.item)]
        loop.append(loop)
        return loop
    if type(value) is list:
        return [build(item) for item in value]
    if type(value) is tuple:
        return tuple(build(item) for item in value)
    if type(value) is dict:
        return {key: build(item) for key, item in value.items()}
    return value


class Obj:
    """An SDK-like response object with attributes."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)

    def __repr__(self) -> str:
        return "Obj()"


RESPONSE_SHAPES: list[Callable[[Any], Any]] = [
    lambda v: {
        "choices": [{"message": {"role": "assistant", "content": v}, "finish_reason": v}],
        "usage": {"prompt_tokens": v, "completion_tokens": 3},
        "model": v,
    },
    lambda v: {
        "content": [{"type": "text", "text": v}],
        "usage": {"input_tokens": v},
        "model": "claude",
        "stop_reason": v,
    },
    lambda v: Obj(
        choices=[Obj(message=Obj(content=v, role="assistant", tool_calls=v), finish_reason=v)],
        usage=Obj(prompt_tokens=v, completion_tokens=v, prompt_tokens_details=v),
        model=v,
    ),
    lambda v: {"output": [{"type": "message", "content": [{"type": "output_text", "text": v}]}]},
    lambda v: {"candidates": [{"content": {"parts": [{"text": v}]}}], "usage_metadata": v},
    lambda v: {"data": [{"embedding": v}], "usage": {"prompt_tokens": v}, "model": v},
]


@hogtrace.generation
def stream_of(messages: Any) -> Iterator[Any]:
    yield messages
    yield "done"


def run_every_kind(value: Any) -> list[Any]:
    """Pass ``value`` through every kind of scope; return what each call returned."""
    returned = [
        echo(value),
        echo_trace(value),
        echo_generation(value),
        echo_embedding(value),
        list(echo_items(value)),
        list(stream_of(value)),
    ]
    with hogtrace.trace("t") as t, hogtrace.span("s") as s:
        t.set_input(value)
        s.set_output(value)
    with pytest.raises(KeyError, match="boom"):
        echo_raises(KeyError("boom"))
    return returned


ARBITRARY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestArbitraryValues:
    @ARBITRARY
    @given(VALUES, st.sampled_from([1_000, 3_000, DEFAULT_LIMIT]))
    def test_events_are_valid_json_under_the_limit(self, example: Any, limit: int) -> None:
        """Any value in and out of any scope gives valid JSON events within the limit."""
        value = build(example)
        hogtrace.configure(max_event_bytes=limit)
        with capture_events() as events:
            returned = run_every_kind(value)

        assert returned[0] is value
        assert returned[2] is value
        assert 9 == len(events)
        for event in events:
            props = {k: v for k, v in event.properties.items() if k != "$ai_truncated"}
            assert size(props) <= limit  # json.dumps(allow_nan=False) also proves validity
        hogtrace.reset()

    @ARBITRARY
    @given(VALUES)
    def test_non_null_values_are_never_sent_as_null(self, example: Any) -> None:
        """A value that is not None is never recorded as null."""
        value = build(example)
        with capture_events() as events:
            echo(value)

        if value is not None:
            assert events.one().output is not None
            assert events.one().input["value"] is not None

    @ARBITRARY
    @given(VALUES, st.integers(0, len(RESPONSE_SHAPES) - 1))
    def test_provider_shaped_responses(self, example: Any, shape: int) -> None:
        """Provider-shaped responses holding any value give valid events and metrics."""
        response = RESPONSE_SHAPES[shape](build(example))

        @hogtrace.generation
        def chat(messages: Any) -> Any:
            return response

        @hogtrace.generation
        def chat_stream(messages: Any) -> Iterator[Any]:
            yield response
            yield response

        @hogtrace.embedding
        def embed(input: Any) -> Any:
            return response

        with capture_events() as events, hogtrace.trace("t") as t:
            assert chat("hi") is response
            assert all(item is response for item in chat_stream("hi"))
            assert embed("hi") is response

        assert 4 == len(events)
        for event in events:
            json.dumps(event.properties, allow_nan=False)
        assert t.metrics is not None
        assert 3 == t.metrics.generations

    @ARBITRARY
    @given(st.lists(VALUES, min_size=1, max_size=3))
    async def test_async_scopes(self, examples: list[Any]) -> None:
        """Async functions and async generators give valid JSON for any value."""
        values = [build(example) for example in examples]
        with capture_events() as events:
            results = await asyncio.gather(*(echo_async(v) for v in values))
            for value in values:
                [item async for item in echo_async_items(value)]

        assert all(r is v for r, v in zip(results, values, strict=True))
        assert 2 * len(values) == len(events)
        for event in events:
            json.dumps(event.properties, allow_nan=False)


def test_arbitrary_values_reach_the_real_client(capture_server: CaptureServer) -> None:
    """Events with hostile and exotic content are all accepted by the real posthog client."""
    values = [build(v) for v in (Token(0), Loop(Token(2)), {"x": Token(6)}, float("inf"))]
    values.append({"\ud800": b"x", 1: datetime.date(2024, 1, 1)})
    made = posthog.Posthog("phc_test", host=capture_server.url)
    try:
        hogtrace.configure(made)
        for value in values:
            echo(value)
        hogtrace.flush(timeout=10)
        made.flush()

        assert len(values) == len(capture_server.events)
        assert all(e["properties"]["$ai_output_state"] is not None for e in capture_server.events)
    finally:
        hogtrace.reset()
        made.shutdown()
