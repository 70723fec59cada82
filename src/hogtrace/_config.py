"""``configure()``, ``reset()``, ``flush()``, ``shutdown()``: the functions that change the state.

They build the sinks and the PostHog client (through ``_posthog``), install the hook that
makes PostHog's own wrappers join scopes (``_interop``), and replace ``_state.state`` wholesale.
Every one of them returns within the configured ``shutdown_timeout``, whatever PostHog does.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from hogtrace import _posthog, _state
from hogtrace._errors import log_internal_error
from hogtrace._interop import install_when_needed, uninstall
from hogtrace._options import Config, default_config
from hogtrace._protocols import Capture, Sink
from hogtrace._redact import compile_patterns, set_secret_patterns
from hogtrace._sinks import (
    ClientLedger,
    ConsoleSink,
    DropSink,
    FanoutSink,
    PostHogSink,
    forget_settled,
    ledger_of,
)
from hogtrace._state import State, set_state
from hogtrace._stats import stats_counters

__all__ = [
    "configure",
    "end_capture",
    "end_hold_back",
    "hold_back",
    "flush",
    "reset",
    "shutdown",
    "start_capture",
]

log = logging.getLogger("hogtrace")

_lock = threading.RLock()  # serialises configure/reset/shutdown; never taken on the hot path
#: The flush at interpreter exit waits at most this long (PostHog's own exit hook waits 1 s).
_ATEXIT_TIMEOUT = 5.0


def _resolve_sink() -> Sink:
    """Build the sink for the current config (env vars may provide the client)."""
    with _lock:
        current = _state.state
        if current.sink is not None:
            return current.capture or current.sink
        config = current.config
        if config.client is None:
            api_key = os.environ.get("POSTHOG_API_KEY") or os.environ.get("POSTHOG_PROJECT_API_KEY")
            if api_key:
                client = _build_client(api_key, config.host or os.environ.get("POSTHOG_HOST"))
                config = dataclasses.replace(config, client=client, owns_client=True)
        sink = _make_sink(config)
        set_state(dataclasses.replace(current, config=config, sink=sink))
        return current.capture or sink


_state.set_resolver(_resolve_sink)


def _make_sink(config: Config) -> Sink:
    sinks: list[Sink] = []
    if config.console:
        # First: it reads the closed scope on the calling thread, before the PostHog sink queues
        # it for the worker, which builds its event and then releases its content.
        sinks.append(ConsoleSink(releases=config.client is None))
    if config.client is not None:
        client = config.client
        hooked = install_when_needed(client)
        sinks.append(
            PostHogSink(
                client,
                ai_lane=config.capture_ai,
                prepare=None if hooked else functools.partial(install_when_needed, client),
            )
        )
        _register_atexit()
    if not sinks:
        return DropSink()
    return sinks[0] if len(sinks) == 1 else FanoutSink(sinks)


def _build_client(api_key: str, host: str | None) -> Any:
    return _posthog.build_client(api_key, host, ClientLedger())


def _register_atexit() -> None:
    # atexit runs last-registered-first and the PostHog client registers its own exit hook (which
    # closes its queues) when it is created. Re-registering ours now puts it after every client
    # that exists so far, so our queue drains into a client that can still send.
    atexit.unregister(_atexit_flush)
    atexit.register(_atexit_flush)


def _atexit_flush() -> None:
    """At exit: deliver, within the bound, as ``shutdown()`` does (and counts and logs alike)."""
    try:
        _shutdown(min(_ATEXIT_TIMEOUT, _state.state.config.shutdown_timeout))
    except Exception:  # pragma: no cover - interpreter teardown
        log.debug("hogtrace: flush at exit failed", exc_info=True)


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def _check_type(name: str, value: Any, types: type | tuple[type, ...], allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, types) or (
        isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
    ):
        expected = (
            types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        )
        raise TypeError(f"hogtrace.configure(): {name} must be {expected}, got {value!r}")


def configure(
    client: Any = UNSET,
    *,
    api_key: str | None = UNSET,
    host: str | None = UNSET,
    distinct_id: str | None = UNSET,
    privacy_mode: bool = UNSET,
    redact: Callable[[Any], Any] | None = UNSET,
    max_event_bytes: int = UNSET,
    max_items: int = UNSET,
    sample_rate: float = UNSET,
    enabled: bool = UNSET,
    console: bool = UNSET,
    properties: Mapping[str, Any] | None = UNSET,
    capture_ai: bool | None = UNSET,
    shutdown_timeout: float = UNSET,
    redact_patterns: Iterable[str | re.Pattern[str]] | None = UNSET,
) -> None:
    """Set where events go and how. Only the options given change; the rest stay as they were.

    Args:
        client: a ``posthog.Posthog`` client. hogtrace flushes it but never shuts it down: you
            own it.
        api_key: build a client with this project API key (hogtrace owns and shuts it down).
        host: PostHog host for a client hogtrace builds (from ``api_key`` or
            ``POSTHOG_API_KEY``), e.g. ``https://eu.i.posthog.com``.
        distinct_id: default distinct id for events with none from a session or trace.
        privacy_mode: send inputs and outputs as ``null`` and errors as their type only.
        redact: ``fn(value) -> value`` applied to every captured content value.
        max_event_bytes: no event exceeds this many bytes of JSON; content is truncated with a
            visible marker to fit.
        max_items: a captured value keeps at most this many items (list, tuple and set items,
            array elements, dict entries, counted at every depth, each at what reading it
            costs: 1 for a plain value, 16 for an object such as a dataclass; default 5,000):
            a value with more is cut there with a visible marker, so that a huge one costs
            the calling thread a few milliseconds. At least 100.
        sample_rate: fraction of sessions (or traces outside sessions) to keep, 0.0 to 1.0.
        enabled: ``False`` turns every decorator into a pass-through.
        console: print each finished trace as a tree on stderr.
        properties: extra properties on every event.
        capture_ai: send through the client's AI lane (``capture_ai()``, posthog >= 7.39,
            up to 8 MiB per event); ``None`` follows the client's ``enable_full_ai_capture``.
        shutdown_timeout: ``shutdown()``, ``reset()`` and ``configure()`` return within this
            many seconds whatever PostHog does (default 10); what is not delivered by then is
            counted and logged.
        redact_patterns: regular expressions (strings or compiled) for secrets of your own:
            every match in any content string, error or feedback text becomes ``[REDACTED]``,
            besides the built-in patterns. ``None`` or ``()`` removes them.

    Example:
        ```py
        import posthog, hogtrace
        hogtrace.configure(posthog.Posthog("phc_...", host="https://us.i.posthog.com"))
        ```
    """
    if client is not UNSET and client is not None:
        if not callable(getattr(client, "capture", None)):
            raise TypeError(
                f"hogtrace.configure(): client must be a posthog client, got {client!r}"
            )
        if _posthog.is_async_client(client):
            raise TypeError(
                "hogtrace.configure(): AsyncPosthog cannot be hogtrace's destination (its queue"
                " belongs to an event loop; hogtrace delivers from a thread). Configure a"
                " posthog.Posthog client, and pass posthog_properties=hogtrace.posthog_properties()"
                " to PostHog wrappers that use the AsyncPosthog client."
            )
    strings: tuple[tuple[str, Any], ...] = (
        ("api_key", api_key),
        ("host", host),
        ("distinct_id", distinct_id),
    )
    for name, value in strings:
        if value is not UNSET:
            _check_type(name, value, str, allow_none=True)
    flags: tuple[tuple[str, Any], ...] = (
        ("privacy_mode", privacy_mode),
        ("enabled", enabled),
        ("console", console),
    )
    for name, value in flags:
        if value is not UNSET and not isinstance(value, bool):
            raise TypeError(f"hogtrace.configure(): {name} must be a bool, got {value!r}")
    if redact is not UNSET and redact is not None and not callable(redact):
        raise TypeError(f"hogtrace.configure(): redact must be callable, got {redact!r}")
    if max_event_bytes is not UNSET:
        _check_type("max_event_bytes", max_event_bytes, int, allow_none=False)
        if max_event_bytes < 1000:
            raise ValueError("hogtrace.configure(): max_event_bytes must be at least 1000")
    if max_items is not UNSET:
        _check_type("max_items", max_items, int, allow_none=False)
        if max_items < 100:
            raise ValueError("hogtrace.configure(): max_items must be at least 100")
    if sample_rate is not UNSET:
        _check_type("sample_rate", sample_rate, (int, float), allow_none=False)
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("hogtrace.configure(): sample_rate must be between 0.0 and 1.0")
    if capture_ai is not UNSET and capture_ai is not None and not isinstance(capture_ai, bool):
        raise TypeError(
            f"hogtrace.configure(): capture_ai must be a bool or None, got {capture_ai!r}"
        )
    if shutdown_timeout is not UNSET:
        _check_type("shutdown_timeout", shutdown_timeout, (int, float), allow_none=False)
        if shutdown_timeout < 0:
            raise ValueError("hogtrace.configure(): shutdown_timeout must be >= 0")
    patterns: tuple[re.Pattern[str], ...] | None = None
    if redact_patterns is not UNSET:
        patterns = _pattern_sources(redact_patterns)
    if properties is not UNSET and properties is not None and not isinstance(properties, Mapping):
        raise TypeError(f"hogtrace.configure(): properties must be a mapping, got {properties!r}")
    if client is not UNSET and client is not None and api_key not in (UNSET, None):
        raise ValueError("hogtrace.configure(): pass either client or api_key, not both")

    with _lock:
        old = _state.state.config
        changes: dict[str, Any] = {}
        if client is not UNSET:
            changes.update(client=client, owns_client=False)
        if host is not UNSET:
            changes["host"] = host  # also used for a client built from POSTHOG_API_KEY
        if api_key in (UNSET, None) and host is not UNSET and host != old.host:
            # A new host for a client hogtrace built: build it again, with the same key.
            api_key = getattr(old.client, "api_key", None) if old.owns_client else None
        if api_key not in (UNSET, None):
            new_host = host if host is not UNSET else old.host
            changes.update(client=_build_client(api_key, new_host), owns_client=True)
        options: tuple[tuple[str, Any], ...] = (
            ("distinct_id", distinct_id),
            ("privacy_mode", privacy_mode),
            ("redact", redact),
            ("max_event_bytes", max_event_bytes),
            ("max_items", max_items),
            ("sample_rate", sample_rate),
            ("enabled", enabled),
            ("console", console),
            ("capture_ai", capture_ai),
            ("shutdown_timeout", shutdown_timeout),
        )
        for name, value in options:
            if value is not UNSET:
                changes[name] = value
        if properties is not UNSET:
            changes["properties"] = MappingProxyType(dict(properties or {}))
        if patterns is not None:
            changes["redact_patterns"] = patterns
        new = dataclasses.replace(old, **changes)
        client_changed = "client" in changes and changes["client"] is not old.client
        rebuild = client_changed or "capture_ai" in changes
        retiring = _replace(new, retire_client=client_changed, rebuild=rebuild)
    # Outside the lock: scopes closing on other threads resolve the new sink meanwhile.
    _retire(*retiring)


def _pattern_sources(patterns: Any) -> tuple[re.Pattern[str], ...]:
    """``redact_patterns`` compiled, each with its own flags.

    Bad ones raise now (``re.error``, ``TypeError``, ``ValueError``), not when an event is built.
    """
    if patterns is None:
        return ()
    if isinstance(patterns, (str, re.Pattern)):
        patterns = (patterns,)
    try:
        return compile_patterns(patterns)
    except (TypeError, ValueError) as err:
        raise type(err)(f"hogtrace.configure(): redact_patterns: {err}") from None


_NOTHING_TO_RETIRE = (None, False)


def _sync_patterns(old: Config, new: Config) -> None:
    """Make the user's secret patterns in force those of ``new``."""
    if new.redact_patterns != old.redact_patterns:
        set_secret_patterns(new.redact_patterns)


