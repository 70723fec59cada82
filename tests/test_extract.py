from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast
from unittest.mock import MagicMock
from uuid import uuid4

import anthropic.types as at
import posthog
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
)

# hogtrace sends the shapes of posthog 7.91's converters (what PostHog's ingestion reads); these
# tests compare with the installed posthog's own converters, which sent other shapes before.
if tuple(int(part) for part in posthog.VERSION.split(".")[:2]) < (7, 91):
    pytest.skip("compares with posthog >= 7.91's converters", allow_module_level=True)

from posthog.ai.anthropic._anthropic_stream import _AnthropicStreamAccumulator
from posthog.ai.anthropic.anthropic_converter import (
    format_anthropic_response,
    format_anthropic_streaming_output_complete,
)
from posthog.ai.gemini.gemini_converter import (
    extract_gemini_content_from_chunk,
    format_gemini_response,
    format_gemini_streaming_output,
)
from posthog.ai.langchain.callbacks import CallbackHandler
from posthog.ai.openai._streaming import _ChatCompletionsStreamState, _ResponsesStreamState
from posthog.ai.openai.openai_converter import (
    format_openai_response,
    format_openai_streaming_output,
)
from posthog.ai.utils import merge_system_prompt
from pydantic import BaseModel, RootModel, field_serializer

from hogtrace._extract import (
    Extracted,
    StreamAccumulator,
    TextMessages,
    _lc_messages,
    _openai_message,
    _openai_messages,
    _text_messages,
    _text_size,
    extract_embedding,
    extract_generation,
    format_input,
    recorded_input,
)
from hogtrace._serialize import Head


def ns(value: Any) -> Any:
    """Turn nested dicts into nested SimpleNamespaces (lists kept as lists)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: ns(item) for key, item in value.items()})
    if isinstance(value, list):
        return [ns(item) for item in value]
    return value


def accumulate(chunks: list[Any]) -> tuple[Extracted, StreamAccumulator]:
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.result(), acc


# --- PostHog ingestion's tool call extraction, ported ---------------------------------------------

_MAX_TOOLS = 100
_REPR_TOOL_CALL = re.compile(r"ResponseFunctionToolCall\([^)]*name='([^']+)'")


def _push(names: list[str], raw: str) -> None:
    name = raw.strip()
    if name:
        names.append(name.replace(",", "_")[:200])


def _names_from_calls(calls: list[Any], names: list[str]) -> None:
    for call in calls:
        if len(names) >= _MAX_TOOLS:
            return
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
            _push(names, fn["name"])


def _names_from_parts(parts: list[Any], names: list[str]) -> None:
    for part in parts:
        if len(names) >= _MAX_TOOLS:
            return
        if not isinstance(part, dict):
            continue
        kind, name, fn = part.get("type"), part.get("name"), part.get("function")
        if kind in ("tool_call", "tool_use") and isinstance(name, str) and name:
            _push(names, name)
        elif (
            kind in ("function", "tool-call")
            and isinstance(fn, dict)
            and isinstance(fn.get("name"), str)
            and fn["name"]
        ):
            _push(names, fn["name"])


def tool_names(output_choices: Any) -> list[str]:
    """PostHog's ``extractToolCallNames`` (nodejs/src/ingestion/ai/tools/extract-tool-calls.ts).

    The value goes through JSON first, as it does on its way to ingestion.
    """
    raw = output_choices if isinstance(output_choices, str) else None
    choices = json.loads(json.dumps(output_choices, default=str)) if raw is None else None
    if raw is not None:
        try:
            choices = json.loads(raw)
        except ValueError:
            choices = None
    if isinstance(choices, dict) and isinstance(choices.get("choices"), list):
        choices = choices["choices"]
    if not isinstance(choices, list):
        return [m.group(1) for m in _REPR_TOOL_CALL.finditer(raw)] if raw else []
    names: list[str] = []
    for c in choices:
        if len(names) >= _MAX_TOOLS:
            break
        if not isinstance(c, dict):
            continue
        if c.get("type") == "function_call" and isinstance(c.get("name"), str) and c["name"]:
            _push(names, c["name"])
            continue
        message = c.get("message")
        source = message if isinstance(message, dict) and message else c
        if isinstance(source.get("tool_calls"), list):
            _names_from_calls(source["tool_calls"], names)
        for key in ("content", "parts"):
            if isinstance(source.get(key), list):
                _names_from_parts(source[key], names)
    if not names and raw:
        return [m.group(1) for m in _REPR_TOOL_CALL.finditer(raw)]
    return names


# --- posthog's own output, for the same provider values -------------------------------------------


def posthog_chat_stream(chunks: list[Any]) -> Any:
    state = _ChatCompletionsStreamState()
    for chunk in chunks:
        state.process_chunk(chunk)
    return state.formatted_output()


def posthog_responses_stream(events: list[Any]) -> Any:
    state = _ResponsesStreamState()
    for event in events:
        state.process_chunk(event)
    return format_openai_streaming_output(state.output, "responses")


def posthog_anthropic_stream(events: list[Any]) -> Any:
    acc = _AnthropicStreamAccumulator()
    for event in events:
        acc.consume(event)
    return format_anthropic_streaming_output_complete(acc.content_blocks, acc.accumulated_content)


def posthog_gemini_stream(chunks: list[Any]) -> Any:
    blocks: list[Any] = []
    for chunk in chunks:
        blocks.extend(extract_gemini_content_from_chunk(chunk) or [])
    return format_gemini_streaming_output(blocks)


def posthog_langchain(result: LLMResult) -> Any:
    """What posthog's LangChain CallbackHandler sends as $ai_output_choices for `result`."""
    client = MagicMock(privacy_mode=False)
    handler = CallbackHandler(client=client)
    run_id = uuid4()
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id)
    handler.on_llm_end(result, run_id=run_id)
    return client.capture.call_args.kwargs["properties"]["$ai_output_choices"]


class ChunkModel(BaseChatModel):
    """A chat model streaming the given chunks, so LangChain and its callbacks see a real run."""

    chunks: list[AIMessageChunk]

    @property
    def _llm_type(self) -> str:
        return "chunks"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self.chunks:
            yield ChatGenerationChunk(message=chunk)


def posthog_langchain_stream(chunks: list[AIMessageChunk]) -> tuple[Any, list[AIMessageChunk]]:
    """Stream `chunks` through LangChain with posthog's handler: (its output, chunks seen)."""
    client = MagicMock(privacy_mode=False)
    handler = CallbackHandler(client=client)
    seen = list(ChunkModel(chunks=chunks).stream("hi", config={"callbacks": [handler]}))
    return client.capture.call_args.kwargs["properties"]["$ai_output_choices"], seen


