"""Read model, usage and output from LLM provider results without importing any SDK.

Everything is duck typed through `_get`, so an SDK object and a plain dict of the same shape read
the same. Nothing here raises: an unknown or hostile value gives ``None`` (or is counted and
skipped by `StreamAccumulator`). A count the provider did not report stays ``None``.

Messages take the OpenAI chat shape that posthog's LangChain handler emits
(``callbacks.py:_message_role_and_content``): ``{"role": "assistant", "content": "<text>",
"tool_calls": [{"type": "function", "id": ..., "function": {"name": ..., "arguments": ...}}]}``.
Arguments keep the form posthog's converters send: a JSON string for OpenAI and LangChain
(``json.dumps(args)``, ``_convert_lc_tool_calls_to_oai``), a dict for Anthropic and Gemini.

Token accounting matches posthog 7.91.1 (paths under ``site-packages/posthog/ai/``):

* OpenAI chat and Responses: input as reported (cached tokens included), cache read from
  ``*_tokens_details.cached_tokens``, reasoning from ``*_tokens_details.reasoning_tokens``
  (``openai/openai_converter.py:_read_openai_response_usage_fields``). That usage is inclusive,
  so ``cache_reporting_exclusive`` is False when cache reads are reported
  (``openai_agents/processor.py`` l.494, l.664).
* Anthropic: ``input_tokens`` is sent as reported, i.e. without cache reads and writes, which go
  separately (``anthropic/anthropic_converter.py:extract_anthropic_usage_from_response``,
  ``_add_anthropic_cache_usage``); reasoning is ``output_tokens_details.thinking_tokens``
  (``_extract_thinking_tokens``). ``cache_reporting_exclusive`` is True.
* Gemini: input is ``prompt_token_count`` (plus ``tool_use_prompt_token_count`` when a candidate
  used URL context), output is ``candidates_token_count`` *without* thoughts, reasoning is
  ``thoughts_token_count``; cached content makes ``cache_reporting_exclusive`` False
  (``gemini/gemini_converter.py:_extract_usage_from_metadata``, ``_add_gemini_detail_usage``).
* LangChain: ``usage_metadata`` is inclusive; for Anthropic models the cache reads and writes are
  subtracted from input (``langchain/callbacks.py:_subtract_anthropic_cache``,
  ``_is_anthropic_model``), making it exclusive. Stream chunks' usage is summed, as
  ``AIMessageChunk.__add__`` sums it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Extracted", "StreamAccumulator", "extract_embedding", "extract_generation"]

Message = dict[str, Any]

_ABSENT = object()

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
)
_MERGED_FIELDS = ("model", "provider", *_USAGE_FIELDS, "stop_reason", "cache_reporting_exclusive")
# Where each provider reports the `_USAGE_FIELDS`, as dotted paths (None: never reported).
# OpenAI's newer `*_tokens_details.cache_write_tokens` is not read: posthog 7.91.1 ignores it too.
_CHAT = (
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details.cached_tokens",
    None,
    "completion_tokens_details.reasoning_tokens",
)
_RESPONSES = (
    "input_tokens",
    "output_tokens",
    "input_tokens_details.cached_tokens",
    None,
    "output_tokens_details.reasoning_tokens",
)
_ANTHROPIC = (*_USAGE_FIELDS[:4], "output_tokens_details.thinking_tokens")
_GEMINI = (
    "prompt_token_count",
    "candidates_token_count",
    "cached_content_token_count",
    None,
    "thoughts_token_count",
)
_GEMINI_CAMEL = (
    "promptTokenCount",
    "candidatesTokenCount",
    "cachedContentTokenCount",
    None,
    "thoughtsTokenCount",
)
_LANGCHAIN = (
    "input_tokens",
    "output_tokens",
    "input_token_details.cache_read",
    "input_token_details.cache_creation",
    "output_token_details.reasoning",
)
_TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})
_RESPONSES_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_ANTHROPIC_EVENTS = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop"}
    | {"message_delta", "message_stop", "ping"}
)
# Events that SDK stream helpers (anthropic `messages.stream()`, openai `chat.completions.stream()`)
# yield besides the raw ones, repeating what those carry.
_HELPER_EVENTS = frozenset({"text", "input_json", "citation", "thinking", "signature"})
_HELPER_PREFIXES = ("content.", "refusal.", "tool_calls.", "logprobs.")


@dataclasses.dataclass(slots=True)
class Extracted:
    """What a provider's result says about a generation or an embedding (None: not reported).

    ``output`` is the value for ``$ai_output_choices``; ``cache_reporting_exclusive`` says whether
    the cache token counts lie outside ``input_tokens``.
    """

    model: str | None = None
    provider: str | None = None
    output: list[dict[str, Any]] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    stop_reason: str | None = None
    cache_reporting_exclusive: bool | None = None


def _get(obj: object, key: str) -> Any:
    """Return ``obj[key]`` for a mapping, else ``obj.key``; None when absent or failing."""
    try:
        if type(obj) is dict:
            return obj.get(key)
        if obj is None:
            return None
        fields = getattr(obj, "__dict__", None)
        if fields is not None:
            value = fields.get(key, _ABSENT)
            if value is not _ABSENT:
                return value
            extra = getattr(obj, "__pydantic_extra__", _ABSENT)
            if extra is not _ABSENT:  # pydantic: skip its slow __getattr__ for absent fields
                return extra.get(key) if isinstance(extra, dict) else None
        if isinstance(obj, Mapping):
            return obj.get(key)
        return getattr(obj, key, None)
    except Exception:
        return None


def _get2(obj: object, key: str, camel: str) -> Any:
    """Read a snake_case key, else its camelCase spelling (Gemini's REST JSON)."""
    value = _get(obj, key)
    return _get(obj, camel) if value is None else value


def _seq(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return list(value) if isinstance(value, tuple) else []


def _int(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _reason(value: object) -> str | None:
    """A stop reason as a string; enum members (Gemini's ``FinishReason``) give their name."""
    if type(value) is str or value is None:
        return value
    name = _get(value, "name")
    return name if isinstance(name, str) else _str(value)


def _usage(ex: Extracted, usage: object, paths: tuple[str | None, ...], add: bool = False) -> None:
    """Set (or with `add`, add to) the counts `usage` reports at `paths`; others are kept."""
    if usage is None:
        return
    for field, path in zip(_USAGE_FIELDS, paths, strict=True):
        if path is None:
            continue
        raw: Any = usage
        for key in path.split("."):
            raw = _get(raw, key)
        if (value := _int(raw)) is not None:
            old = getattr(ex, field)
            setattr(ex, field, old + value if add and old is not None else value)


def _merge(ex: Extracted, new: Extracted) -> None:
    for field in _MERGED_FIELDS:
        if (value := getattr(new, field)) is not None:
            setattr(ex, field, value)


def _tool_call(call_id: object, name: object, arguments: object) -> Message:
    call: Message = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        call["id"] = call_id
    return call


def _message(content: object, calls: list[Message], refusal: object = None) -> Message:
    message: Message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if refusal:
        message["refusal"] = refusal
    return message


def _chat_message(message: object) -> Message:
    calls = []
    for call in _seq(_get(message, "tool_calls")):
        if _get(call, "type") == "custom":  # custom tools carry free-form `input`, no `function`
            custom = _get(call, "custom")
            calls.append(_tool_call(_get(call, "id"), _get(custom, "name"), _get(custom, "input")))
        else:
            fn = _get(call, "function")
            calls.append(_tool_call(_get(call, "id"), _get(fn, "name"), _get(fn, "arguments")))
    content = _get(message, "content")
    result = _message("" if content is None else content, calls, _str(_get(message, "refusal")))
    result["role"] = _str(_get(message, "role")) or "assistant"
    return result


def _chat(result: object) -> Extracted:
    ex = Extracted(model=_str(_get(result, "model")), provider="openai")
    choices = _seq(_get(result, "choices"))
    ex.output = [_chat_message(_get(choice, "message")) for choice in choices]
    if choices:
        ex.stop_reason = _reason(_get(choices[0], "finish_reason"))
    _openai_usage(ex, _get(result, "usage"), _CHAT)
    return ex


def _openai_usage(ex: Extracted, usage: object, paths: tuple[str | None, ...]) -> None:
    _usage(ex, usage, paths)
    if ex.cache_read_input_tokens:  # cached tokens are counted inside the input tokens
        ex.cache_reporting_exclusive = False


def _responses_stop(response: object) -> str | None:
    """Mirror posthog's ``_responses_stop_reason``: a terminal status, or why it is incomplete."""
    status = _get(response, "status")
    if not isinstance(status, str) or status not in _TERMINAL_STATUSES:
        return None
    reason = _str(_get(_get(response, "incomplete_details"), "reason"))
    return reason if status == "incomplete" and reason else status


def _responses(result: object) -> Extracted:
    ex = Extracted(model=_str(_get(result, "model")), provider="openai")
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[Message] = []
    for item in _seq(_get(result, "output")):
        kind = _get(item, "type")
        if kind == "message":
            content = _get(item, "content")
            for part in [content] if isinstance(content, str) else _seq(content):
                text = part if isinstance(part, str) else _get(part, "text")
                if isinstance(text, str):
                    texts.append(text)
                elif isinstance(refusal := _get(part, "refusal"), str):
                    refusals.append(refusal)
        elif kind == "function_call":
            call_id = _get(item, "call_id")
            call_id = _get(item, "id") if call_id is None else call_id
            calls.append(_tool_call(call_id, _get(item, "name"), _get(item, "arguments")))
    ex.output = [_message("".join(texts), calls, "".join(refusals))]
    ex.stop_reason = _responses_stop(result)
    _openai_usage(ex, _get(result, "usage"), _RESPONSES)
    return ex


def _anthropic_usage(ex: Extracted, usage: object) -> None:
    if usage is not None:
        ex.cache_reporting_exclusive = True
        _usage(ex, usage, _ANTHROPIC)


def _anthropic(result: object) -> Extracted:
    ex = Extracted(model=_str(_get(result, "model")), provider="anthropic")
    ex.stop_reason = _reason(_get(result, "stop_reason"))
    texts: list[str] = []
    calls: list[Message] = []
    for block in _seq(_get(result, "content")):
        kind = _get(block, "type")
        if kind == "text" and isinstance(text := _get(block, "text"), str):
            texts.append(text)
        elif kind == "tool_use":
            calls.append(_tool_call(_get(block, "id"), _get(block, "name"), _get(block, "input")))
    ex.output = [_message("".join(texts), calls)]
    _anthropic_usage(ex, _get(result, "usage"))
    return ex


def _is_gemini(obj: object) -> bool:
    if isinstance(_get(obj, "candidates"), (list, tuple)):
        return True
    meta = _get2(obj, "usage_metadata", "usageMetadata")
    return _get2(meta, "prompt_token_count", "promptTokenCount") is not None


def _gemini_message(candidate: object) -> Message:
    texts: list[str] = []
    calls: list[Message] = []
    for part in _seq(_get(_get(candidate, "content"), "parts")):
        call = _get2(part, "function_call", "functionCall")
        if call is not None:  # Gemini omits some call ids; posthog keeps only real ones
            calls.append(_tool_call(_str(_get(call, "id")), _get(call, "name"), _get(call, "args")))
        elif isinstance(text := _get(part, "text"), str) and _get(part, "thought") is not True:
            texts.append(text)
    return _message("".join(texts), calls)


def _gemini(result: object) -> Extracted:
    ex = Extracted(model=_str(_get2(result, "model_version", "modelVersion")), provider="gemini")
    candidates = _seq(_get(result, "candidates"))
    ex.output = [_gemini_message(candidate) for candidate in candidates]
    if candidates:
        ex.stop_reason = _reason(_get2(candidates[0], "finish_reason", "finishReason"))
    meta, paths = _get(result, "usage_metadata"), _GEMINI
    if meta is None:
        meta, paths = _get(result, "usageMetadata"), _GEMINI_CAMEL
    _usage(ex, meta, paths)
    if ex.input_tokens is not None and any(
        _get2(c, "url_context_metadata", "urlContextMetadata") for c in candidates
    ):  # URL context content is billed as input
        extra = _get2(meta, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
        ex.input_tokens += _int(extra) or 0
    if ex.cache_read_input_tokens:  # cached content is counted inside the prompt tokens
        ex.cache_reporting_exclusive = False
    return ex


def _parse_json(text: str) -> object:
    """Anthropic streamed tool input: its JSON text parsed, or kept when malformed."""
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def _lc_text(content: object) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in _seq(content):
        if isinstance(block, str):
            texts.append(block)
        elif _get(block, "type") == "text" and isinstance(text := _get(block, "text"), str):
            texts.append(text)
    return "".join(texts)


def _lc_args(args: object) -> object:
    """Tool arguments as the JSON string posthog's handler sends."""
    try:
        return args if isinstance(args, str) else json.dumps(args)
    except (TypeError, ValueError):
        return args


def _lc_meta(ex: Extracted, meta: object) -> None:
    ex.model = _str(_get(meta, "model_name")) or _str(_get(meta, "model")) or ex.model
    ex.provider = _str(_get(meta, "model_provider")) or ex.provider
    reason = _reason(_get(meta, "finish_reason")) or _reason(_get(meta, "stop_reason"))
    ex.stop_reason = reason or _responses_stop(meta) or ex.stop_reason


def _lc_finish(ex: Extracted) -> None:
    """Make Anthropic counts exclusive, as posthog's ``_subtract_anthropic_cache`` does."""
    provider, model = (ex.provider or "").lower(), (ex.model or "").lower()
    anthropic = provider == "anthropic" or "anthropic" in model or model.startswith("claude")
    if anthropic and ex.input_tokens is not None:
        cache = (ex.cache_read_input_tokens or 0) + (ex.cache_creation_input_tokens or 0)
        ex.input_tokens = max(ex.input_tokens - cache, 0)
        ex.cache_reporting_exclusive = True
    elif ex.cache_read_input_tokens:
        ex.cache_reporting_exclusive = False


def _langchain(message: object) -> Extracted:
    ex = Extracted()
    _lc_meta(ex, _get(message, "response_metadata"))
    calls = [
        _tool_call(_get(c, "id"), _get(c, "name"), _lc_args(_get(c, "args")))
        for c in _seq(_get(message, "tool_calls"))
    ]
    ex.output = [_message(_lc_text(_get(message, "content")), calls)]
    _usage(ex, _get(message, "usage_metadata"), _LANGCHAIN)
    _lc_finish(ex)
    return ex


def _lc_result(result: object) -> Extracted | None:
    """LangChain ``ChatResult``, or ``LLMResult`` (a list per prompt: the last is taken)."""
    generations = _seq(_get(result, "generations"))
    if generations and isinstance(generations[-1], (list, tuple)):
        generations = list(generations[-1])
    parts = [
        _langchain(msg)
        if (msg := _get(gen, "message")) is not None
        else Extracted(output=[_message(_str(_get(gen, "text")) or "", [])])
        for gen in generations
    ]
    if not parts:
        return None
    ex = parts[0]
    ex.output = [message for part in parts for message in part.output or ()]
    return ex


def _generation(result: object) -> Extracted | None:
    if isinstance(result, str):
        return Extracted(output=[_message(result, [])])
    kind, typ = _get(result, "object"), _get(result, "type")
    choices = _seq(_get(result, "choices"))
    if kind == "chat.completion" or (choices and _get(choices[0], "message") is not None):
        return _chat(result)
    if kind == "response":
        return _responses(result)
    if typ == "message" and isinstance(_get(result, "content"), (list, tuple)):
        return _anthropic(result)
    if typ in ("ai", "AIMessageChunk"):
        return _langchain(result)
    if _is_gemini(result):
        return _gemini(result)
    if isinstance(_get(result, "generations"), (list, tuple)):
        return _lc_result(result)
    if isinstance(_get(result, "role"), str) and (
        _get(result, "content") is not None or _get(result, "tool_calls") is not None
    ):
        return Extracted(output=[_chat_message(result)])
    return None


def extract_generation(result: object) -> Extracted | None:
    """Recognise what a generation returned.

    Args:
        result: A provider response, a LangChain message or result, a chat message, or a ``str``.

    Returns:
        The extracted fields, or None when the shape is unknown. Never raises.
    """
    try:
        return _generation(result)
    except Exception:
        return None


def extract_embedding(result: object) -> Extracted | None:
    """Recognise what an embedding call returned.

    Args:
        result: An OpenAI ``CreateEmbeddingResponse`` or a Gemini ``embed_content`` response, or a
            dict of the same shape.

    Returns:
        The model, provider and input tokens, or None when the shape is unknown. Never raises.
    """
    try:
        usage = _get(result, "usage")
        if isinstance(_get(result, "data"), (list, tuple)) and (
            _get(result, "object") == "list" or usage is not None
        ):
            tokens = _int(_get(usage, "prompt_tokens"))
            return Extracted(_str(_get(result, "model")), "openai", input_tokens=tokens)
        embeddings = _get(result, "embeddings")
        if not isinstance(embeddings, (list, tuple)):
            return None
        # Only Vertex AI reports tokens (posthog: extract_gemini_embedding_token_count)
        counts = [
            _int(_get2(_get(e, "statistics"), "token_count", "tokenCount")) for e in embeddings
        ]
        known = [count for count in counts if count is not None]
        return Extracted(provider="gemini", input_tokens=sum(known) if known else None)
    except Exception:
        return None


class StreamAccumulator:
    """Joins the chunks of a streamed generation into one output and one usage.

    Attributes:
        chunks: How many chunks were added.
        ignored: How many of them were not recognised (or not readable) and so skipped.
    """

    __slots__ = (
        "_calls",
        "_ex",
        "_final",
        "_json_args",
        "_lc",
        "_refusal",
        "_text",
        "chunks",
        "ignored",
    )

    def __init__(self) -> None:
        self.chunks = 0
        self.ignored = 0
        self._ex = Extracted()
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[object, Message] = {}
        self._final: list[Message] | None = None  # a Responses stream's complete output
        self._json_args = False  # Anthropic tool input arrives as JSON text
        self._lc = False

    def add(self, chunk: object) -> None:
        """Take in one chunk. Never raises."""
        self.chunks += 1
        try:
            known = self._add(chunk)
        except Exception:
            known = False
        if not known:
            self.ignored += 1

    def result(self) -> Extracted:
        """Return the joined output and the usage seen so far (may be called more than once)."""
        try:
            ex = dataclasses.replace(self._ex)
            if self._lc:
                _lc_finish(ex)
            calls = [self._finish_call(call) for call in self._calls.values()]
            output = [_message("".join(self._text), calls, "".join(self._refusal))]
            ex.output = output if self._final is None else self._final
            return ex
        except Exception:
            return Extracted()

    def _finish_call(self, call: Message) -> Message:
        args = call["function"]["arguments"]
        if self._json_args and isinstance(args, str):
            args = _parse_json(args)
        return _tool_call(call.get("id"), call["function"]["name"], args)

    def _merge_call(self, index: object, call_id: object, name: object, args: object) -> None:
        if isinstance(index, int):
            key: object = index
        elif isinstance(call_id, str) and call_id:
            key = call_id
        else:  # neither index nor id: it continues the latest call
            key = next(reversed(self._calls), 0)
        call = self._calls.setdefault(key, _tool_call(None, None, ""))
        fn = call["function"]
        if call_id:
            call["id"] = call_id
        if name:
            fn["name"] = name
        if isinstance(args, str) and isinstance(fn["arguments"], str):
            fn["arguments"] += args
        elif args is not None:
            fn["arguments"] = args

    def _add(self, chunk: object) -> bool:
        if isinstance(chunk, str):
            self._text.append(chunk)
            return True
        typ = _get(chunk, "type")
        if isinstance(typ, str):
            if typ.startswith("response."):
                return self._add_responses(typ, chunk)
            if typ in _ANTHROPIC_EVENTS:
                return self._add_anthropic(typ, chunk)
            if typ in ("AIMessageChunk", "ai"):
                return self._add_langchain(chunk)
            if typ == "chunk":  # openai `chat.completions.stream()` wraps each raw chunk
                chunk = _get(chunk, "chunk")
            elif typ == "text" and _get(chunk, "snapshot") is None:  # a bare text block
                return isinstance(text := _get(chunk, "text"), str) and self._add(text)
            elif typ in _HELPER_EVENTS or typ.startswith(_HELPER_PREFIXES):
                return True
        if isinstance(_get(chunk, "choices"), (list, tuple)):
            return self._add_chat(chunk)
        if _is_gemini(chunk):
            part = _gemini(chunk)  # usage_metadata is cumulative: the last one seen wins
            _merge(self._ex, part)
            if part.output:
                self._text.append(part.output[0]["content"])
                for call in part.output[0].get("tool_calls", ()):
                    self._calls[len(self._calls)] = call
            return True
        return False

    def _add_chat(self, chunk: object) -> bool:
        ex = self._ex
        ex.provider, ex.model = "openai", _str(_get(chunk, "model")) or ex.model
        for choice in _seq(_get(chunk, "choices")):
            if _get(choice, "index") not in (0, None):  # n > 1: keep the first choice only
                continue
            delta = _get(choice, "delta")
            if isinstance(content := _get(delta, "content"), str):
                self._text.append(content)
            if isinstance(refusal := _get(delta, "refusal"), str):
                self._refusal.append(refusal)
            for frag in _seq(_get(delta, "tool_calls")):
                fn = _get(frag, "function")
                args = _get(fn, "arguments")
                self._merge_call(_get(frag, "index"), _get(frag, "id"), _get(fn, "name"), args)
            ex.stop_reason = _reason(_get(choice, "finish_reason")) or ex.stop_reason
        _openai_usage(ex, _get(chunk, "usage"), _CHAT)
        return True

    def _add_responses(self, typ: str, event: object) -> bool:
        self._ex.provider = "openai"
        if typ == "response.output_text.delta" and isinstance(delta := _get(event, "delta"), str):
            self._text.append(delta)
        response = _get(event, "response")
        self._ex.model = _str(_get(response, "model")) or self._ex.model
        if typ in _RESPONSES_FINAL:  # carries the whole response, with its usage
            full = _responses(response)
            self._final = full.output
            _merge(self._ex, full)
        return True

    def _add_anthropic(self, typ: str, event: object) -> bool:
        ex = self._ex
        ex.provider = "anthropic"
        if typ == "message_start":
            message = _get(event, "message")
            ex.model = _str(_get(message, "model")) or ex.model
            _anthropic_usage(ex, _get(message, "usage"))
        elif typ == "content_block_start":
            block = _get(event, "content_block")
            kind = _get(block, "type")
            if kind == "text" and isinstance(text := _get(block, "text"), str):
                self._text.append(text)
            elif kind == "tool_use":
                self._json_args = True
                self._merge_call(_get(event, "index"), _get(block, "id"), _get(block, "name"), "")
        elif typ == "content_block_delta":
            delta = _get(event, "delta")
            kind = _get(delta, "type")
            if kind == "text_delta" and isinstance(text := _get(delta, "text"), str):
                self._text.append(text)
            elif kind == "input_json_delta":
                self._merge_call(_get(event, "index"), None, None, _get(delta, "partial_json"))
        elif typ == "message_delta":  # cumulative counts; output_tokens at least
            _anthropic_usage(ex, _get(event, "usage"))
            ex.stop_reason = _reason(_get(_get(event, "delta"), "stop_reason")) or ex.stop_reason
        return True

    def _add_langchain(self, chunk: object) -> bool:
        self._lc = True
        _lc_meta(self._ex, _get(chunk, "response_metadata"))
        self._text.append(_lc_text(_get(chunk, "content")))
        for frag in _seq(_get(chunk, "tool_call_chunks")):
            index, call_id = _get(frag, "index"), _get(frag, "id")
            self._merge_call(index, call_id, _get(frag, "name"), _get(frag, "args"))
        _usage(self._ex, _get(chunk, "usage_metadata"), _LANGCHAIN, add=True)
        return True
