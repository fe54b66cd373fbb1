"""DRUM's own routes answered in one ASGI layer, when nothing else wraps them.

Every request goes through DRUM's middleware (access log, stdout flusher, request id and DRUM headers,
body limit, body prefetch, metrics), then Starlette's exception middleware and router, then the route:
about a dozen coroutine frames and `send` wrappers, a third of a 1-row prediction's time. While the app
has no user middleware, no CORS, no OpenAPI docs and DRUM's routes still come first in its router,
`FastRoutes` answers a request for one of DRUM's routes itself, doing what those layers do, in the same
order, with the same functions; anything else (unknown paths, other methods, the streamed proxy routes,
lifespan) goes through the whole stack unchanged. `DRUM_FASTAPI_FAST_ROUTES=false` turns it off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drum.observability.access_log import AccessLog
from drum.observability.logging import request_id_var
from drum.servers.fastapi.adapters import request_data, send_answer
from drum.servers.fastapi.middleware import BodyTooLarge, drum_header_bytes, header, send_data, too_large
from drum.serving import http
from drum.serving.routes import Route
from drum.serving.runtime import Runtime

if TYPE_CHECKING:
    from starlette.routing import Route as StarletteRoute



#: Templated paths whose route `find` remembers (forgotten all at once when full).
MATCHED_PATHS = 1024
SERVER_ERROR_BODY = b"Internal Server Error"
SERVER_ERROR_HEADERS = [
    (b"content-length", str(len(SERVER_ERROR_BODY)).encode()), (b"content-type", b"text/plain; charset=utf-8")
]


@dataclass(frozen=True)
class FastRoute:
    route: Route
    served: StarletteRoute  # its router entry: the template metrics count by, the path regex
    methods: frozenset[str]


class FastRoutes:
    """The outermost ASGI app: DRUM's routes of `entries` answered here, everything else by `app` (the
    whole middleware stack)."""

    def __init__(
        self, app: ASGIApp, runtime: Runtime, entries: list[StarletteRoute], routes: dict[int, Route]
    ) -> None:
        self.app = app
        self.runtime = runtime
        settings = runtime.config.settings
        self.limit = settings.max_upload_size
        self.log = AccessLog() if settings.access_log else None
        self.exact: dict[str, FastRoute] = {}
        self._matched: dict[tuple[str, str, str], tuple[FastRoute, dict[str, Any]]] = {}
        self.templated: list[FastRoute] = []
        for served in entries:
            route = routes[id(served)]
            if route.stream_request:
                continue
            fast = FastRoute(route, served, frozenset(served.methods or ()))
            if "{" in served.path:
                self.templated.append(fast)
            else:
                self.exact.setdefault(served.path, fast)

    def find(self, scope: Scope) -> tuple[FastRoute, dict[str, Any]] | None:
        """The route and path parameters of an HTTP request this layer answers; None: the stack's."""
        fast = self.exact.get(scope["path"])
        if fast is not None:
            return (fast, {}) if scope["method"] in fast.methods else None
        key = (scope["path"], scope["method"], scope.get("root_path", ""))
        known = self._matched.get(key)
        if known is not None:  # a templated path seen before (V2's /v2/models/{name}/infer): no regex
            return known[0], dict(known[1])
        for fast in self.templated:
            match, child = fast.served.matches(scope)
            if match is Match.FULL:
                params = child.get("path_params") or {}
                if len(self._matched) >= MATCHED_PATHS:
                    self._matched.clear()
                self._matched[key] = (fast, dict(params))
                return fast, params
            if match is Match.PARTIAL:  # the path, not the method: the router answers 405
                return None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.find(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
        else:
            await self.serve(found, scope, receive, send)

    async def serve(self, found: tuple[FastRoute, dict[str, Any]], scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request `find` took, as the whole stack would."""
        fast, path_params = found
        scope["route"] = fast.served
        runtime = self.runtime
        runtime.flusher.set_last_activity_time()  # StdoutFlusherMiddleware
        incoming = header(scope, b"x-request-id")  # RequestIdMiddleware
        request_id = http.request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        extra = drum_header_bytes(request_id)
        started = time.perf_counter()
        status: int | None = None
        sent = 0
        head = scope["method"] == "HEAD"
        counted = False

        async def answer(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body" and not head:
                sent += len(message.get("body", b""))
            await send(message)

        try:
            limit = self.limit  # BodyLimitMiddleware
            if limit and too_large(scope, limit):
                await send_data(http.body_too_large(limit), answer)
                return
            if path_params:
                scope["path_params"] = path_params
            try:
                req = await request_data(fast.route, scope, receive, limit)  # BodyPrefetchMiddleware
            except BodyTooLarge:
                await send_data(http.body_too_large(limit), answer)
                return
            if req is None:  # the client left before its body arrived
                return
            counted = True  # MetricsMiddleware, inside the two above, sees the request from here
            await send_answer(await runtime.respond(fast.route, req), runtime, scope, receive, answer)
        except Exception:
            if status is None:  # Starlette's ServerErrorMiddleware, outside DRUM's: a plain 500, then the error
                await send({"type": "http.response.start", "status": 500, "headers": SERVER_ERROR_HEADERS})
                await send({"type": "http.response.body", "body": SERVER_ERROR_BODY})
            raise
        finally:
            request_id_var.reset(token)
            seconds = time.perf_counter() - started
            if status is not None and status >= 400:
                query = scope.get("query_string", b"").decode("latin-1")
                http.log_error_answer(scope["method"], scope["path"], query, seconds, request_id)
            if counted and runtime.metrics is not None:
                runtime.metrics.observe(fast.served.path, scope["method"], 500 if status is None else status, seconds)
            if self.log is not None:  # AccessLogMiddleware
                self.log.log(scope, 500 if status is None else status, None if status is None else sent)
            runtime.flusher.set_last_activity_time()


class FastFront:
    """uvicorn's outermost app in front of `outer` (its proxy-headers middleware around `app`, or `app`): a
    request `FastRoutes` takes goes to it straight, without the three calls between (the proxy-headers
    middleware, FastAPI's and Starlette's `__call__`), which change nothing for it: it has no
    X-Forwarded-* header and the app no `root_path`. Everything else goes through `outer`, where
    `FastRoutes` still answers DRUM's routes inside Starlette."""

    def __init__(self, outer: ASGIApp, app: Any) -> None:
        self.outer = outer
        self.app = app  # the DrumApp: its middleware stack is the FastRoutes, once Starlette has built it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.app.middleware_stack
        if type(fast) is FastRoutes and scope["type"] == "http" and not self.app.root_path:
            for name, _ in scope["headers"]:
                if name.startswith(b"x-forwarded-"):
                    break
            else:
                found = fast.find(scope)
                if found is not None:
                    scope["app"] = self.app  # as Starlette sets it
                    await fast.serve(found, scope, receive, send)
                    return
        await self.outer(scope, receive, send)
