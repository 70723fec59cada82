"""The options schema: what ``configure()`` sets, as one immutable value.

Only data and its defaults live here (the process state that holds the current options is
``_state``; the functions that change it are ``_config``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from hogtrace._posthog import AI_LANE_LIMIT, uses_ai_lane

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "Config",
    "default_config",
    "env_flag",
]

#: Below PostHog's 900 KiB per-event limit on ``/batch/``, with room for the client's own keys.
DEFAULT_MAX_EVENT_BYTES = 800_000
#: A captured value keeps at most this many items (list items and dict entries, at any depth):
#: reading and copying each costs the calling thread ~1 µs, so this bounds what a huge value of
#: small items costs it (~5 ms), as the event size bounds a value of large ones.
DEFAULT_MAX_ITEMS = 5_000
#: ``shutdown()``, ``reset()`` and ``configure()`` return within this many seconds.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


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
    max_items: int = DEFAULT_MAX_ITEMS
    sample_rate: float = 1.0
    enabled: bool = True
    console: bool = False
    properties: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)
    #: Send through the client's AI lane (``capture_ai``); ``None``: as the client is set up.
    capture_ai: bool | None = None
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    #: The user's own secret patterns (regex sources), besides the built-in ones.
    redact_patterns: tuple[re.Pattern[str], ...] = ()

    #: Privacy mode from hogtrace or from the PostHog client's own ``privacy_mode`` (derived).
    content_hidden: bool = dataclasses.field(init=False, default=False)
    #: The size an event may have: ``max_event_bytes``, or the AI lane's when events go there
    #: and ``max_event_bytes`` was left at its default (derived). Snapshots stop there.
    event_limit: int = dataclasses.field(init=False, default=DEFAULT_MAX_EVENT_BYTES)

    def __post_init__(self) -> None:
        hidden = self.privacy_mode or bool(getattr(self.client, "privacy_mode", False))
        object.__setattr__(self, "content_hidden", hidden)
        limit = self.max_event_bytes
        default = limit == DEFAULT_MAX_EVENT_BYTES
        if default and self.client is not None and uses_ai_lane(self.client, self.capture_ai):
            limit = AI_LANE_LIMIT
        object.__setattr__(self, "event_limit", limit)


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment variable.

    ``1``, ``true``, ``yes``, ``on`` and ``0``, ``false``, ``no``, ``off`` (any case, spaces
    around) are understood; unset, empty or anything else is ``default`` (anything else with a
    warning).
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        logging.getLogger("hogtrace").warning(
            "hogtrace: %s=%r is not understood (use 1/true/yes/on or 0/false/no/off); using %s",
            name,
            raw,
            "on" if default else "off",
        )
    return default


def default_config() -> Config:
    """The defaults, with ``HOGTRACE_CONSOLE`` and ``HOGTRACE_ENABLED`` applied."""
    return Config(
        console=env_flag("HOGTRACE_CONSOLE", False),
        enabled=env_flag("HOGTRACE_ENABLED", True),
    )
