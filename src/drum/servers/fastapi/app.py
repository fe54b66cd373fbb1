"""The FastAPI app of a `Runtime`: DRUM's routes from the route table, DRUM's middleware, error handlers.

The whole app is built before it serves (routes, middleware, the user's `custom_fastapi.py`); the
lifespan only starts and stops the runtime. Each route is a small ASGI app that turns the request
into `RequestData` (`request_data`, the one place that does) and sends back what `Runtime.respond`
answers; no FastAPI request or response objects on the hot path.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from drum.observability.access_log import AccessLogMiddleware
from drum.observability.metrics import MetricsMiddleware
from drum.observability.stdout_flusher import StdoutFlusherMiddleware
from drum.servers.fastapi.middleware import (
    BodyLimitMiddleware,
    BodyPrefetchMiddleware,
    RequestIdMiddleware,
    read_body,
    send_data,
)
from drum.servers.fastapi.protocol import configure_whole_bodies
from drum.servers.fastapi.streaming import ClosingStreamingResponse, iterate_off_loop
from drum.serving import http
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import STREAMED_PREFIXES, Route, active_routes, full_paths
from drum.serving.runtime import Runtime


async def request_data(route: Route, scope: Scope, receive: Receive) -> RequestData:
    """The `RequestData` of an ASGI request: its body read whole (replayed by `BodyPrefetchMiddleware`),
    or, for routes that stream it on and were not prefetched, handed on as it arrives."""
    streamed = route.stream_request and "body" not in (scope.get("state") or {})
    body = b"" if streamed else (await read_body(receive) or b"")
    return RequestData(
        method=scope["method"],
        path=scope["path"],
        body=body,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        query=QueryParams(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
        path_params=dict(scope.get("path_params") or {}),
        body_stream=Request(scope, receive).stream() if streamed else None,
        disconnected=None if streamed else partial(wait_for_disconnect, receive),
    )


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client disconnects (the body was read whole: `receive` has nothing else to give)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def to_response(data: ResponseData, executor: Executor | None = None) -> Response:
    """The Starlette response for `data`; a sync stream is iterated on `executor`, never on the loop."""
    headers = dict(data.headers)
    body: AsyncIterator[bytes] | None = data.astream
    if data.stream is not None:
        assert executor is not None, "a streamed response needs the executor to iterate on"
        body = iterate_off_loop(data.stream, executor)
    if body is not None:
        response: Response = ClosingStreamingResponse(body, status_code=data.status, headers=headers)
    else:
        response = Response(data.body, status_code=data.status, headers=headers)
    if data.content_type is not None:
        response.headers["content-type"] = data.content_type
    return response


class RouteApp:
    """The ASGI app of one DRUM route."""

    def __init__(self, runtime: Runtime, route: Route) -> None:
        self.runtime = runtime
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = await self.runtime.respond(self.route, await request_data(self.route, scope, receive))
        if data.stream is not None or data.astream is not None:
            await to_response(data, self.runtime.executor)(scope, receive, send)
        else:
            await send_data(data, send)


class _RouteWithScope(StarletteRoute):
    """A Starlette route that, like FastAPI's, names itself in `scope["route"]` (metrics read the template)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


#: The `{path}` of the proxy routes, declared in the OpenAPI description (the endpoint reads the request).
PATH_PARAMETER = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
#: The `{name}` of the V2 model routes, and the protocol's error answers (`{"error": ...}`).
NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
V2_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}  # fmt: skip
V2_RESPONSES = {
    status: {"description": text, **V2_ERROR}
    for status, text in (("400", "Bad request"), ("404", "No such model"), ("500", "Model error"), ("503", "Not ready"))
}


def _openapi_extra(route: Route, path: str) -> dict[str, Any] | None:
    """What the OpenAPI description adds to a route: its path parameters, and the V2 routes' error answers."""
    extra: dict[str, Any] = {}
    if "{path" in path:
        extra["parameters"] = [PATH_PARAMETER]
    if "{name}" in path:
        extra["parameters"] = [NAME_PARAMETER]
    if route.protocol == "v2":
        extra["responses"] = V2_RESPONSES
    return extra or None


