"""Render events as indented trace trees (the console sink and ``hogtrace.testing`` share it).

The tree is built the way PostHog's UI builds it: node id = ``$ai_span_id``, parent =
``$ai_parent_id`` (else the trace id); a node whose parent is not among the events is a root.
``$ai_metric`` and ``$ai_feedback`` hang under their trace.

One line per event, e.g.::

    answer [trace, session conv-1]
    ├── retrieve [span]
    ├── chat [generation, gpt-4o, tokens in=12 out=5]
    ├── check [span] ✗ ValueError: bad input
    └── metric relevance=0.9

The output holds no ids, no timestamps and (unless asked) no latencies, so it is the same on
every run and can be compared to a literal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

__all__ = ["label", "render_tree"]

_KINDS = {
    "$ai_trace": "trace",
    "$ai_span": "span",
    "$ai_generation": "generation",
    "$ai_embedding": "embedding",
    "$ai_metric": "metric",
    "$ai_feedback": "feedback",
}
_ANNOTATIONS = ("$ai_metric", "$ai_feedback")
#: Longest error text shown on a line; the full text is in the event's ``$ai_error``.
_MAX_ERROR = 200


class _EventLike(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def properties(self) -> Mapping[str, Any]: ...


def _one_line(value: object, limit: int | None = None) -> str:
    """``value`` as text on one line (control characters escaped), cut at ``limit`` chars."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def label(event: _EventLike, *, show_latency: bool = False, show_session: bool = True) -> str:
    """One event as a line: name, ``[kind, span type, model, tokens, session]``, error mark."""
    props = event.properties
    kind = _KINDS.get(event.event, event.event)
    if event.event == "$ai_metric":
        text = f"metric {_one_line(props.get('$ai_metric_name'))}="
        return text + _one_line(repr(props.get("$ai_metric_value")))
    if event.event == "$ai_feedback":
        return f"feedback {_one_line(repr(props.get('$ai_feedback_text')))}"
    name = props.get("$ai_span_name") or props.get("$ai_model") or kind
    details = [kind]
    span_type = props.get("$ai_span_type")
    if isinstance(span_type, str) and span_type:
        details.append(_one_line(span_type))
    model = props.get("$ai_model")
    if model and model != name:
        details.append(_one_line(model))
    tokens = [
        f"{short}={props[key]}"
        for short, key in (("in", "$ai_input_tokens"), ("out", "$ai_output_tokens"))
        if props.get(key) is not None
    ]
    if tokens:
        details.append("tokens " + " ".join(tokens))
    if show_session and props.get("$ai_session_id") is not None:
        details.append(f"session {_one_line(props['$ai_session_id'])}")
    text = f"{_one_line(name)} [{', '.join(details)}]"
    latency = props.get("$ai_latency")
    if show_latency and isinstance(latency, (int, float)) and not isinstance(latency, bool):
        text += f" {latency * 1000:.1f} ms"
    if props.get("$ai_is_error"):
        text += f" ✗ {_one_line(props.get('$ai_error') or 'error', _MAX_ERROR)}"
    return text


def render_tree(
    events: Iterable[_EventLike],
    *,
    show_latency: bool = True,
    order: Callable[[_EventLike], Any] | None = None,
) -> str:
    """Render ``events`` as one indented tree per trace.

    Args:
        events: the events, in emission order.
        show_latency: add each scope's latency in milliseconds (the console does; tests don't).
        order: sort key for siblings and for roots (default: the order of ``events``).
            ``hogtrace.testing`` passes the order in which scopes opened, which reads like the
            code and does not depend on which of two concurrent siblings finished first.

    Returns:
        The lines joined by newlines (none at the end); ``""`` for no events.
    """
    nodes = list(events)
    if order is not None:
        keyed = sorted(enumerate(nodes), key=lambda pair: (order(pair[1]), pair[0]))
        nodes = [e for _, e in keyed]
    by_id: dict[str, _EventLike] = {}
    for e in nodes:
        span_id = e.properties.get("$ai_span_id")
        if isinstance(span_id, str) and e.event not in _ANNOTATIONS:
            by_id.setdefault(span_id, e)
    children: dict[int, list[_EventLike]] = {}
    parent_of: dict[int, _EventLike] = {}
    roots: list[_EventLike] = []
    for e in nodes:
        props = e.properties
        parent_key = props.get("$ai_parent_id") or props.get("$ai_trace_id")
        parent = by_id.get(parent_key) if isinstance(parent_key, str) else None
        if parent is None or parent is e:
            roots.append(e)
        else:
            children.setdefault(id(parent), []).append(e)
            parent_of[id(e)] = parent
    lines: list[str] = []
    seen: set[int] = set()

    def line(e: _EventLike) -> str:
        parent = parent_of.get(id(e))
        session = e.properties.get("$ai_session_id")
        # A session is shown where it starts: on a root, or where it differs from the parent's.
        show_session = parent is None or parent.properties.get("$ai_session_id") != session
        return label(e, show_latency=show_latency, show_session=show_session)

    def walk(e: _EventLike, prefix: str, last: bool, top: bool) -> None:
        seen.add(id(e))
        if top:
            lines.append(line(e))
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└── ' if last else '├── '}{line(e)}")
            child_prefix = prefix + ("    " if last else "│   ")
        kids = [k for k in children.get(id(e), ()) if id(k) not in seen]
        for i, kid in enumerate(kids):
            walk(kid, child_prefix, i == len(kids) - 1, False)

    # Roots of one trace stay together, in the order their trace first appears.
    trace_rank: dict[object, int] = {}
    for e in nodes:
        trace_rank.setdefault(e.properties.get("$ai_trace_id"), len(trace_rank))
    roots.sort(key=lambda e: trace_rank[e.properties.get("$ai_trace_id")])
    for root in roots:
        walk(root, "", True, True)
    # Events whose parents form a cycle (malformed foreign events) are never reached from a
    # root: show them as roots rather than lose them.
    for e in nodes:
        if id(e) not in seen:
            parent_of.pop(id(e), None)
            walk(e, "", True, True)
    return "\n".join(lines)
