"""Secrets, the redact hook, privacy mode and capture flags, through real scopes and events.

`_redact` has unit tests of its own (tests/test_redact.py). Here secrets go in as arguments,
keyword arguments, headers and return values of decorated functions, and the events are checked
as PostHog receives them: through `capture_events()` and through the real posthog client.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import posthog
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hogtrace
from hogtrace import _errors
from hogtrace.testing import CapturedEvent, capture_events
from tests.capture_server import CaptureServer

REDACTED = "[REDACTED]"
SECRET = "sk-live-SECRET-1234"
CONTENT_KEYS = ("$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state")


def text_of(event: CapturedEvent | dict[str, Any]) -> str:
    """Everything an event carries, as one JSON string (to search for leaked secrets)."""
    if isinstance(event, CapturedEvent):
        return json.dumps(event.as_dict(normalize=False))
    return json.dumps(event)


@pytest.fixture
def lenient() -> None:
    """Internal errors are logged, not raised: the test injects faults on purpose."""
    _errors.STRICT = False


@pytest.fixture
def client(capture_server: CaptureServer) -> Iterator[Any]:
    """A real posthog client to the capture server, configured as hogtrace's destination."""
    made = posthog.Posthog("phc_test", host=capture_server.url)
    try:
        hogtrace.configure(made)
        yield made
    finally:
        hogtrace.reset()
        made.shutdown()


def delivered(client: Any, server: CaptureServer) -> list[dict[str, Any]]:
    """Flush hogtrace and the client; every event the server received."""
    hogtrace.flush(timeout=10)
    client.flush()
    return server.events