def _endpoint(runtime: Runtime, route: Route) -> Callable[[Request], Any]:
    """A FastAPI endpoint for the route (used with DRUM_FASTAPI_ENABLE_DOCS, so it is in the OpenAPI schema)."""

    async def endpoint(request: Request) -> Response:
        data = await runtime.respond(route, await request_data(route, request.scope, request.receive))
        return to_response(data, runtime.executor)

    endpoint.__name__ = route.name
    return endpoint


def middleware_stack(runtime: Runtime, user: list[Middleware]) -> list[Middleware]:
    """Every middleware of the app, outermost first: DRUM's outer layer, then what the user's
    `init_app` added (in its own order), then CORS right around the routes."""
    config = runtime.config
    stack = [
        Middleware(AccessLogMiddleware, enabled=config.settings.access_log),
        Middleware(StdoutFlusherMiddleware, flusher=runtime.flusher),
        Middleware(RequestIdMiddleware),
        Middleware(BodyLimitMiddleware, limit=config.settings.max_upload_size),
        Middleware(BodyPrefetchMiddleware, skip=tuple(config.url_prefix + p for p in STREAMED_PREFIXES)),
    ]
    if runtime.metrics is not None:
        stack.append(Middleware(MetricsMiddleware, metrics=runtime.metrics))
    stack += user
    if config.cors_origins:
        # Never credentials with wildcard (or any) origins: browsers would send cookies cross-site.
        stack.append(
            Middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"], allow_headers=["*"])
        )
    return stack


def create_app(
    runtime: Runtime,
    extend: Callable[[FastAPI], None] | None = None,
    on_start_error: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """DRUM's app serving `runtime`, extended by `extend` (custom_fastapi.py's init_app); its lifespan
    starts and stops the runtime. `on_start_error` is called with a start failure (then it is raised)."""
    config = runtime.config
    # The class travels to uvicorn's worker processes by name: each serving process configures it.
    configure_whole_bodies(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(runtime.start)
        except BaseException as exc:
            if on_start_error is not None:
                on_start_error(exc)
            raise
        try:
            yield
        finally:
            await runtime.aclose()
            runtime.stop()

    docs = config.settings.enable_docs
    app = FastAPI(
        title="drum",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        **_native_telemetry_off(),
    )
    app.state.drum = runtime
    for route in active_routes(config.settings.v2_protocol):
        for path in full_paths(route, config.url_prefix):
            methods = list(route.allowed_methods())
            if docs:
                schema = path.endswith("/") or route.path == path or "{" in path
                endpoint = _endpoint(runtime, route)
                extra = _openapi_extra(route, path)
                for method in methods:  # one route per method: each operation gets its own operationId
                    app.add_api_route(path, endpoint, methods=[method], name=route.name, include_in_schema=schema,
                                      openapi_extra=extra)  # fmt: skip
            else:
                served = RouteApp(runtime, route)
                app.router.routes.append(_RouteWithScope(path, served, methods=methods, name=route.name))
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    if extend is not None:
        extend(app)  # may add middleware (app.user_middleware), routes, exception handlers
    app.user_middleware = middleware_stack(runtime, list(app.user_middleware))
    return app


def _native_telemetry_off() -> dict[str, Any]:
    """FastAPI >= 0.160 traces every request itself once a tracer provider is set; DRUM emits only its
    `drum.*` spans (none for health routes), made by `drum.observability.tracing`."""
    if "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}
    return {"telemetry": off}


async def _http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    """Unknown routes and wrong methods answer JSON in DRUM's error format (Flask sent HTML)."""
    return to_response(http.framework_error(exc.status_code, exc.detail, list((exc.headers or {}).items())))