class Hostile:
    """Every attribute access, item access and comparison raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("no items")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __bool__(self) -> bool:
        raise RuntimeError("no bool")

    def __iter__(self) -> Any:
        raise RuntimeError("no iter")


class HostileMapping(dict[str, Any]):
    """A dict whose reads raise."""

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("no get")


# --- OpenAI Chat Completions ----------------------------------------------------------------------

CHAT = {
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
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    },
}
CHAT_OUTPUT = [
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "function",
                "id": "call_1",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
        ],
    }
]
CHAT_EXPECTED = Extracted(
    model="gpt-4o-2024-08-06",
    provider="openai",
    output=CHAT_OUTPUT,
    input_tokens=11,
    output_tokens=7,
    cache_read_input_tokens=4,
    reasoning_tokens=3,
    stop_reason="tool_calls",
    cache_reporting_exclusive=False,
)


class TestString:
    def test_str_is_one_assistant_message(self) -> None:
        """A returned str becomes one assistant message with no tokens."""
        assert Extracted(output=[{"role": "assistant", "content": "hi"}]) == extract_generation(
            "hi"
        )


def chat_completion(**changes: Any) -> ChatCompletion:
    return ChatCompletion.model_validate({**CHAT, **changes})


class TestOpenAIChat:
    def test_output_is_what_posthog_sends(self) -> None:
        """The output is posthog's converter output: one message of content blocks."""
        completion = chat_completion()
        assert format_openai_response(completion) == CHAT_OUTPUT
        result = extract_generation(completion)
        assert result is not None
        assert CHAT_OUTPUT == result.output
        assert ["get_weather"] == tool_names(result.output)

    def test_sdk_object_with_tool_calls_cache_and_reasoning(self) -> None:
        """A ChatCompletion gives model, message with tool calls, and all token counts."""
        expected = CHAT_EXPECTED
        assert expected == extract_generation(ChatCompletion.model_validate(CHAT))

    def test_plain_dict(self) -> None:
        """The same shape as a dict reads the same."""
        expected = CHAT_EXPECTED
        assert expected == extract_generation(CHAT)

    def test_namespace(self) -> None:
        """The same shape as attribute namespaces reads the same."""
        expected = CHAT_EXPECTED
        assert expected == extract_generation(ns(CHAT))

    def test_missing_usage_leaves_tokens_none(self) -> None:
        """Without usage every count stays None, and exclusivity is unknown."""
        result = extract_generation(ChatCompletion.model_validate({**CHAT, "usage": None}))
        assert result is not None
        expected = (None, None, None, None, None)
        assert expected == (
            result.input_tokens,
            result.output_tokens,
            result.cache_read_input_tokens,
            result.reasoning_tokens,
            result.cache_reporting_exclusive,
        )

    def test_zero_cached_tokens_is_reported_as_zero(self) -> None:
        """A reported 0 stays 0 and does not declare exclusivity."""
        usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        usage["prompt_tokens_details"] = {"cached_tokens": 0}  # type: ignore[assignment]
        result = extract_generation({**CHAT, "usage": usage})
        assert result is not None
        expected = (5, 1, 0, None, None)
        assert expected == (
            result.input_tokens,
            result.output_tokens,
            result.cache_read_input_tokens,
            result.reasoning_tokens,
            result.cache_reporting_exclusive,
        )

    def test_refusal(self) -> None:
        """A refusal is a refusal block, as posthog sends it."""
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        completion = chat_completion(
            choices=[{"index": 0, "finish_reason": "stop", "message": message}]
        )
        result = extract_generation(completion)
        assert result is not None
        expected = [
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            }
        ]
        assert expected == format_openai_response(completion)
        assert expected == result.output

    def test_empty_message_gives_no_message(self) -> None:
        """A choice without content, refusal or tool calls gives no message, as in posthog."""
        message = {"role": "assistant", "content": ""}
        completion = chat_completion(
            choices=[{"index": 0, "finish_reason": "stop", "message": message}]
        )
        result = extract_generation(completion)
        assert result is not None
        assert [] == format_openai_response(completion)
        assert [] == result.output

    def test_every_choice_goes_into_one_message(self) -> None:
        """With n > 1 all choices' blocks form one message; the first choice's stop reason wins."""
        choices = [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": "a"},
            },
            {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "b"}},
        ]
        completion = chat_completion(choices=choices)
        result = extract_generation(completion)
        assert result is not None
        expected_output = [
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
        assert expected_output == format_openai_response(completion)
        expected = (expected_output, "length")
        assert expected == (result.output, result.stop_reason)
        assert result == extract_generation({**CHAT, "choices": choices})

    def test_custom_tool_call(self) -> None:
        """A custom tool call carries its free-form input as the arguments."""
        call = {"id": "c1", "type": "custom", "custom": {"name": "grep", "input": "foo"}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "finish_reason": "tool_calls", "message": message}
        completion = chat_completion(choices=[choice])
        result = extract_generation(completion)
        assert result is not None
        expected = [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "function",
                        "id": "c1",
                        "function": {"name": "grep", "arguments": "foo"},
                    }
                ],
            }
        ]
        assert expected == format_openai_response(completion)
        assert expected == result.output
        assert ["grep"] == tool_names(result.output)

    def test_audio(self) -> None:
        """An audio answer is an audio block with every field of the audio object."""
        audio = {"id": "a1", "data": "UklGR", "expires_at": 1, "transcript": "hi"}
        message = {"role": "assistant", "content": None, "audio": audio}
        completion = chat_completion(
            choices=[{"index": 0, "finish_reason": "stop", "message": message}]
        )
        result = extract_generation(completion)
        assert result is not None
        expected = format_openai_response(completion)
        assert expected == result.output
        assert expected == extract_generation(completion.model_dump()).output  # type: ignore[union-attr]


# --- OpenAI Responses -----------------------------------------------------------------------------

RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1.0,
    "model": "gpt-4.1-2025-04-14",
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Hello ", "annotations": []},
                {"type": "output_text", "text": "there.", "annotations": []},
            ],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": '{"q": 1}',
            "status": "completed",
        },
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
RESPONSE_OUTPUT = [
    {
        "role": "assistant",
        "content": [
            {"id": "rs_1", "summary": [], "type": "reasoning"},
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "there."},
            {
                "type": "function",
                "id": "call_1",
                "function": {"name": "lookup", "arguments": '{"q": 1}'},
            },
        ],
    }
]
RESPONSE_EXPECTED = Extracted(
    model="gpt-4.1-2025-04-14",
    provider="openai",
    output=RESPONSE_OUTPUT,
    input_tokens=20,
    output_tokens=9,
    cache_read_input_tokens=8,
    reasoning_tokens=5,
    stop_reason="completed",
    cache_reporting_exclusive=False,
)


class TestOpenAIResponses:
    def test_output_is_what_posthog_sends(self) -> None:
        """Each output item is a block: reasoning as it is, text parts, function calls."""
        response = Response.model_validate(RESPONSE)
        assert format_openai_response(response) == RESPONSE_OUTPUT
        result = extract_generation(response)
        assert result is not None
        assert RESPONSE_OUTPUT == result.output
        assert ["lookup"] == tool_names(result.output)

    def test_other_items(self) -> None:
        """Web search calls and other items are kept as posthog keeps them."""
        items = [
            {
                "type": "web_search_call",
                "id": "ws_1",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            },
            {
                "type": "image_generation_call",
                "id": "ig_1",
                "status": "completed",
                "result": "aGk=",
            },
        ]
        response = Response.model_validate({**RESPONSE, "output": items})
        result = extract_generation(response)
        assert result is not None
        assert format_openai_response(response) == result.output

    def test_sdk_object(self) -> None:
        """A Response joins its output text, lists function calls and reads usage details."""
        expected = RESPONSE_EXPECTED
        assert expected == extract_generation(Response.model_validate(RESPONSE))

    def test_plain_dict(self) -> None:
        """The same shape as a dict reads the same."""
        expected = RESPONSE_EXPECTED
        assert expected == extract_generation(RESPONSE)

    def test_incomplete_reason_is_the_stop_reason(self) -> None:
        """An incomplete response is named by what cut it short."""
        data = {
            **RESPONSE,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
        }
        result = extract_generation(Response.model_validate(data))
        assert result is not None
        expected = "max_output_tokens"
        assert expected == result.stop_reason

    def test_refusal(self) -> None:
        """A refusal part is kept on the message."""
        item = {
            "type": "message",
            "id": "m",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "refusal", "refusal": "No."}],
        }
        result = extract_generation({**RESPONSE, "output": [item]})
        assert result is not None
        expected = [{"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}]
        assert expected == format_openai_response(
            Response.model_validate({**RESPONSE, "output": [item]})
        )
        assert expected == result.output

    def test_missing_usage(self) -> None:
        """Without usage the counts stay None."""
        result = extract_generation({**RESPONSE, "usage": None})
        assert result is not None
        expected = (None, None)
        assert expected == (result.input_tokens, result.output_tokens)


# --- Anthropic ------------------------------------------------------------------------------------

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Checking "},
        {"type": "text", "text": "now."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 30,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
        "output_tokens_details": {"thinking_tokens": 9},
    },
}
MESSAGE_EXPECTED = Extracted(
    model="claude-sonnet-4-5",
    provider="anthropic",
    output=[
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "now."},
                {
                    "type": "function",
                    "id": "toolu_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
            ],
        }
    ],
    input_tokens=12,
    output_tokens=30,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=50,
    reasoning_tokens=9,
    stop_reason="tool_use",
    cache_reporting_exclusive=True,
)


class TestAnthropic:
    def test_output_is_what_posthog_sends(self) -> None:
        """Blocks stay blocks: thinking, each text, and tool_use as a function block."""
        message = at.Message.model_validate(MESSAGE)
        assert format_anthropic_response(message) == MESSAGE_EXPECTED.output
        result = extract_generation(message)
        assert result is not None
        assert ["get_weather"] == tool_names(result.output)

    def test_other_blocks(self) -> None:
        """Redacted thinking, empty text and server tool blocks are kept as posthog keeps them."""
        content = [
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": ""},
            {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"q": "x"}},
        ]
        message = at.Message.model_validate({**MESSAGE, "content": content})
        result = extract_generation(message)
        assert result is not None
        assert format_anthropic_response(message) == result.output
        assert result == extract_generation({**MESSAGE, "content": content})

    def test_no_content_gives_no_message(self) -> None:
        """An empty content list gives no message, as in posthog."""
        message = at.Message.model_validate({**MESSAGE, "content": []})
        result = extract_generation(message)
        assert result is not None
        assert [] == format_anthropic_response(message)
        assert [] == result.output

    def test_sdk_object(self) -> None:
        """A Message joins text blocks, lists tool_use blocks and sends input tokens as reported."""
        expected = MESSAGE_EXPECTED
        assert expected == extract_generation(at.Message.model_validate(MESSAGE))

    def test_plain_dict(self) -> None:
        """The same shape as a dict reads the same."""
        expected = MESSAGE_EXPECTED
        assert expected == extract_generation(MESSAGE)

    def test_unset_cache_counts_stay_none(self) -> None:
        """Cache counts the API left out stay None."""
        usage = {"input_tokens": 3, "output_tokens": 4}
        result = extract_generation(at.Message.model_validate({**MESSAGE, "usage": usage}))
        assert result is not None
        expected = (3, 4, None, None, None, True)
        assert expected == (
            result.input_tokens,
            result.output_tokens,
            result.cache_read_input_tokens,
            result.cache_creation_input_tokens,
            result.reasoning_tokens,
            result.cache_reporting_exclusive,
        )


# --- Gemini ---------------------------------------------------------------------------------------


class FinishReason(str, enum.Enum):
    """Stands in for google-genai's string enum."""

    STOP = "STOP"


