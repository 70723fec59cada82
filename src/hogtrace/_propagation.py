"""Carry a trace across processes (W3C headers) and into PostHog's own LLM wrappers by hand.

``inject()`` writes the current trace, span, session, distinct id and sampling decision as W3C
``traceparent`` and ``baggage`` headers (``_w3c``); ``continue_trace(headers)`` reads them back
as a `RemoteScope`, so the scopes opened inside are children of the caller's span. Headers are
untrusted input: whatever they hold, ``continue_trace`` logs and carries on, it never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

from hogtrace import _state
from hogtrace._context import current_scope
from hogtrace._decorators import Call, ScopeSpec
from hogtrace._errors import RateLimit
from hogtrace._ids import new_id
from hogtrace._scope import RemoteScope, Scope
from hogtrace._w3c import (
    BAGGAGE_SAFE,
    DISTINCT_KEY,
    SESSION_KEY,
    TRACE_KEY,
    RemoteContext,
    decode,
    encode,
    merge_baggage,
    parse_baggage,
)

__all__ = ["ContinueSpec", "continue_trace", "inject", "posthog_properties"]

log = logging.getLogger("hogtrace")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
_NAMES = ("traceparent", "baggage")
# WSGI puts request headers in the environ as HTTP_<NAME>.
_WSGI = {"HTTP_TRACEPARENT": "traceparent", "HTTP_BAGGAGE": "baggage"}
_warnings = RateLimit()


def inject(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Headers that carry the current trace, span, session, distinct id and sampling decision.

    W3C ``traceparent`` for the trace and span (derived when the ids are not W3C hex ids) and
    W3C ``baggage`` for the exact ids, the session id and the distinct id. Inside a session with
    no trace open, only the session (and distinct id) travel: the other side starts its own
    trace in that session.

    Args:
        headers: a headers mapping to add to (its other ``baggage`` members are kept). It is
            updated in place and also returned, as a plain dict.

    Returns:
        The headers; with no scope open, a copy of ``headers`` unchanged (``{}`` without it).

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
        if scope.trace_id is not None:
            encoded = encode(
                RemoteContext(
                    trace_id=scope.trace_id,
                    span_id=scope.child_parent_id,
                    session_id=scope.session_id,
                    distinct_id=scope.distinct_id,
                    sampled=scope.sampled,
                )
            )
        else:
            encoded = {"baggage": _session_baggage(scope.session_id, scope.distinct_id)}
    except Exception:
        log.warning("hogtrace.inject(): could not encode the current trace", exc_info=True)
        return out
    existing = ",".join(v for k, v in out.items() if k.lower() == "baggage")
    for key in [k for k in out if k.lower() in _NAMES]:
        del out[key]
    out.update(encoded)
    out["baggage"] = merge_baggage(existing or None, encoded["baggage"])
    if headers is not None:
        try:
            for key in [k for k in headers if k.lower() in _NAMES]:
                del headers[key]
            headers.update(out)
        except Exception:
            log.warning("hogtrace.inject(): could not update %r in place", type(headers).__name__)
    return out


def _session_baggage(session_id: str | None, distinct_id: str | None) -> str:
    members = ((SESSION_KEY, session_id), (DISTINCT_KEY, distinct_id))
    return ",".join(
        f"{key}={quote(value, safe=BAGGAGE_SAFE, errors='replace')}"
        for key, value in members
        if value
    )


class ContinueSpec(ScopeSpec[RemoteScope]):
    """``hogtrace.continue_trace(headers)``: scopes inside are children of the remote span."""

    kind = "continue_trace"
    _needs_arguments = False

    def __init__(self, headers: Any, isolated: bool = False) -> None:
        super().__init__("remote")
        self.headers = headers
        self.isolated = isolated

    def _make(self, name: str, parent: Scope | None, call: Call | None) -> RemoteScope:
        if self.isolated:
            parent = None  # a request of its own, whatever a server left current
        headers: Any = self.headers
        if callable(headers):
            try:
                headers = _call_with(headers, call)
            except Exception as err:
                _warn("hogtrace.continue_trace(): the headers callable raised %r", err)
                return _carry_on(parent)
        items = _items(headers)
        if items is None:
            _warn(
                "hogtrace.continue_trace(): expected request headers, got %.100r; not continuing",
                headers,
            )
            return _carry_on(parent)
        remote = decode(items)
        if remote is not None:
            return RemoteScope(
                parent,
                trace_id=remote.trace_id,
                span_id=remote.span_id,
                session_id=remote.session_id,
                distinct_id=remote.distinct_id,
                sampled=remote.sampled,
            )
        has_traceparent = any(_text(k).lower() == "traceparent" for k, _ in items)
        raw = ",".join(_text(v) for k, v in items if _text(k).lower() == "baggage")
        has_trace = any(m.partition("=")[0].strip() == TRACE_KEY for m in raw[:8192].split(","))
        baggage = parse_baggage(raw)
        session_id = baggage.get(SESSION_KEY)
        if session_id and not has_trace and not has_traceparent:
            # inject() in a session with no trace open: the trace starts here, in that session.
            return _carry_on(parent, session_id, baggage.get(DISTINCT_KEY) or None)
        if has_traceparent or has_trace:
            _warn("hogtrace.continue_trace(): malformed trace headers; not continuing")
        else:
            log.debug("hogtrace.continue_trace(): no trace headers; not continuing")
        return _carry_on(parent)


def _carry_on(
    parent: Scope | None, session_id: str | None = None, distinct_id: str | None = None
) -> RemoteScope:
    """Nothing to continue: scopes inside behave as if ``continue_trace`` were not there.

    Outside any scope they start a fresh trace; inside one they stay in it.
    """
    return RemoteScope(
        parent,
        trace_id=parent.trace_id if parent is not None else None,
        span_id=parent.child_parent_id if parent is not None else None,
        session_id=session_id or (parent.session_id if parent is not None else None),
        distinct_id=distinct_id or (parent.distinct_id if parent is not None else None),
        sampled=parent.sampled if parent is not None else True,
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else ""


def _items(headers: Any) -> list[tuple[Any, Any]] | None:
    """``(name, value)`` pairs from a mapping, a headers object, a WSGI environ or a list."""
    if headers is None:
        return []
    try:
        if isinstance(headers, (str, bytes)):
            return None
        # Mappings, http.client.HTTPMessage, email.message.Message and multidicts have items().
        items = getattr(headers, "items", None)
        pairs = list(items()) if callable(items) else list(headers)
        out: list[tuple[Any, Any]] = []
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                return None
            name, value = pair
            if isinstance(name, str) and name in _WSGI:
                name = _WSGI[name]
            out.append((name, value))
        return out
    except Exception:
        return None


def _warn(message: str, *args: Any) -> None:
    """Warn at most once a minute (headers are untrusted input: no log flooding), else debug."""
    _warnings.warn(message, *args)


def _call_with(fn: Callable[..., Any], call: Call | None) -> Any:
    if call is None:
        return fn()
    _, instance, args, kwargs = call
    return fn(instance, *args, **kwargs) if instance is not None else fn(*args, **kwargs)


def continue_trace(
    headers: Headers | Callable[..., Headers] | None, *, isolated: bool = False
) -> ContinueSpec:
    """Continue a trace started in another process, from headers made by ``inject()``.

    A scope (``with``, ``async with``, decorator). The outermost scope inside is a ``$ai_span``
    of the remote trace, parented to the remote span, in the remote session. Missing or
    malformed headers are logged, never raised: scopes inside then start a fresh trace (or stay
    in the scope already open around ``continue_trace``, unless ``isolated``).

    Args:
        headers: the incoming request's headers (a mapping, a headers object such as
            ``http.server``'s, ``(name, value)`` pairs, or a WSGI environ), or, as a decorator,
            a callable that receives the decorated function's arguments and returns them.
        isolated: ignore any scope already open around it: scopes inside belong to the remote
            trace, or start a fresh one, and never inherit that scope's trace, session,
            distinct id or properties. For a server's request handler: an asyncio server can
            run a request in a copy of the previous request's context (uvicorn on a keep-alive
            connection, CPython issue 140947), where that request's scope is still current.

    Example:
        ```py
        def handle(request):
            with hogtrace.continue_trace(request.headers):
                return answer(request.json["question"])

        @hogtrace.continue_trace(lambda request: request.headers)
        def handle(request): ...
        ```
    """
    return ContinueSpec(headers, isolated)


def posthog_properties() -> dict[str, Any]:
    """Properties that nest a PostHog wrapper call under the current scope, passed by hand.

    With a ``posthog.Posthog`` client given to ``hogtrace.configure()`` this is automatic. Use
    it where the automatic hook cannot run: ``posthog.AsyncPosthog`` (its ``before_send`` runs
    in a worker) or a wrapper built on another client. Call it for each request: every call
    gives a fresh ``$ai_span_id``.

    Returns:
        ``$ai_trace_id``, ``$ai_parent_id``, a new ``$ai_span_id``, ``$ai_session_id`` and the
        properties of the enclosing sessions and traces; ``{}`` outside any scope.

    Example:
        ```py
        await openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            posthog_properties=hogtrace.posthog_properties(),
        )
        ```
    """
    scope = current_scope()
    if scope is None:
        return {}
    props: dict[str, Any] = {**_state.state.config.properties, **scope.inherited}
    if scope.trace_id is not None:
        props["$ai_trace_id"] = scope.trace_id
        props["$ai_parent_id"] = scope.child_parent_id
        props["$ai_span_id"] = new_id()
    if scope.session_id is not None:
        props["$ai_session_id"] = scope.session_id
    return props
