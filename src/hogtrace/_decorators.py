"""Scope specs: reusable objects that decorate functions and open scopes as ``with`` blocks.

``hogtrace.span("retrieve")`` returns a spec. It holds options only; every call of a decorated
function and every ``with`` opens a fresh scope. How a function is wrapped (plain, ``async def``,
generator, async generator) is decided once, at decoration time. wrapt keeps the wrapped
function's name, docstring, signature and ``inspect`` kind, and binds methods, classmethods and
staticmethods in either decorator order.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from hogtrace import _state
from hogtrace._binding import Binder, default_name, unwrap_callable
from hogtrace._context import attach, current_scope, detach, reset
from hogtrace._errors import RateLimit, log_internal_error
from hogtrace._generation import EmbeddingScope, GenerationOptions, GenerationScope
from hogtrace._ids import new_id
from hogtrace._noop import NOOP_GENERATION, NOOP_SCOPE
from hogtrace._scope import (
    Scope,
    SessionScope,
    StandInScope,
    TraceScope,
    valid_trace_id,
)
from hogtrace._streams import Collector, InContext, is_stream, wrap_stream
from hogtrace._wrapper import TracedFunction, is_traced

__all__ = [
    "Call",
    "EmbeddingSpec",
    "GenerationSpec",
    "ScopeSpec",
    "SessionSpec",
    "SpanSpec",
    "TraceSpec",
]

log = logging.getLogger("hogtrace")

S = TypeVar("S", bound=Scope)
F = TypeVar("F", bound=Callable[..., Any])

# (binder, instance, args, kwargs) of a decorated call; None for a ``with`` block.
Call = tuple[Binder, Any, tuple[Any, ...], Mapping[str, Any]]


class ScopeSpec(Generic[S]):
    """Options for a scope; a decorator and a (async) context manager.

    Each ``with`` and each call of a decorated function opens a fresh scope, so one spec can be
    reused and shared between threads.
    """

    kind = "span"
    _needs_arguments = True
    _flatten_var_keyword = False
    #: What ``current()`` is inside a decorated call while nothing is recorded.
    _noop: Scope = NOOP_SCOPE

    def __init__(self, name: str | None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"hogtrace.{self.kind}(): name must be a string, got {name!r}")
        self.name = name
        self._open_scopes: list[tuple[S, contextvars.Token[Any], Scope | None]] = []
        self._lock = threading.Lock()  # with-blocks only: a spec may be shared between threads
        self._lock_born = _state.forks

    @property
    def _guard(self) -> threading.Lock:
        """`_lock`, renewed in a forked child (another thread may have held it at the fork)."""
        if self._lock_born != _state.forks:
            self._lock = threading.Lock()
            self._lock_born = _state.forks
        return self._lock

    # -- subclasses ----------------------------------------------------------------------------

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> S:
        raise NotImplementedError

    # -- opening --------------------------------------------------------------------------------

    def _open(self, name: str, parent: Scope | None, call: Call | None) -> S:
        scope = self._make(name, parent, call)
        capture = _state.state.capture
        if capture is not None:
            capture.opened(scope)  # the open-scope check of hogtrace.testing
        if call is not None and self._needs_arguments and scope.sampled:
            binder, instance, args, kwargs = call
            arguments = binder.bind(args, kwargs, instance is not None)
            if self._flatten_var_keyword and binder.var_keyword in arguments:
                # A pass-through wrapper (``def create(**kwargs)``) holds the whole request in
                # its var-keyword parameter: messages, model and parameters are found inside.
                extra = arguments.pop(binder.var_keyword)
                if isinstance(extra, dict):
                    arguments = {**arguments, **extra}
            scope.capture_call(arguments)
        return scope

    # -- context manager --------------------------------------------------------------------------

    def __enter__(self) -> S:
        parent = current_scope()
        try:
            scope = self._open(self.name or self.kind, parent, None)
        except Exception as err:
            log_internal_error("opening a scope", err)
            scope = cast(S, StandInScope(self.name or self.kind))
        token = attach(scope)
        with self._guard:
            self._open_scopes.append((scope, token, parent))
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._pop_open()
        if entry is None:
            return
        scope, token, parent = entry
        scope.close(exc=exc)
        detach(token, parent)

    async def __aenter__(self) -> S:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _pop_open(self) -> tuple[S, contextvars.Token[Any], Scope | None] | None:
        # Normally the scope being exited is the current one; with one spec shared between
        # threads or tasks, pick the entry this context opened.
        current = current_scope()
        with self._guard:
            opened = self._open_scopes
            for i in range(len(opened) - 1, -1, -1):
                if opened[i][0] is current:
                    return opened.pop(i)
            if opened:
                return opened.pop()
        log.warning("hogtrace: %s.__exit__ without a matching __enter__", self.kind)
        return None

    # -- decorator ----------------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        """Decorate ``func``: every call runs inside a fresh scope of this spec."""
        target = unwrap_callable(func)
        if not callable(target):
            raise TypeError(f"hogtrace.{self.kind}() decorates callables, got {func!r}")
        name = self.name or default_name(func) or self.kind
        _warn_if_context_manager_factory(self.kind, name, target)
        binder = Binder(target)
        stacked = is_traced(func) or is_traced(target)
        if inspect.isasyncgenfunction(target):
            wrapper = self._async_generator_wrapper(name, binder, stacked)
        elif inspect.iscoroutinefunction(target):
            wrapper = self._coroutine_wrapper(name, binder)
        elif inspect.isgeneratorfunction(target):
            wrapper = self._generator_wrapper(name, binder, stacked)
        else:
            wrapper = self._function_wrapper(name, binder)
        return cast(F, TracedFunction(func, wrapper))

    def _function_wrapper(self, name: str, binder: Binder) -> Callable[..., Any]:
        open_ = self._open

        noop = self._noop

        def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not _state.state.active:
                return _unrecorded(noop, wrapped, args, kwargs)
            parent = current_scope()
            try:
                scope = open_(name, parent, (binder, instance, args, kwargs))
                token = attach(scope)
            except Exception as err:
                log_internal_error("opening a scope", err)
                return _unrecorded(noop, wrapped, args, kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                scope.close(exc=exc)
                detach(token, parent)
                raise
            return _finish(scope, result, token, parent)

        return wrapper

    def _coroutine_wrapper(self, name: str, binder: Binder) -> Callable[..., Any]:
        open_ = self._open
        noop = self._noop

        async def run(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            parent = current_scope()
            try:
                scope = open_(name, parent, (binder, instance, args, kwargs))
                token = attach(scope)
            except Exception as err:
                log_internal_error("opening a scope", err)
                return await _unrecorded_async(noop, wrapped, args, kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                scope.close(exc=exc)
                detach(token, parent)
                raise
            return _finish(scope, result, token, parent)

        def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not _state.state.active:
                return _unrecorded_async(noop, wrapped, args, kwargs)
            return run(wrapped, instance, args, kwargs)

        return wrapper

    def _generator_wrapper(self, name: str, binder: Binder, stacked: bool) -> Callable[..., Any]:
        return self._iterator_wrapper(name, binder, inspect.isgenerator, _traced_generator, stacked)

    def _async_generator_wrapper(
        self, name: str, binder: Binder, stacked: bool
    ) -> Callable[..., Any]:
        return self._iterator_wrapper(
            name, binder, inspect.isasyncgen, _traced_async_generator, stacked
        )

    def _iterator_wrapper(
        self,
        name: str,
        binder: Binder,
        is_kind: Callable[[Any], bool],
        traced: Callable[..., Any],
        stacked: bool,
    ) -> Callable[..., Any]:
        spec = self

        def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if stacked and _state.state.active:
                # Another hogtrace decorator is below this one: create its generator only once
                # this scope is open in our context, so that it becomes the inner one's parent.
                ctx = contextvars.copy_context()
                inner = functools.partial(wrapped, *args, **kwargs)
                return traced(spec, name, (binder, instance, args, kwargs), ctx, inner)
            gen = wrapped(*args, **kwargs)
            if not _state.state.active or not is_kind(gen):
                return gen
            # The body runs in a context of its own, copied now: the parent is the scope current
            # when the generator function was called, and the caller's loop body never sees this
            # scope as current.
            ctx = contextvars.copy_context()
            return traced(spec, name, (binder, instance, args, kwargs), ctx, gen)

        return wrapper


def _warn_if_context_manager_factory(kind: str, name: str, target: Any) -> None:
    """A scope over a ``@contextlib.contextmanager`` function times only the manager's creation.

    Said once, at decoration time, with what to do instead.
    """
    inner = getattr(target, "__wrapped__", None)
    if inner is None or inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        return
    if inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
        log.warning(
            "hogtrace.%s on %r, a @contextmanager function, times only the creation of its"
            " context manager, not the with block. Put the decorator below @contextmanager (on"
            " the generator), or open `with hogtrace.%s(...)` inside it.",
            kind,
            name,
            kind,
        )


#: Common return types that are never streams: the check costs nothing for them.
_NOT_STREAMS = frozenset({str, bytes, int, float, bool, dict, list, tuple, set})


def _finish(scope: Scope, result: Any, token: contextvars.Token[Any], parent: Scope | None) -> Any:
    """End a decorated call that returned ``result`` (sync and ``async def`` alike).

    Closes the scope and makes ``parent`` current again; a returned stream is handed back
    wrapped, with the scope still open until the stream ends.
    """
    if result is not None and type(result) not in _NOT_STREAMS:
        mode = is_stream(result)
        if mode is not None:
            result = _keep_open(scope, result, mode)
            detach(token, parent)
            return result
    scope.close(result)
    try:
        reset(token)  # detach(), without a call for the common case
    except ValueError:
        detach(token, parent)
    return result


def _keep_open(scope: Scope, stream: Any, mode: str) -> Any:
    """Hand back ``stream`` wrapped: ``scope`` (current now) ends when the stream ends."""
    try:
        return wrap_stream(scope, stream, contextvars.copy_context(), mode)
    except Exception as err:
        log_internal_error("wrapping a returned stream", err)
        scope.close(stream)
        return stream


def _unrecorded(noop: Scope, wrapped: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call ``wrapped`` with a no-op scope current: ``current()`` works, nothing is recorded."""
    parent = current_scope()
    token = attach(noop)
    try:
        return wrapped(*args, **kwargs)
    finally:
        detach(token, parent)