GEMINI = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"text": "The answer "},
                    {"text": "is 4."},
                    {"function_call": {"name": "calc", "args": {"x": 2}}},
                ],
            },
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
GEMINI_EXPECTED = Extracted(
    model="gemini-2.5-flash",
    provider="gemini",
    output=[
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "thinking..."},
                {"type": "text", "text": "The answer "},
                {"type": "text", "text": "is 4."},
                {"type": "function", "function": {"name": "calc", "arguments": {"x": 2}}},
            ],
        }
    ],
    input_tokens=40,
    output_tokens=6,
    cache_read_input_tokens=32,
    reasoning_tokens=12,
    stop_reason="STOP",
    cache_reporting_exclusive=False,
)


def genai() -> Any:
    return pytest.importorskip("google.genai.types")


class TestGemini:
    def test_output_is_what_posthog_sends(self) -> None:
        """Parts become blocks (thoughts as thinking); a dict reads as its SDK response."""
        response = genai().GenerateContentResponse.model_validate(GEMINI)
        assert format_gemini_response(response) == GEMINI_EXPECTED.output
        result = extract_generation(response)
        assert result is not None
        assert GEMINI_EXPECTED.output == result.output
        assert ["calc"] == tool_names(result.output)

    def test_other_parts(self) -> None:
        """Media, function responses, code and call ids read as posthog reads them."""
        parts = [
            {"inline_data": {"mime_type": "image/png", "data": b"png"}},
            {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://x"}},
            {"function_call": {"id": "c1", "name": "f", "args": {}}},
            {"function_response": {"id": "c1", "name": "f", "response": {"ok": 1}}},
            {"executable_code": {"code": "print(1)", "language": "PYTHON"}},
            {"text": ""},
        ]
        candidate = {"content": {"role": "model", "parts": parts}, "finish_reason": "STOP"}
        data = {**GEMINI, "candidates": [candidate, candidate]}
        response = genai().GenerateContentResponse.model_validate(data)
        result = extract_generation(response)
        assert result is not None
        assert format_gemini_response(response) == result.output
        assert format_gemini_response(response) == extract_generation(data).output  # type: ignore[union-attr]
        assert ["f", "f"] == tool_names(result.output)

    def test_plain_dict(self) -> None:
        """Thoughts are thinking blocks and are not added to the output tokens."""
        expected = GEMINI_EXPECTED
        assert expected == extract_generation(GEMINI)

    def test_namespace_with_enum_finish_reason(self) -> None:
        """An SDK-like object with an enum finish reason gives the enum's name."""
        response = ns(GEMINI)
        response.candidates[0].finish_reason = FinishReason.STOP
        response.candidates[0].content.parts[3].function_call.args = {"x": 2}  # a dict in the SDK
        expected = GEMINI_EXPECTED
        assert expected == extract_generation(response)

    def test_rest_camel_case(self) -> None:
        """Gemini's REST JSON (camelCase) reads the same."""
        data = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "The answer is 4."}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 6,
                "cachedContentTokenCount": 32,
                "thoughtsTokenCount": 12,
            },
            "modelVersion": "gemini-2.5-flash",
        }
        expected = Extracted(
            model="gemini-2.5-flash",
            provider="gemini",
            output=[
                {"role": "assistant", "content": [{"type": "text", "text": "The answer is 4."}]}
            ],
            input_tokens=40,
            output_tokens=6,
            cache_read_input_tokens=32,
            reasoning_tokens=12,
            stop_reason="STOP",
            cache_reporting_exclusive=False,
        )
        assert expected == extract_generation(data)
        response = genai().GenerateContentResponse.model_validate(data)
        assert format_gemini_response(response) == expected.output

    def test_url_context_tokens_count_as_input(self) -> None:
        """With URL context the tool-use prompt tokens are added to the input, as posthog does."""
        candidate = {**GEMINI["candidates"][0], "url_context_metadata": {"url_metadata": [{}]}}  # type: ignore[index]
        usage = {"prompt_token_count": 10, "tool_use_prompt_token_count": 90}
        result = extract_generation({**GEMINI, "candidates": [candidate], "usage_metadata": usage})
        assert result is not None
        expected = 100
        assert expected == result.input_tokens

    def test_missing_usage(self) -> None:
        """Without usage metadata the counts stay None."""
        result = extract_generation({**GEMINI, "usage_metadata": None})
        assert result is not None
        expected = (None, None, None)
        assert expected == (
            result.input_tokens,
            result.output_tokens,
            result.cache_reporting_exclusive,
        )


# --- LangChain ------------------------------------------------------------------------------------


def lc_usage(**counts: Any) -> UsageMetadata:
    return cast(UsageMetadata, counts)


def lc_message(provider: str, model: str, **extra: Any) -> AIMessage:
    return AIMessage(
        content=[{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "t1"}],
        tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "t1", "type": "tool_call"}],
        usage_metadata={
            "input_tokens": 150,
            "output_tokens": 20,
            "total_tokens": 170,
            "input_token_details": {"cache_read": 100, "cache_creation": 30},
            "output_token_details": {"reasoning": 5},
        },
        response_metadata={"model_name": model, "model_provider": provider, **extra},
    )


LC_OUTPUT = [
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "t1"}],
        "tool_calls": [
            {
                "type": "function",
                "id": "t1",
                "function": {"name": "search", "arguments": '{"q": "x"}'},
            }
        ],
    }
]


