"""ASGI: one middleware for services (``hogtrace.asgi``), on a real uvicorn server."""

# House style puts the expected value first: `assert expected == actual`.

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from fastapi import APIRouter, FastAPI  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.middleware.gzip import GZipMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Host, Mount, Route  # noqa: E402

import hogtrace  # noqa: E402
from hogtrace.asgi import HogtraceMiddleware, httpx_async_hook, httpx_hook  # noqa: E402
from hogtrace.testing import capture_events  # noqa: E402

TIMEOUT = 20


# -- the application -----------------------------------------------------------------------------


@hogtrace.span
def retrieve(chat_id: str) -> list[str]:
    return [f"history of {chat_id}"]


@hogtrace.generation(model="gpt-4o-mini", provider="openai")
def llm(messages: list[dict[str, str]]) -> str:
    return "hello"


@hogtrace.span
async def tokens(n: int) -> AsyncIterator[str]:
    for i in range(n):
        with hogtrace.span("token"):
            yield f"t{i} "


never = asyncio.Event  # made per request: a stream that waits for a client that has left


@hogtrace.span
async def endless() -> AsyncIterator[str]:
    yield "first "
    await never().wait()  # only the client's disconnect (cancellation) ends this
    yield "never sent"


@hogtrace.span
def audit(chat_id: str) -> None:
    hogtrace.current().set_properties(audited=chat_id)


async def chat(request: Request) -> JSONResponse:
    chat_id = request.path_params["chat_id"]
    history = retrieve(chat_id)
    reply = llm([{"role": "user", "content": history[0]}])
    return JSONResponse({"chat_id": chat_id, "reply": reply})


async def stream(request: Request) -> StreamingResponse:
    return StreamingResponse(tokens(int(request.query_params.get("n", "3"))))


async def stream_forever(request: Request) -> StreamingResponse:
    return StreamingResponse(endless())


async def with_background(request: Request) -> PlainTextResponse:
    return PlainTextResponse("accepted", background=BackgroundTask(audit, "c-9"))


async def unavailable(request: Request) -> PlainTextResponse:
    return PlainTextResponse("try later", status_code=503)


async def crash(request: Request) -> PlainTextResponse:
    raise RuntimeError("database is gone")


async def health(request: Request) -> PlainTextResponse:
    retrieve("health")
    return PlainTextResponse("ok")


ROUTES = [
    Route("/chat/{chat_id}", chat),
    Route("/stream", stream),
    Route("/forever", stream_forever),
    Route("/background", with_background),
    Route("/unavailable", unavailable),
    Route("/crash", crash),
    Route("/health", health),
    Mount("/v1", routes=[Route("/chat/{chat_id}", chat)]),
]


def fastapi_app() -> FastAPI:
    api = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        retrieve(str(item_id))
        return {"item_id": item_id}

    api.include_router(router)
    return api


# -- the server ----------------------------------------------------------------------------------


class Finished:
    """The outermost ASGI app: counts requests whose middleware has returned (events emitted)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.changed = threading.Condition()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                with self.changed:
                    self.count += 1
                    self.changed.notify_all()

    def wait(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= n, timeout=TIMEOUT), self.count


class WithoutRoute:
    """ASGI middleware removing ``scope["route"]`` once the app returns (as Starlette 0.x)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        scope.pop("route", None)


