"""The internal-error guard: hogtrace never breaks the host program.

Errors inside hogtrace are logged on the ``hogtrace`` logger (the first one of each kind with a
traceback, repeats at DEBUG), counted in ``stats()["failed"]`` where an event was lost, and never
reach the user's code. hogtrace's own test suite sets ``STRICT`` so that bugs surface.
"""

from __future__ import annotations

import logging

__all__ = ["STRICT", "log_internal_error"]

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