class TestLangChain:
    def test_output_is_what_posthogs_handler_sends(self) -> None:
        """A message goes out as the CallbackHandler sends it: content as is, OpenAI tool calls."""
        message = lc_message("openai", "gpt-4o", finish_reason="stop")
        assert (
            posthog_langchain(LLMResult(generations=[[ChatGeneration(message=message)]]))
            == LC_OUTPUT
        )
        result = extract_generation(message)
        assert result is not None
        assert LC_OUTPUT == result.output
        assert ["search"] == tool_names(result.output)

    def test_additional_kwargs_and_empty_content(self) -> None:
        """Extra kwargs (raw tool calls, refusal) are merged in; empty content is ''."""
        raw = [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        message = AIMessage(
            content=[],
            tool_calls=[{"name": "f", "args": {}, "id": "t1", "type": "tool_call"}],
            additional_kwargs={"tool_calls": raw, "refusal": None},
        )
        expected = posthog_langchain(LLMResult(generations=[[ChatGeneration(message=message)]]))
        assert expected == extract_generation(message).output  # type: ignore[union-attr]
        assert ["f"] == tool_names(expected)

    def test_openai_message_is_inclusive(self) -> None:
        """Non-Anthropic usage is sent as reported, with cache reads inside the input."""
        message = lc_message("openai", "gpt-4o", finish_reason="stop")
        expected = Extracted(
            model="gpt-4o",
            provider="openai",
            output=LC_OUTPUT,
            input_tokens=150,
            output_tokens=20,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=30,
            reasoning_tokens=5,
            stop_reason="stop",
            cache_reporting_exclusive=False,
        )
        assert expected == extract_generation(message)

    def test_anthropic_message_subtracts_cache(self) -> None:
        """Anthropic models get cache reads and writes subtracted from input, as posthog does."""
        message = lc_message("anthropic", "claude-3-5-haiku", stop_reason="end_turn")
        expected = Extracted(
            model="claude-3-5-haiku",
            provider="anthropic",
            output=LC_OUTPUT,
            input_tokens=20,
            output_tokens=20,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=30,
            reasoning_tokens=5,
            stop_reason="end_turn",
            cache_reporting_exclusive=True,
        )
        assert expected == extract_generation(message)

    def test_claude_model_under_other_provider_is_anthropic(self) -> None:
        """A Claude model name is enough to count as Anthropic."""
        result = extract_generation(lc_message("bedrock", "claude-3-opus"))
        assert result is not None
        expected = (20, True)
        assert expected == (result.input_tokens, result.cache_reporting_exclusive)

    def test_plain_dict(self) -> None:
        """A dict with LangChain's message shape reads the same."""
        message = lc_message("openai", "gpt-4o", finish_reason="stop")
        assert extract_generation(message) == extract_generation(message.model_dump())

    def test_no_usage(self) -> None:
        """A message without usage metadata has no counts."""
        result = extract_generation(AIMessage(content="hello"))
        assert Extracted(output=[{"role": "assistant", "content": "hello"}]) == result

    def test_chat_result(self) -> None:
        """A ChatResult reads through its generations' messages."""
        message = lc_message("openai", "gpt-4o", finish_reason="stop")
        result = extract_generation(ChatResult(generations=[ChatGeneration(message=message)]))
        assert extract_generation(message) == result

    def test_llm_result_text_generations(self) -> None:
        """An LLMResult of plain text generations gives one message per generation."""
        llm_result = LLMResult(generations=[[Generation(text=" a "), Generation(text="b")]])
        assert ["a", "b"] == posthog_langchain(llm_result)
        assert Extracted(output=["a", "b"]) == extract_generation(llm_result)  # type: ignore[list-item]

    def test_llm_result_takes_the_last_prompts_generations(self) -> None:
        """Of an LLMResult's prompts, the last one's generations are the output."""
        first = ChatGeneration(message=AIMessage(content="one"))
        last = ChatGeneration(message=lc_message("openai", "gpt-4o"))
        llm_result = LLMResult(generations=[[first], [last]])
        assert posthog_langchain(llm_result) == extract_generation(llm_result).output  # type: ignore[union-attr]


class TestPlainMessage:
    def test_dict_message(self) -> None:
        """A chat message dict is formatted as posthog formats a completion's message."""
        message = {"role": "assistant", "content": "hi"}
        expected = Extracted(
            output=[{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]
        )
        assert expected == extract_generation(message)

    def test_sdk_message(self) -> None:
        """An OpenAI ChatCompletionMessage gives the blocks of a completion with that message."""
        completion = ChatCompletion.model_validate(CHAT)
        message = completion.choices[0].message
        assert format_openai_response(completion) == extract_generation(message).output  # type: ignore[union-attr]

    def test_message_with_content_blocks(self) -> None:
        """A message whose content is already a list of blocks keeps them."""
        blocks = [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]
        message = {"role": "assistant", "content": blocks}
        expected = Extracted(output=[{"role": "assistant", "content": blocks}])
        assert expected == extract_generation(message)
        assert ["f"] == tool_names(expected.output)


class TestUnknown:
    @pytest.mark.parametrize(
        "value",
        [
            None,
            42,
            1.5,
            b"bytes",
            object(),
            {},
            [],
            ["a"],
            {"foo": 1},
            {"choices": "x"},
            ns({"a": 1}),
        ],
    )
    def test_unknown_shapes_give_none(self, value: object) -> None:
        """Nothing recognisable gives None."""
        assert None is extract_generation(value)
        assert None is extract_embedding(value)

    @pytest.mark.parametrize("value", [Hostile(), HostileMapping(a=1)], ids=["attrs", "mapping"])
    def test_hostile_objects_give_none(self, value: object) -> None:
        """Objects whose every access raises give None instead of raising."""
        assert None is extract_generation(value)
        assert None is extract_embedding(value)

    def test_hostile_usage_leaves_tokens_unknown(self) -> None:
        """A usage object that raises does not lose the rest of the result."""
        result = extract_generation({**CHAT, "usage": Hostile()})
        assert result is not None
        expected = (CHAT_OUTPUT, None)
        assert expected == (result.output, result.input_tokens)

    def test_hostile_parts_never_raise(self) -> None:
        """Hostile values anywhere inside a known shape never raise."""
        for data in (
            {**CHAT, "choices": [Hostile()]},
            {**CHAT, "choices": [{"message": Hostile(), "finish_reason": Hostile()}]},
            {**MESSAGE, "content": [Hostile()], "stop_reason": Hostile()},
            {**GEMINI, "candidates": [Hostile()]},
            {**RESPONSE, "output": [Hostile()], "status": Hostile()},
        ):
            extract_generation(data)

    def test_bools_are_not_counts(self) -> None:
        """A bool where a count should be is not taken as a count."""
        result = extract_generation({**CHAT, "usage": {"prompt_tokens": True}})
        assert result is not None
        assert None is result.input_tokens


# --- Embeddings -----------------------------------------------------------------------------------

EMBEDDING = {
    "object": "list",
    "data": [{"object": "embedding", "embedding": [0.1, 0.2], "index": 0}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


class TestEmbedding:
    def test_openai_sdk_object(self) -> None:
        """A CreateEmbeddingResponse gives model and prompt tokens."""
        expected = Extracted(model="text-embedding-3-small", provider="openai", input_tokens=8)
        assert expected == extract_embedding(CreateEmbeddingResponse.model_validate(EMBEDDING))

    def test_openai_dict(self) -> None:
        """The same shape as a dict reads the same."""
        expected = Extracted(model="text-embedding-3-small", provider="openai", input_tokens=8)
        assert expected == extract_embedding(EMBEDDING)

    def test_gemini_vertex_statistics_are_summed(self) -> None:
        """Vertex AI per-embedding token counts (floats in the SDK) are summed."""
        response = ns({"embeddings": [{"values": [0.1], "statistics": {"token_count": 3.0}}] * 2})
        assert Extracted(provider="gemini", input_tokens=6) == extract_embedding(response)

    def test_gemini_without_statistics(self) -> None:
        """Gemini API embeddings carry no token count."""
        response = {"embeddings": [{"values": [0.1]}]}
        assert Extracted(provider="gemini") == extract_embedding(response)


# --- Streams --------------------------------------------------------------------------------------


def chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": choices,
        **extra,
    }
    return ChatCompletionChunk.model_validate(data)


def tool_delta(index: int, args: str, call_id: str | None = None, name: str | None = None) -> Any:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def no_index_chunk(call: dict[str, Any]) -> Any:
    """A chunk of an OpenAI-compatible provider that leaves out the tool call index."""
    call = {"id": None, "type": None, **call}
    delta = {"content": None, "refusal": None, "tool_calls": [call]}
    return ns({"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


OPENAI_STREAM = [
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"content": "Hel"}),
    chat_chunk({"content": "lo"}),
    chat_chunk(tool_delta(0, "", "call_1", "f")),
    chat_chunk(tool_delta(0, '{"a":')),
    chat_chunk(tool_delta(1, '{"b": 2}', "call_2", "g")),
    chat_chunk(tool_delta(0, " 1}")),
    chat_chunk({}, "tool_calls"),
    chat_chunk(
        None,
        usage={
            "prompt_tokens": 9,
            "completion_tokens": 4,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    ),
]
OPENAI_STREAM_OUTPUT = [
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Hello"},
            {
                "type": "function",
                "id": "call_1",
                "function": {"name": "f", "arguments": '{"a": 1}'},
            },
            {
                "type": "function",
                "id": "call_2",
                "function": {"name": "g", "arguments": '{"b": 2}'},
            },
        ],
    }
]


class TestStreamStrings:
    def test_strings_are_joined(self) -> None:
        """Str chunks join into one assistant message."""
        result, acc = accumulate(["a", "b", "c"])
        assert Extracted(output=[{"role": "assistant", "content": "abc"}]) == result
        expected_counts = (3, 0)
        assert expected_counts == (acc.chunks, acc.ignored)

    def test_empty_stream(self) -> None:
        """No chunks give one empty message and no counts (hogtrace's own shape)."""
        assert (
            Extracted(output=[{"role": "assistant", "content": ""}]) == StreamAccumulator().result()
        )


class TestStreamOpenAIChat:
    def test_output_is_what_posthog_sends(self) -> None:
        """The joined stream is what posthog's stream wrapper sends for the same chunks."""
        assert posthog_chat_stream(OPENAI_STREAM) == OPENAI_STREAM_OUTPUT
        result, _ = accumulate(OPENAI_STREAM)
        assert ["f", "g"] == tool_names(result.output)

    def test_choices_refusal_and_tool_calls_without_index(self) -> None:
        """Each choice's blocks in index order; refusals; tool deltas without an index."""
        chunks = [
            chat_chunk({"content": "a"}),
            ChatCompletionChunk.model_validate(
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "m",
                    "choices": [{"index": 1, "delta": {"refusal": "no"}, "finish_reason": "stop"}],
                }
            ),
            no_index_chunk(
                {"id": "x", "type": "function", "function": {"name": "h", "arguments": "{"}}
            ),
            no_index_chunk({"function": {"name": None, "arguments": "}"}}),
            chat_chunk({}, "stop"),
        ]
        result, _ = accumulate(chunks)
        assert posthog_chat_stream(chunks) == result.output
        assert ["h"] == tool_names(result.output)
        assert "stop" == result.stop_reason

    def test_empty_stream_of_chunks(self) -> None:
        """Chunks without content give one message with no blocks, as in posthog."""
        chunks = [chat_chunk({"role": "assistant", "content": ""}), chat_chunk({}, "stop")]
        expected = [{"role": "assistant", "content": []}]
        assert expected == posthog_chat_stream(chunks)
        assert expected == accumulate(chunks)[0].output

    def test_usage_in_last_chunk_and_tool_calls_merged(self) -> None:
        """Text joins, tool call fragments merge by index, and usage comes from the last chunk."""
        expected = Extracted(
            model="gpt-4o-mini",
            provider="openai",
            output=OPENAI_STREAM_OUTPUT,
            input_tokens=9,
            output_tokens=4,
            cache_read_input_tokens=2,
            reasoning_tokens=1,
            stop_reason="tool_calls",
            cache_reporting_exclusive=False,
        )
        result, acc = accumulate(OPENAI_STREAM)
        assert expected == result
        expected_counts = (9, 0)
        assert expected_counts == (acc.chunks, acc.ignored)

    def test_dict_chunks(self) -> None:
        """The same chunks as dicts read the same."""
        chunks = [chunk.model_dump() for chunk in OPENAI_STREAM]
        assert accumulate(OPENAI_STREAM)[0] == accumulate(chunks)[0]

    def test_no_usage(self) -> None:
        """Without include_usage the counts stay None."""
        result, _ = accumulate(OPENAI_STREAM[:-1])
        expected = (OPENAI_STREAM_OUTPUT, None, None, None)
        assert expected == (
            result.output,
            result.input_tokens,
            result.output_tokens,
            result.cache_reporting_exclusive,
        )

    def test_a_chunk_with_content_blocks_keeps_the_rest_of_the_stream(self) -> None:
        """Some OpenAI-compatible providers send ``delta.content`` as blocks (a thinking block,
        then text): the text joins, the block is kept, and tokens, provider and stop reason
        of the other chunks are not lost (one such chunk emptied the whole extraction)."""
        chunks = [chunk.model_dump() for chunk in OPENAI_STREAM]
        thinking = {"type": "thinking", "thinking": "Let me see."}

        def blocks(*content: dict[str, str]) -> dict[str, Any]:
            return {**chunks[0], "choices": [{"index": 0, "delta": {"content": list(content)}}]}

        plain, _ = accumulate(chunks)
        result, _ = accumulate(
            [
                blocks({"type": "thinking", "thinking": "Let me "}),  # a piece at a time
                blocks(
                    {"type": "thinking", "thinking": "see."}, {"type": "text", "text": "Well, "}
                ),
                *chunks,
            ]
        )

        assert (plain.input_tokens, plain.output_tokens, plain.stop_reason) == (
            result.input_tokens,
            result.output_tokens,
            result.stop_reason,
        )
        content = result.output[0]["content"]
        assert thinking == content[0]
        assert content[1]["text"].startswith("Well, ")

    def test_result_can_be_taken_twice(self) -> None:
        """Result does not consume the accumulated state."""
        acc = StreamAccumulator()
        for chunk in OPENAI_STREAM:
            acc.add(chunk)
        assert acc.result() == acc.result()


class TestStreamOpenAIResponses:
    def test_completed_event_carries_output_and_usage(self) -> None:
        """Text deltas are superseded by the completed response, which also gives the usage."""
        response = Response.model_validate(RESPONSE)
        created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
        events = [
            ResponseCreatedEvent(
                type="response.created",
                response=Response.model_validate(created),
                sequence_number=0,
            ),
            ResponseTextDeltaEvent(
                type="response.output_text.delta",
                delta="Hello ",
                item_id="msg_1",
                output_index=1,
                content_index=0,
                logprobs=[],
                sequence_number=1,
            ),
            ResponseCompletedEvent(type="response.completed", response=response, sequence_number=2),
        ]
        result, acc = accumulate(events)
        expected = RESPONSE_EXPECTED
        assert expected == result
        assert posthog_responses_stream(events) == result.output
        expected_ignored = 0
        assert expected_ignored == acc.ignored

    def test_text_deltas_without_completion(self) -> None:
        """A stream cut before completion keeps its text deltas (posthog would send [])."""
        events = [
            {"type": "response.output_text.delta", "delta": "Hel"},
            {"type": "response.output_text.delta", "delta": "lo"},
        ]
        output = [{"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]
        expected = Extracted(provider="openai", output=output)
        assert expected == accumulate(events)[0]

    def test_finished_items_without_completion(self) -> None:
        """A stream cut before completion keeps the items it finished (a function call, the
        reasoning), in output order, and the text of the message it was still writing."""
        done = [
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=item,
                output_index=index,
                sequence_number=index,
            )
            for index, item in ((0, RESPONSE["output"][0]), (2, RESPONSE["output"][2]))
        ]
        deltas = [
            ResponseTextDeltaEvent(
                type="response.output_text.delta",
                delta=delta,
                item_id="msg_1",
                output_index=1,
                content_index=0,
                logprobs=[],
                sequence_number=3 + n,
            )
            for n, delta in enumerate(("Hello ", "there."))
        ]
        result, acc = accumulate([done[0], deltas[0], done[1], deltas[1]])
        reasoning, text, call = result.output[0]["content"]
        assert {"id": "rs_1", "summary": [], "type": "reasoning"} == reasoning
        assert {"type": "text", "text": "Hello there."} == text
        assert RESPONSE_OUTPUT[0]["content"][-1] == call
        assert "function" == call["type"]
        assert 0 == acc.ignored

    def test_deltas_without_an_output_index_come_after_the_finished_items(self) -> None:
        events = [
            {"type": "response.output_item.done", "item": RESPONSE["output"][0]},
            {"type": "response.output_text.delta", "delta": "Hi there"},
        ]
        content = accumulate(events)[0].output[0]["content"]
        text = {"type": "text", "text": "Hi there"}
        assert [{"id": "rs_1", "summary": [], "type": "reasoning"}, text] == content

    def test_a_finished_message_is_not_doubled_by_its_deltas(self) -> None:
        message = RESPONSE["output"][1]
        events = [
            {"type": "response.output_text.delta", "delta": "Hello ", "output_index": 1},
            {"type": "response.output_text.delta", "delta": "there.", "output_index": 1},
            {"type": "response.output_item.done", "item": message, "output_index": 1},
        ]
        texts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}]
        assert [{"role": "assistant", "content": texts}] == accumulate(events)[0].output


