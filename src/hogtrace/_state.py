"""The process-wide tracing state: the current options, the sink, and whether tracing is on.

``state`` is replaced wholesale (``_config`` does it); readers take one reference and never see
a half-updated configuration. Decorators run at import time, before ``configure()``, so the
sink is looked up when a scope closes (late binding), and built on first use by the resolver
``_config`` registers (environment variables may name a client).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from hogtrace._options import Config, default_config
from hogtrace._protocols import Capture, Sink

__all__ = ["State", "forks", "set_resolver", "set_state", "state"]


def _unresolved() -> Sink:
    raise RuntimeError("hogtrace: no sink resolver registered (hogtrace._config not imported)")


_resolve: Callable[[], Sink] = _unresolved


@dataclasses.dataclass(frozen=True)
class State:
    """What a closing scope reads: the config, the sink and whether tracing is on at all."""

    config: Config
    sink: Sink | None  # None: resolve on first use
    active: bool
    capture: Capture | None = None  # hogtrace.testing.capture_events() overrides the destination

    def destination(self) -> Sink:
        """The sink events go to now, resolving the configured one on first use."""
        if self.capture is not None:
            return self.capture
        if self.sink is not None:
            return self.sink
        return _resolve()


_default = default_config()
state = State(config=_default, sink=None, active=_default.enabled)


def set_state(new: State) -> None:
    """Install ``new`` as the current state."""
    global state
    state = new


def set_resolver(resolve: Callable[[], Sink]) -> None:
    """Register the function that builds the configured sink on first use (``_config``)."""
    global _resolve
    _resolve = resolve


#: How many forks this process descends from: a scope opened before a fork is the parent's to
#: emit, never the child's (the child inherits the open ``with`` blocks and their exits).
forks = 0


def _count_fork() -> None:
    global forks
    forks += 1


os.register_at_fork(after_in_child=_count_fork)
