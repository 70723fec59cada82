"""Make PostHog's own LLM wrappers join the enclosing hogtrace scope.

``posthog.ai.openai``, ``anthropic``, ``gemini`` and the LangChain ``CallbackHandler`` capture
their events through the configured client, whose ``before_send`` runs synchronously in the
calling thread (``posthog-reference.md`` §5.5). A hook chained in front of the user's own
``before_send`` rewrites those events so they carry the scope's trace id, session id, parent
and distinct id, and adds their tokens to the scope's metrics. ``AsyncPosthog`` runs
``before_send`` in a worker; there, pass ``hogtrace.posthog_properties()`` by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hogtrace import _config
from hogtrace._context import current_scope
from hogtrace._errors import log_internal_error
from hogtrace._ids import new_id
from hogtrace._scope import Scope

__all__ = ["install", "uninstall"]

log = logging.getLogger("hogtrace")

_TOKENS = (
    (0, "$ai_input_tokens"),
    (1, "$ai_output_tokens"),
    (2, "$ai_cache_read_input_tokens"),
)


class _BeforeSend:
    """The chained ``before_send`` hook hogtrace installs on a configured client."""

    def __init__(self, previous: Callable[[dict[str, Any]], Any] | None) -> None:
        self.previous = previous

    def __call__(self, msg: dict[str, Any]) -> Any:
        try:
            capture = join_scope(msg)
        except Exception as err:
            log_internal_error("joining a PostHog wrapper event to its scope", err)
            capture = None
        if capture is not None:
            capture.record_message(msg)
            return None  # recorded by hogtrace.testing; never sent
        if self.previous is not None:
            return self.previous(msg)
        return msg


def join_scope(msg: dict[str, Any]) -> Any:
    """Rewrite a wrapper's ``$ai_*`` event in place; return the active capture, if any."""
    props = msg.get("properties")
    event = msg.get("event")
    if not isinstance(props, dict) or not isinstance(event, str) or not event.startswith("$ai_"):
        return None
    if props.get("$ai_lib") == "hogtrace":
        return None  # our own events: already complete
    state = _config.state
    scope = current_scope()
    if scope is not None and scope.trace_id is not None:
        _rewrite(msg, props, event, scope, state.config.distinct_id)
    return state.capture


def _rewrite(
    msg: dict[str, Any], props: dict[str, Any], event: str, scope: Scope, default: str | None
) -> None:
    original_trace = props.get("$ai_trace_id")
    props["$ai_trace_id"] = scope.trace_id
    span_id = props.get("$ai_span_id")
    if not span_id:
        span_id = props["$ai_span_id"] = new_id()
    parent = props.get("$ai_parent_id")
    if event == "$ai_trace":
        # A framework's own root (LangChain's root chain) becomes a span of our trace.
        msg["event"] = "$ai_span"
        props["$ai_parent_id"] = scope._children_parent
    elif parent is None or parent == span_id:
        props["$ai_parent_id"] = scope._children_parent
    # else: its parent is another run of the same framework, itself re-parented under us.
    if scope.session_id is not None:
        props.setdefault("$ai_session_id", scope.session_id)
    distinct = scope.distinct_id or default
    if (
        msg.get("distinct_id") in (None, original_trace)
        and props.get("$process_person_profile") is False
    ):
        if distinct is not None:
            msg["distinct_id"] = distinct
            del props["$process_person_profile"]
        else:
            msg["distinct_id"] = scope.trace_id
    if event in ("$ai_generation", "$ai_embedding"):
        scope._add(4, 1)
        for index, key in _TOKENS:
            value = props.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                scope._add(index, value)
        cost = props.get("$ai_total_cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            scope._add(3, float(cost))
        if props.get("$ai_is_error"):
            scope._add(5, 1)


def install(client: Any) -> None:
    """Chain hogtrace's hook in front of ``client.before_send`` (once)."""
    try:
        current = getattr(client, "before_send", None)
        if isinstance(current, _BeforeSend):
            return
        client.before_send = _BeforeSend(current)
    except Exception as err:
        log_internal_error("installing the before_send hook", err)


def uninstall(client: Any) -> None:
    """Put the client's own ``before_send`` back."""
    current = getattr(client, "before_send", None)
    if isinstance(current, _BeforeSend):
        try:
            client.before_send = current.previous
        except Exception as err:
            log_internal_error("removing the before_send hook", err)
