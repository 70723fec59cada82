"""Binding plans: turn a call's ``(args, kwargs)`` into ``{parameter: value}`` cheaply.

``inspect.Signature.bind`` costs several microseconds per call, so the plan is computed once at
decoration time and the common case (positional-or-keyword parameters only) binds with a
``zip`` and a loop over the missing defaults.

A callable that is already bound (a bound method, a classmethod reached through its class, a
callable instance, a builtin) reports a signature without its receiver, and wrapt may still pass
its ``__self__`` as ``instance``; such a plan ignores ``bound``. A ``functools.partial`` is bound
as its underlying function receives the call: frozen arguments first.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Binder", "default_name", "unwrap_callable"]

_P = inspect.Parameter
_EMPTY = inspect.Parameter.empty
_RECEIVERS = ("self", "cls")
# SDK defaults meaning "not passed" (openai and anthropic: ``NOT_GIVEN`` / ``omit``): a call
# that leaves them out did not set them, so they are not recorded.
_SENTINEL_TYPES = frozenset({"NotGiven", "Omit"})
_LOCALS = re.compile(r"<locals>\.")


def unwrap_callable(fn: Any) -> Callable[..., Any]:
    """The plain function behind a classmethod / staticmethod object."""
    if isinstance(fn, (classmethod, staticmethod)):
        return fn.__func__
    return fn  # type: ignore[no-any-return]


def default_name(fn: Any) -> str:
    """The default scope name for `fn`: its ``__qualname__`` without ``<locals>.`` segments.

    A partial is named after its underlying function, a bound method after its function and a
    callable instance after its class.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = unwrap_callable(fn)
    if inspect.ismethod(fn):
        fn = fn.__func__
    name = getattr(fn, "__qualname__", None)
    if not isinstance(name, str) or not name:
        name = getattr(type(fn), "__qualname__", None) or type(fn).__name__
    return _LOCALS.sub("", name)


def _is_sentinel(value: object) -> bool:
    return type(value).__name__ in _SENTINEL_TYPES


class Binder:
    """A precomputed plan that binds call arguments to parameter names."""

    __slots__ = (
        "_defaults",
        "_frozen_args",
        "_frozen_kwargs",
        "_names",
        "_names_bound",
        "_prebound",
        "_receiver",
        "_signature",
        "_simple",
        "var_keyword",
    )

    def __init__(self, fn: Callable[..., Any]) -> None:
        frozen_args: tuple[Any, ...] = ()
        frozen_kwargs: dict[str, Any] = {}
        while isinstance(fn, functools.partial):  # the partial's own arguments come first
            frozen_args = fn.args + frozen_args
            frozen_kwargs = {**fn.keywords, **frozen_kwargs}
            fn = fn.func
        self._frozen_args = frozen_args
        self._frozen_kwargs = frozen_kwargs
        #: Bound methods, callable instances, classes and builtins: no receiver in the signature.
        self._prebound = not inspect.isfunction(fn)
        self._names: tuple[str, ...] = ()
        self._names_bound: tuple[str, ...] = ()
        self._defaults: dict[str, Any] = {}
        self._simple = False
        self._receiver = False
        self.var_keyword: str | None = None
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature
            self._signature = None
            return
        params = list(self._signature.parameters.values())
        self._receiver = not self._prebound and bool(params) and params[0].name in _RECEIVERS
        self._names = tuple(p.name for p in params)
        #: The names without the receiver (``self``/``cls``), decided here, not per call.
        self._names_bound = self._names if self._prebound else self._names[1:]
        self._defaults = {
            p.name: p.default
            for p in params
            if p.default is not _EMPTY and not _is_sentinel(p.default)
        }
        self._simple = all(p.kind is _P.POSITIONAL_OR_KEYWORD for p in params)
        #: The name of the ``**kwargs`` parameter, if the function has one.
        self.var_keyword = next((p.name for p in params if p.kind is _P.VAR_KEYWORD), None)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], bound: bool) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied, without ``self`` / ``cls``.

        Args:
            args: positional arguments as the wrapper received them.
            kwargs: keyword arguments.
            bound: ``True`` when the receiver (``self``/``cls``) was already bound by the
                descriptor protocol and is not in ``args``. Ignored for a callable that was
                bound before it was decorated.
        """
        if self._frozen_args:
            args = self._frozen_args + args
        if self._frozen_kwargs:
            kwargs = {**self._frozen_kwargs, **kwargs}
        if self._prebound:
            bound = False
        if self._simple:
            if bound:
                names = self._names_bound
            elif self._receiver:
                names, args = self._names_bound, args[1:]
            else:
                names = self._names
            if not kwargs and len(args) == len(names):
                return dict(zip(names, args))  # noqa: B905 - the same length, checked above
            if len(args) <= len(names):
                out = dict(zip(names, args, strict=False))  # args may be fewer
                if kwargs:
                    out.update(kwargs)
                if len(out) < len(names):  # fill defaults, keeping signature order
                    defaults = self._defaults
                    out = {
                        n: out[n] if n in out else defaults[n]
                        for n in names
                        if n in out or n in defaults
                    }
                return out
        return self._bind_slow(args, kwargs, bound)

    def _bind_slow(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], bound: bool
    ) -> dict[str, Any]:
        if self._signature is None:
            return {"args": list(args), "kwargs": dict(kwargs)} if kwargs else {"args": list(args)}
        try:
            if bound:
                ba = self._signature.bind_partial(None, *args, **kwargs)
            else:
                ba = self._signature.bind_partial(*args, **kwargs)
            passed = set(ba.arguments)
            ba.apply_defaults()
        except TypeError:
            # The call itself is wrong; the function will raise. Record what was passed.
            return {"args": list(args), "kwargs": dict(kwargs)}
        out = {
            name: value
            for name, value in ba.arguments.items()
            if name in passed or not _is_sentinel(value)
        }
        if bound or self._receiver:
            out.pop(self._names[0], None)
        return out
