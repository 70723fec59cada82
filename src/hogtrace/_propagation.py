"""Carry a trace across processes (W3C headers) and into PostHog's own LLM wrappers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from hogtrace._context import current_scope
from hogtrace._decorators import ScopeSpec, _Call
from hogtrace._ids import new_id
from hogtrace._scope import RemoteScope, Scope
from hogtrace._w3c import RemoteContext, decode, encode, merge_baggage

__all__ = ["ContinueSpec", "continue_trace", "inject", "posthog_properties"]

log = logging.getLogger("hogtrace")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def inject(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Headers that carry the current trace, span, session, distinct id and sampling decision.

    Args:
        headers: a headers dict to add to (its other ``baggage`` members are kept). It is
            updated in place and also returned (as a plain dict).

    Returns:
        ``traceparent`` and ``baggage`` headers; empty when no trace is open.

    Example:
        ```py
        requests.post(url, json=payload, headers=hogtrace.inject())
        ```
    """
    out: dict[str, str] = dict(headers) if headers is not None else {}
    scope = current_scope()
    if scope is None or (scope.trace_id is None and scope.session_id is None):
        return out
    try:
        encoded = encode(
            RemoteContext(
                trace_id=scope.trace_id or new_id(),
                span_id=scope._children_parent if scope.trace_id is not None else None,
                session_id=scope.session_id,
                distinct_id=scope.distinct_id,
                sampled=scope.sampled,
            )
        )
    except Exception:
        log.warning("hogtrace.inject(): could not encode the current trace", exc_info=True)
        return out
    existing = next((v for k, v in out.items() if k.lower() == "baggage"), None)
    for key in [k for k in out if k.lower() in ("baggage", "traceparent")]:
        del out[key]
    out.update(encoded)
    if existing and "baggage" in encoded:
        out["baggage"] = merge_baggage(existing, encoded["baggage"])
    if headers is not None:
        for key in [k for k in headers if k.lower() in ("baggage", "traceparent")]:
            del headers[key]
        headers.update(out)
    return out


class ContinueSpec(ScopeSpec[RemoteScope]):
    """``hogtrace.continue_trace(headers)``: scopes inside are children of the remote span."""

    kind = "continue_trace"
    _needs_arguments = False

    def __init__(self, headers: Headers | Callable[..., Headers] | None) -> None:
        super().__init__("remote")
        self.headers = headers

    def _make(self, name: str, parent: Scope | None, call: _Call | None) -> RemoteScope:
        headers: Any = self.headers
        if callable(headers):
            try:
                headers = _call_with(headers, call)
            except Exception as err:
                log.warning("hogtrace.continue_trace(): headers callable raised %r", err)
                headers = None
        remote = decode(headers) if headers is not None else None
        if remote is None:
            # Malformed or missing: scopes inside start a fresh trace (already logged by decode).
            return RemoteScope(
                parent,
                trace_id=None,
                span_id=None,
                session_id=None,
                distinct_id=None,
                sampled=True,
            )
        return RemoteScope(
            parent,
            trace_id=remote.trace_id,
            span_id=remote.span_id,
            session_id=remote.session_id,
            distinct_id=remote.distinct_id,
            sampled=remote.sampled,
        )


def _call_with(fn: Callable[..., Any], call: _Call | None) -> Any:
    if call is None:
        return fn()
    _, instance, args, kwargs = call
    return fn(instance, *args, **kwargs) if instance is not None else fn(*args, **kwargs)


def continue_trace(headers: Headers | Callable[..., Headers] | None) -> ContinueSpec:
    """Continue a trace started in another process, from headers made by ``inject()``.

    The outermost scope inside is a ``$ai_span`` of the remote trace, parented to the remote
    span, in the remote session. Malformed headers start a fresh trace (logged, never raised).

    Args:
        headers: the incoming request's headers, or (as a decorator) a callable that receives
            the decorated function's arguments and returns them.

    Example:
        ```py
        def handle(request):
            with hogtrace.continue_trace(request.headers):
                return answer(request.json["question"])
        ```
    """
    if (
        headers is not None
        and not callable(headers)
        and not isinstance(headers, (Mapping, Iterable))
    ):
        raise TypeError(f"hogtrace.continue_trace(): headers must be a mapping, got {headers!r}")
    return ContinueSpec(headers)


def posthog_properties() -> dict[str, Any]:
    """Properties that nest a PostHog wrapper call under the current scope, passed by hand.

    Use it where the automatic hook cannot run (``AsyncPosthog``, a client hogtrace was not
    configured with): ``client.chat.completions.create(..., posthog_properties=
    hogtrace.posthog_properties())``.
    """
    scope = current_scope()
    if scope is None or scope.trace_id is None:
        return {}
    props: dict[str, Any] = {
        "$ai_trace_id": scope.trace_id,
        "$ai_parent_id": scope._children_parent,
        "$ai_span_id": new_id(),
    }
    if scope.session_id is not None:
        props["$ai_session_id"] = scope.session_id
    return props
