"""Turn a closed scope into the PostHog event it stands for.

This runs off the calling thread (in the delivery worker) except under
``hogtrace.testing.capture_events()``, where it runs synchronously. It sees scopes only through
the read-only `ClosedScope` view. Content goes through the same steps everywhere: built-in
secret redaction, the user's ``redact`` hook, privacy mode, then the size limit.
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from hogtrace._errors import log_internal_error
from hogtrace._extract import PrintedRows, TextMessages
from hogtrace._limits import fit_event
from hogtrace._names import ANNOTATION_CONTENT, CONTENT_KEYS, CUT_KEYS, PRIVATE_CONTENT
from hogtrace._options import Config
from hogtrace._protocols import Annotation, ClosedScope
from hogtrace._redact import plain_messages_clean, redact_secrets, redact_text
from hogtrace._serialize import Head, thaw, to_json_safe
from hogtrace._version import __version__

__all__ = ["Event", "build_event", "error_type", "format_error"]


class Event(NamedTuple):
    """A PostHog event, as handed to ``posthog.Client.capture``."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime.datetime


def error_type(error: BaseException | str) -> str:
    """The exception's class name (``"Error"`` for a message)."""
    return type(error).__name__ if isinstance(error, BaseException) else "Error"


def format_error(error: BaseException | str, privacy: bool) -> str:
    """``"<ExceptionType>: <message>"`` (type only under privacy mode)."""
    if isinstance(error, BaseException):
        name = type(error).__name__
        if privacy:
            return name
        try:
            message = str(error)
        except Exception:  # an exception whose __str__ raises still gets its error event
            message = "<unprintable message>"
        return f"{name}: {message}" if message else name
    return "Error" if privacy else str(error)


def _prepare_content(
    content: dict[str, Any],
    config: Config,
    bounds: dict[str, tuple[Any, int]] | None = None,
    cut: list[str] | None = None,
) -> dict[str, Any]:
    """Redact ``content`` in place; plain messages (`TextMessages`) become their dicts.

    Messages without secrets, and no ``redact`` hook, have their size bound put in ``bounds``
    (for `fit_event`): their strings are known, so neither needs a walk over the dicts.
    Rows (`PrintedRows`) are printed as their messages and cut: the keys of those cut go in
    ``cut``.
    """
    hook = config.redact
    for key, value in content.items():
        if value is None:
            continue
        if type(value) is PrintedRows:  # rows of values, printed now as messages and cut
            limit, most = config.event_limit, config.max_items
            value = to_json_safe(Head(value.messages(), value.length), limit, most)
            if cut is not None and value and type(value[-1]) is str:  # (ends with a marker)
                cut.append(key)
        elif type(value) is TextMessages:
            messages = value.messages()
            if value.cut or value.size >= config.event_limit or value.items > config.max_items:
                # Cut now, as a snapshot would have been: the limits never see them whole.
                limit, most = config.event_limit, config.max_items
                messages = to_json_safe(Head(messages, value.length), limit, most)
            elif hook is None and plain_messages_clean(value.texts):
                content[key] = messages
                if bounds is not None:
                    bounds[key] = (messages, value.json_bound())
                continue
            value = messages
        value = redact_secrets(value)
        if hook is not None:
            try:
                value = hook(value)
            except Exception as err:
                # A failing user hook must not leak the unredacted value: send a marker.
                log_internal_error("the configure(redact=...) hook", err)
                value = "[redaction failed]"
        content[key] = value
    return content


#: Exact types of property values the client serialises as they are.
_PLAIN = frozenset({str, bool, type(None)})
_JS_INT = 2**53


def _json_safe_properties(props: dict[str, Any]) -> None:
    """Make the user's properties JSON-safe, in place.

    The client drops an event it cannot serialise (an integer too large for JSON, say) after
    ``capture()`` returned, with only a log line.
    """
    for key, value in props.items():
        kind = type(value)
        if kind in _PLAIN or (kind is int and -_JS_INT < value < _JS_INT):
            continue
        if kind is float and value == value and value not in (float("inf"), float("-inf")):
            continue
        props[key] = to_json_safe(value)


