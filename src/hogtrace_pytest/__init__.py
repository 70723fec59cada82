"""The ``hogtrace_events`` pytest fixture (registered through the ``pytest11`` entry point).

When a test that uses the fixture fails, the report gets a "Captured hogtrace events" section
with the tree of what was captured. At teardown, a scope the test left open fails it.

Under pytest nothing reaches PostHog unless asked: events made outside the fixture are kept
back (counted, and reported in one line of the terminal summary) unless the ini option
``hogtrace_send = true`` is set. This module imports hogtrace only once a test session has
imported it, so the plugin costs nothing to projects that have hogtrace installed but unused;
events are kept back from the moment that import happens (a fixture may trace at once).
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hogtrace.testing import CapturedEvents

__all__ = ["hogtrace_events"]

_EVENTS = pytest.StashKey["CapturedEvents"]()
_CALL_FAILED = pytest.StashKey[bool]()
_SEND_OPTION = "hogtrace_send"


class _Withheld:
    """Where hogtrace's events go under pytest, outside the fixture: nowhere, counted.

    They are dropped on purpose, so ``hogtrace.stats()["dropped"]`` counts them too (its
    counters keep adding up: emitted = dropped + failed + handed to a client).
    """

    def __init__(self, stats: Any) -> None:
        self.count = 0
        self._stats = stats  # hogtrace's counters (reset() gives them new counts)

    def emit(self, scope: Any, config: Any) -> None:
        self.count += 1
        self._stats.dropped.incr()
        scope.release()

    def opened(self, scope: object) -> None:
        pass

    def wrapper_event(self, msg: dict[str, Any]) -> bool:
        return False  # the user's own client sends PostHog's wrapper events as it would

    def flush(self, timeout: float | None = None) -> None:
        pass

    def shutdown(self, timeout: float | None = None) -> None:
        pass


_SEND = pytest.StashKey[bool]()
_WITHHELD = pytest.StashKey[_Withheld]()
_PREVIOUS = pytest.StashKey[Any]()
#: pytest-xdist: what the workers kept back, added up on the controller.
_IN_WORKERS = pytest.StashKey[int]()
_WORKER_COUNT = "hogtrace_withheld"
#: The configs of the pytest runs in progress in this process: a pytester run inside another.
_sessions: list[pytest.Config] = []
#: The hold back an outermost run left in place when it ended (until another run starts).
_lingering: list[_Withheld] = []
_WATCH = pytest.StashKey["_ImportWatch"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``hogtrace_send`` ini option."""
    parser.addini(
        _SEND_OPTION,
        "send hogtrace events made outside the hogtrace_events fixture to PostHog",
        type="bool",
        default=False,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Keep events back before the first conftest is imported (it may configure and trace)."""
    _start(early_config)


def pytest_configure(config: pytest.Config) -> None:
    """The same, for a plugin registered after the initial conftests (``pytest_plugins``)."""
    _start(config)


def _start(config: pytest.Config) -> None:
    """Remember whether events may be sent in this session; keep them back from the start."""
    if _SEND in config.stash:
        return
    config.stash[_SEND] = send = bool(config.getini(_SEND_OPTION))
    if not _sessions and _lingering:
        # An earlier run in this process (two pytest.main() calls) kept its hold back past
        # its end; this run decides for itself.
        from hogtrace import _config

        _config.end_hold_back(_lingering.pop())
    _sessions.append(config)
    if not send:
        if "hogtrace._config" in sys.modules:
            _hold_back(config)
        else:  # a fixture may import hogtrace and trace at once: hold back on that import
            watch = config.stash[_WATCH] = _ImportWatch(config)
            sys.meta_path.insert(0, watch)


class _ImportWatch:
    """A ``sys.meta_path`` entry: keeps events back the moment ``hogtrace._config`` is loaded.

    It finds nothing itself; for that one module it wraps the loader the other finders give,
    so the hold-back is in place before any scope can be made. It leaves ``sys.meta_path``
    when it has seen the module or when the session ends.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "hogtrace._config":
            return None
        _unwatch(self.config)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenHoldBack(spec.loader, self.config)
                return spec
        return None


class _ThenHoldBack:
    """A loader that runs the real one, then `_hold_back`; anything else is the real one's."""

    def __init__(self, loader: Any, config: pytest.Config) -> None:
        self._loader = loader
        self._config = config

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _hold_back(self._config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _unwatch(config: pytest.Config) -> None:
    watch = config.stash.get(_WATCH, None)
    if watch is not None:
        del config.stash[_WATCH]
        if watch in sys.meta_path:
            sys.meta_path.remove(watch)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop keeping events back after a run inside another (pytester's inline runs).

    After the outermost run, events stay kept back: code still running (a thread the tests
    left, an object finalized at exit) must not reach PostHog either.
    """
    if config in _sessions:
        _sessions.remove(config)
    _unwatch(config)
    withheld = config.stash.get(_WITHHELD, None)
    if withheld is not None and _sessions:
        from hogtrace import _config

        _config.end_hold_back(withheld, config.stash.get(_PREVIOUS, None))
        del config.stash[_WITHHELD]
    elif withheld is not None:
        _lingering[:] = [withheld]


def _hold_back(config: pytest.Config) -> None:
    """Keep hogtrace's events from PostHog once hogtrace is imported (not before: no cost)."""
    if config.stash.get(_SEND, True) or _WITHHELD in config.stash:
        return
    if "hogtrace._config" not in sys.modules:
        return
    from hogtrace import _config
    from hogtrace._stats import stats_counters

    withheld = config.stash[_WITHHELD] = _Withheld(stats_counters)
    config.stash[_PREVIOUS] = _config.hold_back(withheld)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Test modules that import hogtrace have been imported now."""
    _hold_back(session.config)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test may import hogtrace late: check before each test (a dict lookup)."""
    _hold_back(item.config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """A fixture may have imported hogtrace (and configured a client): check again."""
    _hold_back(item.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand the count of events kept back to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    withheld = session.config.stash.get(_WITHHELD, None)
    if isinstance(workeroutput, dict) and withheld is not None:
        workeroutput[_WORKER_COUNT] = withheld.count


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: add up what its workers kept back."""
    count = getattr(node, "workeroutput", {}).get(_WORKER_COUNT, 0)
    config = node.config
    config.stash[_IN_WORKERS] = config.stash.get(_IN_WORKERS, 0) + count


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say how many events were kept back, and how to send them."""
    withheld = config.stash.get(_WITHHELD, None)
    count = (withheld.count if withheld is not None else 0) + config.stash.get(_IN_WORKERS, 0)
    if count:
        terminalreporter.write_line(
            f"hogtrace: {count} events made outside the hogtrace_events fixture were"
            " not sent to PostHog (set `hogtrace_send = true` in your pytest ini options to"
            " send them)"
        )


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
    from hogtrace._context import attach, current_scope
    from hogtrace.testing import capture_events

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


def _describe(scope: Any) -> str:
    trace = f", trace {scope.trace_id}" if scope.trace_id not in (None, scope.id) else ""
    return f"{scope.kind} {scope.name!r} (id {scope.id}{trace})"


def _open_message(scopes: list[Any]) -> str:
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