def _replace(
    new: Config, *, retire_client: bool, rebuild: bool = False
) -> tuple[State | None, bool]:
    """Install ``new`` (keeping any active capture); return what `_retire` must stop."""
    old_state = _state.state
    _sync_patterns(old_state.config, new)
    if new.client is not None:
        install_when_needed(new.client)
    if old_state.capture is not None:
        # Inside hogtrace.testing.capture_events(): the old state comes back when the capture
        # ends, so nothing is retired now.
        set_state(State(config=new, sink=None, active=new.enabled, capture=old_state.capture))
        return _NOTHING_TO_RETIRE
    keep_sink = (
        old_state.sink is not None
        and not retire_client
        and not rebuild
        and new.console == old_state.config.console
    )
    set_state(
        State(
            config=new,
            sink=old_state.sink if keep_sink else None,
            active=new.enabled,
            capture=old_state.capture,
        )
    )
    if keep_sink:
        return _NOTHING_TO_RETIRE
    return old_state, retire_client


def _retire(old: State | None, retire_client: bool, timeout: float | None = None) -> None:
    """Flush and stop ``old``'s sink (and its client, if retired) within ``timeout`` seconds.

    ``timeout`` defaults to ``old``'s ``shutdown_timeout``.
    """
    if old is None:
        return
    deadline = _Deadline(old.config.shutdown_timeout if timeout is None else timeout)
    if old.sink is not None:
        old.sink.flush(timeout=deadline.left())
        old.sink.shutdown(deadline.left())
    if retire_client:
        _retire_client(old.config, deadline)


