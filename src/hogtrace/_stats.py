"""Process-wide counters behind ``hogtrace.stats()``.

``itertools.count`` increments atomically under the GIL without a lock, which keeps the hot path
lock-free; reading the value is rare (``stats()``), so it may be a little clumsy (and takes a
lock, so that two threads reading at once both get the right count).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

__all__ = ["Counter", "stats_counters"]


class Counter:
    """A lock-free, thread-safe counter.

    Attributes:
        incr: add one. It is the count's own ``__next__``, a C method: counting an event costs
            no Python call.
    """

    __slots__ = ("_base", "_count", "_read_lock", "incr")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._base = 0
        self._read_lock = threading.Lock()
        self.incr: Callable[[], object] = self._count.__next__

    @property
    def value(self) -> int:
        """The count so far (reading costs one increment, which is subtracted)."""
        with self._read_lock:
            self._base += 1
            return next(self._count) - self._base + 1


class _Stats:
    __slots__ = ("dropped", "emitted", "failed", "undelivered")

    def __init__(self) -> None:
        self.emitted = Counter()
        self.dropped = Counter()
        self.failed = Counter()
        self.undelivered = Counter()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, int]:
        return {
            "emitted": self.emitted.value,
            "dropped": self.dropped.value,
            "failed": self.failed.value,
            "undelivered": self.undelivered.value,
        }


stats_counters = _Stats()
