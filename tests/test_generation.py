"""Generations and embeddings: ``$ai_generation`` / ``$ai_embedding`` events through scopes.

`_extract` has its own unit tests (tests/test_extract.py); here every provider shape goes through
a decorated function or a ``with`` block, built with the real SDK types where one exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import anthropic.types as at
import httpx
import openai
import posthog
import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

import hogtrace
from hogtrace import _errors, _extract, _generation, _names, _serialize
from hogtrace._extract import format_input
from hogtrace._serialize import count_items, to_json_safe
from hogtrace.testing import CapturedEvent, CapturedEvents, capture_events
from tests.capture_server import CaptureServer
from tests.hostile import Hostile

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOKEN_KEYS = (
    "$ai_input_tokens",
    "$ai_output_tokens",
    "$ai_cache_read_input_tokens",
    "$ai_cache_creation_input_tokens",
    "$ai_reasoning_tokens",
)


# --- provider responses, built with the real SDK types -------------------------------------------


def chat_completion(usage: dict[str, Any] | None = None, **message: Any) -> ChatCompletion:
    """An OpenAI chat completion (tool call, cached and reasoning tokens unless overridden)."""
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                    **message,
                },
            }
        ],
        "usage": usage
        if usage is not None
        else {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }
    return ChatCompletion.model_validate(data)


CHAT_OUTPUT = [
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "function",
                "id": "call_1",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
        ],
    }
]

RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1.0,
    "model": "gpt-4.1-2025-04-14",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 20,
        "output_tokens": 9,
        "total_tokens": 29,
        "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 5},
    },
}

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 30,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
    },
}

# google-genai's GenerateContentResponse as a dict (``response.model_dump()``).
GEMINI = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "Sunny "}, {"text": "today."}]},
            "finish_reason": "STOP",
        }
    ],
    "usage_metadata": {
        "prompt_token_count": 40,
        "candidates_token_count": 6,
        "cached_content_token_count": 32,
        "thoughts_token_count": 12,
        "total_token_count": 58,
    },
    "model_version": "gemini-2.5-flash",
}


def chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> Any:
    """An OpenAI ``ChatCompletionChunk``; ``delta=None`` gives the usage-only last chunk."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": choices,
            **extra,
        }
    )


OPENAI_CHUNKS = [
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"content": "Sun"}),
    chat_chunk({"content": "ny."}),
    chat_chunk({}, "stop"),
]
OPENAI_USAGE_CHUNK = chat_chunk(
    None,
    usage={
        "prompt_tokens": 9,
        "completion_tokens": 4,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 2},
    },
)

_ANTHROPIC_EVENTS: list[tuple[type[Any], dict[str, Any]]] = [
    (
        at.RawMessageStartEvent,
        {
            "type": "message_start",
            "message": {
                **MESSAGE,
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 12,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 50,
                },
            },
        },
    ),
    (
        at.RawContentBlockStartEvent,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        at.RawContentBlockDeltaEvent,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sun"}},
    ),
    (
        at.RawContentBlockDeltaEvent,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ny."}},
    ),
    (at.RawContentBlockStopEvent, {"type": "content_block_stop", "index": 0}),
    (
        at.RawMessageDeltaEvent,
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
    ),
    (at.RawMessageStopEvent, {"type": "message_stop"}),
]
ANTHROPIC_STREAM = [cls.model_validate(data) for cls, data in _ANTHROPIC_EVENTS]

GEMINI_CHUNKS = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Sun"}]}}],
        "usage_metadata": {"prompt_token_count": 40, "candidates_token_count": 1},
        "model_version": "gemini-2.5-flash",
    },
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ny."}]}, "finish_reason": "STOP"}
        ],
        "usage_metadata": {"prompt_token_count": 40, "candidates_token_count": 2},
        "model_version": "gemini-2.5-flash",
    },
]

EMBEDDING = CreateEmbeddingResponse.model_validate(
    {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1234567, -0.7654321]},
            {"object": "embedding", "index": 1, "embedding": [0.3141592, 0.2718281]},
        ],
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
)


