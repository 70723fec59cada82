"""Building events: hostile exceptions, released content, the personless distinct id."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

import hogtrace
from hogtrace import _sinks
from hogtrace._redact import REDACTED, add_secret_patterns, reset_secret_patterns
from hogtrace.testing import CapturedEvents, capture_events
from tests.capture_server import CaptureServer, Clients


class GetattrRaises(Exception):
    """An exception whose missing attributes raise something else than AttributeError."""

    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


class StrRaises(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str")


HOSTILE = [GetattrRaises("boom"), StrRaises("x")]


@hogtrace.generation(model="m")
def failing_generation(error: Exception) -> str:
    raise error


class TestHostileExceptions:
    @pytest.mark.parametrize("error", HOSTILE, ids=lambda e: type(e).__name__)
    def test_capture_mode(self, error: Exception) -> None:
        """The exception reaches the caller as itself and its event is still recorded."""
        with capture_events() as events, pytest.raises(type(error)) as info:
            failing_generation(error)

        assert error is info.value
        assert (True, type(error).__name__) == (
            events.one().is_error,
            events.one().properties["$ai_error_type"],
        )
        assert 0 == hogtrace.stats()["failed"]

    @pytest.mark.parametrize("error", HOSTILE, ids=lambda e: type(e).__name__)
    def test_console_mode(self, error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
        """In console mode too, the caller gets its exception and the tree is printed."""
        stream = io.StringIO()
        monkeypatch.setattr(_sinks.sys, "stderr", stream)
        hogtrace.configure(console=True)

        with pytest.raises(type(error)) as info, hogtrace.trace("t"):
            failing_generation(error)

        assert error is info.value
        assert f"✗ {type(error).__name__}" in stream.getvalue()
        assert 0 == hogtrace.stats()["failed"]

    @pytest.mark.parametrize("error", HOSTILE, ids=lambda e: type(e).__name__)
    def test_real_client(
        self, error: Exception, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """Through the real client, the event with the error arrives at the server."""
        hogtrace.configure(clients())

        with pytest.raises(type(error)):
            failing_generation(error)
        hogtrace.flush(timeout=10)

        (event,) = capture_server.wait_for_events(1)
        assert type(error).__name__ == event["properties"]["$ai_error_type"]


class TestReleasedContent:
    def test_content_is_dropped_once_the_event_is_built(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A finished scope keeps no content, even while something inside it still runs."""

        async def main() -> Any:
            with hogtrace.span("outer") as outer:
                outer.set_input({"doc": "x" * 100_000})
                # A task created inside holds the scope as its context's current scope.
                task = asyncio.get_running_loop().create_task(asyncio.sleep(0.01))
            return outer, task

        async def run() -> Any:
            outer, task = await main()
            kept = (outer.content(), hogtrace.current())
            await task
            return kept

        content, _ = asyncio.run(run())

        assert {} == content
        assert 100_000 == len(hogtrace_events.one().input["doc"])

    def test_generation_drops_its_response(self, hogtrace_events: CapturedEvents) -> None:
        """A generation's input, output and tools go once sent; its totals stay."""
        with hogtrace.generation("g") as g:
            g.set_input([{"role": "user", "content": "hi"}])
            g.set_output("hello")
            g.set_usage(input_tokens=3)

        assert ({}, 3) == (g.content(), g.metrics.input_tokens if g.metrics else None)
        assert [{"role": "assistant", "content": "hello"}] == hogtrace_events.one().output

    def test_generation_drops_the_extracted_output(self, hogtrace_events: CapturedEvents) -> None:
        """The output read from a response goes once sent; the token counts read stay."""
        completion = {
            "model": "gpt-4o-mini",
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
        with hogtrace.generation("g", provider="openai") as g:
            g.set_output(completion)

        assert g.extracted is not None
        sent = hogtrace_events.one().output
        expected = ("hello", None, 3)
        assert expected == (
            sent[0]["content"][0]["text"],
            g.extracted.output,
            g.usage["input_tokens"],
        )


class TestForks:
    def test_scope_open_at_fork_is_emitted_by_the_parent_only(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A span open when the process forks is emitted once, by the process that opened it."""
        import os

        hogtrace.configure(clients())
        with hogtrace.span("around-fork"):
            pid = os.fork()
            if pid == 0:  # the child leaves through the with block, then exits
                try:
                    with hogtrace.span("in-child"):
                        pass
                finally:
                    pass
        if pid == 0:
            hogtrace.flush(timeout=10)
            os._exit(0)
        os.waitpid(pid, 0)
        hogtrace.flush(timeout=10)

        events = capture_server.wait_for_events(2)
        assert ["around-fork", "in-child"] == sorted(
            e["properties"]["$ai_span_name"] for e in events
        )


class TestPoisonProperties:
    def test_huge_integer_property_arrives(
        self, capture_server: CaptureServer, clients: Clients
    ) -> None:
        """A property the client could not serialise is made JSON-safe: the event arrives."""
        hogtrace.configure(clients(), properties={"big": 10**5000})

        with hogtrace.span("s", properties={"obj": object(), "n": 2**60}):
            pass
        hogtrace.flush(timeout=10)

        (event,) = capture_server.wait_for_events(1)
        props = event["properties"]
        assert (str(2**60), True) == (props["n"], props["obj"].startswith("<object object"))
        assert isinstance(props["big"], str)
        assert 0 == hogtrace.stats()["undelivered"]


class TestReleasedErrors:
    def test_traceback_is_not_kept_after_the_event(self, hogtrace_events: CapturedEvents) -> None:
        """A failed scope keeps its error's text, not the exception and its frames' locals."""
        import weakref

        class Big:
            pass

        def fail() -> None:
            local = Big()
            refs.append(weakref.ref(local))
            raise ValueError("boom")

        refs: list[Any] = []
        with pytest.raises(ValueError, match="boom"), hogtrace.span("s") as s:
            fail()
        import gc

        gc.collect()
        assert (None, "ValueError: boom") == (refs[0](), s.error)
        assert "ValueError: boom" == hogtrace_events.one().error


@hogtrace.generation(model="m")
def plain_chat(messages: list[dict[str, str]]) -> str:
    return "ok"


class TestPlainMessages:
    """Plain chat input reaches the event builder as its strings (`TextMessages`).

    The builder checks them for secrets in one go and knows their size bound; the event must
    be what the general path (redaction of the dicts, then the size limit) makes of them.
    """

    def test_event_is_that_of_the_dicts(self, hogtrace_events: CapturedEvents) -> None:
        """Without secrets, the input arrives as the caller's messages."""
        messages = [{"role": "system", "content": "Be brief."}]
        messages += [{"role": "user", "content": f"question {i}: é 😀"} for i in range(30)]
        plain_chat(messages)
        event = hogtrace_events.one()
        assert (messages, False) == (event.input, "$ai_truncated" in event.properties)

    def test_secret_in_one_message_is_redacted(self, hogtrace_events: CapturedEvents) -> None:
        """A key or token in any message's content (or role) is redacted as in the dicts."""
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "my key is sk-proj-abc123def456ghi"},
            {"role": "user", "content": "Authorization: Bearer abcdef123456"},
        ]
        plain_chat(messages)
        expected = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"my key is {REDACTED}"},
            {"role": "user", "content": f"Authorization: Bearer {REDACTED}"},
        ]
        assert expected == hogtrace_events.one().input

    def test_added_patterns_apply(self, hogtrace_events: CapturedEvents) -> None:
        """Value patterns of the user's own and added key patterns reach plain messages."""
        hogtrace.configure(redact_patterns=[r"(?<=acct=)[0-9]+"])
        add_secret_patterns(key_patterns=[r"^content$"])
        try:
            plain_chat([{"role": "user", "content": "acct=12345"}])
            hogtrace.configure(redact_patterns=[])
            plain_chat([{"role": "user", "content": "acct=12345"}])
        finally:
            reset_secret_patterns()
        first, second = hogtrace_events
        expected = ([{"role": "user", "content": REDACTED}],) * 2
        assert expected == (first.input, second.input)

    def test_redact_hook_sees_the_dicts(self, hogtrace_events: CapturedEvents) -> None:
        """The configure(redact=...) hook gets the messages as dicts, and its result is sent."""
        seen: list[Any] = []

        def hook(value: Any) -> Any:
            seen.append(value)
            return [{**m, "content": m["content"].upper()} for m in value]

        hogtrace.configure(redact=hook)
        plain_chat([{"role": "user", "content": "hi"}])
        assert [{"role": "user", "content": "hi"}] == seen[0]  # then the output
        assert [{"role": "user", "content": "HI"}] == hogtrace_events.one().input

    @pytest.mark.parametrize("limit", [2_000, 20_000])
    def test_size_limit_applies(self, hogtrace_events: CapturedEvents, limit: int) -> None:
        """Messages over the event limit are cut as the general path cuts them."""
        hogtrace.configure(max_event_bytes=limit)
        messages = [{"role": "user", "content": "x" * 400 + str(i)} for i in range(100)]
        plain_chat(messages)
        event = hogtrace_events.one()
        assert event.properties.get("$ai_truncated") is True
        assert len(json.dumps(event.properties).encode()) <= limit
        assert event.input[0]["content"].startswith("x" * 10)
