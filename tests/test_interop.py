"""PostHog's own LLM wrappers join the enclosing hogtrace scope (``hogtrace._interop``).

Real wrappers (``posthog.ai.openai``, ``posthog.ai.anthropic``, LangChain's ``CallbackHandler``)
call a local OpenAI/Anthropic-compatible endpoint (``tests/openai_server.py``) through the real
SDKs, and the real ``posthog.Posthog`` client delivers to the local capture server.
"""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import anthropic
import openai
import posthog
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from posthog.ai.anthropic import Anthropic
from posthog.ai.langchain import CallbackHandler
from posthog.ai.openai import AsyncOpenAI, OpenAI

import hogtrace
from hogtrace import _interop, _state
from hogtrace.testing import capture_events
from tests.capture_server import CaptureServer
from tests.openai_server import ANSWER, USAGE, OpenAIServer

MESSAGES = [{"role": "user", "content": "What is PostHog?"}]


@pytest.fixture
def client(capture_server: CaptureServer) -> Iterator[posthog.Posthog]:
    """A real PostHog client delivering to the local capture server."""
    ph = posthog.Posthog("phc_test", host=capture_server.url)
    try:
        yield ph
    finally:
        ph.shutdown()


@pytest.fixture
def traced(client: posthog.Posthog) -> posthog.Posthog:
    """The client, configured as hogtrace's destination (which installs the hook)."""
    hogtrace.configure(client)
    return client


@pytest.fixture
def oai(traced: posthog.Posthog, llm_server: OpenAIServer) -> Iterator[OpenAI]:
    """PostHog's OpenAI wrapper on the configured client, pointed at the local endpoint."""
    wrapper = OpenAI(
        posthog_client=traced, base_url=llm_server.openai_url, api_key="sk-test", max_retries=0
    )
    try:
        yield wrapper
    finally:
        wrapper.close()


def delivered(server: CaptureServer) -> list[dict[str, Any]]:
    """Every event the capture server received, after hogtrace and the client flushed."""
    hogtrace.flush()
    client = _state.state.config.client
    if client is not None:
        client.flush()
    return server.events


