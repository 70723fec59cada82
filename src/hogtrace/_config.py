"""Configuration and the process-wide tracing state.

Decorators run at import time, before ``configure()``, so everything here is looked up when a
scope closes (late binding). ``state`` is replaced wholesale by ``configure()`` / ``reset()`` /
``shutdown()``; readers take one reference and never see a half-updated configuration.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from hogtrace._sinks import ConsoleSink, DropSink, FanoutSink, PostHogSink, Sink
from hogtrace._stats import stats_counters

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Config",
    "State",
    "configure",
    "flush",
    "reset",
    "shutdown",
    "state",
]

log = logging.getLogger("hogtrace")

#: Below PostHog's 900 KiB per-event limit on ``/batch/``, with room for the client's own keys.
DEFAULT_MAX_EVENT_BYTES = 800_000

_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: ``shutdown()`` waits at most this long for queued events (PostHog may be down).
SHUTDOWN_FLUSH_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Where events go and how they are prepared. Immutable: ``configure()`` makes a new one."""

    client: Any = None
    owns_client: bool = False
    host: str | None = None
    distinct_id: str | None = None
    privacy_mode: bool = False
    redact: Callable[[Any], Any] | None = None
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    sample_rate: float = 1.0
    enabled: bool = True
    console: bool = False
    properties: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)

    #: Privacy mode from hogtrace or from the PostHog client's own ``privacy_mode`` (derived).
    content_hidden: bool = dataclasses.field(init=False, default=False)

    def __post_init__(self) -> None:
        hidden = self.privacy_mode or bool(getattr(self.client, "privacy_mode", False))
        object.__setattr__(self, "content_hidden", hidden)


@dataclasses.dataclass(frozen=True)
class State:
    """What a closing scope reads: the config, the sink and whether tracing is on at all."""

    config: Config
    sink: Sink | None  # None: resolve on first use (env vars may name a client)
    active: bool
    capture: Sink | None = None  # hogtrace.testing.capture_events() overrides the destination

    def destination(self) -> Sink:
        """The sink events go to now, resolving the configured one on first use."""
        if self.capture is not None:
            return self.capture
        if self.sink is not None:
            return self.sink
        return _resolve_sink()


def _default_config() -> Config:
    flag = os.environ.get("HOGTRACE_CONSOLE", "").strip().lower()
    return Config(console=flag not in ("", "0", "false", "no", "off"))


state = State(config=_default_config(), sink=None, active=True)
_lock = threading.RLock()  # serialises configure/reset/shutdown; never taken on the hot path


def _set_state(new: State) -> None:
    global state
    state = new


def _resolve_sink() -> Sink:
    """Build the sink for the current config (env vars may provide the client)."""
    with _lock:
        current = state
        if current.sink is not None:
            return current.capture or current.sink
        config = current.config
        if config.client is None:
            api_key = os.environ.get("POSTHOG_API_KEY") or os.environ.get("POSTHOG_PROJECT_API_KEY")
            if api_key:
                client = _build_client(api_key, config.host or os.environ.get("POSTHOG_HOST"))
                config = dataclasses.replace(config, client=client, owns_client=True)
        sink = _make_sink(config)
        _set_state(dataclasses.replace(current, config=config, sink=sink))
        return current.capture or sink


def _make_sink(config: Config) -> Sink:
    sinks: list[Sink] = []
    if config.client is not None:
        from hogtrace._interop import install  # the hook reads scopes: a layer above config

        install(config.client)
        sinks.append(PostHogSink(config.client))
        _register_atexit()
    if config.console:
        sinks.append(ConsoleSink())
    if not sinks:
        return DropSink()
    return sinks[0] if len(sinks) == 1 else FanoutSink(sinks)


def _build_client(api_key: str, host: str | None) -> Any:
    import posthog

    return posthog.Posthog(api_key, host=host) if host else posthog.Posthog(api_key)


def _register_atexit() -> None:
    # atexit runs last-registered-first and the PostHog client registers its own exit hook (which
    # closes its queues) when it is created. Re-registering ours now puts it after every client
    # that exists so far, so our queue drains into a client that can still send.
    atexit.unregister(_atexit_flush)
    atexit.register(_atexit_flush)