ANTHROPIC_STREAM: list[dict[str, Any]] = [
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
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Checking "},
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "now."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 30},
    },
    {"type": "message_stop"},
]
ANTHROPIC_EVENT_TYPES: dict[str, type[BaseModel]] = {
    "message_start": at.RawMessageStartEvent,
    "content_block_start": at.RawContentBlockStartEvent,
    "content_block_delta": at.RawContentBlockDeltaEvent,
    "content_block_stop": at.RawContentBlockStopEvent,
    "message_delta": at.RawMessageDeltaEvent,
    "message_stop": at.RawMessageStopEvent,
}


def anthropic_events(events: list[dict[str, Any]]) -> list[Any]:
    return [ANTHROPIC_EVENT_TYPES[e["type"]].model_validate(e) for e in events]


class TestStreamAnthropic:
    expected = Extracted(
        model="claude-sonnet-4-5",
        provider="anthropic",
        output=[
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking now."},
                    {
                        "type": "function",
                        "id": "toolu_1",
                        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                    },
                ],
            }
        ],
        input_tokens=12,
        output_tokens=30,
        cache_read_input_tokens=100,
        cache_creation_input_tokens=50,
        stop_reason="tool_use",
        cache_reporting_exclusive=True,
    )

    def test_sdk_events(self) -> None:
        """Raw SDK events give the text, the parsed tool input, and start plus delta usage."""
        events = anthropic_events(ANTHROPIC_STREAM)
        result, acc = accumulate(events)
        assert self.expected == result
        assert posthog_anthropic_stream(events) == result.output
        assert ["get_weather"] == tool_names(result.output)
        expected_ignored = 0
        assert expected_ignored == acc.ignored

    def test_dict_events(self) -> None:
        """The same events as dicts read the same."""
        assert self.expected == accumulate(ANTHROPIC_STREAM)[0]

    def test_a_stream_cut_before_message_delta_reports_no_output_count(self) -> None:
        """``message_start``'s ``output_tokens: 1`` is a placeholder, not a count: a stream cut
        before ``message_delta`` has an unknown output count (posthog's accumulator reads only
        the input counts from ``message_start`` too)."""
        result, _ = accumulate(anthropic_events(ANTHROPIC_STREAM[:5]))
        assert result.output_tokens is None
        assert (12, 100, 50) == (
            result.input_tokens,
            result.cache_read_input_tokens,
            result.cache_creation_input_tokens,
        )

    def test_unfinished_tool_input_is_left_empty(self) -> None:
        """Tool input whose block never stopped (or is not JSON) stays {}, as in posthog."""
        events = anthropic_events([*ANTHROPIC_STREAM[:6], ANTHROPIC_STREAM[6], ANTHROPIC_STREAM[9]])
        result, _ = accumulate(events)
        assert posthog_anthropic_stream(events) == result.output
        expected: dict[str, Any] = {}
        assert expected == result.output[0]["content"][1]["function"]["arguments"]  # type: ignore[index]

    def test_thinking_and_server_tool_blocks(self) -> None:
        """Thinking deltas and signatures join; blocks posthog skips do not shift the indexes."""
        events = anthropic_events(
            [
                ANTHROPIC_STREAM[0],
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "hm"},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "sig"},
                },
                {"type": "content_block_stop", "index": 0},
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "server_tool_use",
                        "id": "s1",
                        "name": "web_search",
                        "input": {},
                    },
                },
                {"type": "content_block_stop", "index": 1},
                *[{**e, "index": e["index"] + 2} for e in ANTHROPIC_STREAM[5:9]],
                *ANTHROPIC_STREAM[9:],
            ]
        )
        result, acc = accumulate(events)
        assert posthog_anthropic_stream(events) == result.output
        assert ["get_weather"] == tool_names(result.output)
        assert 0 == acc.ignored

    def test_no_blocks(self) -> None:
        """A stream with no content blocks gives one empty text block, as in posthog."""
        events = anthropic_events([ANTHROPIC_STREAM[0], *ANTHROPIC_STREAM[9:]])
        expected = [{"role": "assistant", "content": [{"type": "text", "text": ""}]}]
        assert expected == posthog_anthropic_stream(events)
        assert expected == accumulate(events)[0].output

    def test_helper_events_are_known_but_not_doubled(self) -> None:
        """Stream-helper text events do not repeat the raw deltas' text."""
        helper = {"type": "text", "text": "now.", "snapshot": "Checking now."}
        result, acc = accumulate([*ANTHROPIC_STREAM[:4], helper, *ANTHROPIC_STREAM[4:]])
        assert self.expected == result
        expected_ignored = 0
        assert expected_ignored == acc.ignored


