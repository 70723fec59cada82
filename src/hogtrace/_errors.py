"""The internal-error guard: hogtrace never breaks the host program.

Errors inside hogtrace are logged on the ``hogtrace`` logger (the first one of each kind with a
traceback, repeats at DEBUG), counted in ``stats()["failed"]`` where an event was lost, and never
reach the user's code. hogtrace's own test suite sets ``STRICT`` so that bugs surface.
"""

from __future__ import annotations

import logging
import time

__all__ = ["STRICT", "WARN_INTERVAL", "RateLimit", "log_internal_error"]

log = logging.getLogger("hogtrace")

#: Re-raise internal errors instead of logging them (hogtrace's own tests only).
STRICT = False

_seen: set[tuple[str, type[BaseException]]] = set()


def log_internal_error(where: str, exc: BaseException) -> None:
    """Log an internal error once per (place, exception type); re-raise in strict mode."""
    if STRICT:
        raise exc
    key = (where, type(exc))
    if key in _seen:
        log.debug("hogtrace internal error in %s: %r", where, exc)
        return
    _seen.add(key)
    log.error(
        "hogtrace internal error in %s (your code is unaffected; further ones are logged at DEBUG)",
        where,
        exc_info=exc,
    )


#: At most one warning of a kind per this many seconds (the rest go to DEBUG).
WARN_INTERVAL = 60.0


class RateLimit:
    """One warning per ``WARN_INTERVAL`` (the first at once); the rest are logged at DEBUG.

    For warnings driven by load or untrusted input (a full queue, malformed headers), which
    must not flood the application's log.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: float | None = None

    def ready(self) -> bool:
        """True if a warning may be logged now (and starts a new interval)."""
        now = time.monotonic()
        if self._last is not None and now - self._last < WARN_INTERVAL:
            return False
        self._last = now
        return True

    def warn(self, message: str, *args: object) -> None:
        """``log.warning`` if ready, else ``log.debug``."""
        if self.ready():
            log.warning(message, *args)
        else:
            log.debug(message, *args)
