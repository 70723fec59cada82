"""The public functions: scope factories with their typed overloads, and scope helpers.

Every factory works bare (``@hogtrace.span``), with a positional name (``@hogtrace.span("x")``),
with keywords, as ``with`` and as ``async with``. Argument types are checked here, at decoration
time, so that a mistake fails loudly once instead of at every call.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from hogtrace import _state
from hogtrace._context import current_scope
from hogtrace._decorators import (
    EmbeddingSpec,
    GenerationSpec,
    SessionSpec,
    SpanSpec,
    TraceSpec,
)
from hogtrace._errors import log_internal_error
from hogtrace._generation import GenerationOptions, GenerationScope
from hogtrace._ids import utc_now
from hogtrace._noop import NOOP_GENERATION, NOOP_SCOPE, is_noop
from hogtrace._protocols import Annotation
from hogtrace._sampling import sampled
from hogtrace._scope import Scope
from hogtrace._sinks import reconcile_settled
from hogtrace._stats import stats_counters

__all__ = [
    "current",
    "current_generation",
    "current_span",
    "current_trace",
    "embedding",
    "feedback",
    "generation",
    "metric",
    "propagate",
    "session",
    "span",
    "stats",
    "tool",
    "agent",
    "trace",
]

log = logging.getLogger("hogtrace")

P = ParamSpec("P")
R = TypeVar("R")

IdSource = str | Callable[..., str]


@overload
def session(id: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def session(
    id: str | None = None,
    /,
    *,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
) -> SessionSpec: ...
@overload
def session(
    *,
    id: IdSource | None = None,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
) -> SessionSpec: ...
def session(
    *args: Any,
    id: IdSource | None = None,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Any:
    """Group traces into a conversation: every event inside carries ``$ai_session_id``.

    Args:
        *args: the decorated function (bare ``@hogtrace.session``) or the id.
        id: the session id: a string, or (keyword only) a callable that receives the decorated
            function's arguments and returns it. With none, a new id per call or ``with`` block.
        distinct_id: the PostHog person for every event inside (string or callable).
        properties: extra properties on every event inside.

    Example:
        ```py
        @hogtrace.session(id=lambda chat_id, text: chat_id)
        def handle(chat_id: str, text: str) -> str: ...

        with hogtrace.session("conv-42"):
            answer("hi")
        ```
    """
    if len(args) > 1:
        raise TypeError("hogtrace.session() takes at most one positional argument (the id)")
    if args:
        first = args[0]
        if callable(first) or isinstance(first, (classmethod, staticmethod)):
            return SessionSpec(None, distinct_id=distinct_id, properties=properties)(first)
        if id is not None:
            raise TypeError("hogtrace.session(): id given twice")
        id = first
    return SessionSpec(id, distinct_id=distinct_id, properties=properties)


def _bare_or_named(kind: str, args: tuple[Any, ...], name: str | None) -> tuple[Any, str | None]:
    """Split ``(func,)`` (bare decorator) from ``(name,)`` (positional name)."""
    if len(args) > 1:
        raise TypeError(f"hogtrace.{kind}() takes at most one positional argument (the name)")
    if not args:
        return None, name
    first = args[0]
    if callable(first) or isinstance(first, (classmethod, staticmethod)):
        return first, name
    if name is not None:
        raise TypeError(f"hogtrace.{kind}(): name given twice")
    return None, first


@overload
def trace(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def trace(
    name: str | None = None,
    /,
    *,
    id: IdSource | None = None,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> TraceSpec: ...
@overload
def trace(
    *,
    name: str | None = None,
    id: IdSource | None = None,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> TraceSpec: ...
def trace(
    *args: Any,
    name: str | None = None,
    id: IdSource | None = None,
    distinct_id: IdSource | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """A unit of work. The outermost trace (or span) is the PostHog trace: ``$ai_trace``.

    Inside another trace it is a ``$ai_span``, so a ``@trace`` function can run on its own or
    as a step of a bigger workflow.

    Args:
        *args: the decorated function (bare decorator) or the name.
        name: ``$ai_span_name`` (default: the function's ``__qualname__``, or ``"trace"``).
        id: the trace id of a root (letters, digits and ``-_~.@()!':|``), or a callable over
            the function's arguments returning it. Ignored, with a warning, inside a trace.
        distinct_id: the PostHog person for every event inside (string or callable).
        properties: extra properties on every event inside.
        capture_input: record the arguments as ``$ai_input_state``.
        capture_output: record the return value as ``$ai_output_state``.

    Example:
        ```py
        @hogtrace.trace
        def answer(question: str) -> str: ...

        @hogtrace.trace("nightly-eval", distinct_id="eval-bot")
        async def evaluate() -> None: ...
        ```
    """
    func, name = _bare_or_named("trace", args, name)
    spec = TraceSpec(
        name,
        id=id,
        distinct_id=distinct_id,
        properties=properties,
        capture_input=capture_input,
        capture_output=capture_output,
    )
    return spec(func) if func is not None else spec


@overload
def span(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def span(
    name: str | None = None,
    /,
    *,
    kind: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> SpanSpec: ...
@overload
def span(
    *,
    name: str | None = None,
    kind: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> SpanSpec: ...
def span(
    *args: Any,
    name: str | None = None,
    kind: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """A step inside a trace: ``$ai_span`` (or the ``$ai_trace`` root when outermost).

    Args:
        *args: the decorated function (bare decorator) or the name.
        name: ``$ai_span_name`` (default: the function's ``__qualname__``, or ``"span"``).
        kind: ``$ai_span_type``, the kind of step PostHog shows: ``"tool"``, ``"agent"``,
            ``"retriever"``, ``"handoff"``, ``"guardrail"``, ``"chain"``, ``"custom"``, or any
            string (``hogtrace.tool`` and ``hogtrace.agent`` are shorthands).
        properties: extra properties on this span's event.
        capture_input: record the arguments as ``$ai_input_state``.
        capture_output: record the return value (a generator's yielded items) as
            ``$ai_output_state``.

    Example:
        ```py
        @hogtrace.span
        def retrieve(query: str) -> list[str]: ...

        @hogtrace.span(kind="retriever")
        def search(query: str) -> list[str]: ...

        with hogtrace.span("rerank") as s:
            s.set_output(rerank(docs))
        ```
    """
    func, name = _bare_or_named("span", args, name)
    spec = SpanSpec(
        name,
        span_type=kind,
        properties=properties,
        capture_input=capture_input,
        capture_output=capture_output,
    )
    return spec(func) if func is not None else spec


class SpanShorthand(Protocol):
    """``hogtrace.tool`` / ``hogtrace.agent``: ``span`` with its *kind* set."""

    @overload
    def __call__(self, name: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def __call__(
        self,
        name: str | None = None,
        /,
        *,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> SpanSpec: ...
    @overload
    def __call__(
        self,
        *,
        name: str | None = None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> SpanSpec: ...


def _shorthand(kind: str, doc: str) -> SpanShorthand:
    def shorthand(*args: Any, **options: Any) -> Any:
        return span(*args, kind=kind, **options)

    shorthand.__name__ = shorthand.__qualname__ = kind
    shorthand.__doc__ = doc
    return cast(SpanShorthand, shorthand)


tool = _shorthand(
    "tool",
    """A tool call: ``span(..., kind="tool")``, shown by PostHog as a tool step.

    Example:
        ```py
        @hogtrace.tool
        def get_weather(city: str) -> dict: ...
        ```
    """,
)
agent = _shorthand(
    "agent",
    """An agent run: ``span(..., kind="agent")``.

    Example:
        ```py
        @hogtrace.agent("support-bot")
        def run_agent(task: str) -> str: ...
        ```
    """,
)


@overload
def generation(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def generation(
    name: str | None = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    base_url: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
    prompt: Any = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> GenerationSpec: ...
@overload
def generation(
    *,
    name: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    base_url: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
    prompt: Any = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> GenerationSpec: ...
def generation(
    *args: Any,
    name: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    base_url: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
    prompt: Any = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """One LLM call: ``$ai_generation`` with model, messages, output, tokens and latency.

    The model, tokens and output are read from the returned object (OpenAI, Anthropic, Gemini,
    LangChain, dicts of those shapes, or a ``str``) unless set with ``set_model`` /
    ``set_usage``. A generator (or async generator) is a stream: its chunks are joined into the
    output and ``$ai_time_to_first_token`` is measured.

    Args:
        *args: the decorated function (bare decorator) or the name.
        name: ``$ai_span_name`` (default: the function's ``__qualname__``).
        model: ``$ai_model`` (default: the ``model`` argument, else the response's model).
        provider: ``$ai_provider`` (default: recognised from the response shape).
        base_url: ``$ai_base_url``.
        model_parameters: ``$ai_model_parameters``, merged over the call's own
            ``temperature``, ``max_tokens``, ``top_p``, ``stop``, ... arguments.
        prompt: the PostHog prompt this call uses: the result of posthog's
            ``Prompts.get(name, with_metadata=True)`` (a code fallback is not linked), a
            mapping with ``name`` / ``version``, or a name. Sets ``$ai_prompt_name`` and
            ``$ai_prompt_version``, which PostHog's prompt pages read.
        properties: extra properties on this event.
        capture_input: record the ``messages`` / ``prompt`` / ``input`` argument as
            ``$ai_input``.
        capture_output: record the response as ``$ai_output_choices``.

    Example:
        ```py
        @hogtrace.generation(provider="openai")
        def chat(messages: list[dict], model: str = "gpt-4o-mini") -> ChatCompletion:
            return openai_client.chat.completions.create(model=model, messages=messages)
        ```
    """
    func, name = _bare_or_named("generation", args, name)
    spec = GenerationSpec(
        name,
        options=GenerationOptions(model, provider, base_url, model_parameters, prompt),
        properties=properties,
        capture_input=capture_input,
        capture_output=capture_output,
    )
    return spec(func) if func is not None else spec


@overload
def embedding(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def embedding(
    name: str | None = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> EmbeddingSpec: ...
@overload
def embedding(
    *,
    name: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> EmbeddingSpec: ...
def embedding(
    *args: Any,
    name: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    properties: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """One embedding call: ``$ai_embedding`` with model, input and token count.

    Args:
        *args: the decorated function (bare decorator) or the name.
        name: ``$ai_span_name`` (default: the function's ``__qualname__``).
        model: ``$ai_model`` (default: the ``model`` argument, else the response's).
        provider: ``$ai_provider``.
        properties: extra properties on this event.
        capture_input: record the ``input`` argument as ``$ai_input``.
        capture_output: accepted for symmetry; vectors are never sent.

    Example:
        ```py
        @hogtrace.embedding(model="text-embedding-3-small", provider="openai")
        def embed(input: list[str]) -> CreateEmbeddingResponse: ...
        ```
    """
    func, name = _bare_or_named("embedding", args, name)
    spec = EmbeddingSpec(
        name,
        options=GenerationOptions(model, provider),
        properties=properties,
        capture_input=capture_input,
        capture_output=capture_output,
    )
    return spec(func) if func is not None else spec


def current() -> Scope | None:
    """The innermost open scope of any kind (session included), or ``None`` outside any.

    Inside a decorated function or a ``with`` block it is never ``None``: with tracing off it
    is a no-op scope whose methods do nothing. For a typed scope that is never ``None``, use
    `current_span`, `current_generation` or `current_trace`.

    Example:
        ```py
        hogtrace.current().set_properties(user_tier="pro")
        ```
    """
    return current_scope()


def current_span() -> Scope:
    """The innermost open trace, span, generation or embedding; a no-op scope outside any.

    Example:
        ```py
        hogtrace.current_span().set_properties(documents=len(docs))
        ```
    """
    scope = current_scope()
    while scope is not None:
        if scope.emits or is_noop(scope):
            return scope
        scope = scope.parent
    return NOOP_SCOPE


def current_generation() -> GenerationScope:
    """The innermost open generation or embedding; a no-op one (never ``None``) outside any.

    Example:
        ```py
        hogtrace.current_generation().set_usage(input_tokens=12, output_tokens=5)
        ```
    """
    scope = current_scope()
    while scope is not None:
        if isinstance(scope, GenerationScope):
            return scope
        scope = scope.parent
    return NOOP_GENERATION


def current_trace() -> Scope:
    """The root of the current trace (its ``$ai_trace`` in this process); a no-op scope outside.

    Set what is known only part-way through: the trace's name, its person, properties, input
    and output.

    Example:
        ```py
        user = authenticate(request)
        hogtrace.current_trace().set_distinct_id(user.id)  # the whole trace goes to this user
        hogtrace.current_trace().set_name(f"chat:{route}")
        ```
    """
    scope = current_scope()
    if scope is None:
        return NOOP_SCOPE
    root = scope.trace_root
    if root is None:
        return NOOP_GENERATION if isinstance(scope, GenerationScope) else NOOP_SCOPE
    return root


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so that, called in another thread, it runs inside the current scope.

    Each call runs in its own copy of the context captured now, so the wrapper can be submitted
    many times, also concurrently.

    Args:
        fn: the callable to run in a worker thread.

    Returns:
        A callable with ``fn``'s signature.

    Example:
        ```py
        with hogtrace.span("fan-out"):
            futures = [pool.submit(hogtrace.propagate(fetch), url) for url in urls]
        ```
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: each call runs in its own copy.
        return captured.copy().run(fn, *args, **kwargs)

    return run


def _annotate(
    event: str,
    payload: dict[str, Any],
    trace_id: str | None,
    session_id: str | None,
    distinct_id: str | None,
    what: str,
) -> None:
    if distinct_id is not None and not isinstance(distinct_id, str):
        raise TypeError(f"hogtrace.{what}(): distinct_id must be a string, got {distinct_id!r}")
    if trace_id is not None and not isinstance(trace_id, str):
        raise TypeError(f"hogtrace.{what}(): trace_id must be a string, got {trace_id!r}")
    if session_id is not None and not isinstance(session_id, str):
        raise TypeError(f"hogtrace.{what}(): session_id must be a string, got {session_id!r}")
    state = _state.state
    if not state.active:
        return
    parent = current_scope()
    target = trace_id or (parent.trace_id if parent is not None else None)
    if target is None:
        log.warning("hogtrace.%s() outside any trace and without trace_id: not sent", what)
        stats_counters.dropped.incr()
        return
    try:
        note = _annotation(
            event, payload, parent, target, session_id, distinct_id, state.config.sample_rate
        )
    except Exception as err:
        log_internal_error(f"hogtrace.{what}()", err)
        return
    if note is None:
        return  # the trace was sampled out: its annotations go with it
    stats_counters.emitted.incr()
    try:
        state.destination().emit(note, state.config)
    except Exception as err:
        stats_counters.failed.incr()
        log_internal_error("handing an event to the sink", err)


def _annotation(
    event: str,
    payload: dict[str, Any],
    parent: Scope | None,
    trace_id: str,
    session_id: str | None,
    distinct_id: str | None,
    rate: float,
) -> Annotation | None:
    """The annotation record, or ``None`` when its trace is not sampled."""
    if session_id is None and parent is not None:
        session_id = parent.session_id
    if parent is not None and parent.trace_id == trace_id and parent.session_id == session_id:
        keep = parent.sampled
    else:
        # Annotating a trace from elsewhere (feedback in a later request): decide as the
        # trace was decided, from its session id when given, else from the trace id.
        keep = sampled(session_id or trace_id, rate)
    if not keep:
        return None
    return Annotation(
        event_name=event,
        payload=payload,
        trace_id=trace_id,
        session_id=session_id,
        distinct_id=distinct_id or (parent.distinct_id if parent is not None else None),
        inherited=parent.inherited if parent is not None else {},
        timestamp=utc_now(),
    )


def metric(
    name: str,
    value: Any,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    distinct_id: str | None = None,
) -> None:
    """Send ``$ai_metric`` (an evaluation score) on the current trace, or on ``trace_id``.

    Args:
        name: ``$ai_metric_name``.
        value: ``$ai_metric_value``, sent as given, except a value PostHog's trace view would
            hide (``0``, ``0.0``, ``False``): that is sent as a string (``"0"``, ``"false"``),
            as PostHog's JS SDKs send every value.
        trace_id: the trace to annotate (default: the current one). Outside any trace and
            without it, nothing is sent (a warning is logged).
        session_id: the trace's session, when annotating it from outside that session (a
            later request): sets ``$ai_session_id`` and, with ``sample_rate`` below 1, makes the
            same keep/drop decision as the session's traces.
        distinct_id: the person the annotation goes to (default: the current scope's, so
            feedback sent later, from another request, can name its user).

    Example:
        ```py
        hogtrace.metric("relevance", 0.92)
        ```
    """
    if not isinstance(name, str):
        raise TypeError(f"hogtrace.metric(): name must be a string, got {name!r}")
    payload = {"$ai_metric_name": name, "$ai_metric_value": _visible(value)}
    _annotate("$ai_metric", payload, trace_id, session_id, distinct_id, "metric")


def _visible(value: Any) -> Any:
    """A metric value PostHog shows: its trace view drops values that are falsy in JavaScript."""
    if value is False:
        return "false"
    if type(value) in (int, float) and value == 0:
        return "0"
    return value


def feedback(
    text: str,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    distinct_id: str | None = None,
) -> None:
    """Send ``$ai_feedback`` (a user's feedback text) on the current trace, or on ``trace_id``.

    Args:
        text: ``$ai_feedback_text`` (secret-looking keys never apply; the ``redact`` hook does).
        trace_id: the trace to annotate (default: the current one).
        session_id: the trace's session, when annotating it from outside that session (see
            ``metric``).
        distinct_id: the person the feedback comes from (default: the current scope's).

    Example:
        ```py
        hogtrace.feedback("The answer missed the pricing page", trace_id=answer_trace_id)
        ```
    """
    if not isinstance(text, str):
        raise TypeError(f"hogtrace.feedback(): text must be a string, got {text!r}")
    payload = {"$ai_feedback_text": text}
    _annotate("$ai_feedback", payload, trace_id, session_id, distinct_id, "feedback")


def stats() -> dict[str, int]:
    """This process's counters: ``emitted``, ``dropped``, ``failed``, ``undelivered``.

    Counted since start, ``reset()``, or the fork that made this process. ``emitted`` counts
    events made by scopes; ``dropped`` those hogtrace dropped (nothing configured, a full
    queue); ``failed`` those that could not be built or handed to the client; ``undelivered``
    those the PostHog client refused or reported lost (see the docs for what is visible for a
    client you pass in).

    Example:
        ```py
        assert hogtrace.stats()["dropped"] == 0
        ```
    """
    reconcile_settled()
    return stats_counters.as_dict()
