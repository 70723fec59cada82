"""A scope whose function *returns* a stream stays open until the stream ends.

Real SDK stream types (``openai.Stream`` / ``AsyncStream``, ``anthropic.Stream``) against the
local OpenAI/Anthropic-compatible endpoint, plain generators and iterators.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pytest

import hogtrace
from hogtrace.testing import CapturedEvents
from tests.openai_server import ANSWER, USAGE, OpenAIServer

MESSAGES = [{"role": "user", "content": "What is PostHog?"}]


def text_of(output: Any) -> str:
    """The assistant text of an ``$ai_output_choices`` value."""
    (message,) = output
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


class TestOpenAIStreams:
    @pytest.fixture
    def client(self, llm_server: OpenAIServer) -> Iterator[openai.OpenAI]:
        """An OpenAI client to the local server, closed after the test (no socket left for a
        later test's gc to report)."""
        with openai.OpenAI(base_url=llm_server.openai_url, api_key="sk-test") as made:
            yield made

    def test_returned_stream_keeps_the_generation_open(
        self, client: Any, hogtrace_events: CapturedEvents
    ) -> None:
        """Returning ``create(stream=True)`` records the streamed output, tokens and TTFT."""

        @hogtrace.generation
        def chat(messages: list[dict[str, str]]) -> openai.Stream[Any]:
            return client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )

        stream = chat(MESSAGES)
        assert isinstance(stream, openai.Stream)
        assert [] == list(hogtrace_events)  # still open while unread
        chunks = list(stream)

        event = hogtrace_events.one()
        props = event.properties
        assert len(chunks) > 1
        assert ANSWER == text_of(event.output)
        assert (True, USAGE["chat"]) == (
            props["$ai_stream"],
            (props["$ai_input_tokens"], props["$ai_output_tokens"]),
        )
        assert props["$ai_time_to_first_token"] <= props["$ai_latency"]

    def test_returned_stream_used_as_a_context_manager(
        self, client: Any, hogtrace_events: CapturedEvents
    ) -> None:
        """``with chat(...) as stream:`` works and closes the generation on exit."""

        @hogtrace.generation
        def chat(messages: list[dict[str, str]]) -> Any:
            return client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            )

        with chat(MESSAGES) as stream:
            first = next(iter(stream))

        assert first.choices is not None
        assert 1 == len(hogtrace_events)
        assert not hogtrace_events.one().is_error

    def test_async_stream(self, llm_server: OpenAIServer, hogtrace_events: CapturedEvents) -> None:
        """An ``async def`` returning an ``AsyncStream`` records it when it is consumed."""

        async def main() -> list[Any]:
            client = openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="sk-test")

            @hogtrace.generation
            async def chat(messages: list[dict[str, str]]) -> Any:
                return await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )

            try:
                stream = await chat(MESSAGES)
                assert isinstance(stream, openai.AsyncStream)
                return [chunk async for chunk in stream]
            finally:
                await client.close()

        asyncio.run(main())

        event = hogtrace_events.generations.one()
        assert (ANSWER, True) == (text_of(event.output), event.properties["$ai_stream"])


def helper_chat(client: Any) -> Any:
    """A generation returning ``client``'s chat streaming helper (sync or async client)."""

    @hogtrace.generation
    def chat(messages: list[dict[str, str]]) -> Any:
        return client.chat.completions.stream(
            model="gpt-4o-mini", messages=messages, stream_options={"include_usage": True}
        )

    return chat


