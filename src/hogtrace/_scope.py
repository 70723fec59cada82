"""Scopes: what ``with hogtrace.span(...) as s`` gives and what ``hogtrace.current()`` returns.

A scope copies everything it inherits from its parent when it opens (trace id, session id,
distinct id, inherited properties, sampling decision), so nothing walks the parent chain later.
When it closes it measures its latency, rolls its totals up into its parent and hands itself to
the sink, which turns it into a PostHog event off the calling thread.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from posthog.contexts import get_context_distinct_id as _get_context_distinct_id

from hogtrace import _config
from hogtrace._errors import log_internal_error
from hogtrace._extract import Extracted, StreamAccumulator, extract_embedding, extract_generation
from hogtrace._ids import monotonic_ns, new_id, utc_now
from hogtrace._serialize import to_json_safe
from hogtrace._stats import stats_counters
from hogtrace._w3c import is_valid_id

__all__ = [
    "AnnotationScope",
    "EmbeddingScope",
    "GenerationScope",
    "Metrics",
    "RemoteScope",
    "Scope",
    "SessionScope",
    "TraceScope",
    "is_cancellation",
    "valid_trace_id",
]

log = logging.getLogger("hogtrace")

_MISSING: Final = object()
#: Exact types whose values are immutable and JSON-safe as they are.
_IMMUTABLE: Final = frozenset({str, bool, type(None)})
#: Ints and floats are too within these bounds (and floats when finite); the rest goes
#: through ``to_json_safe``, which decides what a huge or non-finite number becomes.
_NUMBER_LIMIT: Final = 2**63


def _is_plain(value: Any) -> bool:
    """True for an immutable scalar that ``to_json_safe`` would return unchanged."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if kind is int or kind is float:
        within: bool = -_NUMBER_LIMIT < value < _NUMBER_LIMIT  # False for NaN and infinities
        return within
    return False


_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: Yielded items kept for a generator's ``$ai_output_state``; the rest are counted in a marker.
MAX_GENERATOR_ITEMS = 1000


def valid_trace_id(value: object) -> bool:
    """PostHog's rule for ``$ai_trace_id``: letters, digits and ``-_~.@()!':|``."""
    return isinstance(value, str) and is_valid_id(value)


def is_cancellation(exc: BaseException) -> bool:
    """Cancellation closes a scope without marking it an error (OpenTelemetry does the same)."""
    return not isinstance(exc, Exception)  # CancelledError, GeneratorExit, KeyboardInterrupt, ...


def _find_posthog_contexts() -> contextvars.ContextVar[Any] | None:
    """PostHog's context stack (``None`` if this posthog release has none we know)."""
    from posthog import contexts

    stack = getattr(contexts, "_context_stack", None)
    return stack if isinstance(stack, contextvars.ContextVar) else None


#: Read directly by scopes opening outside any scope: that no PostHog context is set at all
#: (the common case) is told without the three calls of ``get_context_distinct_id()``.
_posthog_contexts = _find_posthog_contexts()


def _posthog_distinct_id() -> str | None:
    """The distinct id of PostHog's ``identify_context()``, if the caller set one."""
    if _posthog_contexts is not None and _posthog_contexts.get(None) is None:
        return None  # no PostHog context at all (the common case): skip three calls
    try:
        value = _get_context_distinct_id()
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def _sampled(key: str, rate: float) -> bool:
    """Deterministic keep/drop from an id: the same session or trace is kept in every process."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Totals a scope measured, itself and everything inside it included."""

    latency: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    total_cost_usd: float = 0.0
    generations: int = 0
    errors: int = 0