class TestStreamGemini:
    def test_chunks_join_and_last_usage_wins(self) -> None:
        """Partial texts join and the last usage metadata seen gives the counts."""
        chunks = [
            {
                "candidates": [{"content": {"parts": [{"text": "The "}]}}],
                "usage_metadata": {"prompt_token_count": 40, "candidates_token_count": 1},
                "model_version": "gemini-2.5-flash",
            },
            ns(
                {
                    "candidates": [{"content": {"parts": [{"text": "answer"}]}}],
                    "usage_metadata": None,
                    "model_version": "gemini-2.5-flash",
                }
            ),
            {
                "candidates": [
                    {
                        "content": {"parts": [{"function_call": {"name": "f", "args": {}}}]},
                        "finish_reason": "STOP",
                    }
                ],
                "usage_metadata": {
                    "prompt_token_count": 40,
                    "candidates_token_count": 6,
                    "thoughts_token_count": 3,
                },
                "model_version": "gemini-2.5-flash",
            },
        ]
        expected = Extracted(
            model="gemini-2.5-flash",
            provider="gemini",
            output=[
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "The answer"},
                        {"type": "function", "function": {"name": "f", "arguments": {}}},
                    ],
                }
            ],
            input_tokens=40,
            output_tokens=6,
            reasoning_tokens=3,
            stop_reason="STOP",
        )
        result, acc = accumulate(chunks)
        assert expected == result
        expected_ignored = 0
        assert expected_ignored == acc.ignored

    def test_output_is_what_posthog_sends(self) -> None:
        """SDK chunks: text runs join between thoughts and calls, as posthog joins them."""
        parts = [
            [{"text": "hm", "thought": True}],
            [{"text": "The "}],
            [{"text": "answer"}, {"function_call": {"name": "f", "args": {"x": 1}}}],
            [{"text": "."}],
        ]
        response = genai().GenerateContentResponse
        chunks = [
            response.model_validate({"candidates": [{"content": {"role": "model", "parts": p}}]})
            for p in parts
        ]
        result, _ = accumulate(chunks)
        assert posthog_gemini_stream(chunks) == result.output
        assert ["f"] == tool_names(result.output)


class TestStreamLangChain:
    def test_chunks_sum_usage_and_merge_tool_calls(self) -> None:
        """AIMessageChunk usage is summed and tool call chunks merge into one JSON string."""
        chunks = [
            AIMessageChunk(
                content="",
                usage_metadata=lc_usage(
                    input_tokens=150,
                    output_tokens=0,
                    total_tokens=150,
                    input_token_details=InputTokenDetails(cache_read=100, cache_creation=30),
                ),
                response_metadata={"model_name": "claude-3-5-haiku", "model_provider": "anthropic"},
            ),
            AIMessageChunk(content=[{"type": "text", "text": "Sure.", "index": 0}]),
            AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name="search", args='{"q": ', id="t1", index=1)],
            ),
            AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name=None, args='"x"}', id=None, index=1)],
            ),
            AIMessageChunk(
                content="",
                usage_metadata=lc_usage(input_tokens=0, output_tokens=20, total_tokens=20),
                response_metadata={"stop_reason": "tool_use"},
            ),
        ]
        expected = Extracted(
            model="claude-3-5-haiku",
            provider="anthropic",
            output=[
                {
                    "role": "assistant",
                    "content": [
                        "",
                        {"type": "text", "text": "Sure.", "index": 0},
                    ],  # LangChain's sum
                    "tool_calls": [
                        {
                            "type": "function",
                            "id": "t1",
                            "function": {"name": "search", "arguments": '{"q": "x"}'},
                        }
                    ],
                }
            ],
            input_tokens=20,
            output_tokens=20,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=30,
            stop_reason="tool_use",
            cache_reporting_exclusive=True,
        )
        acc = StreamAccumulator()
        for chunk in chunks:
            acc.add(chunk)
        assert expected == acc.result()
        assert expected == acc.result()  # the Anthropic subtraction is not applied twice

    def test_output_is_what_posthogs_handler_sends(self) -> None:
        """The chunks a model streams sum to what the CallbackHandler sends at the end."""
        chunks = [
            AIMessageChunk(content="Sure"),
            AIMessageChunk(content=". "),
            AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name="search", args='{"q": ', id="t1", index=0)],
            ),
            AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name=None, args='"x"}', id=None, index=0)],
            ),
        ]
        expected, seen = posthog_langchain_stream(chunks)
        result, _ = accumulate(seen)
        assert expected == result.output
        assert ["search"] == tool_names(result.output)

    def test_dict_chunks(self) -> None:
        """Chunks as dicts: joined text and the tool calls whose arguments parse."""
        chunks = [
            AIMessageChunk(content="Sure."),
            AIMessageChunk(
                content="",
                tool_call_chunks=[
                    tool_call_chunk(name="search", args='{"q": "x"}', id="t1", index=0)
                ],
            ),
        ]
        total = chunks[0] + chunks[1]
        assert (
            extract_generation(total).output
            == accumulate([c.model_dump() for c in chunks])[0].output
        )  # type: ignore[union-attr]

    def test_summed_chunks_match_the_whole_message(self) -> None:
        """Accumulating chunks gives what extracting their LangChain sum gives."""
        chunks = [
            AIMessageChunk(content="a", response_metadata={"model_name": "gpt-4o"}),
            AIMessageChunk(
                content="b",
                usage_metadata=lc_usage(input_tokens=3, output_tokens=2, total_tokens=5),
            ),
        ]
        total = chunks[0] + chunks[1]
        assert extract_generation(total) == accumulate(chunks)[0]


class TestStreamUnknown:
    def test_unknown_chunks_are_counted_and_skipped(self) -> None:
        """Unrecognised chunks are ignored but counted."""
        result, acc = accumulate(["a", 1, object(), {"x": 1}, None, "b"])
        assert Extracted(output=[{"role": "assistant", "content": "ab"}]) == result
        expected_counts = (6, 4)
        assert expected_counts == (acc.chunks, acc.ignored)

    def test_text_blocks_are_joined(self) -> None:
        """Bare text content blocks join like strings."""
        result, acc = accumulate([{"type": "text", "text": "a"}, ns({"type": "text", "text": "b"})])
        assert Extracted(output=[{"role": "assistant", "content": "ab"}]) == result
        expected_ignored = 0
        assert expected_ignored == acc.ignored

    def test_hostile_chunks_never_raise(self) -> None:
        """Chunks whose every access raises are counted as ignored."""
        hostile_chat = {
            "object": "chat.completion.chunk",
            "choices": [Hostile()],
            "usage": Hostile(),
        }
        result, acc = accumulate(
            [
                "a",
                Hostile(),
                HostileMapping(a=1),
                hostile_chat,
                {"type": "message_start", "message": Hostile()},
            ]
        )
        expected_text = "a"
        assert expected_text == result.output[0]["content"]  # type: ignore[index]
        expected_counts = (5, 2)
        assert expected_counts == (acc.chunks, acc.ignored)

    def test_tool_args_json_round_trip(self) -> None:
        """Merged OpenAI tool arguments are the exact JSON text streamed."""
        result, _ = accumulate(OPENAI_STREAM)
        calls = result.output[0]["content"][1:]  # type: ignore[index]
        expected = [{"a": 1}, {"b": 2}]
        assert expected == [json.loads(c["function"]["arguments"]) for c in calls]


# --- input ----------------------------------------------------------------------------------------


def posthog_langchain_input(messages: list[BaseMessage]) -> Any:
    client = MagicMock(privacy_mode=False)
    handler = CallbackHandler(client=client)
    run_id = uuid4()
    handler.on_chat_model_start({}, [messages], run_id=run_id)
    handler.on_llm_end(LLMResult(generations=[[Generation(text="x")]]), run_id=run_id)
    return client.capture.call_args.kwargs["properties"]["$ai_input"]


