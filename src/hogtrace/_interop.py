"""Make PostHog's own LLM wrappers join the enclosing hogtrace scope.

``posthog.ai.openai``, ``anthropic``, ``gemini`` and the LangChain ``CallbackHandler`` capture
their events through the configured client, whose ``before_send`` runs synchronously in the
calling thread (``posthog-reference.md`` §5.5, §7.3). A hook chained in front of the user's own
``before_send`` rewrites those events so they carry the scope's trace id, session id, parent
and distinct id, and adds their tokens to the scope's metrics. ``AsyncPosthog`` runs
``before_send`` later, in a worker task, where the scope is unknown: there the hook is not
installed and ``hogtrace.posthog_properties()`` is passed by hand.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

from hogtrace import _posthog, _state
from hogtrace._context import current_scope
from hogtrace._errors import log_internal_error
from hogtrace._generation import GenerationScope
from hogtrace._ids import new_id
from hogtrace._names import TREE_EVENTS, WRAPPER_CONTENT
from hogtrace._options import Config
from hogtrace._redact import redact_text
from hogtrace._scope import Scope

__all__ = ["install", "install_when_needed", "join_scope", "uninstall", "wrappers_loaded"]

log = logging.getLogger("hogtrace")

_ERROR_TYPE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*):")

#: A framework's root run (LangChain's root chain) and the runs directly below it are linked
#: through the framework's trace id, which hogtrace replaces by its own. The root becomes a
#: ``$ai_span`` with a fresh span id, and its children (emitted before it) point at that id:
#: (scope id, framework trace id) -> span id, dropped when the root arrives.
_ROOTS: dict[tuple[str, str], str] = {}
_ROOTS_LOCK = threading.Lock()
_MAX_ROOTS = 10_000


class _BeforeSend:
    """The ``before_send`` hook hogtrace installs on a configured client, in front of the user's."""

    def __init__(self, previous: Callable[[dict[str, Any]], Any] | None) -> None:
        self.previous = previous

    def __call__(self, msg: dict[str, Any]) -> Any:
        try:
            keep, wrapper = join_scope(msg)
        except Exception as err:
            log_internal_error("joining a PostHog wrapper event to its scope", err)
            keep, wrapper = True, False
        if not keep:
            return None  # inside a scope that sampling dropped: the trace is dropped whole
        previous = self.previous
        result = previous(msg) if previous is not None else msg
        if wrapper and isinstance(result, dict):
            try:
                if _state.state.destination().wrapper_event(result):
                    return None  # recorded by hogtrace.testing.capture_events(); never sent
            except Exception as err:
                log_internal_error("recording a PostHog wrapper event", err)
        return result


def join_scope(msg: dict[str, Any]) -> tuple[bool, bool]:
    """Rewrite a wrapper's ``$ai_*`` event in place.

    Returns:
        ``(keep, wrapper)``: whether the event may be sent, and whether it is an ``$ai_*``
        event of PostHog's own integrations (which the sink gets to see).
    """
    props = msg.get("properties")
    event = msg.get("event")
    if not isinstance(props, dict) or not isinstance(event, str):
        return True, False
    if event == "$exception":
        return not _hidden_wrapper_exception(props), False
    if not event.startswith("$ai_"):
        return True, False
    if props.get("$ai_lib") == "hogtrace":
        return True, False  # our own events, delivered by the sink's worker: already complete
    state = _state.state
    if event in TREE_EVENTS:
        scope = current_scope()
        if scope is not None and state.active:
            if not scope.sampled:
                return False, False
            _rewrite(msg, props, event, scope, state.config)
    return True, True


def _hidden_wrapper_exception(props: dict[str, Any]) -> bool:
    """True for a wrapper's ``$exception`` inside a hogtrace scope under privacy mode.

    LangChain's handler sends the run's error to error tracking with the run's properties
    (its input) and the exception's message and stack, which echo prompts and output. It
    does not under the client's own privacy mode; under hogtrace's, neither: dropped here.
    """
    if "$ai_trace_id" not in props or props.get("$ai_lib") == "hogtrace":
        return False
    state = _state.state
    return state.config.privacy_mode and state.active and current_scope() is not None


def _rewrite(
    msg: dict[str, Any], props: dict[str, Any], event: str, scope: Scope, config: Config
) -> None:
    trace_id = scope.trace_id
    original_trace = props.get("$ai_trace_id")
    if trace_id is not None:
        props["$ai_trace_id"] = trace_id
        span_id = props.get("$ai_span_id")
        parent = props.get("$ai_parent_id")
        here = scope.child_parent_id
        if event == "$ai_trace":
            # A framework's root becomes a span of our trace, under the current scope.
            msg["event"] = "$ai_span"
            if isinstance(original_trace, str) and original_trace:
                with _ROOTS_LOCK:
                    span_id = _ROOTS.pop((scope.id, original_trace), None) or span_id
            props["$ai_parent_id"] = here
        elif parent is None or parent == "" or parent == span_id:
            props["$ai_parent_id"] = here  # a wrapper call: a child of the current scope
        elif parent == original_trace and parent != here:
            props["$ai_parent_id"] = _root_span(scope.id, parent)
        # else: its parent is another run of the same framework, itself placed under us.
        if not span_id:
            span_id = new_id()
        props["$ai_span_id"] = span_id
    if scope.session_id is not None:
        props.setdefault("$ai_session_id", scope.session_id)
    for key, value in config.properties.items():
        props.setdefault(key, value)
    for key, value in scope.inherited.items():
        props.setdefault(key, value)
    _identify(msg, props, scope, config)
    base_url = props.get("$ai_base_url")
    if type(base_url) is str:
        props["$ai_base_url"] = redact_text(base_url)  # the wrappers send the client's as is
    if config.privacy_mode:
        _hide_content(props)
    _count(props, event, scope)


