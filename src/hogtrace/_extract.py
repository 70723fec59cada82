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

import base64
import contextlib
import dataclasses
import datetime
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, islice, repeat
from operator import indexOf
from typing import Any, NamedTuple, TypeVar

from hogtrace._serialize import (
    LONG_INT,
    MESSAGE_ITEMS,
    MIN_ITEM,
    NUMBER_TYPES,
    PLAIN_MESSAGE_SIZE,
    AsText,
    Head,
    has_long_int,
    snapshot,
)

__all__ = [
    "Extracted",
    "PrintedRows",
    "StreamAccumulator",
    "TextMessages",
    "extract_embedding",
    "extract_generation",
    "format_input",
    "recorded_input",
]

Message = dict[str, Any]
Block = dict[str, Any]

#: The most bytes a character of a ``str`` takes in JSON (an escaped surrogate pair).
_JSON_CHAR_BYTES = 12
#: More than the JSON bytes of a message's or a text block's keys and punctuation.
_JSON_ITEM_BYTES = 64

_ABSENT = object()

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
)
#: ``(field, keys)`` pairs: where a provider reports each of the `_USAGE_FIELDS` it reports.
Paths = tuple[tuple[str, tuple[str, ...]], ...]


def _paths(*dotted: str | None) -> Paths:
    """The `_USAGE_FIELDS` paths given as dotted keys, in order (None: never reported)."""
    pairs = zip(_USAGE_FIELDS, dotted, strict=True)
    return tuple((field, tuple(path.split("."))) for field, path in pairs if path is not None)


_MERGED_FIELDS = ("model", "provider", *_USAGE_FIELDS, "stop_reason", "cache_reporting_exclusive")
# Where each provider reports the `_USAGE_FIELDS`, as dotted paths (None: never reported);
# `_usage` reads them split (`_paths`).
# OpenAI's newer `*_tokens_details.cache_write_tokens` is not read: posthog 7.91.1 ignores it too.
_CHAT = _paths(
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details.cached_tokens",
    None,
    "completion_tokens_details.reasoning_tokens",
)
_RESPONSES = _paths(
    "input_tokens",
    "output_tokens",
    "input_tokens_details.cached_tokens",
    None,
    "output_tokens_details.reasoning_tokens",
)
_ANTHROPIC = _paths(*_USAGE_FIELDS[:4], "output_tokens_details.thinking_tokens")
# A stream's ``message_start`` says 1 output token, a placeholder: its count comes with
# ``message_delta`` (posthog's accumulator reads only the input counts there too).
_ANTHROPIC_START = _paths(_USAGE_FIELDS[0], None, *_USAGE_FIELDS[2:4], None)
_GEMINI = _paths(
    "prompt_token_count",
    "candidates_token_count",
    "cached_content_token_count",
    None,
    "thoughts_token_count",
)
_GEMINI_CAMEL = _paths(
    "promptTokenCount",
    "candidatesTokenCount",
    "cachedContentTokenCount",
    None,
    "thoughtsTokenCount",
)
_LANGCHAIN = _paths(
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
    #: When extraction made ``output`` of new dicts and lists holding only ``str`` values (it
    #: then shares nothing with the result): a bound of its JSON size in bytes. Else None.
    output_bound: int | None = dataclasses.field(default=None, compare=False, repr=False)
    #: With ``output_bound``: the items a snapshot of ``output`` counts (``max_items``).
    output_items: int = dataclasses.field(default=0, compare=False, repr=False)


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
    if type(value) is int:
        return value
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


def _usage(ex: Extracted, usage: object, paths: Paths, add: bool = False) -> None:
    """Set (or with `add`, add to) the counts `usage` reports at `paths`; others are kept."""
    if usage is None:
        return
    for field, path in paths:
        raw: Any = usage
        for key in path:
            raw = _get(raw, key)
            if raw is None:
                break
        else:  # a count was reported (a plain int, usually)
            value = raw if type(raw) is int else _int(raw)
            if value is not None:
                if add and (old := getattr(ex, field)) is not None:
                    value += old
                setattr(ex, field, value)


def _merge(ex: Extracted, new: Extracted) -> None:
    for field in _MERGED_FIELDS:
        if (value := getattr(new, field)) is not None:
            setattr(ex, field, value)


# --- posthog's helpers: to_plain, normalize_part_keys (posthog/ai/media.py) ----------------------


def _has(obj: object, key: str) -> bool:
    """``hasattr`` for SDK objects, key presence for mappings (a dict read as its SDK object)."""
    if isinstance(obj, Mapping):
        return key in obj
    try:
        return hasattr(obj, key)
    except Exception:
        return False


def _get_or(obj: object, key: str, default: object) -> Any:
    """``obj[key]`` or ``obj.key``, `default` only when absent (posthog's ``_item_attr``)."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _without_none(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in value.items() if v is not None}


_ATOMS = frozenset({str, int, float, bool, type(None)})


def _plain(obj: object, keys: frozenset[str] | None = None) -> Any:
    """As posthog's ``media.to_plain``: a dict without None values, or the value unchanged.

    With ``keys``, a pydantic model's or dataclass's other fields may be left out: the caller
    reads only those (a model with a field of a million items is not dumped whole to read its
    role).
    """
    if isinstance(obj, dict):
        return _without_none(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            if keys is not None and not getattr(obj, "__pydantic_root_model__", False):
                return dump(include=set(keys), exclude_none=True)  # (a set: as pydantic 2.6)
            return dump(exclude_none=True)
        except TypeError:
            dumped = dump()
            return _without_none(dumped) if isinstance(dumped, dict) else dumped
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _field_names(type(obj), keys)
        fields = {name: getattr(obj, name) for name in names}
        if _ATOMS.issuperset(map(type, fields.values())):
            return _without_none(fields)  # what asdict() gives them: copies of immutables
        dumped = dataclasses.asdict(obj)
        return _without_none(dumped if keys is None else {name: dumped[name] for name in names})
    return obj


def _field_names(kind: type, keys: frozenset[str] | None) -> tuple[str, ...]:
    """A dataclass's field names (of ``keys`` only, if given), read once per class."""
    names = _FIELD_NAMES.get((kind, keys))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(kind) if keys is None or f.name in keys)
        if len(_FIELD_NAMES) < _MAX_CLASSES:
            _FIELD_NAMES[kind, keys] = names
    return names


_FIELD_NAMES: dict[tuple[type, frozenset[str] | None], tuple[str, ...]] = {}
_MAX_CLASSES = 1024


def _as_text(value: object) -> str | AsText:
    """``str(value)``, as posthog's converters send what is no message or part (a str as is).

    A list, tuple or dict of more than `_TEXT_ITEMS` items, or a list or tuple of more than
    `_SHORT_ROW` numbers (booleans, None), is left an `AsText`: a snapshot copies it within
    the limits, and its string is made of that copy when the event is built, off the calling
    thread (`format_input` makes it at once).
    """
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is int and not -LONG_INT < value < LONG_INT:  # type: ignore[operator]
        return AsText(value)  # printing takes time quadratic in its digits: later
    if isinstance(value, (list, tuple)) and kind in _ROWS and len(value) <= _TEXT_ITEMS:
        kinds = set(map(type, value))  # (one pass at C speed, ~15 ns a value)
        if _NESTING.isdisjoint(kinds):  # a row: of values holding none
            long = _long_row(value, kinds) or has_long_int(value, kinds)
            return AsText(value) if long else str(value)
    if kind in _NESTING and _more_items(value, _TEXT_ITEMS):
        return AsText(value)
    return str(value)


def _long_row(row: list[Any] | tuple[Any, ...], kinds: set[type]) -> bool:
    """Whether ``row``, of values of ``kinds`` (none a list, tuple or dict), is printed later.

    That is, more than `_SHORT_ROW` numbers (printed exactly, `AsText`), or a list of
    strings too long for `_short_row`.
    """
    if len(row) > _SHORT_ROW and kinds <= _NUMBERS:
        return True
    return (
        type(row) is list
        and kinds <= _STRINGS
        and (len(row) > _SHORT_TEXTS or sum(map(len, row)) > _SHORT_TEXT)
    )