def chat_completion() -> dict[str, Any]:
    """An OpenAI chat completion as a plain dict."""
    return {
        "model": "gpt-4o",
        "choices": [{"message": {"role": "assistant", "content": "Paris"}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


@hogtrace.span
def call(url: str, headers: dict[str, str], api_key: str) -> dict[str, Any]:
    return {"status": 200, "headers": {"set-cookie": SECRET, "content-type": "json"}}


@hogtrace.span
def call_with_kwargs(url: str, **options: Any) -> str:
    return "ok"


@hogtrace.trace
def echo(value: Any) -> Any:
    return value


@hogtrace.generation(model="gpt-4o")
def chat(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return chat_completion()


@hogtrace.generation
def create(**kwargs: Any) -> Any:
    """A pass-through wrapper: the whole request is in ``kwargs``."""
    return chat_completion()


@hogtrace.embedding(model="text-embedding-3-small")
def embed(input: Any) -> Any:
    return {"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 5}}


# --- built-in redaction --------------------------------------------------------------------------


class TestBuiltInRedaction:
    def test_call_with_url_headers_and_api_key(self) -> None:
        """``call(url, headers, api_key)`` sends the url, and redacts the key and auth header."""
        headers = {"Authorization": f"Bearer {SECRET}", "Accept": "application/json"}
        with capture_events() as events:
            call("https://api.example.com", headers, SECRET)

        expected = {
            "url": "https://api.example.com",
            "headers": {"Authorization": REDACTED, "Accept": "application/json"},
            "api_key": REDACTED,
        }
        assert expected == events.one().input
        assert SECRET not in text_of(events.one())

    def test_returned_headers(self) -> None:
        """A secret in the return value is redacted too."""
        with capture_events() as events:
            call("u", {}, "k")

        expected = {"status": 200, "headers": {"set-cookie": REDACTED, "content-type": "json"}}
        assert expected == events.one().output

    @pytest.mark.parametrize(
        "key",
        [
            "api_key",
            "apikey",
            "authorization",
            "password",
            "passwd",
            "secret",
            "client_secret",
            "access_token",
            "refresh_token",
            "cookie",
            "private_key",
        ],
    )
    def test_secret_keyword_arguments(self, key: str) -> None:
        """Each secret-looking keyword argument is redacted, the others are kept."""
        with capture_events() as events:
            call_with_kwargs("u", **{key: SECRET, "timeout": 5})

        expected = {"url": "u", "options": {key: REDACTED, "timeout": 5}}
        assert expected == events.one().input

    @pytest.mark.parametrize(
        "key", ["API_KEY", "Api-Key", "PASSWORD", "Authorization", "ClientSecret", "X-Api-Key"]
    )
    def test_keys_match_in_any_case(self, key: str) -> None:
        """Secret keys are recognised whatever their case or separators."""
        with capture_events() as events:
            echo({key: SECRET})

        assert {key: REDACTED} == events.one().output

    def test_nested_dicts_and_lists(self) -> None:
        """Secrets deep inside lists of dicts of lists are redacted; their siblings stay."""
        value = {
            "calls": [
                {"request": {"headers": {"Cookie": SECRET}, "body": [{"password": SECRET}]}},
                ["plain", {"refresh_token": SECRET, "expires_in": 3600}],
            ]
        }
        with capture_events() as events:
            echo(value)

        expected = {
            "calls": [
                {"request": {"headers": {"Cookie": REDACTED}, "body": [{"password": REDACTED}]}},
                ["plain", {"refresh_token": REDACTED, "expires_in": 3600}],
            ]
        }
        assert ({"value": expected}, expected) == (events.one().input, events.one().output)

    def test_whole_value_under_a_secret_key(self) -> None:
        """A container under a secret key is redacted as a whole."""
        with capture_events() as events:
            echo({"credentials": {"user": "ada", "pin": SECRET}})

        assert {"credentials": REDACTED} == events.one().output

    def test_fields_of_models_dataclasses_and_header_objects(self) -> None:
        """Secret fields of pydantic models, dataclasses and ``httpx.Headers`` are redacted."""

        class Settings(pydantic.BaseModel):
            base_url: str
            api_key: str

        @dataclasses.dataclass
        class Login:
            user: str
            password: str

        value = {
            "settings": Settings(base_url="https://x", api_key=SECRET),
            "login": Login("ada", SECRET),
            "headers": httpx.Headers({"Authorization": SECRET, "Accept": "*/*"}),
        }
        with capture_events() as events:
            echo(value)

        output = events.one().output
        assert {"base_url": "https://x", "api_key": REDACTED} == output["settings"]
        assert {"user": "ada", "password": REDACTED} == output["login"]
        assert {"authorization": REDACTED, "accept": "*/*"} == output["headers"]
        assert SECRET not in text_of(events.one())

    def test_set_input_and_set_output(self) -> None:
        """Values given to ``set_input`` / ``set_output`` are redacted."""
        with capture_events() as events, hogtrace.span("s") as s:
            s.set_input({"token": SECRET})
            s.set_output([{"secret": SECRET}])

        assert ({"token": REDACTED}, [{"secret": REDACTED}]) == (
            events.one().input,
            events.one().output,
        )

    def test_generation_input_and_tools(self) -> None:
        """A generation's messages and tools are redacted; the request's api key never shows."""
        messages = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"arguments": {"api_key": SECRET}}]},
        ]
        tools = [{"name": "fetch", "headers": {"authorization": SECRET}}]
        with capture_events() as events:
            create(model="gpt-4o", messages=messages, tools=tools, api_key=SECRET, temperature=0)

        event = events.one()
        assert {"arguments": {"api_key": REDACTED}} == event.input[1]["tool_calls"][0]
        assert [{"name": "fetch", "headers": {"authorization": REDACTED}}] == (
            event.properties["$ai_tools"]
        )
        assert SECRET not in text_of(event)

    def test_embedding_input(self) -> None:
        """An embedding's input is redacted."""
        with capture_events() as events:
            embed({"text": "hello", "access_token": SECRET})

        assert {"text": "hello", "access_token": REDACTED} == events.one().input

    def test_user_values_are_not_changed(self) -> None:
        """Redaction works on a copy: the function and its caller see the real values."""
        headers = {"Authorization": SECRET}
        seen: list[dict[str, str]] = []

        @hogtrace.span
        def send(headers: dict[str, str]) -> dict[str, str]:
            seen.append(dict(headers))
            return headers

        with capture_events():
            returned = send(headers)

        assert ([{"Authorization": SECRET}], {"Authorization": SECRET}) == (seen, returned)
        assert returned is headers

    def test_secrets_never_reach_the_server(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """Through the real client, no request body carries the secret."""
        call("https://api.example.com", {"Authorization": SECRET}, SECRET)
        chat([{"role": "user", "content": "hi", "password": SECRET}], api_key=SECRET)
        embed({"private_key": SECRET})

        events = delivered(client, capture_server)
        assert 3 == len(events)
        assert SECRET not in json.dumps(capture_server.requests)
        assert REDACTED in text_of(events[0])


@dataclasses.dataclass
class Credentials:
    user: str
    password: str


class ApiSettings(pydantic.BaseModel):
    base_url: str
    client_secret: str


SECRET_KEYS = [
    "api_key",
    "apikey",
    "Authorization",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "access_token",
    "refresh_token",
    "Cookie",
    "private_key",
    "X-API-KEY",
]
PUBLIC_KEYS = ["session_id", "trace_id", "input_tokens", "role", "content", "url", "headers"]
SAFE_TEXT = st.text(alphabet="abc xyz-", max_size=8)
SECRET_HOLDERS = (
    st.just(SECRET)
    | st.just([SECRET, {"nested": SECRET}])
    | st.just(Credentials("ada", SECRET))
    | st.just(ApiSettings(base_url="https://x", client_secret=SECRET))
)
WITH_SECRETS = st.recursive(
    st.none() | st.integers() | SAFE_TEXT | st.just(Credentials("ada", SECRET)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.builds(
            lambda public, secret: {**public, **secret},
            st.dictionaries(st.sampled_from(PUBLIC_KEYS) | SAFE_TEXT, children, max_size=3),
            st.dictionaries(st.sampled_from(SECRET_KEYS), SECRET_HOLDERS, max_size=2),
        )
    ),
    max_leaves=15,
)


class TestSecretsProperty:
    @settings(max_examples=200, deadline=None)
    @given(WITH_SECRETS, st.sampled_from(SECRET_KEYS))
    def test_no_secret_reaches_any_event(self, value: Any, keyword: str) -> None:
        """Secrets under secret keys anywhere in arguments or results never reach an event."""

        @hogtrace.span
        def step(payload: Any, **options: Any) -> Any:
            return {"result": payload, keyword: SECRET}

        with capture_events() as events:
            step(value, **{keyword: SECRET})
            chat([{"role": "user", "content": value}], **{keyword: SECRET})
            embed(value)
            with hogtrace.span("manual") as s:
                s.set_input(value)
                s.set_output(value)

        assert 4 == len(events)
        for event in events:
            assert SECRET not in text_of(event)


class TestIdsAndCountsAreKept:
    def test_id_and_count_arguments(self) -> None:
        """Arguments named like ids and token counts are never redacted."""

        @hogtrace.span
        def step(
            session_id: str,
            trace_id: str,
            input_tokens: int,
            output_tokens: int,
            max_tokens: int,
            total_tokens: int,
        ) -> dict[str, Any]:
            return {"usage": {"input_tokens": input_tokens, "cache_read_input_tokens": 2}}

        with capture_events() as events:
            step("conv-1", "trace-1", 10, 5, 100, 15)

        expected_input = {
            "session_id": "conv-1",
            "trace_id": "trace-1",
            "input_tokens": 10,
            "output_tokens": 5,
            "max_tokens": 100,
            "total_tokens": 15,
        }
        assert expected_input == events.one().input
        assert {"usage": {"input_tokens": 10, "cache_read_input_tokens": 2}} == (
            events.one().output
        )

    def test_event_ids_and_token_properties(self) -> None:
        """Even a hook that hides every value leaves ids, tokens and model untouched."""
        hogtrace.configure(redact=lambda value: "[hidden]")
        with (
            capture_events() as events,
            hogtrace.session("conv-token-1"),
            hogtrace.trace("t", id="trace-secret-1") as t,
        ):
            chat([{"role": "user", "content": "hi"}], max_tokens=50)

        generation = events.one("generation")
        expected = {
            "$ai_session_id": "conv-token-1",
            "$ai_trace_id": "trace-secret-1",
            "$ai_parent_id": t.id,
            "$ai_model": "gpt-4o",
            "$ai_input_tokens": 11,
            "$ai_output_tokens": 7,
            "$ai_model_parameters": {"max_tokens": 50},
            "$ai_input": "[hidden]",
            "$ai_output_choices": "[hidden]",
        }
        assert expected == {key: generation.properties.get(key) for key in expected}

    def test_user_properties_are_not_content(self) -> None:
        """Properties given to a scope are sent as given: the hook only sees content."""
        hogtrace.configure(redact=lambda value: "[hidden]")
        with capture_events() as events, hogtrace.span("s", properties={"tenant": "acme"}):
            pass

        assert "acme" == events.one().properties["tenant"]


# --- the redact hook -----------------------------------------------------------------------------


EMAIL = re.compile(r"[\w.]+@[\w.]+")


def hide_emails(value: Any) -> Any:
    """A typical user hook: mask e-mail addresses anywhere in a JSON-safe value."""
    if isinstance(value, str):
        return EMAIL.sub("<email>", value)
    if isinstance(value, list):
        return [hide_emails(item) for item in value]
    if isinstance(value, dict):
        return {key: hide_emails(item) for key, item in value.items()}
    return value


class TestRedactHook:
    def test_applied_to_inputs_and_outputs_of_every_kind(self) -> None:
        """The hook rewrites span, generation and embedding inputs and outputs."""
        hogtrace.configure(redact=hide_emails)

        @hogtrace.generation
        def reply(messages: list[dict[str, str]]) -> str:
            return "I wrote to bob@example.com"

        with capture_events() as events:
            echo({"to": "ada@example.com"})
            reply([{"role": "user", "content": "mail ada@example.com"}])
            embed(["ada@example.com"])

        trace, generation, embedding = (
            events.one("trace"),
            events.one("generation"),
            events.one("embedding"),
        )
        assert ({"value": {"to": "<email>"}}, {"to": "<email>"}) == (trace.input, trace.output)
        assert [{"role": "user", "content": "mail <email>"}] == generation.input
        assert [{"role": "assistant", "content": "I wrote to <email>"}] == generation.output
        assert ["<email>"] == embedding.input
        assert "@example.com" not in "".join(text_of(e) for e in events)

    def test_applied_to_tools(self) -> None:
        """Tool definitions sent with a generation go through the hook too."""
        hogtrace.configure(redact=hide_emails)

        @hogtrace.generation
        def ask(messages: Any, tools: Any) -> str:
            return "ok"

        with capture_events() as events:
            ask("hi", tools=[{"name": "mail", "description": "writes to ada@example.com"}])

        expected = [{"name": "mail", "description": "writes to <email>"}]
        assert expected == events.one().properties["$ai_tools"]

    def test_applied_to_error_text(self) -> None:
        """The hook rewrites ``$ai_error``; ``$ai_is_error`` stays."""
        hogtrace.configure(redact=hide_emails)
        with (
            capture_events() as events,
            pytest.raises(LookupError),
            hogtrace.span("lookup"),
        ):
            raise LookupError("no user ada@example.com")

        assert ("LookupError: no user <email>", True) == (
            events.one().error,
            events.one().is_error,
        )

    def test_applied_to_set_error_text(self) -> None:
        """A message given to ``set_error`` goes through the hook too."""
        hogtrace.configure(redact=hide_emails)
        with capture_events() as events, hogtrace.span("s") as s:
            s.set_error("bounced: ada@example.com")

        assert "bounced: <email>" == events.one().error

    def test_sees_json_safe_values_after_built_in_redaction(self) -> None:
        """The hook receives JSON-safe values in which secret keys are already redacted."""
        seen: list[Any] = []

        def record(value: Any) -> Any:
            seen.append(value)
            return value

        hogtrace.configure(redact=record)
        with capture_events():
            echo({"api_key": SECRET, "when": (1, 2), "raw": b"xy"})

        expected = {"api_key": REDACTED, "when": [1, 2], "raw": "<2 bytes>"}
        assert [{"value": expected}, expected] == seen

    def test_called_once_per_content_value(self) -> None:
        """A successful span with input and output calls the hook twice, not per nested item."""
        calls: list[Any] = []
        hogtrace.configure(redact=lambda value: calls.append(value) or value)
        with capture_events():
            echo([{"a": 1}, {"b": 2}])

        assert 2 == len(calls)

    def test_result_that_is_not_json_safe(self) -> None:
        """A hook returning an arbitrary object still gives a valid JSON event."""

        class Opaque:
            def __repr__(self) -> str:
                return "Opaque()"

        hogtrace.configure(redact=lambda value: {"wrapped": Opaque(), "set": {1}})
        with capture_events() as events:
            echo("x")

        props = events.one().properties
        json.dumps(props, allow_nan=False)
        assert {"wrapped": "Opaque()", "set": [1]} == props["$ai_output_state"]

    def test_result_that_is_too_large(self) -> None:
        """A hook that makes the content huge still gives an event within the limit."""
        hogtrace.configure(redact=lambda value: "h" * 2_000_000, max_event_bytes=50_000)
        with capture_events() as events:
            echo("x")

        props = events.one().properties
        assert props["$ai_truncated"] is True
        without_flag = {k: v for k, v in props.items() if k != "$ai_truncated"}
        assert len(json.dumps(without_flag).encode()) <= 50_000

    @pytest.mark.usefixtures("lenient")
    @pytest.mark.parametrize("kind", ["span", "generation", "embedding"])
    def test_raising_hook_neither_leaks_nor_breaks_the_call(self, kind: str) -> None:
        """A hook that raises sends a marker instead of the content, and the call succeeds."""

        def broken(value: Any) -> Any:
            raise RuntimeError("hook bug")

        hogtrace.configure(redact=broken)
        run = {
            "span": lambda: echo({"note": "PRIVATE-TEXT"}),
            "generation": lambda: chat([{"role": "user", "content": "PRIVATE-TEXT"}]),
            "embedding": lambda: embed("PRIVATE-TEXT"),
        }[kind]
        with capture_events() as events:
            result = run()

        assert result is not None
        event = events.one()
        assert "PRIVATE-TEXT" not in text_of(event)
        content = [event.properties[k] for k in CONTENT_KEYS if k in event.properties]
        assert content
        assert all(isinstance(value, str) and value for value in content)

    @pytest.mark.usefixtures("lenient")
    def test_raising_hook_on_error_text(self) -> None:
        """A hook that raises on the error text never leaks the message; the error stays flagged."""
        hogtrace.configure(redact=lambda value: 1 / 0)
        error = ValueError("card 4242-PRIVATE")
        with (
            capture_events() as events,
            pytest.raises(ValueError, match="card") as info,
            hogtrace.span("pay"),
        ):
            raise error

        assert error is info.value
        event = events.one()
        assert event.is_error
        assert "PRIVATE" not in text_of(event)

    @pytest.mark.usefixtures("lenient")
    def test_raising_hook_through_the_real_client(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """In the delivery worker, a raising hook still sends the event, without the content."""

        def broken(value: Any) -> Any:
            raise RuntimeError("hook bug")

        hogtrace.configure(redact=broken)
        assert {"note": "PRIVATE-TEXT"} == echo({"note": "PRIVATE-TEXT"})

        [event] = delivered(client, capture_server)
        assert "echo" == event["properties"]["$ai_span_name"]
        assert "PRIVATE-TEXT" not in json.dumps(capture_server.requests)


# --- privacy mode --------------------------------------------------------------------------------


@hogtrace.span
def child(question: str) -> str:
    return f"answer to {question}"


@hogtrace.trace
def root(question: str) -> str:
    return child(question)


def run_every_kind() -> None:
    """Emit one event of every kind, each with PRIVATE content in and out."""
    root("PRIVATE question")
    chat([{"role": "user", "content": "PRIVATE prompt"}])
    embed("PRIVATE text")


#: The content keys each event kind sends as null under privacy mode.
PRIVATE_KEYS = {
    "$ai_trace": ("$ai_input_state", "$ai_output_state"),
    "$ai_span": ("$ai_input_state", "$ai_output_state"),
    "$ai_generation": ("$ai_input", "$ai_output_choices"),
    "$ai_embedding": ("$ai_input",),
}


def assert_private(events: list[dict[str, Any]]) -> None:
    """Every event kind is present; its content keys are sent, as null; nothing PRIVATE leaks."""
    __tracebackhide__ = True
    by_kind = {e["event"]: e["properties"] for e in events}
    assert set(PRIVATE_KEYS) == set(by_kind)
    for kind, keys in PRIVATE_KEYS.items():
        props = by_kind[kind]
        assert dict.fromkeys(keys) == {key: props.get(key, "<absent>") for key in keys}
    assert "PRIVATE" not in json.dumps(events)
    generation = by_kind["$ai_generation"]
    assert ("gpt-4o", 11, 7) == (
        generation["$ai_model"],
        generation["$ai_input_tokens"],
        generation["$ai_output_tokens"],
    )
    assert 5 == by_kind["$ai_embedding"]["$ai_input_tokens"]


class TestPrivacyMode:
    def test_every_event_kind(self) -> None:
        """``privacy_mode=True`` sends each kind's content keys as null and keeps the metadata."""
        hogtrace.configure(privacy_mode=True)
        with capture_events() as events:
            run_every_kind()

        assert_private([e.as_dict() for e in events])

    def test_posthog_client_privacy_mode_on_the_wire(self, capture_server: CaptureServer) -> None:
        """A client created with ``privacy_mode=True`` hides content of every kind it receives."""
        made = posthog.Posthog("phc_test", host=capture_server.url, privacy_mode=True)
        try:
            hogtrace.configure(made)
            run_every_kind()
            assert_private(delivered(made, capture_server))
        finally:
            hogtrace.reset()
            made.shutdown()

    def test_hogtrace_privacy_mode_on_the_wire(
        self, client: Any, capture_server: CaptureServer
    ) -> None:
        """``configure(privacy_mode=True)`` with an ordinary client hides content on the wire."""
        hogtrace.configure(privacy_mode=True)
        run_every_kind()

        assert_private(delivered(client, capture_server))

    @pytest.mark.parametrize("kind", ["trace", "span", "generation", "embedding"])
    def test_error_is_the_exception_type_only(self, kind: str) -> None:
        """Under privacy mode ``$ai_error`` is the exception type, for every kind of scope."""
        hogtrace.configure(privacy_mode=True)
        scopes: dict[str, Callable[[], Any]] = {
            "trace": lambda: hogtrace.trace("t"),
            "span": lambda: hogtrace.span("s"),
            "generation": lambda: hogtrace.generation("g"),
            "embedding": lambda: hogtrace.embedding("e"),
        }
        with (
            capture_events() as events,
            hogtrace.trace("outer"),
            pytest.raises(PermissionError),
            scopes[kind](),
        ):
            raise PermissionError("PRIVATE: user ada may not read /etc/shadow")

        failed = events.errors[0]
        assert ("PermissionError", True) == (failed.error, failed.is_error)
        assert "PRIVATE" not in text_of(failed)

    def test_error_of_decorated_functions_on_the_wire(self, capture_server: CaptureServer) -> None:
        """Through a privacy-mode client, errors of decorated functions arrive as types only."""

        @hogtrace.generation
        def failing_chat(messages: Any) -> Any:
            raise TimeoutError("PRIVATE prompt was too long")

        made = posthog.Posthog("phc_test", host=capture_server.url, privacy_mode=True)
        try:
            hogtrace.configure(made)
            with pytest.raises(TimeoutError), hogtrace.trace("t"):
                failing_chat([{"role": "user", "content": "PRIVATE"}])

            events = {e["event"]: e["properties"] for e in delivered(made, capture_server)}
            assert "TimeoutError" == events["$ai_generation"]["$ai_error"]
            assert "TimeoutError" == events["$ai_trace"]["$ai_error"]
            assert "PRIVATE" not in json.dumps(capture_server.requests)
        finally:
            hogtrace.reset()
            made.shutdown()

    def test_set_error_text_is_hidden(self) -> None:
        """A message given to ``set_error`` does not leak under privacy mode."""
        hogtrace.configure(privacy_mode=True)
        with capture_events() as events, hogtrace.span("s") as s:
            s.set_error("PRIVATE reason")

        assert events.one().is_error
        assert "PRIVATE" not in text_of(events.one())

    def test_set_input_set_output_and_generators(self) -> None:
        """Explicit inputs and outputs, generator items and streams are all sent as null."""
        hogtrace.configure(privacy_mode=True)

        @hogtrace.span
        def items() -> Iterator[str]:
            yield "PRIVATE item"

        @hogtrace.generation
        def stream(messages: Any) -> Iterator[dict[str, Any]]:
            yield {"choices": [{"delta": {"content": "PRIVATE chunk"}}]}

        with capture_events() as events:
            with hogtrace.span("manual") as s:
                s.set_input("PRIVATE in")
                s.set_output("PRIVATE out")
            list(items())
            list(stream("PRIVATE prompt"))

        assert [(None, None)] * 3 == [(e.input, e.output) for e in events]
        assert "PRIVATE" not in "".join(text_of(e) for e in events)

    def test_content_is_never_serialized(self) -> None:
        """Under privacy mode arguments and results are not even converted."""
        conversions: list[str] = []

        class Watched:
            def tolist(self) -> list[int]:
                conversions.append("tolist")
                return [1]

        hogtrace.configure(privacy_mode=True)
        with capture_events() as events:
            echo(Watched())

        assert [] == conversions
        assert (None, None) == (events.one().input, events.one().output)

    def test_redact_hook_is_not_given_hidden_content(self) -> None:
        """With privacy mode on, the hook never sees the content it would redact."""
        seen: list[Any] = []
        hogtrace.configure(privacy_mode=True, redact=lambda value: seen.append(value) or value)
        with capture_events():
            echo("PRIVATE")

        assert "PRIVATE" not in json.dumps(seen)


# --- capture_input / capture_output --------------------------------------------------------------


class Watched:
    """Records every conversion of itself, to prove a value was not even serialized."""

    def __init__(self) -> None:
        self.conversions = 0

    def tolist(self) -> list[str]:
        self.conversions += 1
        return ["PRIVATE"]


def decorate(kind: str, **flags: bool) -> Callable[[Callable[..., Any]], Any]:
    return {
        "trace": lambda: hogtrace.trace(**flags),
        "span": lambda: hogtrace.span(**flags),
        "generation": lambda: hogtrace.generation(model="m", **flags),
        "embedding": lambda: hogtrace.embedding(model="m", **flags),
    }[kind]()


INPUT_KEY = {
    "trace": "$ai_input_state",
    "span": "$ai_input_state",
    "generation": "$ai_input",
    "embedding": "$ai_input",
}
OUTPUT_KEY = {
    "trace": "$ai_output_state",
    "span": "$ai_output_state",
    "generation": "$ai_output_choices",
}


class TestCaptureFlags:
    @pytest.mark.parametrize("kind", ["trace", "span", "generation", "embedding"])
    def test_capture_input_false(self, kind: str) -> None:
        """``capture_input=False`` sends no input and never converts the arguments."""
        watched = Watched()

        @decorate(kind, capture_input=False)
        def work(input: Any) -> str:
            return "visible output"

        with capture_events() as events:
            work(watched)

        props = events.one().properties
        assert 0 == watched.conversions
        assert props.get(INPUT_KEY[kind]) is None
        assert "PRIVATE" not in json.dumps(props)
        if kind in OUTPUT_KEY:
            assert "visible output" in json.dumps(props[OUTPUT_KEY[kind]])

    @pytest.mark.parametrize("kind", ["trace", "span", "generation"])
    def test_capture_output_false(self, kind: str) -> None:
        """``capture_output=False`` sends no output and never converts the result."""
        watched = Watched()

        @decorate(kind, capture_output=False)
        def work(input: str) -> Any:
            return watched

        with capture_events() as events:
            assert watched is work("visible input")

        props = events.one().properties
        assert 0 == watched.conversions
        assert props.get(OUTPUT_KEY[kind]) is None
        assert "PRIVATE" not in json.dumps(props)
        assert "visible input" in json.dumps(props[INPUT_KEY[kind]])

    def test_generation_without_output_keeps_model_and_tokens(self) -> None:
        """A generation with ``capture_output=False`` still reads model and usage."""

        @hogtrace.generation(capture_output=False)
        def ask(messages: Any) -> Any:
            return chat_completion()

        with capture_events() as events:
            ask("hi")

        props = events.one().properties
        assert ("gpt-4o", 11, 7) == (
            props["$ai_model"],
            props["$ai_input_tokens"],
            props["$ai_output_tokens"],
        )
        assert "Paris" not in json.dumps(props)

    def test_explicit_set_input_and_set_output_win_over_the_flags(self) -> None:
        """The flags stop automatic capture; an explicit ``set_input`` / ``set_output`` is kept."""
        with (
            capture_events() as events,
            hogtrace.span("s", capture_input=False, capture_output=False) as s,
        ):
            s.set_input("shown in")
            s.set_output("shown out")

        assert ("shown in", "shown out") == (events.one().input, events.one().output)

    def test_flags_stop_automatic_capture(self) -> None:
        """With both flags off, a decorated call records neither arguments nor result."""

        @hogtrace.span(capture_input=False, capture_output=False)
        def step(secret: str) -> str:
            return secret

        with capture_events() as events:
            step("PRIVATE")

        assert (None, None) == (events.one().input, events.one().output)
        assert "PRIVATE" not in text_of(events.one())

    def test_errors_are_still_recorded(self) -> None:
        """Turning content capture off keeps the error flag and message."""

        @hogtrace.span(capture_input=False, capture_output=False)
        def fail(x: str) -> None:
            raise ValueError("bad x")

        with capture_events() as events, pytest.raises(ValueError, match="bad x"):
            fail("PRIVATE")

        assert ("ValueError: bad x", True) == (events.one().error, events.one().is_error)

    def test_flags_apply_per_scope(self) -> None:
        """A parent that hides its input does not hide the input of scopes inside it."""

        @hogtrace.trace(capture_input=False)
        def outer(secret_plan: str) -> str:
            return inner("visible")

        @hogtrace.span
        def inner(note: str) -> str:
            return note

        with capture_events() as events:
            outer("PRIVATE")

        assert {"note": "visible"} == events.one("span").input
        assert events.one("trace").input is None
        assert "PRIVATE" not in "".join(text_of(e) for e in events)
