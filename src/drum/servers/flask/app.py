"""The Flask app of a `Runtime`: DRUM's `model_api` blueprint generated from the route table, same handlers,
dispatch and error format as the FastAPI server.

Every route keeps DRUM's endpoint name (`model_api.ping`, `model_api.predict`, ...) so `custom_flask.py`
extensions that check `request.endpoint` work unchanged. A WSGI layer outside Flask (`DrumWsgi`) applies
DRUM's HTTP policy (`drum.serving.http`: request id and DRUM headers, merged slashes, the body limit), so
every answer (user `before_request` ones included) gets them, exactly like the FastAPI middleware.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from drum.observability.logging import request_id_var
from drum.serving import http
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import Route, active_routes, full_paths
from drum.serving.runtime import Runtime

BLUEPRINT = "model_api"


def to_response(data: ResponseData) -> Response:
    body: Any = data.stream if data.stream is not None else data.body
    response = Response(body, status=data.status, headers=data.headers)
    if data.content_type is not None:
        response.headers["Content-Type"] = data.content_type
    else:
        del response.headers["Content-Type"]
    return response


def request_data(path_params: dict[str, str]) -> RequestData:
    """The `RequestData` of the current Flask request (the one place that builds it)."""
    return RequestData(
        method=request.method,
        path=request.path,
        body=request.get_data(cache=True),
        headers=list(request.headers.items()),
        query=QueryParams(request.args.items(multi=True)),
        path_params=dict(path_params),
    )


def _view(runtime: Runtime, route: Route) -> Callable[..., Response]:
    def view(**path_params: str) -> Response:
        return to_response(runtime.respond_blocking(route, request_data(path_params)))

    view.__name__ = route.name
    return view


def _flask_rule(path: str) -> str:
    return path.replace("{path:path}", "<path:path>").replace("{name}", "<name>")


def model_api_blueprint(runtime: Runtime, prefix: str) -> Blueprint:
    """DRUM's `model_api` blueprint: every route of the table, both slash spellings, one view per endpoint."""
    blueprint = Blueprint(BLUEPRINT, __name__)
    views: dict[str, Callable[..., Response]] = {}
    for route in active_routes(runtime.config.settings.v2_protocol):
        view = views.setdefault(route.name, _view(runtime, route))
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
    """Unknown routes, wrong methods (and a chunked body over the limit) in DRUM's error format."""
    limit = current_app.config.get("DRUM_MAX_UPLOAD_SIZE")
    if exc.code == 413 and limit:  # a chunked body that crossed the limit (Content-Length is checked earlier)
        return to_response(http.body_too_large(limit))
    return to_response(http.framework_error(exc.code or 500, exc.description or "", list(exc.get_headers())))


def create_flask_app(runtime: Runtime, extend: Callable[[Flask], None] | None = None) -> Flask:
    """DRUM's Flask app serving `runtime` (already started), extended by `extend` (custom_flask.py's init_app)."""
    config = runtime.config
    limit = config.settings.max_upload_size
    app = Flask("drum")
    app.url_map.merge_slashes = False  # merged by DrumWsgi without a redirect
    # Not MAX_CONTENT_LENGTH: werkzeug would silently truncate chunked bodies at it; DrumWsgi answers 413.
    app.config["DRUM_MAX_UPLOAD_SIZE"] = limit
    app.register_blueprint(model_api_blueprint(runtime, config.url_prefix))
    app.register_error_handler(HTTPException, _http_error)
    app.extensions["drum"] = runtime
    if extend is not None:
        extend(app)
    app.wsgi_app = DrumWsgi(app.wsgi_app, limit)  # type: ignore[method-assign]
    return app


class DrumWsgi:
    """Request id (`X-Request-ID` or a uuid4) echoed as `X_Request_ID`, `X-Drum-Version`, merged slashes,
    413 for bodies over the limit, and an INFO log line for answers >= 400."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["PATH_INFO"] = http.merge_slashes(environ.get("PATH_INFO", ""))
        request_id = http.request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        extra = http.drum_headers(request_id)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if int(status.split(" ", 1)[0]) >= 400:
                http.log_error_answer(
                    environ.get("REQUEST_METHOD", ""),
                    environ.get("PATH_INFO", ""),
                    environ.get("QUERY_STRING", ""),
                    time.perf_counter() - started,
                    request_id,
                )
            return start_response(status, [*headers, *extra], exc_info)

        try:
            length = http.content_length(environ.get("CONTENT_LENGTH") or None)
            if http.exceeds(self.limit, length):
                data = http.body_too_large(self.limit)
                headers = [("Content-Type", data.content_type or ""), ("Content-Length", str(len(data.body)))]
                start("413 REQUEST ENTITY TOO LARGE", [*headers, *data.headers])
                return [data.body]
            if self.limit and length is None and "wsgi.input" in environ:
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
