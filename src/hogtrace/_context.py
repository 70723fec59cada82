"""The one ContextVar holding the innermost open scope.

Every scope records its parent when it opens, so the whole ambient state (trace, session,
distinct id, inherited properties, sampling) is reachable from the innermost scope and a single
``ContextVar`` is enough. asyncio tasks copy it when created; plain threads do not (see
``hogtrace.propagate``).
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hogtrace._scope import Scope

__all__ = ["attach", "current_scope", "detach", "reset"]

_log = logging.getLogger("hogtrace")

_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "hogtrace_current_scope", default=None
)

current_scope = _current.get
attach = _current.set
#: ``ContextVar.reset``: what `detach` tries first (decorated calls call it directly; on
#: ``ValueError`` they fall back to `detach`).
reset = _current.reset


def detach(token: contextvars.Token[Any], previous: Scope | None) -> None:
    """Reset ``token``; if it belongs to another context, restore ``previous`` instead.

    A token created in one context cannot be reset in another (an async generator finalised
    elsewhere, a ``with`` block spanning a ``yield`` resumed from a different context). That is
    logged, never raised.
    """
    try:
        _current.reset(token)
    except ValueError:
        _log.debug("hogtrace: scope closed in a different context than it was opened in")
        _current.set(previous)
