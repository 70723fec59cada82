"""Tests for ``hogtrace.testing``: ``capture_events()`` and the captured event objects."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import posthog
import pydantic
import pytest
from freezegun import freeze_time

import hogtrace
from hogtrace import _ids, _state
from hogtrace.testing import CapturedEvent, CapturedEvents, capture_events
from tests.capture_server import CaptureServer

UTC = datetime.timezone.utc


@hogtrace.span
def retrieve(query: str) -> list[str]:
    return [f"doc about {query}"]


@hogtrace.generation(model="gpt-4o", provider="openai")
def chat(messages: list[dict[str, str]]) -> str:
    scope = hogtrace.current()
    assert isinstance(scope, hogtrace.GenerationScope)
    scope.set_usage(input_tokens=12, output_tokens=5)
    return "Paris"


@hogtrace.embedding(model="text-embedding-3-small")
def embed(input: list[str]) -> list[list[float]]:
    return [[0.0] for _ in input]


@hogtrace.trace
def answer(question: str) -> str:
    embed([question])
    retrieve(question)
    return chat([{"role": "user", "content": question}])


@hogtrace.span
def stream(n: int) -> Iterator[int]:
    yield from range(n)


@pytest.fixture
def client(capture_server: CaptureServer) -> Iterator[posthog.Posthog]:
    """A real PostHog client pointed at the local capture server."""
    ph = posthog.Posthog("phc_test", host=capture_server.url)
    try:
        yield ph
    finally:
        ph.shutdown()


class TestCaptureEvents:
    def test_records_synchronously(self) -> None:
        """An event is in the list as soon as its scope closes, without flushing."""
        with capture_events() as events:
            retrieve("q")
            assert ["$ai_trace"] == [e.event for e in events]

    def test_emission_order(self) -> None:
        """Events are listed children first, in the order their scopes closed."""
        with capture_events() as events:
            answer("q")

        assert [
            ("$ai_embedding", "embed"),
            ("$ai_span", "retrieve"),
            ("$ai_generation", "chat"),
            ("$ai_trace", "answer"),
        ] == [(e.event, e.name) for e in events]

    def test_yields_captured_events(self) -> None:
        """The block gets a ``CapturedEvents`` list of ``CapturedEvent`` objects."""
        with capture_events() as events:
            retrieve("q")

        assert isinstance(events, CapturedEvents)
        assert isinstance(events[0], CapturedEvent)

    def test_restores_configuration(self) -> None:
        """The configuration in place before the capture is back after it."""
        hogtrace.configure(distinct_id="user-1")
        before = _state.state

        with capture_events():
            hogtrace.configure(distinct_id="user-2", properties={"tenant": "a"})

        assert before is _state.state

    def test_restores_configuration_on_error(self) -> None:
        """The configuration and the id source come back when the block raises."""
        before = _state.state
        ids_before = _ids._id_source

        def fail() -> None:
            with capture_events():
                retrieve("q")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            fail()

        assert (before, ids_before) == (_state.state, _ids._id_source)

    def test_keeps_the_rest_of_the_configuration(self) -> None:
        """Privacy mode, default distinct id and global properties still apply."""
        hogtrace.configure(privacy_mode=True, distinct_id="user-1", properties={"env": "test"})

        with capture_events() as events:
            retrieve("secret query")

        event = events.one()
        assert ("user-1", "test", None) == (
            event.distinct_id,
            event.properties["env"],
            event.properties["$ai_input_state"],
        )

    def test_redaction_applies(self) -> None:
        """Captured events are redacted as sent events would be."""
        with capture_events() as events, hogtrace.span("login") as s:
            s.set_input({"user": "ada", "password": "hunter2"})

        assert {"user": "ada", "password": "[REDACTED]"} == events.one().input

    def test_configure_inside_keeps_capturing(self) -> None:
        """``configure()`` inside the block changes options but not the destination."""
        with capture_events() as events:
            hogtrace.configure(distinct_id="user-2")
            retrieve("q")

        assert "user-2" == events.one().distinct_id
        assert _state.state.config.distinct_id is None

    def test_capture_records_even_when_tracing_is_disabled(self) -> None:
        """A capture records although tracing was disabled before it (in a conftest, say)."""
        hogtrace.configure(enabled=False)

        with capture_events() as events:
            assert ["doc about q"] == retrieve("q")

        assert ["retrieve"] == [e.name for e in events]

    def test_disabling_inside_a_capture_disables(self) -> None:
        """``configure(enabled=False)`` inside a capture turns decorators into pass-throughs."""
        with capture_events() as events:
            hogtrace.configure(enabled=False)
            assert ["doc about q"] == retrieve("q")

        assert [] == events

    def test_nested_captures(self) -> None:
        """An inner capture records its own events; the outer one resumes after it."""
        with capture_events() as outer:
            retrieve("a")
            with capture_events() as inner:
                retrieve("b")
            retrieve("c")

        assert (["a", "c"], ["b"]) == (
            [e.input["query"] for e in outer],
            [e.input["query"] for e in inner],
        )

    def test_events_from_other_threads(self) -> None:
        """Scopes closed in other threads are recorded too."""
        with capture_events() as events, hogtrace.trace("fan-out"):
            worker = threading.Thread(target=hogtrace.propagate(retrieve), args=("q",))
            worker.start()
            worker.join()

        assert "fan-out [trace]\n└── retrieve [span]" == events.tree()

    def test_scope_opened_before_the_capture(self) -> None:
        """A scope that opened before the capture and closes inside it is recorded."""
        numbers = stream(2)
        assert 0 == next(numbers)

        with capture_events() as events:
            assert [1] == list(numbers)

        assert ("stream [trace]", []) == (events.tree(), events.open_scopes())

    def test_scope_closing_after_the_capture(self) -> None:
        """A scope that closes after the capture ended is not recorded."""
        with hogtrace.trace("outer"), capture_events() as events:
            pass

        assert [] == events

    def test_never_sends(self, client: posthog.Posthog, capture_server: CaptureServer) -> None:
        """Events of a configured client's scopes stay in memory."""
        hogtrace.configure(client)

        with capture_events() as events:
            answer("q")
            hogtrace.flush()
        client.flush()

        assert (4, []) == (len(events), capture_server.requests)

    def test_never_builds_a_client_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, capture_server: CaptureServer
    ) -> None:
        """``POSTHOG_API_KEY`` in the environment does not make a capture send anything."""
        monkeypatch.setenv("POSTHOG_API_KEY", "phc_env")
        monkeypatch.setenv("POSTHOG_HOST", capture_server.url)

        with capture_events() as events:
            answer("q")
            hogtrace.flush()

        assert (4, None, []) == (len(events), _state.state.sink, capture_server.requests)

    def test_does_not_import_pytest(self) -> None:
        """``hogtrace.testing`` works in programs without pytest."""
        code = "import sys, hogtrace.testing; print('pytest' in sys.modules)"

        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )

        assert "False" == out.stdout.strip()