class TestStreamHelpers:
    """The SDKs' ``.stream(...)`` helpers return a context manager whose ``__enter__`` makes
    the request: returned from a generation, it stays open until the ``with`` block ends
    (it ended at once, with the manager's repr as output and no tokens)."""

    @pytest.fixture
    def client(self, llm_server: OpenAIServer) -> Iterator[openai.OpenAI]:
        with openai.OpenAI(base_url=llm_server.openai_url, api_key="sk-test") as made:
            yield made

    @pytest.mark.parametrize("read", ["events", "get_final_completion"])
    def test_openai_chat_stream_helper(
        self, client: Any, hogtrace_events: CapturedEvents, read: str
    ) -> None:
        manager = helper_chat(client)(MESSAGES)
        assert [] == list(hogtrace_events)  # the request is made on entering the block
        with manager as stream:
            if read == "events":
                assert "content.done" in [event.type for event in stream]
            else:
                assert ANSWER == stream.get_final_completion().choices[0].message.content

        event = hogtrace_events.one()
        props = event.properties
        assert (ANSWER, USAGE["chat"], True) == (
            text_of(event.output),
            (props["$ai_input_tokens"], props["$ai_output_tokens"]),
            props["$ai_model"].startswith("gpt-4o-mini"),
        )

    @pytest.mark.parametrize("read", ["events", "get_final_response"])
    def test_openai_responses_stream_helper(
        self, client: Any, hogtrace_events: CapturedEvents, read: str
    ) -> None:
        """The Responses helper keeps no snapshot: its events, or what ``get_final_response()``
        returned (which reads the stream past the proxy), are the response."""

        @hogtrace.generation
        def ask(text: str) -> Any:
            return client.responses.stream(model="gpt-4o-mini", input=text)

        with ask("What is PostHog?") as stream:
            if read == "events":
                assert "response.completed" in [event.type for event in stream]
            else:
                assert ANSWER == stream.get_final_response().output_text

        event = hogtrace_events.one()
        assert (ANSWER, False) == (text_of(event.output), event.is_error)
        assert event.properties["$ai_input_tokens"] > 0

    @pytest.mark.parametrize("read", ["events", "get_final_completion"])
    def test_an_error_part_way_is_the_generations(
        self, client: Any, hogtrace_events: CapturedEvents, read: str
    ) -> None:
        """The SDK's error mid-stream, however the stream was read, fails the generation (read
        past the proxy, it reached the block's exit and passed for the caller's own)."""

        @hogtrace.generation
        def chat(text: str) -> Any:
            return client.chat.completions.stream(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )

        def read_through() -> None:  # the error passes through the helper's block
            with chat("CUT please") as stream:
                if read == "events":
                    for _ in stream:
                        pass
                else:
                    stream.get_final_completion()

        with pytest.raises(openai.APIError):
            read_through()

        event = hogtrace_events.one()
        assert (True, "APIError") == (event.is_error, event.properties["$ai_error_type"])

    def test_anthropic_message_stream_helper(
        self, llm_server: OpenAIServer, hogtrace_events: CapturedEvents
    ) -> None:
        with anthropic.Anthropic(base_url=llm_server.url, api_key="sk-ant-test") as client:

            @hogtrace.generation
            def ask(messages: list[dict[str, str]]) -> Any:
                return client.messages.stream(
                    model="claude-3-5-haiku-latest", max_tokens=100, messages=messages
                )

            with ask(MESSAGES) as stream:
                assert ANSWER == "".join(stream.text_stream)

        event = hogtrace_events.one()
        props = event.properties
        assert (ANSWER, USAGE["messages"]) == (
            text_of(event.output),
            (props["$ai_input_tokens"], props["$ai_output_tokens"]),
        )

    def test_async_chat_stream_helper(
        self, llm_server: OpenAIServer, hogtrace_events: CapturedEvents
    ) -> None:
        async def main() -> None:
            async with (
                openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="sk-test") as client,
                helper_chat(client)(MESSAGES) as stream,
            ):
                async for _ in stream:
                    pass

        asyncio.run(main())

        event = hogtrace_events.one()
        assert (ANSWER, USAGE["chat"][0]) == (
            text_of(event.output),
            event.properties["$ai_input_tokens"],
        )


class TestAnthropicStreams:
    @pytest.fixture
    def client(self, llm_server: OpenAIServer) -> Iterator[anthropic.Anthropic]:
        """An Anthropic client to the local server, closed after the test."""
        with anthropic.Anthropic(base_url=llm_server.url, api_key="sk-ant-test") as made:
            yield made

    def test_returned_stream(self, client: Any, hogtrace_events: CapturedEvents) -> None:
        """Returning ``messages.create(stream=True)`` records text and usage when read."""

        @hogtrace.generation
        def ask(messages: list[dict[str, str]]) -> Any:
            return client.messages.create(
                model="claude-3-5-haiku-latest",
                max_tokens=100,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            )

        stream = ask(MESSAGES)
        assert isinstance(stream, anthropic.Stream)
        for _ in stream:
            pass

        event = hogtrace_events.one()
        props = event.properties
        assert ANSWER == text_of(event.output)
        assert USAGE["messages"] == (props["$ai_input_tokens"], props["$ai_output_tokens"])


class SelfClosingRows:
    """An iterator that is its own context manager, as an SDK stream is."""

    def __init__(
        self, items: list[int], *, suppress: bool = False, error: Exception | None = None
    ) -> None:
        self.items = iter(items)
        self.suppress = suppress
        self.error = error

    def __iter__(self) -> SelfClosingRows:
        return self

    def __next__(self) -> int:
        if self.error is not None:
            raise self.error
        return next(self.items)

    def __enter__(self) -> SelfClosingRows:
        return self

    def __exit__(self, *exc_info: object) -> bool:
        return self.suppress


