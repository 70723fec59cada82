"""OpenTelemetry GenAI spans join hogtrace scopes (``hogtrace.otel.SpanProcessor``).

Two real instrumentations (OpenTelemetry's ``opentelemetry-instrumentation-openai-v2`` and
Arize's ``openinference-instrumentation-openai``) instrument the real ``openai`` SDK calling the
local OpenAI-compatible endpoint (``tests/openai_server.py``). Each test has a private
``TracerProvider``; the global one is never set.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openinference.instrumentation import using_session
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OtelInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

import hogtrace
import hogtrace.otel
from hogtrace.testing import capture_events
from tests.openai_server import ANSWER, USAGE, OpenAIServer

SYSTEM = {"role": "system", "content": "Answer in one sentence."}
QUESTION = {"role": "user", "content": "What is PostHog?"}
IN, OUT = USAGE["chat"]


@dataclass
class Instrumented:
    """One instrumentation applied to the openai SDK, and what its spans are called."""

    name: str
    provider: TracerProvider
    client: openai.OpenAI
    server: OpenAIServer
    chat_span: str
    embedding_span: str

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("tests")

    def ask(self, content: str = QUESTION["content"], **kwargs: Any) -> Any:
        return self.client.chat.completions.create(
            model="gpt-4o-mini", messages=[SYSTEM, {"role": "user", "content": content}], **kwargs
        )


INSTRUMENTATIONS = {
    "otel-openai-v2": (OtelInstrumentor, "chat gpt-4o-mini", "embeddings text-embedding-3-small"),
    "openinference": (OpenInferenceInstrumentor, "ChatCompletion", "CreateEmbeddings"),
}


def _agent(tracer: Tracer, name: str, **attributes: Any) -> Any:
    """An `invoke_agent` span, as an agent framework's instrumentation starts it."""
    return tracer.start_as_current_span(
        name, attributes={"gen_ai.operation.name": "invoke_agent", **attributes}
    )


@pytest.fixture
def make_provider() -> Callable[..., TracerProvider]:
    """A private TracerProvider with hogtrace's processor (options passed through)."""

    def make(**options: Any) -> TracerProvider:
        provider = TracerProvider()
        provider.add_span_processor(hogtrace.otel.SpanProcessor(**options))
        return provider

    return make


def _instrument(
    which: str,
    provider: TracerProvider,
    server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Instrumented]:
    # OpenTelemetry's instrumentation records message content only when asked to.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    instrumentor_class, chat_span, embedding_span = INSTRUMENTATIONS[which]
    instrumentor = instrumentor_class()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    try:
        yield Instrumented(which, provider, client, server, chat_span, embedding_span)
    finally:
        client.close()
        instrumentor.uninstrument()
        provider.shutdown()


@pytest.fixture(params=sorted(INSTRUMENTATIONS))
def otel(
    request: pytest.FixtureRequest,
    make_provider: Callable[..., TracerProvider],
    llm_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Instrumented]:
    """The openai SDK instrumented by each instrumentation in turn, spans going to hogtrace."""
    yield from _instrument(request.param, make_provider(), llm_server, monkeypatch)


@pytest.fixture
def openinference(
    make_provider: Callable[..., TracerProvider],
    llm_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Instrumented]:
    """The openai SDK instrumented by OpenInference only."""
    yield from _instrument("openinference", make_provider(), llm_server, monkeypatch)