def by_kind(events: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events named ``kind`` (``"$ai_generation"``, ...)."""
    return [e for e in events if e["event"] == kind]


def one(events: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single event named ``kind``."""
    found = by_kind(events, kind)
    assert 1 == len(found), [e["event"] for e in events]
    return found[0]


def shape(events: Iterable[Any]) -> list[Any]:
    """The trees the events form, the way PostHog's UI links them.

    Node id = ``$ai_span_id``; parent = ``$ai_parent_id`` else the trace id. Each node is
    ``(event, name)`` or ``(event, name, [children])``; name is ``$ai_span_name`` else the model.
    Siblings keep emission order.
    """
    items = [
        (e["event"], e["properties"]) if isinstance(e, Mapping) else (e.event, e.properties)
        for e in events
    ]
    nodes = {p["$ai_span_id"]: (kind, p) for kind, p in items}
    kids: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    roots = []
    for kind, p in items:
        parent = p.get("$ai_parent_id") or p["$ai_trace_id"]
        if parent in nodes and parent != p["$ai_span_id"]:
            kids.setdefault(parent, []).append((kind, p))
        else:
            roots.append((kind, p))

    def build(kind: str, p: Mapping[str, Any]) -> Any:
        name = p.get("$ai_span_name") or p.get("$ai_model")
        children = [build(*kid) for kid in kids.get(p["$ai_span_id"], [])]
        return (kind, name, children) if children else (kind, name)

    return [build(*root) for root in roots]


class TestOpenAIWrapper:
    def test_chat_completion_joins_scope(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A wrapped chat completion inside a span is delivered as that span's child."""
        with (
            hogtrace.session("conv-1"),
            hogtrace.trace("answer") as trace,
            hogtrace.span("llm") as span,
        ):
            reply = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        events = delivered(capture_server)
        generation = one(events, "$ai_generation")
        props = generation["properties"]
        assert ANSWER == reply.choices[0].message.content
        assert [
            ("$ai_trace", "answer", [("$ai_span", "llm", [("$ai_generation", "gpt-4o-mini")])])
        ] == shape(events)
        assert trace.trace_id == props["$ai_trace_id"]
        assert span.id == props["$ai_parent_id"]
        assert "conv-1" == props["$ai_session_id"]
        assert props["$ai_span_id"] not in (span.id, trace.id)
        assert "posthog-ai" == props["$ai_lib"]
        assert "conv-1" == generation["distinct_id"]  # personless: the conversation
        assert props["$process_person_profile"] is False

    def test_tokens_add_to_enclosing_metrics(self, oai: OpenAI) -> None:
        """The wrapper's token counts add to every enclosing scope's metrics."""
        with hogtrace.trace("answer") as trace, hogtrace.span("llm") as span:
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        prompt, completion = USAGE["chat"]
        assert span.metrics is not None
        assert trace.metrics is not None
        assert (2 * prompt, 2 * completion, 2) == (
            span.metrics.input_tokens,
            span.metrics.output_tokens,
            span.metrics.generations,
        )
        assert (2 * prompt, 2 * completion, 2) == (
            trace.metrics.input_tokens,
            trace.metrics.output_tokens,
            trace.metrics.generations,
        )

    def test_stream_joins_scope(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A streamed completion joins the scope and counts the usage chunk's tokens."""
        with hogtrace.trace("answer") as trace:
            stream = oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert ANSWER == text
        assert (trace.trace_id, trace.id) == (props["$ai_trace_id"], props["$ai_parent_id"])
        assert USAGE["chat"] == (props["$ai_input_tokens"], props["$ai_output_tokens"])
        assert trace.metrics is not None
        assert USAGE["chat"] == (trace.metrics.input_tokens, trace.metrics.output_tokens)

    def test_embedding_joins_scope(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A wrapped embeddings call is an ``$ai_embedding`` child with its input tokens."""
        with hogtrace.trace("index") as trace, hogtrace.span("embed") as span:
            oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])

        events = delivered(capture_server)
        props = one(events, "$ai_embedding")["properties"]
        assert (trace.trace_id, span.id) == (props["$ai_trace_id"], props["$ai_parent_id"])
        assert span.metrics is not None
        assert (USAGE["embeddings"][0], 1) == (
            span.metrics.input_tokens,
            span.metrics.generations,
        )

    def test_responses_api_joins_scope(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A wrapped Responses API call joins the scope with its tokens."""
        with hogtrace.trace("answer") as trace:
            response = oai.responses.create(model="gpt-4o-mini", input="What is PostHog?")

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert ANSWER == response.output_text
        assert (trace.trace_id, trace.id) == (props["$ai_trace_id"], props["$ai_parent_id"])
        assert trace.metrics is not None
        assert USAGE["responses"] == (trace.metrics.input_tokens, trace.metrics.output_tokens)

    def test_scope_trace_id_wins_over_posthog_trace_id(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """Inside a scope, the scope's trace id replaces the call's ``posthog_trace_id``."""
        with hogtrace.trace("answer") as trace:
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, posthog_trace_id="theirs"
            )

        generation = one(delivered(capture_server), "$ai_generation")
        assert trace.trace_id == generation["properties"]["$ai_trace_id"]
        assert trace.trace_id == generation["distinct_id"]

    def test_scope_distinct_id_replaces_personless_fallback(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """A wrapper call without a user gets the scope's distinct id and a person profile."""
        with hogtrace.trace("answer", distinct_id="user-7"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            for _ in oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass

        generations = by_kind(delivered(capture_server), "$ai_generation")
        assert ["user-7", "user-7"] == [g["distinct_id"] for g in generations]
        assert [False, False] == ["$process_person_profile" in g["properties"] for g in generations]

    def test_distinct_id_learned_mid_trace_applies(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """``set_distinct_id()`` part-way through: the wrapper's later event goes to that
        person too, not to an anonymous id (one request is not split across two people)."""
        with hogtrace.trace("answer"), hogtrace.span("step"):
            hogtrace.current_trace().set_distinct_id("user-1")
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        events = delivered(capture_server)
        assert {"user-1"} == {e["distinct_id"] for e in events}
        assert not any("$process_person_profile" in e["properties"] for e in events)

    def test_console_prints_wrapper_calls_outside_scopes_at_once(
        self, oai: OpenAI, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With ``console=True`` a wrapper call outside every scope is printed when it is
        made: no root of ours will close its trace (they were held, contents and all)."""
        hogtrace.configure(console=True)
        for _ in range(3):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        assert 3 == capsys.readouterr().err.count("[generation")
        hogtrace.flush()
        assert "" == capsys.readouterr().err  # nothing was left waiting

    def test_wrapper_distinct_id_wins(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A ``posthog_distinct_id`` given to the call is kept."""
        with hogtrace.trace("answer", distinct_id="user-7"):
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, posthog_distinct_id="user-9"
            )

        assert "user-9" == one(delivered(capture_server), "$ai_generation")["distinct_id"]

    def test_configured_distinct_id_applies(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """With no distinct id on the scope, ``configure(distinct_id=...)`` applies."""
        hogtrace.configure(distinct_id="service-a")
        with hogtrace.trace("answer"):
            oai.embeddings.create(model="text-embedding-3-small", input="a")

        assert "service-a" == one(delivered(capture_server), "$ai_embedding")["distinct_id"]

    def test_session_and_trace_properties_apply(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """Properties of enclosing sessions and traces land on the wrapper's event."""
        with (
            hogtrace.session("conv-1", properties={"plan": "pro"}),
            hogtrace.trace("answer", properties={"team": "growth"}),
        ):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert ("pro", "growth") == (props["plan"], props["team"])

    def test_failed_call_counts_as_error(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A failed wrapped call is an error child and counts in the scope's errors."""
        with hogtrace.trace("answer") as trace, pytest.raises(openai.RateLimitError):
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "FAIL"}]
            )

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert (True, trace.id) == (props["$ai_is_error"], props["$ai_parent_id"])
        assert trace.metrics is not None
        assert (1, 1) == (trace.metrics.errors, trace.metrics.generations)

    def test_outside_any_scope_unchanged(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """Outside hogtrace scopes the wrapper's event is sent as the wrapper made it."""
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, posthog_trace_id="their-trace"
        )

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert "their-trace" == props["$ai_trace_id"]
        assert "$ai_parent_id" not in props
        assert "$ai_span_id" not in props

    async def test_async_wrapper_joins_scope(
        self, traced: posthog.Posthog, llm_server: OpenAIServer, capture_server: CaptureServer
    ) -> None:
        """``AsyncOpenAI`` calls awaited inside an async scope join it."""
        wrapper = AsyncOpenAI(
            posthog_client=traced, base_url=llm_server.openai_url, api_key="sk-test", max_retries=0
        )
        try:
            async with hogtrace.trace("answer") as trace:
                await asyncio.gather(
                    wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
                    wrapper.embeddings.create(model="text-embedding-3-small", input="a"),
                )
        finally:
            await wrapper.close()

        events = delivered(capture_server)
        children = [e for e in events if e["event"] != "$ai_trace"]
        assert 2 == len(children)
        assert [(trace.trace_id, trace.id)] * 2 == [
            (e["properties"]["$ai_trace_id"], e["properties"]["$ai_parent_id"]) for e in children
        ]
        assert trace.metrics is not None
        assert 2 == trace.metrics.generations

    def test_calls_in_propagated_threads_join_scope(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """Wrapper calls in pool threads started with ``propagate`` join the submitting scope."""

        def ask(i: int) -> str:
            reply = oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
            )
            return reply.id

        with hogtrace.trace("fan-out") as trace, concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(hogtrace.propagate(ask), range(4)))

        generations = by_kind(delivered(capture_server), "$ai_generation")
        assert [(trace.trace_id, trace.id)] * 4 == [
            (g["properties"]["$ai_trace_id"], g["properties"]["$ai_parent_id"]) for g in generations
        ]
        assert trace.metrics is not None
        assert 4 == trace.metrics.generations

    def test_capture_v1(self, capture_server: CaptureServer, llm_server: OpenAIServer) -> None:
        """With ``capture_mode="v1"`` the same single tree is delivered on the v1 endpoint."""
        client = posthog.Posthog("phc_test", host=capture_server.url, capture_mode="v1")
        wrapper = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-x", max_retries=0
        )
        try:
            hogtrace.configure(client)
            with hogtrace.trace("answer"), hogtrace.span("llm"):
                wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            events = delivered(capture_server)
        finally:
            wrapper.close()
            client.shutdown()

        assert {"/i/v1/analytics/events"} == {r["path"] for r in capture_server.requests}
        expected = [
            ("$ai_trace", "answer", [("$ai_span", "llm", [("$ai_generation", "gpt-4o-mini")])])
        ]
        assert expected == shape(events)


class TestPrivacy:
    def test_client_privacy_mode_keeps_applying(
        self, capture_server: CaptureServer, llm_server: OpenAIServer
    ) -> None:
        """The client's ``privacy_mode`` still nulls the wrapper's content; ids and tokens stay."""
        client = posthog.Posthog("phc_test", host=capture_server.url, privacy_mode=True)
        wrapper = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-x", max_retries=0
        )
        try:
            hogtrace.configure(client)
            with hogtrace.trace("answer") as trace:
                wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            events = delivered(capture_server)
        finally:
            wrapper.close()
            client.shutdown()

        props = one(events, "$ai_generation")["properties"]
        assert (None, None) == (props["$ai_input"], props["$ai_output_choices"])
        assert (trace.trace_id, USAGE["chat"][0]) == (
            props["$ai_trace_id"],
            props["$ai_input_tokens"],
        )

    def test_hogtrace_privacy_mode_hides_wrapper_content(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """``configure(privacy_mode=True)`` nulls joined wrapper content and error text too."""
        hogtrace.configure(privacy_mode=True)
        with hogtrace.trace("answer"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.RateLimitError):
                oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "FAIL secret"}]
                )

        ok, failed = by_kind(delivered(capture_server), "$ai_generation")
        assert (None, None) == (
            ok["properties"]["$ai_input"],
            ok["properties"]["$ai_output_choices"],
        )
        assert "secret" not in str(failed["properties"]["$ai_error"])
        assert USAGE["chat"][0] == ok["properties"]["$ai_input_tokens"]


class TestBeforeSendChain:
    def test_user_hook_sees_joined_event(
        self, capture_server: CaptureServer, llm_server: OpenAIServer
    ) -> None:
        """The user's own ``before_send`` runs after the join and can still change the event."""
        seen: list[str] = []

        def before_send(msg: dict[str, Any]) -> dict[str, Any]:
            seen.append(msg["properties"].get("$ai_trace_id"))
            msg["properties"]["checked"] = True
            return msg

        client = posthog.Posthog("phc_test", host=capture_server.url, before_send=before_send)
        wrapper = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-x", max_retries=0
        )
        try:
            hogtrace.configure(client)
            with hogtrace.trace("answer") as trace:
                wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            events = delivered(capture_server)
        finally:
            wrapper.close()
            client.shutdown()

        assert trace.trace_id in seen
        assert [True, True] == [e["properties"].get("checked") for e in events]

    def test_user_hook_can_drop(
        self, capture_server: CaptureServer, llm_server: OpenAIServer
    ) -> None:
        """A user ``before_send`` returning ``None`` still drops the wrapper's event."""
        client = posthog.Posthog(
            "phc_test",
            host=capture_server.url,
            before_send=lambda msg: None if msg["event"] == "$ai_generation" else msg,
        )
        wrapper = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-x", max_retries=0
        )
        try:
            hogtrace.configure(client)
            with hogtrace.trace("answer") as trace:
                wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            events = delivered(capture_server)
        finally:
            wrapper.close()
            client.shutdown()

        assert ["$ai_trace"] == [e["event"] for e in events]
        assert trace.metrics is not None
        assert 1 == trace.metrics.generations  # it did run inside the scope

    def test_installed_once(self, client: posthog.Posthog) -> None:
        """Configuring the same client again does not chain the hook twice."""
        hogtrace.configure(client)
        hook = client.before_send
        hogtrace.configure(client)

        assert hook is client.before_send
        assert isinstance(hook, _interop._BeforeSend)
        assert hook.previous is None

    def test_removed_on_reset(self) -> None:
        """``reset()`` gives the client its own ``before_send`` back."""

        def mine(msg: dict[str, Any]) -> dict[str, Any]:
            return msg

        ph = posthog.Posthog("phc_test", host="http://127.0.0.1:9", send=False, before_send=mine)
        try:
            hogtrace.configure(ph)
            assert mine is ph.before_send.previous
            hogtrace.reset()
            assert mine is ph.before_send
        finally:
            ph.shutdown()

    def test_not_installed_on_async_client(self) -> None:
        """``AsyncPosthog`` runs ``before_send`` in a worker: the hook is not installed there."""
        async_client = posthog.AsyncPosthog("phc_test", host="http://127.0.0.1:9", send=False)

        _interop.install(async_client)

        assert async_client.before_send is None

    def test_own_events_pass_through(self) -> None:
        """hogtrace's own events (delivered by its worker) are not rewritten."""
        msg = {
            "event": "$ai_span",
            "distinct_id": "d",
            "properties": {"$ai_lib": "hogtrace", "$ai_trace_id": "t", "$ai_span_id": "s"},
        }
        hook = _interop._BeforeSend(None)

        with hogtrace.trace("other"):
            result = hook(dict(msg))

        assert msg == result

    def test_annotations_are_not_joined(self) -> None:
        """A user's own ``$ai_metric`` keeps the trace it names (only tree events join)."""
        msg = {
            "event": "$ai_metric",
            "distinct_id": "d",
            "properties": {"$ai_trace_id": "t-1", "$ai_metric_name": "score"},
        }
        hook = _interop._BeforeSend(None)

        with hogtrace.trace("other"):
            result = hook({**msg, "properties": dict(msg["properties"])})

        assert msg == result

    def test_dropped_with_unsampled_scope(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """Inside a trace that sampling drops, the wrapper's events are dropped too."""
        hogtrace.configure(sample_rate=0.0)
        with hogtrace.trace("answer"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        assert [] == delivered(capture_server)


class TestCaptureEvents:
    def test_wrapper_events_recorded(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """Inside ``capture_events()`` the wrapper's events are recorded, in the tree, not sent."""
        with capture_events() as events, hogtrace.trace("answer"), hogtrace.span("llm"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            oai.embeddings.create(model="text-embedding-3-small", input="a")

        expected = [
            (
                "$ai_trace",
                "answer",
                [
                    (
                        "$ai_span",
                        "llm",
                        [
                            ("$ai_generation", "gpt-4o-mini"),
                            ("$ai_embedding", "text-embedding-3-small"),
                        ],
                    )
                ],
            )
        ]
        assert expected == shape(events)
        assert "gpt-4o-mini" in events.tree()
        assert [] == delivered(capture_server)

    def test_wrapper_events_outside_scopes_recorded(self, oai: OpenAI) -> None:
        """A wrapper call outside any scope is recorded too, with its own trace."""
        with capture_events() as events:
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, posthog_trace_id="theirs"
            )

        assert ["theirs"] == [e.trace_id for e in events.generations]

    def test_user_hook_applies_before_recording(
        self, capture_server: CaptureServer, llm_server: OpenAIServer
    ) -> None:
        """What is recorded is what the user's ``before_send`` would have let through."""
        client = posthog.Posthog(
            "phc_test",
            host=capture_server.url,
            before_send=lambda msg: {**msg, "properties": {**msg["properties"], "seen": 1}},
        )
        wrapper = OpenAI(
            posthog_client=client, base_url=llm_server.openai_url, api_key="sk-x", max_retries=0
        )
        try:
            hogtrace.configure(client)
            with capture_events() as events, hogtrace.trace("answer"):
                wrapper.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            wrapper.close()
            client.shutdown()

        assert 1 == events.generations[0].properties["seen"]


def fake_chat_model(content: str = "hello there") -> GenericFakeChatModel:
    """A LangChain chat model that answers ``content`` with usage metadata."""
    message = AIMessage(
        content=content, usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    )
    return GenericFakeChatModel(messages=iter([message]))


def chain_of(model: GenericFakeChatModel) -> Any:
    """prompt | model | upper-case: a ``RunnableSequence`` of three runs."""
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])

    def upper(message: BaseMessage) -> str:
        return str(message.content).upper()

    return prompt | model | RunnableLambda(upper)


CHAIN_TREE = (
    "$ai_span",
    "RunnableSequence",
    [
        ("$ai_span", "ChatPromptTemplate"),
        ("$ai_generation", "GenericFakeChatModel"),
        ("$ai_span", "upper"),
    ],
)


class TestLangChain:
    def test_chain_nests_under_span(
        self, traced: posthog.Posthog, capture_server: CaptureServer
    ) -> None:
        """LangChain's root chain becomes a span under the hogtrace span, its runs below it."""
        handler = CallbackHandler(traced)
        with (
            hogtrace.session("conv-1"),
            hogtrace.trace("answer") as trace,
            hogtrace.span("chain") as span,
        ):
            out = chain_of(fake_chat_model()).invoke(
                {"question": "hi"}, config={"callbacks": [handler]}
            )

        events = delivered(capture_server)
        assert "HELLO THERE" == out
        assert [("$ai_trace", "answer", [("$ai_span", "chain", [CHAIN_TREE])])] == shape(events)
        assert ["$ai_trace"] == [e["event"] for e in events if e["event"] == "$ai_trace"]
        assert {trace.trace_id} == {e["properties"]["$ai_trace_id"] for e in events}
        assert {"conv-1"} == {e["properties"]["$ai_session_id"] for e in events}
        assert {"conv-1"} == {e["distinct_id"] for e in events}
        assert span.metrics is not None
        assert (7, 3, 1) == (
            span.metrics.input_tokens,
            span.metrics.output_tokens,
            span.metrics.generations,
        )

    def test_custom_trace_id_keeps_tree(self, traced: posthog.Posthog) -> None:
        """With ``CallbackHandler(trace_id=...)`` the chain's runs still nest under its root."""
        handler = CallbackHandler(traced, trace_id="their-trace")
        with capture_events() as events, hogtrace.trace("answer"):
            chain_of(fake_chat_model()).invoke({"question": "hi"}, config={"callbacks": [handler]})

        assert [("$ai_trace", "answer", [CHAIN_TREE])] == shape(events)

    def test_custom_trace_id_reused(self, traced: posthog.Posthog) -> None:
        """Two runs with one handler and one custom trace id stay two separate subtrees."""
        handler = CallbackHandler(traced, trace_id="their-trace")
        with capture_events() as events, hogtrace.trace("answer"):
            for text in ("one", "two"):
                chain_of(fake_chat_model(text)).invoke(
                    {"question": "hi"}, config={"callbacks": [handler]}
                )

        assert [("$ai_trace", "answer", [CHAIN_TREE, CHAIN_TREE])] == shape(events)

    def test_handler_given_hogtrace_trace_id(self, traced: posthog.Posthog) -> None:
        """A handler given the hogtrace trace id itself still nests under the current span."""
        with capture_events() as events, hogtrace.trace("answer") as trace:
            handler = CallbackHandler(traced, trace_id=trace.trace_id)
            with hogtrace.span("chain"):
                chain_of(fake_chat_model()).invoke(
                    {"question": "hi"}, config={"callbacks": [handler]}
                )

        assert [("$ai_trace", "answer", [("$ai_span", "chain", [CHAIN_TREE])])] == shape(events)

    def test_model_alone_nests_under_span(self, traced: posthog.Posthog) -> None:
        """A chat model invoked directly is a generation child of the current scope."""
        with capture_events() as events, hogtrace.trace("answer") as trace:
            fake_chat_model().invoke("hi", config={"callbacks": [CallbackHandler(traced)]})

        generation = events.one("$ai_generation")
        assert (trace.trace_id, trace.id) == (generation.trace_id, generation.parent_id)

    def test_failed_chain_counts_errors(self, traced: posthog.Posthog) -> None:
        """A failing chain is an error subtree and counts in the scope's errors."""

        def boom(_: Any) -> str:
            raise ValueError("no")

        chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | RunnableLambda(boom)
        with (
            capture_events() as events,
            hogtrace.trace("answer") as trace,
            pytest.raises(ValueError, match="no"),
        ):
            chain.invoke({"q": "x"}, config={"callbacks": [CallbackHandler(traced)]})

        assert trace.metrics is not None
        assert 2 == trace.metrics.errors  # the chain and its failing step
        assert [
            (
                "$ai_trace",
                "answer",
                [
                    (
                        "$ai_span",
                        "RunnableSequence",
                        [("$ai_span", "ChatPromptTemplate"), ("$ai_span", "boom")],
                    )
                ],
            )
        ] == shape(events)

    @pytest.mark.parametrize("privacy", [False, True])
    def test_failed_chain_exception_follows_privacy_mode(
        self, capture_server: CaptureServer, privacy: bool
    ) -> None:
        """LangChain sends a run's error to error tracking (message, stack and the run's input)
        only outside privacy mode: under hogtrace's privacy mode, as under the client's own,
        no ``$exception`` leaves and no event links one."""

        def boom(_: Any) -> str:
            raise ValueError("the user's secret plan")

        client = posthog.Posthog(
            "phc_test", host=capture_server.url, enable_exception_autocapture=True
        )
        try:
            hogtrace.configure(client, privacy_mode=privacy)
            chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | RunnableLambda(boom)
            with hogtrace.trace("answer"), pytest.raises(ValueError, match="secret"):
                chain.invoke({"q": "my plan"}, config={"callbacks": [CallbackHandler(client)]})
            events = delivered(capture_server)
        finally:
            client.shutdown()

        exceptions = by_kind(events, "$exception")
        linked = [e for e in events if "$exception_event_id" in e["properties"]]
        if privacy:
            assert ([], []) == (exceptions, linked)
            assert "secret" not in json.dumps(events)
        else:  # the same run outside privacy mode does send it: the test above can fail
            assert exceptions
            assert linked
        assert 4 == len([e for e in events if e["event"].startswith("$ai_")])  # trace, 3 runs


class TestAnthropicWrapper:
    def test_messages_join_scope(
        self, traced: posthog.Posthog, llm_server: OpenAIServer, capture_server: CaptureServer
    ) -> None:
        """A wrapped Anthropic ``messages.create`` is a generation child with its tokens."""
        wrapper = Anthropic(
            posthog_client=traced, base_url=llm_server.url, api_key="sk-ant-x", max_retries=0
        )
        try:
            with hogtrace.trace("answer") as trace, hogtrace.span("llm") as span:
                message = wrapper.messages.create(
                    model="claude-3-5-haiku-latest", max_tokens=64, messages=MESSAGES
                )
        finally:
            wrapper.close()

        props = one(delivered(capture_server), "$ai_generation")["properties"]
        assert isinstance(message, anthropic.types.Message)
        assert (trace.trace_id, span.id, "anthropic") == (
            props["$ai_trace_id"],
            props["$ai_parent_id"],
            props["$ai_provider"],
        )
        assert span.metrics is not None
        assert USAGE["messages"] == (span.metrics.input_tokens, span.metrics.output_tokens)


class TestPosthogProperties:
    def test_outside_any_scope(self) -> None:
        """Outside any scope there is nothing to pass."""
        assert {} == hogtrace.posthog_properties()

    def test_inside_span(self) -> None:
        """Inside a span: its trace, itself as parent, a fresh span id each call, the session."""
        with (
            hogtrace.session("conv-1", properties={"plan": "pro"}),
            hogtrace.trace("t") as trace,
            hogtrace.span("s") as span,
        ):
            first = hogtrace.posthog_properties()
            second = hogtrace.posthog_properties()

        assert {
            "$ai_trace_id": trace.trace_id,
            "$ai_parent_id": span.id,
            "$ai_span_id": first["$ai_span_id"],
            "$ai_session_id": "conv-1",
            "plan": "pro",
        } == first
        assert first["$ai_span_id"] != second["$ai_span_id"]

    def test_session_without_trace(self) -> None:
        """Inside a session with no trace open, only the session travels."""
        with hogtrace.session("conv-1"):
            assert {"$ai_session_id": "conv-1"} == hogtrace.posthog_properties()

    async def test_async_posthog_by_hand(
        self, traced: posthog.Posthog, llm_server: OpenAIServer, capture_server: CaptureServer
    ) -> None:
        """With ``AsyncPosthog``, ``posthog_properties=`` nests the call into the one tree."""
        async_client = posthog.AsyncPosthog("phc_test", host=capture_server.url)
        wrapper = AsyncOpenAI(
            posthog_client=async_client,
            base_url=llm_server.openai_url,
            api_key="sk-x",
            max_retries=0,
        )
        try:
            async with (
                hogtrace.session("conv-1"),
                hogtrace.trace("answer") as trace,
                hogtrace.span("llm") as span,
            ):
                await wrapper.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    posthog_properties=hogtrace.posthog_properties(),
                )
            await async_client.flush()
        finally:
            await wrapper.close()
            await async_client.shutdown()

        events = delivered(capture_server)
        props = one(events, "$ai_generation")["properties"]
        expected = [
            ("$ai_trace", "answer", [("$ai_span", "llm", [("$ai_generation", "gpt-4o-mini")])])
        ]
        assert expected == shape(events)
        assert (trace.trace_id, span.id, "conv-1") == (
            props["$ai_trace_id"],
            props["$ai_parent_id"],
            props["$ai_session_id"],
        )


