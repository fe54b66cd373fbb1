"""DRUM's request middleware as a pure ASGI callable: request id, DRUM headers, error-request logging."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drum import DRUM_COMPAT_VERSION
from drum.observability.logging import request_id_var

logger = logging.getLogger("drum.server")

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