def rate_limit_error() -> openai.RateLimitError:
    """The error the OpenAI SDK raises for a 429, with a real ``httpx.Response``."""
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    response = httpx.Response(
        429,
        request=request,
        json={"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
    )
    return openai.RateLimitError("Rate limit reached", response=response, body=None)


GENERATION_KEYS = (
    "$ai_model",
    "$ai_provider",
    *TOKEN_KEYS,
    "$ai_stop_reason",
    "$ai_cache_reporting_exclusive",
    "$ai_http_status",
    "$ai_stream",
)


def tokens(event: CapturedEvent) -> dict[str, Any]:
    """The token counts an event carries."""
    return {k: event.properties[k] for k in TOKEN_KEYS if k in event.properties}


def props(event: CapturedEvent, *keys: str) -> dict[str, Any]:
    """The given properties of an event (absent ones left out)."""
    return {k: event.properties[k] for k in keys if k in event.properties}


@hogtrace.generation
def bare_ask(messages: list[dict[str, str]]) -> str:
    return "hi"


@hogtrace.embedding
def bare_embed(input: list[str]) -> CreateEmbeddingResponse:
    return EMBEDDING


@pytest.fixture
def events(hogtrace_events: CapturedEvents) -> CapturedEvents:
    """The plugin's fixture (which also fails a test that leaves a scope open), named short."""
    return hogtrace_events


# --- forms ----------------------------------------------------------------------------------------


class TestGenerationForms:
    def test_bare_decorator(self, events: CapturedEvents) -> None:
        """A bare decorator emits one $ai_generation named after the function's qualname."""
        result = bare_ask(USER)
        expected = ("hi", [("$ai_generation", "bare_ask")])
        assert expected == (result, [(e.event, e.name) for e in events])

    def test_positional_name(self, events: CapturedEvents) -> None:
        """A positional name becomes $ai_span_name."""

        @hogtrace.generation("llm-call")
        def ask(messages: list[dict[str, str]]) -> str:
            return "hi"

        ask(USER)
        expected = "llm-call"
        assert expected == events.generations[0].name

    def test_keywords(self, events: CapturedEvents) -> None:
        """Keyword options set name, model, provider and base url."""

        @hogtrace.generation(
            name="llm", model="my-model", provider="acme", base_url="http://mock.local/v1/"
        )
        def ask(messages: list[dict[str, str]]) -> str:
            return "hi"

        ask(USER)
        expected = {
            "$ai_span_name": "llm",
            "$ai_model": "my-model",
            "$ai_provider": "acme",
            "$ai_base_url": "http://mock.local/v1/",
        }
        assert expected == props(events.one(), *expected)

    def test_credentials_in_the_base_url_are_redacted(self, events: CapturedEvents) -> None:
        """A proxy's ``user:password@`` in the base URL (given, or read from the SDK client) is
        not sent; the rest of the URL is."""

        @hogtrace.generation(base_url="https://proxy:hunter2@llm.internal/v1")
        def ask(messages: list[dict[str, str]]) -> str:
            return "hi"

        ask(USER)
        client = openai.OpenAI(
            api_key="sk-x", base_url="http://proxy:hunter2@127.0.0.1:9/v1", max_retries=0
        )
        create = hogtrace.generation(client.chat.completions.create)  # reads the client's url
        with pytest.raises(openai.APIConnectionError):  # nothing listens there
            create(model="gpt-4o-mini", messages=USER)

        urls = [e.properties["$ai_base_url"] for e in events]
        assert ["https://[REDACTED]@llm.internal/v1", "http://[REDACTED]@127.0.0.1:9/v1/"] == urls

    def test_with_block(self, events: CapturedEvents) -> None:
        """A with block is a generation named by its argument, or "generation" without one."""
        with hogtrace.generation("named") as g:
            g.set_output("a")
        with hogtrace.generation() as g:
            g.set_output("b")
        expected = ["named", "generation"]
        assert expected == [e.name for e in events.generations]

    async def test_async_with_block(self, events: CapturedEvents) -> None:
        """An async with block emits a generation."""
        async with hogtrace.generation("g", model="m") as g:
            await asyncio.sleep(0)
            g.set_output("done")
        expected = [{"role": "assistant", "content": "done"}]
        assert expected == events.one().properties["$ai_output_choices"]

    async def test_async_function(self, events: CapturedEvents) -> None:
        """An async generation closes after the await and reads the awaited response."""

        @hogtrace.generation
        async def ask(messages: list[dict[str, str]]) -> Any:
            await asyncio.sleep(0)
            return at.Message.model_validate(MESSAGE)

        result = await ask(USER)
        assert isinstance(result, at.Message)
        expected = {"$ai_model": "claude-sonnet-4-5", "$ai_provider": "anthropic"}
        assert expected == props(events.one(), "$ai_model", "$ai_provider")

    def test_method_input_excludes_self(self, events: CapturedEvents) -> None:
        """On a method without a messages argument, $ai_input is the arguments without self."""

        class Bot:
            @hogtrace.generation
            def ask(self, question: str, language: str = "en") -> str:
                return "hi"

        Bot().ask("why?")
        expected = {"question": "why?", "language": "en"}
        assert expected == events.one().properties["$ai_input"]

    def test_classmethod_and_staticmethod(self, events: CapturedEvents) -> None:
        """Classmethods and staticmethods are generations whose $ai_input is the messages."""

        class Client:
            @hogtrace.generation(name="cls")
            @classmethod
            def create(cls, messages: list[dict[str, str]]) -> Any:
                return chat_completion()

            @hogtrace.generation(name="static")
            @staticmethod
            def complete(messages: list[dict[str, str]]) -> Any:
                return chat_completion()

        Client.create(USER)
        Client().complete(USER)
        expected = [("cls", USER, 11), ("static", USER, 11)]
        assert expected == [
            (e.name, e.properties["$ai_input"], e.properties["$ai_input_tokens"]) for e in events
        ]

    def test_each_use_is_a_fresh_scope(self, events: CapturedEvents) -> None:
        """One spec used twice opens two scopes with distinct span ids."""
        spec = hogtrace.generation("g")
        with spec:
            pass
        with spec:
            pass
        expected = 2
        assert expected == len({e.span_id for e in events.generations})


class TestEmbeddingForms:
    def test_bare_decorator(self, events: CapturedEvents) -> None:
        """A bare embedding decorator emits $ai_embedding and returns the response unchanged."""
        assert EMBEDDING is bare_embed(["a", "b"])
        expected = ["bare_embed"]
        assert expected == [e.name for e in events.embeddings]

    def test_positional_and_keywords(self, events: CapturedEvents) -> None:
        """Name, model and provider given to the decorator appear on the event."""

        @hogtrace.embedding("vec", model="my-embedder", provider="acme")
        def embed(input: list[str]) -> list[list[float]]:
            return [[0.5]]

        embed(["a"])
        expected = {"$ai_span_name": "vec", "$ai_model": "my-embedder", "$ai_provider": "acme"}
        assert expected == props(events.one(), *expected)

    async def test_async_with_and_async_function(self, events: CapturedEvents) -> None:
        """Async with blocks and async functions emit embeddings."""

        @hogtrace.embedding("embed")
        async def embed(input: list[str]) -> CreateEmbeddingResponse:
            return EMBEDDING

        await embed(["a"])
        async with hogtrace.embedding("block") as e:
            e.set_output(EMBEDDING)
        expected = [("embed", 5), ("block", 5)]
        assert expected == [(e.name, e.properties["$ai_input_tokens"]) for e in events.embeddings]


# --- input, parameters, tools ---------------------------------------------------------------------


class TestGenerationInput:
    def test_input_argument(self, events: CapturedEvents) -> None:
        """$ai_input is the messages / prompt / input argument alone."""

        @hogtrace.generation
        def chat(messages: list[dict[str, str]], model: str = "m") -> str:
            return "hi"

        @hogtrace.generation
        def complete(prompt: str, model: str = "m") -> str:
            return "hi"

        @hogtrace.generation
        def respond(input: str, model: str = "m") -> str:
            return "hi"

        chat(USER)
        complete("Say hi")
        respond("Say hi")
        expected = [USER, "Say hi", [{"role": "user", "content": "Say hi"}]]
        assert expected == [e.properties["$ai_input"] for e in events]

    def test_messages_iterator_reaches_the_function_whole(self, events: CapturedEvents) -> None:
        """Messages given as an iterator are the function's to read, not consumed by tracing."""

        @hogtrace.generation
        def chat(messages: Iterator[dict[str, str]], model: str = "m") -> list[dict[str, str]]:
            return list(messages)

        expected = USER
        assert expected == chat(iter(USER))

    def test_messages_str_is_one_input(self, events: CapturedEvents) -> None:
        """Messages given as a str are sent as given, not as one message per character."""

        @hogtrace.generation
        def chat(messages: str, model: str = "m") -> str:
            return "hi"

        chat("Say hi")
        expected = "Say hi"
        assert expected == events.one().properties["$ai_input"]

    def test_bound_arguments_without_an_input_argument(self, events: CapturedEvents) -> None:
        """Without messages/prompt/input, $ai_input is every bound argument, defaults applied."""

        @hogtrace.generation
        def ask(question: str, k: int = 3) -> str:
            return "hi"

        ask("why?")
        expected = {"question": "why?", "k": 3}
        assert expected == events.one().properties["$ai_input"]

    def test_input_is_a_snapshot(self, events: CapturedEvents) -> None:
        """Appending to the messages list after the call does not change the recorded input."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> str:
            messages.append({"role": "assistant", "content": "hi"})
            return "hi"

        history = list(USER)
        ask(history)
        expected = USER
        assert expected == events.one().properties["$ai_input"]

    def test_input_messages_are_a_snapshot(self, events: CapturedEvents) -> None:
        """Changing the message dicts in the call or after it does not change the input."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> str:
            messages[0]["content"] = "changed in the call"
            messages[1]["name"] = "ann"
            return "hi"

        history = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        ]
        expected = [dict(message) for message in history]
        ask(history)
        history[1]["content"] = "changed after the call"
        history[2]["content"] = "rain"
        assert expected == events.one().properties["$ai_input"]

    def test_model_parameters_from_arguments(self, events: CapturedEvents) -> None:
        """The usual request keywords become $ai_model_parameters; other arguments do not."""

        @hogtrace.generation
        def ask(
            messages: list[dict[str, str]],
            model: str = "gpt-4o",
            temperature: float = 0.2,
            max_tokens: int = 100,
            top_p: float = 0.9,
            stop: list[str] | None = None,
            user: str = "u1",
        ) -> str:
            return "hi"

        ask(USER, stop=["\n"])
        expected = {"temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "stop": ["\n"]}
        assert expected == events.one().properties["$ai_model_parameters"]

    @pytest.mark.parametrize(
        "params",
        [
            {"temperature": 0.2},
            {"temperature": 0, "seed": 7, "stream": False, "stop": None, "reasoning_effort": "low"},
            {"temperature": float("nan"), "seed": 2**60, "top_p": float("inf")},
            {"max_tokens": -(2**53), "n": 2**53 - 1},
            {"stop": ["\n"], "response_format": {"type": "json_object"}},
            {"tool_choice": b"auto", "top_k": True},
        ],
    )
    def test_model_parameters_as_a_snapshot_gives_them(
        self, events: CapturedEvents, params: dict[str, Any]
    ) -> None:
        """Plain values are sent as they are, others as a snapshot makes them; keys in order."""

        @hogtrace.generation(model_parameters={"top_p": 0.5})
        def ask(messages: list[dict[str, str]], **params: Any) -> str:
            return "hi"

        @hogtrace.generation
        def bare(messages: list[dict[str, str]], **params: Any) -> str:
            return "hi"

        ask(USER, **params)
        bare(USER, **params)
        call = {k: params[k] for k in _generation.MODEL_PARAMETERS if k in params}
        expected = [{"top_p": 0.5, **to_json_safe(call)}, to_json_safe(call)]
        got = [e.properties["$ai_model_parameters"] for e in events]
        assert [list(p.items()) for p in expected] == [list(p.items()) for p in got]

    def test_decorator_model_parameters_are_merged_under_the_call(
        self, events: CapturedEvents
    ) -> None:
        """The decorator's model_parameters are kept, and the call's own values win."""

        @hogtrace.generation(model_parameters={"temperature": 1.0, "seed": 7})
        def ask(messages: list[dict[str, str]], temperature: float = 0.0) -> str:
            return "hi"

        ask(USER, temperature=0.5)
        expected = {"temperature": 0.5, "seed": 7}
        assert expected == events.one().properties["$ai_model_parameters"]

    def test_no_model_parameters_no_property(self, events: CapturedEvents) -> None:
        """A call without any model parameter sends no $ai_model_parameters."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> str:
            return "hi"

        ask(USER)
        assert "$ai_model_parameters" not in events.one().properties

    def test_tools_argument(self, events: CapturedEvents) -> None:
        """A tools argument becomes $ai_tools."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> Any:
            return chat_completion()

        ask(USER, tools=TOOLS)
        expected = TOOLS
        assert expected == events.one().properties["$ai_tools"]

    def test_tools_holding_long_ints(self, events: CapturedEvents) -> None:
        """Their long ints are printed by the event builder, as an argument's are."""
        tools = [{"type": "function", "function": {"name": "f", "seed": 10**500}}]
        recorded: list[Any] = []

        @hogtrace.generation
        def ask(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> Any:
            recorded.append(hogtrace.current_generation().tools)  # type: ignore[attr-defined]
            return chat_completion()

        ask(USER, tools=tools)
        assert _serialize.AsText is type(recorded[0][0]["function"]["seed"])
        assert to_json_safe(tools) == events.one().properties["$ai_tools"]

    def test_model_argument(self, events: CapturedEvents) -> None:
        """The model argument wins over the response's model; the decorator's over both."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]], model: str) -> Any:
            return chat_completion()

        @hogtrace.generation(model="pinned")
        def pinned(messages: list[dict[str, str]], model: str) -> Any:
            return chat_completion()

        ask(USER, model="gpt-4o")
        pinned(USER, model="gpt-4o")
        expected = ["gpt-4o", "pinned"]
        assert expected == [e.properties["$ai_model"] for e in events]

    def test_var_keyword_arguments(self, events: CapturedEvents) -> None:
        """A pass-through ``**kwargs`` wrapper still yields messages, model and parameters."""

        @hogtrace.generation
        def create(**kwargs: Any) -> Any:
            return chat_completion()

        create(model="gpt-4o", messages=USER, temperature=0.3, tools=TOOLS)
        expected = {
            "$ai_input": USER,
            "$ai_model": "gpt-4o",
            "$ai_model_parameters": {"temperature": 0.3},
            "$ai_tools": TOOLS,
        }
        assert expected == props(events.one(), *expected)

    def test_capture_flags(self, events: CapturedEvents) -> None:
        """capture_input / capture_output False leave out content but keep tokens."""

        @hogtrace.generation(capture_input=False, capture_output=False)
        def ask(messages: list[dict[str, str]]) -> Any:
            return chat_completion()

        ask(USER)
        event = events.one()
        assert "$ai_input" not in event.properties
        assert "$ai_output_choices" not in event.properties
        expected = 11
        assert expected == event.properties["$ai_input_tokens"]

    def test_set_input_in_with_block(self, events: CapturedEvents) -> None:
        """set_input on a generation sets $ai_input."""
        with hogtrace.generation("g") as g:
            g.set_input(USER)
        expected = USER
        assert expected == events.one().properties["$ai_input"]


class Level(enum.IntEnum):
    HIGH = 3


class Quoted(str):
    def __repr__(self) -> str:
        return f"Quoted({str.__repr__(self)})"


class TestInputItemsThatAreNoMessage:
    """An input item that is no message is sent as its ``str()``, as posthog's converters do."""

    SMALL = (
        [0.5, 0.25],
        (1, 2),
        [float("nan")],
        [{"a": (1,)}],
        [[1, "x"]],
        [Level.HIGH, Quoted("q")],
        5,
        None,
        "s",
    )

    @pytest.mark.parametrize(
        ("provider", "key"), [("openai", "messages"), ("openai", "input"), ("gemini", "contents")]
    )
    def test_each_is_its_string(self, events: CapturedEvents, provider: str, key: str) -> None:
        """Plain lists (made strings by the event builder) and others (made strings now)."""

        @hogtrace.generation(model="m", provider=provider)
        def llm(**arguments: Any) -> str:
            return "ok"

        llm(**{key: list(self.SMALL)})
        sent = events.one().properties["$ai_input"]
        assert format_input(provider, {key: list(self.SMALL)}) == sent
        assert "[0.5, 0.25]" == sent[0]["content"]
        assert "(1, 2)" == sent[1]["content"]

    def test_the_string_is_of_the_item_at_the_call(self, events: CapturedEvents) -> None:
        """Made later, the string is still of the list as it was when the call began."""

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[list[float]]) -> str:
            messages[0].append(9.0)
            return "ok"

        llm([[0.5, 1.5]])
        assert [{"role": "user", "content": "[0.5, 1.5]"}] == events.one().properties["$ai_input"]

    def test_a_huge_item_is_cut_as_a_value(self, events: CapturedEvents) -> None:
        """A list of 1.25M floats as the one message: its first items and the count left out.

        Its whole string (25 MB, ~0.6 s to make) is not made: the string is of the copy a
        snapshot takes of it, cut at ``max_items`` like the list itself.
        """
        floats = [i / 7 for i in range(1_250_000)]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: list[list[float]]) -> str:
            return "ok"

        llm([floats])
        event = events.one()
        (message,) = event.properties["$ai_input"]
        text = message["content"]
        head, _, marker = text.rpartition(", '…[truncated ")
        kept = head.count(", ") + 1
        assert str(floats[:kept])[:-1] == head
        assert f"{1_250_000 - kept:,} items]']" == marker
        assert 4_000 < kept < 5_000  # max_items (5,000), less what the message takes
        assert event.properties["$ai_truncated"] is True

    @pytest.mark.parametrize("kind", [list, tuple])
    def test_many_items_each_its_string(self, events: CapturedEvents, kind: type) -> None:
        """125,000 lists of 10 floats: as many as ``max_items`` holds, each its own string."""
        rows = kind([i + j / 10 for j in range(10)] for i in range(125_000))

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm(rows)
        event = events.one()
        sent = event.properties["$ai_input"]
        *messages, marker = sent
        assert [{"role": "user", "content": str(row)} for row in rows[: len(messages)]] == messages
        assert f"…[truncated {125_001 - len(sent):,} items]" == marker
        assert 4 * len(messages) == 5_000  # each a message of two strings, as a chat message
        assert event.properties["$ai_truncated"] is True

    @pytest.mark.parametrize(
        ("make", "limit"),
        [
            (lambda i: [i / 7, i / 3], None),
            (lambda i: (i, -i, True, None), None),
            (lambda i: [f"tok{i}", "it's"], None),
            (lambda i: [i / 7] * 1_000, None),  # long rows: cut by size first
            (lambda i: [i / 7] * 10, 20_000),
            (lambda i: [float("nan"), 2**70], 20_000),
            (lambda i: {"role": "user", "content": "hi"} if i == 5 else [i], None),
            (lambda i: [i] * 2_000 if i == 5 else [i], None),  # one row too long to print later
            (lambda i: [[i]], None),  # not flat
            (lambda i: [f"t{j}" for j in range(100)], None),  # many strings: later, copied
            (lambda i: ["x" * 3_000, f"{i}"], None),  # long strings: later, copied
            (lambda i: tuple(f"t{j}" for j in range(100)), None),  # a tuple of them: at once
            (lambda i: [f"t{i}", 1.5], None),  # strings and numbers: at once
            (lambda i: [10**40 + i] * 8, None),  # ints of 41 digits: printed later
            (lambda i: [10**100 + i, 0.5], None),  # an int of 101 digits: a row left later
        ],
        ids=[
            "floats",
            "tuples",
            "strings",
            "long",
            "limit",
            "nan",
            "a dict",
            "long row",
            "nested",
            "many strings",
            "long strings",
            "string tuple",
            "mixed",
            "41 digits",
            "101 digits",
        ],
    )
    @pytest.mark.parametrize("count", [17, 1_000, 20_000])
    def test_rows_as_the_whole_input_gives(
        self,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
        make: Any,
        limit: int | None,
        count: int,
    ) -> None:
        """Rows printed by the event builder give the event formatting them all gives."""
        if limit is not None:
            hogtrace.configure(max_event_bytes=limit)
        rows = [make(i) for i in range(count)]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        def run() -> tuple[Any, Any]:
            events.clear()
            llm(rows)
            props = events.one().properties
            return props["$ai_input"], props.get("$ai_truncated")

        bounded = run()
        general_paths(monkeypatch)
        assert run() == bounded

    @pytest.mark.parametrize(
        ("provider", "make"),
        [
            ("openai", lambda x: {"messages": x, "system": "S"}),
            ("openai", lambda x: {"messages": x, "system": "S", "instructions": "B"}),
            ("openai", lambda x: {"input": x, "instructions": "B"}),
            ("openai", lambda x: {"input": x, "system": ["not", "text"]}),
            ("gemini", lambda x: {"contents": x, "config": {"system_instruction": "S"}}),
            ("openai", lambda x: {"messages": [*x, {"role": "system", "content": "s"}]}),
            (
                "openai",
                lambda x: {"messages": [*x, {"role": "system", "content": "s"}], "system": "S"},
            ),
        ],
        ids=["system", "both", "instructions", "blocks", "gemini", "late", "late beside"],
    )
    @pytest.mark.parametrize(
        "row",
        [lambda i: [i / 7] * 10, lambda i: f"m{i}", lambda i: i / 7],
        ids=["rows", "str", "float"],
    )
    @pytest.mark.parametrize("count", [17, 1_000, 20_000])
    def test_beside_a_system_prompt(
        self,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
        provider: str,
        make: Any,
        row: Any,
        count: int,
    ) -> None:
        """Items no formatter makes a system message of, beside a system prompt: as whole.

        Except past the 10,000 items the call reads for a system message (2 per `max_items`):
        one there takes the prompt's message out when the event is built, and the head, cut
        with it, may keep one message fewer.
        """
        arguments = make([row(i) for i in range(count)])
        bounded, whole = bounded_and_whole(events, monkeypatch, provider, arguments)
        if whole == bounded:
            return
        items = len(arguments.get("messages") or arguments.get("input") or ())
        assert items > 10_000  # a system message past those read: one message fewer
        (*kept, marker), (*whole_kept, _) = bounded[0], whole[0]
        assert (whole_kept[: len(kept)], len(kept) + 1) == (kept, len(whole_kept))
        assert f"…[truncated {items - len(kept):,} items]" == marker

    @pytest.mark.parametrize(
        ("provider", "make"),
        [
            ("openai", lambda x: {"messages": x, "system": "S"}),
            ("openai", lambda x: {"messages": x, "system": "S", "instructions": "B"}),
            ("openai", lambda x: {"input": x, "instructions": "B"}),
            ("gemini", lambda x: {"contents": x, "config": {"system_instruction": "S"}}),
        ],
        ids=["system", "both", "instructions", "gemini"],
    )
    @pytest.mark.parametrize(
        "row",
        [
            lambda i: [i / 7] * 10,
            lambda i: f"m{i}",
            lambda i: {"role": "user", "content": f"m{i}"},
            lambda i: {"role": "user", "parts": [{"text": f"m{i}"}]},
            lambda i: genai_types().Content(role="user", parts=[genai_types().Part(text=f"m{i}")]),
            lambda i: response_item(i),
        ],
        ids=["rows", "str", "dicts", "parts", "Content", "Responses items"],
    )
    @pytest.mark.parametrize(
        "system_at",
        [None, 3, 900, 1_001, 4_999],
        ids=["none", "head", "read", "after", "last"],
    )
    def test_a_system_message_past_those_read(
        self,
        system_at: int | None,
        row: Any,
        provider: str,
        make: Any,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Past the items the call reads for one (2 per `max_items`), the event builder looks:
        a system message there takes the prompt's out, as formatting the whole input does."""
        hogtrace.configure(max_items=500)  # the call reads 1,000 items for a system message
        items = [row(i) for i in range(5_000)]
        if system_at is not None:
            items[system_at] = {"role": "system", "content": "late"}
        ((*bounded, marker), cut), ((*whole, whole_marker), whole_cut) = bounded_and_whole(
            events, monkeypatch, provider, make(items)
        )
        assert cut is whole_cut is True
        if system_at is None:  # the prompt's message first, as formatting the whole gives
            assert (bounded, marker) == (whole, whole_marker)
            return
        # The prompt's message out; the room it took the head may leave one message unkept.
        assert whole[0].get("role") != "system"
        assert whole[: len(bounded)] == bounded
        assert len(whole) - 1 <= len(bounded) <= len(whole)
        assert f"…[truncated {5_000 - len(bounded):,} items]" == marker

    def test_a_system_message_past_those_read_is_looked_for_later(
        self, events: CapturedEvents
    ) -> None:
        """The call leaves the items past those it reads to the event builder, which reads
        as many as the call had: a chat history appended to in between changes nothing."""
        hogtrace.configure(max_items=500)
        items: list[Any] = [f"m{i}" for i in range(5_000)]
        recorded: list[Any] = []

        @hogtrace.generation(model="m", provider="openai")
        def llm(**arguments: Any) -> str:
            recorded.append(hogtrace.current_generation()._input)  # type: ignore[attr-defined]
            items.append({"role": "system", "content": "appended during the call"})
            return "ok"

        llm(messages=items, system="S")
        assert type(recorded[0]) is _extract.LaterSystem
        later = recorded[0]
        assert items[1_000:5_000] == later.items[later.start : later.stop]  # copied at the call
        *messages, marker = events.one().properties["$ai_input"]
        assert {"role": "system", "content": "S"} == messages[0]
        assert {"role": "user", "content": "m0"} == messages[1]
        assert f"…[truncated {5_001 - len(messages):,} items]" == marker

    @pytest.mark.parametrize("provider", ["openai", "gemini"])
    def test_a_langchain_system_message_past_those_read(
        self, events: CapturedEvents, monkeypatch: pytest.MonkeyPatch, provider: str
    ) -> None:
        """In a list of strings a LangChain ``SystemMessage`` formats as a user's message (only
        a list of them all is LangChain's): the prompt's message stays, as formatting the
        whole list gives."""
        hogtrace.configure(max_items=500)
        items: list[Any] = [f"m{i}" for i in range(5_000)]
        items[3_000] = SystemMessage("late")
        key, prompt = (
            ("messages", {"system": "S"})
            if provider == "openai"
            else ("contents", {"config": {"system_instruction": "S"}})
        )

        @hogtrace.generation(model="m", provider=provider)
        def llm(**arguments: Any) -> str:
            return "ok"

        def run() -> Any:
            events.clear()
            llm(**{key: items}, **prompt)
            return events.one().properties["$ai_input"]

        bounded = run()
        general_paths(monkeypatch)
        assert run() == bounded
        assert {"role": "system", "content": "S"} == bounded[0]

    def test_langchain_chat_messages_beside_a_system_prompt(
        self, events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A list of LangChain messages is formatted as LangChain's, which adds no prompt: a
        ``ChatMessage`` with a system role past those read takes none out."""
        hogtrace.configure(max_items=100)
        items = [ChatMessage(role="user", content=f"m{i}") for i in range(5_000)]
        items[4_000] = ChatMessage(role="system", content="late")
        bounded, whole = bounded_and_whole(
            events, monkeypatch, "openai", {"messages": items, "system": "S"}
        )
        assert whole == bounded
        assert "m0" == bounded[0][0]["content"]

    def test_a_history_rewritten_during_the_call(self, events: CapturedEvents) -> None:
        """An agent loop that compacts its history in place inside the call: the event has the
        input as it was at the call (the items past those read are copied then)."""
        hogtrace.configure(max_items=100)
        history: list[Any] = [response_item(2 * i + 1) for i in range(150)]
        at_call = list(history)

        @hogtrace.generation(model="m", provider="openai")
        def llm(**arguments: Any) -> str:
            history[:] = [*history[:40], {"role": "system", "content": "summary"}, *history[-60:]]
            return "ok"

        llm(input=history, instructions="B")
        *messages, marker = events.one().properties["$ai_input"]
        whole = format_input("openai", {"input": at_call, "instructions": "B"})
        assert whole[: len(messages)] == messages
        assert {"role": "system", "content": "B"} == messages[0]
        assert f"…[truncated {len(whole) - len(messages):,} items]" == marker

    def test_items_of_two_messages_beside_a_system_prompt(self, events: CapturedEvents) -> None:
        """An item that formats as two messages (LangChain's, two to a prompt): nothing is
        taken out for a system message later, since no prompt's message was put first."""
        hogtrace.configure(max_items=100)
        items: list[Any] = [[HumanMessage(f"h{i}"), AIMessage(f"a{i}")] for i in range(3_000)]
        items[2_000] = {"role": "system", "content": "late"}

        @hogtrace.generation(model="m", provider="openai")
        def llm(**arguments: Any) -> str:
            return "ok"

        llm(messages=items, system="S")
        assert "h0" == events.one().properties["$ai_input"][0]["content"]

    def test_past_those_read_when_a_wrapper_made_the_call(self, events: CapturedEvents) -> None:
        """A generation that became a span (posthog's wrapper captured the call inside it)
        sends the input as its state, resolved as the generation's would be."""
        hogtrace.configure(max_items=100)
        items: list[Any] = [f"m{i}" for i in range(1_000)]
        items[900] = {"role": "system", "content": "late"}

        @hogtrace.generation(model="m", provider="openai")
        def ask(messages: Any, system: str) -> str:
            hogtrace.current_generation().wraps_model_call()
            return "hi"

        ask(items, system="S")
        state = events.one().properties["$ai_input_state"]
        assert {"role": "user", "content": "m0"} == state[0]  # the prompt's message taken out
        assert state[-1].startswith("…[truncated ")

    def test_a_hostile_role_past_those_read(
        self,
        events: CapturedEvents,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A role that raises when compared: logged, and the event keeps the head as read."""
        monkeypatch.setattr(_errors, "STRICT", False)  # as in production: logged
        hogtrace.configure(max_items=500)
        items: list[Any] = [f"m{i}" for i in range(5_000)]
        items[3_000] = {"role": Hostile(), "content": "x"}

        @hogtrace.generation(model="m", provider="openai")
        def llm(**arguments: Any) -> str:
            return "ok"

        assert "ok" == llm(messages=items, system="S")
        messages = events.one().properties["$ai_input"]
        assert {"role": "system", "content": "S"} == messages[0]
        assert "looking for a system message" in caplog.text

    def test_long_rows_past_the_limits(self, events: CapturedEvents) -> None:
        """Past the limits, a row is cut at a value's end, or printed whole and cut to fit."""

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        many = [[j + i / 7 for i in range(1_000)] for j in range(1_000)]
        llm(many)
        event = events.one()
        *messages, marker = event.properties["$ai_input"]
        assert f"…[truncated {1_000 - len(messages):,} items]" == marker
        for row, message in zip(many, messages, strict=False):
            whole, text = str(row), message["content"]
            if text == whole:
                continue
            head, _, left = text.rpartition(", '…[truncated ")
            if head:  # cut at a value's end: the values left out counted
                assert whole.startswith(head)
                assert f"{1_000 - head.count(', ') - 1:,} items]']" == left
            else:  # printed whole, then cut to fit the event: the characters left out counted
                head, _, left = text.rpartition("…[truncated ")
                assert whole.startswith(head)
                assert f"{len(whole) - len(head):,} chars]" == left
        assert 30 < len(messages) <= 5_000 // (1_000 // 8)  # 1 item for 8 values of a row
        assert event.properties["$ai_truncated"] is True

    @pytest.mark.parametrize(
        "rows",
        [
            [[j + i / 7 for i in range(768)] for j in range(10)],
            [list(range(j, j + 500)) for j in range(30)],
            [[f"t{i}" for i in range(100)] for _ in range(40)],
            [
                [i / 7 for i in range(500)],
                (1, 2.5, None, True),
                [float("nan"), 2**70] * 40,
                [f"it's {j}" for j in range(100)],
                ["x" * 3_000, 'say "hi"'],
            ],
            [
                10**300,
                -(10**99),
                [10**80, 0.5, None],
                (10**99,),
                [10**99 + j for j in range(40)],
                10**4250,  # Python prints up to 4,300 digits
            ],
        ],
        ids=["10 x 768 floats", "30 x 500 ints", "40 x 100 strings", "mixed", "long ints"],
    )
    def test_rows_that_fit_are_sent_whole(self, events: CapturedEvents, rows: Any) -> None:
        """Rows print exactly as posthog prints them; those printed later count what printing
        costs, not a value an item: these fit."""

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm(rows)
        event = events.one()
        assert format_input("openai", {"messages": rows}) == event.properties["$ai_input"]
        assert "$ai_truncated" not in event.properties

    def test_an_int_too_long_to_print(self, events: CapturedEvents) -> None:
        """Python refuses to print an int of over 4,300 digits: the event still goes."""

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm([[10**5000] * 40])
        (message,) = events.one().properties["$ai_input"]
        assert message["content"].startswith("[<int of 16,610 bits>, <int of 16,610 bits>")

    def test_long_ints_are_printed_by_the_event_builder(self, events: CapturedEvents) -> None:
        """Ints of more than 78 digits, alone or in rows, are copied at the call, not printed;
        printing them counts one item more per 2**18 of their digits squared."""
        recorded: list[Any] = []

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            recorded.append(hogtrace.current_generation()._input)  # type: ignore[attr-defined]
            return "ok"

        rows = [[10**3999 + i] * 16 for i in range(100)]
        llm(rows)
        contents = [message["content"] for message in recorded[0][:-1]]
        assert {_serialize.AsText} == set(map(type, contents))
        *messages, marker = events.one().properties["$ai_input"]
        printed = [message["content"] for message in messages]
        values = sum(text.count(", ") + 1 for text in printed)
        assert values <= 5_000 // (1 + 4_000**2 // 2**18) + 1
        assert printed[0] == str(rows[0])
        assert f"…[truncated {100 - len(messages):,} items]" == marker
        assert events.one().properties["$ai_truncated"] is True

    def test_a_row_of_long_ints_wider_than_its_room(self, events: CapturedEvents) -> None:
        """Its ints are not kept (nor counted) past its room: the messages after it keep theirs."""
        hogtrace.configure(max_items=100, max_event_bytes=2_000)

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm([[10**4213 + j for j in range(5)], "second message", "third"])
        row, second, third = events.one().properties["$ai_input"]
        assert "['…[truncated 5 items]']" == row["content"]
        assert ("second message", "third") == (second["content"], third["content"])
        assert events.one().properties["$ai_truncated"] is True

    def test_printed_rows_are_bounded_at_any_item_limit(self, events: CapturedEvents) -> None:
        """With ``max_items`` far above the default, rows printed later stop at 20,000 values."""
        hogtrace.configure(max_items=1_000_000)
        rows = [[i / 7] * 10 for i in range(100_000)]

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm(rows)
        event = events.one()
        *messages, marker = event.properties["$ai_input"]
        assert len(messages) <= 2_001
        assert [{"role": "user", "content": str(row)} for row in rows[: len(messages)]] == messages
        assert f"…[truncated {100_000 - len(messages):,} items]" == marker
        assert event.properties["$ai_truncated"] is True

    def test_a_recursive_item(self, events: CapturedEvents) -> None:
        """A list that holds itself is as long as it is: printed at once, as posthog does."""
        loop: list[Any] = [1]
        loop.append(loop)

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm([loop])
        assert [{"role": "user", "content": "[1, [...]]"}] == events.one().properties["$ai_input"]

    @pytest.mark.parametrize(
        ("item", "items"),
        [
            ([*range(1_024), "x" * 900_000], None),  # a long string in it, cut by size
            ([0.123456789] * 200_000, 10**9),  # no item limit: cut by size alone
        ],
        ids=["long string", "no item limit"],
    )
    def test_cut_by_size_is_flagged(
        self, events: CapturedEvents, item: list[Any], items: int | None
    ) -> None:
        """A string made of a copy cut by size is flagged, and nearly fills the limit."""
        if items is not None:
            hogtrace.configure(max_items=items)

        @hogtrace.generation(model="m", provider="openai")
        def llm(messages: Any) -> str:
            return "ok"

        llm([item])
        event = events.one()
        text = event.properties["$ai_input"][0]["content"]
        assert "…[truncated " in text
        assert event.properties["$ai_truncated"] is True
        assert len(text) > 600_000  # not cut far below the limit (800,000 bytes)

    def test_gemini_parts_not_a_list(self, events: CapturedEvents) -> None:
        """posthog reads only a list as parts: a tuple makes the message its string."""
        parts = tuple({"text": f"part {i}"} for i in range(200_000))

        @hogtrace.generation(model="m", provider="gemini")
        def llm(contents: Any) -> str:
            return "ok"

        llm([{"role": "user", "parts": parts}])
        event = events.one()
        (message,) = event.properties["$ai_input"]
        assert "user" == message["role"]
        text = message["content"]
        assert text.startswith("{'role': 'user', 'parts': [{'text': 'part 0'}, {'text': 'part 1'}")
        assert text.endswith(" items]']}")
        assert event.properties["$ai_truncated"] is True


# --- extraction through scopes --------------------------------------------------------------------


class TestExtraction:
    def test_openai_chat_completion(self, events: CapturedEvents) -> None:
        """A ChatCompletion gives every generation property, tool calls and token details."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]], temperature: float = 0.0) -> Any:
            return chat_completion()

        response = ask(USER)
        assert isinstance(response, ChatCompletion)
        expected = {
            "$ai_model": "gpt-4o-2024-08-06",
            "$ai_provider": "openai",
            "$ai_input": USER,
            "$ai_output_choices": CHAT_OUTPUT,
            "$ai_input_tokens": 11,
            "$ai_output_tokens": 7,
            "$ai_cache_read_input_tokens": 4,
            "$ai_reasoning_tokens": 3,
            "$ai_stop_reason": "tool_calls",
            "$ai_model_parameters": {"temperature": 0.0},
            "$ai_http_status": 200,
            "$ai_stream": False,
        }
        event = events.one("$ai_generation")
        assert expected == props(event, *expected)
        assert "$ai_cache_creation_input_tokens" not in event.properties
        assert "$ai_time_to_first_token" not in event.properties

    def test_openai_responses(self, events: CapturedEvents) -> None:
        """A Responses API Response gives model, text, usage details and status."""

        @hogtrace.generation
        def ask(input: str) -> Response:
            return Response.model_validate(RESPONSE)

        ask("weather?")
        expected = {
            "$ai_model": "gpt-4.1-2025-04-14",
            "$ai_provider": "openai",
            "$ai_input": [{"role": "user", "content": "weather?"}],
            "$ai_output_choices": [
                {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}
            ],
            "$ai_input_tokens": 20,
            "$ai_output_tokens": 9,
            "$ai_cache_read_input_tokens": 8,
            "$ai_reasoning_tokens": 5,
            "$ai_stop_reason": "completed",
        }
        assert expected == props(events.one(), *expected)

    def test_anthropic_message(self, events: CapturedEvents) -> None:
        """An Anthropic Message gives cache read/creation tokens and its stop reason."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> at.Message:
            return at.Message.model_validate(MESSAGE)

        ask(USER)
        expected = {
            "$ai_model": "claude-sonnet-4-5",
            "$ai_provider": "anthropic",
            "$ai_output_choices": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "function",
                            "id": "toolu_1",
                            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        },
                    ],
                }
            ],
            "$ai_input_tokens": 12,
            "$ai_output_tokens": 30,
            "$ai_cache_read_input_tokens": 100,
            "$ai_cache_creation_input_tokens": 50,
            "$ai_stop_reason": "tool_use",
        }
        event = events.one()
        assert expected == props(event, *expected)
        assert "$ai_reasoning_tokens" not in event.properties

    def test_gemini_dict(self, events: CapturedEvents) -> None:
        """A GenerateContentResponse-shaped dict gives usage_metadata counts."""

        @hogtrace.generation
        def ask(contents: str) -> dict[str, Any]:
            return GEMINI

        ask("weather?")
        expected = {
            "$ai_model": "gemini-2.5-flash",
            "$ai_provider": "gemini",
            "$ai_input": [{"role": "user", "content": "weather?"}],
            "$ai_output_choices": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Sunny "},
                        {"type": "text", "text": "today."},
                    ],
                }
            ],
            "$ai_input_tokens": 40,
            "$ai_output_tokens": 6,
            "$ai_cache_read_input_tokens": 32,
            "$ai_reasoning_tokens": 12,
            "$ai_stop_reason": "STOP",
        }
        assert expected == props(events.one(), *expected)

    def test_langchain_ai_message(self, events: CapturedEvents) -> None:
        """A LangChain AIMessage gives model, provider and usage_metadata."""
        message = AIMessage(
            content="Sunny.",
            response_metadata={
                "model_name": "gpt-4o-mini",
                "model_provider": "openai",
                "finish_reason": "stop",
            },
            usage_metadata={
                "input_tokens": 5,
                "output_tokens": 2,
                "total_tokens": 7,
                "input_token_details": {"cache_read": 1},
            },
        )

        @hogtrace.generation
        def ask(prompt: str) -> AIMessage:
            return message

        assert message is ask("weather?")
        expected = {
            "$ai_model": "gpt-4o-mini",
            "$ai_provider": "openai",
            "$ai_output_choices": [{"role": "assistant", "content": "Sunny."}],
            "$ai_input_tokens": 5,
            "$ai_output_tokens": 2,
            "$ai_cache_read_input_tokens": 1,
            "$ai_stop_reason": "stop",
        }
        assert expected == props(events.one(), *expected)

    def test_plain_dict_of_openai_shape(self, events: CapturedEvents) -> None:
        """A dict of the chat completion shape reads like the SDK object."""

        @hogtrace.generation
        def sdk(messages: list[dict[str, str]]) -> Any:
            return chat_completion()

        @hogtrace.generation
        def plain(messages: list[dict[str, str]]) -> Any:
            return chat_completion().model_dump()

        sdk(USER)
        plain(USER)
        keys = (*GENERATION_KEYS, "$ai_input", "$ai_output_choices")
        from_sdk, from_dict = (props(e, *keys) for e in events)
        expected = CHAT_OUTPUT
        assert expected == from_sdk["$ai_output_choices"]
        assert from_sdk == from_dict

    def test_str(self, events: CapturedEvents) -> None:
        """A returned str is one assistant message, with no model or tokens."""

        @hogtrace.generation
        def ask(prompt: str) -> str:
            return "Sunny."

        ask("weather?")
        event = events.one()
        expected = [{"role": "assistant", "content": "Sunny."}]
        assert expected == event.properties["$ai_output_choices"]
        assert not tokens(event)
        assert "$ai_model" not in event.properties

    def test_unknown_object_is_serialized_without_tokens(self, events: CapturedEvents) -> None:
        """An unrecognised return value is the output as JSON, and no counts are sent."""

        @hogtrace.generation
        def ask(prompt: str) -> dict[str, Any]:
            return {"answer": 42}

        ask("q")
        event = events.one()
        expected = {"answer": 42}
        assert expected == event.properties["$ai_output_choices"]
        assert not tokens(event)

    def test_missing_usage_is_left_out_not_zero(self, events: CapturedEvents) -> None:
        """A response without usage sends no token properties at all."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            data = chat_completion().model_dump()
            data["usage"] = None
            return ChatCompletion.model_validate(data)

        ask(USER)
        expected = {}
        assert expected == tokens(events.one())

    def test_zero_counts_are_sent(self, events: CapturedEvents) -> None:
        """Counts the provider reported as 0 are sent as 0."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            return chat_completion(
                usage={
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "total_tokens": 0,
                    "prompt_tokens_details": {"cached_tokens": 0},
                }
            )

        ask(USER)
        expected = {
            "$ai_input_tokens": 0,
            "$ai_output_tokens": 0,
            "$ai_cache_read_input_tokens": 0,
        }
        assert expected == tokens(events.one())

    def test_returned_value_is_unchanged(self, events: CapturedEvents) -> None:
        """The caller gets the very object the function returned."""
        response = chat_completion()

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            return response

        assert response is ask(USER)


