"""Render events as indented trace trees (the console sink and ``testing`` share it).

The tree is built the way PostHog's UI builds it: node id = ``$ai_span_id``, parent =
``$ai_parent_id`` (else the trace id); a node whose parent is not among the events is a root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = ["render_tree"]

_KINDS = {
    "$ai_trace": "trace",
    "$ai_span": "span",
    "$ai_generation": "generation",
    "$ai_embedding": "embedding",
    "$ai_metric": "metric",
    "$ai_feedback": "feedback",
}


class _EventLike(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def properties(self) -> Mapping[str, Any]: ...


def _label(event: _EventLike, show_latency: bool) -> str:
    props = event.properties
    kind = _KINDS.get(event.event, event.event)
    if kind == "metric":
        return f"metric {props.get('$ai_metric_name')}={props.get('$ai_metric_value')}"
    if kind == "feedback":
        return f"feedback {props.get('$ai_feedback_text')!r}"
    name = props.get("$ai_span_name") or props.get("$ai_model") or kind
    details = [kind]
    model = props.get("$ai_model")
    if model and model != name:
        details.append(str(model))
    if kind == "trace" and props.get("$ai_session_id"):
        details.append(f"session {props['$ai_session_id']}")
    tokens_in = props.get("$ai_input_tokens")
    tokens_out = props.get("$ai_output_tokens")
    if tokens_in is not None or tokens_out is not None:
        details.append(f"{_n(tokens_in)}→{_n(tokens_out)} tokens")
    label = f"{name} [{', '.join(details)}]"
    if show_latency and isinstance(props.get("$ai_latency"), (int, float)):
        label += f" {props['$ai_latency'] * 1000:.1f} ms"
    if props.get("$ai_is_error"):
        label += f" ✗ {props.get('$ai_error', 'error')}"
    return label


def _n(value: object) -> str:
    return "?" if value is None else str(value)


def render_tree(events: Iterable[_EventLike], *, show_latency: bool = True) -> str:
    """Render ``events`` as one indented tree per trace, in the order traces first appear."""
    nodes: list[_EventLike] = [e for e in events if e.event in _KINDS]
    ids: dict[str, _EventLike] = {}
    for e in nodes:
        span_id = e.properties.get("$ai_span_id")
        if isinstance(span_id, str) and e.event not in ("$ai_metric", "$ai_feedback"):
            ids.setdefault(span_id, e)
    children: dict[int, list[_EventLike]] = {}
    roots: list[_EventLike] = []
    for e in nodes:
        props = e.properties
        parent = props.get("$ai_parent_id") or props.get("$ai_trace_id")
        parent_event = ids.get(parent) if isinstance(parent, str) else None
        if parent_event is None or parent_event is e:
            roots.append(e)
        else:
            children.setdefault(id(parent_event), []).append(e)
    # Traces in order of first appearance; within a trace, roots in emission order.
    order: dict[object, int] = {}
    for e in nodes:
        order.setdefault(e.properties.get("$ai_trace_id"), len(order))
    roots.sort(key=lambda e: order.get(e.properties.get("$ai_trace_id"), 0))
    lines: list[str] = []

    def walk(e: _EventLike, prefix: str, last: bool, top: bool) -> None:
        if top:
            lines.append(_label(e, show_latency))
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(e, show_latency)}")
            child_prefix = prefix + ("    " if last else "│   ")
        kids = children.get(id(e), [])
        for i, kid in enumerate(kids):
            walk(kid, child_prefix, i == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return "\n".join(lines)
