"""Celery: a task sent from inside a hogtrace scope runs as a child of the span that sent it.

One line, once, in the code that both the sender and the worker import::

    import hogtrace.celery

    hogtrace.celery.instrument()  # or instrument(app) to trace only that app's tasks

It connects five Celery signals (task signatures do not change):

- ``before_task_publish``: ``hogtrace.inject()`` puts the current trace, span, session, distinct
  id and sampling decision into the message headers (``traceparent`` and ``baggage``).
- ``task_prerun``: the worker enters ``hogtrace.continue_trace(headers)`` and a trace named after
  the task (``task.name``). Sent from a scope, the task is a ``$ai_span`` child of the sending
  span, in its trace and session; sent from outside every scope, it is a trace of its own.
- ``task_failure`` / ``task_retry``: the exception is recorded on the task's scope.
- ``task_postrun``: the scope closes and its event is emitted.
- ``worker_process_shutdown``: a pool child about to exit (without exit hooks) delivers.

A retry keeps its trace: each attempt is one span, the retried attempt carries the error that
caused the retry, and every later attempt is a sibling of the first under the sender (or, for a
task sent from outside any scope, a child of the first attempt). The handlers never raise into
Celery: a failure inside them is logged on the ``hogtrace`` logger and the task runs untraced.
"""

from __future__ import annotations

import contextlib
import logging
import sys
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
# Open scopes of running tasks, by task id and thread. Celery runs prerun, the task and postrun
# in one thread (or greenlet), so each ExitStack is closed in the context that entered it. A
# retry reuses the task id: in a thread pool it may start in another thread before the first
# attempt has finished, and applied eagerly it runs inside the first attempt (a stack).
_running: dict[tuple[str, int], list[_Running]] = {}
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
    __slots__ = ("carrier", "scope", "stack")

    def __init__(
        self, stack: contextlib.ExitStack, scope: hogtrace.Scope, carrier: dict[str, str]
    ) -> None:
        self.stack = stack
        self.scope = scope
        self.carrier = carrier


def _key(task_id: str) -> tuple[str, int]:
    return task_id, threading.get_ident()


def _current(task_id: Any) -> _Running | None:
    """The innermost attempt of ``task_id`` running in this thread."""
    if not isinstance(task_id, str):
        return None
    attempts = _running.get(_key(task_id))
    return attempts[-1] if attempts else None


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
        signals.worker_process_shutdown.connect(_on_process_exit, weak=False, dispatch_uid=_UID)


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
        signals.worker_process_shutdown.disconnect(dispatch_uid=_UID)
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
        if _current(headers.get("id")) is not None:
            # A retry of the running task: the next attempt is a sibling of this one under the
            # same sender (Celery copies the headers the attempt received). An attempt that
            # received no trace (none, or only a session or the user's own baggage) is the
            # anchor: the next attempts are its children.
            if "traceparent" not in headers:
                hogtrace.inject(headers)
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
    eager = getattr(request, "is_eager", False) is True
    stale: list[_Running] = []
    with _running_lock:
        attempts = _running.setdefault(_key(task_id), [])
        if not eager:  # a postrun that never came: close what it left open
            stale, attempts[:] = attempts[:], []
        attempts.append(_Running(stack, scope, carrier))
    for previous in stale:
        _close(previous)


def _on_failure(task_id: Any = None, exception: Any = None, **_: Any) -> None:
    """``task_failure``: record the exception on the task's scope."""
    _record_error(task_id, exception)


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    """``task_retry``: record why this attempt is retried on its scope."""
    _record_error(getattr(request, "id", None), _cause(reason))


def _cause(reason: Any) -> Any:
    """``self.retry(exc=err)`` reports a ``Retry`` wrapping ``err``: ``err`` itself."""
    cause = getattr(reason, "exc", None)
    return cause if cause is not None else reason


def _on_postrun(task_id: Any = None, retval: Any = None, state: Any = None, **_: Any) -> None:
    """``task_postrun``: close the task's scope, which emits its event."""
    if not isinstance(task_id, str):
        return
    running = None
    with _running_lock:
        attempts = _running.get(_key(task_id))
        if attempts:
            running = attempts.pop()
            if not attempts:
                del _running[_key(task_id)]
        drained = _options is None and not _running
    if running is not None:
        try:
            if state is None:
                state = _propagated(running)
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


def _propagated(running: _Running) -> str | None:
    """The state of an eager task whose exception Celery re-raises (``task_eager_propagates``).

    Celery then sends neither ``task_failure`` nor ``task_retry``, and ``task_postrun``
    without a state, from the ``finally`` the exception passes through.
    """
    error = sys.exc_info()[1]
    if error is None:
        return None
    retry = type(error).__name__ == "Retry"
    cause = _cause(error) if retry else error
    running.scope.set_error(cause if isinstance(cause, BaseException) else str(cause))
    return "RETRY" if retry else "FAILURE"


def _on_process_exit(**_: Any) -> None:
    """``worker_process_shutdown``: a pool child exits without exit hooks; deliver first.

    A prefork child recycled by ``worker_max_tasks_per_child`` (or a pool shrinking) leaves
    through ``os._exit``: bounded by ``configure(shutdown_timeout=...)``.
    """
    try:
        hogtrace.shutdown()
    except Exception:
        log.warning("hogtrace.celery: could not deliver events at process exit", exc_info=True)


def _record_error(task_id: Any, error: Any) -> None:
    running = _current(task_id)
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
