"""Celery: a task sent from inside a hogtrace scope runs as a child of the span that sent it.

One line, once, in the code that both the sender and the worker import::

    import hogtrace.celery

    hogtrace.celery.instrument()  # or instrument(app) to trace only that app's tasks

It connects four Celery signals (task signatures do not change):

- ``before_task_publish``: ``hogtrace.inject()`` puts the current trace, span, session, distinct
  id and sampling decision into the message headers (``traceparent`` and ``baggage``).
- ``task_prerun``: the worker enters ``hogtrace.continue_trace(headers)`` and a trace named after
  the task (``task.name``). Sent from a scope, the task is a ``$ai_span`` child of the sending
  span, in its trace and session; sent from outside every scope, it is a trace of its own.
- ``task_failure`` / ``task_retry``: the exception is recorded on the task's scope.
- ``task_postrun``: the scope closes and its event is emitted.

A retry keeps its trace: each attempt is one span, the retried attempt carries the error that
caused the retry, and every later attempt is a sibling of the first under the sender (or, for a
task sent from outside any scope, a child of the first attempt). The handlers never raise into
Celery: a failure inside them is logged on the ``hogtrace`` logger and the task runs untraced.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import hogtrace

__all__ = ["instrument", "is_instrumented", "uninstrument"]

log = logging.getLogger("hogtrace")

#: The message headers hogtrace writes and reads (W3C Trace Context and Baggage).
HEADERS = ("traceparent", "baggage")

_UID = "hogtrace.celery"
_lock = threading.Lock()
_options: _Options | None = None
# Open scopes of running tasks, by task id. Celery runs prerun, the task and postrun in one
# thread (or greenlet), so each ExitStack is closed in the context that entered it.
_running: dict[str, _Running] = {}
_running_lock = threading.Lock()


class _Options:
    __slots__ = ("app", "capture_input", "capture_output", "name")

    def __init__(
        self,
        app: Any,
        name: Callable[[Any], str] | None,
        capture_input: bool,
        capture_output: bool,
    ) -> None:
        self.app = app
        self.name = name
        self.capture_input = capture_input
        self.capture_output = capture_output


class _Running:
    __slots__ = ("carrier", "scope", "stack", "thread")

    def __init__(
        self, stack: contextlib.ExitStack, scope: hogtrace.Scope, carrier: dict[str, str]
    ) -> None:
        self.stack = stack
        self.scope = scope
        self.carrier = carrier
        self.thread = threading.get_ident()


def instrument(
    app: Any = None,
    *,
    name: Callable[[Any], str] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> None:
    """Trace Celery tasks across the queue: connect hogtrace's handlers to Celery's signals.

    Call it once in code that both the process sending tasks and the worker import (next to
    your ``Celery(...)`` app, for example). Calling it again replaces the options; it never
    connects a handler twice.

    Args:
        app: trace only the tasks of this ``Celery`` app (``None``: every app's tasks). Headers
            are added to every message either way; they are harmless to an untraced worker.
        name: the task scope's name from the task object (default: ``task.name``).
        capture_input: record the task's ``args`` and ``kwargs`` as ``$ai_input_state``.
        capture_output: record the task's return value as ``$ai_output_state``.

    Raises:
        ImportError: Celery is not installed (``pip install 'hogtrace[celery]'``).
    """
    signals = _signals()
    global _options
    with _lock:
        _options = _Options(app, name, capture_input, capture_output)
        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid=_UID)
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid=_UID)
        signals.task_failure.connect(_on_failure, weak=False, dispatch_uid=_UID)
        signals.task_retry.connect(_on_retry, weak=False, dispatch_uid=_UID)
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid=_UID)


def uninstrument() -> None:
    """Disconnect hogtrace's Celery handlers. Tasks already running still close their scopes."""
    signals = _signals()
    global _options
    with _lock:
        _options = None
        signals.before_task_publish.disconnect(dispatch_uid=_UID)
        signals.task_prerun.disconnect(dispatch_uid=_UID)
        signals.task_failure.disconnect(dispatch_uid=_UID)
        signals.task_retry.disconnect(dispatch_uid=_UID)
        # task_postrun stays connected until the tasks that are running have closed.
        if not _running:
            signals.task_postrun.disconnect(dispatch_uid=_UID)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _options is not None


# -- signal handlers -----------------------------------------------------------------------------


def _on_publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
    """``before_task_publish``: carry the current scope in the message headers."""
    if _options is None or not isinstance(headers, dict):
        return
    try:
        task_id = headers.get("id")
        running = _running.get(task_id) if isinstance(task_id, str) else None
        if running is not None and running.thread == threading.get_ident():
            # A retry of the running task: the next attempt is a sibling of this one under the
            # same sender (Celery copies the headers the attempt received). An attempt that
            # received none is the anchor: the next attempts are its children.
            if not any(k in headers for k in HEADERS):
                headers.update(hogtrace.inject())
            return
        hogtrace.inject(headers)
    except Exception:
        log.warning("hogtrace.celery: could not add trace headers to %r", sender, exc_info=True)


def _on_prerun(
    task_id: Any = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    """``task_prerun``: continue the sender's trace and open the task's scope."""
    options = _options
    if options is None or task is None or not isinstance(task_id, str):
        return
    if options.app is not None and getattr(task, "app", None) is not options.app:
        return
    stack = contextlib.ExitStack()
    try:
        request = getattr(task, "request", None)
        carrier = _carrier(request)
        name = options.name(task) if options.name is not None else str(task.name)
        properties: dict[str, Any] = {"celery_task_id": task_id}
        retries = getattr(request, "retries", None)
        if isinstance(retries, int):
            properties["celery_retries"] = retries
        stack.enter_context(hogtrace.continue_trace(carrier))
        scope = stack.enter_context(
            hogtrace.trace(
                name,
                properties=properties,
                capture_input=options.capture_input,
                capture_output=options.capture_output,
            )
        )
        if options.capture_input:
            scope.set_input({"args": list(args or ()), "kwargs": dict(kwargs or {})})
    except Exception:
        stack.close()
        log.warning("hogtrace.celery: could not open the scope of task %r", task, exc_info=True)
        return
    with _running_lock:
        previous = _running.pop(task_id, None)
        _running[task_id] = _Running(stack, scope, carrier)
    if previous is not None:  # a postrun that never came: close what it left open
        _close(previous)


def _on_failure(task_id: Any = None, exception: Any = None, **_: Any) -> None:
    """``task_failure``: record the exception on the task's scope."""
    _record_error(task_id, exception)


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    """``task_retry``: record why this attempt is retried on its scope."""
    # ``self.retry(exc=err)`` reports a ``Retry`` wrapping ``err``: record ``err`` itself.
    cause = getattr(reason, "exc", None)
    _record_error(getattr(request, "id", None), cause if cause is not None else reason)


def _on_postrun(task_id: Any = None, retval: Any = None, state: Any = None, **_: Any) -> None:
    """``task_postrun``: close the task's scope, which emits its event."""
    if not isinstance(task_id, str):
        return
    with _running_lock:
        running = _running.pop(task_id, None)
        drained = _options is None and not _running
    if running is not None:
        try:
            if isinstance(state, str):
                running.scope.set_properties(celery_state=state)
            if state == "SUCCESS" and _options is not None and _options.capture_output:
                running.scope.set_output(retval)
        except Exception:
            log.warning(
                "hogtrace.celery: could not record task %s's result", task_id, exc_info=True
            )
        _close(running)
    if drained:
        _signals().task_postrun.disconnect(dispatch_uid=_UID)


# -- helpers -------------------------------------------------------------------------------------


def _signals() -> Any:
    """``celery.signals``, imported when first needed (hogtrace does not require Celery)."""
    from celery import signals  # type: ignore[import-untyped,unused-ignore]

    return signals


def _carrier(request: Any) -> dict[str, str]:
    """The ``traceparent`` / ``baggage`` the task's message carried (empty when none)."""
    if request is None:
        return {}
    found: dict[str, str] = {}
    headers = getattr(request, "headers", None)
    for key in HEADERS:
        value = headers.get(key) if isinstance(headers, Mapping) else None
        if value is None:
            value = getattr(request, key, None)
        if isinstance(value, str):
            found[key] = value
    return found


def _record_error(task_id: Any, error: Any) -> None:
    running = _running.get(task_id) if isinstance(task_id, str) else None
    if running is None:
        return
    try:
        if isinstance(error, BaseException):
            running.scope.set_error(error)
        elif error is not None:
            running.scope.set_error(str(error))
    except Exception:
        log.warning("hogtrace.celery: could not record task %s's error", task_id, exc_info=True)


def _close(running: _Running) -> None:
    try:
        running.stack.close()
    except Exception:
        log.warning("hogtrace.celery: could not close a task's scope", exc_info=True)
