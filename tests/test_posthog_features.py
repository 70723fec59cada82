"""What PostHog reads that hogtrace sends: span types, prompt links, session ids, errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from posthog.ai import PromptResult

import hogtrace
from hogtrace.testing import CapturedEvents


class TestSpanTypes:
    def test_kind_sets_span_type(self, hogtrace_events: CapturedEvents) -> None:
        """``span(kind=...)`` sends ``$ai_span_type`` and the tree shows it."""
        with hogtrace.trace("t"), hogtrace.span("search", kind="retriever"):
            pass

        assert "retriever" == hogtrace_events.one(name="search").properties["$ai_span_type"]
        assert "t [trace]\n└── search [span, retriever]" == hogtrace_events.tree()

    def test_tool_and_agent_shorthands(self, hogtrace_events: CapturedEvents) -> None:
        """``@hogtrace.tool`` and ``@hogtrace.agent`` are spans of those kinds."""

        @hogtrace.tool
        def get_weather(city: str) -> str:
            return "sunny"

        @hogtrace.agent("weather-bot")
        def run(task: str) -> str:
            return get_weather("Paris")

        run("weather?")

        types = {e.name: e.properties.get("$ai_span_type") for e in hogtrace_events}
        assert {
            "weather-bot": "agent",
            "TestSpanTypes.test_tool_and_agent_shorthands.get_weather": "tool",
        } == types

    def test_plain_span_has_no_type(self, hogtrace_events: CapturedEvents) -> None:
        """A span without a kind sends no ``$ai_span_type``."""
        with hogtrace.span("s"):
            pass

        assert "$ai_span_type" not in hogtrace_events.one().properties

    @pytest.mark.parametrize("kind", ["", 3])
    def test_bad_kind_fails_at_decoration(self, kind: Any) -> None:
        """A kind that is not a non-empty string raises ``TypeError`` at once."""
        with pytest.raises(TypeError, match="kind"):
            hogtrace.span("s", kind=kind)


class TestPromptLinks:
    def test_prompt_result_from_posthog(self, hogtrace_events: CapturedEvents) -> None:
        """A prompt fetched from PostHog with metadata links the generation to its version."""
        prompt = PromptResult(source="api", prompt="Be brief.", name="support", version=3)

        @hogtrace.generation(model="m", prompt=prompt)
        def chat(messages: list[dict[str, str]]) -> str:
            return "ok"

        chat([{"role": "user", "content": "hi"}])

        props = hogtrace_events.one().properties
        assert ("support", 3) == (props["$ai_prompt_name"], props["$ai_prompt_version"])

    def test_code_fallback_is_not_linked(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A prompt that came from a code fallback is not linked (said at debug level)."""
        caplog.set_level(logging.DEBUG, logger="hogtrace")
        prompt = PromptResult(source="code_fallback", prompt="Be brief.")

        with hogtrace.generation("g", prompt=prompt):
            pass

        assert "$ai_prompt_name" not in hogtrace_events.one().properties
        assert any("not linked" in r.getMessage() for r in caplog.records)

    def test_set_prompt(self, hogtrace_events: CapturedEvents) -> None:
        """``set_prompt(name, version)`` links a generation from inside it."""
        with hogtrace.generation("g") as g:
            g.set_prompt("support", 4)

        props = hogtrace_events.one().properties
        assert ("support", 4) == (props["$ai_prompt_name"], props["$ai_prompt_version"])

    def test_bad_prompt_fails_at_decoration(self) -> None:
        """Something that is not a prompt raises ``TypeError`` at decoration time."""
        with pytest.raises(TypeError, match="prompt"):
            hogtrace.generation(prompt=42)


class TestSessionIds:
    def test_literal_invalid_id_raises(self) -> None:
        """A literal session id PostHog would reject raises ``ValueError`` at decoration."""
        with pytest.raises(ValueError, match="session id"):
            hogtrace.session("conv 1/2")

    def test_computed_invalid_id_is_made_valid_the_same_way(
        self, hogtrace_events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A computed invalid id is logged and sent with ``_`` for each rejected character."""
        # A warning at most once a minute (another test may have had it), else at DEBUG.
        caplog.set_level(logging.DEBUG, logger="hogtrace")

        @hogtrace.session(id=lambda chat: chat)
        def handle(chat: str) -> None:
            with hogtrace.span("s"):
                pass

        handle("conv 1/2")
        handle("conv 1/2")

        assert ["conv_1_2", "conv_1_2"] == [e.session_id for e in hogtrace_events]
        assert any("PostHog rejects" in r.getMessage() for r in caplog.records)


class TestErrorType:
    def test_error_type_is_the_class_name(self, hogtrace_events: CapturedEvents) -> None:
        """A failed scope sends ``$ai_error_type`` with ``$ai_error``."""
        with pytest.raises(KeyError), hogtrace.span("s"):
            raise KeyError("k")

        props = hogtrace_events.one().properties
        assert ("KeyError", "KeyError: 'k'") == (props["$ai_error_type"], props["$ai_error"])


class TestBaseUrl:
    def test_wrapped_sdk_method_sends_its_clients_base_url(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """Wrapping ``client.chat.completions.create`` sends the client's ``$ai_base_url``."""
        import openai

        from tests.openai_server import OpenAIServer

        server = OpenAIServer()
        client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test")
        try:
            create = hogtrace.generation(client.chat.completions.create)
            create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        finally:
            client.close()
            server.close()

        props = hogtrace_events.one().properties
        assert (f"{server.openai_url}/", "gpt-4o-mini") == (
            props["$ai_base_url"],
            props["$ai_model"],
        )
        assert {"role": "user", "content": "hi"} == props["$ai_input"][0]

    def test_embedding_has_http_status(self, hogtrace_events: CapturedEvents) -> None:
        """Embeddings send ``$ai_http_status`` as generations do."""
        with hogtrace.embedding("e") as e:
            e.set_output({"object": "list", "data": [], "usage": {"prompt_tokens": 2}})

        assert 200 == hogtrace_events.one().properties["$ai_http_status"]