class TestFormatInput:
    def test_openai_chat(self) -> None:
        """Chat messages keep role, content and tool keys; a separate system prompt goes first."""
        kwargs = {
            "model": "gpt-4o",
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "weather?", "extra": 1},
                ChatCompletion.model_validate(CHAT).choices[0].message,
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        }
        expected = merge_system_prompt(kwargs, "openai")
        assert expected == format_input("openai", kwargs)
        assert expected == format_input(None, kwargs)

    def test_openai_responses(self) -> None:
        """Responses input items and instructions read as posthog reads them."""
        kwargs = {
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "c", "output": "ok", "id": None},
            ],
            "instructions": "Be brief.",
        }
        assert merge_system_prompt(kwargs, "openai") == format_input("openai", kwargs)
        kwargs = {"input": "hi", "instructions": "Be brief.", "system": "You help."}
        assert merge_system_prompt(kwargs, "openai") == format_input(None, kwargs)

    def test_anthropic(self) -> None:
        """The system prompt becomes the first message; content blocks are made plain."""
        kwargs = {
            "system": [{"type": "text", "text": "Be brief.", "cache_control": None}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": at.Message.model_validate(MESSAGE).content},
            ],
        }
        expected = merge_system_prompt(kwargs, "anthropic")
        assert expected == format_input("anthropic", kwargs)

    def test_gemini(self) -> None:
        """Contents become messages of blocks, after the config's system instruction."""
        types = genai()
        contents = [
            "hi",
            {
                "role": "user",
                "parts": [{"text": "a"}, {"inline_data": {"mime_type": "image/png", "data": b"x"}}],
            },
            types.Content(role="model", parts=[types.Part(text="b", thought=True)]),
            {"text": "bare"},
            types.Part(function_response=types.FunctionResponse(name="f", response={"ok": 1})),
            # Text parts, the usual ones read without a dump, and their near misses:
            {
                "role": "user",
                "parts": [
                    types.Part(text="only text"),
                    types.Part(text="set", thought=None),
                    types.Part(text=""),
                    types.Part(text="t", thought=True),
                    {"text": "plain"},
                    {"text": None},
                    {"text": ""},
                    {"text": 5},
                    {"text": "a", "thought": True},
                ],
            },
            types.Content(role="user", parts=[types.Part(text="sdk"), types.Part(text="")]),
        ]
        for config in (
            types.GenerateContentConfig(system_instruction="Be brief."),
            {"systemInstruction": "Be brief."},
            None,
        ):
            kwargs = {"contents": contents, "config": config}
            expected = merge_system_prompt(kwargs, "gemini")
            assert expected == format_input("gemini", kwargs)
            assert expected == format_input(None, kwargs)
        kwargs = {"contents": "one string"}
        assert merge_system_prompt(kwargs, "gemini") == format_input("gemini", kwargs)

    def test_langchain(self) -> None:
        """LangChain messages are sent as posthog's CallbackHandler sends them."""
        messages = [
            HumanMessage("hi"),
            lc_message("openai", "gpt-4o"),
            AIMessage(content="", additional_kwargs={"refusal": "no"}),
        ]
        expected = posthog_langchain_input(messages)
        assert expected == format_input(None, {"messages": messages})
        assert expected == format_input("anthropic", {"messages": [messages]})

    @pytest.mark.parametrize(
        ("provider", "key"),
        [("openai", "messages"), ("openai", "input"), ("gemini", "contents"), (None, "contents")],
    )
    @pytest.mark.parametrize("count", [3, 2_000])
    def test_items_that_are_no_message(self, provider: str | None, key: str, count: int) -> None:
        """Each is its str(), many items or few (left for the snapshot when recorded)."""
        values = [
            [0.5] * count,
            tuple(range(count)),
            {"role": "user", "parts": tuple({"text": "p"} for _ in range(count))},
            dict.fromkeys(range(count), "a"),
            [[1, "x"], (2,)] * count,
            5,
        ]
        kwargs = {key: values}
        assert merge_system_prompt(kwargs, provider or "gemini") == format_input(provider, kwargs)

    def test_a_model_message_is_dumped_as_far_as_it_is_read(self) -> None:
        """A pydantic message: its role, content and tool keys, as posthog reads them."""
        dumped: list[str] = []

        class Note(BaseModel):
            role: str
            content: str | None
            name: str | None = None
            tags: list[str]

            @field_serializer("tags")
            def _tags(self, tags: list[str]) -> list[str]:
                dumped.append("tags")
                return tags

        kwargs = {"messages": [Note(role="user", content="hi", tags=["a"] * 1_000)]}
        assert [{"role": "user", "content": "hi"}] == format_input("openai", kwargs)
        assert [] == dumped  # what is not read is not dumped
        assert merge_system_prompt(kwargs, "openai") == format_input("openai", kwargs)

    def test_a_root_model_message_is_dumped_whole(self) -> None:
        """A pydantic root model has no keys to pick: it is dumped as posthog dumps it."""

        class Items(RootModel[list[int]]):
            pass

        class Pair(RootModel[tuple[int, int]]):
            pass

        kwargs = {"messages": [Items([1, 2]), Pair((3, 4))]}
        assert merge_system_prompt(kwargs, "openai") == format_input("openai", kwargs)
        assert "[1, 2]" == format_input("openai", kwargs)[0]["content"]

    def test_an_item_that_cannot_be_printed(self) -> None:
        """format_input never raises: an item whose str() raises gives None, as before."""

        class Bad:
            def __repr__(self) -> str:
                raise RuntimeError("repr")

        assert None is format_input("openai", {"messages": [[Bad()]]})
        assert None is format_input("openai", {"messages": [[Bad()] * 2_000]})

    def test_a_dataclass_message_is_read_as_posthog_reads_it(self) -> None:
        """Its role, content and tool keys, as ``asdict()`` gives them; other fields unread."""

        @dataclasses.dataclass
        class Turn:
            role: str
            content: Any
            tags: list[str]
            name: str | None = None

        @dataclasses.dataclass
        class Block:
            type: str
            text: str

        messages = [
            Turn("user", "hi", ["a"] * 1_000),
            Turn("assistant", [Block("text", "yo"), {"type": "text", "text": "ok"}], []),
            Turn("user", None, ["b"], name="n"),
        ]
        kwargs = {"messages": messages}
        expected = merge_system_prompt(kwargs, "openai")
        assert expected == format_input("openai", kwargs)
        assert {"type": "text", "text": "yo"} == expected[1]["content"][0]

    def test_langchain_lists_are_checked_as_read(self) -> None:
        """Lists of lists are read as LangChain's only while their items are messages."""

        class Unread(list[Any]):
            def __iter__(self) -> Any:
                raise AssertionError("read")

        messages = [[0.5, 1.5], Unread([2.5])]
        assert [{"role": "user", "content": "[0.5, 1.5]"}] == format_input(
            "openai", {"messages": messages[:1]}
        )
        assert None is _lc_messages(messages)
        lc = [HumanMessage("hi")]
        assert [*lc, *lc] == _lc_messages([lc, lc])

    @pytest.mark.parametrize(
        ("provider", "arguments"),
        [
            (None, {"prompt": "hi"}),
            ("anthropic", {"input": "hi"}),
            ("gemini", {"messages": []}),
            (None, {"messages": Hostile()}),
        ],
    )
    def test_nothing_to_format_gives_none(self, provider: str | None, arguments: Any) -> None:
        """Arguments without the provider's input keys (or unreadable ones) give None."""
        assert None is format_input(provider, arguments)


class Role(str, enum.Enum):
    USER = "user"


class Key(str, enum.Enum):
    ROLE = "role"


class Text(str):
    pass


def plain_and_near_misses() -> list[Any]:
    """Plain ``{"role": str, "content": str}`` messages, and messages that only look like them."""
    return [
        {"role": "user", "content": "hi"},
        {"content": "hi", "role": "user"},
        {"role": "system", "content": ""},
        {"role": "", "content": "hi"},
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "user", "content": "hi", "name": None},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "", "tool_calls": CHAT_TOOL_CALLS},
        {"role": "assistant", "content": "no", "refusal": "no"},
        {"role": "assistant", "content": "hi", "audio": {"id": "a1", "data": None}},
        {"role": None, "content": "hi"},
        {"content": "hi"},
        {"role": "user"},
        {"role": "user", "content": None},
        {},
        {"role": 1, "content": "hi"},
        {"role": Role.USER, "content": "hi"},
        {"role": "user", "content": Text("hi")},
        {Key.ROLE: "user", "content": "hi"},
        {"role": "user", "content": ["hi"]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": {"type": "text", "text": "hi"}},
        {"role": "user", "content": 3},
        HostileMapping(role="user", content="hi"),
        ChatCompletion.model_validate(CHAT).choices[0].message,
        SimpleNamespace(role="user", content="hi"),
        "hi",
        None,
    ]


CHAT_TOOL_CALLS = CHAT["choices"][0]["message"]["tool_calls"]  # type: ignore[index]


def items(messages: list[dict[str, Any]] | None) -> Any:
    """Messages as lists of (key, value) pairs: equal only with the keys in the same order."""
    return None if messages is None else [list(message.items()) for message in messages]


