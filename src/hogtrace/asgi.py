"""ASGI: one middleware makes every request of a service one trace (Starlette, FastAPI, any app).

One line::

    from hogtrace.asgi import HogtraceMiddleware

    app = HogtraceMiddleware(app)
    # or, in Starlette / FastAPI: app.add_middleware(HogtraceMiddleware)

For every ``http`` request the middleware:

- continues the caller's trace from its ``traceparent`` / ``baggage`` headers
  (``hogtrace.continue_trace``): the request is a child of the caller's span, in its trace,
  session and sampling decision; a request with no such headers is a trace of its own, even
  where the server runs it in a context a previous request left a scope in;
- opens a session from the ``x-session-id`` header (or another header, or a function of the
  request), and sets the distinct id from a function of the request;
- names the trace ``"METHOD /path"`` and, once the app has routed the request, after the route
  template (``"GET /chat/{chat_id}"``, from ``scope["route"]``, or matched again against the
  app's routes on Starlette 0.x) where traces can be renamed;
- keeps the trace open until the app returns: through a streaming response's last chunk and the
  response's background tasks, which therefore run inside the request's trace;
- records ``http_method``, ``http_route`` and ``http_status`` as properties, marks a 5xx response
  (or an exception) as an error, and ``http_client_disconnected`` when the client went away
  before the response was complete.

Lifespan and websocket scopes pass through untouched. The middleware needs no dependency.

Outgoing calls carry the trace with ``headers=hogtrace.inject()``, or, for every request of an
``httpx`` client, with :func:`httpx_hook` / :func:`httpx_async_hook`::

    client = httpx.Client(event_hooks={"request": [hogtrace.asgi.httpx_hook]})
    client = httpx.AsyncClient(event_hooks={"request": [hogtrace.asgi.httpx_async_hook]})
    requests.post(url, json=payload, headers=hogtrace.inject())
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, Protocol

import hogtrace

__all__ = [
    "DEFAULT_SESSION_HEADER",
    "HogtraceMiddleware",
    "httpx_async_hook",
    "httpx_hook",
]

log = logging.getLogger("hogtrace")

#: The request header the session id is read from by default.
DEFAULT_SESSION_HEADER = "x-session-id"

# ASGI's types, spelled out so the middleware needs no framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
FromScope = Callable[[Scope], "str | None"]

# hogtrace's rule for ids (letters, digits and -_~.@()!':|), with a length cap for headers.
_VALID_ID = re.compile(r"[A-Za-z0-9\-_~.@()!':|]{1,256}")


class HogtraceMiddleware:
    """ASGI middleware: each HTTP request is one trace, continued from the caller's headers.

    Args:
        app: the ASGI application to wrap.
        session_id: where the session id comes from: a request header name (default
            ``"x-session-id"``), a function ``(scope) -> str | None`` of the ASGI scope, or
            ``None`` for no session of its own (the caller's session, carried in ``baggage``,
            still applies). A session id that breaks hogtrace's id rule (letters, digits and
            ``-_~.@()!':|``, at most 256 characters) is ignored.
        distinct_id: a function ``(scope) -> str | None`` that returns the PostHog distinct id
            of the request (for example from ``scope["user"]`` or a header you trust).
        name: the trace's name: a string, or a function ``(scope) -> str``, called when the
            request starts and again when the app returns (when ``scope["route"]`` is known).
            Default: ``"METHOD /path"``, then ``"METHOD /route/{template}"``.
        properties: added to the trace's event and to every event inside it.
        capture_input: record ``{"method", "path", "query"}`` as the trace's input (off by
            default: paths and query strings may carry personal data).
        exclude_paths: paths that are not traced at all (health checks, metrics).

    Raises:
        TypeError: an option has the wrong type (raised here, when the app is built).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        session_id: str | FromScope | None = DEFAULT_SESSION_HEADER,
        distinct_id: FromScope | None = None,
        name: str | Callable[[Scope], str] | None = None,
        properties: Mapping[str, Any] | None = None,
        capture_input: bool = False,
        exclude_paths: Collection[str] = (),
    ) -> None:
        if session_id is not None and not isinstance(session_id, str) and not callable(session_id):
            raise TypeError("session_id must be a header name, a callable or None")
        if distinct_id is not None and not callable(distinct_id):
            raise TypeError("distinct_id must be a callable or None")
        if name is not None and not isinstance(name, str) and not callable(name):
            raise TypeError("name must be a string, a callable or None")
        if properties is not None and not isinstance(properties, Mapping):
            raise TypeError("properties must be a mapping or None")
        self.app = app
        self._session_header = (
            session_id.lower().encode("latin-1") if isinstance(session_id, str) else None
        )
        self._session_fn = session_id if callable(session_id) else None
        self._distinct_id = distinct_id
        self._name = name
        self._properties = dict(properties or {})
        self._capture_input = capture_input
        self._exclude = frozenset(exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app for one connection: an ``http`` request inside its trace."""
        if scope.get("type") != "http" or self._excluded(scope):
            await self.app(scope, receive, send)
            return
        request = _Request(scope, receive, send)
        try:
            session_id = self._session(scope)
            distinct_id = self._call(self._distinct_id, scope, "distinct_id")
            name = self._start_name(scope)
            properties = {**self._properties, "http_method": scope.get("method", "")}
            remote = hogtrace.continue_trace(scope.get("headers") or [], isolated=True)
            session = (
                hogtrace.session(session_id) if session_id is not None else contextlib.nullcontext()
            )
            trace = hogtrace.trace(
                name,
                distinct_id=distinct_id,
                properties=properties,
                capture_input=self._capture_input,
                capture_output=False,
            )
        except Exception:
            log.warning("hogtrace.asgi: could not open the request's trace", exc_info=True)
            await self.app(scope, receive, send)
            return
        async with remote, session, trace as span:
            if self._capture_input:
                span.set_input(_request_input(scope))
            try:
                await self.app(scope, request.receive, request.send)
            except BaseException:
                self._finish(span, scope, request, failed=True)
                raise
            self._finish(span, scope, request, failed=False)

    # -- helpers ---------------------------------------------------------------------------------

    def _excluded(self, scope: Scope) -> bool:
        """Whether the path is in ``exclude_paths``, with or without the server's root path."""
        exclude = self._exclude
        return bool(exclude) and (scope.get("path") in exclude or _route_path(scope) in exclude)

    def _session(self, scope: Scope) -> str | None:
        if self._session_fn is not None:
            value = self._call(self._session_fn, scope, "session_id")
            if value is not None and not _VALID_ID.fullmatch(value):
                log.warning("hogtrace.asgi: session_id() returned an invalid id; no session")
                return None
            return value
        if self._session_header is None:
            return None
        value = _header(scope, self._session_header)
        if value is not None and not _VALID_ID.fullmatch(value):
            log.debug("hogtrace.asgi: ignored an invalid %s header", self._session_header)
            return None
        return value

    def _start_name(self, scope: Scope) -> str:
        if isinstance(self._name, str):
            return self._name
        if self._name is not None:
            named = self._call(self._name, scope, "name")
            if named is not None:
                return named
        return f"{scope.get('method', '')} {_full_path(scope)}"

    def _end_name(self, scope: Scope, route: str | None) -> str | None:
        if isinstance(self._name, str):
            return None
        if self._name is not None:
            return self._call(self._name, scope, "name")
        return f"{scope.get('method', '')} {route}" if route is not None else None

    def _finish(
        self, span: hogtrace.Scope, scope: Scope, request: _Request, *, failed: bool
    ) -> None:
        """Record what the request ended with, while its scope is still open."""
        try:
            status = request.status if request.status is not None else (500 if failed else None)
            route = _route_template(scope, request, self.app)
            props: dict[str, Any] = {}
            if status is not None:
                props["http_status"] = status
            if route is not None:
                props["http_route"] = route
            if request.disconnected:
                props["http_client_disconnected"] = True
            span.set_properties(**props)
            if not failed and status is not None and status >= 500:
                span.set_error(f"HTTP {status}")
            name = self._end_name(scope, route)
            set_name = getattr(span, "set_name", None)
            if name is not None and name != span.name and callable(set_name):
                set_name(name)
        except Exception:
            log.warning("hogtrace.asgi: could not record the response", exc_info=True)

    @staticmethod
    def _call(fn: Callable[[Scope], str | None] | None, scope: Scope, what: str) -> str | None:
        if fn is None:
            return None
        try:
            value: object = fn(scope)
        except Exception:
            log.warning("hogtrace.asgi: %s() raised; ignored", what, exc_info=True)
            return None
        if value is not None and not isinstance(value, str):
            log.warning("hogtrace.asgi: %s() returned %s, not a str; ignored", what, type(value))
            return None
        return value


class _Request:
    """Watches one request's messages: the response status, completion and early disconnects."""

    __slots__ = (
        "_receive",
        "_send",
        "complete",
        "disconnected",
        "outer_route",
        "root_path",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.root_path: str = scope.get("root_path", "")
        #: A route a router around the middleware matched (a Mount it is inside): not a route
        #: of the app it wraps.
        self.outer_route: Any = scope.get("route")
        self.status: int | None = None
        self.complete = False
        self.disconnected = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message.get("type") == "http.disconnect" and not self.complete:
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            status = message.get("status")
            self.status = status if isinstance(status, int) else None
        elif kind in _LAST_BODY and not message.get("more_body", False):
            self.complete = True
        await self._send(message)


#: Messages that send a response body: ASGI's, and the path-send and zero-copy extensions
#: (a file response on servers that offer them); the last one completes the response.
_LAST_BODY = frozenset(
    {"http.response.body", "http.response.pathsend", "http.response.zerocopysend"}
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text or None
    return None


def _full_path(scope: Scope) -> str:
    """The request's path with its root path, which servers may or may not include in ``path``.

    As Starlette reads it: ``path`` includes ``root_path`` when it starts with it and a "/"
    (uvicorn does so, as the ASGI spec now asks); older servers put ``root_path`` in front.
    """
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if not isinstance(path, str) or not isinstance(root, str):
        return ""
    root = root.rstrip("/")  # a root path of "/" adds nothing
    if not root or path == root or path.startswith(f"{root}/"):
        return path
    return f"{root}{path}"


def _route_path(scope: Scope) -> str:
    """The path relative to the root path, as Starlette's ``get_route_path`` reads it."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if not isinstance(path, str) or not isinstance(root, str):
        return ""
    if root and path.startswith(root) and (path == root or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _route_template(scope: Scope, request: _Request, app: Any) -> str | None:
    """The matched route's path template (Starlette, FastAPI), with the templates of any mounts.

    Relative to the app the middleware wraps (the root path it saw). The route in the scope
    is used as it is when the app routed to one of its own routes directly; under a mount (a
    changed root path, whose values may be ids) or with no route of its own in the scope, the
    request is matched again (`_matched_template`).
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    leaf = (
        path
        if route is not request.outer_route
        and isinstance(path, str)
        and path
        and getattr(route, "routes", None) is None  # a leaf route, not a Mount or a Host
        else None
    )
    if leaf is not None and scope.get("root_path", "") == request.root_path:
        return leaf
    return _matched_template(scope, request.root_path, app, leaf)


#: Mounts inside mounts, or middleware around an app, followed at most.
_MAX_DEPTH = 8


def _app_router(app: Any) -> Any:
    """The Starlette app, router or FastAPI app that holds the routes, through middleware."""
    for _ in range(_MAX_DEPTH):
        if getattr(app, "routes", None):
            return app
        app = getattr(app, "app", None)  # middleware keeps the app it wraps as .app
        if app is None:
            return None
    return None


def _matched_template(
    scope: Scope, root_path: str, app: Any, leaf: str | None = None
) -> str | None:
    """The route template of the request, matched again against the app's routes.

    For what the scope does not say: Starlette 0.x (0.50 included) sets ``scope["route"]``
    only for FastAPI's routes, a mount's template has parameters where the root path has
    values, and middleware can answer before routing (a CORS preflight). The request is
    matched against the routes of the app the middleware wraps (as OpenTelemetry's
    Starlette instrumentation does), through mounts, hosts and middleware around mounted
    apps, with the root path the middleware saw. As Starlette's router, the first full match
    wins, else the first partial one (a 405, a preflight), else, where the router redirects
    slashes, the route the redirect goes to. A route that cannot be looked into (FastAPI's
    included routers) ends the match with ``leaf``, the route the app put in the scope. None
    when no route matched (a 404) or on anything unexpected.
    """
    try:
        router = _app_router(app)
        if router is None:
            return None
        probe = {**scope, "root_path": root_path}
        template = _template(router.routes, probe, leaf)
        path = probe.get("path")
        if (
            template is None
            and isinstance(path, str)
            and _route_path(probe) not in ("", "/")
            and getattr(getattr(router, "router", router), "redirect_slashes", False) is True
        ):  # Starlette redirects "/a/" to "/a" (and "/a" to "/a/") when that one matches
            flipped = path.rstrip("/") if path.endswith("/") else f"{path}/"
            template = _template(router.routes, {**probe, "path": flipped}, None)
        return template
    except Exception:  # an odd route class: no template rather than a warning per request
        log.debug("hogtrace.asgi: could not match the request's route", exc_info=True)
    return None


def _template(routes: Any, probe: Scope, leaf: str | None) -> str | None:
    """The template of the route ``probe`` matches among ``routes`` (through mounts), or None.

    ``leaf``: the template of the route the app matched, for a route that shows neither a
    path nor routes of its own.
    """
    template = ""
    for _ in range(_MAX_DEPTH):
        found = partial = None
        for route in routes:
            match, child = route.matches(probe)
            name = getattr(match, "name", None)
            if name == "FULL":
                found = route, child
                break
            if name == "PARTIAL" and partial is None:
                partial = route, child
        found = found or partial
        if found is None:
            return None
        route, child = found
        path = getattr(route, "path", None)  # a Host has none: it adds no path
        if path is not None and not isinstance(path, str):
            return None
        if path is None and getattr(route, "routes", None) is None:  # opaque (FastAPI's)
            return f"{template}{leaf}" if leaf is not None else None
        template += path or ""
        routes = getattr(route, "routes", None)  # a Mount's or a Host's (its app's)
        if routes is not None and not routes:  # its app may be inside middleware
            inner = _app_router(getattr(route, "app", None))
            routes = inner.routes if inner is not None else None
        if not routes:
            # A leaf, or a mounted app without routes (named after the mount). A root
            # mount ("/" is "") names nothing: the request keeps its path.
            return template if path is not None and template else None
        probe = {**probe, **child}
    return None


def _request_input(scope: Scope) -> dict[str, Any]:
    query = scope.get("query_string", b"")
    return {
        "method": scope.get("method", ""),
        "path": scope.get("path", ""),
        "query": query.decode("latin-1") if isinstance(query, bytes) else str(query),
    }


# -- outgoing requests ---------------------------------------------------------------------------


class _HasHeaders(Protocol):
    @property
    def headers(self) -> MutableMapping[str, str]: ...


def httpx_hook(request: _HasHeaders) -> None:
    """``httpx.Client`` request event hook: add the current trace's headers to every request.

    ``httpx.Client(event_hooks={"request": [hogtrace.asgi.httpx_hook]})``. Outside every scope
    it adds nothing; a ``baggage`` header already on the request keeps its other members.
    """
    _add_headers(request.headers)


async def httpx_async_hook(request: _HasHeaders) -> None:
    """``httpx.AsyncClient`` request event hook; see :func:`httpx_hook`."""
    _add_headers(request.headers)


def _add_headers(headers: MutableMapping[str, str]) -> None:
    try:
        existing = headers.get("baggage")
        carried = hogtrace.inject({"baggage": existing} if existing else None)
        for key in ("traceparent", "baggage"):
            if key in carried:
                headers[key] = carried[key]
    except Exception:
        log.warning("hogtrace.asgi: could not add trace headers to a request", exc_info=True)
