"""Structural guarantees behind hogtrace's speed (no timing: what is, or is not, done per call).

The benchmark (``benchmarks/overhead.py``) measures; these tests pin the shortcuts it relies on,
and check that each shortcut changes nothing on the wire.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

import posthog
import posthog.client
import pydantic
import pytest
from posthog import new_context, tag

import hogtrace
from hogtrace import _config, _scope
from hogtrace._events import build_event
from hogtrace._interop import install
from hogtrace._sinks import PostHogSink, _DirectCapture
from tests.capture_server import CaptureServer, Clients


class _Keep:
    """A sink that keeps closed scopes with the configuration they closed under."""

    def __init__(self) -> None:
        self.closed: list[tuple[Any, Any]] = []

    def emit(self, scope: Any, config: Any) -> None:
        self.closed.append((scope, config))

    def opened(self, scope: Any) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self) -> None:
        pass


def closed_scopes(workflow: Callable[[], Any]) -> list[tuple[Any, Any]]:
    """Run ``workflow`` and return its closed scopes (with their configs), in close order."""
    keep = _Keep()
    previous = _config.start_capture(keep)  # type: ignore[arg-type]
    try:
        workflow()
    finally:
        _config.end_capture(previous)
    return keep.closed


class Model(pydantic.BaseModel):
    text: str
    when: datetime.date


@dataclasses.dataclass
class Point:
    x: int
    y: float


MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is PostHog? " * 20},
]
RESPONSE = {
    "model": "gpt-4o-mini",
    "choices": [
        {"message": {"role": "assistant", "content": "Analytics."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}
ODD_VALUES = {
    "decimal": decimal.Decimal("1.25"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "tags": ("a", "b"),
    "when": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc),
    "model": Model(text="m", when=datetime.date(2024, 5, 1)),
    "point": Point(1, 2.5),
    "nested": {"ids": [uuid.UUID(int=1)], "amount": decimal.Decimal("2")},
    "nan": float("nan"),
}


def workflow_span() -> None:
    @hogtrace.trace(properties={"team": "search"})
    def answer(question: str, limit: int = 3) -> dict[str, Any]:
        with hogtrace.span("retrieve") as step:
            step.set_output([{"id": 1, "score": 0.5}])
        return {"answer": question.upper(), "sources": ["doc-1"]}

    answer("hi")


def workflow_generation() -> None:
    @hogtrace.generation(provider="openai")
    def chat(messages: list[dict[str, str]], model: str, temperature: float = 0.2) -> Any:
        return RESPONSE

    chat(MESSAGES, model="gpt-4o-mini", temperature=0.7)


def workflow_odd_properties() -> None:
    with hogtrace.session("conv-1", distinct_id="user-7"), hogtrace.span("odd") as step:
        step.set_properties(**ODD_VALUES)
        step.set_input({"secret_api_key": "sk-1", "text": "ok"})


def workflow_error() -> None:
    @hogtrace.span
    def fails(x: list[int]) -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        fails([1, 2])


WORKFLOWS = {
    "span": workflow_span,
    "generation": workflow_generation,
    "odd properties": workflow_odd_properties,
    "error": workflow_error,
}


def _without_uuid(event: dict[str, Any]) -> str:
    """The event as sent, minus its random uuid, as JSON text (so key order counts too)."""
    return json.dumps({k: v for k, v in event.items() if k != "uuid"})


def wire_pairs(
    capture_server: CaptureServer, client: Any, closed: list[tuple[Any, Any]]
) -> list[tuple[str, str]]:
    """Send each event through the direct path, then through ``client.capture()``."""
    direct = _DirectCapture.for_client(client)
    assert direct is not None
    pairs: list[tuple[str, str]] = []
    for scope, config in closed:
        event = build_event(scope, config)
        sent = len(capture_server.events)
        direct.capture(event)
        client.flush()
        client.capture(
            event.event,
            distinct_id=event.distinct_id,
            properties=event.properties,
            timestamp=event.timestamp,
        )
        client.flush()
        fast, plain = capture_server.wait_for_events(sent + 2)[sent:]
        pairs.append((_without_uuid(fast), _without_uuid(plain)))
    return pairs


class TestDirectCaptureOnTheWire:
    @pytest.mark.parametrize("workflow", WORKFLOWS.values(), ids=WORKFLOWS.keys())
    def test_events_match_capture(
        self, workflow: Callable[[], None], capture_server: CaptureServer, clients: Clients
    ) -> None:
        """The direct path sends byte for byte the event client.capture() sends (uuid aside)."""
        client = clients()
        install(client)  # hogtrace's own before_send, as configure() installs it
        closed = closed_scopes(workflow)

        for fast, plain in wire_pairs(capture_server, client, closed):
            assert plain == fast

    @pytest.mark.parametrize("workflow", WORKFLOWS.values(), ids=WORKFLOWS.keys())
    def test_events_match_capture_with_client_options(
        self, workflow: Callable[[], None], capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Super properties, a user before_send and a redact hook change nothing either."""
        seen: list[dict[str, Any]] = []

        def before_send(msg: dict[str, Any]) -> dict[str, Any]:
            seen.append(msg)
            msg["properties"]["hooked"] = decimal.Decimal("3")
            return msg

        client = clients(
            super_properties={"app": "bench", "$ai_input": "super wins?"},
            before_send=before_send,
        )
        install(client)
        hogtrace.configure(redact=lambda value: value, properties={"env": uuid.UUID(int=2)})
        closed = closed_scopes(workflow)

        pairs = wire_pairs(capture_server, client, closed)

        for fast, plain in pairs:
            assert plain == fast
        assert 2 * len(closed) == len(seen)

    def test_events_match_capture_in_a_posthog_context(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Delivered inside PostHog's new_context(), context tags are added as capture() does."""
        client = clients()
        install(client)
        closed = closed_scopes(workflow_span)

        with new_context(capture_exceptions=False):
            tag("request", "r-1")
            pairs = wire_pairs(capture_server, client, closed)

        for fast, plain in pairs:
            assert plain == fast
        assert '"request": "r-1"' in pairs[0][0]

    def test_privacy_mode_events_match_capture(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Under privacy mode (content sent as null) the events are the same too."""
        client = clients()
        install(client)
        hogtrace.configure(privacy_mode=True)
        closed = closed_scopes(workflow_generation)

        for fast, plain in wire_pairs(capture_server, client, closed):
            assert plain == fast


class TestDirectCaptureChoice:
    def test_plain_client_gets_the_direct_path(self, clients: Clients) -> None:
        """A posthog.Posthog client is delivered to without calling capture()."""
        sink = PostHogSink(clients())

        assert isinstance(sink._direct, _DirectCapture)
        sink.shutdown()

    def test_subclass_overriding_capture_gets_capture(self, clients: Clients) -> None:
        """A client class with its own capture() is always called through capture()."""

        class Custom(posthog.Posthog):
            def capture(self, event: str, **kwargs: Any) -> Any:
                return super().capture(event, **kwargs)

        client = Custom("phc_test", host=clients.server.url)
        try:
            sink = PostHogSink(client)
            assert sink._direct is None
            sink.shutdown()
        finally:
            client.shutdown()

    def test_capture_replaced_on_the_instance_is_called(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """capture() replaced on the client after configure() is what receives the events."""
        client = clients()
        hogtrace.configure(client)
        calls: list[str] = []
        real = client.capture

        def capture(event: str, **kwargs: Any) -> Any:
            calls.append(event)
            return real(event, **kwargs)

        client.capture = capture

        workflow_span()
        hogtrace.flush(timeout=10)

        assert ["$ai_span", "$ai_trace"] == calls
        assert 2 == len(capture_server.events)

    def test_system_context_is_computed_once_per_client(
        self, monkeypatch: pytest.MonkeyPatch, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Delivering events does not recompute PostHog's system context for each of them."""
        hogtrace.configure(clients())
        workflow_span()  # the sink exists, and its client's context was read once
        hogtrace.flush(timeout=10)
        calls: list[int] = []
        real = posthog.client.system_context

        def counting() -> dict[str, Any]:
            calls.append(1)
            return real()

        monkeypatch.setattr(posthog.client, "system_context", counting)

        for _ in range(3):
            workflow_span()
        hogtrace.flush(timeout=10)

        assert [] == calls
        assert 8 == len(capture_server.events)
        assert {real()["$os"]} == {e["properties"]["$os"] for e in capture_server.events}


class TestCallingThread:
    def test_immutable_arguments_and_results_are_not_serialized(
        self, monkeypatch: pytest.MonkeyPatch, hogtrace_events: Any
    ) -> None:
        """Scalar arguments and return values need no JSON-safe copy: they cannot change."""
        calls: list[object] = []
        real = _scope.to_json_safe

        def counting(value: object) -> Any:
            calls.append(value)
            return real(value)

        monkeypatch.setattr(_scope, "to_json_safe", counting)

        @hogtrace.span(name="step")
        def step(a: int, b: str, c: float = 0.5, d: bool | None = None) -> str:
            return b * a

        @hogtrace.trace(name="none")
        def none() -> None:
            return None

        step(2, "x")
        none()

        assert [] == calls
        spans = {e.name: e.properties for e in hogtrace_events}
        assert {"a": 2, "b": "x", "c": 0.5, "d": None} == spans["step"]["$ai_input_state"]
        assert "xx" == spans["step"]["$ai_output_state"]
        assert {} == spans["none"]["$ai_input_state"]

    def test_mutable_arguments_are_still_snapshotted(self, hogtrace_events: Any) -> None:
        """A list argument mutated after the call is recorded as it was at the call."""
        items = [1, 2]

        @hogtrace.span
        def step(values: list[int], label: str) -> int:
            values.append(3)
            return len(values)

        step(items, "l")

        assert {"values": [1, 2], "label": "l"} == hogtrace_events.one().properties[
            "$ai_input_state"
        ]

    @pytest.mark.parametrize("value", [2**63, -(2**70), float("inf"), float("nan"), True])
    def test_huge_or_non_finite_numbers_go_through_the_serializer(
        self, value: object, monkeypatch: pytest.MonkeyPatch, hogtrace_events: Any
    ) -> None:
        """Only numbers that fit 64 bits skip to_json_safe; the serializer decides the rest."""
        calls: list[object] = []
        real = _scope.to_json_safe

        def counting(item: object) -> Any:
            calls.append(item)
            return real(item)

        monkeypatch.setattr(_scope, "to_json_safe", counting)

        @hogtrace.span
        def number() -> object:
            return value

        number()

        expected = [] if value is True else [value]
        assert repr(expected) == repr(calls)

    def test_non_finite_float_result_is_still_made_json_safe(self, hogtrace_events: Any) -> None:
        """A NaN return value is spelled as a string, not passed through."""

        @hogtrace.span
        def ratio() -> float:
            return float("nan")

        ratio()

        assert "NaN" == hogtrace_events.one().properties["$ai_output_state"]
