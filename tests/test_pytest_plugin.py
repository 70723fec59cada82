"""Tests for the ``hogtrace_events`` pytest fixture and its plugin hooks."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import sys

import pytest

import hogtrace
from hogtrace import _state
from hogtrace.testing import CapturedEvents
from tests.capture_server import CaptureServer

#: Runs subprocesses (pytester): left out of the fast loop, `-m "not slow"`.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]

# Other installed plugins are switched off: re-importing hypothesis costs a second per run.
INI = """
[pytest]
addopts = -p no:hypothesispytest -p no:langsmith_plugin -p no:anyio
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

WORKFLOW = """
import hogtrace

@hogtrace.span
def retrieve(query):
    return [query]

@hogtrace.generation(model="gpt-4o")
def chat(messages):
    hogtrace.current().set_usage(input_tokens=3, output_tokens=1)
    return "Paris"

@hogtrace.trace
def answer(question):
    retrieve(question)
    return chat([{"role": "user", "content": question}])
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with an ini file and a small traced workflow module."""
    pytester.makeini(INI)
    pytester.makepyfile(workflow=WORKFLOW)
    return pytester


def kept_back(result: pytest.RunResult, count: int, server: CaptureServer, passed: int = 1) -> None:
    """The run passed, its summary says ``count`` events were kept back, and none was sent."""
    result.assert_outcomes(passed=passed)
    result.stdout.fnmatch_lines([f"*hogtrace: {count} events made outside*hogtrace_send = true*"])
    assert [] == server.events