class TestReturnedGenerators:
    def test_work_inside_the_stream_nests_under_the_scope(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A handler returning a generator (StreamingResponse style) stays open while it is
        read; spans the generator opens are its children, spans in the reader's loop are not."""

        def body() -> Iterator[str]:
            for n in range(2):
                with hogtrace.span(f"render-{n}"):
                    yield f"chunk-{n}"

        @hogtrace.trace
        def handler() -> Iterator[str]:
            return body()

        with hogtrace.span("server"):
            for chunk in handler():
                with hogtrace.span(f"send-{chunk}"):
                    pass

        trace = hogtrace_events.one(
            name="TestReturnedGenerators.test_work_inside_the_stream_nests_under_the_scope.handler"
        )
        assert ["chunk-0", "chunk-1"] == trace.output
        for n in range(2):
            assert trace.span_id == hogtrace_events.one(name=f"render-{n}").parent_id
        server = hogtrace_events.one(name="server")
        assert server.span_id == hogtrace_events.one(name="send-chunk-0").parent_id

    def test_async_generator_returned(self, hogtrace_events: CapturedEvents) -> None:
        """An async generator returned by an ``async def`` keeps its scope open too."""

        async def numbers() -> AsyncIterator[int]:
            for n in range(3):
                yield n

        @hogtrace.span("produce")
        async def produce() -> AsyncIterator[int]:
            return numbers()

        async def main() -> list[int]:
            return [n async for n in await produce()]

        assert [0, 1, 2] == asyncio.run(main())
        assert [0, 1, 2] == hogtrace_events.one().output

    def test_dropped_unread_stream_closes_without_error(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """A returned stream dropped unread ends its scope when collected, not as an error."""

        @hogtrace.span("lazy")
        def lazy() -> Iterator[int]:
            return iter(range(3))

        stream = lazy()
        next(stream)
        del stream
        gc.collect()

        event = hogtrace_events.one()
        assert (False, [0]) == (event.is_error, event.output)

    @pytest.mark.parametrize("how", ["for", "async for"])
    def test_a_stream_iterable_both_ways_is_recorded_either_way(
        self, how: str, hogtrace_events: CapturedEvents
    ) -> None:
        """litellm's stream wrapper has ``__next__`` and ``__anext__``: read with ``for`` it
        was recorded as empty (an async proxy forwarded ``__iter__`` to the stream)."""

        class Both:
            def __init__(self) -> None:
                self.items = iter([1, 2])

            def __iter__(self) -> Both:
                return self

            def __next__(self) -> int:
                return next(self.items)

            def __aiter__(self) -> Both:
                return self

            async def __anext__(self) -> int:
                try:
                    return next(self.items)
                except StopIteration:
                    raise StopAsyncIteration from None

        @hogtrace.span("rows")
        def rows() -> Both:
            return Both()

        async def read_async() -> list[int]:
            return [item async for item in rows()]

        got = list(rows()) if how == "for" else asyncio.run(read_async())

        assert ([1, 2], [1, 2]) == (got, hogtrace_events.one().output)

    @pytest.mark.parametrize("suppress", [False, True])
    def test_an_error_of_the_callers_block_is_not_the_streams(
        self, suppress: bool, hogtrace_events: CapturedEvents
    ) -> None:
        """The caller's code in the ``with`` block (its loop) is not inside the scope, as for a
        generator function: its error is not the scope's, suppressed by the stream or not
        (an error in the UI code reading a model's stream is not the model call's)."""

        @hogtrace.span("rows")
        def rows() -> SelfClosingRows:
            return SelfClosingRows([1, 2, 3], suppress=suppress)

        with contextlib.suppress(ValueError), rows() as stream:
            next(stream)
            raise ValueError("stop reading")

        event = hogtrace_events.one()
        assert (False, [1]) == (event.is_error, event.output)

    def test_an_error_of_the_stream_in_a_with_block_is_the_scopes(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        @hogtrace.span("rows")
        def rows() -> SelfClosingRows:
            return SelfClosingRows([], error=ConnectionError("stream cut"))

        with pytest.raises(ConnectionError), rows() as stream:
            next(stream)

        assert "ConnectionError: stream cut" == hogtrace_events.one().error

    def test_yielded_items_keep_their_cut_counts(self, hogtrace_events: CapturedEvents) -> None:
        """A yielded item cut when it was recorded is not cut again when the scope closes."""

        @hogtrace.span("big")
        def big() -> Iterator[list[float]]:
            yield [i + 0.5 for i in range(100_000)]

        assert 1 == len(list(big()))
        item = hogtrace_events.one().properties["$ai_output_state"][0]
        assert f"…[truncated {100_000 - (len(item) - 1):,} items]" == item[-1]

    def test_stream_whose_exit_cannot_be_read(self, hogtrace_events: CapturedEvents) -> None:
        """An ``__exit__`` that raises when looked up still ends the scope, with that error."""

        class Rows:
            def __iter__(self) -> Rows:
                return self

            def __next__(self) -> int:
                return 1

            def __enter__(self) -> Rows:
                return self

            def __getattr__(self, name: str) -> Any:
                raise RuntimeError(f"no {name}")

        @hogtrace.span("rows")
        def rows() -> Rows:
            return Rows()

        stream = rows()
        with pytest.raises(RuntimeError, match="no __exit__"):
            stream.__exit__(None, None, None)
        assert hogtrace_events.one().is_error

    def test_long_stream_of_large_items_holds_about_the_limit(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """Yielded items are kept within the event's size limit, not each one whole."""

        @hogtrace.span("many")
        def many() -> Iterator[str]:
            for index in range(1000):
                yield f"{index:05}" + "x" * 10_000

        items = many()
        tracemalloc.start()
        try:
            for _ in range(1000):
                next(items)
            held = tracemalloc.get_traced_memory()[0]  # what the open scope holds
        finally:
            tracemalloc.stop()
        assert list(items) == []
        assert held < 2_500_000  # every item whole: 10 MB; the event limit is 800 KB
        output = hogtrace_events.one().properties["$ai_output_state"]
        assert [f"{index:05}" for index in range(1000)] == [item[:5] for item in output]
        assert all(item.endswith(" chars]") for item in output)

    def test_error_mid_stream_keeps_the_items_before_it(
        self, hogtrace_events: CapturedEvents
    ) -> None:
        """An exception while reading ends the scope as an error with what came before."""

        def broken() -> Iterator[int]:
            yield 1
            raise ValueError("cut")

        @hogtrace.span("read")
        def read() -> Iterator[int]:
            return broken()

        with pytest.raises(ValueError, match="cut"):
            list(read())

        event = hogtrace_events.one()
        assert ("ValueError: cut", [1]) == (event.error, event.output)

    def test_files_and_plain_values_are_not_streams(
        self, tmp_path: Any, hogtrace_events: CapturedEvents
    ) -> None:
        """A returned file, list or string closes the scope at once."""
        path = tmp_path / "f.txt"
        path.write_text("a\nb\n")

        @hogtrace.span("open")
        def open_file() -> Any:
            return path.open()

        with open_file() as handle:
            assert 1 == len(hogtrace_events)
            assert ["a\n", "b\n"] == list(handle)


class TestStreamEdges:
    def test_threads_reading_one_returned_iterator(self, hogtrace_events: CapturedEvents) -> None:
        """Several threads may read one returned thread-safe iterator, as without hogtrace."""
        import threading

        class Jobs:
            def __init__(self, n: int) -> None:
                self._it = iter(range(n))
                self._lock = threading.Lock()

            def __iter__(self) -> Jobs:
                return self

            def __next__(self) -> int:
                with self._lock:
                    return next(self._it)

        @hogtrace.span("jobs")
        def jobs() -> Jobs:
            return Jobs(200)

        work = jobs()
        seen: list[int] = []

        def drain() -> None:
            seen.extend(work)

        threads = [threading.Thread(target=drain) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

        assert list(range(200)) == sorted(seen)
        assert not hogtrace_events.one().is_error

    def test_mock_return_value_is_not_a_stream(self, hogtrace_events: CapturedEvents) -> None:
        """A ``MagicMock`` (it fakes every dunder) is returned as it is, not as a stream."""
        from unittest import mock

        response = mock.MagicMock()

        @hogtrace.generation("chat")
        def chat() -> Any:
            return response

        assert response is chat()
        assert 1 == len(hogtrace_events)

    def test_sync_close_of_an_async_iterator(self, hogtrace_events: CapturedEvents) -> None:
        """An async iterator with a plain ``close()`` is closed at once through the proxy."""

        class Feed:
            closed = False

            def __aiter__(self) -> Feed:
                return self

            async def __anext__(self) -> int:
                raise StopAsyncIteration

            def close(self) -> None:
                self.closed = True

        feed = Feed()

        @hogtrace.span("feed")
        async def open_feed() -> Feed:
            return feed

        stream = asyncio.run(open_feed())
        assert stream.close() is None
        assert (True, 1) == (feed.closed, len(hogtrace_events))
