"""The Flask app factory: DRUM's `model_api` blueprint generated from the route table, same handlers and
error format as the FastAPI server.

Every route keeps DRUM's endpoint name (`model_api.ping`, `model_api.predict`, ...) so `custom_flask.py`
extensions that check `request.endpoint` work unchanged. A WSGI layer outside Flask adds the request id
and DRUM headers, merges repeated slashes and enforces the body limit, so every answer (user
`before_request` ones included) gets them, exactly like the FastAPI middleware.
"""

from __future__ import annotations

import gc
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from drum import DRUM_COMPAT_VERSION
from drum.observability.logging import request_id_var
from drum.serving.dispatch import early_response, run_route
from drum.serving.errors import METHOD_NOT_ALLOWED_TEXT, NOT_FOUND_TEXT
from drum.serving.handlers import ServingContext
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData, error_response
from drum.serving.routes import ROUTES, Route, full_paths

logger = logging.getLogger("drum.server")
BLUEPRINT = "model_api"
_SLASHES = re.compile("/{2,}")


@dataclass
class FlaskAppConfig:
    """How to build the Flask app; `context` is the loaded model (or the error-server context)."""

    context: ServingContext
    url_prefix: str = ""
    #: Largest request body in bytes (0: no limit).
    max_upload_size: int = 104857600
    #: Called with the built app (custom_flask.py's init_app).
    extend: Callable[[Flask], None] | None = None


def to_response(data: ResponseData) -> Response:
    body: Any = data.stream if data.stream is not None else data.body
    response = Response(body, status=data.status, headers=data.headers)
    if data.content_type is not None:
        response.headers["Content-Type"] = data.content_type
    else:
        del response.headers["Content-Type"]
    return response


def _request_data(path_params: dict[str, str]) -> RequestData:
    return RequestData(
        method=request.method,
        path=request.path,
        body=request.get_data(cache=True),
        headers=list(request.headers.items()),
        query=QueryParams(request.args.items(multi=True)),
        path_params=dict(path_params),
    )


def _view(ctx: ServingContext, route: Route) -> Callable[..., Response]:
    def view(**path_params: str) -> Response:
        early = early_response(ctx, route, request.method, request.path)
        if early is not None:
            return to_response(early)
        return to_response(run_route(ctx, route, _request_data(path_params)))

    view.__name__ = route.name
    return view


def _flask_rule(path: str) -> str:
    return path.replace("{path:path}", "<path:path>")


def model_api_blueprint(ctx: ServingContext, prefix: str) -> Blueprint:
    """DRUM's `model_api` blueprint: every route of the table, both slash spellings, one view per endpoint."""
    blueprint = Blueprint(BLUEPRINT, __name__)
    views: dict[str, Callable[..., Response]] = {}
    for route in ROUTES:
        view = views.setdefault(route.name, _view(ctx, route))
        for path in full_paths(route, prefix):
            blueprint.add_url_rule(
                _flask_rule(path),
                endpoint=route.name,
                view_func=view,
                methods=list(route.allowed_methods()),
                strict_slashes=False,
                provide_automatic_options=False,
            )
    return blueprint


def _http_error(exc: HTTPException) -> Response:
    """Unknown routes and wrong methods answer JSON in DRUM's error format, as the FastAPI server does."""
    limit = current_app.config.get("DRUM_MAX_UPLOAD_SIZE")
    if exc.code == 413 and limit:  # a chunked body that crossed the limit (Content-Length is checked earlier)
        data = error_response(too_large_text(limit), 413)
    elif exc.code == 404:
        data = error_response(NOT_FOUND_TEXT, 404)
    elif exc.code == 405:
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
        data = error_response(METHOD_NOT_ALLOWED_TEXT, 405, headers)
    else:
        data = error_response(f"{exc.code}: {exc.description}", exc.code or 500)
    return to_response(data)


def create_flask_app(config: FlaskAppConfig) -> Flask:
    app = Flask("drum")
    app.url_map.merge_slashes = False  # merged by DrumWsgi without a redirect
    # Not MAX_CONTENT_LENGTH: werkzeug would silently truncate chunked bodies at it; DrumWsgi answers 413.
    app.config["DRUM_MAX_UPLOAD_SIZE"] = config.max_upload_size
    app.register_blueprint(model_api_blueprint(config.context, config.url_prefix))
    app.register_error_handler(HTTPException, _http_error)
    app.extensions["drum"] = config.context
    if config.extend is not None:
        config.extend(app)
    app.wsgi_app = DrumWsgi(app.wsgi_app, config.max_upload_size)  # type: ignore[method-assign]
    # The model and libraries live as long as the server: out of the collector's sight (full
    # collections then walk only what requests made; see the FastAPI app's lifespan).
    gc.collect()
    gc.freeze()
    return app


class DrumWsgi:
    """Request id (`X-Request-ID` or a uuid4) echoed as `X_Request_ID`, `X-Drum-Version`, merged slashes,
    413 for bodies over the limit, and an INFO log line for answers >= 400."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        request_id = environ.get("HTTP_X_REQUEST_ID") or str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        extra = [("X_Request_ID", request_id), ("X-Drum-Version", DRUM_COMPAT_VERSION)]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split(" ", 1)[0])
            if code >= 400:
                logger.info(
                    "API [%s %s?%s] request time: %s sec, request_id: %s",
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                    environ.get("QUERY_STRING", ""),
                    round(time.perf_counter() - started, 6),
                    request_id,
                )
            return start_response(status, [*headers, *extra], exc_info)

        try:
            if self.limit and _content_length(environ) > self.limit:
                return _reject(self.limit, start)
            if self.limit and not environ.get("CONTENT_LENGTH") and "wsgi.input" in environ:
                environ["wsgi.input"] = _LimitedInput(environ["wsgi.input"], self.limit)  # chunked body
            return self.app(environ, start)
        finally:
            request_id_var.reset(token)


class _LimitedInput:
    """A chunked request body that raises 413 as soon as it crosses the limit (the rest is never read)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.remaining = limit

    def _count(self, data: bytes) -> bytes:
        self.remaining -= len(data)
        if self.remaining < 0:
            raise RequestEntityTooLarge()
        return data

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.stream.readline(size))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def too_large_text(limit: int) -> str:
    return f"Request body too large. Limit is {limit} bytes"


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _reject(limit: int, start_response: Callable[..., Any]) -> list[bytes]:
    data = error_response(too_large_text(limit), 413)
    headers = [("Content-Type", data.content_type or ""), ("Content-Length", str(len(data.body)))]
    start_response("413 REQUEST ENTITY TOO LARGE", headers)
    return [data.body]
