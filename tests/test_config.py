"""configure / reset / flush / shutdown: where events go, who owns the client, the defaults."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

import hogtrace
from hogtrace import _errors, _options, _posthog, _state
from hogtrace._sinks import ConsoleSink, FanoutSink, PostHogSink
from tests.capture_server import CaptureServer, Clients


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No PostHog or hogtrace variables from the outer environment."""
    for name in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY", "POSTHOG_HOST", "HOGTRACE_CONSOLE"):
        monkeypatch.delenv(name, raising=False)
    hogtrace.reset()
    return monkeypatch


@hogtrace.trace
def work(x: int) -> int:
    with hogtrace.span("step"):
        pass
    return x + 1


def names(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["properties"].get("$ai_span_name", e["event"]) for e in events)


def owned_client() -> Any:
    """The client hogtrace built itself (from api_key or the environment)."""
    config = _state.state.config
    assert config.owns_client
    return config.client


class TestConfigureClient:
    def test_events_go_to_the_given_client(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """configure(client) sends every event through that client."""
        hogtrace.configure(clients())

        assert 2 == work(1)
        hogtrace.flush(timeout=10)

        assert ["step", "work"] == names(capture_server.events)

    def test_shutdown_flushes_but_does_not_shut_down_a_user_client(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """shutdown() delivers hogtrace's events and leaves the user's client working."""
        client = clients()
        hogtrace.configure(client)
        work(1)

        hogtrace.shutdown()
        client.capture("after", distinct_id="user-1")
        client.flush()

        assert ["after", "step", "work"] == names(capture_server.events)

    def test_reset_leaves_a_user_client_working(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """reset() forgets the user's client without shutting it down."""
        client = clients()
        hogtrace.configure(client)

        hogtrace.reset()
        client.capture("after", distinct_id="user-1")
        client.flush()

        assert ["after"] == names(capture_server.events)
        assert _state.state.config.client is None

    def test_replacing_the_client_delivers_the_old_ones_events(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Events queued for the old client are delivered when configure() switches clients."""
        first, second = clients(), clients()
        hogtrace.configure(first)
        work(1)

        hogtrace.configure(second)
        with hogtrace.span("later"):
            pass
        hogtrace.flush(timeout=10)

        assert ["later", "step", "work"] == names(capture_server.events)

    def test_client_without_capture_is_rejected(self) -> None:
        """Passing something that is not a posthog client raises TypeError at configure()."""
        with pytest.raises(TypeError, match="posthog client"):
            hogtrace.configure(object())


class TestConfigureApiKey:
    def test_builds_and_owns_a_client(
        self, clean_env: pytest.MonkeyPatch, capture_server: CaptureServer
    ) -> None:
        """configure(api_key=, host=) builds a client; shutdown() shuts it down."""
        hogtrace.configure(api_key="phc_test", host=capture_server.url)
        client = owned_client()

        work(1)
        hogtrace.shutdown()

        assert ["step", "work"] == names(capture_server.events)
        assert "phc_test" == capture_server.requests[0]["json"]["api_key"]
        assert client.capture("after", distinct_id="user-1") is None  # shut down

    def test_environment_variables_build_an_owned_client(
        self, clean_env: pytest.MonkeyPatch, capture_server: CaptureServer
    ) -> None:
        """POSTHOG_API_KEY and POSTHOG_HOST configure delivery with no configure() call."""
        clean_env.setenv("POSTHOG_API_KEY", "phc_env")
        clean_env.setenv("POSTHOG_HOST", capture_server.url)
        hogtrace.reset()

        work(1)
        client = owned_client()
        hogtrace.shutdown()

        assert ["step", "work"] == names(capture_server.events)
        assert "phc_env" == capture_server.requests[0]["json"]["api_key"]
        assert client.capture("after", distinct_id="user-1") is None

    def test_reset_shuts_down_an_owned_client(
        self, clean_env: pytest.MonkeyPatch, capture_server: CaptureServer
    ) -> None:
        """reset() delivers what is queued and shuts down the client hogtrace built."""
        hogtrace.configure(api_key="phc_test", host=capture_server.url)
        client = owned_client()
        work(1)

        hogtrace.reset()

        assert ["step", "work"] == names(capture_server.events)
        assert client.capture("after", distinct_id="user-1") is None

    def test_new_host_rebuilds_the_owned_client(
        self, clean_env: pytest.MonkeyPatch, capture_server: CaptureServer
    ) -> None:
        """configure(host=) alone moves a client hogtrace built to the new host, same key."""
        other = CaptureServer()
        try:
            hogtrace.configure(api_key="phc_test", host=capture_server.url)
            work(1)
            hogtrace.configure(host=other.url)
            work(1)
            hogtrace.shutdown()
            assert ["step", "work"] == names(capture_server.events)
            assert ["step", "work"] == names(other.events)
            assert "phc_test" == other.requests[0]["json"]["api_key"]
        finally:
            other.close()

    def test_client_and_api_key_together_are_rejected(self, clients: Clients) -> None:
        """configure() refuses both a client and an api_key."""
        with pytest.raises(ValueError, match="either client or api_key"):
            hogtrace.configure(clients(), api_key="phc_test")


class TestConfigureOptions:
    def test_only_given_options_change(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A later configure() keeps the client and every option it is not given."""
        hogtrace.configure(clients(), distinct_id="user-1")
        hogtrace.configure(properties={"team": "core"})

        work(1)
        hogtrace.flush(timeout=10)

        events = capture_server.events
        assert 2 == len(events)
        assert {"user-1"} == {e["distinct_id"] for e in events}
        assert {"core"} == {e["properties"]["team"] for e in events}

    def test_reset_returns_every_option_to_its_default(
        self, clean_env: pytest.MonkeyPatch, clients: Clients
    ) -> None:
        """After reset() no client, distinct id or property is left."""
        hogtrace.configure(clients(), distinct_id="user-1", properties={"team": "core"})

        hogtrace.reset()

        assert _options.Config() == _state.state.config

    def test_reset_clears_the_counters(self, clean_env: pytest.MonkeyPatch) -> None:
        """reset() starts stats() from zero."""
        work(1)

        hogtrace.reset()

        assert {"emitted": 0, "dropped": 0, "failed": 0, "undelivered": 0} == hogtrace.stats()


class TestMaxItems:
    @pytest.mark.parametrize("bad", ["5000", 5000.0, True, None])
    def test_wrong_type_raises_at_configure(self, bad: Any) -> None:
        """max_items must be an int: a clear error when configured, not a crash later."""
        with pytest.raises(TypeError, match="max_items must be int"):
            hogtrace.configure(max_items=bad)

    def test_too_small_raises(self) -> None:
        """Fewer than 100 items would cut ordinary arguments."""
        with pytest.raises(ValueError, match="max_items must be at least 100"):
            hogtrace.configure(max_items=99)
        hogtrace.configure(max_items=100)
        assert 100 == _state.state.config.max_items

    def test_default(self) -> None:
        """5,000 by default, and reset() returns to it."""
        hogtrace.configure(max_items=50_000)
        hogtrace.reset()
        assert _options.DEFAULT_MAX_ITEMS == 5_000 == _state.state.config.max_items


class TestUnconfigured:
    def test_warns_once_and_drops(
        self, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With nothing configured, events are dropped after one warning in the hogtrace logger."""
        results = [work(i) for i in range(3)]

        warnings = [r for r in caplog.records if r.name == "hogtrace"]
        assert [1, 2, 3] == results
        assert 1 == len(warnings)
        assert logging.WARNING == warnings[0].levelno
        assert "no PostHog client configured" in warnings[0].getMessage()
        assert {"emitted": 6, "dropped": 6, "failed": 0, "undelivered": 0} == hogtrace.stats()

    def test_flush_and_shutdown_do_nothing(self, clean_env: pytest.MonkeyPatch) -> None:
        """flush() and shutdown() without a client return quietly."""
        hogtrace.flush(timeout=1)
        hogtrace.shutdown()

        assert 2 == work(1)


class TestConsole:
    def test_console_prints_the_tree_on_stderr(
        self, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """console=True prints each finished trace as an indented tree."""
        hogtrace.configure(console=True)

        work(1)

        err = capsys.readouterr().err
        assert "work" in err
        assert "step" in err
        assert err.index("work") < err.index("step")

    def test_environment_variable_turns_the_console_on(
        self, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """HOGTRACE_CONSOLE=1 prints traces with no configure() call."""
        clean_env.setenv("HOGTRACE_CONSOLE", "1")
        hogtrace.reset()

        work(1)

        assert "step" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("value", "enabled"),
        [
            *[("false", False), (" OFF\t", False), ("0", False), ("No", False)],
            *[("true", True), ("1", True), ("yes", True), ("on", True), ("", True)],
        ],
    )
    def test_enabled_variable_values(
        self,
        clean_env: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        value: str,
        enabled: bool,
    ) -> None:
        clean_env.setenv("HOGTRACE_ENABLED", value)
        hogtrace.reset()

        assert enabled is _state.state.config.enabled
        assert [] == [r for r in caplog.records if "HOGTRACE_ENABLED" in r.getMessage()]

    @pytest.mark.parametrize("name", ["HOGTRACE_ENABLED", "HOGTRACE_CONSOLE"])
    def test_a_value_not_understood_keeps_the_default_and_warns(
        self, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str
    ) -> None:
        """``HOGTRACE_ENABLED=disable`` is not silently "on" (nor ``HOGTRACE_CONSOLE=garbage``
        silently on): the default stays, and a warning names what is understood."""
        clean_env.setenv(name, "disable")
        hogtrace.reset()

        config = _state.state.config
        assert (True, False) == (config.enabled, config.console)
        (warning,) = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert "0/false/no/off" in warning

    def test_console_and_client_together(
        self,
        capture_server: CaptureServer,
        clients: Clients,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With a client and console=True, events are both sent and printed."""
        hogtrace.configure(clients(), console=True)

        work(1)
        hogtrace.flush(timeout=10)

        assert ["step", "work"] == names(capture_server.events)
        assert "step" in capsys.readouterr().err
        # The console reads each closed scope on the calling thread before the PostHog sink
        # queues it for the worker (which releases its content after building the event).
        sink = _state.state.destination()
        assert isinstance(sink, FanoutSink)
        assert [ConsoleSink, PostHogSink] == [type(s) for s in sink.sinks]
        (root,) = [e["properties"] for e in capture_server.events if e["event"] == "$ai_trace"]
        assert ({"x": 1}, 2) == (root["$ai_input_state"], root["$ai_output_state"])


class TestShutdown:
    def test_a_fault_while_retiring_the_client_never_reaches_the_caller(
        self, capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """shutdown() (and reset(), configure()) log an internal error there, never raise."""
        monkeypatch.setattr(_errors, "STRICT", False)
        hogtrace.configure(api_key="phc_test", host=capture_server.url)

        def broken(queues: object) -> int:
            raise RuntimeError("queue gone")

        monkeypatch.setattr(_posthog, "unfinished", broken)
        work(1)

        hogtrace.shutdown()  # no exception

        assert not _state.state.active

    def test_shutdown_is_idempotent(self, capture_server: CaptureServer, clients: Clients) -> None:
        """A second shutdown() changes nothing and raises nothing."""
        hogtrace.configure(clients())
        work(1)

        hogtrace.shutdown()
        hogtrace.shutdown()

        assert 2 == len(capture_server.events)

    def test_tracing_after_shutdown_is_a_silent_no_op(
        self, capture_server: CaptureServer, clients: Clients, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After shutdown() decorated code runs unchanged, emits nothing and logs nothing."""
        hogtrace.configure(clients())
        hogtrace.shutdown()
        before = hogtrace.stats()

        assert 2 == work(1)
        with pytest.raises(KeyError), hogtrace.span("failing"):
            raise KeyError("k")
        hogtrace.flush(timeout=1)

        assert before == hogtrace.stats()
        assert [] == capture_server.events
        assert [] == [r for r in caplog.records if r.name == "hogtrace"]

    def test_configure_after_shutdown_traces_again(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """configure() after shutdown() turns tracing back on."""
        client = clients()
        hogtrace.configure(client)
        hogtrace.shutdown()

        hogtrace.configure(client)
        work(1)
        hogtrace.flush(timeout=10)

        assert ["step", "work"] == names(capture_server.events)


class TestRedactPatterns:
    def test_own_patterns_redact_content_and_errors(self) -> None:
        """Matches of the user's patterns become ``[REDACTED]`` in content and error text."""
        import hogtrace.testing

        hogtrace.configure(redact_patterns=[r"(?<=acct=)[0-9]+"])

        with hogtrace.testing.capture_events() as events, hogtrace.span("charge") as s:
            s.set_input("acct=12345")
            s.set_error(ValueError("bad acct=98765"))

        event = events.one()
        assert ("acct=[REDACTED]", "ValueError: bad acct=[REDACTED]") == (event.input, event.error)

    def test_compiled_patterns_keep_their_flags(self) -> None:
        import hogtrace.testing

        hogtrace.configure(redact_patterns=[re.compile("internal-[a-z]+", re.IGNORECASE)])
        with hogtrace.testing.capture_events() as events, hogtrace.span("s") as s:
            s.set_input("see INTERNAL-HOST")

        assert "see [REDACTED]" == events.one().input

    def test_a_pattern_matching_the_empty_string_raises_at_configure(self) -> None:
        with pytest.raises(ValueError, match=r"redact_patterns: .* matches the empty string"):
            hogtrace.configure(redact_patterns=[r"\d*"])

    def test_bad_pattern_raises_at_configure(self) -> None:
        """A pattern that does not compile raises ``re.error`` from ``configure()``."""
        import re

        with pytest.raises(re.error):
            hogtrace.configure(redact_patterns=["(unclosed"])

    def test_reset_removes_them(self) -> None:
        """``reset()`` (or ``redact_patterns=None``) removes the user's patterns."""
        import hogtrace.testing

        hogtrace.configure(redact_patterns=[r"secret-\d+"])
        hogtrace.reset()

        with hogtrace.testing.capture_events() as events, hogtrace.span("s") as s:
            s.set_input("secret-42")

        assert "secret-42" == events.one().input
