"""Generation and embedding scopes: one model call each (``$ai_generation``, ``$ai_embedding``).

Model, tokens and output come from ``set_model`` / ``set_usage`` / ``set_cost`` when called,
else from the returned object (``_extract`` reads provider responses without importing their
SDKs). A generation that is a (async) generator is a stream: its chunks are accumulated.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Final

from hogtrace import _state
from hogtrace._errors import log_internal_error
from hogtrace._extract import (
    Extracted,
    LaterSystem,
    PrintedRows,
    StreamAccumulator,
    TextMessages,
    extract_embedding,
    extract_generation,
    recorded_input,
)
from hogtrace._ids import monotonic_ns, new_id
from hogtrace._names import CUT_INPUT, CUT_OUTPUT, CUT_TOOLS
from hogtrace._sampling import sampled
from hogtrace._scope import MISSING, Scope, is_plain
from hogtrace._serialize import MESSAGE_ITEMS, Head, snapshot, to_json_safe

__all__ = [
    "MODEL_PARAMETERS",
    "USAGE_FIELDS",
    "EmbeddingScope",
    "GenerationOptions",
    "GenerationScope",
]

log = logging.getLogger("hogtrace")

#: Token counts, in the order ``set_usage`` takes them (``$ai_<name>`` on the event).
USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
)
#: Precomputed costs, in the order ``set_cost`` takes them.
_COST_FIELDS: Final = ("input_cost_usd", "output_cost_usd", "total_cost_usd")
#: Request keyword arguments sent as ``$ai_model_parameters`` (PostHog's wrappers' allowlist).
MODEL_PARAMETERS: Final = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "stop",
    "stream",
    "seed",
    "reasoning_effort",
    "response_format",
    "tool_choice",
)
#: Arguments that hold a generation's input, in order of preference.
_INPUT_ARGUMENTS: Final = ("messages", "prompt", "input", "contents")


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
    """The options of ``hogtrace.generation()`` / ``embedding()``, declared once."""

    model: str | None = None
    provider: str | None = None
    base_url: str | None = None
    model_parameters: Mapping[str, Any] | None = None
    #: posthog's ``Prompts.get(..., with_metadata=True)`` result (or a name / mapping).
    prompt: Any = None

    def check(self, kind: str) -> None:
        """Raise ``TypeError`` for an option of the wrong type (at decoration time)."""
        for what in ("model", "provider", "base_url"):
            value = getattr(self, what)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"hogtrace.{kind}(): {what} must be a string, got {value!r}")
        if self.model_parameters is not None and not isinstance(self.model_parameters, Mapping):
            raise TypeError(
                f"hogtrace.{kind}(): model_parameters must be a mapping, got"
                f" {self.model_parameters!r}"
            )
        if self.prompt is not None and prompt_link(self.prompt) is None:
            raise TypeError(
                f"hogtrace.{kind}(): prompt must be the result of posthog's"
                f" Prompts.get(..., with_metadata=True), a mapping or a name, got {self.prompt!r}"
            )


_NO_OPTIONS: Final = GenerationOptions()


def prompt_link(prompt: Any) -> tuple[str | None, int | str | None] | None:
    """``(name, version)`` that link a generation to a PostHog prompt.

    ``(None, None)`` for a prompt that did not come from PostHog (a code fallback), ``None`` if
    ``prompt`` is not a prompt at all.
    """
    if isinstance(prompt, str):
        return (prompt, None) if prompt else None
    if isinstance(prompt, Mapping):
        name, version, source = prompt.get("name"), prompt.get("version"), prompt.get("source")
    elif hasattr(prompt, "name") and hasattr(prompt, "source"):
        name = getattr(prompt, "name", None)
        version = getattr(prompt, "version", None)
        source = getattr(prompt, "source", None)
    else:
        return None
    if source == "code_fallback" or not isinstance(name, str) or not name:
        log.debug(
            "hogtrace: prompt %r is not linked: it did not come from PostHog (source %r)",
            name,
            source,
        )
        return (None, None)
    if not isinstance(version, (int, str)) or isinstance(version, bool):
        version = None
    return name, version


class GenerationScope(Scope):
    """One LLM call: ``$ai_generation``.

    Model, tokens and output come from ``set_model`` / ``set_usage`` when called, else from the
    returned object.
    """

    __slots__ = (
        "_accumulator",
        "_first_token",
        "_response_set",
        "_usage",
        "_wraps_call",
        "base_url",
        "cost",
        "extracted",
        "http_status",
        "model",
        "model_parameters",
        "prompt_name",
        "prompt_version",
        "provider",
        "stream",
        "tools",
    )
    kind = "generation"

    def __init__(
        self,
        name: str,
        parent: Scope | None,
        options: GenerationOptions = _NO_OPTIONS,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self.model = options.model
        self.provider = options.provider
        self.base_url = options.base_url
        self.model_parameters: dict[str, Any] | None = (
            dict(options.model_parameters) if options.model_parameters else None
        )
        self.tools: Any = None
        link = prompt_link(options.prompt) if options.prompt is not None else None
        self.prompt_name, self.prompt_version = link or (None, None)
        self.http_status: int | None = None
        self.stream = False
        self._first_token: int | None = None
        self._response_set = False
        self._accumulator: StreamAccumulator | None = None
        self._usage: dict[str, int] = {}
        self.cost: dict[str, float] = {}
        self.extracted: Extracted | None = None
        self._wraps_call = False
        super().__init__(name, parent, properties, capture_input, capture_output)

    def _link(self) -> None:
        # With no trace around it, a generation starts a trace of its own but emits no
        # $ai_trace (as PostHog's own wrappers do): parent id = the fresh trace id.
        if self.trace_id is None:
            self.trace_id = new_id()
            rate = _state.state.config.sample_rate
            if rate < 1.0:
                self.sampled = sampled(self.session_id or self.trace_id, rate)
            self.child_parent_id = self.trace_id
        self.is_root = False
        self.id = new_id()
        self.parent_id = self.child_parent_id
        self.child_parent_id = self.id

    @property
    def event_name(self) -> str:
        """``$ai_generation``; ``$ai_span`` when a PostHog wrapper made the model call inside."""
        return "$ai_span" if self._wraps_call else "$ai_generation"

    def wraps_model_call(self) -> None:
        """A PostHog wrapper sent its own ``$ai_generation`` from inside this scope.

        That event is the model call: this scope is sent as the span around it, so that tokens
        and cost count once, in PostHog and in ``metrics``.
        """
        if not self._wraps_call:
            self._wraps_call = True
            log.debug(
                "hogtrace: %r contains a PostHog wrapper generation; it is sent as an $ai_span"
                " so that the model call counts once",
                self.name,
            )

    # -- public ---------------------------------------------------------------------------------

    def set_output(self, value: Any) -> None:
        """Record the model's response.

        A provider response (OpenAI, Anthropic, Gemini, LangChain, dict, ``str``) is read for
        model, tokens and output exactly like a returned value; it replaces the return value.
        """
        if self._writable("set_output"):
            self._response_set = False
            self._output = MISSING
            self.cut &= ~CUT_OUTPUT
            self._record_result(value, explicit=True)
            self._response_set = True

    def set_model(self, model: str, provider: str | None = None) -> None:
        """Set ``$ai_model`` (and ``$ai_provider``); wins over what the response says."""
        if self._writable("set_model"):
            self.model = model
            if provider is not None:
                self.provider = provider

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Set token counts; each given count wins over the response's. ``None`` = unknown."""
        if not self._writable("set_usage"):
            return
        values = (
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_creation_input_tokens,
            reasoning_tokens,
        )
        for key, value in zip(USAGE_FIELDS, values, strict=True):
            if value is not None:
                self._usage[key] = int(value)

    def set_cost(
        self,
        input_cost_usd: float | None = None,
        output_cost_usd: float | None = None,
        total_cost_usd: float | None = None,
    ) -> None:
        """Set precomputed costs in USD (PostHog then skips its own cost calculation)."""
        if not self._writable("set_cost"):
            return
        for key, value in zip(
            _COST_FIELDS, (input_cost_usd, output_cost_usd, total_cost_usd), strict=True
        ):
            if value is not None:
                self.cost[key] = float(value)

    def set_prompt(self, name: str, version: int | str | None = None) -> None:
        """Link this generation to a PostHog prompt (``$ai_prompt_name``, ``$ai_prompt_version``).

        PostHog's prompt pages list the generations of each prompt version through these.
        """
        if self._writable("set_prompt"):
            link = prompt_link({"name": name, "version": version, "source": "api"})
            if link is not None:
                self.prompt_name, self.prompt_version = link

    @property
    def usage(self) -> dict[str, int]:
        """Token counts known so far: ``set_usage`` over what the response reported."""
        extracted = self.extracted
        out: dict[str, int] = {}
        if extracted is not None:
            for key in USAGE_FIELDS:
                value = getattr(extracted, key)
                if value is not None:
                    out[key] = value
        out.update(self._usage)
        return out

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from open to the first streamed chunk (streams only)."""
        if self._first_token is None:
            return None
        return (self._first_token - self._start) / 1e9

    # -- what the decorators call ---------------------------------------------------------------

    def capture_call(self, arguments: dict[str, Any]) -> None:
        """Read the call's messages, model, parameters and tools."""
        if self.sampled:
            if self._capture_input:
                self._input = self._input_snapshot(arguments)
            params: dict[str, Any] = {k: arguments[k] for k in MODEL_PARAMETERS if k in arguments}
            if params:
                if not all(map(is_plain, params.values())):
                    params = to_json_safe(params)  # else a new dict of what it would copy as is
                # The call's own arguments are what was used: they win over decorator defaults.
                defaults = self.model_parameters
                self.model_parameters = {**defaults, **params} if defaults else params
            if self.model is None and isinstance(arguments.get("model"), str):
                self.model = arguments["model"]
            tools = arguments.get("tools")
            if tools:
                config = _state.state.config
                copy, _, walk = snapshot(tools, config.event_limit, config.max_items)
                self.tools = copy
                if walk.deferred:  # printed by the event builder (long ints, say)
                    self.has_deferred = True
                if walk.cut:
                    self.cut |= CUT_TOOLS

    def _input_snapshot(self, arguments: Mapping[str, Any]) -> Any:
        """``$ai_input``: the shape posthog-python's own wrappers send for the same call.

        Plain text chat messages are kept as `TextMessages`, which the event builder makes the
        messages (off the calling thread): `_input` is read only through `content()`.
        """
        config = _state.state.config
        if config.content_hidden:
            return None  # what a snapshot of anything is under privacy mode
        limit, most = config.event_limit, config.max_items
        formatted, size = recorded_input(self.provider, arguments, limit, most)
        if formatted is None:
            return self.snapshot(_input_argument(arguments), CUT_INPUT)
        if type(formatted) is LaterSystem:  # its head recorded as any other
            formatted.head = self._recorded(formatted.head, size, limit, most)
            return formatted
        return self._recorded(formatted, size, limit, most)

    def _recorded(self, formatted: Any, size: int | None, limit: int, most: int) -> Any:
        """What `_input_snapshot` keeps of the input `recorded_input` gives."""
        # Fresh dicts of immutable strings within the limits, or the strings of such dicts
        # (`TextMessages`, made dicts and cut to the limits by the event builder, off the
        # calling thread; a long input's are read only as far as the limits): a snapshot.
        if isinstance(formatted, (TextMessages, PrintedRows)):
            if MESSAGE_ITEMS * formatted.length > most:  # cut at ``max_items``
                self.cut |= CUT_INPUT
            return formatted
        if type(formatted) is Head and formatted.taken is not None:
            # The snapshot that found where it is cut:
            return self.adopt(*formatted.taken, CUT_INPUT)[0]
        if size is not None and size < limit and type(formatted) is list:
            # A size means dicts of strings only: their items are the dicts (two each: one for
            # reading it) and their entries.
            entries: int = sum(map(len, formatted))
            if 2 * len(formatted) + entries <= most:
                return formatted
        return self.snapshot(formatted, CUT_INPUT)

    def start_stream(self) -> None:
        """The generation is a (async) generator: a stream, even if it yields nothing."""
        self.stream = True

    def stream_chunk(self, chunk: Any) -> None:
        """Called for each chunk a streaming generation yields."""
        if self._first_token is None:
            self._first_token = monotonic_ns()
            self._accumulator = StreamAccumulator()
        assert self._accumulator is not None
        self._accumulator.add(chunk)

    def close(self, result: Any = MISSING, exc: BaseException | None = None) -> None:
        """Read the response (or the stream), count the call, then close like any scope."""
        if self._end is not None:
            return
        if self._response_set:
            result = MISSING  # set_output() wins over the returned value
        try:
            if self._accumulator is not None and not self._response_set:
                extracted = self._accumulator.result()
                self._set_extracted(extracted)
                if self._output is MISSING and self._capture_output and self.sampled:
                    self._output = self.snapshot(extracted.output, CUT_OUTPUT)
                result = MISSING
            elif result is not MISSING:
                # Read the response now: its tokens must be in the totals rolled up below.
                self._record_result(result)
                result = MISSING
            if self._wraps_call:
                super().close(result, exc)  # the wrapper's generation was counted instead
                return
            cost = self.cost
            total = cost.get("total_cost_usd") if cost else None
            if total is None and cost:
                total = cost.get("input_cost_usd", 0.0) + cost.get("output_cost_usd", 0.0)
            self.count().add_generation(*self._counted_tokens(), total or 0.0)
        except Exception as err:
            log_internal_error("recording a generation", err)
        super().close(result, exc)

    # -- internals ----------------------------------------------------------------------------

    def _counted_tokens(self) -> tuple[int, int, int]:
        """Input, output and cache read tokens of `usage`, 0 for a count not known."""
        extracted = self.extracted
        if extracted is None or self._usage:
            usage = self.usage
            return (
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("cache_read_input_tokens", 0),
            )
        # No set_usage(): `usage` is what the response reported.
        read, written, cached = (
            extracted.input_tokens,
            extracted.output_tokens,
            extracted.cache_read_input_tokens,
        )
        return (
            0 if read is None else read,
            0 if written is None else written,
            0 if cached is None else cached,
        )

    def _extract(self, result: Any) -> Extracted | None:
        return extract_generation(result)

    def _record_result(self, result: Any, explicit: bool = False) -> None:
        extracted = self._extract(result) if result is not None else None
        self._set_extracted(extracted)
        if self._output is MISSING and (explicit or self._capture_output) and self.sampled:
            if extracted is not None and extracted.output is not None:
                self._output = self._output_snapshot(extracted)
            elif result is not None:
                self._output = self.snapshot(result, CUT_OUTPUT)

    def _output_snapshot(self, extracted: Extracted) -> Any:
        """``$ai_output_choices``: the extracted output, a snapshot of it if it needs one."""
        bound, config = extracted.output_bound, _state.state.config
        if (
            bound is not None
            and bound < config.event_limit
            and extracted.output_items <= config.max_items
        ):
            # New dicts and lists of strings, surely within the limit: what a snapshot would copy
            # them to (privacy mode still gives None).
            return None if config.content_hidden else extracted.output
        return self.snapshot(extracted.output, CUT_OUTPUT)

    def _set_extracted(self, extracted: Extracted | None) -> None:
        self.extracted = extracted
        if extracted is not None:
            if self.model is None:
                self.model = extracted.model
            if self.provider is None:
                self.provider = extracted.provider

    # -- the ClosedScope view -------------------------------------------------------------------

    def release(self) -> None:
        """Drop the recorded content (input, output, tools): its event has been built."""
        super().release()
        self.tools = None
        self._accumulator = None
        extracted = self.extracted
        if extracted is not None and extracted.output is not None:
            # Made for this scope alone (by extraction or its stream's accumulator): cleared
            # in place, which is ~10x cheaper than dataclasses.replace.
            extracted.output = extracted.output_bound = None

    def content(self) -> dict[str, Any]:
        """``$ai_input``, ``$ai_output_choices`` and ``$ai_tools`` as recorded."""
        recorded = self._input
        if type(recorded) is LaterSystem:  # a long input, its end read only now
            try:
                self._input = recorded.resolved()
            except Exception as err:
                log_internal_error("looking for a system message in a long input", err)
                self._input = recorded.head
        if self._wraps_call:
            return super().content()  # as a span: $ai_input_state / $ai_output_state
        out = {}
        if self._input is not MISSING:
            out["$ai_input"] = self._input
        if self._output is not MISSING and self.error is None:
            out["$ai_output_choices"] = self._output
        if self.tools is not None:
            out["$ai_tools"] = self.tools
        return out

    def add_properties(self, props: dict[str, Any]) -> None:
        """Model, provider, tokens, costs, status and stream facts."""
        if self._wraps_call:
            return  # a span around the wrapper's generation, which carries all of these
        self._add_model_properties(props)
        extracted = self.extracted
        if extracted is not None:
            if extracted.stop_reason is not None:
                props["$ai_stop_reason"] = extracted.stop_reason
            if extracted.cache_reporting_exclusive is not None:
                props["$ai_cache_reporting_exclusive"] = extracted.cache_reporting_exclusive
        if self.model_parameters:
            props["$ai_model_parameters"] = self.model_parameters
        props["$ai_stream"] = self.stream
        ttft = self.time_to_first_token
        if ttft is not None:
            props["$ai_time_to_first_token"] = ttft

    def _add_model_properties(self, props: dict[str, Any]) -> None:
        """What generations and embeddings share: model, provider, tokens, cost, status."""
        if self.model is not None:
            props["$ai_model"] = self.model
        if self.provider is not None:
            props["$ai_provider"] = self.provider
        for key, count in self.usage.items():
            props[f"$ai_{key}"] = count
        for key, cost in self.cost.items():
            props[f"$ai_{key}"] = cost
        if self.base_url is not None:
            props["$ai_base_url"] = self.base_url
        if self.prompt_name is not None:
            props["$ai_prompt_name"] = self.prompt_name
            if self.prompt_version is not None:
                props["$ai_prompt_version"] = self.prompt_version
        status = self._http_status()
        if status is not None:
            props["$ai_http_status"] = status

    def _http_status(self) -> int | None:
        if self.http_status is not None:
            return self.http_status
        if self.error is not None:
            return _status_of(self.error)
        return 200 if self.extracted is not None else None