class Server:
    """A uvicorn server on 127.0.0.1 in a thread, serving ``HogtraceMiddleware(app, **options)``."""

    def __init__(self, app: Any, *, middleware: bool = True, **options: Any) -> None:
        self.finished = Finished(HogtraceMiddleware(app, **options) if middleware else app)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(self.finished, log_level="critical", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not self._server.started:  # bounded: the server starts in milliseconds
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self._thread.is_alive(), "uvicorn exited"
            time.sleep(0.005)

    def wait(self, n: int = 1) -> None:
        """Wait until ``n`` requests have finished on the server (their events emitted)."""
        self.finished.wait(n)

    def close(self) -> None:
        # Also force: a connection left open would keep the server (and the scope of its
        # request) alive past the test, and its events would land in a later test.
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(TIMEOUT)
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start servers for the test; every one is stopped afterwards."""
    started: list[Server] = []

    def start(app: Any = None, *, middleware: bool = True, **options: Any) -> Server:
        app = app if app is not None else Starlette(routes=ROUTES)
        server = Server(app, middleware=middleware, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(serve: Any) -> Server:
    """The Starlette app behind the middleware with its default options."""
    return serve()  # type: ignore[no-any-return]


def renamable() -> bool:
    """Whether traces can be renamed yet (``set_name``); if not, they keep ``METHOD /path``."""
    with capture_events(), hogtrace.trace("probe") as probe:
        return callable(getattr(probe, "set_name", None))


async def request_body() -> dict[str, Any]:
    """An ASGI ``receive`` with an empty request body, for a middleware called directly."""
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Any) -> None:
    """An ASGI ``send`` that drops the response."""


# -- tests ---------------------------------------------------------------------------------------


class TestRequestTrace:
    def test_json_endpoint_is_one_trace_named_after_its_route(self, server: Server) -> None:
        """A request is a ``$ai_trace`` named after the route, with the handler's scopes inside."""
        with capture_events() as events:
            response = httpx.get(f"{server.url}/chat/c-1")
            server.wait()

        name = "GET /chat/{chat_id}" if renamable() else "GET /chat/c-1"
        assert {"chat_id": "c-1", "reply": "hello"} == response.json()
        assert (
            f"{name} [trace]\n├── retrieve [span]\n└── llm [generation, gpt-4o-mini]"
            == events.tree()
        )
        root = events.one("trace")
        assert ("GET", "/chat/{chat_id}", 200, False) == (
            root.properties["http_method"],
            root.properties["http_route"],
            root.properties["http_status"],
            root.is_error,
        )
        assert (None, None) == (root.input, root.output)

    def test_fastapi_route_template_includes_the_router_prefix(self, serve: Any) -> None:
        """On FastAPI the route is the full path template, the router's prefix included."""
        server = serve(fastapi_app())
        with capture_events() as events:
            assert 200 == httpx.get(f"{server.url}/api/items/42").status_code
            server.wait()

        root = events.one("trace")
        assert "/api/items/{item_id}" == root.properties["http_route"]
        name = "GET /api/items/{item_id}" if renamable() else "GET /api/items/42"
        assert f"{name} [trace]\n└── retrieve [span]" == events.tree()

    def test_mounted_fastapi_app_with_a_router_names_its_route(self, serve: Any) -> None:
        """A FastAPI app mounted in another, its routes from ``include_router``: FastAPI
        0.16x keeps those behind a router object that shows no path (they were raw paths)."""
        outer = FastAPI()
        outer.mount("/sub", fastapi_app())
        server = serve(outer)
        with capture_events() as events:
            assert 200 == httpx.get(f"{server.url}/sub/api/items/42").status_code
            server.wait()

        root = events.one("trace")
        assert ("GET /sub/api/items/{item_id}", "/sub/api/items/{item_id}") == (
            root.name,
            root.properties["http_route"],
        )

    def test_mounted_route_template_includes_the_mount(self, server: Server) -> None:
        """A route inside a Starlette ``Mount`` is reported with the mount's prefix."""
        with capture_events() as events:
            httpx.get(f"{server.url}/v1/chat/c-2")
            server.wait()

        assert "/v1/chat/{chat_id}" == events.one("trace").properties["http_route"]

    @pytest.mark.parametrize("starlette_0x", [False, True], ids=["route in scope", "0.x"])
    @pytest.mark.parametrize(
        ("case", "method", "path", "route"),
        [
            ("route", "GET", "/chat/c-3", "/chat/{chat_id}"),
            ("mount", "GET", "/v1/chat/c-4", "/v1/chat/{chat_id}"),
            ("404", "GET", "/nope", None),
            ("404 in a mount", "GET", "/v1/nope", None),
            ("405", "POST", "/chat/c-5", "/chat/{chat_id}"),
            ("host", "GET", "/h/5", "/h/{item_id}"),
            ("middleware in a mount", "GET", "/api/chat/7", "/chat/{chat_id}"),
            ("404 behind middleware in a mount", "GET", "/api/nope/7", None),
            ("mount with a parameter", "GET", "/users/12/posts/9", "/users/{uid}/posts/{pid}"),
            ("mount of an app in middleware", "GET", "/sub/x/1", "/sub/x/{item_id}"),
            ("root mount of an app", "GET", "/a.css", None),
            ("preflight", "OPTIONS", "/chat/c-6", "/chat/{chat_id}"),
            ("redirect to the route", "GET", "/chat/c-7/", "/chat/{chat_id}"),
            ("redirect in a mount", "GET", "/v1/chat/c-8/", "/v1/chat/{chat_id}"),
        ],
    )
    def test_route_template_with_and_without_scope_route(
        self,
        serve: Any,
        case: str,
        method: str,
        path: str,
        route: str | None,
        starlette_0x: bool,
    ) -> None:
        """Starlette 0.x does not put the matched route in the scope: it is matched again,
        and gives what Starlette 1.x names (relative to the app the middleware wraps).

        ``WithoutRoute`` removes ``scope["route"]`` after Starlette's router set it, as an
        older Starlette never sets it; the real router's routes, mounts and hosts are matched.
        """

        def older(app: Any) -> Any:
            return WithoutRoute(app) if starlette_0x else app

        async def plain(scope: Any, receive: Any, send: Any) -> None:
            await PlainTextResponse("body {}")(scope, receive, send)

        items = Starlette(routes=[Route("/x/{item_id}", health)])
        headers = {"host": "api.test"}
        if case == "host":
            items = Starlette(routes=[Route("/h/{item_id}", health)])
            app: Any = HogtraceMiddleware(older(Starlette(routes=[Host("api.test", items)])))
        elif case.endswith("middleware in a mount"):
            inner = HogtraceMiddleware(older(Starlette(routes=[Route("/chat/{chat_id}", chat)])))
            app = Starlette(routes=[Route("/chat/{x}", health), Mount("/api", app=inner)])
        elif case == "mount with a parameter":
            posts = [Route("/posts/{pid}", health)]
            app = HogtraceMiddleware(older(Starlette(routes=[Mount("/users/{uid}", routes=posts)])))
        elif case == "mount of an app in middleware":
            mounted = Mount("/sub", app=GZipMiddleware(items))
            app = HogtraceMiddleware(older(Starlette(routes=[mounted])))
        elif case == "root mount of an app":
            routes = [Route("/chat/{chat_id}", chat), Mount("/", app=plain)]
            app = HogtraceMiddleware(older(Starlette(routes=routes)))
        elif case == "preflight":  # answered by the CORS middleware, before any routing
            cors = CORSMiddleware(
                Starlette(routes=ROUTES), allow_origins=["*"], allow_methods=["*"]
            )
            app = HogtraceMiddleware(older(cors))
            headers = {"origin": "https://web.test", "access-control-request-method": "GET"}
        else:
            app = HogtraceMiddleware(older(Starlette(routes=ROUTES)))
        server = serve(app, middleware=False)
        with capture_events() as events:
            response = httpx.request(method, f"{server.url}{path}", headers=headers)
            server.wait()

        assert response.status_code < 500
        root = events.one("trace")
        assert route == root.properties.get("http_route")
        # Never a raw id where a template exists, never an empty path.
        assert f"{method} {route if route is not None else path}" == root.name

    def test_unmatched_path_keeps_its_path_and_status(self, server: Server) -> None:
        """A 404 is no error; with no route, the trace keeps the name ``METHOD /path``."""
        with capture_events() as events:
            assert 404 == httpx.get(f"{server.url}/nope").status_code
            server.wait()

        root = events.one("trace")
        assert ("GET /nope", 404, False) == (
            root.name,
            root.properties["http_status"],
            root.is_error,
        )
        assert "http_route" not in root.properties

    def test_5xx_response_is_an_error(self, server: Server) -> None:
        """A handler that answers 503 marks its trace as failed, with the status as the error."""
        with capture_events() as events:
            assert 503 == httpx.get(f"{server.url}/unavailable").status_code
            server.wait()

        root = events.one("trace")
        assert (True, "HTTP 503", 503) == (
            root.is_error,
            root.error,
            root.properties["http_status"],
        )

    def test_exception_is_the_error_and_status_500(self, server: Server) -> None:
        """A handler that raises: the client gets a 500, the trace the exception."""
        with capture_events() as events:
            assert 500 == httpx.get(f"{server.url}/crash").status_code
            server.wait()

        root = events.one("trace")
        assert ("RuntimeError: database is gone", 500) == (
            root.error,
            root.properties["http_status"],
        )

    def test_excluded_path_is_not_traced(self, serve: Any) -> None:
        """A path in ``exclude_paths`` runs with no request trace around it."""
        server = serve(exclude_paths={"/health"})
        with capture_events() as events:
            assert "ok" == httpx.get(f"{server.url}/health").text
            server.wait()

        assert "retrieve [trace]" == events.tree()

    def test_capture_input_records_the_request_line(self, serve: Any) -> None:
        """``capture_input=True`` records method, path and query string as the input."""
        server = serve(capture_input=True)
        with capture_events() as events:
            httpx.get(f"{server.url}/chat/c-3?lang=en")
            server.wait()

        expected = {"method": "GET", "path": "/chat/c-3", "query": "lang=en"}
        assert expected == events.one("trace").input

    def test_name_function_and_properties(self, serve: Any) -> None:
        """``name=`` names the trace from the request; ``properties=`` reach every event."""
        server = serve(name=lambda scope: f"chat-api:{scope['path']}", properties={"svc": "chat"})
        with capture_events() as events:
            httpx.get(f"{server.url}/chat/c-4")
            server.wait()

        assert "chat-api:/chat/c-4" == events.one("trace").name
        assert ["chat"] * 3 == [e.properties["svc"] for e in events]


class TestStreaming:
    def test_trace_covers_the_whole_stream(self, server: Server) -> None:
        """The trace stays open until the last chunk: the stream's scopes are its children."""
        with capture_events() as events:
            with httpx.stream("GET", f"{server.url}/stream?n=3") as response:
                body = "".join(response.iter_text())
            server.wait()

        assert "t0 t1 t2 " == body
        assert (
            "GET /stream [trace]\n└── tokens [span]\n"
            "    ├── token [span]\n    ├── token [span]\n    └── token [span]"
        ) == events.tree()
        root, stream = events.one("trace"), events.one(name="tokens")
        assert (root.latency or 0) >= (stream.latency or 1e9)
        assert root.timestamp >= stream.timestamp  # the trace closed after the stream ended

    def test_client_disconnect_closes_the_scope(self, server: Server) -> None:
        """A client that leaves mid-stream: the stream and the trace close and are emitted."""
        with capture_events() as events:
            with httpx.stream("GET", f"{server.url}/forever") as response:
                first = next(response.iter_text())
            server.wait()  # the server noticed the disconnect and the middleware returned
            still_open = events.open_scopes()

        assert "first " == first
        assert [] == still_open
        root = events.one("trace")
        assert (True, 200, False) == (
            root.properties["http_client_disconnected"],
            root.properties["http_status"],
            root.is_error,
        )
        assert "GET /forever [trace]\n└── endless [span]" == events.tree()


class TestAcrossServices:
    def test_incoming_headers_continue_the_callers_trace(self, server: Server) -> None:
        """``inject()`` on the caller: the request is a span of its trace, in its session."""
        with capture_events() as events:
            with hogtrace.session("conv-9", distinct_id="user-3"), hogtrace.trace("caller") as c:
                httpx.get(f"{server.url}/chat/c-5", headers=hogtrace.inject())
            server.wait()

        [request] = events.children_of(events.one(name="caller"))
        assert (c.trace_id, c.id, "$ai_span") == (
            request.trace_id,
            request.parent_id,
            request.event,
        )
        assert {("conv-9", "user-3")} == {(e.session_id, e.distinct_id) for e in events}
        assert events.tree().startswith("caller [trace, session conv-9]\n└── GET /chat/")

    def test_httpx_hook_carries_the_trace(self, server: Server) -> None:
        """``httpx.Client(event_hooks=...)`` with ``httpx_hook`` adds the headers by itself."""
        with capture_events() as events:
            with (
                httpx.Client(event_hooks={"request": [httpx_hook]}) as client,
                hogtrace.trace("caller") as caller,
            ):
                client.get(f"{server.url}/chat/c-6", headers={"baggage": "team=red"})
            server.wait()

        assert {caller.trace_id} == {e.trace_id for e in events}
        assert 1 == len(events.traces)

    async def test_httpx_async_hook_carries_the_trace(self, server: Server) -> None:
        """``httpx.AsyncClient`` with ``httpx_async_hook`` adds the headers by itself."""
        with capture_events() as events:
            async with (
                httpx.AsyncClient(event_hooks={"request": [httpx_async_hook]}) as client,
                hogtrace.trace("caller") as caller,
            ):
                await client.get(f"{server.url}/chat/c-7")
            await asyncio.to_thread(server.wait)

        assert {caller.trace_id} == {e.trace_id for e in events}
        assert 1 == len(events.traces)

    def test_httpx_hook_outside_a_scope_adds_nothing(self) -> None:
        """With no scope open the hook leaves the request's headers as they were."""
        request = httpx.Request("GET", "http://127.0.0.1/", headers={"baggage": "team=red"})

        httpx_hook(request)

        assert (None, "team=red") == (
            request.headers.get("traceparent"),
            request.headers["baggage"],
        )

    def test_httpx_hook_keeps_other_baggage_members(self) -> None:
        """The hook merges its members into an existing ``baggage`` header."""
        request = httpx.Request("GET", "http://127.0.0.1/", headers={"baggage": "team=red"})

        with capture_events(), hogtrace.trace("caller"):
            httpx_hook(request)

        assert "team=red" in request.headers["baggage"].split(",")
        assert request.headers["traceparent"].startswith("00-")

    def test_no_headers_means_a_trace_of_its_own(self, server: Server) -> None:
        """A request without ``traceparent`` is a root ``$ai_trace`` even if the caller traces."""
        with capture_events() as events:
            with hogtrace.trace("caller") as caller:
                httpx.get(f"{server.url}/chat/c-8")
            server.wait()

        [request] = [t for t in events.traces if t.name != "caller"]
        assert ("$ai_trace", None) == (request.event, request.parent_id)
        assert caller.trace_id != request.trace_id


class TestSessionsAndUsers:
    def test_session_from_the_default_header(self, server: Server) -> None:
        """``x-session-id`` opens the request's session: every event carries it."""
        with capture_events() as events:
            httpx.get(f"{server.url}/chat/c-1", headers={"x-session-id": "conv-7"})
            server.wait()

        assert {"conv-7"} == {e.session_id for e in events}

    def test_invalid_session_header_is_ignored(self, server: Server) -> None:
        """A session header that breaks the id rule is ignored (untrusted input never raises)."""
        with capture_events() as events:
            response = httpx.get(f"{server.url}/chat/c-1", headers={"x-session-id": "a b/c"})
            server.wait()

        assert (200, {None}) == (response.status_code, {e.session_id for e in events})

    def test_session_from_another_header(self, serve: Any) -> None:
        """``session_id="x-conversation"`` reads the session from that header instead."""
        server = serve(session_id="x-conversation")
        with capture_events() as events:
            headers = {"x-conversation": "conv-8", "x-session-id": "ignored"}
            httpx.get(f"{server.url}/chat/c-1", headers=headers)
            server.wait()

        assert {"conv-8"} == {e.session_id for e in events}

    def test_session_and_distinct_id_from_functions(self, serve: Any) -> None:
        """Functions of the request give the session id and the distinct id."""

        def header(scope: Any, name: bytes) -> str | None:
            return dict(scope["headers"]).get(name, b"").decode() or None

        server = serve(
            session_id=lambda scope: f"chat-{scope['path'].rsplit('/', 1)[-1]}",
            distinct_id=lambda scope: header(scope, b"x-user"),
        )
        with capture_events() as events:
            httpx.get(f"{server.url}/chat/c-10", headers={"x-user": "user-5"})
            server.wait()

        assert {("chat-c-10", "user-5")} == {(e.session_id, e.distinct_id) for e in events}

    def test_failing_functions_do_not_fail_the_request(self, serve: Any) -> None:
        """A distinct id function that raises is logged and ignored; the request is served."""
        server = serve(distinct_id=lambda scope: 1 / 0)
        with capture_events() as events:
            response = httpx.get(f"{server.url}/chat/c-11")
            server.wait()

        root = events.one("trace")
        assert (200, root.trace_id) == (response.status_code, root.distinct_id)

    def test_next_request_on_a_keep_alive_connection_is_its_own_trace(self, serve: Any) -> None:
        """uvicorn can run a connection's next request in a copy of the previous request's
        context (a large body pauses reading; resuming it from the request's task, CPython
        issue 140947), where that request's trace is still current: the next request must not
        become its child, nor take its caller's session and distinct id."""

        async def upload(request: Request) -> PlainTextResponse:
            return PlainTextResponse(str(len(await request.body())))

        app = Starlette(routes=[*ROUTES, Route("/upload", upload, methods=["POST"])])
        server = serve(
            app,
            distinct_id=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode() or None,
        )
        with (
            capture_events() as events,
            httpx.Client(base_url=server.url) as client,
        ):  # one connection
            headers = {"x-session-id": "conv-a", "x-user": "user-a"}
            assert "200000" == client.post("/upload", content=b"y" * 200_000, headers=headers).text
            server.wait(1)
            assert 200 == client.get("/health").status_code
            server.wait(2)

        upload_trace, health = events.one(name="POST /upload"), events.one(name="GET /health")
        assert ("conv-a", "user-a") == (upload_trace.session_id, upload_trace.distinct_id)
        assert "$ai_trace" == health.event
        assert health.trace_id != upload_trace.trace_id
        assert (None, None, health.trace_id) == (
            health.parent_id,
            health.session_id,
            health.distinct_id,
        )

    def test_background_task_runs_inside_the_request(self, server: Server) -> None:
        """A Starlette background task is a child of the request's trace."""
        with capture_events() as events:
            assert "accepted" == httpx.get(f"{server.url}/background").text
            server.wait()

        assert "GET /background [trace]\n└── audit [span]" == events.tree()
        assert "c-9" == events.one(name="audit").properties["audited"]


class TestRootPath:
    @pytest.mark.parametrize(
        ("path", "root_path"),
        [("/api/nope", "/api"), ("/nope", "/api")],
        ids=["path includes root_path (ASGI 2.4, uvicorn)", "root_path in front (older)"],
    )
    async def test_trace_name_has_the_root_path_once(self, path: str, root_path: str) -> None:
        """A request's name is its full path, whether the server put root_path in path or not."""

        async def not_found(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path}
        with capture_events() as events:
            await HogtraceMiddleware(not_found)(scope, request_body, discard)

        assert "GET /api/nope" == events.one("trace").name

    async def test_a_root_path_of_slash_adds_nothing(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await PlainTextResponse("ok")(scope, receive, send)

        scope = {"type": "http", "method": "GET", "path": "/items/1", "root_path": "/"}
        with capture_events() as events:
            await HogtraceMiddleware(app)(scope, request_body, discard)

        assert "GET /items/1" == events.one("trace").name

    @pytest.mark.parametrize(
        ("path", "root_path"),
        [("/api/health", "/api"), ("/health", "/api"), ("/health", "")],
        ids=["path includes root_path (uvicorn)", "root_path in front (older)", "no root_path"],
    )
    async def test_excluded_paths_are_relative_to_the_root_path(
        self, path: str, root_path: str
    ) -> None:
        """``exclude_paths=["/health"]`` holds whether the server put root_path in path or not."""
        served: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            served.append(scope["path"])
            await PlainTextResponse("ok")(scope, receive, send)

        scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path}
        with capture_events() as events:
            await HogtraceMiddleware(app, exclude_paths=["/health"])(scope, request_body, discard)

        assert ([path], []) == (served, list(events))

    @pytest.mark.parametrize("added", [False, True], ids=["wrapping the app", "add_middleware"])
    def test_fastapi_root_path_is_not_part_of_the_route(self, serve: Any, added: bool) -> None:
        """``FastAPI(root_path=...)`` gives the same route however the middleware is added."""
        with warnings.catch_warnings():  # deprecated in the newest FastAPI, still used
            warnings.filterwarnings("ignore", message=".*root_path.*")
            api = FastAPI(root_path="/pfx")

        @api.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, Any]:
            return {"id": item_id}

        if added:
            api.add_middleware(HogtraceMiddleware)
        server = serve(api, middleware=not added)
        with capture_events() as events:
            assert 200 == httpx.get(f"{server.url}/items/1").status_code
            server.wait()

        assert "/items/{item_id}" == events.one("trace").properties["http_route"]


