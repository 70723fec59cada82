"""OpenTelemetry GenAI spans as hogtrace events (the ``hogtrace[otel]`` extra).

Add the processor to your ``TracerProvider`` once::

    import hogtrace.otel

    provider.add_span_processor(hogtrace.otel.SpanProcessor())

Every GenAI span an OpenTelemetry instrumentation starts (OpenTelemetry's own GenAI
instrumentations, OpenInference, OpenLLMetry, ...) then becomes a hogtrace scope under the
hogtrace scope that was current when the span started: a model call is a `$ai_generation`, an
embedding call a `$ai_embedding`, an agent, tool or chain span a `$ai_span`. Other spans (HTTP,
database, ...) are ignored. The mapping of attributes is in ``docs/otel.md``.

Spans outside every hogtrace scope: model calls and embeddings become standalone generations,
each in a trace of its own (as PostHog's own wrappers send them); other GenAI spans send
nothing, though the conversation id they carry still reaches the model calls inside them. Pass
``standalone=False`` to ignore everything outside hogtrace scopes.

The processor only uses hogtrace's public API: each bridged span opens a real hogtrace scope
(in a copy of the caller's context, so the caller's own context is never changed), so metrics,
``capture_events()``, privacy mode, redaction, size limits and sampling apply as usual.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.trace import StatusCode

import hogtrace

__all__ = ["SpanProcessor"]

logger = logging.getLogger("hogtrace.otel")

#: gen_ai.operation.name values that are one call to a model.
_MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
_EMBEDDING_OPERATIONS = frozenset({"embeddings", "embedding"})
#: gen_ai.operation.name values of other GenAI spans, and the `$ai_span_type` they get.
_SPAN_OPERATIONS = {
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "workflow",
    "retrieval": "retrieval",
}
#: OpenLLMetry's `llm.request.type`.
_TRACELOOP_TYPES = {"chat": "generation", "completion": "generation", "embedding": "embedding"}
#: Attributes that, alone, mark a span as a model call.
_MODEL_HINTS = ("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name")

_PARAMETERS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.choice.count": "n",
}
#: Keys of OpenInference's `llm.invocation_parameters` that are not parameters.
_NOT_PARAMETERS = frozenset(
    {"model", "messages", "input", "prompt", "tools", "functions", "stream_options"}
)

_INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
_OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
_CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_CREATION_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
#: Span events of the older GenAI conventions that carry one message each.
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
#: Event of the current conventions that carries the content instead of the span.
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


class _ScopeSpec(Protocol):
    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


@dataclass(eq=False)
class _Record:
    """What the processor keeps for one started OTel span."""

    #: The context the span's hogtrace scope (if any) was opened in; children copy it.
    ctx: contextvars.Context
    #: The hogtrace scope current when the span started (where its scope hangs).
    outer: Any
    #: The hogtrace scope current inside `ctx`: the span's own scope, or `outer`.
    inner: Any
    #: Whether a hogtrace scope (the user's or a bridged span's) encloses the span.
    inside: bool
    #: What the span is: "generation", "embedding", "span", or None (not GenAI, or ignored).
    kind: str | None = None
    #: The hogtrace scope made for the span.
    scope: Any = None
    #: Scope specs to exit when the span ends, outermost first.
    exits: list[_ScopeSpec] = field(default_factory=list)
    #: Not GenAI at start: decided again when the span ends.
    pending: bool = False


class SpanProcessor(_SdkSpanProcessor):
    """Turns OpenTelemetry GenAI spans into hogtrace generations, embeddings and spans.

    Args:
        standalone: model calls and embeddings outside every hogtrace scope become standalone
            generations (the default). With `False`, spans outside hogtrace scopes are ignored.
        max_open_spans: how many started, unfinished spans are remembered. Past it the oldest
            is forgotten, and its hogtrace scope (if any) is closed as it is.

    Example:
        ```py
        provider = TracerProvider()
        provider.add_span_processor(hogtrace.otel.SpanProcessor())
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        ```
    """

    def __init__(self, *, standalone: bool = True, max_open_spans: int = 10_000) -> None:
        if max_open_spans < 1:
            raise ValueError("max_open_spans must be at least 1")
        self._standalone = standalone
        self._max = max_open_spans
        self._records: OrderedDict[int, _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._warned_overflow = False

    # -- SpanProcessor ------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Open the hogtrace scope of a GenAI span; remember the others for their children."""
        try:
            span_id = span.get_span_context().span_id
            if _claim(self, span_id):
                try:
                    self._start(span)
                except Exception:
                    _release(span_id)
                    raise
        except Exception:
            logger.exception("hogtrace.otel: could not bridge the start of span %r", span.name)

    def on_end(self, span: ReadableSpan) -> None:
        """Fill the span's hogtrace scope from its final attributes and events, and close it."""
        try:
            self._end(span)
        except Exception:
            logger.exception("hogtrace.otel: could not bridge the end of span %r", span.name)

    def shutdown(self) -> None:
        """Close the hogtrace scopes of spans that never ended."""
        with self._lock:
            records = list(self._records.items())
            self._records.clear()
        for span_id, record in records:
            _release(span_id)
            _close(record)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver queued hogtrace events (`hogtrace.flush`)."""
        hogtrace.flush(timeout=timeout_millis / 1000)
        return True

    # -- internals ----------------------------------------------------------------------------

    def _start(self, span: Span) -> None:
        context = span.get_span_context()
        parent = span.parent
        parent_record = None
        if parent is not None and not parent.is_remote:
            with self._lock:
                parent_record = self._records.get(parent.span_id)

        caller = hogtrace.current()
        if parent_record is not None and (caller is None or caller is parent_record.outer):
            # The OTel parent was bridged (or remembered) and the caller has opened no hogtrace
            # scope of its own since: nest under the parent's scope, even from another thread.
            record = _Record(
                ctx=parent_record.ctx.copy(),
                outer=parent_record.inner,
                inner=parent_record.inner,
                inside=parent_record.inside,
            )
        else:
            record = _Record(
                ctx=contextvars.copy_context(),
                outer=caller,
                inner=caller,
                inside=caller is not None,
            )

        attributes = span.attributes or {}
        kind, span_type = _classify(attributes)
        if kind is None:
            record.pending = True
        else:
            self._open(record, span.name, kind, span_type, attributes)
        self._remember(context.span_id, record)

    def _end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None:
            return
        with self._lock:
            record = self._records.pop(context.span_id, None)
        if record is None:
            return
        _release(context.span_id)
        attributes = span.attributes or {}
        if record.pending:
            kind, span_type = _classify(attributes)
            if kind is None:
                return
            # GenAI attributes set only after start: open the scope now, where it would have
            # hung at start. Its latency is then not the span's.
            self._open(record, span.name, kind, span_type, attributes)
        try:
            if record.scope is not None:
                _fill(record.scope, record.kind, span, attributes)
        finally:
            _close(record)

    def _open(
        self,
        record: _Record,
        name: str,
        kind: str,
        span_type: str | None,
        attributes: Mapping[str, Any],
    ) -> None:
        record.pending = False
        model_call = kind != "span"
        conversation = _conversation_id(attributes)
        outer = record.inner
        if conversation is not None and (outer is None or outer.session_id is None):
            # As a computed id: one PostHog rejects is made valid (and logged), not refused.
            session: _ScopeSpec = hogtrace.session(id=lambda: conversation)
            record.inner = record.ctx.run(session.__enter__)
            record.exits.append(session)
        if not record.inside and not (model_call and self._standalone):
            # Outside every hogtrace scope, only model calls are sent. The span is remembered
            # (with the session of its conversation id) for the model calls inside it.
            return
        wraps = getattr(outer, "wraps_model_call", None)
        if kind == "generation" and getattr(outer, "kind", None) == "generation" and wraps:
            # The same call recorded twice (a @hogtrace.generation around an instrumented SDK
            # call, a framework's LLM span around the SDK's): the inner one is the model call,
            # the outer is sent as the $ai_span around it, so tokens and cost count once.
            wraps()
        spec: _ScopeSpec
        if kind == "generation":
            spec = hogtrace.generation(
                name, model=_model(attributes), provider=_provider(attributes)
            )
        elif kind == "embedding":
            spec = hogtrace.embedding(
                name, model=_model(attributes), provider=_provider(attributes)
            )
        else:
            spec = hogtrace.span(name)
        scope = record.ctx.run(spec.__enter__)
        record.exits.append(spec)
        record.kind = kind
        record.scope = scope
        record.inner = scope
        record.inside = True
        if span_type is not None:
            scope.set_properties(**{"$ai_span_type": span_type})

    def _remember(self, span_id: int, record: _Record) -> None:
        evicted: list[_Record] = []
        with self._lock:
            self._records[span_id] = record
            while len(self._records) > self._max:
                old_id, old_record = self._records.popitem(last=False)
                _release(old_id)
                evicted.append(old_record)
        if evicted and not self._warned_overflow:
            self._warned_overflow = True
            logger.warning(
                "hogtrace.otel: more than %d OpenTelemetry spans started and not ended; "
                "the oldest are closed as they are",
                self._max,
            )
        for old in evicted:
            _close(old)


#: Which processor bridges each started span: a second hogtrace processor on the same provider
#: (added twice by mistake) would send every span again. Entries leave when the span ends.
_claims: dict[int, SpanProcessor] = {}
_claims_lock = threading.Lock()
_warned_twice = False


def _claim(processor: SpanProcessor, span_id: int) -> bool:
    """Whether ``processor`` bridges the span: the first hogtrace processor to see it does."""
    global _warned_twice
    with _claims_lock:
        owner = _claims.setdefault(span_id, processor)
    if owner is processor:
        return True
    if not _warned_twice:
        _warned_twice = True
        logger.warning(
            "hogtrace.otel: more than one hogtrace SpanProcessor sees the same spans (added"
            " twice?); only the first sends them"
        )
    return False


def _release(span_id: int) -> None:
    with _claims_lock:
        _claims.pop(span_id, None)


def _close(record: _Record) -> None:
    for spec in reversed(record.exits):
        record.ctx.run(spec.__exit__, None, None, None)
    record.exits.clear()


# -- classification ---------------------------------------------------------------------------


def _classify(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """What a span is, from its attributes: (kind, `$ai_span_type`), or (None, None)."""
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str):
        if operation in _MODEL_OPERATIONS:
            return "generation", None
        if operation in _EMBEDDING_OPERATIONS:
            return "embedding", None
        return "span", _SPAN_OPERATIONS.get(operation, operation)
    openinference = attributes.get("openinference.span.kind")
    if isinstance(openinference, str):
        upper = openinference.upper()
        if upper == "LLM":
            return "generation", None
        if upper == "EMBEDDING":
            return "embedding", None
        return "span", None if upper == "UNKNOWN" else upper.lower()
    request_type = attributes.get("llm.request.type")
    if isinstance(request_type, str) and request_type in _TRACELOOP_TYPES:
        return _TRACELOOP_TYPES[request_type], None
    if any(key in attributes for key in _MODEL_HINTS):
        return "generation", None
    return None, None


def _conversation_id(attributes: Mapping[str, Any]) -> str | None:
    for key in ("gen_ai.conversation.id", "session.id"):
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _first(attributes: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _model(attributes: Mapping[str, Any]) -> str | None:
    """The requested model (as hogtrace's own generations prefer), else the response's."""
    value = attributes.get("gen_ai.request.model")
    if value is None:
        invocation = _json(
            _first(attributes, ("llm.invocation_parameters", "embedding.invocation_parameters"))
        )
        if isinstance(invocation, Mapping):
            value = invocation.get("model")
    if value is None:
        value = _first(
            attributes, ("gen_ai.response.model", "llm.model_name", "embedding.model_name")
        )
    return value if isinstance(value, str) and value else None


def _provider(attributes: Mapping[str, Any]) -> str | None:
    value = _first(
        attributes, ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    )
    return value if isinstance(value, str) and value else None


def _tokens(attributes: Mapping[str, Any], keys: Iterable[str]) -> int | None:
    value = _first(attributes, keys)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


# -- filling a scope from a finished span -----------------------------------------------------


def _fill(scope: Any, kind: str | None, span: ReadableSpan, attributes: Mapping[str, Any]) -> None:
    events = list(span.events)
    # In the "event_only" content mode, the content is on one event rather than the span.
    content: dict[str, Any] = dict(attributes)
    for event in events:
        if event.name == _DETAILS_EVENT and event.attributes:
            for key, value in event.attributes.items():
                content.setdefault(key, value)

    if kind == "span":
        _fill_span(scope, content)
    else:
        model, provider = _model(attributes), _provider(attributes)
        if model is not None:
            scope.set_model(model, provider)
        usage = {
            "input_tokens": _tokens(attributes, _INPUT_TOKENS),
            "output_tokens": None if kind == "embedding" else _tokens(attributes, _OUTPUT_TOKENS),
            "cache_read_input_tokens": _tokens(attributes, _CACHE_READ_TOKENS),
            "cache_creation_input_tokens": _tokens(attributes, _CACHE_CREATION_TOKENS),
            "reasoning_tokens": _tokens(attributes, _REASONING_TOKENS),
        }
        if any(value is not None for value in usage.values()):
            scope.set_usage(**usage)
        if kind == "embedding":
            embedded = _embedding_input(content)
            if embedded is not None:
                scope.set_input(embedded)
        else:
            _fill_generation(scope, content, events)

    error = _error(span, attributes)
    if error is not None:
        scope.set_error(error)


def _fill_generation(scope: Any, content: Mapping[str, Any], events: Sequence[Any]) -> None:
    messages = _input_messages(content, events)
    if messages is not None:
        scope.set_input(messages)
    output, stop_reason = _output_messages(content, events)
    if output is not None:
        scope.set_output(output)
    properties: dict[str, Any] = {}
    parameters = _model_parameters(content)
    if parameters:
        properties["$ai_model_parameters"] = parameters
    finish = content.get("gen_ai.response.finish_reasons") or content.get("llm.finish_reason")
    if isinstance(finish, str):
        stop_reason = finish
    elif isinstance(finish, Sequence) and finish and isinstance(finish[0], str):
        stop_reason = finish[0]
    if stop_reason:
        properties["$ai_stop_reason"] = stop_reason
    if properties:
        scope.set_properties(**properties)


def _fill_span(scope: Any, content: Mapping[str, Any]) -> None:
    value_in = _first(content, ("gen_ai.tool.call.arguments",))
    if value_in is None:
        messages = _otel_messages(content.get("gen_ai.input.messages"))
        value_in = messages if messages is not None else content.get("input.value")
    if value_in is not None:
        scope.set_input(_json(value_in))
    value_out = _first(content, ("gen_ai.tool.call.result",))
    if value_out is None:
        messages = _otel_messages(content.get("gen_ai.output.messages"))
        value_out = messages if messages is not None else content.get("output.value")
    if value_out is not None:
        scope.set_output(_json(value_out))
    tool = _first(content, ("gen_ai.tool.name", "tool.name"))
    agent = _first(content, ("gen_ai.agent.name", "agent.name"))
    properties = {
        key: value
        for key, value in (("$ai_tool_name", tool), ("$ai_agent_name", agent))
        if isinstance(value, str)
    }
    if properties:
        scope.set_properties(**properties)


def _model_parameters(content: Mapping[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    invocation = _json(
        _first(content, ("llm.invocation_parameters", "embedding.invocation_parameters"))
    )
    if isinstance(invocation, Mapping):
        parameters.update(
            (key, value) for key, value in invocation.items() if key not in _NOT_PARAMETERS
        )
    for key, name in _PARAMETERS.items():
        value = content.get(key)
        if value is not None:
            parameters[name] = list(value) if isinstance(value, tuple) else value
    return parameters


def _error(span: ReadableSpan, attributes: Mapping[str, Any]) -> BaseException | None:
    error_type = attributes.get("error.type")
    failed = span.status.status_code is StatusCode.ERROR
    if not failed and error_type is None:
        return None
    type_name, message = None, None
    for event in span.events:
        if event.name == "exception" and event.attributes:
            type_name = event.attributes.get("exception.type")
            message = event.attributes.get("exception.message")
            break
    if not isinstance(type_name, str) or not type_name:
        type_name = str(error_type) if error_type is not None else "Error"
    type_name = type_name.strip()
    if type_name.startswith("<class '") and type_name.endswith("'>"):
        type_name = type_name[len("<class '") : -len("'>")]
    if not isinstance(message, str):
        message = span.status.description or ""
        short = type_name.rpartition(".")[2]
        if message.startswith(f"{short}: "):
            message = message[len(short) + 2 :]
    return _remote_error(type_name, message)


_ERROR_TYPES: dict[str, type[Exception]] = {}


def _remote_error(type_name: str, message: str) -> Exception:
    """An exception named like the one the span recorded, so hogtrace reports its type."""
    cls = _ERROR_TYPES.get(type_name)
    if cls is None:
        module, _, short = type_name.rpartition(".")
        short = short if short.isidentifier() else "Error"
        cls = type(short, (Exception,), {"__module__": module or "builtins"})
        if len(_ERROR_TYPES) < 256:
            _ERROR_TYPES[type_name] = cls
    return cls(message)


# -- messages ---------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """A JSON string parsed; anything else (or a string that is not JSON) as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


def _text(value: Any) -> Any:
    return value if isinstance(value, str) or value is None else json.dumps(value, default=str)


def _input_messages(content: Mapping[str, Any], events: Sequence[Any]) -> list[Any] | None:
    system = _system_instructions(content.get("gen_ai.system_instructions"))
    messages = _otel_messages(content.get("gen_ai.input.messages"))
    if messages is None:
        messages = _flattened(content, "llm.input_messages.")
    if messages is None:
        messages = _flattened(content, "gen_ai.prompt.")
    if messages is None:
        messages = _event_messages(events)
    if messages is None:
        messages = _messages_from_events(events, "gen_ai.content.prompt", "gen_ai.prompt")
    if messages is None:
        request = _json(content.get("input.value"))
        if isinstance(request, Mapping):
            found = _first(request, ("messages", "prompt", "input", "contents"))
            messages = found if isinstance(found, list) else None if found is None else [found]
    if system is not None:
        return [system, *(messages or [])]
    return messages


def _output_messages(
    content: Mapping[str, Any], events: Sequence[Any]
) -> tuple[list[Any] | None, str | None]:
    data = _json(content.get("gen_ai.output.messages"))
    messages = _otel_messages(data)
    if messages is not None:
        reasons = [m.get("finish_reason") for m in data if isinstance(m, Mapping)]
        return messages, next((r for r in reasons if isinstance(r, str)), None)
    messages = _flattened(content, "llm.output_messages.")
    if messages is None:
        messages = _flattened(content, "gen_ai.completion.")
    if messages is not None:
        return messages, None
    choices, reason = [], None
    for event in events:
        if event.name == "gen_ai.choice" and event.attributes is not None:
            message, finish = _choice(event.attributes)
            choices.append(message)
            reason = reason or finish
    if choices:
        return choices, reason
    return _messages_from_events(events, "gen_ai.content.completion", "gen_ai.completion"), None


def _system_instructions(raw: Any) -> dict[str, Any] | None:
    data = _json(raw)
    if data is None:
        return None
    if isinstance(data, list):
        return _from_parts({"role": "system", "parts": data})
    return {"role": "system", "content": _text(data)}


def _otel_messages(raw: Any) -> list[Any] | None:
    """`gen_ai.input.messages` / `gen_ai.output.messages` as OpenAI-style messages."""
    data = _json(raw)
    if not isinstance(data, list):
        return None
    return [_from_parts(m) if isinstance(m, Mapping) else m for m in data]


def _from_parts(message: Mapping[str, Any]) -> dict[str, Any]:
    """One message of the GenAI conventions (role + typed parts) as an OpenAI-style message."""
    role = message.get("role") or "user"
    parts = message.get("parts")
    out: dict[str, Any] = {"role": role}
    if not isinstance(parts, (list, tuple)):  # the SDK keeps a list attribute as a tuple
        out["content"] = _text(message.get("content"))
        return out
    content: list[Any] = []
    tool_calls: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            content.append(part)
            continue
        part_type = part.get("type")
        if part_type == "text":
            content.append({"type": "text", "text": part.get("content")})
        elif part_type == "tool_call":
            tool_calls.append(
                {
                    "id": part.get("id"),
                    "type": "function",
                    "function": {
                        "name": part.get("name"),
                        "arguments": _text(part.get("arguments")),
                    },
                }
            )
        elif part_type == "tool_call_response":
            out["tool_call_id"] = part.get("id")
            content.append({"type": "text", "text": _text(part.get("response"))})
        else:
            content.append(dict(part))
    if len(content) == 1 and isinstance(content[0], dict) and content[0].get("type") == "text":
        out["content"] = content[0]["text"]
    elif content or not tool_calls:
        out["content"] = content
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def _flattened(attributes: Mapping[str, Any], prefix: str) -> list[Any] | None:
    """Messages flattened into attributes: `<prefix><N>.[message.]role`, `...content`, ..."""
    groups: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if index.isdigit() and rest:
            groups.setdefault(int(index), {})[rest.removeprefix("message.")] = value
    if not groups:
        return None
    return [_flat_message(groups[index]) for index in sorted(groups)]


def _flat_message(fields: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": fields.get("role") or "user"}
    contents = _indexed(fields, "contents.")
    if "content" in fields:
        message["content"] = fields["content"]
    elif contents:
        message["content"] = [
            {
                "type": part.get("message_content.type", "text"),
                **(
                    {"text": part["message_content.text"]}
                    if "message_content.text" in part
                    else {
                        key.rpartition(".")[2]: value
                        for key, value in part.items()
                        if key != "message_content.type"
                    }
                ),
            }
            for part in contents
        ]
    calls = _indexed(fields, "tool_calls.")
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": _first(call, ("function.name", "name")),
                    "arguments": _text(_first(call, ("function.arguments", "arguments"))),
                },
            }
            for call in ({k.removeprefix("tool_call."): v for k, v in c.items()} for c in calls)
        ]
    for key in ("tool_call_id", "name"):
        if key in fields:
            message[key] = fields[key]
    message.setdefault("content", "" if not calls else None)
    return message


