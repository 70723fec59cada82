"""Process-wide counters behind ``hogtrace.stats()``.

``itertools.count`` increments atomically under the GIL without a lock, which keeps the hot path
lock-free. Reading a count is rare (``stats()``): its ``repr()`` (``"count(5)"``) gives the
next value without taking it, so a read needs no lock either, and is safe in a signal handler
that interrupts another read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

__all__ = ["Counter", "stats_counters"]


class Counter:
    """A lock-free, thread-safe counter.

    Attributes:
        incr: add one. It is the count's own ``__next__``, a C method: counting an event costs
            no Python call.
    """

    __slots__ = ("_count", "incr")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.incr: Callable[[], object] = self._count.__next__

    def add(self, n: int) -> None:
        """Add ``n`` (at least 0)."""
        incr = self.incr
        for _ in range(n):
            incr()

    @property
    def value(self) -> int:
        """The count so far."""
        return int(repr(self._count)[6:-1])  # "count(5)"


class _Stats:
    __slots__ = ("dropped", "emitted", "failed", "redelivered", "undelivered")

    def __init__(self) -> None:
        self.emitted = Counter()
        self.dropped = Counter()
        self.failed = Counter()
        self.undelivered = Counter()
        #: Counted undelivered when a retired client was given up on, then delivered after all.
        self.redelivered = Counter()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, int]:
        return {
            "emitted": self.emitted.value,
            "dropped": self.dropped.value,
            "failed": self.failed.value,
            "undelivered": self.undelivered.value - self.redelivered.value,
        }


stats_counters = _Stats()