def _root_span(scope_id: str, framework_trace: str) -> str:
    """The span id the framework root of ``framework_trace`` will get under ``scope_id``."""
    key = (scope_id, framework_trace)
    with _ROOTS_LOCK:
        span_id = _ROOTS.get(key)
        if span_id is None:
            if len(_ROOTS) >= _MAX_ROOTS:  # roots that never arrived: forget the oldest
                del _ROOTS[next(iter(_ROOTS))]
            span_id = _ROOTS[key] = new_id()
        return span_id


def _identify(msg: dict[str, Any], props: dict[str, Any], scope: Scope, config: Config) -> None:
    """Give a personless wrapper event the scope's distinct id (the wrappers' fallback differs).

    With no user id the wrappers send ``$process_person_profile: false`` and a made-up
    distinct id (the trace id, a LangChain run id, or a random one). hogtrace's rule applies
    instead: the scope's (or configured) distinct id, else the session id or the trace id,
    still personless.
    """
    if props.get("$process_person_profile") is not False:
        return  # the wrapper was given a user: it wins
    distinct = scope.event_distinct_id or config.distinct_id
    if distinct is not None:
        msg["distinct_id"] = distinct
        del props["$process_person_profile"]
    elif scope.session_id is not None or scope.trace_id is not None:
        msg["distinct_id"] = scope.session_id or scope.trace_id


def _hide_content(props: dict[str, Any]) -> None:
    for key in WRAPPER_CONTENT:
        if key in props:
            props[key] = None
    error = props.get("$ai_error")
    if isinstance(error, str):
        match = _ERROR_TYPE.match(error)
        props["$ai_error"] = match.group(1) if match else "Error"


def _count(props: dict[str, Any], event: str, scope: Scope) -> None:
    if event in ("$ai_generation", "$ai_embedding"):
        # A wrapper call inside a hogtrace generation (directly, or in spans inside it) is the
        # model call: counted once.
        around: Scope | None = scope
        while around is not None and not isinstance(around, GenerationScope):
            around = around.parent
        if around is not None:
            around.wraps_model_call()
        cost = props.get("$ai_total_cost_usd")
        scope.count().add_generation(
            _tokens(props, "$ai_input_tokens"),
            _tokens(props, "$ai_output_tokens"),
            _tokens(props, "$ai_cache_read_input_tokens"),
            float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0,
        )
    if props.get("$ai_is_error"):
        scope.count().errors += 1


def _tokens(props: dict[str, Any], key: str) -> int:
    value = props.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: Imported by every PostHog LLM wrapper (OpenAI, Anthropic, Gemini, LangChain, Agents, ...).
_WRAPPERS_MODULE = "posthog.ai.utils"


def wrappers_loaded() -> bool:
    """True once any of PostHog's own LLM wrappers has been imported in this process."""
    return _WRAPPERS_MODULE in sys.modules


def install_when_needed(client: Any) -> bool:
    """Install the hook if PostHog's wrappers are in use; True once it is (or cannot be).

    The hook makes the client ``clean()`` every event a second time (posthog cleans what
    ``before_send`` returns), about 15% of the CPU a small event costs: it is installed only
    in processes that import a wrapper. Called on ``configure()`` and, until it returns True,
    before each delivery; until then `_ImportWatch` installs it the moment a wrapper module
    is imported, before the wrapper's first call can be captured unjoined.
    """
    if not wrappers_loaded():
        _watch.client = client
        meta_path: list[Any] | None = sys.meta_path  # None at interpreter teardown
        if meta_path is None:  # interpreter teardown: nothing will be imported any more
            return True
        if _watch not in meta_path:
            meta_path.insert(0, _watch)
        return False
    _unwatch()
    install(client)
    return True


class _ImportWatch:
    """A ``sys.meta_path`` entry that installs the hook when PostHog's wrappers are imported.

    It finds nothing itself (returns None for every module, so imports go on as before) and
    removes itself once it has seen the wrappers' shared module.
    """

    client: Any = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == _WRAPPERS_MODULE:
            client, self.client = self.client, None
            _unwatch()
            if client is not None:
                install(client)


_watch = _ImportWatch()


def _unwatch() -> None:
    _watch.client = None
    meta_path: list[Any] | None = sys.meta_path  # None at interpreter teardown
    if meta_path is not None and _watch in meta_path:
        meta_path.remove(_watch)


def install(client: Any) -> None:
    """Chain hogtrace's hook in front of ``client.before_send`` (once)."""
    try:
        current = getattr(client, "before_send", None)
        if isinstance(current, _BeforeSend):
            return
        if _posthog.is_async_client(client):
            log.info(
                "hogtrace: %s runs before_send in a worker, so PostHog's LLM wrappers cannot"
                " join scopes automatically; pass posthog_properties=hogtrace.posthog_properties()",
                type(client).__name__,
            )
            return
        client.before_send = _BeforeSend(current)
    except Exception as err:
        log_internal_error("installing the before_send hook", err)


def uninstall(client: Any) -> None:
    """Put the client's own ``before_send`` back (and stop waiting to install the hook)."""
    if _watch.client is client:
        _unwatch()
    current = getattr(client, "before_send", None)
    if isinstance(current, _BeforeSend):
        try:
            client.before_send = current.previous
        except Exception as err:
            log_internal_error("removing the before_send hook", err)
