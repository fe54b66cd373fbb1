"""DRUM's request middleware, pure ASGI: request id and DRUM headers, error-request logging, body prefetch."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drum import DRUM_COMPAT_VERSION
from drum.observability.logging import request_id_var
from drum.serving.request import QueryParams, RequestData, UploadedFile

logger = logging.getLogger("drum.server")

_SLASHES = re.compile("/{2,}")
HEADER_REQUEST_ID = b"X_Request_ID"
HEADER_DRUM_VERSION = b"X-Drum-Version"


class RequestIdMiddleware:
    """Takes `X-Request-ID` (or makes a uuid4), exposes it to logs and echoes it as `X_Request_ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._version = DRUM_COMPAT_VERSION.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "//" in scope["path"]:  # werkzeug merges repeated slashes: //predict/ is /predict/
            scope = {**scope, "path": _SLASHES.sub("/", scope["path"])}
            scope["raw_path"] = scope["path"].encode()
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not request_id:
            request_id = str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0
        extra = [(HEADER_REQUEST_ID, request_id.encode("latin-1")), (HEADER_DRUM_VERSION, self._version)]

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
                logger.info(
                    "API [%s %s?%s] request time: %s sec, request_id: %s",
                    scope["method"],
                    scope["path"],
                    query,
                    round(time.perf_counter() - started, 6),
                    request_id,
                )


class LazyFiles(Mapping):
    """`request.state.files`: multipart file parts as `{"content", "filename", "content_type"}`, parsed on
    first access (so requests that never look at them never pay for parsing)."""

    def __init__(self, request: RequestData) -> None:
        self.request = request

    @property
    def uploads(self) -> dict[str, UploadedFile]:
        return self.request.files

    def _as_dicts(self) -> dict[str, dict]:
        return {
            name: {"content": f.data, "filename": f.filename, "content_type": f.content_type}
            for name, f in self.uploads.items()
        }

    def __getitem__(self, key: str) -> dict:
        return self._as_dicts()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.uploads)

    def __len__(self) -> int:
        return len(self.uploads)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (None when the client disconnected first). A body of several chunks
    is gathered in a BytesIO, whose buffer becomes the result without a copy: a large body is
    held once, never twice (chunks plus their join)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    first = message.get("body", b"")
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
        if not message.get("more_body", False):
            return buffer.getvalue()


class BodyPrefetchMiddleware:
    """Reads the body once, before user middleware runs, into `request.state.body` (bytes) and
    `request.state.files`; downstream `await request.body()` replays it. Paths starting with one of
    `skip` (the backend proxy, which streams the body on) are left alone."""

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
        request = RequestData(
            method=scope["method"],
            path=scope["path"],
            body=body,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            query=QueryParams(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
        )
        state = scope.setdefault("state", {})
        state["body"] = body
        state["files"] = LazyFiles(request)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