def _more_items(value: Any, most: int) -> bool:
    """Whether ``value``'s lists, tuples and dicts hold more than ``most`` items in all.

    Each is counted once: a list that holds itself is as long as it is.
    """
    total, seen, pending = 0, set(), [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += len(item)
        if total > most:
            return True
        items = item.values() if type(item) is dict else item
        pending.extend(inner for inner in items if type(inner) in _NESTING)
    return False


#: Of a value with more items than this, the string an input item makes is made later.
_TEXT_ITEMS = 1024
_NESTING = frozenset({dict, list, tuple})
_ROWS = frozenset({list, tuple})
_NUMBERS = NUMBER_TYPES


def _dump(obj: object) -> dict[str, Any]:
    """A pydantic ``model_dump()`` with None values kept; a mapping as a dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    value = dump() if callable(dump) else _plain(obj)
    return value if isinstance(value, dict) else {}


_CAMEL_TO_SNAKE = {
    "inlineData": "inline_data",
    "fileData": "file_data",
    "mimeType": "mime_type",
    "fileUri": "file_uri",
    "functionCall": "function_call",
    "functionResponse": "function_response",
    "videoMetadata": "video_metadata",
}


def _snake_keys(part: Mapping[str, Any]) -> dict[str, Any]:
    """As posthog's ``normalize_part_keys``: Gemini REST camelCase keys, one level deep."""
    out = {}
    for key, value in part.items():
        if isinstance(value, dict):
            value = {_CAMEL_TO_SNAKE.get(k, k): v for k, v in value.items()}
        out[_CAMEL_TO_SNAKE.get(key, key)] = value
    return out


# --- content blocks -------------------------------------------------------------------------------


def _text(text: object) -> Block:
    return {"type": "text", "text": text}


def _function(call_id: object, name: object, arguments: object) -> Block:
    return {"type": "function", "id": call_id, "function": {"name": name, "arguments": arguments}}


def _assistant(content: list[Block]) -> list[Message]:
    """One assistant message holding `content`, or no message when there is no content."""
    return [{"role": "assistant", "content": content}] if content else []


# --- OpenAI Chat Completions (openai_converter.py: _format_chat_message) --------------------------


def _chat_items(message: object, content: object) -> list[Block]:
    items: list[Block] = []
    if isinstance(content, (list, tuple)):  # a bare message already holding content blocks
        items.extend(content)
    elif content:
        items.append(_text(content))
    if refusal := _get(message, "refusal"):
        items.append({"type": "refusal", "refusal": refusal})
    for call in _seq(_get(message, "tool_calls")):
        custom = _get(call, "type") == "custom"  # custom tools: free-form `custom.input`
        fn = _get(call, "custom" if custom else "function")
        if fn is not None:
            args = _get(fn, "input" if custom else "arguments")
            items.append(_function(_get(call, "id"), _get(fn, "name"), args))
    if audio := _get(message, "audio"):
        items.append({"type": "audio", **_dump(audio)})
    return items


#: Text blocks of a chat completion counted here (`Extracted.output_items`) at most.
_FEW_BLOCKS = 1024


def _chat(result: object, choices: list[Any]) -> Extracted:
    """A chat completion whose ``choices`` the dispatch has read."""
    ex = Extracted(model=_str(_get(result, "model")), provider="openai")
    role: object = "assistant"
    content: list[Block] = []
    chars, text = 0, True  # only text blocks made here, of `chars` characters
    for choice in choices:  # every choice goes into one message, as posthog sends it
        message = _get(choice, "message")
        if message is not None:
            role = _get(message, "role") or role
            body = _get(message, "content")
            items = _chat_items(message, body)
            content.extend(items)
            if text:
                if type(body) is str and len(items) == (1 if body else 0):
                    chars += len(body)
                else:  # blocks of the message's own, a refusal, tool calls, audio, ...
                    text = not body and not items
    ex.output = [{"role": role, "content": content}] if content else []
    # (More blocks than a snapshot reads at once are counted a chunk at a time: left to it.)
    if text and type(role) is str and len(content) <= _FEW_BLOCKS:
        chars += len(role)
        ex.output_bound = _JSON_CHAR_BYTES * chars + _JSON_ITEM_BYTES * (len(content) + 1)
        # The message, its content list (one more each for reading them) and each text block.
        ex.output_items = MESSAGE_ITEMS + 1 + MESSAGE_ITEMS * len(content) if content else 0
    if choices:
        ex.stop_reason = _reason(_get(choices[0], "finish_reason"))
    _openai_usage(ex, _get(result, "usage"), _CHAT)
    return ex


def _openai_usage(ex: Extracted, usage: object, paths: Paths) -> None:
    _usage(ex, usage, paths)
    if ex.cache_read_input_tokens:  # cached tokens are counted inside the input tokens
        ex.cache_reporting_exclusive = False


# --- OpenAI Responses (openai_converter.py: _format_responses_output_items) -----------------------


def _responses_part(part: object) -> Block | None:
    kind, text, refusal = _get(part, "type"), _get(part, "text"), _get(part, "refusal")
    if kind == "output_text" and text is not None:
        return _text(text)
    if kind == "refusal" and refusal is not None:
        return {"type": "refusal", "refusal": refusal}
    if text is not None:
        return _text(text)
    if kind == "input_image" and (image := _get(part, "image_url")) is not None:
        return {"type": "image", "image": image}
    return None


def _responses_items(items: list[Any]) -> list[Message]:
    content: list[Block] = []
    role: object = "assistant"
    for item in items:
        kind = _get(item, "type")
        if kind == "message":
            role = r if (r := _get(item, "role")) is not None else role
            parts = _get(item, "content")
            if isinstance(parts, list):
                content.extend(b for p in parts if (b := _responses_part(p)) is not None)
            elif parts is not None:
                content.append(_text(str(parts)))
        elif kind == "function_call":
            call_id = _get(item, "call_id")
            call_id = _get_or(item, "id", "") if call_id is None else call_id
            args = _get_or(item, "arguments", {})
            content.append(_function(call_id, _get(item, "name"), args))
        elif kind == "image_generation_call":
            status = _get(item, "status")
            content.append({"type": kind, "result": _get(item, "result"), "status": status})
        elif kind is not None:  # reasoning, web_search_call, ...: the item itself
            plain = _plain(item)
            content.append(plain if isinstance(plain, dict) else {"type": kind})
    return [{"role": role, "content": content}] if content else []


def _responses_stop(response: object) -> str | None:
    """Mirror posthog's ``_responses_stop_reason``: a terminal status, or why it is incomplete."""
    status = _get(response, "status")
    if not isinstance(status, str) or status not in _TERMINAL_STATUSES:
        return None
    reason = _str(_get(_get(response, "incomplete_details"), "reason"))
    return reason if status == "incomplete" and reason else status


def _responses(result: object) -> Extracted:
    ex = Extracted(model=_str(_get(result, "model")), provider="openai")
    ex.output = _responses_items(_seq(_get(result, "output")))
    ex.stop_reason = _responses_stop(result)
    _openai_usage(ex, _get(result, "usage"), _RESPONSES)
    return ex


# --- Anthropic (anthropic_converter.py: _format_anthropic_response_block) -------------------------


def _anthropic_block(block: object) -> Block | None:
    kind = _get(block, "type")
    if kind == "text" and (text := _get(block, "text")):
        return _text(text)
    if kind == "tool_use" and _has(block, "name") and _has(block, "id"):
        args = _get_or(block, "input", {})
        return _function(_get(block, "id"), _get(block, "name"), args)
    if kind == "thinking":
        thinking, signature = _get(block, "thinking"), _get(block, "signature")
        return {"type": "thinking", "thinking": thinking, "signature": signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": _get(block, "data")}
    plain = _plain(block)  # empty text, server tool use, web search results, ...
    return plain if isinstance(plain, dict) and plain.get("type") else None


def _anthropic_usage(ex: Extracted, usage: object, paths: Paths = _ANTHROPIC) -> None:
    if usage is not None:
        ex.cache_reporting_exclusive = True
        _usage(ex, usage, paths)


def _anthropic(result: object) -> Extracted:
    ex = Extracted(model=_str(_get(result, "model")), provider="anthropic")
    ex.stop_reason = _reason(_get(result, "stop_reason"))
    blocks = (_anthropic_block(block) for block in _seq(_get(result, "content")))
    ex.output = _assistant([block for block in blocks if block is not None])
    _anthropic_usage(ex, _get(result, "usage"))
    return ex


# --- Gemini (gemini_converter.py: _format_response_part, _format_part) ----------------------------


def _is_gemini(obj: object) -> bool:
    if isinstance(_get(obj, "candidates"), (list, tuple)):
        return True
    meta = _get2(obj, "usage_metadata", "usageMetadata")
    return _get2(meta, "prompt_token_count", "promptTokenCount") is not None


def _media_kind(mime: object) -> str:
    prefix = mime.split("/", 1)[0] if isinstance(mime, str) else ""
    return prefix if prefix in ("image", "video", "audio") else "file"


def _media(payload: object) -> Any:
    payload = _plain(payload)
    if isinstance(payload, dict) and isinstance(data := payload.get("data"), bytes):
        payload = {**payload, "data": base64.b64encode(data).decode("utf-8")}
    return payload


def _gemini_call(name: object, args: object, call_id: object) -> Block:
    block: Block = {"type": "function", "function": {"name": name, "arguments": args}}
    if isinstance(call_id, str):  # Gemini omits some call ids; posthog keeps only real ones
        block["id"] = call_id
    return block


def _gemini_part(part: object) -> Block | None:
    """A part of a response (``_format_response_part``): an SDK Part's text and call first."""
    if not isinstance(part, (str, Mapping)):
        text = _get(part, "text")
        if isinstance(text, str) and text:
            thought = _get(part, "thought") is True
            return {"type": "thinking", "thinking": text} if thought else _text(text)
        if call := _get(part, "function_call"):
            return _gemini_call(_get(call, "name"), _get(call, "args"), _get(call, "id"))
    return _gemini_plain_part(part)


_TEXT_ONLY = frozenset({"text"})


def _gemini_plain_part(part: object) -> Block | None:
    """A part read from its plain form (``_format_part``), as input parts are read."""
    if isinstance(part, str):
        return _text(part)
    kind = type(part)
    if kind is dict and len(part) == 1 and type(text := part.get("text")) is str:  # type: ignore[attr-defined, arg-type]
        return {"type": "text", "text": text}  # the usual part, as below (~1 µs less)
    if (
        kind.__qualname__ == "Part"
        and kind.__module__ == "google.genai.types"
        and part.model_fields_set == _TEXT_ONLY  # type: ignore[attr-defined]
        and type(text := part.text) is str  # type: ignore[attr-defined]
    ):
        # google-genai's Part made with only a text: its fields all default to None, so it
        # dumps to {"text": ...} as the dict above (not dumped: ~2 µs less).
        return {"type": "text", "text": text}
    plain = _plain(part)
    if not isinstance(plain, dict):
        return {"type": "unknown", "part": _as_text(plain)}
    plain = _snake_keys(plain)
    if plain.get("thought") is True and isinstance(plain.get("text"), str):
        return {"type": "thinking", "thinking": plain["text"]}
    if "text" in plain:
        return _text(plain["text"])
    for key in ("inline_data", "file_data"):
        if key in plain:
            media = _media(plain[key])
            mime = media.get("mime_type") if isinstance(media, dict) else None
            return {"type": _media_kind(mime), key: media}
    if "function_call" in plain:
        call = _plain(plain["function_call"]) or {}
        return _gemini_call(call.get("name"), call.get("args"), call.get("id"))
    if "function_response" in plain:
        response = _plain(plain["function_response"]) or {}
        block: Block = {
            "type": "function",
            "tool_name": response.get("name") or "",
            "content": response.get("response"),
        }
        if isinstance(response.get("id"), str):
            block["tool_use_id"] = response["id"]
        return block
    if not plain:
        return None
    key = next(iter(plain))
    return {"type": key, key: _plain(plain[key])}


def _gemini_blocks(candidate: object) -> list[Block]:
    content = _get(candidate, "content")
    parts = _seq(_get(content, "parts")) if content else []
    return [block for part in parts if (block := _gemini_part(part)) is not None]


def _gemini_fields(result: object, candidates: list[Any]) -> Extracted:
    """Model, stop reason and usage of a Gemini response or chunk (no output)."""
    ex = Extracted(model=_str(_get2(result, "model_version", "modelVersion")), provider="gemini")
    if candidates:
        ex.stop_reason = _reason(_get2(candidates[0], "finish_reason", "finishReason"))
    _gemini_usage(ex, result, candidates)
    return ex


def _gemini(result: object) -> Extracted:
    candidates = _seq(_get(result, "candidates"))
    ex = _gemini_fields(result, candidates)
    ex.output = []
    for candidate in candidates:  # one message per candidate
        if blocks := _gemini_blocks(candidate):
            ex.output.append({"role": "assistant", "content": blocks})
        elif not _get(candidate, "content") and (text := _get(candidate, "text")):
            ex.output.append({"role": "assistant", "content": [_text(text)]})
    if not candidates and (text := _get(result, "text")):
        ex.output.append({"role": "assistant", "content": [_text(text)]})
    return ex


def _gemini_usage(ex: Extracted, result: object, candidates: list[Any]) -> None:
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


def _merge_gemini_blocks(blocks: list[Block]) -> list[Block]:
    """As posthog's ``_merge_streaming_blocks``: runs of text blocks join into one."""
    content: list[Block] = []
    texts: list[str] = []
    for block in blocks:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
            continue
        if texts:
            content.append(_text("".join(texts)))
            texts = []
        if block.get("type") == "function":
            call: Block = {"type": "function", "function": block.get("function", {})}
            if isinstance(block.get("id"), str):
                call["id"] = block["id"]
            block = call
        content.append(block)
    if texts:
        content.append(_text("".join(texts)))
    return content


# --- LangChain (langchain/callbacks.py: _convert_message_to_dict) ---------------------------------

_LC_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "function",
    "FunctionMessageChunk": "function",
}


def _lc_args(args: object) -> object:
    """Tool arguments as the JSON string posthog's handler sends."""
    try:
        return json.dumps(args)
    except (TypeError, ValueError):
        return args


def _lc_tool_calls(calls: list[Any]) -> list[Any]:
    """As posthog's ``_convert_lc_tool_calls_to_oai``; calls missing a key are sent unchanged."""
    try:
        return [
            {
                "type": "function",
                "id": call["id"],
                "function": {"name": call["name"], "arguments": _lc_args(call["args"])},
            }
            for call in calls
        ]
    except (KeyError, TypeError):
        return calls


def _lc_message(message: object) -> Message:
    """A LangChain message as posthog's handler sends it: its content as it is."""
    kind, content = _get(message, "type"), _get(message, "content")
    role = _LC_ROLES.get(kind) if isinstance(kind, str) else None
    out: Message = (
        {"role": kind, "content": _as_text(content)}
        if role is None
        else {
            "role": role,
            "content": content,
        }
    )
    if role == "assistant" and (calls := _seq(_get(message, "tool_calls"))):
        out["tool_calls"] = _lc_tool_calls(calls)
    extra = _get(message, "additional_kwargs")
    if extra and isinstance(extra, Mapping):
        out.update(extra)
    if "content" in out and not out["content"]:
        out["content"] = ""
    return out


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
    ex.output = [_lc_message(message)]
    _usage(ex, _get(message, "usage_metadata"), _LANGCHAIN)
    _lc_finish(ex)
    return ex


def _lc_text_generation(generation: object) -> object:
    """As posthog's ``_extract_raw_response``: the stripped text, else the extra kwargs, else ''."""
    text = _get(generation, "text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    if _has(generation, "message"):
        return _get(_get(generation, "message"), "additional_kwargs")
    return ""


def _lc_result(result: object) -> Extracted | None:
    """LangChain ``ChatResult``, or ``LLMResult`` (a list per prompt: the last is taken)."""
    generations = _seq(_get(result, "generations"))
    if generations and isinstance(generations[-1], (list, tuple)):
        generations = list(generations[-1])
    if not generations:
        return None
    first = _get(generations[0], "message")
    ex = Extracted() if first is None else _langchain(first)
    if _get(generations[-1], "message") is not None:
        ex.output = [_lc_message(_get(generation, "message")) for generation in generations]
    else:
        ex.output = [_lc_text_generation(generation) for generation in generations]  # type: ignore[misc]
    return ex


# --- dispatch -------------------------------------------------------------------------------------


def _generation(result: object) -> Extracted | None:
    if isinstance(result, str):
        ex = Extracted(output=[{"role": "assistant", "content": result}])
        if type(result) is str:
            ex.output_bound = _JSON_CHAR_BYTES * (len(result) + 9) + _JSON_ITEM_BYTES
            ex.output_items = MESSAGE_ITEMS
        return ex
    kind = _get(result, "object")
    choices = _seq(_get(result, "choices"))
    if kind == "chat.completion" or (choices and _get(choices[0], "message") is not None):
        return _chat(result, choices)
    if kind == "response":
        return _responses(result)
    typ = _get(result, "type")
    if typ == "message" and isinstance(_get(result, "content"), (list, tuple)):
        return _anthropic(result)
    if typ in ("ai", "AIMessageChunk"):
        return _langchain(result)
    if _is_gemini(result):
        return _gemini(result)
    if isinstance(_get(result, "generations"), (list, tuple)):
        return _lc_result(result)
    if isinstance(role := _get(result, "role"), str) and (
        _get(result, "content") is not None or _get(result, "tool_calls") is not None
    ):  # a chat message on its own: formatted like a completion's message
        return Extracted(
            output=[{"role": role, "content": _chat_items(result, _get(result, "content"))}]
        )
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


# --- input (posthog/ai/utils.py: merge_system_prompt) --------------------------------------------

_GEMINI_PART_KEYS = frozenset(
    {"text", "inline_data", "file_data", "function_call", "function_response"}
)


#: What `_text_size` adds for each key and value besides their lengths (as the snapshot's
#: sizing does: `PLAIN_MESSAGE_SIZE` is the `_text_size` of ``{"role": "", "content": ""}``).
_TEXT_ITEM_SIZE = 8


#: Types `_plain` returns as they are (no ``model_dump``, no dataclass, not a dict).
_AS_THEY_ARE = frozenset(
    {int, float, bool, type(None), list, tuple, datetime.datetime, datetime.date, uuid.UUID}
)
#: What `_openai_message` reads of a message besides its role and content.
_OPENAI_MESSAGE_EXTRA = ("tool_calls", "tool_call_id", "name", "audio", "refusal")
_OPENAI_MESSAGE_KEYS = frozenset({"role", "content", *_OPENAI_MESSAGE_EXTRA})


def _openai_message(message: object) -> Message:
    """As ``_format_chat_input_message``: role, content and the keys OpenAI gives meaning to."""
    kind = type(message)
    if kind is str:  # as ``_plain`` and `_as_text` leave it (~1.5 µs less)
        return {"role": "user", "content": message}
    if kind in _AS_THEY_ARE:  # no message: ``_plain`` leaves them as they are
        return {"role": "user", "content": _as_text(message)}
    # (a dict needs no copy)
    plain = message if kind is dict else _plain(message, _OPENAI_MESSAGE_KEYS)
    if not isinstance(plain, dict):
        return {"role": "user", "content": _as_text(plain)}
    role = plain.get("role")
    out: Message = {"role": "user" if role is None else role, "content": plain.get("content")}
    for key in _OPENAI_MESSAGE_EXTRA:
        if plain.get(key) is not None:
            out[key] = _plain(plain[key]) if key == "audio" else plain[key]
    return out


def _openai_messages(messages: Iterable[Any]) -> tuple[list[Message], int | None]:
    """The messages as `_openai_message` formats them, and their `_text_size` when known here.

    Plain ``{"role": str, "content": str}`` dicts, the usual chat messages, are read once by
    `_text_messages` (which also sizes them); anything else takes the general path.
    """
    items = messages if type(messages) is list else list(messages)
    text = _text_messages(items)
    if text is not None:
        return text.messages(), text.size
    return [_openai_message(message) for message in items], None


class TextMessages:
    """Chat messages that are a role and a content string each, kept as ``[role, content, ...]``.

    `recorded_input` gives them for the usual chat input instead of its dicts: the strings are
    read when the call is made (nothing can change them after), and `messages` makes the
    ``{"role": ..., "content": ...}`` dicts `format_input` gives when the event is built.
    A long input is read only as far as the size limit can hold: ``length`` then counts the
    messages of the whole input, more than the texts hold.
    """

    __slots__ = ("length", "size", "texts")

    def __init__(self, texts: list[str], size: int, length: int | None = None) -> None:
        self.texts = texts
        #: Their `_text_size`.
        self.size = size
        #: Messages in the input these are the first of.
        self.length = len(texts) // 2 if length is None else length

    @property
    def cut(self) -> bool:
        """True when messages after these were not read (the input exceeds the limit)."""
        return self.length > len(self.texts) // 2

    @property
    def items(self) -> int:
        """The items a snapshot of `messages` counts (`MESSAGE_ITEMS` a message)."""
        return MESSAGE_ITEMS * (len(self.texts) // 2)

    def messages(self) -> list[Message]:
        """The messages as `format_input` formats them: new dicts on each call."""
        texts = iter(self.texts)
        pairs = zip(texts, texts, strict=True)  # role, content
        return [{"role": role, "content": content} for role, content in pairs]

    def json_bound(self) -> int:
        """An upper bound of the JSON size of `messages`, as `hogtrace._limits` measures it.

        No character takes more than 12 bytes of ASCII-escaped JSON, and 12 times a message's
        `PLAIN_MESSAGE_SIZE` exceeds its keys, quotes, braces and ", " separator (29 bytes).
        """
        return 12 * self.size + 2


class PrintedRows:
    """Input items posthog's converter sends as ``{"role": "user", "content": str(item)}``.

    Each a row of numbers: a list or tuple of at most `_SHORT_ROW` ints, floats, booleans and
    None. `recorded_input` gives the first of a long input thus, copied (a tuple of them is
    immutable as it is), and `messages` prints them when the event is built, off the calling
    thread: ``str()`` of ten floats costs ~5 µs. ``length`` counts the input's items, more
    than the rows hold when it was too long to read whole.
    """

    __slots__ = ("first", "length", "rows")

    def __init__(
        self, rows: list[list[Any] | tuple[Any, ...]], length: int, first: list[Message]
    ) -> None:
        self.rows = rows
        self.length = length
        #: The system prompt's message the formatter puts first (of strings), if any.
        self.first = first

    def messages(self) -> list[Message]:
        """The messages as `format_input` formats them: new dicts on each call."""
        first = [dict(message) for message in self.first]
        return first + [{"role": "user", "content": str(row)} for row in self.rows]


def _printed_rows(
    items: list[Any] | tuple[Any, ...], limit: int, most: int | None, first: list[Message]
) -> PrintedRows | None:
    """The items as `PrintedRows` after ``first``, if each item read is such a row, else None.

    As many are read as a snapshot of their messages can keep, ``most`` items at
    `MESSAGE_ITEMS` a message and ``limit`` bytes by the first row's length; each row holds
    at most `_SHORT_ROW` numbers (or a few short strings), so that the event builder prints
    them all in a few tens of milliseconds at most.
    """
    if not _short_row(items[0]):
        return None
    count = len(items) if most is None else min(len(items), most // MESSAGE_ITEMS + 1)
    # And as many as can fit in the size limit, by the first one's length: a snapshot keeps
    # a message of up to `MIN_ITEM` bytes whole, and cuts longer ones to a share of that.
    each = len(str(items[0])) + PLAIN_MESSAGE_SIZE
    count = min(count, int(limit * _HEADROOM / min(each, MIN_ITEM)) + 1)
    rows: list[list[Any] | tuple[Any, ...]] = []
    values = 0
    for row in islice(items, count):
        kind = type(row)
        if (kind is not list and kind is not tuple) or not _short_row(row):
            return None
        rows.append(row if kind is tuple else list(row))
        values += len(row)
        if values > _ROWS_VALUES:  # (only with a `max_items` far above the default)
            break
    return PrintedRows(rows, len(first) + len(items), first)


def _short_row(row: list[Any] | tuple[Any, ...]) -> bool:
    """A row `PrintedRows` holds: up to `_SHORT_ROW` numbers, or a few short strings.

    Not an int of `LONG_INT` (2**256) or more: printing one of thousands takes ~0.2 ms.
    """
    if len(row) <= _SHORT_ROW and _NUMBERS.issuperset(kinds := set(map(type, row))):
        return not has_long_int(row, kinds)
    return (
        len(row) <= _SHORT_TEXTS
        and _STRINGS.issuperset(map(type, row))
        and sum(map(len, row)) <= _SHORT_TEXT
    )


#: The most values of a row `PrintedRows` holds (~0.5 µs a float to print): the event
#: builder prints at most ~1,250 such rows at the default limits (~10 ms), ~3,900 at any.
#: A longer row is an `AsText`.
_SHORT_ROW = 16
#: The most values `PrintedRows` prints in all (~10 ms): at the default `max_items` its
#: ~1,250 rows hold fewer; rows past it are left out (counted in the marker).
_ROWS_VALUES = 20_000
#: Or strings (cheaper to print): at most this many, of at most `_SHORT_TEXT` characters.
_SHORT_TEXTS = 64
_SHORT_TEXT = 2048
_STRINGS = frozenset({str})


def _text_messages(
    messages: Iterable[Any], limit: int | None = None, most: int | None = None
) -> TextMessages | None:
    """The messages if each is a plain ``{"role": str, "content": str}`` dict, else None.

    With a ``limit`` (JSON bytes), a long list is read only as far as it and ``most`` items
    can hold (`_long_text_messages`).
    """
    if limit is not None and isinstance(messages, (list, tuple)) and len(messages) > _LONG_INPUT:
        return _long_text_messages(messages, limit, most)
    texts: list[str] = []
    append = texts.append
    chars = count = 0
    for message in messages:
        if (
            type(message) is dict
            and len(message) == 2  # with both keys below set: no other key
            and type(role := message.get("role")) is str
            and type(content := message.get("content")) is str
        ):
            append(role)
            append(content)
            chars += len(role) + len(content)
            count += 1
        else:
            return None
    return TextMessages(texts, chars + PLAIN_MESSAGE_SIZE * count)


def _long_text_messages(
    messages: list[Any] | tuple[Any, ...], limit: int, most: int | None = None
) -> TextMessages | None:
    """`_text_messages` of a long list, read a chunk at a time until certain to be cut.

    Reading stops once `hogtrace._serialize.snapshot` would certainly have cut the list
    before the next chunk. A snapshot keeps messages until they exceed ``limit`` with each
    counted at most `MIN_ITEM` bytes; a message is kept whole while it fits in what the
    earlier ones left, else cut to no less than half an equal share of the limit. Here each is
    counted at most that much once the limit is spent, so no fewer are read than the snapshot
    keeps. A snapshot also keeps at most ``most`` items, `MESSAGE_ITEMS` a message: reading
    stops past those too. The rest are neither read nor checked.
    """
    texts: list[str] = []
    size = spent = capped = 0
    cut = min(MIN_ITEM, PLAIN_MESSAGE_SIZE + limit // len(messages) // 2)
    last = len(messages) if most is None else min(len(messages), most // MESSAGE_ITEMS + 1)
    for start in range(0, len(messages), _TRIAL):
        if start >= last:
            return TextMessages(texts, size, len(messages))
        part = _text_messages(messages[start : start + _TRIAL])
        if part is None:
            return None
        texts += part.texts
        size += part.size
        lengths = iter(map(len, part.texts))
        for length in map(int.__add__, lengths, lengths):  # a role's and its content's
            length += PLAIN_MESSAGE_SIZE
            spent += length + 2
            most = MIN_ITEM if spent <= limit else cut
            capped += length if length < most else most
        if capped > limit:
            return TextMessages(texts, size, len(messages))
    return TextMessages(texts, size)


def _openai_input_item(item: object) -> Message:
    """As ``_format_response_input_item``: a Responses API input item."""
    if not isinstance(item, (dict, str)):
        item = _plain(item)
    if isinstance(item, dict):
        if "type" in item and "role" not in item and "content" not in item:
            return _without_none(item)
        return {"role": item.get("role", "user"), "content": item.get("content", "")}
    return {"role": "user", "content": _as_text(item)}


def _openai_input(
    args: Mapping[str, Any], messages: Any, data: Any
) -> tuple[list[Message] | None, int | None]:
    """The input, and its `_text_size` when known without a second walk (else None).

    `messages` and `data` are ``args``' ``messages`` and ``input``, as the caller read them.
    """
    if messages is None and data is None and "messages" not in args and "input" not in args:
        return None, None
    out, size = _openai_messages(messages) if messages is not None else ([], None)
    system, instructions = args.get("system"), args.get("instructions")
    if data is None and system is None and instructions is None:
        return out, size
    if isinstance(data, list):
        out.extend(_openai_input_item(item) for item in data)
    elif data is not None:
        out.append({"role": "user", "content": _as_text(data)})
    if system is not None and not any(m.get("role") == "system" for m in out):
        out.insert(0, {"role": "system", "content": system})
    if instructions is not None:
        at = next((i for i, m in enumerate(out) if m.get("role") == "system"), None)
        if at is None:
            out.insert(0, {"role": "system", "content": instructions})
        else:
            out[at]["content"] = f"{out[at].get('content', '')}\n\n{instructions}"
    return out, None


def _parts(
    parts: Sequence[Any], block: Callable[[Any], Any], most: int | None, drop: bool
) -> list[Any] | Head:
    """A message's content parts as ``block`` formats each; with ``drop``, None ones left out.

    With ``most`` (the items a snapshot keeps), a list longer than `_LONG_PARTS` is formatted
    only until its blocks take more items than that (a block counts at least 1, and a dict 1
    more than its entries, as the snapshot counts them; a part left out, which cost reading
    it, counts as a Gemini block does, 3): the rest are left unread, as a `Head` whose length
    counts each unread part as a block. A snapshot cuts within the blocks read, where it cuts
    the whole list, except when parts left out (Gemini's empty ones) are among those read or
    unread: the length then counts them too.
    """
    if most is None or len(parts) <= _LONG_PARTS:
        if drop:
            return [out for part in parts if (out := block(part)) is not None]
        return list(map(block, parts))
    blocks: list[Any] = []
    spent = 0
    for read, part in enumerate(parts, 1):
        out = block(part)
        if out is not None or not drop:
            blocks.append(out)
            spent += 1 + len(out) if type(out) is dict else 1
        else:
            spent += _LEFT_OUT
        if spent > most:
            return Head(blocks, len(blocks) + len(parts) - read) if read < len(parts) else blocks
    return blocks


def _anthropic_input(args: Mapping[str, Any], most: int | None = None) -> list[Message] | None:
    """As ``format_anthropic_input``: the system prompt first, content blocks made plain."""
    if "messages" not in args:
        return None
    system = args.get("system")
    out: list[Message] = [] if system is None else [{"role": "system", "content": system}]
    for message in args.get("messages") or ():
        content = _get_or(message, "content", "")
        if isinstance(content, list):
            content = _parts(content, _plain, most, drop=False)
        out.append({"role": _get_or(message, "role", "user"), "content": content})
    return out


def _gemini_content(content: object, most: int | None) -> Any:
    if isinstance(content, list):
        return _gemini_input_parts(content, most)
    return _as_text(content)


def _gemini_input_parts(parts: Sequence[Any], most: int | None = None) -> list[Block] | Head:
    return _parts(parts, _gemini_plain_part, most, drop=True)


def _is_bare_part(value: object) -> bool:
    return isinstance(value, dict) and not _GEMINI_PART_KEYS.isdisjoint(_snake_keys(value))


def _gemini_role(item: object) -> str:
    role = _get(item, "role")
    return role if isinstance(role, str) else "user"


def _gemini_message(item: object, most: int | None = None) -> Message:
    """As ``_format_dict_message`` / ``_format_object_message``: one entry of ``contents``.

    With ``most``, a long list of parts is formatted only as far as `_parts` says.
    """
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if isinstance(item, dict):
        role = item.get("role", "user")
        if isinstance(item.get("parts"), list):
            return {"role": role, "content": _gemini_input_parts(item["parts"], most)}
        if "content" in item:
            return {"role": role, "content": _gemini_content(item["content"], most)}
        if "role" not in item and _is_bare_part(_plain(item)):
            return {"role": "user", "content": _gemini_input_parts([item])}
        if "text" in item:
            return {"role": role, "content": item["text"]}
        return {"role": "user", "content": _as_text(item)}
    parts = _get(item, "parts")
    if parts is not None and hasattr(parts, "__iter__"):
        parts = parts if type(parts) is list else list(parts)  # (an SDK's list: not copied)
        return {"role": _gemini_role(item), "content": _gemini_input_parts(parts, most)}
    if _is_bare_part(_plain(item)):
        return {"role": "user", "content": _gemini_input_parts([item])}
    if _has(item, "text"):
        return {"role": _gemini_role(item), "content": _get(item, "text")}
    if _has(item, "content"):
        content = _gemini_content(_get(item, "content"), most)
        return {"role": _gemini_role(item), "content": content}
    return {"role": "user", "content": _as_text(item)}


def _gemini_input(args: Mapping[str, Any], most: int | None = None) -> list[Message] | None:
    """As ``format_gemini_input_with_system``: contents, with the config's system instruction."""
    if "contents" not in args:
        return None
    contents = args["contents"]
    items = contents if isinstance(contents, list) else [contents]
    out = [_gemini_message(item, most) for item in items]
    config = args.get("config")
    if isinstance(config, Mapping):
        system = config.get("system_instruction", config.get("systemInstruction"))
    else:
        system = getattr(config, "system_instruction", None)
    if system is not None and not any(m.get("role") == "system" for m in out):
        out.insert(0, {"role": "system", "content": system})
    return out


def _lc_messages(messages: object) -> list[Any] | None:
    """LangChain messages (a list, or a list per prompt), or None when they are not."""
    rows = _seq(messages)
    nested = bool(rows) and isinstance(rows[0], list)
    # Checked as read: a list of lists of numbers is not flattened to find it holds none.
    each = chain.from_iterable(rows) if nested else rows
    if not all(not isinstance(m, Mapping) and _has(m, "additional_kwargs") for m in each):
        return None
    flat = list(chain.from_iterable(rows)) if nested else rows
    return flat or None


def format_input(provider: str | None, arguments: Mapping[str, Any]) -> list[Message] | None:
    """The ``$ai_input`` posthog's own wrappers send for a call with these arguments.

    Anthropic's ``system`` becomes a first system message; Gemini's ``contents`` become messages
    of content blocks, with ``config.system_instruction`` first; OpenAI chat messages keep their
    role, content and tool keys, and Responses ``input`` / ``instructions`` become messages;
    LangChain messages are sent as posthog's CallbackHandler sends them.

    Args:
        provider: ``"openai"``, ``"anthropic"``, ``"gemini"`` (or ``"google"``, ``"vertex"``),
            or None to tell from the arguments.
        arguments: The call's arguments by name (``messages``, ``system``, ``contents``, ...).

    Returns:
        The messages, or None when the arguments hold nothing the provider's input is made
        of (the caller then keeps the input it has). Never raises.
    """
    out = _format(provider, arguments, texts=False)[0]
    try:
        return out.messages() if isinstance(out, TextMessages) else _made(out)
    except Exception:  # an item whose str() raises, as formatting it at once would
        return None


def _made(value: Any) -> Any:
    """``value`` with each `AsText` made its string: as posthog's converters send it."""
    kind = type(value)
    if kind is AsText:
        return str(value.value)
    if kind is dict:
        return {key: _made(item) for key, item in value.items()}
    if kind is list:
        return [_made(item) for item in value]
    return value


def recorded_input(
    provider: str | None,
    arguments: Mapping[str, Any],
    limit: int | None = None,
    most: int | None = None,
) -> tuple[list[Message] | TextMessages | PrintedRows | Head | LaterSystem | None, int | None]:
    """`format_input` as a generation records it, with the `_text_size` of the messages.

    The usual chat input, plain role and content strings only, comes as `TextMessages`, sized
    as it is read; other messages are formatted and then walked by `_text_size` (None: not
    only strings). With a ``limit`` (JSON bytes) and ``most`` (items, as a snapshot counts
    them), a long input is read only as far as they can hold: plain messages until they are
    certain to be cut (`TextMessages.cut`); OpenAI messages that are rows of plain values as
    `PrintedRows`, as many as can be kept (their size None); others, when each formats on its
    own (`_long_list`), as a `Head` of as many formatted messages as the snapshot cuts within
    (its size None). Never raises.
    """
    try:
        long = _long_list(provider, arguments, most) if limit is not None else None
        if long is None:
            return _format(provider, arguments, True, most)
        assert limit is not None
        head, size = _long_input(provider, arguments, long, limit, most)
        if long.read < len(long.items):
            # A system message may follow the items read: if the formatter put the prompt's
            # message first, the event builder looks for one (else there is none to take out,
            # or a system message was among those read and the head is as whole).
            if type(head) is PrintedRows and len(head.first) == 1:
                return LaterSystem(head, provider, long), None
            if type(head) is Head:  # of the items it read, each one message
                read = len(long.items) - (head.length - len(head.items))
                if len(head.items) == read + 1:  # and the prompt's
                    later = long._replace(read=max(long.read, read))
                    return LaterSystem(head, provider, later), None
        return head, size
    except Exception:
        return None, None


def _long_input(
    provider: str | None,
    arguments: Mapping[str, Any],
    long: LongInput,
    limit: int,
    most: int | None,
) -> tuple[TextMessages | PrintedRows | Head | list[Message] | None, int | None]:
    """`recorded_input` of a long input list (`_long_list`). May raise."""
    items = long.items
    if long.plain and (lazy := _text_messages(items, limit, most)) is not None:
        return lazy, lazy.size  # plain messages, read as far as the limits
    anthropic = isinstance(provider, str) and provider.lower() == "anthropic"
    if not anthropic and (rows := _rows(provider, arguments, long, limit, most)) is not None:
        return rows, None  # rows of numbers, say: printed by the event builder
    # The first message formatted, to learn what one takes: one with hundreds of parts
    # may take more of the items than a few hundred plain ones.
    trial, size = _format(provider, long.head(arguments, _FIRST), False, most)
    if trial is None or isinstance(trial, TextMessages):  # (not given without ``texts``)
        return None, None
    head = Head(trial, len(trial) + len(items) - _FIRST)
    head.taken = copy, trial_size, walk = snapshot(head, limit, most)
    if len(copy) <= len(trial):  # cut within the first ones already (by ``most``, say)
        return head, None
    # A snapshot counts each item at most `MIN_ITEM` bytes: that many items pass the limit;
    # and as many messages as their items say fit in ``most``.
    each = min((trial_size if size is None else size) / max(len(trial), 1), MIN_ITEM)
    read = int(limit * _HEADROOM / max(each, 1)) + 1
    if most is not None:
        # The items a message takes, by the first ones' (not the system prompt's message put
        # first, when there is one: a short one would make the rest seem to take fewer).
        used, messages = walk.used, len(trial)
        if 0 < (extra := len(trial) - _FIRST) < len(trial):
            used -= snapshot(trial[:extra], limit, most)[2].used  # (as the walk counts it)
            messages -= extra
        read = min(read, int(most * _HEADROOM * messages / max(used, 1)) + 1)
    while read < len(items):
        out, _ = _format(provider, long.head(arguments, read), False, most)
        if out is None or isinstance(out, TextMessages):
            return None, None
        head = Head(out, len(out) + len(items) - read)
        head.taken = snapshot(head, limit, most)
        if len(head.taken[0]) <= len(out):  # cut within what was read
            return head, None
        read *= 2  # later items are shorter than the first ones: read on
    return _format(provider, arguments, True, most)  # (whole: exact)


#: Lists of plain messages longer than this are read only as far as the limits hold.
_LONG_INPUT = 4096
#: Input lists longer than this are formatted only as far as the limits hold: formatting a
#: message of many parts costs the calling thread ~3 µs a part, as posthog's converters do.
_LONG_OTHER = 16
#: Items of a long input formatted first, to learn their size and items.
_FIRST = 1
#: Plain messages read at a time.
_TRIAL = 1024
#: What a content part the formatter leaves out counts of the items (as a Gemini block).
_LEFT_OUT = 3
#: A message's content parts past this many are formatted only as far as the item limit
#: holds (`_parts`): ~0.5-1 µs a part, as posthog's converters do.
_LONG_PARTS = 64
#: How many more items than the first ones' size says fit a long input reads.
_HEADROOM = 1.25


def _rows(
    provider: str | None,
    arguments: Mapping[str, Any],
    long: LongInput,
    limit: int,
    most: int | None,
) -> PrintedRows | None:
    """A long input of rows of plain values as `PrintedRows`, after its system prompt."""
    if type(long.items[0]) not in _ROWS or not _short_row(long.items[0]):
        return None  # (not rows: not read further)
    first: list[Message] = []
    if long.system:  # the system prompt's message, formatted as before no message
        formatted, _ = _format(provider, long.head(arguments, 0), False)
        if not isinstance(formatted, list) or _text_size(formatted) is None:
            return None  # not only strings: formatted with the rows, by the general path
        first = formatted
    return _printed_rows(long.items, limit, most, first)


class LongInput(NamedTuple):
    """A long input list the provider's formatter reads item by item (`_long_list`)."""

    key: str  # the argument that holds it
    items: list[Any] | tuple[Any, ...]
    plain: bool  # plain messages are recorded as they are (`TextMessages`)
    system: tuple[str, ...]  # arguments whose system prompt is added unless a message is one
    at: int  # the first system message's index, -1 if none: past a head, those arguments
    # change nothing in it (OpenAI's ``instructions`` are merged into that message)
    read: int  # the items read for a system message: past them, `LaterSystem` looks

    def head(self, arguments: Mapping[str, Any], count: int) -> dict[str, Any]:
        """``arguments`` with only the first ``count`` items, formatted as they are whole."""
        head = {**arguments, self.key: self.items[:count]}
        if self.at >= count:  # a system message after the head: no prompt is added to it
            head.update(dict.fromkeys(self.system))
        return head


def _long_list(
    provider: str | None, arguments: Mapping[str, Any], most: int | None = None
) -> LongInput | None:
    """The input list the provider's formatter reads, when long and formatted item by item.

    None when the input is short, or when a message's formatting depends on the whole list
    in a way not read at C speed: OpenAI's ``messages`` and ``input`` together, or a system
    prompt (OpenAI's ``system``/``instructions``, Gemini's system instruction, added only if
    no message is a system one) beside a list of dicts and other items (strings, rows and
    scalars alone are never system messages); then it is formatted whole. Beside a system
    prompt, a list longer than a snapshot of ``most`` items can read is looked at only as far
    (`_SYSTEM_READ`), and one holding pydantic models not at all (``read`` 0: the head's
    formatting tells): the event builder looks at the rest (`LaterSystem`).
    """
    hint = provider.lower() if isinstance(provider, str) else None
    key: str | None
    system: tuple[str, ...] = ()
    if hint == "anthropic":  # the system prompt always comes first
        key = "messages"
    elif hint in ("gemini", "google", "vertex", "vertex_ai") or (
        hint is None and "contents" in arguments
    ):
        key = "contents"
        system = ("config",) if arguments.get("config") is not None else ()
    elif arguments.get("system") is not None or arguments.get("instructions") is not None:
        if arguments.get("messages") is None:
            key = "input"
        else:
            key = "messages" if arguments.get("input") is None else None
        system = ("system", "instructions")
    elif arguments.get("input") is None:
        key = "messages"
    else:
        key = "input" if arguments.get("messages") is None else None
    items = arguments.get(key) if key is not None else None
    # A tuple is a list of messages only as ``messages``: elsewhere it formats as one message.
    kinds = (list, tuple) if key == "messages" else list
    if key is None or not isinstance(items, kinds) or len(items) <= _LONG_OTHER:
        return None
    at = -1
    read = len(items)
    if system:
        if most is not None and read > _SYSTEM_READ * max(most, 1):
            read = _SYSTEM_READ * max(most, 1)  # more than a snapshot reads of them
        seen = items if read == len(items) else items[:read]
        dicts = True
        try:  # one pass at C speed (~50 ns a message on a 2-vCPU VM)
            at = indexOf(map(dict.get, seen, repeat("role")), "system")
            read = len(items)  # found: none after it matters
        except ValueError:  # no system message
            pass
        except TypeError:  # not only dicts
            found = set(map(type, seen))
            if _NEVER_SYSTEM.issuperset(found):
                # Only strings, rows (lists, tuples) and scalars: each formats as a user's.
                dicts = False
            elif all(kind in _NEVER_SYSTEM or kind is dict or _is_model(kind) for kind in found):
                # Dicts among plain values, or pydantic models (google-genai's Content,
                # OpenAI's input and output items), whose roles cost ~100-200 ns an item to
                # read: the head formatted says whether one it read is a system message
                # (`recorded_input`), the event builder looks at the rest.
                read = 0
            else:
                return None
        if dicts and key == "messages" and len(items) <= _LONG_INPUT:
            return None  # a few chat messages beside system=: cheaper formatted whole
        if at >= 0:
            # A message formats as a system one only with content (else as a user's).
            alone, _ = _format(provider, {key: [items[at]]}, texts=False)
            if not isinstance(alone, list) or [m.get("role") for m in alone] != ["system"]:
                return None
    plain = key == "messages" and hint != "anthropic" and not system
    return LongInput(key, items, plain, system, at, read)


def _is_model(kind: type) -> bool:
    """Whether ``kind`` is a pydantic model whose role formats as its ``role`` attribute.

    Not LangChain's messages: a list of them all is formatted as LangChain's (their type
    gives the role), and a ``ChatMessage`` among others as any model.
    """
    fields = getattr(kind, "model_fields", None)
    return isinstance(fields, dict) and "additional_kwargs" not in fields


#: Input items no formatter makes a system message of (`_long_list`).
_NEVER_SYSTEM = frozenset({str, list, tuple, int, float, bool, type(None)})
#: Beside a system prompt, a long input's items read for a system message on the calling
#: thread: this many per item of ``max_items`` (10,000 at the default, ~0.5 ms of dicts). A
#: message takes at least three items (a dict of two entries), and a head is read at most
#: 2.5 times as far as a snapshot keeps of it: at most ~0.85 per item.
_SYSTEM_READ = 2


class LaterSystem:
    """A long input's head recorded with its system prompt's message first, for now.

    The provider's formatter adds that message only if no message is a system one. Looking
    through a long list (a million items, say) takes the calling thread ~20-50 ns an item,
    past the 5 ms a call may spend: the event builder looks at the items after those read
    (`LongInput.read`), as many as the list had at the call, and takes out the prompt's
    message if one of them formats as a system message. Up to `_COPIED_REST` of those items
    are copied at the call (not the items themselves: their roles must not change in
    between); past that the list is read in place, so it must not change in between except
    by appending to it.
    """

    __slots__ = ("head", "items", "key", "provider", "start", "stop")

    def __init__(self, head: Any, provider: str | None, long: LongInput) -> None:
        self.head = head  # the recorded input: a `PrintedRows`, or a snapshot's copy
        self.provider = provider
        self.key = long.key
        self.start, self.stop = long.read, len(long.items)
        self.items: Sequence[Any] = long.items  # the caller's list (only read, after start)
        if self.stop - self.start <= _COPIED_REST:  # (~10 ns an item: an agent loop that
            self.items = long.items[self.start :]  # rewrites its history in the call)
            self.start, self.stop = 0, len(self.items)

    def __repr__(self) -> str:
        return f"<input with a system prompt unless one of items {self.start:,}+ is one>"

    def resolved(self) -> Any:
        """The recorded input: without the prompt's message if a later item is a system one.

        May raise (a hostile item's role): then the event builder keeps ``head``.
        """
        head = self.head
        if not _system_after(self.provider, self.key, self.items, self.start, self.stop):
            return head
        if type(head) is PrintedRows:
            return PrintedRows(head.rows, head.length - len(head.first), [])
        if type(head) is list and head:  # the copy: its marker counts the same items left out
            return head[1:]
        return head


def _system_after(provider: str | None, key: str, items: Any, start: int, stop: int) -> bool:
    """Whether an item of ``items[start:stop]`` formats as a system message in the list.

    Read `_SYSTEM_CHUNK` items at a time, so that no single call holds the GIL for long. Only
    an item whose role reads "system" can format as one; each such is formatted after a
    string, as it is in the list (the list's first items are dicts, plain values or models
    other than LangChain's, `_is_model`: no formatter reads it as LangChain messages, where
    a ``SystemMessage`` alone would be one).
    """
    before = None
    dicts = iter(items)  # while the chunks are dicts of no system role: read in place
    next(islice(dicts, start, start), None)
    for begin in range(start, stop, _SYSTEM_CHUNK):
        end = min(begin + _SYSTEM_CHUNK, stop)
        if dicts is not None:
            try:  # their roles at C speed (~15% less than reading a copy of them)
                if "system" not in map(dict.get, islice(dicts, end - begin), repeat("role")):
                    continue
            except TypeError:  # not only dicts
                pass
            dicts = None  # (the iterator stopped within this chunk) from here, copies
        chunk = items[begin:end]
        try:
            if "system" not in map(dict.get, chunk, repeat("role")):
                continue
        except TypeError:  # not only dicts
            if _NEVER_SYSTEM.issuperset(map(type, chunk)):
                continue
        for item in chunk:
            if type(item) in _NEVER_SYSTEM or _get(item, "role") != "system":
                continue
            if before is None:  # the messages the string formats as
                first, _ = _format(provider, {key: [""]}, texts=False)
                before = len(first) if isinstance(first, list) else 0
            formatted, _ = _format(provider, {key: ["", item]}, texts=False)
            if isinstance(formatted, list) and any(
                m.get("role") == "system" for m in formatted[before:]
            ):
                return True
    return False


#: Past the items read, as many are copied at the call (at most ~0.3 ms): only the rest of a
#: longer list is read from the caller's list when the event is built.
_COPIED_REST = 30_000
#: Items `_system_after` reads at a time (~0.5 ms of dicts).
_SYSTEM_CHUNK = 10_000


def _format(
    provider: str | None, arguments: Mapping[str, Any], texts: bool, most: int | None = None
) -> tuple[list[Message] | TextMessages | None, int | None]:
    """`format_input`, sized; with `texts`, `recorded_input`'s `TextMessages` and sizes.

    With ``most`` (the items a snapshot keeps), a message's long list of content parts is
    formatted only as far as they can hold (`_parts`).
    """
    try:
        messages, data = arguments.get("messages"), arguments.get("input")
        if messages is not None and not isinstance(messages, (list, tuple)):
            return None, None  # not a list of messages (an iterator must not be consumed here)
        if data is not None and not isinstance(data, (list, tuple, str)):
            return None, None
        out: list[Message] | None
        # A dict first is never a LangChain message (nor a list of them, one per prompt).
        if (
            messages
            and type(messages[0]) is not dict
            and (lc := _lc_messages(messages)) is not None
        ):
            out = [_lc_message(message) for message in lc]
        else:
            hint = provider.lower() if isinstance(provider, str) else None
            if hint == "anthropic":
                out = _anthropic_input(arguments, most)
            elif hint in ("gemini", "google", "vertex", "vertex_ai") or (
                hint is None and "contents" in arguments
            ):
                out = _gemini_input(arguments, most)
            else:
                if (
                    texts
                    and messages is not None
                    and data is None
                    and arguments.get("system") is None
                    and arguments.get("instructions") is None
                    and (lazy := _text_messages(messages)) is not None
                ):
                    return lazy, lazy.size  # what `_openai_input` would make of them, unmade
                out, size = _openai_input(arguments, messages, data)
                if size is not None:
                    return out, size
        return out, None if out is None or not texts else _text_size(out)
    except Exception:
        return None, None


def _text_size(messages: list[Any]) -> int | None:
    """The size of messages of only strings: each key and value's length, plus 8 an item.

    None when a message is not a dict, or a key or value is not a ``str``. Such messages are
    fresh dicts of immutable strings: `format_input` made them, nothing else can change them.
    """
    size = 0
    for message in messages:
        if type(message) is not dict:
            return None
        for key, value in message.items():
            if type(value) is not str or type(key) is not str:
                return None
            size += len(key) + len(value) + _TEXT_ITEM_SIZE
    return size


# --- streams --------------------------------------------------------------------------------------


class _TextStream:
    """Str chunks and bare text blocks: one assistant message with the joined text."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def output(self) -> list[Message]:
        return [{"role": "assistant", "content": "".join(self.parts)}]


def _chat_stream_index(calls: dict[object, Block], frag: object) -> object:
    """As posthog's ``_openai_tool_delta_index``: the key of the call a tool call delta extends."""
    index = _get(frag, "index")
    if index is not None:
        return index
    call_id = _get(frag, "id")
    for key, call in calls.items():
        if call_id and call["id"] == call_id:
            return key
    has_name = bool(_get(_get(frag, "function"), "name"))
    if calls and not call_id and not has_name:
        return next(reversed(calls))  # neither id nor name: it continues the latest call
    return f"no-index-{len(calls)}"


class _ChatStream:
    """OpenAI chat chunks, per choice (``_ChatCompletionsStreamState`` in posthog)."""

    __slots__ = ("calls", "parts")

    def __init__(self) -> None:
        self.parts: dict[int, list[Any]] = {}
        self.calls: dict[int, dict[object, Block]] = {}

    def add(self, choice: object) -> None:
        index = _get(choice, "index")
        index = index if isinstance(index, int) else 0
        delta = _get(choice, "delta")
        if delta is None:
            return
        if content := _get(delta, "content"):
            if isinstance(content, str):
                self.parts.setdefault(index, []).append(content)
            else:  # blocks, as some OpenAI-compatible providers send (thinking, then text)
                for block in _seq(content):
                    plain = _plain(block)
                    text = plain.get("text") if isinstance(plain, dict) else None
                    is_text = isinstance(plain, dict) and plain.get("type") == "text"
                    part = text if is_text and isinstance(text, str) else plain
                    self.parts.setdefault(index, []).append(part)
        elif (audio := _get(delta, "audio")) is not None:
            plain = _plain(audio)
            block = {"type": "audio", **plain} if isinstance(plain, dict) else {"type": "audio"}
            self.parts.setdefault(index, []).append(block)
        elif refusal := _get(delta, "refusal"):
            self.parts.setdefault(index, []).append({"type": "refusal", "refusal": refusal})
        frags = _seq(_get(delta, "tool_calls"))
        if frags:
            calls = self.calls.setdefault(index, {})
            for frag in frags:
                self._merge_call(calls, frag)

    @staticmethod
    def _merge_call(calls: dict[object, Block], frag: object) -> None:
        key = _chat_stream_index(calls, frag)
        call = calls.get(key)
        if call is None:
            call = calls[key] = {"id": "", "function": {"name": "", "arguments": ""}}
        if call_id := _get(frag, "id"):
            call["id"] = call_id
        fn = _get(frag, "function")
        if name := _get(fn, "name"):
            call["function"]["name"] = name
        args = _get(fn, "arguments")
        if args and isinstance(args, str) and isinstance(call["function"]["arguments"], str):
            call["function"]["arguments"] += args

    def output(self) -> list[Message]:
        content: list[Block] = []
        for index in sorted(set(self.parts) | set(self.calls)):
            content.extend(_chat_stream_parts(self.parts.get(index, ())))
            for call in self.calls.get(index, {}).values():
                content.append(
                    {"type": "function", "id": call["id"], "function": dict(call["function"])}
                )
        return [{"role": "assistant", "content": content}]


def _chat_stream_parts(parts: Iterable[Any]) -> list[Block]:
    """As posthog's ``_merge_openai_chat_stream_parts``: text, then audio, then refusal."""
    texts: list[str] = []
    refusals: list[str] = []
    audio: Block = {"type": "audio"}
    data: list[str] = []
    transcript: list[str] = []
    others: list[Block] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, dict):
            continue
        elif part.get("type") == "audio":
            if "id" not in audio and part.get("id"):
                audio["id"] = part["id"]
            if part.get("data"):
                data.append(part["data"])
            if part.get("transcript"):
                transcript.append(part["transcript"])
        elif part.get("type") == "refusal" and part.get("refusal"):
            refusals.append(part["refusal"])
        elif part.get("type") != "refusal":  # a block of another kind (thinking)
            kind = part.get("type")
            last = others[-1] if others else None
            if (
                last is not None
                and isinstance(kind, str)
                and last.get("type") == kind
                and isinstance(last.get(kind), str)
                and isinstance(part.get(kind), str)
            ):  # streamed a piece at a time, as text is: joined
                others[-1] = {**last, kind: last[kind] + part[kind]}
            else:
                others.append(part)
    items: list[Block] = [*others, _text("".join(texts))] if texts else list(others)
    if data or transcript:
        if data:
            audio["data"] = "".join(data)
        if transcript:
            audio["transcript"] = "".join(transcript)
        items.append(audio)
    if refusals:
        items.append({"type": "refusal", "refusal": "".join(refusals)})
    return items


class _ResponsesStream:
    """OpenAI Responses events: the terminal event's output items.

    For a stream cut before its terminal event, what had arrived: the items finished
    (``response.output_item.done``: a function call, a message) and the text deltas of those
    not finished, in output order.
    """

    __slots__ = ("done", "items", "terminal", "texts")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.terminal = False
        self.done: dict[int, Any] = {}  # output index -> finished item
        self.texts: dict[int, list[str]] = {}  # output index -> its text deltas

    def add(self, typ: str, event: object) -> None:
        index = _get(event, "output_index")
        if typ == "response.output_text.delta":
            if isinstance(delta := _get(event, "delta"), str):
                # Without an index (not the SDK's events): after every item that has one.
                at = index if type(index) is int else sys.maxsize
                self.texts.setdefault(at, []).append(delta)
        elif typ == "response.output_item.done" and (item := _get(event, "item")) is not None:
            self.done[index if type(index) is int else len(self.done)] = item

    def output(self) -> list[Message]:
        if self.terminal:
            return _responses_items(self.items)
        items = []
        for index in sorted(self.done.keys() | self.texts.keys()):
            item = self.done.get(index)
            if item is None:
                text = "".join(self.texts[index])
                item = {"type": "message", "content": [{"type": "output_text", "text": text}]}
            items.append(item)
        return _responses_items(items)


def _anthropic_start(block: object) -> Block | None:
    """As posthog's ``_start_anthropic_block``: a block to fill from the deltas, or None."""
    kind = _get(block, "type")
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "tool_use":
        fn = {"name": _get_or(block, "name", ""), "arguments": {}}
        return {"type": "function", "id": _get_or(block, "id", ""), "function": fn}
    if kind == "thinking":
        thinking: Block = {"type": "thinking", "thinking": _get(block, "thinking") or ""}
        if signature := _get(block, "signature"):
            thinking["signature"] = signature
        return thinking
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": _get(block, "data")}
    return None


class _AnthropicStream:
    """Anthropic raw events (``_AnthropicStreamAccumulator`` in posthog)."""

    __slots__ = ("blocks", "by_index", "current", "texts", "tools")

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.by_index: list[Block] = []  # lines up with the events' block index
        self.tools: dict[object, str] = {}  # tool id -> its input JSON so far
        self.current: Block | None = None  # the text or thinking block deltas go to
        self.texts: list[str] = []

    def start(self, event: object) -> None:
        block = _anthropic_start(_get(event, "content_block"))
        self.by_index.append(block or {})
        if block:
            self.blocks.append(block)
            self.current = block if block["type"] in ("text", "thinking") else None
            if block["type"] == "function" and block["id"]:
                self.tools[block["id"]] = ""

    def delta(self, event: object) -> None:
        delta = _get(event, "delta")
        current = self.current
        if _has(delta, "text"):
            text = _get(delta, "text") or ""
            if current is not None and current["type"] == "text":
                current["text"] += text
            if text:
                self.texts.append(text)
        else:
            for field in ("thinking", "signature"):
                if _has(delta, field):
                    if current is not None and current["type"] == "thinking":
                        current[field] = (current.get(field) or "") + (_get(delta, field) or "")
                    break
        if _get(delta, "type") == "input_json_delta" and (block := self._tool(event)):
            self.tools[block["id"]] += _get_or(delta, "partial_json", "") or ""

    def stop(self, event: object) -> None:
        self.current = None
        if block := self._tool(event):
            with contextlib.suppress(Exception):  # posthog keeps the empty input
                block["function"]["arguments"] = json.loads(self.tools[block["id"]])
            del self.tools[block["id"]]

    def _tool(self, event: object) -> Block | None:
        index = _get(event, "index")
        if isinstance(index, int) and 0 <= index < len(self.by_index):
            block = self.by_index[index]
            if block.get("type") == "function" and block.get("id") in self.tools:
                return block
        return None

    def output(self) -> list[Message]:
        content: list[Block] = []
        for block in self.blocks:
            kind = block["type"]
            if kind == "text":
                content.append(_text(block.get("text") or ""))
            elif kind == "function":
                fn = dict(block.get("function") or {})
                content.append({"type": "function", "id": block.get("id"), "function": fn})
            elif kind == "thinking":
                thinking, signature = block.get("thinking") or "", block.get("signature")
                content.append({"type": "thinking", "thinking": thinking, "signature": signature})
            else:
                content.append({"type": kind, "data": block.get("data")})
        if not content:
            content = [_text("".join(self.texts))]
        return [{"role": "assistant", "content": content}]


class _GeminiStream:
    """Gemini chunks: their parts' blocks, runs of text joined (``_merge_streaming_blocks``)."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: list[Block] = []

    def add(self, chunk: object, candidates: list[Any]) -> None:
        blocks = [block for candidate in candidates for block in _gemini_blocks(candidate)]
        if not blocks and (text := _get(chunk, "text")):
            blocks.append(_text(text))
        self.blocks.extend(blocks)

    def output(self) -> list[Message]:
        content = _merge_gemini_blocks(self.blocks) or [_text("")]
        return [{"role": "assistant", "content": content}]


class _LangChainStream:
    """LangChain ``AIMessageChunk``s: their sum, as the callback handler receives it."""

    __slots__ = ("calls", "chunks", "texts")

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.texts: list[str] = []
        self.calls: dict[object, Block] = {}

    def add(self, chunk: object) -> None:
        self.chunks.append(chunk)
        self.texts.append(_lc_text(_get(chunk, "content")))
        for frag in _seq(_get(chunk, "tool_call_chunks")):
            index, call_id = _get(frag, "index"), _get(frag, "id")
            if isinstance(index, int):
                key: object = index
            elif isinstance(call_id, str) and call_id:
                key = call_id
            else:  # neither index nor id: it continues the latest call
                key = next(reversed(self.calls), 0)
            call = self.calls.setdefault(key, {"id": None, "name": None, "args": ""})
            for field in ("id", "name"):
                if value := _get(frag, field):
                    call[field] = value
            if isinstance(args := _get(frag, "args"), str):
                call["args"] += args

    def output(self) -> list[Message]:
        chunks = self.chunks
        if all(_get(c, "type") == "AIMessageChunk" and not isinstance(c, Mapping) for c in chunks):
            try:  # the chunks' own sum: LangChain merges content, tool calls and extra kwargs
                total = chunks[0] + chunks[1:]
                if _get(total, "type") == "AIMessageChunk":
                    return [_lc_message(total)]
            except Exception:
                pass
        return [self._joined()]

    def _joined(self) -> Message:
        """Chunks as dicts: joined text, and the tool calls whose arguments parse."""
        message: Message = {"role": "assistant", "content": "".join(self.texts)}
        calls = []
        for call in self.calls.values():
            try:
                args = json.loads(call["args"]) if call["args"] else {}
            except ValueError:
                continue  # LangChain keeps it as an invalid tool call
            if isinstance(args, dict):
                calls.append({"name": call["name"] or "", "args": args, "id": call["id"]})
        if calls:
            message["tool_calls"] = _lc_tool_calls(calls)
        return message


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


_State = TypeVar(
    "_State",
    _TextStream,
    _ChatStream,
    _ResponsesStream,
    _AnthropicStream,
    _GeminiStream,
    _LangChainStream,
)


class StreamAccumulator:
    """Joins the chunks of a streamed generation into one output and one usage.

    The output is what posthog's own wrapper sends for the same stream. The first recognised
    kind of chunk decides the output; later chunks of another kind only add usage.

    Attributes:
        chunks: How many chunks were added.
        ignored: How many of them were not recognised (or not readable) and so skipped.
    """

    __slots__ = ("_ex", "_lc", "_state", "chunks", "ignored")

    def __init__(self) -> None:
        self.chunks = 0
        self.ignored = 0
        self._ex = Extracted()
        self._state: Any = None
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
            state = self._state
            ex.output = [{"role": "assistant", "content": ""}] if state is None else state.output()
            return ex
        except Exception:
            return Extracted()

    def _use(self, kind: type[_State]) -> _State:
        """The output state, made by the first recognised chunk; a throwaway for other kinds."""
        state = self._state
        if state is None:
            state = self._state = kind()
        return state if type(state) is kind else kind()

    def _add(self, chunk: object) -> bool:
        if isinstance(chunk, str):
            self._use(_TextStream).parts.append(chunk)
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
            candidates = _seq(_get(chunk, "candidates"))
            self._use(_GeminiStream).add(chunk, candidates)
            # usage_metadata is cumulative: the last one seen wins
            _merge(self._ex, _gemini_fields(chunk, candidates))
            return True
        return False

    def _add_chat(self, chunk: object) -> bool:
        ex = self._ex
        ex.provider, ex.model = "openai", _str(_get(chunk, "model")) or ex.model
        state = self._use(_ChatStream)
        for choice in _seq(_get(chunk, "choices")):
            state.add(choice)
            if _get(choice, "index") in (0, None):  # the first choice gives the stop reason
                ex.stop_reason = _reason(_get(choice, "finish_reason")) or ex.stop_reason
        _openai_usage(ex, _get(chunk, "usage"), _CHAT)
        return True

    def _add_responses(self, typ: str, event: object) -> bool:
        self._ex.provider = "openai"
        state = self._use(_ResponsesStream)
        if not state.terminal:
            state.add(typ, event)
        response = _get(event, "response")
        self._ex.model = _str(_get(response, "model")) or self._ex.model
        if typ in _RESPONSES_FINAL:  # carries the whole response, with its usage
            state.terminal = True
            if response and (items := _seq(_get(response, "output"))):
                state.items.extend(items)
            full = Extracted(model=_str(_get(response, "model")), provider="openai")
            full.stop_reason = _responses_stop(response)
            _openai_usage(full, _get(response, "usage"), _RESPONSES)
            _merge(self._ex, full)
        return True

    def _add_anthropic(self, typ: str, event: object) -> bool:
        ex = self._ex
        ex.provider = "anthropic"
        state = self._use(_AnthropicStream)
        if typ == "message_start":
            message = _get(event, "message")
            ex.model = _str(_get(message, "model")) or ex.model
            _anthropic_usage(ex, _get(message, "usage"), _ANTHROPIC_START)
        elif typ == "content_block_start":
            state.start(event)
        elif typ == "content_block_delta":
            state.delta(event)
        elif typ == "content_block_stop":
            state.stop(event)
        elif typ == "message_delta":  # cumulative counts; output_tokens at least
            _anthropic_usage(ex, _get(event, "usage"))
            ex.stop_reason = _reason(_get(_get(event, "delta"), "stop_reason")) or ex.stop_reason
        return True

    def _add_langchain(self, chunk: object) -> bool:
        self._lc = True
        _lc_meta(self._ex, _get(chunk, "response_metadata"))
        self._use(_LangChainStream).add(chunk)
        _usage(self._ex, _get(chunk, "usage_metadata"), _LANGCHAIN, add=True)
        return True
