"""Streams: what a scope records while something yields, and a returned stream kept open.

A generator function's scope (``_decorators``) and a function that *returns* a stream (an OpenAI
or Anthropic ``Stream``, a generator, an async generator, an iterator) both feed a `Collector`:
chunks for a streaming generation, else the yielded items. A returned stream is handed back
wrapped in a proxy that behaves like it (same ``isinstance``, attributes, ``close()``, context
manager) and keeps the scope open until the stream is exhausted, closed or garbage-collected.
Each step runs in the scope's own context, so work the stream's own code does nests under it.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
from collections.abc import Callable, Generator
from typing import Any, cast

import wrapt

from hogtrace import _state
from hogtrace._errors import log_internal_error
from hogtrace._generation import GenerationScope
from hogtrace._names import CUT_YIELDED
from hogtrace._scope import MAX_GENERATOR_ITEMS, Scope
from hogtrace._serialize import MIN_ITEM, count_items, item_items

__all__ = ["Collector", "InContext", "is_stream", "wrap_stream"]

log = logging.getLogger("hogtrace")

#: Provider stream classes, recognised by module and name (their SDKs are never imported).
_PROVIDER_STREAMS = frozenset({"Stream", "AsyncStream"})
_PROVIDER_MODULES = ("openai", "anthropic")
#: The SDKs' streaming helpers (``client.chat.completions.stream(...)``, ``responses.stream``,
#: ``messages.stream``): context managers whose ``__enter__`` makes the request and returns
#: the stream of events.
_PROVIDER_MANAGERS = frozenset(
    {
        "ChatCompletionStreamManager",
        "AsyncChatCompletionStreamManager",
        "ResponseStreamManager",
        "AsyncResponseStreamManager",
        "MessageStreamManager",
        "AsyncMessageStreamManager",
        "BetaMessageStreamManager",
        "BetaAsyncMessageStreamManager",
    }
)
#: What those streams know of the response so far, however the caller read it (events, or
#: ``text_stream`` and ``get_final_*()``, which read past the proxy): OpenAI's, Anthropic's.
_SNAPSHOTS = ("current_completion_snapshot", "current_message_snapshot")


class Collector:
    """What a generator yields: chunks for a streaming generation, else the items (capped).

    Items are kept as the snapshot of a list would keep them (`hogtrace._serialize`): each
    within what the earlier ones left of the event's size limit (at least an equal share of
    it for `MAX_GENERATOR_ITEMS` items, and `MIN_ITEM` bytes), until that limit is certainly
    spent, and at most `MAX_GENERATOR_ITEMS`, and while they hold fewer than ``max_items``
    items all together; the rest are counted. A long stream of large items holds about the
    limit, not every item.
    """

    __slots__ = (
        "capped",
        "final",
        "items",
        "left",
        "more",
        "room",
        "scope",
        "source",
        "spent",
        "stream",
    )
    # (A helper's stream and the helper itself may both end the scope: the first one does.)

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope
        #: The stream of an SDK's streaming helper, whose snapshot is the output.
        self.source: Any = None
        #: What the caller's ``get_final_*()`` on that stream returned: the whole response.
        self.final: Any = None
        self.stream = isinstance(scope, GenerationScope)
        if self.stream:
            cast(GenerationScope, scope).start_stream()
        self.items: list[Any] = []
        self.more = 0
        config = _state.state.config
        self.room = config.event_limit
        self.spent = self.capped = 0
        #: Items the yielded values may still keep, all together (``max_items``).
        self.left = config.max_items

    def add(self, item: Any) -> None:
        if self.scope is None:  # read on after the scope ended (past a helper's block)
            return
        try:
            if self.stream:
                cast(GenerationScope, self.scope).stream_chunk(item)
            elif (
                len(self.items) < MAX_GENERATOR_ITEMS
                and self.capped <= self.room
                # The last items left: only for a value with no items of its own.
                and (
                    self.left > (takes := item_items(item))
                    or (self.left == takes and count_items(item, 0) == 0)
                )
            ):
                # Snapshot now: a generator may yield the same object, mutated, every time.
                scope = self.scope
                if scope is not None and scope.wants_output:
                    # An equal share of the limit at least, as for a list of known length.
                    budget = max(self.room - self.spent, self.room // MAX_GENERATOR_ITEMS, MIN_ITEM)
                    copy, size, used = scope.snapshot_within(
                        item, budget, self.left - takes, CUT_YIELDED
                    )
                    self.items.append(copy)
                    # Its items, and itself as an item of the list (a list or dict one more,
                    # an object 16, as inside any other).
                    self.left -= used + takes
                    self.spent += size + 2
                    self.capped += min(size, MIN_ITEM) + 2
            else:
                self.more += 1
                if self.scope is not None:
                    self.scope.cut |= CUT_YIELDED  # the output is cut: ``$ai_truncated``
        except Exception as err:
            log_internal_error("recording a yielded item", err)

    def close(self, exc: BaseException | None) -> None:
        scope = self.scope
        if scope is None:
            return
        self.scope = None  # closed once
        if self.source is not None and (exc is None or isinstance(exc, GeneratorExit)):
            self._snapshot(scope)
        if self.stream:
            scope.close(exc=exc)
            return
        items = self.items
        if self.more:
            items = [*items, f"…[{self.more} more items]"]
        scope.close_with_items(items, exc)

    def _snapshot(self, scope: Scope) -> None:
        """The helper's own account of the response so far: output, model and tokens.

        Read however the caller read the stream (events, ``text_stream``, ``get_final_*()``).
        """
        if self.final is not None:
            scope.set_output(self.final)
            return
        for name in _SNAPSHOTS:
            try:
                snapshot = getattr(self.source, name, None)
            except Exception:  # no event yet: the snapshot does not exist
                continue
            if snapshot is not None:
                scope.set_output(snapshot)
                return


class InContext:
    """Await ``awaitable`` with every step run inside ``ctx`` (the async generator's context)."""

    __slots__ = ("_awaitable", "_ctx")

    def __init__(self, ctx: contextvars.Context, awaitable: Any) -> None:
        self._ctx = ctx
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        ctx = self._ctx
        it = self._awaitable.__await__()
        step: Callable[[Any], Any] = it.send
        value: Any = None
        while True:
            try:
                yielded = ctx.run(step, value)
            except StopIteration as stop:
                return stop.value
            try:
                value = yield yielded
                step = it.send
            except GeneratorExit:
                ctx.run(it.close)
                raise
            except BaseException as exc:
                step, value = it.throw, exc


def _run_in(ctx: contextvars.Context, step: Callable[..., Any], *args: Any) -> Any:
    """``ctx.run(step, *args)``; in a copy when another thread is inside ``ctx`` right now.

    A thread-safe iterator may be read by several threads at once; a context can be entered
    by one thread at a time.
    """
    try:
        return ctx.run(step, *args)
    except RuntimeError as err:
        if "cannot enter context" not in str(err):
            raise
    return ctx.copy().run(step, *args)


def _is_mock(value: object) -> bool:
    """A ``unittest.mock`` object: it fakes every dunder, streams included (tests return them)."""
    mock = sys.modules.get("unittest.mock")
    # type(), not isinstance(): isinstance() asks the object for __class__, which may raise.
    return mock is not None and issubclass(type(value), mock.NonCallableMock)


def is_stream(value: object) -> str | None:
    """``"sync"`` or ``"async"`` for a stream a scope should stay open for, else ``None``.

    Never raises: a type that fails to answer (a metaclass ``__getattr__`` that raises
    something other than ``AttributeError``) is not a stream.
    """
    try:
        return _stream_kind(value)
    except Exception:
        return None


def _stream_kind(value: object) -> str | None:
    kind = type(value)
    if _is_mock(value):
        return None
    if kind.__module__.split(".", 1)[0] in _PROVIDER_MODULES:
        if kind.__name__ in _PROVIDER_STREAMS:
            return "async" if hasattr(kind, "__anext__") else "sync"
        if kind.__name__ in _PROVIDER_MANAGERS:
            return "async manager" if hasattr(kind, "__aenter__") else "manager"
    is_async = hasattr(kind, "__anext__") and hasattr(kind, "__aiter__")
    if hasattr(kind, "__next__") and hasattr(kind, "__iter__") and not isinstance(value, io.IOBase):
        # Generators and iterators (not files); some are both (litellm's stream wrapper).
        return "both" if is_async else "sync"
    return "async" if is_async else None  # async generators and async iterators


def wrap_stream(scope: Scope, stream: Any, ctx: contextvars.Context, mode: str) -> Any:
    """``stream``, wrapped so that ``scope`` closes when it ends."""
    collector = Collector(scope)
    if mode == "async":
        return _AsyncStreamProxy(stream, collector, ctx)
    if mode == "both":
        return _EitherStreamProxy(stream, collector, ctx)
    if mode == "manager":
        return _ManagerProxy(stream, collector, ctx)
    if mode == "async manager":
        return _AsyncManagerProxy(stream, collector, ctx)
    return _StreamProxy(stream, collector, ctx)


class _StreamProxyBase(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Shared by the sync and async proxies: ending the scope once, however the stream ends."""

    def __init__(self, wrapped: Any, collector: Collector, ctx: contextvars.Context) -> None:
        super().__init__(wrapped)
        self._self_collector = collector
        self._self_ctx = ctx
        self._self_done = False

    def _self_finish(self, exc: BaseException | None) -> None:
        if not self._self_done:
            self._self_done = True
            self._self_collector.close(exc)

    def _self_exited(self, passing: BaseException | None) -> None:
        """End the scope as the caller's ``with`` block around the stream ends.

        An error the stream raised ended the scope then. Of an error passing through the
        block, only the provider SDK's own is the stream's (read past the proxy, by a helper's
        ``text_stream`` or ``get_final_*()``); the caller's code (its loop) is not the model
        call, as for a generator function.
        """
        stream_error = passing is not None and _from_provider(passing)
        self._self_finish(passing if stream_error else GeneratorExit())

    def __del__(self) -> None:  # dropped before the end: the scope ends (cancelled, no error)
        try:
            self._self_finish(GeneratorExit())
        except Exception as err:  # pragma: no cover - interpreter teardown
            log_internal_error("closing a dropped stream", err)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle a stream ({type(self.__wrapped__).__name__})")


class _StreamProxy(_StreamProxyBase):
    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self._self_step(next, self.__wrapped__)

    def send(self, value: Any) -> Any:
        return self._self_step(self.__wrapped__.send, value)

    def throw(self, *args: Any) -> Any:
        return self._self_step(self.__wrapped__.throw, *args)

    def _self_step(self, step: Callable[..., Any], *args: Any) -> Any:
        try:
            item = _run_in(self._self_ctx, step, *args)
        except StopIteration:
            self._self_finish(None)
            raise
        except BaseException as exc:
            self._self_finish(exc)
            raise
        self._self_collector.add(item)
        return item

    def close(self) -> Any:
        try:
            close = getattr(self.__wrapped__, "close", None)
            return close() if close is not None else None
        finally:
            self._self_finish(GeneratorExit())

    def __enter__(self) -> Any:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            suppressed = exit_(*exc_info) if exit_ is not None else None
        except BaseException as raised:
            self._self_finish(raised)
            raise
        self._self_exited(exc_info[1])
        return suppressed


class _AsyncStreamProxy(_StreamProxyBase):
    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        return await self._self_astep(self.__wrapped__.__anext__())

    async def asend(self, value: Any) -> Any:
        return await self._self_astep(self.__wrapped__.asend(value))

    async def athrow(self, *args: Any) -> Any:
        return await self._self_astep(self.__wrapped__.athrow(*args))

    async def _self_astep(self, awaitable: Any) -> Any:
        try:
            item = await InContext(self._self_ctx, awaitable)
        except StopAsyncIteration:
            self._self_finish(None)
            raise
        except BaseException as exc:
            self._self_finish(exc)
            raise
        self._self_collector.add(item)
        return item

    async def aclose(self) -> Any:
        try:
            close = getattr(self.__wrapped__, "aclose", None) or getattr(
                self.__wrapped__, "close", None
            )
            result: Any = close() if close is not None else None
            if hasattr(result, "__await__"):
                result = await result
            return result
        finally:
            self._self_finish(GeneratorExit())

    def close(self) -> Any:
        """The stream's own ``close()``: awaitable if the stream's is, else done now."""
        close = getattr(self.__wrapped__, "close", None)
        result = close() if close is not None else None
        if hasattr(result, "__await__"):
            return self._self_closing(result)
        self._self_finish(GeneratorExit())
        return result

    async def _self_closing(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._self_finish(GeneratorExit())

    async def __aenter__(self) -> Any:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            suppressed = None if exit_ is None else await exit_(*exc_info)
        except BaseException as raised:
            self._self_finish(raised)
            raise
        self._self_exited(exc_info[1])
        return suppressed


class _EitherStreamProxy(_StreamProxy, _AsyncStreamProxy):
    """A stream that can be iterated both ways (``for`` and ``async for``), as returned."""


class _ManagerProxyBase(_StreamProxyBase):
    """An SDK's streaming helper: the scope ends with the stream, or with the ``with`` block.

    The stream its ``__enter__`` returns is wrapped too, so the events read from it are
    collected; the stream's own snapshot of the response, where it keeps one, is the output
    (however the caller read it: events, ``text_stream``, ``get_final_*()``).
    """

    def _self_wrap(self, stream: Any, proxy: type[_StreamProxyBase]) -> Any:
        self._self_collector.source = stream
        return proxy(stream, self._self_collector, self._self_ctx)


def _from_provider(error: BaseException) -> bool:
    """Whether ``error`` is one of the provider SDKs' own (``openai.APIError``, ...)."""
    return type(error).__module__.split(".", 1)[0] in _PROVIDER_MODULES


class _FinalStreamProxy(_StreamProxy):
    """The stream of a helper: ``get_final_*()`` results are kept as the response."""

    def get_final_completion(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_final("get_final_completion", args, kwargs)

    def get_final_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_final("get_final_response", args, kwargs)

    def get_final_message(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_final("get_final_message", args, kwargs)

    def _self_final(self, name: str, args: Any, kwargs: Any) -> Any:
        result = getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_collector.final = result
        return result


class _AsyncFinalStreamProxy(_AsyncStreamProxy):
    """`_FinalStreamProxy` for the async helpers, whose ``get_final_*()`` are coroutines."""

    async def get_final_completion(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_final("get_final_completion", args, kwargs)

    async def get_final_response(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_final("get_final_response", args, kwargs)

    async def get_final_message(self, *args: Any, **kwargs: Any) -> Any:
        return await self._self_final("get_final_message", args, kwargs)

    async def _self_final(self, name: str, args: Any, kwargs: Any) -> Any:
        result = await getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_collector.final = result
        return result


class _ManagerProxy(_ManagerProxyBase):
    def __enter__(self) -> Any:
        try:
            stream = _run_in(self._self_ctx, self.__wrapped__.__enter__)
        except BaseException as exc:  # the request failed
            self._self_finish(exc)
            raise
        return self._self_wrap(stream, _FinalStreamProxy)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = self.__wrapped__.__exit__(*exc_info)
        except BaseException as raised:
            self._self_finish(raised)
            raise
        self._self_exited(exc_info[1])
        return suppressed


class _AsyncManagerProxy(_ManagerProxyBase):
    async def __aenter__(self) -> Any:
        try:
            stream = await InContext(self._self_ctx, self.__wrapped__.__aenter__())
        except BaseException as exc:
            self._self_finish(exc)
            raise
        return self._self_wrap(stream, _AsyncFinalStreamProxy)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = await self.__wrapped__.__aexit__(*exc_info)
        except BaseException as raised:
            self._self_finish(raised)
            raise
        self._self_exited(exc_info[1])
        return suppressed
