"""Id and clock providers.

Ids and clocks sit behind module-level callables so that ``hogtrace.testing`` can swap in
deterministic ones. Clocks are looked up on the ``time`` and ``datetime`` modules at call time
(never imported by name) so that ``freezegun`` controls them whether hogtrace was imported before
or after ``freeze_time`` started.
"""

from __future__ import annotations

import datetime
import itertools
import random
import time
from collections.abc import Callable

__all__ = ["DeterministicIds", "monotonic_ns", "new_id", "set_id_source", "utc_now"]

_getrandbits = random.getrandbits


#: The RFC 4122 variant digit (``10xx`` in binary) for each random hex digit, uniformly.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _random_uuid4() -> str:
    """A random UUID4 string: PostHog's own id format, ~5x cheaper than ``str(uuid.uuid4())``.

    The version digit is set to ``4`` and the variant digit mapped onto ``8``-``b`` as
    ``uuid.uuid4()`` does, by string operations (cheaper than masking a 128-bit integer).
    ``random`` is reseeded by CPython in a forked child, so ids never repeat across a fork.
    """
    h = "%032x" % _getrandbits(128)  # noqa: UP031 - the fastest spelling
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class DeterministicIds:
    """Counter-based UUID-shaped ids: the same workflow gives the same ids every run."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"00000000-0000-4000-8000-{next(self._counter):012x}"


_id_source: Callable[[], str] = _random_uuid4


def new_id() -> str:
    """Return a new span, trace or session id."""
    return _id_source()


def set_id_source(source: Callable[[], str] | None) -> Callable[[], str]:
    """Install ``source`` (``None``: random UUID4s) and return the previous one."""
    global _id_source
    previous = _id_source
    _id_source = source if source is not None else _random_uuid4
    return previous


def monotonic_ns() -> int:
    """Monotonic clock in integer nanoseconds (exact under freezegun's ``tick``)."""
    return time.perf_counter_ns()


def utc_now() -> datetime.datetime:
    """The current time in UTC (the frozen time under freezegun)."""
    return datetime.datetime.now(datetime.timezone.utc)
