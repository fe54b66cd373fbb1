"""A small OpenAI-compatible backend for the sidecar and proxy tests: a raw ASGI app under uvicorn in a
thread, on a free 127.0.0.1 port. It records what it receives and whether clients went away.

Routes: `GET /v1/models`, `POST /v1/chat/completions` (streaming too; the prompt "forever" streams
until the client disconnects), `GET /health` and `/v1/health/ready`, `* /echo` (method, path, query,
headers and body back as JSON), `GET /big?size=N` (N bytes in 64 KiB chunks), `GET /slow?seconds=S`,
`GET /forever` (bytes until the client disconnects), `POST /count` (size of a streamed request body),
`GET /gzip` (a gzip-encoded body, to check bytes are passed through unchanged).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

MODEL_ID = "fake-llm"
CREATED = 1700000000


@dataclass
class FakeBackend:
    port: int = 0
    chat_requests: list[dict] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    healthy: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        query = dict(parse_qsl(scope["query_string"].decode()))
        if path == "/count":
            total = 0
            more = True
            while more:
                message = await receive()
                total += len(message.get("body", b""))
                more = message.get("more_body", False)
            return await _json(send, {"received": total})
        body = await _body(receive)
        if path == "/v1/models":
            data = [{"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "tests"}]
            return await _json(send, {"object": "list", "data": data})
        if path in ("/health", "/v1/health/ready"):
            return await _send(send, 200 if self.healthy else 503, b"ready" if self.healthy else b"not ready")
        if path == "/v1/chat/completions":
            return await self._chat(json.loads(body), receive, send)
        if path.startswith("/echo"):
            headers = [[k.decode(), v.decode()] for k, v in scope["headers"]]
            echo = {"method": method, "path": path, "query": scope["query_string"].decode(), "headers": headers,
                    "body": body.decode()}
            return await _json(send, echo, 201, [(b"x-backend", b"fake"), (b"connection", b"close, x-backend-hop"),
                                                  (b"x-backend-hop", b"dropped")])
        if path == "/big":
            size = int(query.get("size", "0"))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            sent = 0
            while sent < size:
                n = min(65536, size - sent)
                await send({"type": "http.response.body", "body": b"x" * n, "more_body": True})
                sent += n
            return await send({"type": "http.response.body", "body": b"", "more_body": False})
        if path == "/slow":
            await asyncio.sleep(float(query.get("seconds", "5")))
            return await _send(send, 200, b"late")
        if path == "/forever":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            return await self._until_disconnect(receive, send, lambda i: f"line {i}\n".encode())
        if path == "/gzip":
            payload = gzip.compress(b"compressed hello")
            headers = [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip"),
                       (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": payload})
        return await _send(send, 404, b"no such route")

    async def _chat(self, params: dict, receive: Any, send: Any) -> None:
        self.chat_requests.append(params)
        last = params["messages"][-1]["content"]
        system = [m["content"] for m in params["messages"] if m["role"] == "system"]
        content = f"Echo: {last}" + (f" (system: {system[0]})" if system else "")
        model = params.get("model")
        if not params.get("stream"):
            choices = [
                {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                for i in range(params.get("n") or 1)
            ]
            completion = {"id": "cmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
                          "choices": choices}
            return await _json(send, completion)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

        def event(i: int, text: str | None, finish: str | None = None) -> bytes:
            chunk = {"id": "chunk-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                     "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        if last == "forever":
            return await self._until_disconnect(receive, send, lambda i: event(i, f"w{i} "))
        for i, word in enumerate(content.split(" ")):
            await send({"type": "http.response.body", "body": event(i, word), "more_body": True})
        await send({"type": "http.response.body", "body": event(99, None, "stop"), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _until_disconnect(self, receive: Any, send: Any, make: Any) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()

        watcher = asyncio.ensure_future(watch())
        i = 0
        while not watcher.done():
            await send({"type": "http.response.body", "body": make(i), "more_body": True})
            i += 1
            await asyncio.sleep(0.02)


async def _body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes, headers: list | None = None, ctype: bytes = b"text/plain") -> None:
    all_headers = [(b"content-type", ctype), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, obj: Any, status: int = 200, headers: list | None = None) -> None:
    await _send(send, status, json.dumps(obj).encode(), headers, b"application/json")


@contextmanager
def fake_openai_backend(port: int) -> Iterator[FakeBackend]:
    """Serve a `FakeBackend` on 127.0.0.1:`port` in a thread for the duration of the block."""
    backend = FakeBackend(port)
    config = uvicorn.Config(backend, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake OpenAI backend did not start")
        time.sleep(0.02)
    try:
        yield backend
    finally:
        server.should_exit = True
        thread.join(10)
