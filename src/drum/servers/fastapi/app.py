"""The FastAPI app of a `Runtime`: DRUM's routes from the route table, DRUM's middleware, error handlers.

The whole app is built before it serves (routes, middleware, the user's `custom_fastapi.py`); the
lifespan only starts and stops the runtime. Each route is a small ASGI app that turns the request
into `RequestData` (`adapters.request_data`, the one place that does) and sends back what
`Runtime.respond` answers; no FastAPI request or response objects on the hot path. While nothing wraps
DRUM's routes, `fastpath.FastRoutes` answers them in one layer in front of the whole stack.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from drum.observability.access_log import AccessLogMiddleware
from drum.observability.metrics import MetricsMiddleware
from drum.observability.stdout_flusher import StdoutFlusherMiddleware
from drum.servers.fastapi.adapters import request_data, send_answer, to_response
from drum.servers.fastapi.fastpath import FastRoutes
from drum.servers.fastapi.middleware import (
    BodyLimitMiddleware,
    BodyPrefetchMiddleware,
    RequestIdMiddleware,
)
from drum.servers.fastapi.protocol import configure_whole_bodies
from drum.serving import http
from drum.serving.routes import STREAMED_PREFIXES, Route, active_routes, full_paths
from drum.serving.runtime import CLIENT_CLOSED, Runtime


class RouteApp:
    """The ASGI app of one DRUM route."""

    def __init__(self, runtime: Runtime, route: Route) -> None:
        self.runtime = runtime
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = await request_data(self.route, scope, receive)
        if req is not None:
            await send_answer(await self.runtime.respond(self.route, req), self.runtime, scope, receive, send)


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
        req = await request_data(route, request.scope, request.receive)
        if req is None:  # the client left before its body arrived (BodyPrefetchMiddleware answered nothing)
            return Response(status_code=CLIENT_CLOSED)
        return to_response(await runtime.respond(route, req), runtime.executor)

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


class DrumApp(FastAPI):
    """FastAPI with `fast` (a `FastRoutes` factory) as the outermost layer when set: DRUM's own routes are
    then answered in one layer, everything else by the whole middleware stack."""

    fast: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.fast is None else self.fast(stack)


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
    app = DrumApp(
        title="drum",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        **_native_telemetry_off(),
    )
    app.state.drum = runtime
    ours: list[StarletteRoute] = []  # DRUM's router entries (without docs), each with its route
    served_routes: dict[int, Route] = {}
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
                entry = _RouteWithScope(path, RouteApp(runtime, route), methods=methods, name=route.name)
                app.router.routes.append(entry)
                ours.append(entry)
                served_routes[id(entry)] = route
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    if extend is not None:
        extend(app)  # may add middleware (app.user_middleware), routes, exception handlers
    user = list(app.user_middleware)
    app.user_middleware = middleware_stack(runtime, user)
    unwrapped = not user and not config.cors_origins and app.router.routes[: len(ours)] == ours
    if ours and unwrapped and config.settings.fast_routes:
        app.fast = partial(FastRoutes, runtime=runtime, entries=ours, routes=served_routes)
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