# --- streams ------------------------------------------------------------------------------------


def stream_of(chunks: list[Any]) -> Any:
    """A decorated sync generation that yields ``chunks``."""

    @hogtrace.generation(name="stream")
    def stream(messages: list[dict[str, str]]) -> Iterator[Any]:
        yield from chunks

    return stream


def astream_of(chunks: list[Any]) -> Any:
    """A decorated async-generator generation that yields ``chunks``."""

    @hogtrace.generation(name="stream")
    async def stream(messages: list[dict[str, str]]) -> AsyncIterator[Any]:
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    return stream


async def collect(agen: AsyncIterator[Any]) -> list[Any]:
    return [chunk async for chunk in agen]


#: A provider stream's joined text, as posthog's converters send it: one text block.
SUNNY_BLOCKS = [{"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}]

STREAM_CASES = {
    "strings": (
        ["Sun", "ny", "."],
        {"$ai_output_choices": [{"role": "assistant", "content": "Sunny."}]},
    ),
    "openai-usage-in-last-chunk": (
        [*OPENAI_CHUNKS, OPENAI_USAGE_CHUNK],
        {
            "$ai_model": "gpt-4o-mini",
            "$ai_provider": "openai",
            "$ai_output_choices": SUNNY_BLOCKS,
            "$ai_input_tokens": 9,
            "$ai_output_tokens": 4,
            "$ai_cache_read_input_tokens": 2,
            "$ai_stop_reason": "stop",
        },
    ),
    "openai-no-usage": (
        OPENAI_CHUNKS,
        {
            "$ai_model": "gpt-4o-mini",
            "$ai_provider": "openai",
            "$ai_output_choices": SUNNY_BLOCKS,
            "$ai_stop_reason": "stop",
        },
    ),
    "anthropic": (
        ANTHROPIC_STREAM,
        {
            "$ai_model": "claude-sonnet-4-5",
            "$ai_provider": "anthropic",
            "$ai_output_choices": SUNNY_BLOCKS,
            "$ai_input_tokens": 12,
            "$ai_output_tokens": 30,
            "$ai_cache_read_input_tokens": 100,
            "$ai_cache_creation_input_tokens": 50,
            "$ai_stop_reason": "end_turn",
        },
    ),
    "gemini": (
        GEMINI_CHUNKS,
        {
            "$ai_model": "gemini-2.5-flash",
            "$ai_provider": "gemini",
            "$ai_output_choices": SUNNY_BLOCKS,
            "$ai_input_tokens": 40,
            "$ai_output_tokens": 2,
            "$ai_stop_reason": "STOP",
        },
    ),
}
STREAM_KEYS = (
    "$ai_model",
    "$ai_provider",
    "$ai_output_choices",
    *TOKEN_KEYS,
    "$ai_stop_reason",
)


class TestStreams:
    @pytest.mark.parametrize(("chunks", "expected"), STREAM_CASES.values(), ids=STREAM_CASES)
    def test_sync(
        self, events: CapturedEvents, chunks: list[Any], expected: dict[str, Any]
    ) -> None:
        """A generator generation joins its chunks, takes usage from them and is a stream."""
        received = list(stream_of(chunks)(USER))
        assert len(chunks) == len(received)
        assert all(a is b for a, b in zip(chunks, received, strict=True))
        event = events.one()
        assert expected == props(event, *STREAM_KEYS)
        expected_request = {"$ai_stream": True, "$ai_input": USER}
        assert expected_request == props(event, *expected_request)
        assert event.properties["$ai_time_to_first_token"] >= 0

    @pytest.mark.parametrize(("chunks", "expected"), STREAM_CASES.values(), ids=STREAM_CASES)
    async def test_async(
        self, events: CapturedEvents, chunks: list[Any], expected: dict[str, Any]
    ) -> None:
        """An async generator generation reads the same as a sync one."""
        received = await collect(astream_of(chunks)(USER))
        assert all(a is b for a, b in zip(chunks, received, strict=True))
        event = events.one()
        assert expected == props(event, *STREAM_KEYS)
        assert True is event.properties["$ai_stream"]
        assert "$ai_time_to_first_token" in event.properties

    def test_early_break(self, events: CapturedEvents) -> None:
        """Breaking out of a stream closes it with the chunks seen so far, not as an error."""
        seen = []
        for chunk in stream_of(["Sun", "ny", "."])(USER):
            seen.append(chunk)
            break
        event = events.one()
        expected = (["Sun"], [{"role": "assistant", "content": "Sun"}])
        assert expected == (seen, event.properties["$ai_output_choices"])
        assert not event.is_error

    def test_explicit_close(self, events: CapturedEvents) -> None:
        """close() on a half-read stream emits it at once."""
        gen = stream_of([*OPENAI_CHUNKS, OPENAI_USAGE_CHUNK])(USER)
        next(gen)
        next(gen)
        assert not events
        gen.close()
        event = events.one()
        expected = {
            "$ai_output_choices": [
                {"role": "assistant", "content": [{"type": "text", "text": "Sun"}]}
            ]
        }
        assert expected == props(event, *STREAM_KEYS[2:])
        assert True is event.properties["$ai_stream"]
        assert not event.is_error

    async def test_async_early_break(self, events: CapturedEvents) -> None:
        """Breaking out of an async stream and closing it keeps the chunks seen so far."""
        async with contextlib.aclosing(astream_of(["Sun", "ny", "."])(USER)) as stream:
            async for _ in stream:
                break
        event = events.one()
        expected = [{"role": "assistant", "content": "Sun"}]
        assert expected == event.properties["$ai_output_choices"]
        assert not event.is_error

    def test_exception_mid_stream(self, events: CapturedEvents) -> None:
        """A stream that raises mid-way re-raises and is an error that keeps the usage so far."""
        error = rate_limit_error()

        @hogtrace.generation
        def stream(messages: list[dict[str, str]]) -> Iterator[Any]:
            yield from ANTHROPIC_STREAM[:3]
            raise error

        received: list[Any] = []
        with pytest.raises(openai.RateLimitError) as info:
            received.extend(stream(USER))
        assert error is info.value
        assert ANTHROPIC_STREAM[:3] == received
        event = events.one()
        expected = {
            "$ai_is_error": True,
            "$ai_error": "RateLimitError: Rate limit reached",
            "$ai_http_status": 429,
            "$ai_stream": True,
            "$ai_model": "claude-sonnet-4-5",
            "$ai_input_tokens": 12,
        }
        assert expected == props(event, *expected)
        assert "$ai_output_choices" not in event.properties

    async def test_async_exception_mid_stream(self, events: CapturedEvents) -> None:
        """An async stream that raises mid-way re-raises the same exception and is an error."""
        error = ValueError("broken pipe")

        @hogtrace.generation
        async def stream(messages: list[dict[str, str]]) -> AsyncIterator[str]:
            yield "Sun"
            raise error

        with pytest.raises(ValueError, match="broken pipe") as info:
            await collect(stream(USER))
        assert error is info.value
        expected = {
            "$ai_is_error": True,
            "$ai_error": "ValueError: broken pipe",
            "$ai_stream": True,
        }
        assert expected == props(events.one(), *expected)

    def test_throw_from_the_caller(self, events: CapturedEvents) -> None:
        """An exception thrown into the stream by the caller marks it an error."""
        gen = stream_of(["a", "b"])(USER)
        next(gen)
        with pytest.raises(KeyError):
            gen.throw(KeyError("stop"))
        assert events.one().is_error

    def test_stream_without_chunks_is_a_stream(self, events: CapturedEvents) -> None:
        """A generator generation that fails before its first chunk still has $ai_stream true."""

        @hogtrace.generation
        def stream(messages: list[dict[str, str]]) -> Iterator[str]:
            raise rate_limit_error()
            yield ""  # pragma: no cover

        with pytest.raises(openai.RateLimitError):
            list(stream(USER))
        assert True is events.one().properties["$ai_stream"]

    def test_never_started_emits_nothing(self, events: CapturedEvents) -> None:
        """A stream that is created but never iterated emits no event."""
        gen = stream_of(["a"])(USER)
        del gen
        expected = []
        assert expected == list(events)

    def test_scope_is_current_in_the_body(self, events: CapturedEvents) -> None:
        """Inside the generator body, current() is the generation, so set_usage works there."""

        @hogtrace.generation
        def stream(messages: list[dict[str, str]]) -> Iterator[str]:
            yield "a"
            scope = hogtrace.current()
            assert isinstance(scope, hogtrace.GenerationScope)
            scope.set_usage(input_tokens=3, output_tokens=1)

        list(stream(USER))
        expected = {"$ai_input_tokens": 3, "$ai_output_tokens": 1}
        assert expected == tokens(events.one())

    def test_capture_output_false(self, events: CapturedEvents) -> None:
        """A stream with capture_output=False sends its usage but no output."""

        @hogtrace.generation(capture_output=False)
        def stream(messages: list[dict[str, str]]) -> Iterator[Any]:
            yield from [*OPENAI_CHUNKS, OPENAI_USAGE_CHUNK]

        list(stream(USER))
        event = events.one()
        assert "$ai_output_choices" not in event.properties
        expected = 9
        assert expected == event.properties["$ai_input_tokens"]

    def test_time_to_first_token_and_latency_under_freezegun(self, events: CapturedEvents) -> None:
        """With freeze_time and tick, time to first token and latency are exactly the ticks."""

        @hogtrace.generation
        def stream(messages: list[dict[str, str]], clock: FrozenDateTimeFactory) -> Iterator[Any]:
            clock.tick(0.25)
            yield OPENAI_CHUNKS[0]
            clock.tick(0.5)
            yield OPENAI_CHUNKS[1]
            clock.tick(1.0)
            yield OPENAI_USAGE_CHUNK

        with freeze_time("2025-01-02 03:04:05") as clock:
            list(stream(USER, clock))
        event = events.one()
        expected = {"$ai_time_to_first_token": 0.25, "$ai_latency": 1.75}
        assert expected == props(event, *expected)
        expected_timestamp = "2025-01-02T03:04:06.750000+00:00"
        assert expected_timestamp == event.timestamp.isoformat()

    async def test_async_time_to_first_token_under_freezegun(self, events: CapturedEvents) -> None:
        """An async stream's time to first token and latency are exactly the ticks."""

        @hogtrace.generation
        async def stream(
            messages: list[dict[str, str]], clock: FrozenDateTimeFactory
        ) -> AsyncIterator[str]:
            clock.tick(2)
            yield "a"
            clock.tick(3)
            yield "b"

        with freeze_time("2025-01-02") as clock:
            await collect(stream(USER, clock))
        expected = {"$ai_time_to_first_token": 2.0, "$ai_latency": 5.0}
        assert expected == props(events.one(), *expected)

    def test_concurrent_streams_in_one_trace(self, events: CapturedEvents) -> None:
        """Two interleaved streams in one trace stay separate and both hang off the trace."""
        with hogtrace.trace("t") as t:
            a = stream_of(["a1", "a2"])(USER)
            b = stream_of(["b1", "b2"])(USER)
            interleaved = [next(a), next(b), next(a), next(b)]
            assert not [*a, *b]
        expected_chunks = ["a1", "b1", "a2", "b2"]
        assert expected_chunks == interleaved
        outputs = sorted(
            e.properties["$ai_output_choices"][0]["content"] for e in events.generations
        )
        expected_outputs = ["a1a2", "b1b2"]
        assert expected_outputs == outputs
        assert {t.id} == {e.parent_id for e in events.generations}


# --- manual control -----------------------------------------------------------------------------


class TestManualControl:
    def test_set_model_usage_cost(self, events: CapturedEvents) -> None:
        """set_model, set_usage and set_cost fill the event in a with block."""
        with hogtrace.generation("g") as g:
            g.set_model("my-model", provider="acme")
            g.set_usage(
                input_tokens=10,
                output_tokens=5,
                cache_read_input_tokens=2,
                cache_creation_input_tokens=1,
                reasoning_tokens=3,
            )
            g.set_cost(input_cost_usd=0.01, output_cost_usd=0.02, total_cost_usd=0.03)
        expected = {
            "$ai_model": "my-model",
            "$ai_provider": "acme",
            "$ai_input_tokens": 10,
            "$ai_output_tokens": 5,
            "$ai_cache_read_input_tokens": 2,
            "$ai_cache_creation_input_tokens": 1,
            "$ai_reasoning_tokens": 3,
            "$ai_input_cost_usd": 0.01,
            "$ai_output_cost_usd": 0.02,
            "$ai_total_cost_usd": 0.03,
        }
        assert expected == props(events.one(), *expected)

    def test_cost_fields_only_when_set(self, events: CapturedEvents) -> None:
        """Only the cost fields given are sent."""
        with hogtrace.generation("g") as g:
            g.set_cost(total_cost_usd=0.5)
        event = events.one()
        expected = 0.5
        assert expected == event.properties["$ai_total_cost_usd"]
        assert "$ai_input_cost_usd" not in event.properties
        assert "$ai_output_cost_usd" not in event.properties

    def test_set_output_in_with_block_is_parsed(self, events: CapturedEvents) -> None:
        """set_output(response) in a with block is read like a return value."""
        with hogtrace.generation("g") as g:
            g.set_output(at.Message.model_validate(MESSAGE))
        expected = {
            "$ai_model": "claude-sonnet-4-5",
            "$ai_provider": "anthropic",
            "$ai_input_tokens": 12,
            "$ai_stop_reason": "tool_use",
            "$ai_http_status": 200,
        }
        assert expected == props(events.one(), *expected)

    def test_manual_values_win_over_extracted(self, events: CapturedEvents) -> None:
        """set_model and set_usage win over the response; counts not set keep the response's."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            scope = hogtrace.current()
            assert isinstance(scope, hogtrace.GenerationScope)
            scope.set_model("gpt-4o-via-proxy")
            scope.set_usage(output_tokens=99)
            return chat_completion()

        ask(USER)
        expected = {
            "$ai_model": "gpt-4o-via-proxy",
            "$ai_provider": "openai",
            "$ai_input_tokens": 11,
            "$ai_output_tokens": 99,
        }
        assert expected == props(events.one(), *expected)

    def test_set_usage_after_set_output_still_wins(self, events: CapturedEvents) -> None:
        """set_usage called after set_output(response) wins over the response's counts."""
        with hogtrace.generation("g") as g:
            g.set_output(chat_completion())
            g.set_usage(input_tokens=1)
        expected = 1
        assert expected == events.one().properties["$ai_input_tokens"]

    def test_set_output_wins_over_return_value(self, events: CapturedEvents) -> None:
        """set_output inside a decorated generation replaces the returned value."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> str:
            scope = hogtrace.current()
            assert isinstance(scope, hogtrace.GenerationScope)
            scope.set_output(chat_completion())
            return "raw text"

        result = ask(USER)
        expected = {"$ai_output_choices": CHAT_OUTPUT, "$ai_input_tokens": 11}
        assert expected == props(events.one(), *expected)
        expected_result = "raw text"
        assert expected_result == result

    def test_set_output_str(self, events: CapturedEvents) -> None:
        """set_output with a str is one assistant message."""
        with hogtrace.generation("g") as g:
            g.set_output("done")
        expected = [{"role": "assistant", "content": "done"}]
        assert expected == events.one().properties["$ai_output_choices"]

    def test_setters_after_close_are_ignored(
        self, events: CapturedEvents, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Setting usage after the scope closed changes nothing and logs a warning."""
        with hogtrace.generation("g") as g:
            g.set_usage(input_tokens=1)
        g.set_usage(input_tokens=5)
        g.set_cost(total_cost_usd=1.0)
        g.set_model("late")
        expected = {"$ai_input_tokens": 1}
        assert expected == tokens(events.one())
        assert g.model is None
        assert "after it closed" in caplog.text

    def test_properties(self, events: CapturedEvents) -> None:
        """Decorator and set_properties properties appear on the generation."""
        with hogtrace.generation("g", properties={"team": "ai"}) as g:
            g.set_properties(feature="chat")
        expected = {"team": "ai", "feature": "chat"}
        assert expected == props(events.one(), *expected)


# --- errors -------------------------------------------------------------------------------------


class TestErrors:
    def test_openai_rate_limit(self, events: CapturedEvents) -> None:
        """An SDK error is re-raised unchanged and gives $ai_http_status from its status_code."""
        error = rate_limit_error()

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            raise error

        with pytest.raises(openai.RateLimitError) as info:
            ask(USER)
        assert error is info.value
        event = events.one()
        expected = {
            "$ai_is_error": True,
            "$ai_error": "RateLimitError: Rate limit reached",
            "$ai_http_status": 429,
            "$ai_input": USER,
            "$ai_stream": False,
        }
        assert expected == props(event, *expected)
        assert "$ai_output_choices" not in event.properties
        assert not tokens(event)

    def test_anthropic_error_status(self, events: CapturedEvents) -> None:
        """An Anthropic API error gives its HTTP status."""
        request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
        response = httpx.Response(529, request=request, json={"type": "error"})
        error = anthropic.InternalServerError("Overloaded", response=response, body=None)

        with pytest.raises(anthropic.InternalServerError), hogtrace.generation("g"):
            raise error
        expected = 529
        assert expected == events.one().properties["$ai_http_status"]

    def test_error_without_status(self, events: CapturedEvents) -> None:
        """An error with no status code sends no $ai_http_status."""
        with pytest.raises(RuntimeError), hogtrace.generation("g"):
            raise RuntimeError("oops")
        event = events.one()
        assert "$ai_http_status" not in event.properties
        expected = "RuntimeError: oops"
        assert expected == event.properties["$ai_error"]

    def test_success_has_no_error_keys(self, events: CapturedEvents) -> None:
        """A successful generation has neither $ai_is_error nor $ai_error."""
        with hogtrace.generation("g") as g:
            g.set_output("ok")
        event = events.one()
        assert "$ai_is_error" not in event.properties
        assert "$ai_error" not in event.properties

    def test_cancellation_is_not_an_error(self, events: CapturedEvents) -> None:
        """A cancelled async generation is emitted without error marks."""

        @hogtrace.generation
        async def ask(messages: list[dict[str, str]]) -> str:
            await asyncio.Event().wait()
            return "never"

        async def main() -> None:
            task = asyncio.ensure_future(ask(USER))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert not events.one().is_error


# --- content taken without a snapshot -----------------------------------------------------------

#: Properties that differ between two otherwise identical calls.
_PER_CALL = ("$ai_trace_id", "$ai_span_id", "$ai_parent_id")


def text_completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
    }


def bounded_and_whole(
    events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    arguments: dict[str, Any],
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """A generation's ``$ai_input`` and ``$ai_truncated`` for ``arguments``, as recorded and
    then with the input formatted whole (`general_paths`)."""

    @hogtrace.generation(model="m", provider=provider)
    def llm(**arguments: Any) -> str:
        return "ok"

    def run() -> tuple[Any, Any]:
        events.clear()
        llm(**arguments)
        props = events.one().properties
        return props["$ai_input"], props.get("$ai_truncated")

    bounded = run()
    general_paths(monkeypatch)
    return bounded, run()


def response_item(i: int) -> Any:
    """An OpenAI Responses output item, as an agent loop feeds them back: a message (which
    has a role) or a function call (which has none)."""
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    if i % 2:
        text = ResponseOutputText(type="output_text", text=f"a{i}", annotations=[])
        return ResponseOutputMessage(
            id=f"m{i}", role="assistant", status="completed", type="message", content=[text]
        )
    return ResponseFunctionToolCall(type="function_call", call_id=f"c{i}", name="f", arguments="{}")


def genai_types() -> Any:
    """google-genai's types (the test extra holds it)."""
    return pytest.importorskip("google.genai.types")


def general_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot the formatted input and the extracted output whatever they hold.

    The input is formatted whole, as `format_input` does, but with the strings posthog's
    converters make of what is no message left for the snapshot (`AsText`), as recorded.
    """
    monkeypatch.setattr(
        _generation,
        "recorded_input",
        lambda provider, args, limit=None, most=None: (
            _extract._format(provider, args, texts=False)[0],
            None,
        ),
    )
    monkeypatch.setattr(
        _generation.GenerationScope,
        "_output_snapshot",
        lambda self, extracted: self.snapshot(extracted.output, _names.CUT_OUTPUT),
    )


class TestContentWithoutSnapshot:
    """Text messages and text output kept as extracted give the events a snapshot gives."""

    @pytest.mark.parametrize("limit", [2_000, 20_000, None])
    @pytest.mark.parametrize("size", [0, 100, 1_900, 2_100, 19_000, 21_000, 300_000])
    def test_same_events_as_the_snapshot_path(
        self, events: CapturedEvents, monkeypatch: pytest.MonkeyPatch, limit: int | None, size: int
    ) -> None:
        """Around and past the size limit, with text, tool calls and SDK objects alike."""
        if limit is not None:
            hogtrace.configure(max_event_bytes=limit)

        @hogtrace.generation(model="gpt-4o-mini", provider="openai")
        def llm(messages: list[Any], result: Any, temperature: float = 0.2) -> Any:
            return result

        text = "w" * size
        wide = "\U0001f600" * (size // 4)
        inputs: list[list[Any]] = [
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
            [{"role": "user", "content": wide}],
            [{"role": "user", "content": text}, {"role": "user", "content": [text]}],
            [{"role": "user", "content": text, "name": "ann"}],
        ]
        results: list[Any] = [
            text,
            wide,
            text_completion(text),
            text_completion(wide),
            ChatCompletion.model_validate(text_completion(text)),
            chat_completion(content=text),
        ]
        calls = [(m, r) for m in inputs for r in results[:2]] + [(inputs[0], r) for r in results]

        def run() -> list[dict[str, Any]]:
            events.clear()
            with freeze_time("2025-01-02"):  # the latency's size counts in the limit
                for messages, result in calls:
                    llm(messages, result)
            return [{k: v for k, v in e.properties.items() if k not in _PER_CALL} for e in events]

        fast = run()
        general_paths(monkeypatch)
        assert run() == fast
        assert len(calls) == len(fast)

    @pytest.mark.parametrize("items", [None, 1_000_000], ids=["max_items", "size only"])
    @pytest.mark.parametrize("limit", [2_000, 100_000, None])
    @pytest.mark.parametrize("count", [40, 4_000, 5_000, 60_000])
    @pytest.mark.parametrize("shape", ["plain", "long", "named", "parts", "late", "floats"])
    def test_long_inputs_read_as_far_as_the_limit(
        self,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
        limit: int | None,
        count: int,
        shape: str,
        items: int | None,
    ) -> None:
        """A long input read only as far as the limits gives the event a whole snapshot gives.

        Plain messages (short, long, or with a message not plain after the limit) are read
        until certain to be cut; other messages are formatted as far as their first ones say
        may fit: both are cut where the snapshot of every formatted message is, with its count,
        whether the size limit or ``max_items`` cuts them.
        """
        if limit is not None:
            hogtrace.configure(max_event_bytes=limit)
        if items is not None:
            hogtrace.configure(max_items=items)

        @hogtrace.generation(model="gpt-4o-mini", provider="openai")
        def llm(messages: list[Any]) -> str:
            return "ok"

        def message(i: int) -> Any:
            if shape == "long":
                return {"role": "user", "content": f"{i} " + "w" * 300}
            if shape == "named":
                return {"role": "user", "content": f"{i}", "name": "ann"}
            if shape == "parts":
                return {"role": "user", "content": [{"type": "text", "text": f"{i}"}]}
            if shape == "floats":
                return i / 7
            if shape == "late" and i == count - 10:
                return {"role": "user", "content": [{"type": "text", "text": f"{i}"}]}
            return {"role": "user", "content": f"message {i}"}

        messages = [message(i) for i in range(count)]

        def run() -> dict[str, Any]:
            events.clear()
            with freeze_time("2025-01-02"):
                llm(messages)
            (event,) = events
            return {k: v for k, v in event.properties.items() if k not in _PER_CALL}

        bounded = run()
        general_paths(monkeypatch)
        whole = run()
        assert bounded == whole
        sent = bounded["$ai_input"]
        if limit is None and shape == "late" and 4_000 <= count <= 5_000:
            if items is None:  # 4 items a message: cut at 5,000 items, and said so
                assert sent[-1] == f"…[truncated {count - len(sent) + 1:,} items]"
                assert count_items(sent[:-1], 10**9) == 4 * (len(sent) - 1) == 5_000
                assert bounded["$ai_truncated"] is True
            else:
                assert len(sent) == count  # the limit (800 KB) holds them all: nothing cut
                assert "$ai_truncated" not in bounded
        if limit == 2_000:
            assert sent[-1] == f"…[truncated {count - len(sent) + 1:,} items]"

    @pytest.mark.parametrize(
        ("provider", "limit", "make"),
        [
            ("openai", None, lambda x: {"input": x}),  # Responses input, 300-char messages
            ("anthropic", 2_000_000, lambda x: {"messages": x * 10, "system": "S"}),
            ("anthropic", 100_000, lambda x: {"messages": tuple(x)}),
            (
                "openai",
                100_000,
                lambda x: {"input": [*x, {"role": "system", "content": "s"}], "instructions": "B"},
            ),
            (
                "gemini",
                100_000,
                lambda x: {"contents": ["x" * 300] * 5_000, "config": {"system_instruction": "S"}},
            ),
            ("gemini", 100_000, lambda x: {"contents": tuple(["x" * 300] * 5_000)}),
            ("openai", 100_000, lambda x: {"input": tuple(x)}),
            ("openai", 100_000, lambda x: {"messages": [x[0]], "contents": x}),
            ("openai", 100_000, lambda x: {"messages": x, "input": [x[0]]}),
            (None, 100_000, lambda x: {"contents": [{"parts": [{"text": "y" * 200}]}] * 5_000}),
            # A system prompt beside a long list: added first unless a message is a system one
            # (read at C speed); OpenAI's instructions are merged into that message.
            ("openai", 100_000, lambda x: {"input": x, "instructions": "B"}),
            ("openai", None, lambda x: {"input": x, "system": "S"}),
            (
                "openai",
                100_000,
                lambda x: {"input": [x[0], {"role": "system", "content": "s"}, *x], "system": "S"},
            ),
            (
                "openai",
                None,
                lambda x: {"input": [{"role": "system", "content": "s"}, *x], "instructions": "B"},
            ),
            (
                "gemini",
                100_000,
                lambda x: {"contents": x, "config": {"system_instruction": "S"}},
            ),
            (
                "gemini",
                100_000,
                lambda x: {
                    "contents": [*x, {"role": "system", "parts": [{"text": "s"}]}],
                    "config": {"system_instruction": "S"},
                },
            ),
            (  # a "system" message without content is a user's: the prompt is added
                "gemini",
                100_000,
                lambda x: {
                    "contents": [*x, {"role": "system"}],
                    "config": {"system_instruction": "S"},
                },
            ),
            # Many parts a message: a few messages hold the items (4 a part).
            ("gemini", None, lambda x: {"contents": [{"parts": [{"text": "y"}] * 50}] * len(x)}),
            (
                "anthropic",
                None,
                lambda x: {
                    "messages": [{"role": "user", "content": [{"type": "text"}] * 50}] * len(x)
                },
            ),
        ],
        ids=[
            "responses",
            "anthropic",
            "anthropic tuple",
            "instructions",
            "gemini system",
            "gemini tuple",
            "input tuple",
            "contents beside",
            "both",
            "gemini parts",
            "instructions first",
            "system first",
            "system message early",
            "instructions merged",
            "gemini config",
            "gemini late system",
            "gemini empty system",
            "gemini many parts",
            "anthropic many parts",
        ],
    )
    @pytest.mark.parametrize("count", [17, 40, 5_000])
    def test_long_inputs_of_every_provider(
        self,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
        provider: str | None,
        limit: int | None,
        make: Any,
        count: int,
    ) -> None:
        """Each provider's long input gives the event the whole input's snapshot gives.

        Found by a helper's review: an estimate of how many fit differed from the snapshot's
        cut, a system prompt was added that a late system message prevents, a tuple got a
        false count, and another argument's list was taken for the input.
        """
        if limit is not None:
            hogtrace.configure(max_event_bytes=limit)

        @hogtrace.generation(model="m", provider=provider)
        def llm(**arguments: Any) -> str:
            return "ok"

        arguments = make([{"role": "user", "content": "x" * 300}] * count)

        def run() -> Any:
            events.clear()
            with freeze_time("2025-01-02"):
                llm(**arguments)
            (event,) = events
            return event.properties["$ai_input"]

        bounded = run()
        general_paths(monkeypatch)
        assert run() == bounded

    @pytest.mark.parametrize(("items", "limit"), [(100, None), (5_000, None), (5_000, 2_000)])
    @pytest.mark.parametrize("count", [65, 1_500, 20_000])
    @pytest.mark.parametrize("messages", [1, 3, 20])
    @pytest.mark.parametrize(
        "shape", ["anthropic blocks", "anthropic strings", "gemini parts", "gemini sdk"]
    )
    def test_long_content_parts_read_as_far_as_the_limit(
        self,
        events: CapturedEvents,
        monkeypatch: pytest.MonkeyPatch,
        items: int,
        limit: int | None,
        count: int,
        messages: int,
        shape: str,
    ) -> None:
        """A message of many content parts gives the event the whole input's snapshot gives.

        Its parts are formatted (as posthog's converters do, ~0.5-3 µs each) only until they
        take more items than ``max_items``: a message of 200,000 parts took 100-180 ms.
        """
        hogtrace.configure(max_items=items)
        if limit is not None:
            hogtrace.configure(max_event_bytes=limit)
        provider = shape.split()[0]

        @hogtrace.generation(model="m", provider=provider)
        def llm(**arguments: Any) -> str:
            return "ok"

        def part(i: int) -> Any:
            if shape == "anthropic blocks":
                return {"type": "text", "text": f"part {i}", "cache_control": None}
            if shape == "anthropic strings":
                return f"part {i}"
            if shape == "gemini parts":
                return {"text": f"part {i}"} if i % 5 else {}  # an empty part is left out
            return gt.Part(text=f"part {i}")

        if shape == "gemini sdk":
            with warnings.catch_warnings():  # google-genai under pydantic 2.6: field shadowing
                warnings.simplefilter("ignore", UserWarning)
                gt = pytest.importorskip("google.genai.types")
        parts = [part(i) for i in range(count)]
        if provider == "anthropic":
            rest = [{"role": "user", "content": f"q{i}"} for i in range(messages - 1)]
            arguments = {"messages": [*rest, {"role": "user", "content": parts}]}
        else:
            rest = [{"role": "user", "parts": [{"text": f"q{i}"}]} for i in range(messages - 1)]
            last = (
                gt.Content(role="user", parts=parts)
                if shape == "gemini sdk"
                else {"role": "user", "parts": parts}
            )
            arguments = {"contents": [*rest, last]}

        def run() -> Any:
            events.clear()
            with freeze_time("2025-01-02"):
                llm(**arguments)
            (event,) = events
            return event.properties

        bounded = run()
        general_paths(monkeypatch)
        whole = run()
        sent, expected = bounded["$ai_input"], whole["$ai_input"]
        if shape == "gemini parts" and count > 64 and sent != expected:
            # Unread parts are counted as blocks: the empty ones among them (a fifth) too.
            content, whole_content = sent[-1]["content"], expected[-1]["content"]
            assert sent[:-1] == expected[:-1]
            assert content[:-1] == whole_content[:-1]
            said, true = (int(c[-1].split()[1].replace(",", "")) for c in (content, whole_content))
            assert true < said <= true + count // 5
        else:
            assert sent == expected
        assert bounded.get("$ai_truncated") == whole.get("$ai_truncated")

    @pytest.mark.parametrize("empty", [False, True], ids=["parts", "empty parts"])
    @pytest.mark.parametrize("provider", ["anthropic", "gemini"])
    def test_long_content_parts_formatted_as_far_as_max_items(
        self, events: CapturedEvents, provider: str, empty: bool
    ) -> None:
        """Of a message of 50,000 parts, only those ``max_items`` can hold are formatted; an
        empty part, which Gemini's formatter leaves out, counts as a block (a helper's review:
        200,000 of them were all read, 115-330 ms)."""
        hogtrace.configure(max_items=300)
        read: list[int] = []

        class Part:
            """A part posthog's converters read by its ``model_dump``."""

            def __init__(self, i: int) -> None:
                self.i = i

            def model_dump(self, exclude_none: bool = False) -> dict[str, Any]:
                read.append(self.i)
                return {} if empty else {"type": "text", "text": f"part {self.i}"}

        @hogtrace.generation(model="m", provider=provider)
        def llm(**arguments: Any) -> str:
            return "ok"

        message = {"role": "user", "content" if provider == "anthropic" else "parts": None}
        message["content" if provider == "anthropic" else "parts"] = [
            Part(i) for i in range(50_000)
        ]
        llm(**{"messages" if provider == "anthropic" else "contents": [message]})
        sent = events.one().properties["$ai_input"][0]["content"]
        kept = sent[:-1]
        assert read == list(range(len(read)))
        if empty and provider == "gemini":  # left out, each read counted as a block
            assert [f"…[truncated {50_000 - len(read):,} items]"] == sent
            assert len(read) == 101
            return
        assert sent[-1] == f"…[truncated {50_000 - len(kept):,} items]"
        assert kept[0] == ({} if empty else {"type": "text", "text": "part 0"})
        assert 50 < len(kept) <= len(read) <= (301 if empty else 101)  # 1 or 3 items a part

    @pytest.mark.parametrize("count", [3, 100, 20_000])
    def test_anthropic_parts_that_are_none_are_kept(
        self, events: CapturedEvents, count: int
    ) -> None:
        """posthog's Anthropic converter keeps a None content part (as None): so does the
        bounded read (a helper's review found them left out)."""
        from posthog.ai.anthropic.anthropic_converter import format_anthropic_input

        @hogtrace.generation(model="m", provider="anthropic")
        def llm(messages: list[Any]) -> str:
            return "ok"

        parts = [None if i % 2 else {"type": "text", "text": f"t{i}"} for i in range(count)]
        messages = [{"role": "user", "content": parts}]
        llm(messages)
        sent = events.one().properties["$ai_input"][0]["content"]
        whole = format_anthropic_input(messages)[0]["content"]
        if count < 10_000:  # within max_items
            assert whole == sent
        else:
            assert whole[: len(sent) - 1] == sent[:-1]
            assert sent[-1] == f"…[truncated {count - len(sent) + 1:,} items]"
        assert None in sent

    @pytest.mark.parametrize("result", ["w" * 10_000, text_completion("w" * 10_000)])
    def test_text_past_the_limit_is_cut_when_recorded(
        self, events: CapturedEvents, result: Any
    ) -> None:
        """Text output past the size limit is cut when recorded (as a snapshot is), not kept."""
        hogtrace.configure(max_event_bytes=2_000)
        with hogtrace.generation("g") as g:
            g.set_output(result)
            recorded = g._output
        assert len(json.dumps(recorded)) < 3_000

    @pytest.mark.parametrize("wrapped", [False, True])
    def test_text_messages_as_input(self, events: CapturedEvents, wrapped: bool) -> None:
        """Plain text messages are sent as given, also when the generation became a span."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> str:
            if wrapped:  # a PostHog wrapper made the model call inside
                scope = hogtrace.current_generation()
                assert scope is not None
                scope.wraps_model_call()
            messages[0]["content"] = "changed in the call"
            return "hi"

        history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
        expected = [dict(message) for message in history]
        ask(history)
        event = events.one()
        key = "$ai_input_state" if wrapped else "$ai_input"
        assert ("$ai_span" if wrapped else "$ai_generation") == event.event
        assert expected == event.properties[key]

    def test_privacy_mode_keeps_no_text(self, events: CapturedEvents) -> None:
        """Under privacy mode text output is not kept at all, as a snapshot keeps none."""
        hogtrace.configure(privacy_mode=True)
        with hogtrace.generation("g") as g:
            g.set_output(text_completion("secret"))
            assert None is g._output

    def test_text_within_the_limit_is_kept_as_extracted(self, events: CapturedEvents) -> None:
        """Text output within the limit is the extracted output itself, not a copy of it."""
        with hogtrace.generation("g") as g:
            g.set_output(text_completion("Sure."))
            assert g.extracted is not None
            assert g.extracted.output is g._output


# --- privacy ------------------------------------------------------------------------------------


class TestPrivacy:
    def test_privacy_mode_nulls_content_keeps_tokens(self, events: CapturedEvents) -> None:
        """privacy_mode sends $ai_input and $ai_output_choices as null and keeps the counts."""
        hogtrace.configure(privacy_mode=True)

        @hogtrace.generation
        def ask(messages: list[dict[str, str]], temperature: float = 0.1) -> Any:
            return chat_completion()

        ask(USER)
        event = events.one()
        expected = {
            "$ai_input": None,
            "$ai_output_choices": None,
            "$ai_model": "gpt-4o-2024-08-06",
            "$ai_input_tokens": 11,
            "$ai_output_tokens": 7,
            "$ai_cache_read_input_tokens": 4,
            "$ai_reasoning_tokens": 3,
            "$ai_model_parameters": {"temperature": 0.1},
        }
        assert expected == props(event, *expected)
        assert "Paris" not in json.dumps(event.properties)

    def test_privacy_mode_stream(self, events: CapturedEvents) -> None:
        """A stream under privacy_mode keeps usage and sends no text."""
        hogtrace.configure(privacy_mode=True)
        list(stream_of(ANTHROPIC_STREAM)(USER))
        event = events.one()
        expected = {"$ai_input": None, "$ai_output_choices": None, "$ai_input_tokens": 12}
        assert expected == props(event, *expected)
        assert "Sunny" not in json.dumps(event.properties)

    def test_privacy_mode_error_is_type_only(self, events: CapturedEvents) -> None:
        """Under privacy_mode the error is its type only, and the status is kept."""
        hogtrace.configure(privacy_mode=True)
        with pytest.raises(openai.RateLimitError), hogtrace.generation("g"):
            raise rate_limit_error()
        expected = {"$ai_error": "RateLimitError", "$ai_http_status": 429}
        assert expected == props(events.one(), *expected)

    def test_privacy_mode_embedding(self, events: CapturedEvents) -> None:
        """An embedding under privacy_mode sends $ai_input as null and keeps its tokens."""
        hogtrace.configure(privacy_mode=True)

        @hogtrace.embedding
        def embed(input: list[str]) -> CreateEmbeddingResponse:
            return EMBEDDING

        embed(["secret text"])
        expected = {"$ai_input": None, "$ai_input_tokens": 5}
        assert expected == props(events.one(), *expected)

    def test_posthog_client_privacy_mode(self, capture_server: CaptureServer) -> None:
        """A PostHog client created with privacy_mode=True hides generation content too."""
        client = posthog.Posthog("phc_test", host=capture_server.url, privacy_mode=True)
        try:
            with capture_events() as events:
                hogtrace.configure(client)
                with hogtrace.generation("g") as g:
                    g.set_input(USER)
                    g.set_output(chat_completion())
            expected = {"$ai_input": None, "$ai_output_choices": None, "$ai_input_tokens": 11}
            assert expected == props(events.one(), *expected)
        finally:
            hogtrace.reset()
            client.shutdown()


# --- standalone generations and nesting ----------------------------------------------------------


class TestStandalone:
    def test_generation_without_trace_starts_its_own(self, events: CapturedEvents) -> None:
        """A generation outside any trace gets a fresh trace id, parent = trace id, no $ai_trace."""
        with hogtrace.generation("a"):
            pass
        with hogtrace.generation("b"):
            pass
        first, second = events
        expected = []
        assert expected == events.traces
        assert first.trace_id == first.parent_id
        assert second.trace_id == second.parent_id
        assert first.trace_id != second.trace_id
        assert first.span_id not in (first.trace_id, second.span_id)

    def test_embedding_without_trace_starts_its_own(self, events: CapturedEvents) -> None:
        """An embedding outside any trace also starts a trace of its own."""

        @hogtrace.embedding
        def embed(input: list[str]) -> CreateEmbeddingResponse:
            return EMBEDDING

        embed(["a"])
        event = events.one()
        expected = "$ai_embedding"
        assert expected == event.event
        assert event.trace_id == event.parent_id
        assert event.span_id != event.trace_id

    def test_standalone_in_session(self, events: CapturedEvents) -> None:
        """A standalone generation in a session carries the session id and no $ai_trace."""
        with hogtrace.session("conv-1"), hogtrace.generation("g"):
            pass
        event = events.one()
        expected = "conv-1"
        assert expected == event.session_id
        assert event.trace_id == event.parent_id

    def test_scopes_inside_a_standalone_generation(self, events: CapturedEvents) -> None:
        """A span opened inside a standalone generation is its child in the same trace."""
        with hogtrace.generation("g") as g, hogtrace.span("tool"):
            pass
        span = events.one("$ai_span")
        assert (g.trace_id, g.id) == (span.trace_id, span.parent_id)
        expected = []
        assert expected == events.traces

    def test_inside_a_trace_and_span(self, events: CapturedEvents) -> None:
        """Inside a trace a generation's parent is the trace; inside a span, the span."""
        with hogtrace.trace("t") as t:
            with hogtrace.generation("direct"):
                pass
            with hogtrace.span("step") as s, hogtrace.embedding("nested"):
                pass
        direct = events.one(name="direct")
        nested = events.one(name="nested")
        assert (t.id, t.id) == (direct.trace_id, direct.parent_id)
        assert (t.id, s.id) == (nested.trace_id, nested.parent_id)


# --- embeddings -------------------------------------------------------------------------------


class TestEmbedding:
    def test_openai_embedding_response(self, events: CapturedEvents) -> None:
        """An OpenAI embedding response gives model, provider and input tokens; input is kept."""

        @hogtrace.embedding
        def embed(input: list[str]) -> CreateEmbeddingResponse:
            return EMBEDDING

        embed(["hello", "world"])
        expected = {
            "$ai_model": "text-embedding-3-small",
            "$ai_provider": "openai",
            "$ai_input": ["hello", "world"],
            "$ai_input_tokens": 5,
        }
        assert expected == props(events.one(), *expected)

    def test_no_vectors(self, events: CapturedEvents) -> None:
        """No vector reaches the event, whether returned or passed to set_output."""

        @hogtrace.embedding
        def embed(input: list[str]) -> CreateEmbeddingResponse:
            return EMBEDDING

        @hogtrace.embedding
        def raw(input: list[str]) -> list[list[float]]:
            return [[0.1234567, -0.7654321]]

        embed(["a"])
        raw(["a"])
        with hogtrace.embedding("block") as e:
            e.set_output(EMBEDDING)
        text = json.dumps([e.properties for e in events])
        assert "0.1234567" not in text
        assert "0.7654321" not in text
        for event in events:
            assert "$ai_output_choices" not in event.properties
            assert "$ai_output_state" not in event.properties

    def test_no_generation_only_properties(self, events: CapturedEvents) -> None:
        """An embedding carries no stream, stop reason or model parameters."""

        @hogtrace.embedding
        def embed(input: list[str], model: str = "text-embedding-3-small") -> Any:
            return EMBEDDING

        embed(["a"])
        event = events.one()
        for key in ("$ai_stream", "$ai_stop_reason", "$ai_model_parameters", "$ai_tools"):
            assert key not in event.properties

    def test_gemini_embedding_dict(self, events: CapturedEvents) -> None:
        """A Vertex embed_content dict gives its summed token statistics."""

        @hogtrace.embedding(model="text-embedding-004")
        def embed(contents: list[str]) -> dict[str, Any]:
            return {
                "embeddings": [
                    {"values": [0.5], "statistics": {"token_count": 3}},
                    {"values": [0.25], "statistics": {"token_count": 4}},
                ]
            }

        embed(["a", "b"])
        expected = {
            "$ai_model": "text-embedding-004",
            "$ai_provider": "gemini",
            "$ai_input_tokens": 7,
        }
        assert expected == props(events.one(), *expected)

    def test_manual_usage_and_cost(self, events: CapturedEvents) -> None:
        """set_model, set_usage and set_cost work on an embedding."""
        with hogtrace.embedding("e") as e:
            e.set_model("m", provider="p")
            e.set_usage(input_tokens=8)
            e.set_cost(total_cost_usd=0.001)
        expected = {
            "$ai_model": "m",
            "$ai_provider": "p",
            "$ai_input_tokens": 8,
            "$ai_total_cost_usd": 0.001,
        }
        assert expected == props(events.one(), *expected)