class TestFixture:
    def test_records_events(self, hogtrace_events: CapturedEvents) -> None:
        """The fixture yields the events of the test, as they close."""
        with hogtrace.trace("t"), hogtrace.span("s"):
            pass

        assert "t [trace]\n└── s [span]" == hogtrace_events.tree()

    def test_deterministic_ids(self, hogtrace_events: CapturedEvents) -> None:
        """Ids start from the same value in every test."""
        with hogtrace.trace("t") as t:
            pass

        assert "00000000-0000-4000-8000-000000000001" == t.trace_id

    async def test_async_test(self, hogtrace_events: CapturedEvents) -> None:
        """Async tests record their events too."""
        async with hogtrace.trace("t"):
            pass

        assert ["t"] == [e.name for e in hogtrace_events]

    def test_never_touches_the_network(
        self,
        hogtrace_events: CapturedEvents,
        capture_server: CaptureServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With PostHog configured from the environment, nothing is sent."""
        monkeypatch.setenv("POSTHOG_API_KEY", "phc_env")
        monkeypatch.setenv("POSTHOG_HOST", capture_server.url)

        with hogtrace.trace("t"):
            pass
        hogtrace.flush()

        assert (1, None, []) == (
            len(hogtrace_events),
            _state.state.sink,
            capture_server.requests,
        )


class TestRegistration:
    def test_found_through_the_entry_point(self, project: pytest.Pytester) -> None:
        """The fixture is available without any conftest, and gone with ``-p no:hogtrace``."""
        project.makepyfile(
            """
            def test_it(hogtrace_events):
                assert [] == hogtrace_events
            """
        )

        project.runpytest().assert_outcomes(passed=1)
        disabled = project.runpytest("-p", "no:hogtrace")

        disabled.assert_outcomes(errors=1)
        disabled.stdout.fnmatch_lines(["*fixture 'hogtrace_events' not found*"])


class TestFailureReport:
    def test_failing_test_shows_the_tree(self, project: pytest.Pytester) -> None:
        """A failed test that used the fixture gets a section with the captured tree."""
        project.makepyfile(
            """
            from workflow import answer

            def test_answer(hogtrace_events):
                answer("capital?")
                assert 2 == len(hogtrace_events.spans)
            """
        )

        result = project.runpytest()

        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*- Captured hogtrace events call -*",
                "answer [[]trace[]]",
                "├── retrieve [[]span[]]",
                "└── chat [[]generation, gpt-4o, tokens in=3 out=1[]]",
            ]
        )

    def test_empty_capture(self, project: pytest.Pytester) -> None:
        """When nothing was captured, the section says so."""
        project.makepyfile(
            """
            def test_nothing(hogtrace_events):
                assert hogtrace_events
            """
        )

        result = project.runpytest()

        result.stdout.fnmatch_lines(["*- Captured hogtrace events call -*", "(no events)"])

    def test_passing_test_has_no_section(self, project: pytest.Pytester) -> None:
        """A passing test reports nothing extra."""
        project.makepyfile(
            """
            from workflow import answer

            def test_answer(hogtrace_events):
                answer("capital?")
            """
        )

        result = project.runpytest("-rA")

        result.assert_outcomes(passed=1)
        assert "hogtrace events" not in result.stdout.str()

    def test_test_without_the_fixture(self, project: pytest.Pytester) -> None:
        """A failed test that did not use the fixture gets no section."""
        project.makepyfile(
            """
            def test_plain():
                assert False
            """
        )

        result = project.runpytest()

        result.assert_outcomes(failed=1)
        assert "hogtrace events" not in result.stdout.str()

    def test_one_failure_lists_the_capture(self, project: pytest.Pytester) -> None:
        """``one()`` fails with the tree of what was captured."""
        project.makepyfile(
            """
            from workflow import answer

            def test_answer(hogtrace_events):
                answer("capital?")
                hogtrace_events.one("span", name="rerank")
            """
        )

        result = project.runpytest()

        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                ">*hogtrace_events.one(*",
                "E*expected exactly one $ai_span named 'rerank', found none",
                "E*captured 3 events:",
                "E*answer [[]trace[]]",
            ]
        )
        assert "hogtrace/testing.py" not in result.stdout.str()  # the test's line is blamed


class TestRestore:
    def test_configuration_restored_after_a_failure(self, project: pytest.Pytester) -> None:
        """A failing test leaves the configuration as it found it."""
        project.makepyfile(
            """
            import hogtrace
            from hogtrace import _config, _state

            hogtrace.configure(distinct_id="before")
            BEFORE = _state.state

            def test_fails(hogtrace_events):
                hogtrace.configure(distinct_id="inside")
                with hogtrace.trace("t"):
                    raise RuntimeError("boom")

            def test_after():
                assert BEFORE.config is _state.state.config
                assert "before" == _state.state.config.distinct_id
            """
        )

        project.runpytest().assert_outcomes(passed=1, failed=1)

    def test_state_restored(self, project: pytest.Pytester) -> None:
        """After a passing test the capture is gone and ids are random again."""
        project.makepyfile(
            """
            import hogtrace
            from hogtrace import _config, _state

            def test_uses(hogtrace_events):
                with hogtrace.trace("t"):
                    pass

            def test_after():
                with hogtrace.trace("t") as t:
                    pass
                # Back to the session's default: events kept back from PostHog, not recorded.
                assert "_Withheld" == type(_state.state.capture).__name__
                assert not t.trace_id.startswith("00000000-")
            """
        )

        project.runpytest().assert_outcomes(passed=2)


class TestOpenScopes:
    def test_unfinished_generator_fails_the_test(self, project: pytest.Pytester) -> None:
        """A started generator still held at teardown fails the test, naming its scope."""
        project.makepyfile(
            """
            import hogtrace

            KEEP = []

            @hogtrace.span
            def stream():
                yield 1
                yield 2

            def test_leaks(hogtrace_events):
                gen = stream()
                next(gen)
                KEEP.append(gen)

            def teardown_module():  # else a later gc ends the scope in another test
                for gen in KEEP:
                    gen.close()
            """
        )

        result = project.runpytest()

        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_leaks*",
                "hogtrace: 1 scope was still open at the end of the test:",
                "  - span 'stream' (id 00000000-0000-4000-8000-000000000001)",
                "Finish or close generators*",
            ]
        )

    def test_with_block_never_exited(self, project: pytest.Pytester) -> None:
        """A ``with`` entered by hand fails the test, and does not leak into the next one."""
        project.makepyfile(
            """
            import hogtrace

            def test_leaks(hogtrace_events):
                hogtrace.span("manual").__enter__()

            def test_next(hogtrace_events):
                with hogtrace.span("fresh"):
                    pass
                assert "$ai_trace" == hogtrace_events.one().event
            """
        )

        result = project.runpytest()

        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_leaks*",
                "  - span 'manual' (id 00000000-0000-4000-8000-000000000001)",
            ]
        )

    def test_inner_with_block_never_exited(self, project: pytest.Pytester) -> None:
        """A scope nobody holds any more is still reported, with its trace."""
        project.makepyfile(
            """
            import hogtrace

            def test_leaks(hogtrace_events):
                with hogtrace.trace("outer"):
                    hogtrace.span("manual").__enter__()
            """
        )

        result = project.runpytest()

        result.stdout.fnmatch_lines(
            [
                "  - span 'manual' (id 00000000-0000-4000-8000-000000000002,"
                " trace 00000000-0000-4000-8000-000000000001)",
            ]
        )

    def test_several_open_scopes(self, project: pytest.Pytester) -> None:
        """Every open scope is listed, oldest first."""
        project.makepyfile(
            """
            import hogtrace

            KEEP = []

            @hogtrace.span
            def stream():
                yield 1

            def test_leaks(hogtrace_events):
                for _ in range(2):
                    gen = stream()
                    next(gen)
                    KEEP.append(gen)

            def teardown_module():  # else a later gc ends the scopes in another test
                for gen in KEEP:
                    gen.close()
            """
        )

        result = project.runpytest()

        result.stdout.fnmatch_lines(
            [
                "hogtrace: 2 scopes were still open at the end of the test:",
                "  - span 'stream' (id 00000000-0000-4000-8000-000000000001)",
                "  - span 'stream' (id 00000000-0000-4000-8000-000000000002)",
            ]
        )

    def test_failed_test_is_not_reported_twice(self, project: pytest.Pytester) -> None:
        """When the test itself failed, an open scope adds no teardown error."""
        project.makepyfile(
            """
            import hogtrace

            KEEP = []

            @hogtrace.span
            def stream():
                yield 1
                yield 2

            def test_fails(hogtrace_events):
                gen = stream()
                next(gen)
                KEEP.append(gen)
                assert False

            def teardown_module():  # the failure's traceback holds gen: a later gc would end it
                for gen in KEEP:
                    gen.close()
            """
        )

        result = project.runpytest()

        result.assert_outcomes(failed=1)
        assert "still open" not in result.stdout.str()

    def test_finished_generators_pass(self, project: pytest.Pytester) -> None:
        """Exhausted, closed and abandoned generators leave nothing open."""
        project.makepyfile(
            """
            import hogtrace

            @hogtrace.span
            def stream():
                yield 1
                yield 2

            def test_ok(hogtrace_events):
                assert [1, 2] == list(stream())
                closed = stream()
                next(closed)
                closed.close()
                abandoned = stream()
                next(abandoned)
            """
        )

        project.runpytest().assert_outcomes(passed=1)


class TestOffline:
    def test_events_outside_the_fixture_are_kept_back_and_counted(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """By default nothing reaches PostHog from a test run; the summary says how many."""
        project.makepyfile(
            f"""
            import posthog
            import hogtrace

            client = posthog.Posthog("phc_test", host={capture_server.url!r})
            hogtrace.configure(client)

            def test_sends_nothing():
                for _ in range(3):
                    with hogtrace.trace("t"):
                        pass
                hogtrace.flush(timeout=5)
                client.flush()
                stats = hogtrace.stats()
                assert (3, 3) == (stats["emitted"], stats["dropped"])  # they add up
            """
        )

        result = project.runpytest()

        kept_back(result, 3, capture_server)

    def test_events_made_while_a_fixture_sets_up_are_kept_back(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """hogtrace first imported by a fixture that traces at once: nothing is sent either."""
        project.makeconftest(
            f"""
            import pytest

            @pytest.fixture
            def app():
                import posthog
                import hogtrace

                client = posthog.Posthog("phc_test", host={capture_server.url!r})
                hogtrace.configure(client)
                with hogtrace.trace("startup"):
                    pass
                hogtrace.flush(timeout=5)
                client.flush()
                yield client
                hogtrace.shutdown()
            """
        )
        project.makepyfile(
            """
            import sys

            def test_app(app):
                assert "hogtrace" in sys.modules
            """
        )

        result = project.runpytest_subprocess()

        kept_back(result, 1, capture_server)

    def test_events_of_the_root_conftest_are_kept_back(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """A root conftest is imported before any plugin's ``pytest_configure``: a trace made
        while it is imported, or in its own ``pytest_configure``, is kept back too."""
        project.makeconftest(
            f"""
            import posthog
            import hogtrace

            client = posthog.Posthog("phc_test", host={capture_server.url!r})
            hogtrace.configure(client)
            with hogtrace.trace("conftest-import"):
                pass

            def pytest_configure(config):
                with hogtrace.trace("conftest-configure"):
                    pass

            def pytest_unconfigure(config):
                hogtrace.flush(timeout=5)
                client.flush()
            """
        )
        project.makepyfile("def test_nothing():\n    pass\n")

        result = project.runpytest_subprocess()

        kept_back(result, 2, capture_server)

    def test_code_still_running_after_the_session_sends_nothing(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """A thread the tests left behind traces after the session ended: kept back too."""
        project.makepyfile(
            f"""
            import threading
            import posthog
            import hogtrace

            client = posthog.Posthog("phc_test", host={capture_server.url!r})
            hogtrace.configure(client)
            release = threading.Event()

            def late():
                release.wait(30)
                with hogtrace.trace("late"):
                    pass
                hogtrace.flush(timeout=5)
                client.flush()

            def pytest_unconfigure(config):  # not a hook here: called by the conftest below
                release.set()

            def test_leaves_a_thread():
                threading.Thread(target=late).start()  # not a daemon: exit waits for it
            """
        )
        project.makeconftest(
            """
            def pytest_unconfigure(config):
                import sys
                module = sys.modules.get("test_code_still_running_after_the_session_sends_nothing")
                if module is not None:
                    module.pytest_unconfigure(config)
            """
        )

        result = project.runpytest_subprocess()

        result.assert_outcomes(passed=1)
        assert [] == capture_server.events

    @pytest.mark.parametrize("autoload", [True, False])
    def test_the_plugin_loaded_by_its_old_name_keeps_events_back(
        self,
        project: pytest.Pytester,
        capture_server: CaptureServer,
        monkeypatch: pytest.MonkeyPatch,
        autoload: bool,
    ) -> None:
        """``-p hogtrace.pytest_plugin`` (the fixture's old module) brings the whole plugin,
        also with plugin autoloading off; with it on, the plugin is not registered twice."""
        if not autoload:
            monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        project.makepyfile(
            f"""
            import posthog
            import hogtrace

            client = posthog.Posthog("phc_test", host={capture_server.url!r})
            hogtrace.configure(client)

            def test_traces(hogtrace_events):
                with hogtrace.trace("inside"):
                    pass
                assert 1 == len(hogtrace_events)

            def test_outside():
                with hogtrace.trace("outside"):
                    pass
                hogtrace.flush(timeout=5)
                client.flush()
            """
        )

        result = project.runpytest_subprocess("-p", "hogtrace.pytest_plugin")

        kept_back(result, 1, capture_server, passed=2)

    def test_the_summary_adds_up_what_xdist_workers_kept_back(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """Under ``pytest -n 2`` the events are made in the workers; the controller's summary
        line counts them all."""
        pytest.importorskip("xdist")
        project.makepyfile(
            f"""
            import posthog
            import hogtrace
            import pytest

            hogtrace.configure(posthog.Posthog("phc_test", host={capture_server.url!r}))

            @pytest.mark.parametrize("n", range(4))
            def test_traces(n):
                with hogtrace.trace("t"):
                    pass
                hogtrace.flush(timeout=5)
            """
        )

        result = project.runpytest_subprocess("-n", "2")

        kept_back(result, 4, capture_server, passed=4)

    def test_a_second_run_in_the_process_decides_for_itself(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """Events stay kept back after a run ends (code may still be running), until another
        ``pytest.main()`` in the same process starts: with ``hogtrace_send = true`` it sends."""
        project.makepyfile(
            test_one=f"""
            import posthog
            import hogtrace

            client = posthog.Posthog("phc_test", host={capture_server.url!r})
            hogtrace.configure(client)

            def test_traces():
                with hogtrace.trace("t"):
                    pass
                hogtrace.flush(timeout=5)
                client.flush()
            """
        )
        script = project.makepyfile(
            run="""
            import sys
            import pytest

            args = ["-q", "-p", "no:cacheprovider", "test_one.py"]
            first = pytest.main(args)
            second = pytest.main([*args, "-o", "hogtrace_send=true"])
            sys.exit(first or second)
            """
        )

        result = project.run(sys.executable, str(script))

        assert 0 == result.ret, result.stdout.str() + result.stderr.str()
        assert ["t"] == [e["properties"]["$ai_span_name"] for e in capture_server.events]

    def test_ini_option_sends(
        self, project: pytest.Pytester, capture_server: CaptureServer
    ) -> None:
        """With ``hogtrace_send = true`` events outside the fixture are sent."""
        project.makeini(INI + "hogtrace_send = true\n")
        project.makepyfile(
            f"""
            import posthog
            import hogtrace

            def test_sends():
                client = posthog.Posthog("phc_test", host={capture_server.url!r})
                hogtrace.configure(client)
                with hogtrace.trace("t"):
                    pass
                hogtrace.flush(timeout=5)
                client.shutdown()
            """
        )

        project.runpytest().assert_outcomes(passed=1)
        assert ["t"] == [
            e["properties"]["$ai_span_name"] for e in capture_server.wait_for_events(1)
        ]

    def test_fixture_captures_when_tracing_is_disabled(self, project: pytest.Pytester) -> None:
        """A conftest that turns tracing off does not stop the fixture from capturing."""
        project.makeconftest("import hogtrace\nhogtrace.configure(enabled=False)\n")
        project.makepyfile(
            """
            import hogtrace

            @hogtrace.span
            def step():
                return 1

            def test_captures(hogtrace_events):
                step()
                assert ["step"] == [e.name for e in hogtrace_events]
            """
        )

        project.runpytest().assert_outcomes(passed=1)

    def test_plugin_does_not_import_hogtrace(self, project: pytest.Pytester) -> None:
        """A test run that never uses hogtrace does not import it (nor posthog)."""
        project.makepyfile(
            """
            import sys

            def test_nothing():
                assert "hogtrace" not in sys.modules
                assert "posthog" not in sys.modules
            """
        )

        project.runpytest_subprocess().assert_outcomes(passed=1)