class _Deadline:
    """Seconds left of a bound shared by several steps."""

    def __init__(self, timeout: float) -> None:
        self.total = timeout
        self._end = time.monotonic() + timeout

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())


def _retire_client(config: Config, deadline: _Deadline) -> None:
    client = config.client
    if client is None:
        return
    try:
        _retire_client_now(client, config, deadline)
    except Exception as err:  # shutdown(), reset() and configure() never raise on its account
        log_internal_error("retiring the PostHog client", err)


def _retire_client_now(client: Any, config: Config, deadline: _Deadline) -> None:
    uninstall(client)
    if config.owns_client:
        _bounded(_posthog.shutdown_client, client, deadline.left(), "shutting down")
        ledger = ledger_of(client)
        if ledger is not None:
            # Not used again: what it still holds is counted now, and the queued part stopped.
            held = ledger.settle(client)
            if held:
                log.warning(
                    "hogtrace: the PostHog client did not finish sending within %.1f s"
                    " (PostHog unreachable?): %d events are not delivered. See"
                    " hogtrace.stats()['undelivered'].",
                    deadline.total,
                    held,
                )
    else:
        # The user's client keeps its queue and may still deliver it: logged, not counted.
        left = deadline.left()
        _bounded(_posthog.flush_client, client, left, "flushing", left)
        held = _posthog.unfinished(_posthog.lane_queues(client))
        if held:
            log.warning(
                "hogtrace: your PostHog client still holds %d events after %.1f s (PostHog"
                " unreachable?). It keeps them: they are sent if it gets to send them, and"
                " hogtrace does not count them (see the FAQ on hogtrace.stats()).",
                held,
                deadline.total,
            )