class TestResponseEnd:
    @pytest.mark.parametrize("last", ["http.response.pathsend", "http.response.zerocopysend"])
    async def test_a_file_sent_by_an_extension_completes_the_response(self, last: str) -> None:
        """A disconnect after a response sent by the path-send or zero-copy extension (a file
        response on servers that offer them) is not a client that left early."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": last, "path": "/tmp/file"})
            await receive()  # the server then reports the connection closed

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            return None

        scope = {"type": "http", "method": "GET", "path": "/file", "root_path": ""}
        with capture_events() as events:
            await HogtraceMiddleware(app)(scope, receive, send)

        root = events.one("trace")
        assert (200, None) == (
            root.properties["http_status"],
            root.properties.get("http_client_disconnected"),
        )


class TestPassThrough:
    @pytest.mark.parametrize("kind", ["lifespan", "websocket"])
    async def test_non_http_scopes_are_untouched(self, kind: str) -> None:
        """Lifespan and websocket scopes reach the app with the same objects, untraced."""
        seen: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.extend([scope, receive, send, hogtrace.current()])

        async def receive() -> dict[str, Any]:
            return {}

        async def send(message: Any) -> None:
            return None

        scope = {"type": kind}
        with capture_events() as events:
            await HogtraceMiddleware(app)(scope, receive, send)

        assert [scope, receive, send, None] == seen
        assert [] == list(events)

    def test_wrong_option_types_raise_when_built(self) -> None:
        """Options of the wrong type raise ``TypeError`` at construction, not per request."""
        with pytest.raises(TypeError, match="distinct_id"):
            HogtraceMiddleware(Starlette(), distinct_id="user-1")  # type: ignore[arg-type]

    def test_add_middleware_works_in_starlette(self, serve: Any) -> None:
        """``app.add_middleware(HogtraceMiddleware, ...)`` is the same middleware."""
        app = Starlette(routes=ROUTES)
        app.add_middleware(HogtraceMiddleware, session_id="x-conversation")
        server = serve(app, middleware=False)
        with capture_events() as events:
            httpx.get(f"{server.url}/chat/c-12", headers={"x-conversation": "conv-12"})
            server.wait()

        assert {"conv-12"} == {e.session_id for e in events}