@pytest.fixture(autouse=True)
def _bridge_never_fails(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The processor logs no warning or error unless a test expects one."""
    caplog.set_level(logging.WARNING, logger="hogtrace.otel")
    yield
    assert [] == [r.getMessage() for r in caplog.records if r.name == "hogtrace.otel"]


class TestGenerations:
    def test_nests_under_enclosing_span(self, otel: Instrumented) -> None:
        """A model call made inside a hogtrace span is a generation whose parent is that span."""
        with capture_events() as events, hogtrace.trace("answer"), hogtrace.span("draft") as d:
            otel.ask()

        generation = events.one("generation")
        assert (d.trace_id, d.id) == (generation.trace_id, generation.parent_id)
        assert (
            f"answer [trace]\n└── draft [span]\n    └── {otel.chat_span} [generation, gpt-4o-mini"
            f", tokens in={IN} out={OUT}]"
        ) == events.tree()
        assert [] == events.open_scopes()

    def test_session_and_distinct_id(self, otel: Instrumented) -> None:
        """The generation carries the session id and distinct id of the scopes around it."""
        with (
            capture_events() as events,
            hogtrace.session("conv-1", distinct_id="user-7"),
            hogtrace.trace("turn"),
        ):
            otel.ask()

        generation = events.one("generation")
        assert ("conv-1", "user-7") == (generation.session_id, generation.distinct_id)

    def test_model_provider_and_tokens(self, otel: Instrumented) -> None:
        """Model, provider and token counts come from the span's attributes."""
        with capture_events() as events, hogtrace.trace("turn"):
            otel.ask()

        p = events.one("generation").properties
        assert ("gpt-4o-mini", "openai", IN, OUT) == (
            p["$ai_model"],
            p["$ai_provider"],
            p["$ai_input_tokens"],
            p["$ai_output_tokens"],
        )

    def test_input_and_output_messages(self, otel: Instrumented) -> None:
        """The prompt messages are the input and the reply is the output, as OpenAI messages."""
        with capture_events() as events, hogtrace.trace("turn"):
            otel.ask()

        generation = events.one("generation")
        assert [SYSTEM, QUESTION] == generation.input
        assert [{"role": "assistant", "content": ANSWER}] == generation.output

    def test_model_parameters_and_stop_reason(self, otel: Instrumented) -> None:
        """Request parameters become `$ai_model_parameters`, the finish reason the stop reason."""
        with capture_events() as events, hogtrace.trace("turn"):
            otel.ask(temperature=0.2, max_tokens=50)

        p = events.one("generation").properties
        assert {"temperature": 0.2, "max_tokens": 50} == p["$ai_model_parameters"]
        assert "stop" == p["$ai_stop_reason"]

    def test_metrics_total_the_calls(self, otel: Instrumented) -> None:
        """Bridged generations count in the enclosing scope's metrics."""
        with capture_events(), hogtrace.trace("turn") as turn:
            otel.ask()
            otel.ask("Again?")

        assert turn.metrics is not None
        assert (2 * IN, 2 * OUT, 2, 0) == (
            turn.metrics.input_tokens,
            turn.metrics.output_tokens,
            turn.metrics.generations,
            turn.metrics.errors,
        )

    def test_failed_call_is_an_error(self, otel: Instrumented) -> None:
        """A call that raised is a failed generation, with the exception's type and message."""
        with (
            capture_events() as events,
            hogtrace.trace("turn") as turn,
            pytest.raises(openai.RateLimitError),
        ):
            otel.ask("FAIL")

        generation = events.one("generation")
        assert generation.is_error
        assert generation.error.startswith("RateLimitError: Error code: 429")
        assert turn.metrics is not None
        assert 1 == turn.metrics.errors

    def test_stream(self, otel: Instrumented) -> None:
        """A streamed call is one generation, ended when the stream is consumed."""
        with capture_events() as events, hogtrace.trace("turn"):
            stream = otel.ask(stream=True, stream_options={"include_usage": True})
            chunks = list(stream)

        generation = events.one("generation")
        assert chunks
        assert (IN, OUT) == (
            generation.properties["$ai_input_tokens"],
            generation.properties["$ai_output_tokens"],
        )
        assert [{"role": "assistant", "content": ANSWER}] == generation.output

    def test_async_client(self, otel: Instrumented) -> None:
        """Calls through the async client nest under the scope of the task that made them."""

        async def main() -> None:
            client = openai.AsyncOpenAI(
                base_url=otel.server.openai_url, api_key="sk-test", max_retries=0
            )
            async with hogtrace.trace("turn"):
                await client.chat.completions.create(model="gpt-4o-mini", messages=[QUESTION])
            await client.close()

        with capture_events() as events:
            asyncio.run(main())

        assert events.one("generation").parent_id == events.one("trace").span_id

    def test_embedding(self, otel: Instrumented) -> None:
        """An embeddings call is a `$ai_embedding` with its model and input tokens."""
        with capture_events() as events, hogtrace.trace("index"):
            otel.client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])

        embedding = events.one("embedding")
        assert (otel.embedding_span, "text-embedding-3-small", USAGE["embeddings"][0]) == (
            embedding.name,
            embedding.model,
            embedding.properties["$ai_input_tokens"],
        )
        assert "$ai_output_choices" not in embedding.properties