class Scope:
    """An open (or finished) session, trace, span, generation or embedding.

    Attributes:
        id: this scope's span id (a session's is the session id).
        trace_id: the trace this scope belongs to (``None`` for a session outside any trace).
        parent_id: the ``$ai_parent_id`` of its event (``None`` on a root).
        session_id: the session id every event inside carries, if any.
        name: ``$ai_span_name``.
    """

    __slots__ = (
        "__weakref__",
        "_capture_input",
        "_capture_output",
        "_children_parent",
        "_end",
        "_error",
        "_input",
        "_output",
        "_own",
        "_parent",
        "_props",
        "_start",
        "_totals",
        "distinct_id",
        "id",
        "is_root",
        "name",
        "parent_id",
        "sampled",
        "session_id",
        "timestamp",
        "trace_id",
    )

    kind: ClassVar[str] = "span"
    #: False for kinds that never emit an event themselves (sessions, remote parents).
    emits: ClassVar[bool] = True

    # Options may be passed by position: the decorators do, as keywords cost ~0.2 µs a call.
    def __init__(
        self,
        name: str,
        parent: Scope | None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self.name = name
        self._parent = parent
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._input: Any = _MISSING
        self._output: Any = _MISSING
        self._error: BaseException | str | None = None
        self._own: dict[str, Any] | None = dict(properties) if properties else None
        self._totals: list[Any] | None = None
        self._end: int | None = None
        self.timestamp: datetime.datetime | None = None
        if parent is None:
            self.trace_id: str | None = None
            self.session_id: str | None = None
            # PostHog's own identify_context(), read here: events are built on another thread.
            self.distinct_id: str | None = (
                None
                if _posthog_contexts is not None and _posthog_contexts.get(None) is None
                else _posthog_distinct_id()
            )
            self._props: Mapping[str, Any] = _EMPTY
            self._children_parent: str | None = None
            self.sampled = True
        else:
            self.trace_id = parent.trace_id
            self.session_id = parent.session_id
            # identify_context() may have been called inside the parent (after auth, say).
            self.distinct_id = parent.distinct_id or (
                None
                if _posthog_contexts is not None and _posthog_contexts.get(None) is None
                else _posthog_distinct_id()
            )
            self._props = parent._props
            self._children_parent = parent._children_parent
            self.sampled = parent.sampled
        self._link()
        self._start = monotonic_ns()

    def _link(self) -> None:
        """Place this scope in the trace tree (trace and span: the outermost one is the root)."""
        self.id = new_id()
        if self.trace_id is None:
            self._become_root(self.id)
        else:
            self.is_root = False
            self.parent_id = self._children_parent
            self._children_parent = self.id

    def _become_root(self, trace_id: str) -> None:
        self.id = self.trace_id = trace_id
        self.is_root = True
        self.parent_id = None
        self._children_parent = trace_id
        config = _config.state.config
        if config.sample_rate < 1.0:
            self.sampled = _sampled(self.session_id or trace_id, config.sample_rate)

    # -- the public scope API ---------------------------------------------------------------

    @property
    def latency(self) -> float | None:
        """Seconds between open and close (``None`` while open)."""
        if self._end is None:
            return None
        return (self._end - self._start) / 1e9

    @property
    def metrics(self) -> Metrics | None:
        """Totals of this scope and everything inside it (``None`` while open)."""
        latency = self.latency
        if latency is None:
            return None
        t = self._totals
        if t is None:
            return Metrics(latency=latency)
        return Metrics(latency, t[0], t[1], t[2], t[3], t[4], t[5])

    @property
    def parent(self) -> Scope | None:
        """The enclosing scope when this one opened (a session, remote parent or span)."""
        return self._parent

    def set_input(self, value: Any) -> None:
        """Record ``value`` as this scope's input (replaces the captured arguments)."""
        if self._writable("set_input") and self._capture_input and self.sampled:
            self._input = self._snapshot(value)

    def set_output(self, value: Any) -> None:
        """Record ``value`` as this scope's output (replaces the return value)."""
        if self._writable("set_output") and self._capture_output and self.sampled:
            self._output = self._snapshot(value)

    def set_properties(self, **props: Any) -> None:
        """Add properties to this scope's event (and, on sessions and traces, to those inside)."""
        if self._writable("set_properties"):
            if self._own is None:
                self._own = {}
            self._own.update(props)

    def set_error(self, error: BaseException | str) -> None:
        """Mark this scope as failed without raising (``$ai_is_error``, ``$ai_error``)."""
        if self._writable("set_error"):
            self._error = error

    def __repr__(self) -> str:
        state = "open" if self._end is None else f"{self.latency:.6f}s"
        return f"<hogtrace {self.kind} {self.name!r} id={self.id} trace={self.trace_id} {state}>"

    # -- internals ------------------------------------------------------------------------------

    def _writable(self, what: str) -> bool:
        if self._end is None:
            return True
        log.warning("hogtrace: %s() on %r after it closed is ignored", what, self)
        return False

    @staticmethod
    def _snapshot(value: Any) -> Any:
        if _config.state.config.content_hidden:
            return None  # never serialised: privacy mode sends content keys as null
        try:
            return to_json_safe(value)
        except Exception as err:  # to_json_safe never raises; this guards against our own bugs
            log_internal_error("serializing content", err)
            return "<unserializable>"

    def _capture_call(self, arguments: dict[str, Any]) -> None:
        """Snapshot the decorated function's bound arguments as they are when the scope opens.

        ``arguments`` is a fresh dict made by the binder for this call. When every value in it
        is an immutable scalar (a no-argument function, ids, flags, short strings), it already
        is a snapshot nothing can mutate, and it is kept as is instead of copied.
        """
        if self._capture_input and self.sampled:
            for value in arguments.values():
                if type(value) not in _IMMUTABLE and not _is_plain(value):
                    self._input = self._snapshot(arguments)
                    return
            self._input = None if _config.state.config.content_hidden else arguments

    def _close(self, result: Any = _MISSING, exc: BaseException | None = None) -> None:
        """Finish: measure, record the outcome, roll totals up, emit. Never raises."""
        if self._end is not None:
            return
        try:
            self._end = monotonic_ns()
            self.timestamp = utc_now()
            if exc is not None and not is_cancellation(exc) and self._error is None:
                self._error = exc
            if self._error is not None:
                self._add(5, 1)
            if result is not _MISSING:
                self._record_result(result)
            parent = self._parent
            if parent is not None and self._totals is not None:
                parent._absorb(self._totals)
            if self.emits and self.sampled and _config.state.active:
                _emit(self)
        except Exception as err:
            log_internal_error("closing a scope", err)

    def _record_result(self, result: Any) -> None:
        if self._output is _MISSING and self._capture_output and self.sampled:
            if type(result) in _IMMUTABLE or _is_plain(result):
                # Immutable and JSON-safe: to_json_safe would return it as is.
                self._output = None if _config.state.config.content_hidden else result
            else:
                self._output = self._snapshot(result)

    def _add(self, index: int, amount: Any) -> None:
        t = self._totals
        if t is None:
            t = self._totals = [0, 0, 0, 0.0, 0, 0]
        t[index] += amount

    def _absorb(self, totals: list[Any]) -> None:
        t = self._totals
        if t is None:
            self._totals = list(totals)
        else:
            for i, v in enumerate(totals):
                t[i] += v

    # Read by the event builder (off the calling thread, after close).
    def _event_name(self) -> str:
        return "$ai_trace" if self.is_root else "$ai_span"

    def _content(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._input is not _MISSING:
            out["$ai_input_state"] = self._input
        if self._output is not _MISSING and self._error is None:
            out["$ai_output_state"] = self._output
        return out


def _emit(scope: Scope) -> None:
    current = _config.state
    stats_counters.emitted.incr()
    try:
        sink = current.capture  # State.destination(), without a call for the common case
        if sink is None:
            sink = current.sink
            if sink is None:
                sink = current.destination()
        sink.emit(scope, current.config)
    except Exception as err:
        stats_counters.failed.incr()
        log_internal_error("handing an event to the sink", err)


class _InheritingScope(Scope):
    """Sessions and traces: their properties apply to every event inside them."""

    __slots__ = ()

    def set_properties(self, **props: Any) -> None:
        """Add properties to this scope's event and to every scope opened inside it from now."""
        if self._writable("set_properties"):
            self._props = {**self._props, **props}


class StandInScope(Scope):
    """Given by a ``with`` block when opening its real scope failed: records, emits nothing."""

    __slots__ = ()

    def __init__(self, name: str) -> None:  # no ids, no clock: those are what may have failed
        self.name = name
        self.id = ""
        self.trace_id = self.parent_id = self.session_id = self.distinct_id = None
        self.is_root = False
        self.sampled = False
        self._parent = None
        self._capture_input = self._capture_output = False
        self._input = self._output = _MISSING
        self._error = None
        self._own = None
        self._totals = None
        self._props = _EMPTY
        self._children_parent = None
        self._start = 0
        self._end = None
        self.timestamp = None

    def _close(self, result: Any = _MISSING, exc: BaseException | None = None) -> None:
        self._end = self._start


class TraceScope(_InheritingScope):
    """A unit of work; the outermost trace-or-span is the PostHog trace (``$ai_trace``)."""

    __slots__ = ("_requested_id",)
    kind = "trace"

    def __init__(
        self,
        name: str,
        parent: Scope | None,
        trace_id: str | None = None,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self._requested_id = trace_id  # read once by _link
        super().__init__(name, parent, None, capture_input, capture_output)
        if distinct_id is not None:
            self.distinct_id = distinct_id
        if properties:
            self._props = {**self._props, **properties}

    def _link(self) -> None:
        requested = self._requested_id
        if self.trace_id is None:
            if requested is not None and not valid_trace_id(requested):
                log.warning("hogtrace: invalid trace id %r replaced by a fresh one", requested)
                requested = None
            self._become_root(requested or new_id())
            return
        if requested is not None:
            log.warning(
                "hogtrace: trace(id=%r) ignored: %r is inside trace %s",
                requested,
                self.name,
                self.trace_id,
            )
        super()._link()


class SessionScope(_InheritingScope):
    """Groups traces: every event inside carries ``$ai_session_id``. Emits no event."""

    __slots__ = ()
    kind = "session"
    emits = False

    def __init__(
        self,
        session_id: str,
        parent: Scope | None,
        *,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__("session", parent)
        self.id = self.session_id = session_id
        if distinct_id is not None:
            self.distinct_id = distinct_id
        if properties:
            self._props = {**self._props, **properties}

    def _link(self) -> None:
        # A session is not a node of the trace tree: it keeps its parent's position.
        self.is_root = False
        self.parent_id = self._children_parent


class RemoteScope(Scope):
    """The caller's span in another process (``continue_trace``). Emits no event."""

    __slots__ = ()
    kind = "remote"
    emits = False

    def __init__(
        self,
        parent: Scope | None,
        *,
        trace_id: str | None,
        span_id: str | None,
        session_id: str | None,
        distinct_id: str | None,
        sampled: bool,
    ) -> None:
        super().__init__("remote", parent)
        # No trace id (headers missing or malformed): scopes inside start a fresh trace.
        self.id = span_id or trace_id or new_id()
        self.trace_id = trace_id
        self._children_parent = span_id or trace_id
        if session_id is not None:
            self.session_id = session_id
        if distinct_id is not None:
            self.distinct_id = distinct_id
        self.sampled = sampled

    def _link(self) -> None:
        self.is_root = False
        self.parent_id = None


class GenerationScope(Scope):
    """One LLM call: ``$ai_generation``.

    Model, tokens and output come from ``set_model`` / ``set_usage`` when called, else from the
    returned object.
    """

    __slots__ = (
        "_accumulator",
        "_cost",
        "_extracted",
        "_first_token",
        "_response_set",
        "_usage",
        "base_url",
        "http_status",
        "model",
        "model_parameters",
        "provider",
        "stream",
        "tools",
    )
    kind = "generation"
    _USAGE_FIELDS: ClassVar[tuple[str, ...]] = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "reasoning_tokens",
    )

    def __init__(
        self,
        name: str,
        parent: Scope | None,
        model: str | None = None,
        provider: str | None = None,
        base_url: str | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> None:
        self.model = model
        self.provider = provider
        self.base_url = base_url
        self.model_parameters: dict[str, Any] | None = (
            dict(model_parameters) if model_parameters else None
        )
        self.tools: Any = None
        self.http_status: int | None = None
        self.stream = False
        self._first_token: int | None = None
        self._response_set = False
        self._accumulator: StreamAccumulator | None = None
        self._usage: dict[str, int] = {}
        self._cost: dict[str, float] = {}
        self._extracted: Extracted | None = None
        super().__init__(name, parent, properties, capture_input, capture_output)

    def _link(self) -> None:
        # With no trace around it, a generation starts a trace of its own but emits no
        # $ai_trace (as PostHog's own wrappers do): parent id = the fresh trace id.
        if self.trace_id is None:
            self.trace_id = new_id()
            config = _config.state.config
            if config.sample_rate < 1.0:
                self.sampled = _sampled(self.session_id or self.trace_id, config.sample_rate)
            self._children_parent = self.trace_id
        self.is_root = False
        self.id = new_id()
        self.parent_id = self._children_parent
        self._children_parent = self.id

    # -- public ---------------------------------------------------------------------------------

    def set_output(self, value: Any) -> None:
        """Record the model's response.

        A provider response (OpenAI, Anthropic, Gemini, LangChain, dict, ``str``) is read for
        model, tokens and output exactly like a returned value; it replaces the return value.
        """
        if self._writable("set_output"):
            self._response_set = False
            self._output = _MISSING
            self._record_result(value)
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
        for key, value in zip(
            self._USAGE_FIELDS,
            (
                input_tokens,
                output_tokens,
                cache_read_input_tokens,
                cache_creation_input_tokens,
                reasoning_tokens,
            ),
            strict=True,
        ):
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
        for key, value in (
            ("input_cost_usd", input_cost_usd),
            ("output_cost_usd", output_cost_usd),
            ("total_cost_usd", total_cost_usd),
        ):
            if value is not None:
                self._cost[key] = float(value)

    # -- internals ----------------------------------------------------------------------------

    @property
    def usage(self) -> dict[str, int]:
        """Token counts known so far: ``set_usage`` over what the response reported."""
        extracted = self._extracted
        out: dict[str, int] = {}
        if extracted is not None:
            for key in self._USAGE_FIELDS:
                value = getattr(extracted, key)
                if value is not None:
                    out[key] = value
        out.update(self._usage)
        return out

    def _input_argument(self, arguments: Mapping[str, Any]) -> Any:
        for key in ("messages", "prompt", "input", "contents"):
            if key in arguments:
                return arguments[key]
        return arguments

    def _capture_call(self, arguments: Mapping[str, Any]) -> None:
        if self.sampled:
            if self._capture_input:
                self._input = self._snapshot(self._input_argument(arguments))
            params = {k: arguments[k] for k in _MODEL_PARAMETERS if k in arguments}
            if params:
                # The call's own arguments are what was used: they win over decorator defaults.
                self.model_parameters = {**(self.model_parameters or {}), **to_json_safe(params)}
            if self.model is None and isinstance(arguments.get("model"), str):
                self.model = arguments["model"]
            tools = arguments.get("tools")
            if tools:
                self.tools = to_json_safe(tools)

    def _start_stream(self) -> None:
        """The generation is a (async) generator: a stream, even if it yields nothing."""
        self.stream = True

    def _stream_chunk(self, chunk: Any) -> None:
        """Called for each chunk a streaming generation yields."""
        if self._first_token is None:
            self._first_token = monotonic_ns()
            self._accumulator = StreamAccumulator()
        assert self._accumulator is not None
        self._accumulator.add(chunk)

    def _extract(self, result: Any) -> Extracted | None:
        return extract_generation(result)

    def _record_result(self, result: Any) -> None:
        extracted = self._extract(result) if result is not None else None
        self._set_extracted(extracted)
        if self._output is _MISSING and self._capture_output and self.sampled:
            if extracted is not None and extracted.output is not None:
                self._output = self._snapshot(extracted.output)
            elif result is not None:
                self._output = self._snapshot(result)

    def _set_extracted(self, extracted: Extracted | None) -> None:
        self._extracted = extracted
        if extracted is not None:
            if self.model is None:
                self.model = extracted.model
            if self.provider is None:
                self.provider = extracted.provider

    def _close(self, result: Any = _MISSING, exc: BaseException | None = None) -> None:
        if self._end is not None:
            return
        if self._response_set:
            result = _MISSING  # set_output() wins over the returned value
        try:
            if self._accumulator is not None and not self._response_set:
                extracted = self._accumulator.result()
                self._set_extracted(extracted)
                if self._output is _MISSING and self._capture_output and self.sampled:
                    self._output = self._snapshot(extracted.output)
                result = _MISSING
            elif result is not _MISSING:
                # Read the response now: its tokens must be in the totals rolled up below.
                self._record_result(result)
                result = _MISSING
            usage = self.usage
            self._add(4, 1)
            self._add(0, usage.get("input_tokens", 0))
            self._add(1, usage.get("output_tokens", 0))
            self._add(2, usage.get("cache_read_input_tokens", 0))
            total = self._cost.get("total_cost_usd")
            if total is None and self._cost:
                total = self._cost.get("input_cost_usd", 0.0) + self._cost.get(
                    "output_cost_usd", 0.0
                )
            if total:
                self._add(3, total)
        except Exception as err:
            log_internal_error("recording a generation", err)
        super()._close(result, exc)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from open to the first streamed chunk (streams only)."""
        if self._first_token is None:
            return None
        return (self._first_token - self._start) / 1e9

    def _event_name(self) -> str:
        return "$ai_generation"

    def _content(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._input is not _MISSING:
            out["$ai_input"] = self._input
        if self._output is not _MISSING and self._error is None:
            out["$ai_output_choices"] = self._output
        if self.tools is not None:
            out["$ai_tools"] = self.tools
        return out


class EmbeddingScope(GenerationScope):
    """One embedding call: ``$ai_embedding``."""

    __slots__ = ()
    kind = "embedding"

    def _extract(self, result: Any) -> Extracted | None:
        return extract_embedding(result)

    def _record_result(self, result: Any) -> None:
        # Embedding vectors are not content worth sending; only model and usage are kept.
        self._set_extracted(self._extract(result) if result is not None else None)

    def _event_name(self) -> str:
        return "$ai_embedding"

    def _content(self) -> dict[str, Any]:
        if self._input is not _MISSING:
            return {"$ai_input": self._input}
        return {}


#: Request keyword arguments sent as ``$ai_model_parameters`` (PostHog's wrappers' allowlist).
_MODEL_PARAMETERS: Final = (
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


class AnnotationScope(Scope):
    """``$ai_metric`` / ``$ai_feedback``: an annotation on a trace, emitted at once."""

    __slots__ = ("_event", "_payload")
    kind = "annotation"

    def __init__(
        self,
        event: str,
        payload: dict[str, Any],
        parent: Scope | None,
        trace_id: str,
        session_id: str | None = None,
    ) -> None:
        self._event = event
        self._payload = payload
        super().__init__(event, parent)
        if session_id is not None:
            self.session_id = session_id
        if self.trace_id != trace_id or session_id is not None:
            # Annotating a trace from elsewhere (feedback in a later request): decide as the
            # trace was decided, from its session id when given, else from the trace id.
            self.trace_id = trace_id
            self.sampled = (
                parent.sampled
                if parent is not None
                and parent.trace_id == trace_id
                and parent.session_id == self.session_id
                else _sampled(self.session_id or trace_id, _config.state.config.sample_rate)
            )

    def _link(self) -> None:
        self.id = new_id()
        self.is_root = False
        self.parent_id = None

    def _event_name(self) -> str:
        return self._event