class EmbeddingScope(GenerationScope):
    """One embedding call: ``$ai_embedding``."""

    __slots__ = ()
    kind = "embedding"

    @property
    def event_name(self) -> str:
        """``$ai_embedding``."""
        return "$ai_embedding"

    def _input_snapshot(self, arguments: Mapping[str, Any]) -> Any:
        """The ``input`` argument as given (PostHog's wrappers send it unchanged)."""
        return self.snapshot(_input_argument(arguments), CUT_INPUT)

    def _extract(self, result: Any) -> Extracted | None:
        return extract_embedding(result)

    def _record_result(self, result: Any, explicit: bool = False) -> None:
        # Embedding vectors are not content worth sending; only model and usage are kept.
        self._set_extracted(self._extract(result) if result is not None else None)

    def content(self) -> dict[str, Any]:
        """``$ai_input`` as recorded."""
        if self._input is not MISSING:
            return {"$ai_input": self._input}
        return {}

    def add_properties(self, props: dict[str, Any]) -> None:
        """Model, provider, tokens, cost and status."""
        self._add_model_properties(props)


def _input_argument(arguments: Mapping[str, Any]) -> Any:
    for key in _INPUT_ARGUMENTS:
        if key in arguments:
            return arguments[key]
    return arguments


def _status_of(error: object) -> int | None:
    for attr in ("status_code", "code", "status"):
        try:
            value = getattr(error, attr, None)
        except Exception:  # an exception class whose __getattr__ raises
            continue
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
            return value
    return None