def _bounded(step: Callable[..., Any], client: Any, timeout: float, what: str, *args: Any) -> None:
    """Run a client step that may block (PostHog unreachable) for at most ``timeout`` seconds.

    It runs in a daemon thread; if it has not finished in time it is left to finish on its own.
    """

    def run() -> None:
        try:
            step(client, *args)
        except Exception:
            log.warning("hogtrace: %s the PostHog client failed", what, exc_info=True)

    thread = threading.Thread(target=run, name="hogtrace-client-stop", daemon=True)
    thread.start()
    thread.join(timeout)


def reset() -> None:
    """Return every option to its default and turn tracing back on (after ``shutdown()``)."""
    with _lock:
        retiring = _replace(default_config(), retire_client=True)
    _retire(*retiring)
    forget_settled()
    stats_counters.reset()


def flush(timeout: float | None = None) -> None:
    """Deliver every queued event to PostHog.

    Call it at the end of a short script, a serverless handler or a batch job (an exit hook
    also flushes at interpreter exit).

    Args:
        timeout: seconds to wait at most; ``None`` waits until the queue is delivered.

    Example:
        ```py
        handle(event)
        hogtrace.flush(timeout=5)
        ```
    """
    current = _state.state
    sink = current.capture or current.sink
    if sink is not None:
        sink.flush(timeout=timeout)


def shutdown() -> None:
    """Flush, stop, and make tracing a silent no-op until the next ``configure()`` / ``reset()``.

    A client hogtrace built is shut down; a client you passed in is flushed, not shut down.
    Returns within the configured ``shutdown_timeout`` (default 10 s) whatever PostHog does.
    """
    _shutdown(None)


def _shutdown(timeout: float | None) -> None:
    with _lock:
        current = _state.state
        config = dataclasses.replace(current.config, client=None, owns_client=False)
        set_state(State(config=config, sink=None, active=False, capture=current.capture))
    _retire(current, True, timeout)


def start_capture(capture: Capture) -> State:
    """Route events to ``capture`` (testing); returns the state to give back to ``end_capture``."""
    with _lock:
        previous = _state.state
        set_state(dataclasses.replace(previous, capture=capture, active=True))
        return previous


def hold_back(capture: Capture) -> Capture | None:
    """Route events to ``capture`` for good, tracing on or off as configured (pytest's default).

    Returns the destination it replaces, for `end_hold_back` (an outer pytest run's, when
    pytester runs pytest inside it).
    """
    with _lock:
        previous = _state.state.capture
        set_state(dataclasses.replace(_state.state, capture=capture))
        return previous


def end_hold_back(capture: Capture, previous: Capture | None = None) -> None:
    """Undo `hold_back` (if ``capture`` is still the destination): back to ``previous``."""
    with _lock:
        if _state.state.capture is capture:
            set_state(dataclasses.replace(_state.state, capture=previous))


def end_capture(previous: State) -> None:
    """Restore the configuration that was in place when the capture started."""
    with _lock:
        _sync_patterns(_state.state.config, previous.config)
        set_state(previous)


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time; the child gets a fresh one.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