class TestDeterministicIds:
    @staticmethod
    def run() -> list[tuple[Any, ...]]:
        with capture_events() as events, hogtrace.session():
            answer("q")
            hogtrace.metric("score", 1)
            answer("q")
        return [
            (e.trace_id, e.span_id, e.parent_id, e.session_id, e.distinct_id, e.uuid)
            for e in events
        ]

    def test_same_ids_every_time(self) -> None:
        """The same workflow captured twice gets the same ids."""
        assert self.run() == self.run()

    def test_ids_are_uuids(self) -> None:
        """Deterministic ids keep the UUID shape PostHog expects."""
        ids = {i for row in self.run() for i in row if i is not None}

        assert all(uuid.UUID(i).version == 4 for i in ids)

    def test_uuids_differ_from_span_ids(self) -> None:
        """An event's uuid never equals a span id."""
        rows = self.run()

        assert not {r[5] for r in rows} & {r[1] for r in rows}

    def test_random_ids_after_the_capture(self) -> None:
        """Ids are random again once the capture ends."""
        with capture_events():
            pass
        with hogtrace.trace("t") as t:
            pass

        assert not t.trace_id.startswith("00000000-")


class TestFreezegun:
    def test_timestamps_are_the_frozen_time(self) -> None:
        """Each event's timestamp is the frozen time when its scope closed."""
        with (
            freeze_time("2024-05-01 12:00:00") as frozen,
            capture_events() as events,
            hogtrace.trace("t"),
        ):
            frozen.tick(1.5)

        assert datetime.datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC) == events[0].timestamp

    def test_latency_is_what_was_ticked(self) -> None:
        """Nested scopes measure exactly the ticks inside them."""
        with (
            freeze_time("2024-05-01") as frozen,
            capture_events() as events,
            hogtrace.trace("outer"),
        ):
            frozen.tick(0.25)
            with hogtrace.span("inner"):
                frozen.tick(0.1)
            with hogtrace.span("instant"):
                pass

        assert {"inner": 0.1, "instant": 0.0, "outer": 0.35} == {e.name: e.latency for e in events}

    async def test_async_latency_is_what_was_ticked(self) -> None:
        """Coroutines measure exactly the ticks inside them."""

        @hogtrace.span(name="inner")
        async def inner(frozen: Any) -> None:
            await asyncio.sleep(0)
            frozen.tick(0.125)

        with freeze_time("2024-05-01") as frozen, capture_events() as events:
            async with hogtrace.trace("outer"):
                frozen.tick(0.25)
                await inner(frozen)
                await asyncio.gather(inner(frozen), inner(frozen))

        # The two gathered calls overlap: the second also spans the first one's tick.
        assert [0.125, 0.125, 0.25, 0.625] == [e.latency for e in events]

    def test_generator_latency(self) -> None:
        """A generator's scope measures from its first item to its end."""

        @hogtrace.span(name="numbers")
        def numbers(frozen: Any) -> Iterator[int]:
            frozen.tick(0.5)
            yield 1
            frozen.tick(0.25)

        with freeze_time("2024-05-01") as frozen, capture_events() as events:
            for _ in numbers(frozen):
                frozen.tick(10)  # the caller's loop body counts too: the generator is open

        assert 10.75 == events.one().latency

    def test_time_to_first_token(self) -> None:
        """A stream's time to first token is what was ticked before its first chunk."""

        @hogtrace.generation(name="stream", model="m")
        def chunks(frozen: Any) -> Iterator[str]:
            frozen.tick(0.2)
            yield "Pa"
            frozen.tick(0.3)
            yield "ris"

        with freeze_time("2024-05-01") as frozen, capture_events() as events:
            assert ["Pa", "ris"] == list(chunks(frozen))

        event = events.one()
        assert (0.2, 0.5) == (
            event.properties["$ai_time_to_first_token"],
            event.latency,
        )

    def test_hogtrace_imported_after_freeze_time(self) -> None:
        """Freezing also works when hogtrace is first imported inside ``freeze_time``."""
        code = textwrap.dedent(
            """
            import datetime, sys
            from freezegun import freeze_time

            assert "hogtrace" not in sys.modules
            with freeze_time("2024-05-01 12:00:00") as frozen:
                import hogtrace
                from hogtrace.testing import capture_events

                with capture_events() as events:
                    with hogtrace.trace("outer"):
                        frozen.tick(0.25)
                        with hogtrace.span("inner"):
                            frozen.tick(0.5)
            expected = datetime.datetime(2024, 5, 1, 12, 0, 0, 750000, datetime.timezone.utc)
            assert [("inner", 0.5), ("outer", 0.75)] == [(e.name, e.latency) for e in events]
            assert all(expected == e.timestamp for e in events)
            print("ok")
            """
        )

        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )

        assert ("ok", "") == (out.stdout.strip(), out.stderr)