def _indexed(fields: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    groups: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            if index.isdigit() and rest:
                groups.setdefault(int(index), {})[rest] = value
    return [groups[index] for index in sorted(groups)]


def _event_messages(events: Sequence[Any]) -> list[Any] | None:
    """Messages from the older conventions' span events (`gen_ai.user.message`, ...)."""
    messages = []
    for event in events:
        role = _MESSAGE_EVENTS.get(event.name)
        if role is None:
            continue
        attributes = dict(event.attributes or {})
        body = _json(attributes.pop("gen_ai.event.content", None))
        if isinstance(body, Mapping):
            attributes = {**body, **attributes}
        message: dict[str, Any] = {"role": attributes.get("role") or role}
        message["content"] = _json(attributes.get("content"))
        calls = _json(attributes.get("tool_calls"))
        if calls:
            message["tool_calls"] = calls
        if role == "tool" and attributes.get("id") is not None:
            message["tool_call_id"] = attributes["id"]
        messages.append(message)
    return messages or None


def _choice(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    data = dict(attributes)
    body = _json(data.pop("gen_ai.event.content", None))
    if isinstance(body, Mapping):
        data = {**body, **data}
    message = _json(data.get("message"))
    if not isinstance(message, Mapping):
        message = {
            "role": data.get("message.role") or "assistant",
            "content": _json(data.get("message.content", message)),
        }
    out = {"role": message.get("role") or "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = _json(message["tool_calls"])
    finish = data.get("finish_reason")
    return out, finish if isinstance(finish, str) else None


def _messages_from_events(events: Sequence[Any], name: str, key: str) -> list[Any] | None:
    for event in events:
        if event.name == name and event.attributes and key in event.attributes:
            value = _json(event.attributes[key])
            return value if isinstance(value, list) else [value]
    return None


def _embedding_input(content: Mapping[str, Any]) -> Any:
    texts = [
        group.get("embedding.text")
        for group in _indexed(content, "embedding.embeddings.")
        if "embedding.text" in group
    ]
    if texts:
        return texts
    request = _json(content.get("input.value"))
    if isinstance(request, Mapping) and "input" in request:
        return request["input"]
    return None