class TestPlainMessages:
    """The fast path for plain chat messages gives what the general path gives."""

    @pytest.mark.parametrize("message", plain_and_near_misses())
    def test_one_message_as_the_general_path(self, message: Any) -> None:
        """Each message formats to the same keys, in the same order, with the same values."""
        out, size = _openai_messages([message])
        assert items([_openai_message(message)]) == items(out)
        assert size is None or size == _text_size(out)

    @pytest.mark.parametrize("message", plain_and_near_misses())
    def test_one_message_as_text_messages(self, message: Any) -> None:
        """A message kept as text makes the message the general path makes, sized alike."""
        texts = _text_messages([{"role": "user", "content": "first"}, message])
        general = [{"role": "user", "content": "first"}, _openai_message(message)]
        if texts is not None:  # else the general path formats it
            assert items(general) == items(texts.messages())
            assert _text_size(general) == texts.size

    def test_which_messages_are_text(self) -> None:
        """The plain messages are text, a str-enum "role" key too (it reads as "role")."""
        near = plain_and_near_misses()
        taken = [m for m in near if _text_messages([m]) is not None]
        assert [*near[:4], {Key.ROLE: "user", "content": "hi"}] == taken

    @pytest.mark.parametrize("message", plain_and_near_misses())
    def test_one_message_as_posthog(self, message: Any) -> None:
        """Each message reads as posthog's own converter reads it (a message it can read)."""
        kwargs = {"messages": [{"role": "user", "content": "first"}, message]}
        try:
            expected = merge_system_prompt(kwargs, "openai")
        except Exception:
            pytest.skip("posthog's converter does not read this message")
        assert expected == format_input("openai", kwargs)

    def test_sizes_match_the_general_walk(self) -> None:
        """A size is given exactly when every message is text, and it is the general walk's."""
        plain = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"content": "yo", "role": "assistant"},
        ]
        tool = {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
        name_none = {"role": "user", "content": "hi", "name": None}
        enum_role = {"role": Role.USER, "content": "hi"}
        blocks = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
        cases: list[tuple[str | None, dict[str, Any]]] = [
            ("openai", {"messages": plain}),
            ("openai", {"messages": tuple(plain)}),
            ("openai", {"messages": [*plain, name_none]}),
            ("openai", {"messages": [*plain, tool]}),
            ("openai", {"messages": [tool, *plain]}),
            ("openai", {"messages": [*plain, enum_role]}),
            ("openai", {"messages": [*plain, blocks]}),
            ("openai", {"messages": []}),
            ("openai", {"messages": plain, "system": "Be brief."}),
            ("openai", {"messages": plain[1:], "system": "Be brief."}),
            ("openai", {"messages": plain[1:], "system": ["Be brief."]}),
            ("openai", {"messages": plain, "instructions": "Be brief."}),
            ("openai", {"messages": plain, "input": "more"}),
            ("openai", {"input": "hi"}),
            (None, {"messages": plain}),
            ("anthropic", {"messages": plain[1:], "system": "Be brief."}),
            ("gemini", {"contents": "hi"}),
            ("openai", {"prompt": "hi"}),
        ]
        for provider, arguments in cases:
            formatted = format_input(provider, arguments)
            size = None if formatted is None else _text_size(formatted)
            expected = (items(formatted), size)
            got, got_size = recorded_input(provider, arguments)
            if isinstance(got, TextMessages):
                got = got.messages()
            assert expected == (items(got), got_size), (provider, arguments)
        expected_size = 2 * (len("role") + len("content") + 16) + len("userassistant") + len("hiyo")
        assert expected_size == recorded_input("openai", {"messages": plain[1:]})[1]

    def test_text_messages_for_plain_chat_input_only(self) -> None:
        """Only plain text messages, without system, instructions or input, come as text."""
        plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
        tool = {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
        as_text: list[tuple[str | None, dict[str, Any]]] = [
            ("openai", {"messages": plain}),
            ("openai", {"messages": tuple(plain), "system": None, "instructions": None}),
            (None, {"messages": plain, "temperature": 0.2}),
            ("OpenAI", {"messages": []}),
            ("mistral", {"messages": plain}),
        ]
        not_as_text: list[tuple[str | None, dict[str, Any]]] = [
            ("openai", {"messages": [*plain, tool]}),
            ("openai", {"messages": plain, "system": "Be brief."}),
            ("openai", {"messages": plain, "instructions": "Be brief."}),
            ("openai", {"messages": plain, "input": "more"}),
            ("anthropic", {"messages": plain}),
            ("gemini", {"messages": plain}),
            (None, {"messages": plain, "contents": "hi"}),
        ]
        for provider, arguments in as_text:
            got, size = recorded_input(provider, arguments)
            assert isinstance(got, TextMessages), (provider, arguments)
            assert items(format_input(provider, arguments)) == items(got.messages())
            assert size == got.size
        for provider, arguments in not_as_text:
            got, _ = recorded_input(provider, arguments)
            assert not isinstance(got, TextMessages), (provider, arguments)

    def test_text_messages_are_read_when_recorded(self) -> None:
        """Text messages hold the strings read at the call; each `messages()` is new dicts."""
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
        texts, _ = recorded_input("openai", {"messages": messages})
        assert isinstance(texts, TextMessages)
        messages[0]["content"] = "changed"
        messages[1]["name"] = "ann"
        messages.append({"role": "user", "content": "more"})
        first, second = texts.messages(), texts.messages()
        expected = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
        assert expected == first == second
        assert not any(a is b for a, b in zip(first, second, strict=True))
        assert not any(a is b for a, b in zip(first, messages, strict=False))

    def test_formatted_messages_are_new(self) -> None:
        """The formatted messages share no dict with the caller's messages."""
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
        out, _ = _openai_messages(messages)
        assert not any(a is b for a, b in zip(out, messages, strict=True))
        messages[0]["content"] = "changed"
        messages[1]["name"] = "ann"
        expected = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
        assert expected == out


def text_completion(content: Any, role: Any = "assistant", **message: Any) -> dict[str, Any]:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": role, "content": content}}
    choice["message"].update(message)
    return {**CHAT, "choices": [choice]}


def containers(value: Any) -> list[Any]:
    """Every dict and list in ``value``, nested ones included."""
    if isinstance(value, dict):
        return [value, *(c for item in value.values() for c in containers(item))]
    if isinstance(value, (list, tuple)):
        return [value, *(c for item in value for c in containers(item))]
    return []


class TestOutputBound:
    """``Extracted.output_bound`` is set exactly when the output is new and made of strings."""

    @pytest.mark.parametrize(
        "result",
        [
            "hi",
            "",
            "é" * 100,
            "\U0001f600" * 100,
            text_completion("Sure."),
            text_completion("\U0001f600" * 100, role="\U0001f600" * 100),
            text_completion(""),
            text_completion(None),
            text_completion("Sure.", role=None),
            text_completion("Sure.", refusal=None, tool_calls=None, audio=None),
            text_completion("Sure.", tool_calls=[]),
            text_completion([]),
            {**CHAT, "choices": [text_completion("a")["choices"][0]] * 2},
            ChatCompletion.model_validate(text_completion("Sure.")),
        ],
    )
    def test_new_text_output_has_a_bound(self, result: Any) -> None:
        """Text only: a bound above the JSON size of the output, and no container shared."""
        extracted = extract_generation(result)
        assert extracted is not None
        assert extracted.output_bound is not None
        assert len(json.dumps(extracted.output).encode()) <= extracted.output_bound
        shared = {id(c) for c in containers(result)} & {id(c) for c in containers(extracted.output)}
        assert not shared
        assert containers(extracted.output)

    @pytest.mark.parametrize(
        "result",
        [
            Text("hi"),
            CHAT,
            text_completion(Text("Sure.")),
            text_completion("Sure.", role=Role.USER),
            text_completion("Sure.", role=1),
            text_completion([{"type": "text", "text": "Sure."}]),
            text_completion(["Sure."]),
            text_completion({"type": "text", "text": "Sure."}),
            text_completion(3),
            text_completion("", refusal="no"),
            text_completion("Sure.", refusal="no"),
            text_completion(None, tool_calls=CHAT_TOOL_CALLS),
            text_completion("Sure.", audio={"id": "a1", "transcript": "Sure."}),
            {**CHAT, "choices": [text_completion("a")["choices"][0], CHAT["choices"][0]]},  # type: ignore[index]
            {**CHAT, "choices": [CHAT["choices"][0], text_completion("a")["choices"][0]]},  # type: ignore[index]
            ChatCompletion.model_validate(CHAT),
            RESPONSE,
            MESSAGE,
        ],
    )
    def test_other_output_has_none(self, result: Any) -> None:
        """Blocks of the result's own, tool calls, non-str values: no bound (a snapshot)."""
        extracted = extract_generation(result)
        assert extracted is not None
        assert extracted.output_bound is None

    def test_bound_is_not_compared(self) -> None:
        """Two extractions of the same output are equal whether or not one has a bound."""
        extracted = extract_generation("hi")
        assert extracted is not None
        assert Extracted(output=[{"role": "assistant", "content": "hi"}]) == extracted


class TestTextMessagesBound:
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.text(max_size=12), st.text(st.characters(exclude_categories=()))),
            max_size=8,
        )
    )
    def test_json_bound_is_never_below_the_size(self, pairs: list[tuple[str, str]]) -> None:
        """`json_bound` is an upper bound of the messages' JSON as posthog measures it."""
        messages = [{"role": role, "content": content} for role, content in pairs]
        got, _ = recorded_input(None, {"messages": messages})
        assert isinstance(got, TextMessages)
        assert got.json_bound() >= len(json.dumps(got.messages()).encode())


class TestLongInputs:
    """A generation's long input is read only as far as the size limit can hold."""

    def test_plain_messages_stop_past_the_limit(self) -> None:
        """A million plain messages: the strings of a few tens of thousands are read."""
        messages = [{"role": "user", "content": "hi"}] * 1_000_000
        got, size = recorded_input("openai", {"messages": messages}, 800_000)
        assert isinstance(got, TextMessages)
        assert got.cut
        assert got.length == 1_000_000
        assert 800_000 // 256 < len(got.texts) // 2 < 40_000
        assert size is not None
        assert size > 800_000 // 256

    def test_a_message_after_the_limit_is_not_read(self) -> None:
        """What comes after the messages read is not looked at (it is cut either way)."""
        messages: list[Any] = [{"role": "user", "content": "x" * 100}] * 50_000
        messages.append(object())
        got, _ = recorded_input("openai", {"messages": messages}, 800_000)
        assert isinstance(got, TextMessages)
        assert got.cut

    def test_short_inputs_are_read_whole(self) -> None:
        """Within the limit, the limit changes nothing."""
        messages = [{"role": "user", "content": f"m{i}"} for i in range(5_000)]
        got, size = recorded_input("openai", {"messages": messages}, 800_000)
        assert isinstance(got, TextMessages)
        assert not got.cut
        assert (got.messages(), size) == (
            messages,
            recorded_input("openai", {"messages": messages})[1],
        )

    @pytest.mark.parametrize("provider", ["openai", "anthropic", None])
    def test_other_messages_formatted_as_far_as_they_may_fit(self, provider: str | None) -> None:
        """Messages not plain are formatted as far as their first ones' size says may fit."""
        messages = [
            {"role": "user", "content": [{"type": "text", "text": f"part {i}"}]}
            for i in range(200_000)
        ]
        got, size = recorded_input(provider, {"messages": messages}, 800_000)
        assert isinstance(got, Head)
        assert size is None
        assert got.length == 200_000
        assert 5_000 < len(got.items) < 50_000
        assert got.items == format_input(provider, {"messages": messages[: len(got.items)]})