def _identify(distinct_id: str | None, fallback: str, props: dict[str, Any]) -> str:
    """The event's distinct id; with none known, ``fallback`` and a personless event."""
    if distinct_id is None:
        props["$process_person_profile"] = False
        return fallback
    return distinct_id


def build_event(
    scope: ClosedScope | Annotation, config: Config, max_bytes: int | None = None
) -> Event:
    """The ``$ai_*`` event for a closed scope, at most ``max_bytes`` of JSON (default: config)."""
    limit = config.max_event_bytes if max_bytes is None else max_bytes
    if isinstance(scope, Annotation):
        return _annotation_event(scope, config, limit)
    props: dict[str, Any] = {}
    if config.properties:
        props.update(config.properties)
    if scope.inherited:
        props.update(scope.inherited)
    own = scope.own_properties
    if own:
        props.update(own)
    if props:
        _json_safe_properties(props)
    trace_id = scope.trace_id
    assert trace_id is not None
    props["$ai_trace_id"] = trace_id
    props["$ai_span_id"] = scope.id
    if scope.parent_id is not None:
        props["$ai_parent_id"] = scope.parent_id
    props["$ai_span_name"] = scope.name
    props["$ai_latency"] = scope.latency
    session_id = scope.session_id
    if session_id is not None:
        props["$ai_session_id"] = session_id
    props["$ai_lib"] = "hogtrace"
    props["$ai_lib_version"] = __version__

    privacy = config.content_hidden
    content = scope.content()
    texts_cut: list[str] = []
    if scope.has_deferred:  # large numeric arrays and strings to make, copied on the call
        content = {key: thaw(value, texts_cut) for key, value in content.items()}
    error = scope.error
    if error is not None:
        content["$ai_error"] = format_error(error, privacy)
    if privacy:
        for key in PRIVATE_CONTENT:
            if key in content:
                content[key] = None
    bounds: dict[str, tuple[Any, int]] = {}
    props.update(_prepare_content(content, config, bounds, texts_cut))
    if error is not None:
        props["$ai_is_error"] = True
        props["$ai_error_type"] = error_type(error)
    scope.add_properties(props)
    base_url = props.get("$ai_base_url")
    if type(base_url) is str:
        props["$ai_base_url"] = redact_text(base_url)  # "https://user:pass@proxy/v1"

    # Personless: one person per conversation (the session), else per trace.
    distinct_id = _identify(scope.distinct_id or config.distinct_id, session_id or trace_id, props)
    props, truncated = fit_event(props, limit, CONTENT_KEYS, bounds)
    if truncated or texts_cut or (scope.cut and _cut_sent(scope.cut, content)):
        props["$ai_truncated"] = True
    assert scope.timestamp is not None
    return Event(scope.event_name, distinct_id, props, scope.timestamp)


def _cut_sent(cut: int, content: dict[str, Any]) -> bool:
    """Whether content cut at ``max_items`` (bits of ``cut``) is sent, not null nor left out."""
    for bit, keys in CUT_KEYS:
        if cut & bit and any(content.get(key) is not None for key in keys):
            return True
    return False


def _annotation_event(note: Annotation, config: Config, limit: int) -> Event:
    """``$ai_metric`` / ``$ai_feedback``: the payload, the trace and the session; nothing else."""
    props: dict[str, Any] = {**config.properties, **note.inherited, **note.payload}
    _json_safe_properties(props)  # a metric value of any type, say: never lost by the client
    props["$ai_trace_id"] = note.trace_id
    if note.session_id is not None:
        props["$ai_session_id"] = note.session_id
    props["$ai_lib"] = "hogtrace"
    props["$ai_lib_version"] = __version__
    if "$ai_feedback_text" in props:
        props.update(_prepare_content({"$ai_feedback_text": props["$ai_feedback_text"]}, config))
    distinct_id = _identify(
        note.distinct_id or config.distinct_id, note.session_id or note.trace_id, props
    )
    props, truncated = fit_event(props, limit, ANNOTATION_CONTENT)
    if truncated:
        props["$ai_truncated"] = True
    return Event(note.event_name, distinct_id, props, note.timestamp)