class TestAsyncPosthogAsDestination:
    async def test_configure_rejects_async_client(self, capture_server: CaptureServer) -> None:
        """``configure(AsyncPosthog(...))`` fails at once, pointing at ``posthog_properties()``."""
        async_client = posthog.AsyncPosthog("phc_test", host=capture_server.url)
        try:
            with pytest.raises(TypeError, match="posthog_properties"):
                hogtrace.configure(async_client)
        finally:
            await async_client.shutdown()


@pytest.mark.slow
class TestHookInstalledWhenWrappersAreUsed:
    def test_hook_only_after_a_wrapper_is_imported(self) -> None:
        """In a process that never imports a PostHog wrapper the client keeps its own
        before_send (no second clean() per event); importing one installs the hook."""
        import subprocess
        import sys
        import textwrap

        script = textwrap.dedent(
            """
            import sys, posthog, hogtrace
            client = posthog.Posthog("phc_test", host="http://127.0.0.1:9", send=False)
            hogtrace.configure(client)
            with hogtrace.span("before"):
                pass
            hogtrace.flush(timeout=5)
            before = client.before_send
            import posthog.ai.openai  # a wrapper is now in use
            at_import = type(client.before_send).__name__  # before its first call
            with hogtrace.span("after"):
                pass
            hogtrace.flush(timeout=5)
            print(before is None, at_import, type(client.before_send).__name__)
            watching = any(type(f).__name__ == "_ImportWatch" for f in sys.meta_path)
            hogtrace.shutdown()
            print(watching)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        assert "True _BeforeSend _BeforeSend\nFalse" == out.stdout.strip()

    def test_reset_stops_waiting_for_a_wrapper(self) -> None:
        """After reset() nothing waits on imports and a later wrapper import hooks nothing."""
        import subprocess
        import sys
        import textwrap

        script = textwrap.dedent(
            """
            import sys, posthog, hogtrace
            client = posthog.Posthog("phc_test", host="http://127.0.0.1:9", send=False)
            hogtrace.configure(client)
            watching = any(type(f).__name__ == "_ImportWatch" for f in sys.meta_path)
            hogtrace.reset()
            import posthog.ai.openai
            print(watching, any(type(f).__name__ == "_ImportWatch" for f in sys.meta_path),
                  client.before_send)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        assert "True False None" == out.stdout.strip()


class TestWrapperInsideAGeneration:
    def test_model_call_counts_once(self, oai: OpenAI, capture_server: CaptureServer) -> None:
        """A generation whose body calls PostHog's wrapper is sent as the span around the
        wrapper's generation: one $ai_generation, tokens counted once in metrics."""

        @hogtrace.generation(model="gpt-4o-mini")
        def chat(messages: list[dict[str, str]]) -> Any:
            return oai.chat.completions.create(model="gpt-4o-mini", messages=messages)

        with hogtrace.trace("answer") as trace:
            chat(MESSAGES)

        events = delivered(capture_server)
        generation = one(events, "$ai_generation")
        outer = [
            e
            for e in by_kind(events, "$ai_span")
            if e["properties"]["$ai_span_name"].endswith("chat")
        ]
        assert 1 == len(outer)
        span = outer[0]["properties"]
        assert span["$ai_span_id"] == generation["properties"]["$ai_parent_id"]
        assert ("$ai_input_tokens" in span, "$ai_model" in span) == (False, False)
        assert trace.metrics is not None
        assert (1, USAGE["chat"][0]) == (trace.metrics.generations, trace.metrics.input_tokens)

    def test_model_call_in_a_span_inside_the_generation_counts_once(
        self, oai: OpenAI, capture_server: CaptureServer
    ) -> None:
        """The wrapper call may sit in a span (a retry loop, say) inside the generation."""

        @hogtrace.generation(model="gpt-4o-mini")
        def chat(messages: list[dict[str, str]]) -> Any:
            with hogtrace.span("attempt"):
                return oai.chat.completions.create(model="gpt-4o-mini", messages=messages)

        with hogtrace.trace("answer") as trace:
            chat(MESSAGES)

        events = delivered(capture_server)
        generation = one(events, "$ai_generation")
        names = {
            e["properties"]["$ai_span_name"].rsplit(".", 1)[-1] for e in by_kind(events, "$ai_span")
        }
        assert {"chat", "attempt"} <= names
        assert generation["properties"]["$ai_lib"] != "hogtrace"  # the wrapper's own
        assert trace.metrics is not None
        assert (1, USAGE["chat"][0]) == (trace.metrics.generations, trace.metrics.input_tokens)
