"""The FastAPI app factory: DRUM's routes from the route table, DRUM middleware, error handlers.

The whole app is built before it serves; the lifespan only loads the model and starts the
executor that runs model code (the event loop never does).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from drum.observability import tracing
from drum.observability.access_log import AccessLogMiddleware
from drum.observability.metrics import Metrics, MetricsMiddleware
from drum.observability.stdout_flusher import StdoutFlusher, StdoutFlusherMiddleware
from drum.servers.fastapi.batcher import Batcher
from drum.servers.fastapi.limits import Admission, BodyLimitMiddleware, Busy
from drum.servers.fastapi.malloc import fix_mmap_threshold
from drum.servers.fastapi.middleware import BodyPrefetchMiddleware, LazyFiles, RequestIdMiddleware, read_body
from drum.servers.fastapi.streaming import ClosingStreamingResponse, iterate_off_loop
from drum.serving.batching import BatchItem, batch_key, estimated_rows, model_batchable
from drum.serving.dispatch import early_response, run_route, run_route_async
from drum.serving.errors import METHOD_NOT_ALLOWED_TEXT, NOT_FOUND_TEXT
from drum.serving.handlers import ServingContext
from drum.serving.proxy import backend_proxy_for
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData, error_response
from drum.serving.routes import ROUTES, STREAMED_PREFIXES, Route, full_paths
from drum.serving.watchdog import Watchdog

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
    #: Adaptive batching: most rows per merged model call (0: off), wait for company (ms), and
    #: whether models with per-request hooks are batched too.
    batching_max_rows: int = 0
    batching_max_wait_ms: int = 5
    batching_allow_hooks: bool = False
    #: sys.setswitchinterval in microseconds (0: Python's default).
    gil_switch_interval_us: int = 0
    #: glibc's mmap threshold in bytes (0: glibc's dynamic threshold).
    malloc_mmap_threshold: int = 0
    #: Called with the load exception when the model fails and there is no error server.
    on_load_error: Callable[[BaseException], None] | None = None
    #: Called with the built app right before it serves (custom_fastapi.py hooks in here later).
    extend: Callable[[FastAPI], None] | None = None
    #: The port served (the NIM watchdog polls this worker's own /info/ there).
    port: int | None = None
    use_watchdog: bool = False


class DrumState:
    """Per-app runtime state, filled by the lifespan; `respond` answers one request of one route."""

    def __init__(self) -> None:
        self.ctx: ServingContext | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.admission: Admission | None = None
        self.batcher: Batcher | None = None
        self.request_timeout: float = 0

    async def respond(self, route: Route, scope: Scope, receive: Receive) -> ResponseData:
        ctx = self.ctx
        method = scope["method"]
        early = early_response(ctx, route, method, scope["path"])
        if early is not None:
            return early
        assert ctx is not None
        files = (scope.get("state") or {}).get("files")
        if route.stream_request and not isinstance(files, LazyFiles):  # the proxy streams the body upstream
            req = _request_data(scope, b"")
            req.body_stream = Request(scope, receive).stream()
        elif isinstance(files, LazyFiles):  # prefetched by DRUM's middleware, multipart parsed at most once
            req = files.request
            req.path_params = dict(scope.get("path_params") or {})
        else:
            req = _request_data(scope, await read_body(receive) or b"")
        if route.async_handler is not None:
            return await run_route_async(ctx, route, req)
        if route.on_loop:
            return run_route(ctx, route, req)
        assert self.admission is not None
        batcher = self.batcher
        key = batch_key(route, req) if batcher is not None else None
        rows = 0
        if key is not None:
            assert batcher is not None
            rows = estimated_rows(req, batcher.max_rows)
            if rows > batcher.max_rows:  # a batch of its own anyway: served as without batching
                key = None
        try:
            if batcher is not None and key is not None:
                self.admission.acquire()
                item = BatchItem(req, key, rows, contextvars.copy_context())
                future = batcher.submit(item)
                future.add_done_callback(self.admission.release)
            else:
                job = self.admission.submit(contextvars.copy_context().run, run_route, ctx, route, req)
                future = asyncio.wrap_future(job)
        except Busy:
            return error_response(BUSY_TEXT, 503, [("Retry-After", "1")])
        timeout = self.request_timeout or None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout) if timeout else await future
        except asyncio.TimeoutError:
            logger.error("Request %s %s timed out after %ss", method, scope["path"], timeout)
            future.add_done_callback(lambda done: _close_abandoned_stream(done, self.executor))
            return error_response(f"Request timed out after {timeout:g} seconds", 504)


def to_response(data: ResponseData, executor: Executor | None = None) -> Response:
    """The Starlette response for `data`; a sync stream is iterated on `executor`, never on the loop."""
    headers = dict(data.headers)
    body: AsyncIterator[bytes] | None = data.astream
    if data.stream is not None:
        assert executor is not None, "a streamed response needs the executor to iterate on"
        body = iterate_off_loop(data.stream, executor)
    if body is not None:
        response = ClosingStreamingResponse(body, status_code=data.status, headers=headers)
        if data.content_type is not None:
            response.headers["content-type"] = data.content_type
        return response
    response = Response(data.body, status_code=data.status, headers=headers)
    if data.content_type is not None:
        response.headers["content-type"] = data.content_type
    return response


def _close_abandoned_stream(future: asyncio.Future, executor: Executor | None) -> None:
    """A handler that finished after its request got 504 may have opened a stream (a chat generator):
    close it on the executor (never on the loop)."""
    if future.cancelled() or future.exception() is not None:
        return
    close = getattr(getattr(future.result(), "stream", None), "close", None)
    if close is None:
        return
    try:
        assert executor is not None
        executor.submit(close)
    except (AssertionError, RuntimeError):  # shutting down
        close()


def raw_headers(data: ResponseData) -> list[tuple[bytes, bytes]]:
    """The header list Starlette's `to_response(data)` would send, built directly."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in data.headers]
    if not (data.status < 200 or data.status in (204, 304)) and all(k != b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(data.body)).encode("latin-1")))
    if data.content_type is not None:
        headers = [(k, v) for k, v in headers if k != b"content-type"]
        headers.append((b"content-type", data.content_type.encode("latin-1")))
    return headers