class TestCapturedEvent:
    def test_helpers(self) -> None:
        """The helpers read the ``$ai_*`` properties."""
        with (
            freeze_time("2024-05-01") as frozen,
            capture_events() as events,
            hogtrace.session("conv-1"),
            hogtrace.trace("t") as t,
        ):
            frozen.tick(0.5)
            chat([{"role": "user", "content": "capital?"}])

        generation = events.generations.one()
        assert (
            "chat",
            t.trace_id,
            t.trace_id,
            "conv-1",
            0.0,
            False,
            None,
            "gpt-4o",
            [{"role": "user", "content": "capital?"}],
            [{"role": "assistant", "content": "Paris"}],
        ) == (
            generation.name,
            generation.trace_id,
            generation.parent_id,
            generation.session_id,
            generation.latency,
            generation.is_error,
            generation.error,
            generation.model,
            generation.input,
            generation.output,
        )
        trace = events.traces.one()
        assert (t.trace_id, None, 0.5, None, None) == (
            trace.span_id,
            trace.parent_id,
            trace.latency,
            trace.input,
            trace.output,
        )

    def test_error_helpers(self) -> None:
        """``is_error`` and ``error`` describe a failed scope."""
        with capture_events() as events, pytest.raises(KeyError), hogtrace.span("lookup"):
            raise KeyError("k")

        assert (True, "KeyError: 'k'") == (events[0].is_error, events[0].error)

    def test_is_a_frozen_pydantic_model(self) -> None:
        """Events validate, dump and refuse changes like any frozen pydantic model."""
        with capture_events() as events:
            retrieve("q")

        event = events[0]
        assert event == CapturedEvent.model_validate(event.model_dump())
        with pytest.raises(pydantic.ValidationError):
            event.event = "$ai_span"  # type: ignore[misc]

    def test_repr_is_compact(self) -> None:
        """The repr names the event without dumping its properties."""
        with capture_events() as events, pytest.raises(ValueError, match="x"), hogtrace.span("a"):
            raise ValueError("x")

        assert (
            "CapturedEvent(event='$ai_trace', name='a',"
            " span_id='00000000-0000-4000-8000-000000000001', parent_id=None,"
            " error='ValueError: x')"
        ) == repr(events[0])

    def test_as_dict_normalized(self) -> None:
        """The normalized dict replaces what changes from run to run by placeholders."""
        with capture_events() as events:
            retrieve("q")

        assert {
            "event": "$ai_trace",
            "distinct_id": "00000000-0000-4000-8000-000000000001",
            "properties": {
                "$ai_trace_id": "00000000-0000-4000-8000-000000000001",
                "$ai_span_id": "00000000-0000-4000-8000-000000000001",
                "$ai_span_name": "retrieve",
                "$ai_latency": "<latency>",
                "$ai_lib": "hogtrace",
                "$ai_lib_version": "<version>",
                "$ai_input_state": {"query": "q"},
                "$ai_output_state": ["doc about q"],
                "$process_person_profile": False,
            },
            "timestamp": "<timestamp>",
            "uuid": "<uuid>",
        } == events[0].as_dict()

    def test_as_dict_raw(self) -> None:
        """``normalize=False`` keeps the real values."""
        with freeze_time("2024-05-01"), capture_events() as events:
            retrieve("q")

        raw = events[0].as_dict(normalize=False)
        assert (
            "2024-05-01T00:00:00+00:00",
            "00000000-0000-4000-a000-000000000001",
            hogtrace.__version__,
            0.0,
        ) == (
            raw["timestamp"],
            raw["uuid"],
            raw["properties"]["$ai_lib_version"],
            raw["properties"]["$ai_latency"],
        )