class TestOtelParents:
    def test_agent_and_tool_spans(self, otel: Instrumented) -> None:
        """Agent and tool spans are `$ai_span`s typed by `$ai_span_type`, their calls inside."""
        tracer = otel.tracer
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            _agent(tracer, "invoke_agent planner", **{"gen_ai.agent.name": "p"}),
        ):
            otel.ask()
            with tracer.start_as_current_span(
                "execute_tool search",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search",
                    "gen_ai.tool.call.arguments": '{"q": "posthog"}',
                },
            ) as tool:
                tool.set_attribute("gen_ai.tool.call.result", '["doc-1"]')

        assert (
            "turn [trace]\n"
            "└── invoke_agent planner [span, agent]\n"
            f"    ├── {otel.chat_span} [generation, gpt-4o-mini, tokens in={IN} out={OUT}]\n"
            "    └── execute_tool search [span, tool]"
        ) == events.tree()
        tool_event = events.one(name="execute_tool search")
        assert ("tool", {"q": "posthog"}, ["doc-1"]) == (
            tool_event.properties["$ai_span_type"],
            tool_event.input,
            tool_event.output,
        )
        assert "agent" == events.one(name="invoke_agent planner").properties["$ai_span_type"]

    def test_openinference_span_kinds(self, openinference: Instrumented) -> None:
        """OpenInference CHAIN and TOOL spans become typed spans, with their input and output."""
        tracer = openinference.tracer
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            tracer.start_as_current_span(
                "rag", attributes={"openinference.span.kind": "CHAIN", "input.value": "q"}
            ) as chain,
        ):
            openinference.ask()
            chain.set_attribute("output.value", '{"answer": 42}')

        chain_event = events.one(name="rag")
        assert ("chain", "q", {"answer": 42}) == (
            chain_event.properties["$ai_span_type"],
            chain_event.input,
            chain_event.output,
        )
        assert chain_event.span_id == events.one("generation").parent_id

    def test_non_genai_spans_are_ignored(self, otel: Instrumented) -> None:
        """An HTTP span between the scope and the call sends nothing; the call nests above it."""
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            otel.tracer.start_as_current_span("GET /search", attributes={"http.method": "GET"}),
        ):
            otel.ask()

        assert f"turn [trace]\n└── {otel.chat_span} [generation, gpt-4o-mini" in events.tree()
        assert 2 == len(events)

    def test_children_follow_otel_parent_across_threads(self, otel: Instrumented) -> None:
        """A call in a thread that carries only the OTel context nests under its OTel parent."""

        def work(carried: otel_context.Context) -> None:
            token = otel_context.attach(carried)
            try:
                otel.ask()
            finally:
                otel_context.detach(token)

        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            _agent(otel.tracer, "invoke_agent worker"),
        ):
            thread = threading.Thread(target=work, args=(otel_context.get_current(),))
            thread.start()
            thread.join()

        agent = events.one(name="invoke_agent worker")
        generation = events.one("generation")
        assert (agent.trace_id, agent.span_id) == (generation.trace_id, generation.parent_id)

    def test_callers_context_is_untouched(self, otel: Instrumented) -> None:
        """Inside an OTel span, `hogtrace.current()` is still the caller's own scope."""
        with (
            capture_events(),
            hogtrace.trace("turn") as turn,
            _agent(otel.tracer, "invoke_agent a"),
        ):
            inside = hogtrace.current()

        assert turn is inside

    def test_attributes_set_after_start(self, make_provider: Callable[..., TracerProvider]) -> None:
        """A span that becomes a model call only after it started is still sent, under its scope."""
        tracer = make_provider().get_tracer("tests")
        with capture_events() as events, hogtrace.trace("turn") as turn:
            span = tracer.start_span("llm")
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "m",
                    "gen_ai.usage.input_tokens": 3,
                }
            )
            span.end()

        generation = events.one("generation")
        assert (turn.id, "m", 3) == (
            generation.parent_id,
            generation.model,
            generation.properties["$ai_input_tokens"],
        )