def _request_data(scope: Scope, body: bytes) -> RequestData:
    return RequestData(
        method=scope["method"],
        path=scope["path"],
        body=body,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        query=QueryParams(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
        path_params=dict(scope.get("path_params") or {}),
    )


class RouteApp:
    """The ASGI app of one DRUM route: no FastAPI request or response objects on the hot path."""

    def __init__(self, state: DrumState, route: Route) -> None:
        self.state = state
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = await self.state.respond(self.route, scope, receive)
        if data.stream is not None or data.astream is not None:
            await to_response(data, self.state.executor)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": data.status, "headers": raw_headers(data)})
        await send({"type": "http.response.body", "body": data.body})


class _RouteWithScope(StarletteRoute):
    """A Starlette route that, like FastAPI's, names itself in `scope["route"]` (metrics read the template)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _endpoint(state: DrumState, route: Route) -> Callable[[Request], Any]:
    """A FastAPI endpoint for the route (used with DRUM_FASTAPI_ENABLE_DOCS, so it is in the OpenAPI schema)."""

    async def endpoint(request: Request) -> Response:
        return to_response(await state.respond(route, request.scope, request.receive), state.executor)

    endpoint.__name__ = route.name
    return endpoint


def create_app(config: AppConfig) -> FastAPI:
    if config.malloc_mmap_threshold:  # large bodies and frames go back to the system after each request
        fix_mmap_threshold(config.malloc_mmap_threshold)
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
        state.ctx.proxy = backend_proxy_for(state.ctx.predictor)
        if state.ctx.proxy is not None:
            await state.ctx.proxy.open()
        watchdog = None
        if config.use_watchdog and config.port:
            watchdog = Watchdog(state.ctx, config.port, config.url_prefix)
            watchdog.start()
        state.batcher = _batcher(config, state.ctx, state.executor)
        if config.gil_switch_interval_us:
            # The loop waits at most this long for the GIL while a prediction thread runs Python
            # code (Python's default 5 ms makes every /ping wait behind predictions).
            sys.setswitchinterval(config.gil_switch_interval_us / 1e6)
        flusher.start()
        # Everything loaded so far (libraries, the model) lives as long as the server: out of the
        # collector's sight, a full collection walks only what requests made (~35 ms -> ~1 ms with
        # pandas and sklearn loaded; those pauses were the whole p99 of small requests).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.stop()
            if state.ctx.proxy is not None:
                await state.ctx.proxy.aclose()
            state.executor.shutdown(wait=True, cancel_futures=True)
            if state.ctx.predictor is not None:
                state.ctx.predictor.terminate()  # after the last prediction: flushes the MLOps reporter
            flusher.stop()
            tracing.shutdown_otel()
            gc.unfreeze()

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
            methods = list(route.allowed_methods())
            if docs:
                schema = path.endswith("/") or route.path == path or "{" in path
                endpoint = _endpoint(state, route)
                app.add_api_route(path, endpoint, methods=methods, name=route.name, include_in_schema=schema)
            else:
                served = RouteApp(state, route)
                app.router.routes.append(_RouteWithScope(path, served, methods=methods, name=route.name))
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
    app.add_middleware(BodyPrefetchMiddleware, skip=tuple(config.url_prefix + p for p in STREAMED_PREFIXES))
    app.add_middleware(BodyLimitMiddleware, limit=config.max_upload_size)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(StdoutFlusherMiddleware, flusher=flusher)
    app.add_middleware(AccessLogMiddleware, enabled=config.access_log)
    return app


def _batcher(config: AppConfig, ctx: ServingContext, executor: ThreadPoolExecutor) -> Batcher | None:
    """The batcher when DRUM_BATCHING_MAX_ROWS is set and the model may be batched (else None, logged)."""
    if not config.batching_max_rows:
        return None
    ok, reason = model_batchable(ctx, config.batching_allow_hooks)
    if ok and tracing.tracing_active():
        ok, reason = False, "tracing is on (each request keeps its own span)"
    if not ok:
        logger.warning("Adaptive batching is off for this model: %s", reason)
        return None
    logger.info(
        "Adaptive batching on: up to %d rows per model call, %d ms wait", config.batching_max_rows,
        config.batching_max_wait_ms,
    )
    return Batcher(
        ctx, executor, config.executor_workers, config.batching_max_rows, config.batching_max_wait_ms / 1000
    )


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
