"""The ``hogtrace_events`` pytest fixture (registered through the ``pytest11`` entry point).

When a test that uses the fixture fails, the report gets a "Captured hogtrace events" section
with the tree of what was captured. At teardown, a scope the test left open fails it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from hogtrace._context import attach, current_scope
from hogtrace._scope import Scope
from hogtrace.testing import CapturedEvents, capture_events

__all__ = ["hogtrace_events"]

_EVENTS = pytest.StashKey[CapturedEvents]()
_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def hogtrace_events(request: pytest.FixtureRequest) -> Iterator[CapturedEvents]:
    """Record the events hogtrace emits during the test instead of sending them.

    Ids are deterministic and nothing reaches the network; the previous configuration comes
    back after the test, also when it fails. A scope still open at teardown (an unfinished
    generator that something still holds, a task still running, a ``with`` block never
    exited) fails the test with its name.

    Example:
        ```py
        def test_answer(hogtrace_events):
            answer("What is PostHog?")
            assert "answer" == hogtrace_events.one("trace").name
        ```
    """
    outer = current_scope()
    with capture_events() as events:
        request.node.stash[_EVENTS] = events
        yield events
        left_open = events.open_scopes()
    if current_scope() is not outer:
        # A ``with`` entered and never exited leaves its scope current for every later test.
        attach(outer)
    if left_open and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail(_open_message(left_open), pytrace=False)


def _describe(scope: Scope) -> str:
    trace = f", trace {scope.trace_id}" if scope.trace_id not in (None, scope.id) else ""
    return f"{scope.kind} {scope.name!r} (id {scope.id}{trace})"


def _open_message(scopes: list[Scope]) -> str:
    count = "1 scope was" if len(scopes) == 1 else f"{len(scopes)} scopes were"
    lines = [f"hogtrace: {count} still open at the end of the test:"]
    lines.extend(f"  - {_describe(s)}" for s in scopes)
    lines.append(
        "Finish or close generators (gen.close(), or `with contextlib.closing(gen)`), await"
        " tasks, and exit every `with` block before the test ends."
    )
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the tree of captured events to the report of a failed test that used the fixture."""
    report = yield
    events = item.stash.get(_EVENTS, None)
    if events is not None and report.failed:
        if report.when == "call":
            item.stash[_CALL_FAILED] = True
        report.sections.append(
            (f"Captured hogtrace events {report.when}", events.tree() or "(no events)")
        )
    return report
