"""The FastAPI app factory: DRUM's routes from the route table, DRUM middleware, error handlers.

The whole app is built before it serves; the lifespan only loads the model and starts the
executor that runs model code (the event loop never does).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from drum.observability import tracing
from drum.observability.access_log import AccessLogMiddleware
from drum.observability.metrics import Metrics, MetricsMiddleware
from drum.observability.stdout_flusher import StdoutFlusher, StdoutFlusherMiddleware
from drum.servers.fastapi.limits import Admission, BodyLimitMiddleware, Busy
from drum.servers.fastapi.middleware import BodyPrefetchMiddleware, LazyFiles, RequestIdMiddleware
from drum.serving.dispatch import early_response, run_route
from drum.serving.errors import METHOD_NOT_ALLOWED_TEXT, NOT_FOUND_TEXT
from drum.serving.handlers import ServingContext
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData, error_response
from drum.serving.routes import ROUTES, Route, full_paths

logger = logging.getLogger("drum.server")
BUSY_TEXT = "Server is busy: every prediction thread and queue place is taken. Retry later."


@dataclass
class AppConfig:
    """How to build the app; `load` makes the serving context (loads the model) in the lifespan."""

    load: Callable[[], ServingContext]
    url_prefix: str = ""
    executor_workers: int = 1
    #: Requests that may wait for an executor thread; more get 503.
    max_queue: int = 64
    #: Seconds before a request is answered 504 (0: no limit).
    request_timeout: float = 600
    #: Largest request body in bytes (0: no limit).
    max_upload_size: int = 104857600
    with_error_server: bool = False
    enable_docs: bool = False
    cors_origins: list[str] | None = None
    access_log: bool = False
    metrics_enabled: bool = False
    #: Called with the load exception when the model fails and there is no error server.
    on_load_error: Callable[[BaseException], None] | None = None
    #: Called with the built app right before it serves (custom_fastapi.py hooks in here later).
    extend: Callable[[FastAPI], None] | None = None


class DrumState:
    """Per-app runtime state, filled by the lifespan."""

    def __init__(self) -> None:
        self.ctx: ServingContext | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.admission: Admission | None = None
        self.request_timeout: float = 0


def to_response(data: ResponseData) -> Response:
    headers = dict(data.headers)
    if data.stream is not None:
        return StreamingResponse(data.stream, status_code=data.status, headers=headers, media_type=data.content_type)
    response = Response(data.body, status_code=data.status, headers=headers)
    if data.content_type is not None:
        response.headers["content-type"] = data.content_type
    return response


def _request_data(request: Request, body: bytes) -> RequestData:
    return RequestData(
        method=request.method,
        path=request.url.path,
        body=body,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        query=QueryParams(request.query_params.multi_items()),
        path_params=dict(request.path_params),
    )


def _endpoint(state: DrumState, route: Route) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        ctx = state.ctx
        early = early_response(ctx, route, request.method, request.url.path)
        if early is not None:
            return to_response(early)
        assert ctx is not None
        files = getattr(request.state, "files", None)
        if isinstance(files, LazyFiles):  # prefetched by DRUM's middleware, multipart parsed at most once
            req = files.request
            req.path_params = dict(request.path_params)
        else:
            req = _request_data(request, await request.body())
        if route.on_loop:
            return to_response(run_route(ctx, route, req))
        assert state.admission is not None
        context = contextvars.copy_context()
        try:
            future = state.admission.submit(context.run, run_route, ctx, route, req)
        except Busy:
            return to_response(error_response(BUSY_TEXT, 503, [("Retry-After", "1")]))
        timeout = state.request_timeout or None
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            logger.error("Request %s %s timed out after %ss", request.method, request.url.path, timeout)
            return to_response(error_response(f"Request timed out after {timeout:g} seconds", 504))
        return to_response(result)

    endpoint.__name__ = route.name
    return endpoint


def create_app(config: AppConfig) -> FastAPI:
    state = DrumState()
    flusher = StdoutFlusher()
    metrics = Metrics() if config.metrics_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.executor = ThreadPoolExecutor(config.executor_workers, thread_name_prefix="drum-predict")
        capacity = config.executor_workers + config.max_queue
        state.admission = Admission(state.executor, capacity, metrics.set_jobs if metrics else None)
        state.request_timeout = config.request_timeout
        try:
            state.ctx = await asyncio.get_running_loop().run_in_executor(state.executor, config.load)
        except BaseException as exc:  # noqa: BLE001
            if not config.with_error_server:
                if config.on_load_error is not None:
                    config.on_load_error(exc)
                state.executor.shutdown(wait=False)
                raise
            logger.error("Model failed to load; serving errors (513) because of --with-error-server: %s", exc)
            state.ctx = error_context(exc)
        state.ctx.metrics = metrics
        flusher.start()
        try:
            yield
        finally:
            state.executor.shutdown(wait=True, cancel_futures=True)
            flusher.stop()
            tracing.shutdown_otel()

    docs = config.enable_docs
    app = FastAPI(
        title="drum",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        **_native_telemetry_off(),
    )
    app.state.drum = state
    for route in ROUTES:
        for path in full_paths(route, config.url_prefix):
            app.add_api_route(
                path,
                _endpoint(state, route),
                methods=list(route.allowed_methods()),
                name=route.name,
                include_in_schema=path.endswith("/") or route.path == path or "{" in path,
            )
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    if config.cors_origins:
        # Never credentials with wildcard (or any) origins: browsers would send cookies cross-site.
        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    if config.extend is not None:
        config.extend(app)  # user middleware wraps the routes, inside DRUM's outer layer below
    if metrics is not None:
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyPrefetchMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_upload_size)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(StdoutFlusherMiddleware, flusher=flusher)
    app.add_middleware(AccessLogMiddleware, enabled=config.access_log)
    return app


def _native_telemetry_off() -> dict[str, Any]:
    """FastAPI >= 0.160 traces every request itself once a tracer provider is set; DRUM emits only its
    `drum.*` spans (none for health routes), made by `drum.observability.tracing`."""
    if "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}
    return {"telemetry": off}


def error_context(exc: BaseException) -> ServingContext:
    from drum.model.target import TargetType

    return ServingContext(predictor=None, target_type=TargetType.REGRESSION, code_dir="", load_error=str(exc))


async def _http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    """Unknown routes and wrong methods answer JSON in DRUM's error format (Flask sent HTML)."""
    if exc.status_code == 404:
        data = error_response(NOT_FOUND_TEXT, 404)
    elif exc.status_code == 405:
        data = error_response(METHOD_NOT_ALLOWED_TEXT, 405, list((exc.headers or {}).items()))
    else:
        data = error_response(f"{exc.status_code}: {exc.detail}", exc.status_code, list((exc.headers or {}).items()))
    return to_response(data)
