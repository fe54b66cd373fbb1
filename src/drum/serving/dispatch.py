"""Running one route for any server: error-server and OPTIONS answers, tracing, timing, error mapping.

Servers call `early_response` on the event loop / request thread, then `run_route` (on the executor
for FastAPI); both are framework-neutral, so every backend answers the same.
"""

from __future__ import annotations

import time

from drum.observability import tracing
from drum.serving import v2
from drum.serving.errors import NOT_FOUND_TEXT, response_for_exception
from drum.serving.handlers import ServingContext, load_failed, options
from drum.serving.request import RequestData
from drum.serving.response import ResponseData, error_response
from drum.serving.routes import Route


def exception_response(protocol: str, exc: BaseException) -> ResponseData:
    """A failure answered in the route's protocol: DRUM's error response, or V2's `{"error": ...}`."""
    return v2.response_for_exception(exc) if protocol == "v2" else response_for_exception(exc)


def protocol_error(protocol: str, message: str, status: int) -> ResponseData:
    """An error answer in the route's protocol: DRUM's `{"message": "ERROR: ..."}` or V2's `{"error": ...}`."""
    return v2.error(message, status) if protocol == "v2" else error_response(message, status)


def early_response(ctx: ServingContext | None, route: Route, method: str, path: str) -> ResponseData | None:
    """The answer that needs no request body: OPTIONS, not loaded yet, or the error server's 513/404."""
    if method == "OPTIONS":
        return options(route.allowed_methods())
    if route.protocol == "v2" and (ctx is None or ctx.load_error is not None):
        if route.name == "v2_live":  # the process answers: it is alive, loaded or not
            return v2.live(ctx, RequestData(method, path))  # type: ignore[arg-type]
        return v2.error("the model is not loaded yet" if ctx is None else "the model failed to load", 503)
    if ctx is None:
        return error_response("model is not loaded yet", 503)
    if ctx.load_error is not None:
        if route.error_server:
            return load_failed(ctx, RequestData(method, path))
        return error_response(NOT_FOUND_TEXT, 404)
    return None


def run_route(ctx: ServingContext, route: Route, req: RequestData) -> ResponseData:
    """Call the route's handler inside its DRUM span; any exception becomes DRUM's error response."""
    started = time.perf_counter()
    try:
        if route.span is None:
            return route.handler(ctx, req)
        # the span is current in this context: spans the model code makes are its children
        with tracing.request_span(route.span, req.headers, req.body) as span:
            result = route.handler(ctx, req)
            tracing.record_response(span, route.span, result.status, result.body)
            if result.stream is not None and span is not None:
                result.stream = tracing.stream_with_span(span, result.stream)
            return result
    except BaseException as exc:  # noqa: BLE001 - every failure becomes DRUM's error response
        return exception_response(route.protocol, exc)
    finally:
        if route.timed:
            ctx.times.add(time.perf_counter() - started)


async def run_route_async(ctx: ServingContext, route: Route, req: RequestData) -> ResponseData:
    """`run_route` for routes with an `async_handler` (backend I/O on the event loop)."""
    assert route.async_handler is not None
    try:
        if route.span is None:
            return await route.async_handler(ctx, req)
        with tracing.request_span(route.span, req.headers, req.body) as span:
            result = await route.async_handler(ctx, req)
            tracing.record_response(span, route.span, result.status, result.body)
            return result
    except Exception as exc:  # noqa: BLE001 - every failure (not a cancellation) becomes DRUM's error
        return response_for_exception(exc)
