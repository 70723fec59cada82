"""Turn a closed scope into the PostHog event it stands for.

This runs off the calling thread (in the delivery worker) except under
``hogtrace.testing.capture_events()``, where it runs synchronously. Content goes through the same
steps everywhere: built-in secret redaction, the user's ``redact`` hook, privacy mode, then the
size limit.
"""

from __future__ import annotations

import datetime
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, NamedTuple

from hogtrace._errors import log_internal_error
from hogtrace._limits import fit_event
from hogtrace._redact import redact_secrets
from hogtrace._version import __version__

if TYPE_CHECKING:
    from hogtrace._config import Config
    from hogtrace._scope import AnnotationScope, GenerationScope, Scope

__all__ = ["CONTENT_KEYS", "Event", "build_event", "format_error"]

#: Properties that hold user content: redacted, nulled under privacy mode, truncated to fit.
CONTENT_KEYS = frozenset(
    {
        "$ai_input",
        "$ai_output_choices",
        "$ai_input_state",
        "$ai_output_state",
        "$ai_error",
        "$ai_tools",
    }
)
#: What may be cut to fit the size limit on ``$ai_metric`` / ``$ai_feedback``.
_ANNOTATION_CONTENT = frozenset({"$ai_feedback_text", "$ai_metric_value"})
_PRIVATE_CONTENT = ("$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state")


class Event(NamedTuple):
    """A PostHog event, as handed to ``posthog.Client.capture``."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime.datetime
    #: Properties whose values hogtrace built itself from JSON-safe snapshots (``to_json_safe``
    #: on the calling thread, then built-in redaction and truncation), so the PostHog client's
    #: ``clean()`` would only copy them unchanged (``_sinks`` skips that copy).
    safe_keys: AbstractSet[str] = frozenset()


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


def _prepare_content(content: dict[str, Any], config: Config) -> dict[str, Any]:
    hook = config.redact
    for key, value in content.items():
        if value is None:
            continue
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


def build_event(scope: Scope, config: Config) -> Event:
    """The ``$ai_*`` event for a closed scope."""
    if scope.kind == "annotation":
        return _annotation_event(scope, config)
    props: dict[str, Any] = {}
    if config.properties:
        props.update(config.properties)
    if scope._props:
        props.update(scope._props)
    if scope._own:
        props.update(scope._own)
    trace_id = scope.trace_id
    assert trace_id is not None
    props["$ai_trace_id"] = trace_id
    props["$ai_span_id"] = scope.id
    if scope.parent_id is not None:
        props["$ai_parent_id"] = scope.parent_id
    props["$ai_span_name"] = scope.name
    props["$ai_latency"] = scope.latency
    if scope.session_id is not None:
        props["$ai_session_id"] = scope.session_id
    props["$ai_lib"] = "hogtrace"
    props["$ai_lib_version"] = __version__

    privacy = config.content_hidden
    content = scope._content()
    if scope._error is not None:
        content["$ai_error"] = format_error(scope._error, privacy)
    if privacy:
        for key in _PRIVATE_CONTENT:
            if key in content:
                content[key] = None
    props.update(_prepare_content(content, config))
    # Content is JSON-safe by construction unless a user hook rewrote it.
    safe = content.keys() if config.redact is None else frozenset()
    if scope._error is not None:
        props["$ai_is_error"] = True

    generation_properties(scope, props)

    distinct_id = scope.distinct_id or config.distinct_id
    if distinct_id is None:
        distinct_id = trace_id
        props["$process_person_profile"] = False

    props, truncated = fit_event(props, config.max_event_bytes, CONTENT_KEYS)
    if truncated:
        props["$ai_truncated"] = True
    assert scope.timestamp is not None
    return Event(scope._event_name(), distinct_id, props, scope.timestamp, safe)


def _annotation_event(scope: Scope, config: Config) -> Event:
    """``$ai_metric`` / ``$ai_feedback``: the payload, the trace and the session; nothing else."""
    if TYPE_CHECKING:
        assert isinstance(scope, AnnotationScope)
    trace_id = scope.trace_id
    assert trace_id is not None
    assert scope.timestamp is not None
    props: dict[str, Any] = {**config.properties, **scope._props, **scope._payload}
    props["$ai_trace_id"] = trace_id
    if scope.session_id is not None:
        props["$ai_session_id"] = scope.session_id
    props["$ai_lib"] = "hogtrace"
    props["$ai_lib_version"] = __version__
    if "$ai_feedback_text" in props:
        text = _prepare_content({"$ai_feedback_text": props["$ai_feedback_text"]}, config)
        props.update(text)
    distinct_id = scope.distinct_id or config.distinct_id
    if distinct_id is None:
        distinct_id = trace_id
        props["$process_person_profile"] = False
    props, truncated = fit_event(props, config.max_event_bytes, _ANNOTATION_CONTENT)
    if truncated:
        props["$ai_truncated"] = True
    return Event(scope._event_name(), distinct_id, props, scope.timestamp)


def generation_properties(scope: Scope, props: dict[str, Any]) -> None:
    """Model, provider, tokens, costs and stream facts of generations and embeddings."""
    if scope.kind not in ("generation", "embedding"):
        return
    if TYPE_CHECKING:
        assert isinstance(scope, GenerationScope)
    if scope.model is not None:
        props["$ai_model"] = scope.model
    if scope.provider is not None:
        props["$ai_provider"] = scope.provider
    for key, count in scope.usage.items():
        props[f"$ai_{key}"] = count
    for key, cost in scope._cost.items():
        props[f"$ai_{key}"] = cost
    if scope.base_url is not None:
        props["$ai_base_url"] = scope.base_url
    if scope.kind == "embedding":
        return
    extracted = scope._extracted
    if extracted is not None:
        if extracted.stop_reason is not None:
            props["$ai_stop_reason"] = extracted.stop_reason
        if extracted.cache_reporting_exclusive is not None:
            props["$ai_cache_reporting_exclusive"] = extracted.cache_reporting_exclusive
    if scope.model_parameters:
        props["$ai_model_parameters"] = scope.model_parameters
    if scope.http_status is not None:
        props["$ai_http_status"] = scope.http_status
    elif scope._error is None and scope._extracted is not None:
        props["$ai_http_status"] = 200
    elif scope._error is not None:
        status = _status_of(scope._error)
        if status is not None:
            props["$ai_http_status"] = status
    props["$ai_stream"] = scope.stream
    ttft = scope.time_to_first_token
    if ttft is not None:
        props["$ai_time_to_first_token"] = ttft


def _status_of(error: object) -> int | None:
    for attr in ("status_code", "code", "status"):
        value = getattr(error, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
            return value
    return None