class TestCapturedEvents:
    def test_filters_by_type(self) -> None:
        """Each event type has its own filter."""
        with capture_events() as events:
            answer("q")
            with hogtrace.trace("t"):
                hogtrace.metric("score", 1)
                hogtrace.feedback("good")

        assert (["answer", "t"], ["retrieve"], ["chat"], ["embed"], 1, 1) == (
            [e.name for e in events.traces],
            [e.name for e in events.spans],
            [e.name for e in events.generations],
            [e.name for e in events.embeddings],
            len(events.metrics),
            len(events.feedback),
        )

    def test_of_accepts_short_names(self) -> None:
        """``of("span")`` is ``of("$ai_span")``."""
        with capture_events() as events:
            answer("q")

        assert events.of("$ai_generation") == events.of("generation") == events.generations

    def test_named_and_chaining(self) -> None:
        """Filters return ``CapturedEvents`` and chain."""
        with capture_events() as events, hogtrace.trace("t"):
            retrieve("a")
            with hogtrace.span("other"):
                retrieve("b")

        found = events.spans.named("retrieve")
        assert isinstance(found, CapturedEvents)
        assert [{"query": "a"}, {"query": "b"}] == [e.input for e in found]

    def test_errors(self) -> None:
        """``errors`` keeps the failed scopes."""
        with capture_events() as events, hogtrace.trace("t"):
            with pytest.raises(ValueError, match="no"), hogtrace.span("bad"):
                raise ValueError("no")
            retrieve("q")

        assert ["bad"] == [e.name for e in events.errors]

    def test_children_of(self) -> None:
        """``children_of`` lists the events directly inside another."""
        with capture_events() as events:
            answer("q")

        assert ["embed", "retrieve", "chat"] == [
            e.name for e in events.children_of(events.traces.one())
        ]

    def test_slices_stay_captured_events(self) -> None:
        """A slice keeps the filters."""
        with capture_events() as events:
            answer("q")

        assert ["retrieve"] == [e.name for e in events[:2].spans]

    def test_one(self) -> None:
        """``one`` returns the single match of a type and name."""
        with capture_events() as events:
            answer("q")

        assert (
            events.one("span", name="retrieve")
            is events.one(name="retrieve")
            is events.spans.one()
            is events[1]
        )

    def test_one_finds_none(self) -> None:
        """With no match, ``one`` fails showing what was captured."""
        with capture_events() as events:
            answer("q")

        with pytest.raises(AssertionError) as info:
            events.one("span", name="rerank")

        assert (
            "expected exactly one $ai_span named 'rerank', found none\n"
            "captured 4 events:\n"
            "answer [trace]\n"
            "├── embed [embedding, text-embedding-3-small]\n"
            "├── retrieve [span]\n"
            "└── chat [generation, gpt-4o, tokens in=12 out=5]"
        ) == str(info.value)

    def test_one_finds_several(self) -> None:
        """With several matches, ``one`` lists them."""
        with capture_events() as events:
            retrieve("a")
            retrieve("b")

        with pytest.raises(AssertionError) as info:
            events.one()

        assert str(info.value).startswith(
            "expected exactly one event, found 2\n"
            "  CapturedEvent(event='$ai_trace', name='retrieve',"
            " span_id='00000000-0000-4000-8000-000000000001', parent_id=None)\n"
            "  CapturedEvent(event='$ai_trace', name='retrieve',"
            " span_id='00000000-0000-4000-8000-000000000002', parent_id=None)\n"
            "captured 2 events:\n"
        )

    def test_one_on_a_filter_shows_everything(self) -> None:
        """``one`` on a filtered list shows the whole capture."""
        with capture_events() as events:
            retrieve("q")

        with pytest.raises(AssertionError, match=r"captured 1 event:\nretrieve \[trace\]$"):
            events.generations.one()

    def test_one_on_nothing(self) -> None:
        """With nothing captured, the message says so."""
        with capture_events() as events:
            pass

        with pytest.raises(AssertionError, match=r"found none\ncaptured 0 events:\n\(nothing\)$"):
            events.one("trace")

    def test_repr_is_compact(self) -> None:
        """The repr lists each event's type and name."""
        with capture_events() as events:
            answer("q")
            hogtrace.metric("score", 1, trace_id="t-1")

        assert (
            "<CapturedEvents: $ai_embedding embed, $ai_span retrieve, $ai_generation chat,"
            " $ai_trace answer, $ai_metric score>",
            "<CapturedEvents: none>",
        ) == (repr(events), repr(events.feedback))

    def test_as_dicts(self) -> None:
        """``as_dicts`` gives every event as a normalized dict."""
        with capture_events() as events:
            answer("q")

        dicts = events.as_dicts()
        assert ["<latency>"] * 4 == [d["properties"]["$ai_latency"] for d in dicts]
        assert dicts == [e.as_dict() for e in events]

    def test_open_scopes(self) -> None:
        """A started generator is open until it is closed."""
        with capture_events() as events:
            numbers = stream(3)
            assert 0 == next(numbers)
            open_now = [s.name for s in events.open_scopes()]
            numbers.close()

        assert (["stream"], []) == (open_now, events.open_scopes())

    def test_open_scopes_of_a_plain_list(self) -> None:
        """A ``CapturedEvents`` built by hand has no open scopes."""
        assert [] == CapturedEvents().open_scopes()


