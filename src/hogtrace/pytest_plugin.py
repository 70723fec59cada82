"""The ``hogtrace_events`` pytest fixture (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hogtrace.testing import CapturedEvents, capture_events

__all__ = ["hogtrace_events"]


@pytest.fixture
def hogtrace_events() -> Iterator[CapturedEvents]:
    """Record the events hogtrace emits during the test instead of sending them.

    At teardown, a scope that is still open (an unfinished generator, a ``with`` never exited)
    fails the test with its name.
    """
    with capture_events() as events:
        yield events
        left_open = events.open_scopes()
    if left_open:
        names = ", ".join(repr(s) for s in left_open)
        pytest.fail(f"hogtrace scopes still open at the end of the test: {names}", pytrace=False)