async def _unrecorded_async(
    noop: Scope, wrapped: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    """`_unrecorded` for ``async def`` functions."""
    parent = current_scope()
    token = attach(noop)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        detach(token, parent)


# -- generators ------------------------------------------------------------------------------


def _open_in(spec: ScopeSpec[Any], name: str, call: Call) -> Scope | None:
    """Open the generator's scope inside its private context (called through ``ctx.run``)."""
    try:
        scope: Scope = spec._open(name, current_scope(), call)
    except Exception as err:
        log_internal_error("opening a scope", err)
        return None
    attach(scope)  # the context is the generator's own: nothing to reset afterwards
    return scope


def _traced_generator(
    spec: ScopeSpec[Any],
    name: str,
    call: Call,
    ctx: contextvars.Context,
    gen: Generator[Any, Any, Any] | Callable[[], Generator[Any, Any, Any]],
) -> Generator[Any, Any, Any]:
    collector = Collector(ctx.run(_open_in, spec, name, call))
    if callable(gen):  # stacked decorators: the inner generator is created inside our scope
        gen = ctx.run(gen)
    step: Callable[[Any], Any] = gen.send
    value: Any = None
    while True:
        try:
            item = ctx.run(step, value)
        except StopIteration as stop:
            collector.close(None)
            return stop.value
        except BaseException as exc:
            collector.close(exc)
            raise
        collector.add(item)
        try:
            value = yield item
            step = gen.send
        except GeneratorExit as exit_:
            try:
                ctx.run(gen.close)
            except BaseException as exc:
                collector.close(exc)
                raise
            collector.close(exit_)
            raise
        except BaseException as exc:
            step, value = gen.throw, exc


async def _traced_async_generator(
    spec: ScopeSpec[Any],
    name: str,
    call: Call,
    ctx: contextvars.Context,
    agen: AsyncGenerator[Any, Any] | Callable[[], AsyncGenerator[Any, Any]],
) -> AsyncGenerator[Any, Any]:
    collector = Collector(ctx.run(_open_in, spec, name, call))
    if callable(agen):  # stacked decorators: the inner generator is created inside our scope
        agen = ctx.run(agen)
    step: Callable[[Any], Any] = agen.asend
    value: Any = None
    while True:
        try:
            item = await InContext(ctx, step(value))
        except StopAsyncIteration:
            collector.close(None)
            return
        except BaseException as exc:
            collector.close(exc)
            raise
        collector.add(item)
        try:
            value = yield item
            step = agen.asend
        except GeneratorExit as exit_:
            try:
                await InContext(ctx, agen.aclose())
            except BaseException as exc:
                collector.close(exc)
                raise
            collector.close(exit_)
            raise
        except BaseException as exc:
            step, value = agen.athrow, exc


# -- the specs of each kind ----------------------------------------------------------------------


def _check_properties(kind: str, properties: object) -> Mapping[str, Any] | None:
    if properties is not None and not isinstance(properties, Mapping):
        raise TypeError(f"hogtrace.{kind}(): properties must be a mapping, got {properties!r}")
    return properties


def _check_flag(kind: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"hogtrace.{kind}(): {name} must be a bool, got {value!r}")
    return value


def _check_id(kind: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"hogtrace.{kind}(): {name} must be a string or a callable returning one, got {value!r}"
        )


def _resolve(kind: str, what: str, value: Any, call: Call | None) -> str | None:
    """A literal id, or the result of calling it with the decorated function's arguments."""
    if value is None or isinstance(value, str):
        return value
    try:
        if call is None:
            result = value()
        else:
            _, instance, args, kwargs = call
            result = (
                value(instance, *args, **kwargs) if instance is not None else value(*args, **kwargs)
            )
    except Exception as err:
        log.warning("hogtrace: %s %s callable raised %r; using a fresh one", kind, what, err)
        return None
    if result is None:
        return None
    if not isinstance(result, str):
        result = str(result)
    return result


def _sdk_base_url(func: Any) -> str | None:
    """The base URL of the SDK client a bound method belongs to (``client.chat...create``).

    OpenAI's and Anthropic's resource objects keep their client as ``_client`` (those SDKs are
    not dependencies of hogtrace: read defensively, never required).
    """
    owner = getattr(func, "__self__", None)
    if owner is None:
        return None
    try:
        client = getattr(owner, "_client", owner)
        base_url = getattr(client, "base_url", None)
    except Exception:
        return None
    return str(base_url) if base_url else None


_session_warnings = RateLimit()


def _sanitized_session_id(value: str) -> str:
    """A computed session id PostHog would reject, made valid the same way every time.

    Each character outside PostHog's id alphabet becomes ``_`` (so one conversation keeps one
    id across calls and processes); an empty one becomes a fresh id. Logged, rate-limited.
    """
    fixed = "".join(c if valid_trace_id(c) else "_" for c in value[:512])
    _session_warnings.warn(
        "hogtrace: session id %r has characters PostHog rejects; sent as %r", value, fixed
    )
    return fixed


class SpanSpec(ScopeSpec[Scope]):
    """``hogtrace.span(...)`` (and ``tool`` / ``agent``)."""

    kind = "span"

    def __init__(
        self,
        name: str | None,
        *,
        span_type: str | None = None,
        properties: Mapping[str, Any] | None,
        capture_input: bool,
        capture_output: bool,
    ) -> None:
        super().__init__(name)
        properties = _check_properties(self.kind, properties)
        if span_type is not None:
            if not isinstance(span_type, str) or not span_type:
                raise TypeError(
                    f"hogtrace.span(): kind must be a non-empty string, got {span_type!r}"
                )
            properties = {**(properties or {}), "$ai_span_type": span_type}
        self.span_type = span_type
        self.properties = properties
        self.capture_input = _check_flag(self.kind, "capture_input", capture_input)
        self.capture_output = _check_flag(self.kind, "capture_output", capture_output)
        self._needs_arguments = capture_input

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> Scope:
        return Scope(name, parent, self.properties, self.capture_input, self.capture_output)


class TraceSpec(ScopeSpec[TraceScope]):
    """``hogtrace.trace(...)``."""

    kind = "trace"

    def __init__(
        self,
        name: str | None,
        *,
        id: str | Callable[..., str] | None,
        distinct_id: str | Callable[..., str] | None,
        properties: Mapping[str, Any] | None,
        capture_input: bool,
        capture_output: bool,
    ) -> None:
        super().__init__(name)
        _check_id(self.kind, "id", id)
        if isinstance(id, str) and not valid_trace_id(id):
            raise ValueError(
                f"hogtrace.trace(): invalid trace id {id!r}: use letters, digits and -_~.@()!':|"
            )
        _check_id(self.kind, "distinct_id", distinct_id)
        self.id = id
        self.distinct_id = distinct_id
        self.properties = _check_properties(self.kind, properties)
        self.capture_input = _check_flag(self.kind, "capture_input", capture_input)
        self.capture_output = _check_flag(self.kind, "capture_output", capture_output)
        self._needs_arguments = capture_input

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> TraceScope:
        trace_id, distinct_id = self.id, self.distinct_id
        if trace_id is not None and not isinstance(trace_id, str):
            trace_id = _resolve(self.kind, "id", trace_id, call)
        if distinct_id is not None and not isinstance(distinct_id, str):
            distinct_id = _resolve(self.kind, "distinct_id", distinct_id, call)
        return TraceScope(
            name,
            parent,
            trace_id,
            distinct_id,
            self.properties,
            self.capture_input,
            self.capture_output,
        )


class SessionSpec(ScopeSpec[SessionScope]):
    """``hogtrace.session(...)``."""

    kind = "session"
    _needs_arguments = False

    def __init__(
        self,
        id: str | Callable[..., str] | None,
        *,
        distinct_id: str | Callable[..., str] | None,
        properties: Mapping[str, Any] | None,
    ) -> None:
        super().__init__(None)
        _check_id(self.kind, "id", id)
        if isinstance(id, str) and not valid_trace_id(id):
            raise ValueError(
                f"hogtrace.session(): invalid session id {id!r}: use letters, digits and"
                " -_~.@()!':|"
            )
        _check_id(self.kind, "distinct_id", distinct_id)
        self.id = id
        self.distinct_id = distinct_id
        self.properties = _check_properties(self.kind, properties)

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> SessionScope:
        session_id = _resolve(self.kind, "id", self.id, call)
        if session_id is not None and not valid_trace_id(session_id):
            session_id = _sanitized_session_id(session_id)
        session_id = session_id or new_id()
        return SessionScope(
            session_id,
            parent,
            distinct_id=_resolve(self.kind, "distinct_id", self.distinct_id, call),
            properties=self.properties,
        )


class GenerationSpec(ScopeSpec[GenerationScope]):
    """``hogtrace.generation(...)``."""

    kind = "generation"
    _scope_class: type[GenerationScope] = GenerationScope
    _noop = NOOP_GENERATION
    _flatten_var_keyword = True

    def __init__(
        self,
        name: str | None,
        *,
        options: GenerationOptions,
        properties: Mapping[str, Any] | None,
        capture_input: bool,
        capture_output: bool,
    ) -> None:
        super().__init__(name)
        options.check(self.kind)
        self.options = options
        self.properties = _check_properties(self.kind, properties)
        self.capture_input = _check_flag(self.kind, "capture_input", capture_input)
        self.capture_output = _check_flag(self.kind, "capture_output", capture_output)

    def __call__(self, func: F) -> F:
        """Decorate ``func``; an SDK method bound to its client also gives ``$ai_base_url``."""
        if self.options.base_url is None:
            base_url = _sdk_base_url(func)
            if base_url is not None:
                spec = type(self)(
                    self.name,
                    options=dataclasses.replace(self.options, base_url=base_url),
                    properties=self.properties,
                    capture_input=self.capture_input,
                    capture_output=self.capture_output,
                )
                return ScopeSpec.__call__(spec, func)
        return super().__call__(func)

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> GenerationScope:
        return self._scope_class(
            name,
            parent,
            self.options,
            self.properties,
            self.capture_input,
            self.capture_output,
        )


class EmbeddingSpec(GenerationSpec):
    """``hogtrace.embedding(...)``."""

    kind = "embedding"
    _scope_class = EmbeddingScope