class TestWrapperEvents:
    def test_client_events_are_recorded_not_sent(
        self, client: posthog.Posthog, capture_server: CaptureServer
    ) -> None:
        """An ``$ai_*`` event captured through the configured client joins the scope."""
        import posthog.ai.openai  # noqa: F401 - PostHog's wrappers in use: the hook is installed

        hogtrace.configure(client)

        with (
            freeze_time("2024-05-01 12:00:00"),
            capture_events() as events,
            hogtrace.trace("answer") as t,
        ):
            client.capture(
                "$ai_generation",
                distinct_id="user-1",
                properties={"$ai_model": "gpt-4o-mini", "$ai_output_tokens": 2},
            )
        client.flush()

        generation = events.generations.one()
        assert (
            [],
            t.trace_id,
            t.trace_id,
            datetime.datetime(2024, 5, 1, 12, tzinfo=UTC),
            "00000000-0000-4000-a000-000000000001",
            "<os>",
        ) == (
            capture_server.requests,
            generation.trace_id,
            generation.parent_id,
            generation.timestamp,
            generation.uuid,
            generation.as_dict()["properties"]["$os"],
        )
        assert "answer [trace]\n└── gpt-4o-mini [generation, tokens out=2]" == events.tree()

    def test_openai_wrapper(self, client: posthog.Posthog, capture_server: CaptureServer) -> None:
        """A ``posthog.ai.openai`` call inside a trace is recorded under it."""
        from posthog.ai.openai import OpenAI

        def respond(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200,
                json={
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "gpt-4o-mini",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "Paris"},
                        }
                    ],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
                },
            )

        hogtrace.configure(client)
        http = httpx.Client(transport=httpx.MockTransport(respond))
        openai = OpenAI(api_key="sk-test", posthog_client=client, http_client=http)
        try:
            with capture_events() as events, hogtrace.trace("answer"):
                openai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "capital?"}]
                )
        finally:
            http.close()
        client.flush()

        assert "answer [trace]\n└── gpt-4o-mini [generation, tokens in=7 out=1]" == events.tree()
        assert [] == capture_server.requests

    def test_string_timestamps_with_z(self) -> None:
        """A message whose timestamp ends in ``Z`` is parsed as UTC."""
        with capture_events() as events:
            events._capture.wrapper_event(  # type: ignore[union-attr]
                {
                    "event": "$ai_generation",
                    "distinct_id": "u",
                    "properties": {},
                    "timestamp": "2024-05-01T12:00:00Z",
                }
            )

        assert datetime.datetime(2024, 5, 1, 12, tzinfo=UTC) == events[0].timestamp