class TestSessions:
    def test_conversation_id_becomes_session(self, otel: Instrumented) -> None:
        """`gen_ai.conversation.id` on a span outside any hogtrace session is the session id."""
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            _agent(otel.tracer, "invoke_agent a", **{"gen_ai.conversation.id": "c9"}),
        ):
            otel.ask()

        assert {"c9"} == {e.session_id for e in events if e.event != "$ai_trace"}

    def test_hogtrace_session_wins(self, otel: Instrumented) -> None:
        """Inside a hogtrace session, the span's conversation id does not replace it."""
        with (
            capture_events() as events,
            hogtrace.session("mine"),
            hogtrace.trace("turn"),
            _agent(otel.tracer, "invoke_agent a", **{"gen_ai.conversation.id": "c9"}),
        ):
            otel.ask()

        assert {"mine"} == {e.session_id for e in events}

    def test_openinference_session(self, openinference: Instrumented) -> None:
        """OpenInference's `using_session` sets the session of a call outside any session."""
        with capture_events() as events, hogtrace.trace("turn"), using_session("oi-session"):
            openinference.ask()

        assert "oi-session" == events.one("generation").session_id

    def test_conversation_id_posthog_rejects_is_made_valid(
        self, openinference: Instrumented, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A session id with characters PostHog rejects does not lose the call (it raised, and
        the span and everything in it vanished): made valid as any computed session id is."""
        caplog.set_level(logging.DEBUG, logger="hogtrace")  # a warning at most once a minute
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            using_session("chat with alice@example.com #1"),
        ):
            openinference.ask()

        generation = events.one("generation")
        assert ("chat_with_alice@example.com__1", IN) == (
            generation.session_id,
            generation.properties["$ai_input_tokens"],
        )
        assert any("rejects" in r.getMessage() for r in caplog.records if r.name == "hogtrace")


class TestOneCallOnce:
    def test_generation_around_an_instrumented_call_is_its_span(self, otel: Instrumented) -> None:
        """A @hogtrace.generation around an instrumented SDK call: the SDK's span is the model
        call, the function is the $ai_span around it, and the tokens count once."""

        @hogtrace.generation("answer", model="gpt-4o-mini")
        def answer() -> Any:
            return otel.ask()

        with capture_events() as events, hogtrace.trace("turn") as turn:
            answer()

        assert (
            f"turn [trace]\n└── answer [span]\n    └── {otel.chat_span} [generation,"
            f" gpt-4o-mini, tokens in={IN} out={OUT}]"
        ) == events.tree()
        assert turn.metrics is not None
        assert (IN, OUT, 1) == (
            turn.metrics.input_tokens,
            turn.metrics.output_tokens,
            turn.metrics.generations,
        )

    def test_a_framework_llm_span_around_the_sdk_span_is_a_span(
        self, openinference: Instrumented
    ) -> None:
        """A framework's LLM span (LangChain's under OpenInference) around the SDK's span."""
        attributes = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}
        span = openinference.tracer.start_as_current_span("ChatOpenAI", attributes=attributes)
        with capture_events() as events, hogtrace.trace("turn") as turn, span:
            openinference.ask()

        assert ["$ai_generation", "$ai_span"] == [e.event for e in events if e.event != "$ai_trace"]
        assert turn.metrics is not None
        assert (IN, 1) == (turn.metrics.input_tokens, turn.metrics.generations)

    def test_an_embedding_inside_a_generation_leaves_it_a_generation(
        self, otel: Instrumented
    ) -> None:
        with (
            capture_events() as events,
            hogtrace.trace("turn"),
            hogtrace.generation("rerank", model="m"),
        ):
            otel.client.embeddings.create(model="text-embedding-3-small", input="x")

        assert "$ai_generation" == events.one(name="rerank").event

    def test_the_processor_added_twice_sends_once(
        self,
        llm_server: OpenAIServer,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setattr(hogtrace.otel, "_warned_twice", False)
        provider = TracerProvider()
        provider.add_span_processor(hogtrace.otel.SpanProcessor())
        provider.add_span_processor(hogtrace.otel.SpanProcessor())
        for otel in _instrument("otel-openai-v2", provider, llm_server, monkeypatch):
            with capture_events() as events, hogtrace.trace("turn"):
                otel.ask()
                otel.ask()

        assert 2 == len([e for e in events if e.event == "$ai_generation"])
        warned = [r.getMessage() for r in caplog.records if r.name == "hogtrace.otel"]
        assert 1 == len(warned)
        assert "added twice" in warned[0]
        caplog.clear()  # expected: not a bridge failure


class TestOutsideScopes:
    def test_model_call_is_standalone_generation(self, otel: Instrumented) -> None:
        """A call outside every scope is a generation in a trace of its own, with no `$ai_trace`."""
        with capture_events() as events:
            otel.ask()
            otel.ask()

        first, second = events
        assert ["$ai_generation", "$ai_generation"] == [e.event for e in events]
        assert first.trace_id == first.parent_id
        assert first.trace_id != second.trace_id

    def test_other_spans_are_ignored(self, otel: Instrumented) -> None:
        """An agent span outside every scope sends nothing; the call inside it is standalone."""
        with (
            capture_events() as events,
            _agent(otel.tracer, "invoke_agent a", **{"gen_ai.conversation.id": "c"}),
        ):
            otel.ask()

        generation = events.one()
        assert ("$ai_generation", "c", generation.trace_id) == (
            generation.event,
            generation.session_id,
            generation.parent_id,
        )

    def test_standalone_off(
        self,
        make_provider: Callable[..., TracerProvider],
        llm_server: OpenAIServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With `standalone=False`, calls outside every scope send nothing."""
        for otel in _instrument(
            "otel-openai-v2", make_provider(standalone=False), llm_server, monkeypatch
        ):
            with capture_events() as events:
                otel.ask()
                with hogtrace.trace("turn"):
                    otel.ask()

            assert ["$ai_generation", "$ai_trace"] == [e.event for e in events]


class TestHogtraceRules:
    def test_privacy_mode(self, otel: Instrumented) -> None:
        """Privacy mode sends no messages and the error type only; counts are kept."""
        with capture_events() as events:
            hogtrace.configure(privacy_mode=True)
            with hogtrace.trace("turn"):
                otel.ask()
                with pytest.raises(openai.RateLimitError):
                    otel.ask("FAIL")

        ok, failed = events.generations
        assert (None, None, IN) == (ok.input, ok.output, ok.properties["$ai_input_tokens"])
        assert "RateLimitError" == failed.error

    def test_sampled_out_trace_sends_nothing(self, otel: Instrumented) -> None:
        """Calls inside a trace that sampling dropped are dropped with it."""
        with capture_events() as events:
            hogtrace.configure(sample_rate=0.0)
            with hogtrace.trace("turn"):
                otel.ask()

        assert [] == list(events)

    def test_otel_export_unchanged(
        self, make_provider: Callable[..., TracerProvider], llm_server: OpenAIServer
    ) -> None:
        """Spans still reach the provider's other processors, attributes untouched."""
        provider = make_provider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with (
            capture_events(),
            hogtrace.trace("turn"),
            provider.get_tracer("t").start_as_current_span(
                "chat m", attributes={"gen_ai.operation.name": "chat"}
            ),
        ):
            pass

        (span,) = exporter.get_finished_spans()
        assert {"gen_ai.operation.name": "chat"} == dict(span.attributes or {})


class TestBounds:
    def test_spans_that_never_end_are_bounded(
        self, make_provider: Callable[..., TracerProvider], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Past `max_open_spans`, the oldest unfinished span's scope is closed and sent."""
        tracer = make_provider(max_open_spans=2).get_tracer("tests")
        with capture_events() as events, hogtrace.trace("turn"):
            spans = [
                tracer.start_span(f"chat {i}", attributes={"gen_ai.operation.name": "chat"})
                for i in range(3)
            ]
            assert ["chat 0"] == [e.name for e in events]
            for span in spans:
                span.end()

        assert ["chat 0", "chat 1", "chat 2", "turn"] == [e.name for e in events]
        assert 1 == len([r for r in caplog.records if r.name == "hogtrace.otel"])
        caplog.clear()

    def test_max_open_spans_must_be_positive(self) -> None:
        """`max_open_spans` below 1 is refused."""
        with pytest.raises(ValueError, match="max_open_spans"):
            hogtrace.otel.SpanProcessor(max_open_spans=0)


def _span_with(
    tracer: Tracer,
    attributes: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    status: Status | None = None,
) -> None:
    with tracer.start_as_current_span("llm", attributes=attributes) as span:
        for name, event_attributes in events:
            span.add_event(name, event_attributes)
        if status is not None:
            span.set_status(status)


class TestAttributeMapping:
    @pytest.fixture
    def tracer(self, make_provider: Callable[..., TracerProvider]) -> Tracer:
        """A tracer whose spans go to hogtrace."""
        return make_provider().get_tracer("tests")

    def test_old_usage_and_system_names(self, tracer: Tracer) -> None:
        """`gen_ai.system` and the old `prompt_tokens` / `completion_tokens` names are read."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(
                tracer,
                {
                    "gen_ai.system": "anthropic",
                    "gen_ai.response.model": "claude",
                    "gen_ai.usage.prompt_tokens": 4,
                    "gen_ai.usage.completion_tokens": 2,
                },
            )

        p = events.one("generation").properties
        assert ("claude", "anthropic", 4, 2) == (
            p["$ai_model"],
            p["$ai_provider"],
            p["$ai_input_tokens"],
            p["$ai_output_tokens"],
        )

    def test_messages_as_structured_attribute_values(self, tracer: Tracer) -> None:
        """Messages given as lists of dicts, not JSON strings (the SDK keeps them as tuples)."""
        text = {"type": "text", "content": "hi"}
        reply = {"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}
        with (
            capture_events() as events,
            hogtrace.trace("t"),
            tracer.start_as_current_span("llm") as span,
        ):
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.input.messages", [{"role": "user", "parts": [text]}])
            span.set_attribute("gen_ai.output.messages", [reply])
            kept = span.attributes.get("gen_ai.input.messages")  # type: ignore[attr-defined]

        if not kept:
            pytest.skip("this OpenTelemetry SDK drops structured attribute values")
        generation = events.one("generation")
        assert [{"role": "user", "content": "hi"}] == generation.input
        assert [{"role": "assistant", "content": "hello"}] == generation.output

    def test_old_span_events(self, tracer: Tracer) -> None:
        """`gen_ai.*.message` and `gen_ai.choice` span events are the input and output."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(
                tracer,
                {"gen_ai.operation.name": "chat"},
                [
                    ("gen_ai.system.message", {"content": "be brief"}),
                    ("gen_ai.user.message", {"content": "hi"}),
                    ("gen_ai.choice", {"message": '{"content": "hello"}', "finish_reason": "stop"}),
                ],
            )

        generation = events.one("generation")
        assert [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}] == (
            generation.input
        )
        assert [{"role": "assistant", "content": "hello"}] == generation.output
        assert "stop" == generation.properties["$ai_stop_reason"]

    def test_system_instructions_and_tool_calls(self, tracer: Tracer) -> None:
        """`gen_ai.system_instructions` leads the input; tool-call parts become `tool_calls`."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(
                tracer,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system_instructions": '[{"type": "text", "content": "be brief"}]',
                    "gen_ai.input.messages": '[{"role": "user", "parts": '
                    '[{"type": "text", "content": "weather?"}]}]',
                    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": '
                    '"tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}], '
                    '"finish_reason": "tool_call"}]',
                },
            )

        generation = events.one("generation")
        assert [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
        ] == generation.input
        assert [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            }
        ] == generation.output
        assert "tool_call" == generation.properties["$ai_stop_reason"]

    def test_flattened_prompt_attributes(self, tracer: Tracer) -> None:
        """OpenLLMetry's flattened `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` are read."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(
                tracer,
                {
                    "llm.request.type": "chat",
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "hi",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "hello",
                },
            )

        generation = events.one("generation")
        assert (
            [{"role": "user", "content": "hi"}],
            [{"role": "assistant", "content": "hello"}],
        ) == (
            generation.input,
            generation.output,
        )

    def test_error_status_and_exception_event(self, tracer: Tracer) -> None:
        """An ERROR status is a failed generation named after the recorded exception type."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(
                tracer,
                {"gen_ai.operation.name": "chat", "error.type": "timeout"},
                [("exception", {"exception.type": "httpx.ReadTimeout", "exception.message": "m"})],
                Status(StatusCode.ERROR, "m"),
            )

        assert "ReadTimeout: m" == events.one("generation").error

    def test_error_type_alone(self, tracer: Tracer) -> None:
        """`error.type` without an exception event names the error."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(tracer, {"gen_ai.operation.name": "chat", "error.type": "timeout"})

        assert events.one("generation").error.startswith("timeout")

    def test_unknown_operation_is_a_span(self, tracer: Tracer) -> None:
        """A GenAI operation that is not a model call is a span typed by the operation."""
        with capture_events() as events, hogtrace.trace("t"):
            _span_with(tracer, {"gen_ai.operation.name": "handoff"})

        assert "handoff" == events.one("span").properties["$ai_span_type"]


def test_processor_does_not_set_global_provider() -> None:
    """Importing and building the processor leaves OpenTelemetry's global provider alone."""
    hogtrace.otel.SpanProcessor()
    assert not isinstance(otel_trace.get_tracer_provider(), TracerProvider)
