"""DRUM's ASGI middleware (pure ASGI): the HTTP policy of `drum.serving.http` around every request.

`RequestIdMiddleware`: request id and DRUM headers, merged slashes, the INFO line for answers >= 400.
`BodyLimitMiddleware`: 413 for bodies over the limit, from Content-Length or while a chunked body
arrives. `BodyPrefetchMiddleware`: the body read once, before user middleware, into
`request.state.body` and `request.state.files` (the migration guide's promise), replayed downstream.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drum.observability.logging import request_id_var
from drum.serving import http
from drum.serving.request import UploadedFile, parse_multipart_files, parse_options_header
from drum.serving.response import ResponseData


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def send_data(data: ResponseData, send: Send) -> None:
    """Send a `ResponseData` with a body (no stream) as ASGI messages."""
    await send({"type": "http.response.start", "status": data.status, "headers": raw_headers(data)})
    await send({"type": "http.response.body", "body": data.body})


_ID_HEADER = http.HEADER_REQUEST_ID.encode("latin-1")
_VERSION_HEADER = (http.HEADER_DRUM_VERSION.encode("latin-1"), http.drum_headers("")[1][1].encode("latin-1"))


def drum_header_bytes(request_id: str) -> list[tuple[bytes, bytes]]:
    """The headers DRUM adds to every answer (`http.drum_headers`), as ASGI header pairs."""
    return [(_ID_HEADER, request_id.encode("latin-1")), _VERSION_HEADER]


def too_large(scope: Scope, limit: int) -> bool:
    """Whether the request's Content-Length says its body is over `limit` bytes (0: no limit)."""
    return http.exceeds(limit, http.content_length(header(scope, b"content-length")))


def raw_headers(data: ResponseData) -> list[tuple[bytes, bytes]]:
    """The header list Starlette's `Response` would send for `data`, built directly."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in data.headers]
    if not (data.status < 200 or data.status in (204, 304)) and all(k != b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(data.body)).encode("latin-1")))
    if data.content_type is not None:
        headers = [(k, v) for k, v in headers if k != b"content-type"]
        headers.append((b"content-type", data.content_type.encode("latin-1")))
    return headers


class RequestIdMiddleware:
    """Takes `X-Request-ID` (or makes a uuid4), exposes it to logs and echoes it as `X_Request_ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = http.merge_slashes(scope["path"])
        if path is not scope["path"]:
            scope = {**scope, "path": path, "raw_path": path.encode()}
        incoming = header(scope, b"x-request-id")
        request_id = http.request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0
        extra = drum_header_bytes(request_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)
            if status >= 400:
                query = scope.get("query_string", b"").decode("latin-1")
                http.log_error_answer(scope["method"], scope["path"], query, time.perf_counter() - started, request_id)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for bodies over `limit` bytes (0: no limit): at once from Content-Length, or as soon as a
    chunked body crosses the limit (the rest is never read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit:
            await self.app(scope, receive, send)
            return
        if too_large(scope, self.limit):
            await send_data(http.body_too_large(self.limit), send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await send_data(http.body_too_large(self.limit), send)


class LazyFiles(Mapping):
    """`request.state.files`: multipart file parts as `{"content", "filename", "content_type"}`, parsed on
    first access (so requests that never look at them never pay for parsing)."""

    def __init__(self, body: bytes, content_type: str | None) -> None:
        self.body = body
        self.content_type = content_type
        self._uploads: dict[str, UploadedFile] | None = None

    @property
    def uploads(self) -> dict[str, UploadedFile]:
        if self._uploads is None:
            mimetype, params = parse_options_header(self.content_type)
            boundary = params.get("boundary")
            multipart = mimetype.lower() == "multipart/form-data" and boundary
            self._uploads = parse_multipart_files(self.body, boundary) if multipart else {}
        return self._uploads

    def __getitem__(self, key: str) -> dict:
        f = self.uploads[key]
        return {"content": f.data, "filename": f.filename, "content_type": f.content_type}

    def __iter__(self) -> Iterator[str]:
        return iter(self.uploads)

    def __len__(self) -> int:
        return len(self.uploads)


async def read_body(receive: Receive, limit: int = 0) -> bytes | None:
    """The whole request body (None when the client disconnected first; BodyTooLarge past `limit` bytes,
    0: no limit). A body of several chunks is gathered in a BytesIO, whose buffer becomes the result
    without a copy: a large body is held once, never twice (chunks plus their join)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    first = message.get("body", b"")
    if limit and len(first) > limit:
        raise BodyTooLarge()
    if not message.get("more_body", False):
        return first
    buffer = io.BytesIO()
    buffer.write(first)
    del first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        buffer.write(message.get("body", b""))
        if limit and buffer.tell() > limit:
            raise BodyTooLarge()
        if not message.get("more_body", False):
            return buffer.getvalue()


class BodyPrefetchMiddleware:
    """Reads the body once, before user middleware runs, into `request.state.body` (bytes) and
    `request.state.files`; downstream `receive()` replays it. Paths starting with one of `skip` (the
    backend proxy, which streams the body on) are left alone."""

    def __init__(self, app: ASGIApp, skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.skip and scope["path"].startswith(self.skip)):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        content_type = header(scope, b"content-type")
        state = scope.setdefault("state", {})
        state["body"] = body
        state["files"] = LazyFiles(body, content_type.decode("latin-1") if content_type else None)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
