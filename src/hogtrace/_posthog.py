"""Everything hogtrace asks of the ``posthog`` package, through its public API only.

This is the only module that imports ``posthog``: building a client, reading the distinct id
of PostHog's ``identify_context()``, handing events to ``capture()`` / ``capture_ai()``,
``capture_exception()``, the client's queue (its public ``queue`` attribute), its flags, and the
per-event size limits of its two lanes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import posthog
from posthog.contexts import get_context_distinct_id

__all__ = [
    "AI_LANE_LIMIT",
    "ANALYTICS_LANE_LIMIT",
    "build_client",
    "capture",
    "capture_exception",
    "client_queue",
    "context_distinct_id",
    "enriched_size",
    "exception_already_captured",
    "flush_client",
    "has_room",
    "is_async_client",
    "shutdown_client",
    "uses_ai_lane",
    "wants_exception_capture",
]

try:
    from posthog.consumer import MAX_MSG_SIZE as ANALYTICS_LANE_LIMIT
except ImportError:  # pragma: no cover - every supported release has it
    ANALYTICS_LANE_LIMIT = 900 * 1024
try:
    from posthog.consumer import AI_MAX_MSG_SIZE as AI_LANE_LIMIT
except ImportError:  # posthog < 7.39: no AI lane
    AI_LANE_LIMIT = ANALYTICS_LANE_LIMIT


def build_client(
    api_key: str, host: str | None, on_error: Callable[[Exception, list[Any]], None] | None
) -> Any:
    """A batching ``posthog.Posthog`` client that hogtrace owns (and shuts down)."""
    kwargs: dict[str, Any] = {"on_error": on_error}
    if host:
        kwargs["host"] = host
    return posthog.Posthog(api_key, **kwargs)


def context_distinct_id() -> str | None:
    """The distinct id of PostHog's ``identify_context()``, if the caller set one."""
    try:
        value = get_context_distinct_id()
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def is_async_client(client: Any) -> bool:
    """True for ``posthog.AsyncPosthog`` (its queue belongs to an event loop)."""
    return inspect.iscoroutinefunction(getattr(client, "flush", None))


def uses_ai_lane(client: Any, choice: bool | None) -> bool:
    """Whether events go through ``capture_ai()``: as chosen, else as the client is set up."""
    if not callable(getattr(client, "capture_ai", None)):
        return False  # posthog < 7.39
    if choice is not None:
        return choice
    return getattr(client, "enable_full_ai_capture", False) is True


def wants_exception_capture(client: Any) -> bool:
    """True when the client has exception autocapture on (PostHog error tracking)."""
    return getattr(client, "enable_exception_autocapture", False) is True and callable(
        getattr(client, "capture_exception", None)
    )


def capture(
    client: Any,
    ai_lane: bool,
    event: str,
    distinct_id: str,
    properties: dict[str, Any],
    timestamp: Any,
) -> Any:
    """``client.capture()`` (or ``capture_ai()``); returns the event's uuid or ``None``."""
    send = client.capture_ai if ai_lane else client.capture
    return send(event, distinct_id=distinct_id, properties=properties, timestamp=timestamp)


def capture_exception(
    client: Any, exc: BaseException, distinct_id: str | None, properties: dict[str, Any]
) -> str | None:
    """``client.capture_exception()``: the ``$exception`` event's uuid, or ``None``."""
    result = client.capture_exception(exc, distinct_id=distinct_id, properties=properties)
    return result if isinstance(result, str) else None


def exception_already_captured(exc: BaseException) -> bool:
    """True if posthog already sent ``exc`` to error tracking (the app, or its excepthook)."""
    try:
        from posthog.exception_utils import exception_is_already_captured

        return bool(exception_is_already_captured(exc))
    except Exception:
        return False


def client_queue(client: Any) -> Any:
    """The client's analytics queue (``Client.queue``), or ``None`` (sync mode, a custom client)."""
    try:
        q = getattr(client, "queue", None)
    except Exception:
        return None
    if q is None or not callable(getattr(q, "full", None)):
        return None
    return q


def has_room(client: Any, count: int) -> bool:
    """Whether the client's queue takes ``count`` more events now (False: not known)."""
    q = client_queue(client)
    if q is None:
        return True
    try:
        size = q.maxsize
        return type(size) is int and (size <= 0 or q.qsize() + count <= size)
    except Exception:
        return False


def lane_queues(client: Any) -> list[Any]:
    """The client's queues: ``Client.queue`` and each consumer's (the AI lane has its own)."""
    queues: list[Any] = []
    try:
        candidates = [getattr(client, "queue", None)]
        candidates += [getattr(c, "queue", None) for c in getattr(client, "consumers", None) or ()]
    except Exception:
        return queues
    for q in candidates:
        if isinstance(getattr(q, "unfinished_tasks", None), int) and all(
            q is not x for x in queues
        ):
            queues.append(q)
    return queues


def unfinished(queues: list[Any]) -> int:
    """Events a client's ``queues`` hold: queued, or in a batch being sent."""
    return sum(q.unfinished_tasks for q in queues)


def discard_queued(queues: list[Any]) -> int:
    """Take every event still queued out of a retired client's ``queues``; how many."""
    discarded = 0
    for q in queues:
        while True:
            try:
                q.get_nowait()
            except Exception:  # queue.Empty
                break
            q.task_done()
            discarded += 1
    return discarded


def flush_client(client: Any, timeout: float | None) -> None:
    """``client.flush()``, bounded by ``timeout`` where the client supports it."""
    try:
        client.flush(timeout_seconds=timeout)
    except TypeError:  # releases without a timeout argument
        client.flush()


def shutdown_client(client: Any) -> None:
    """``client.shutdown()``."""
    client.shutdown()


def enriched_size(client: Any) -> int:
    """Bytes the client adds to each event after hogtrace measured it (an upper estimate).

    ``capture()`` adds ``$lib``, ``$lib_version``, ``$geoip_disable``, ``$is_server``, the
    system context, super properties, a uuid and the message's own keys; context tags vary per
    call and get a fixed allowance.
    """
    added: dict[str, Any] = {
        "$lib": "posthog-python",
        "$lib_version": getattr(posthog, "VERSION", "0.0.0"),
        "$geoip_disable": True,
        "$is_server": True,
        "$process_person_profile": False,
        "$release_id": "x" * 64,
    }
    # The system context ($os, $os_version, $python_version, ...: ~150 bytes) gets a fixed
    # allowance: computing it runs ``lsb_release`` through distro's cached property, whose
    # lock a fork at that moment leaves held in the child (and it costs ~25 ms, on the first
    # traced call's thread).
    added["$system_context"] = "x" * 512
    supers = getattr(client, "super_properties", None)
    if isinstance(supers, dict):
        added.update(supers)
    try:
        size = len(json.dumps(added, default=str))
    except Exception:
        size = 2048
    # uuid, timestamp, event/distinct_id/uuid keys, batch framing, and context tags.
    return size + 1024
