"""ASGI to drum and back: `request_data` turns a request into `RequestData` (the one place that does),
`send_answer` sends a `ResponseData`, `to_response` makes it a Starlette response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from functools import partial
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from drum.servers.fastapi.middleware import read_body, send_data
from drum.servers.fastapi.protocol import ON_DISCONNECT
from drum.servers.fastapi.streaming import ClosingStreamingResponse, iterate_off_loop
from drum.serving.request import QueryParams, RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import Route
from drum.serving.runtime import Runtime


async def request_data(route: Route, scope: Scope, receive: Receive, limit: int = 0) -> RequestData | None:
    """The `RequestData` of an ASGI request: its body read whole (replayed by `BodyPrefetchMiddleware`;
    BodyTooLarge past `limit` bytes), or, for routes that stream it on and were not prefetched, handed on
    as it arrives. None when the client disconnected before its body arrived."""
    streamed = route.stream_request and "body" not in (scope.get("state") or {})
    watch = scope.get(ON_DISCONNECT)
    body = b""
    if not streamed:
        body = await read_body(receive, limit)
        if body is None:
            return None
    query = scope.get("query_string")
    return RequestData(
        method=scope["method"],
        path=scope["path"],
        body=body,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        query=QueryParams(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else QueryParams(),
        path_params=dict(scope.get("path_params") or {}),
        body_stream=Request(scope, receive).stream() if streamed else None,
        on_disconnect=None if streamed else watch or partial(watch_disconnect, receive),
    )


def watch_disconnect(receive: Receive, callback: Callable[[], None]) -> None:
    """`RequestData.on_disconnect` where drum's HTTP protocol does not tell it (`scope[ON_DISCONNECT]`): a
    task awaits `receive()` for `http.disconnect`, which also comes once the response is complete."""
    asyncio.ensure_future(wait_for_disconnect(receive)).add_done_callback(lambda _: callback())


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


async def send_answer(data: ResponseData, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Send the runtime's answer: a body, or a stream (a sync one iterated on the runtime's executor)."""
    if data.stream is not None or data.astream is not None:
        await to_response(data, runtime.executor)(scope, receive, send)
    else:
        await send_data(data, send)