def _atexit_flush() -> None:
    try:
        flush(timeout=5.0)
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
    sample_rate: float = UNSET,
    enabled: bool = UNSET,
    console: bool = UNSET,
    properties: Mapping[str, Any] | None = UNSET,
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
        sample_rate: fraction of sessions (or traces outside sessions) to keep, 0.0 to 1.0.
        enabled: ``False`` turns every decorator into a pass-through.
        console: print each finished trace as a tree on stderr.
        properties: extra properties on every event.

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
        if inspect.iscoroutinefunction(getattr(client, "flush", None)):
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
    if sample_rate is not UNSET:
        _check_type("sample_rate", sample_rate, (int, float), allow_none=False)
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("hogtrace.configure(): sample_rate must be between 0.0 and 1.0")
    if properties is not UNSET and properties is not None and not isinstance(properties, Mapping):
        raise TypeError(f"hogtrace.configure(): properties must be a mapping, got {properties!r}")
    if client is not UNSET and client is not None and api_key not in (UNSET, None):
        raise ValueError("hogtrace.configure(): pass either client or api_key, not both")

    with _lock:
        old = state.config
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
            ("sample_rate", sample_rate),
            ("enabled", enabled),
            ("console", console),
        )
        for name, value in options:
            if value is not UNSET:
                changes[name] = value
        if properties is not UNSET:
            changes["properties"] = MappingProxyType(dict(properties or {}))
        new = dataclasses.replace(old, **changes)
        client_changed = "client" in changes and changes["client"] is not old.client
        _replace(new, retire_client=client_changed)


def _replace(new: Config, *, retire_client: bool) -> None:
    """Install ``new`` (keeping any active capture) and retire the old sink."""
    old_state = state
    if new.client is not None:
        from hogtrace._interop import install

        install(new.client)
    if old_state.capture is not None:
        # Inside hogtrace.testing.capture_events(): the old state comes back when the capture
        # ends, so nothing is retired now.
        _set_state(State(config=new, sink=None, active=new.enabled, capture=old_state.capture))
        return
    if old_state.sink is not None and (retire_client or new.console != old_state.config.console):
        old_state.sink.flush(timeout=5.0)
        old_state.sink.shutdown()
    if retire_client:
        _retire_client(old_state.config)
    sink = (
        old_state.sink
        if old_state.sink is not None
        and not retire_client
        and new.console == old_state.config.console
        else None
    )
    _set_state(State(config=new, sink=sink, active=new.enabled, capture=old_state.capture))


def _retire_client(config: Config) -> None:
    if config.client is None:
        return
    from hogtrace._interop import uninstall

    uninstall(config.client)
    if config.owns_client:
        _shutdown_client(config.client)


def _shutdown_client(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:
        log.warning("hogtrace: shutting down the PostHog client failed", exc_info=True)


def reset() -> None:
    """Return every option to its default and turn tracing back on (after ``shutdown()``)."""
    with _lock:
        _replace(_default_config(), retire_client=True)
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
    current = state
    sink = current.capture or current.sink
    if sink is not None:
        sink.flush(timeout=timeout)


def shutdown() -> None:
    """Flush, stop, and make tracing a silent no-op until the next ``configure()`` / ``reset()``.

    A client hogtrace built is shut down; a client you passed in is flushed, not shut down.
    """
    with _lock:
        current = state
        if current.sink is not None:
            current.sink.flush(timeout=SHUTDOWN_FLUSH_TIMEOUT)
            current.sink.shutdown()
        _retire_client(current.config)
        if current.config.client is not None and not current.config.owns_client:
            try:
                current.config.client.flush()
            except Exception:
                log.warning("hogtrace: flushing the PostHog client failed", exc_info=True)
        config = dataclasses.replace(current.config, client=None, owns_client=False)
        _set_state(State(config=config, sink=None, active=False, capture=current.capture))


def start_capture(sink: Sink) -> State:
    """Route events to ``sink`` (testing); returns the state to give back to ``end_capture``."""
    with _lock:
        previous = state
        _set_state(dataclasses.replace(previous, capture=sink, active=previous.config.enabled))
        return previous


def end_capture(previous: State) -> None:
    """Restore the configuration that was in place when the capture started."""
    with _lock:
        _set_state(previous)


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time; the child gets a fresh one.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
