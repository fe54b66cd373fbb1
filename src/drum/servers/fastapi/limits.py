"""Request limits: body size (413, streaming-aware), admission to the executor (503), run time (504)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drum.serving.response import error_response


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for bodies over `limit` bytes: at once from Content-Length, or as soon as a chunked body
    crosses the limit (the rest is never read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit:
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    too_large = False
                if too_large:
                    await self._reject(send)
                    return
                break
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
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        data = error_response(f"Request body too large. Limit is {self.limit} bytes", 413)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data.body)).encode())]
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": data.body})


class Busy(Exception):
    """All executor threads and queue places are taken."""


class Admission:
    """Runs model work on the executor while at most `capacity` jobs are running or queued.

    A slot is held until the thread finishes, even when the request timed out, so a hung model
    cannot make the server accept unbounded work.
    """

    def __init__(
        self, executor: ThreadPoolExecutor, capacity: int, on_change: Callable[[int], None] | None = None
    ) -> None:
        self.executor = executor
        self.capacity = capacity
        self.on_change = on_change
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self) -> None:
        """Take a slot (raises Busy when none is left); `release` gives it back."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise Busy()
            self._in_flight += 1
            self._changed()

    def release(self, _future: Any = None) -> None:
        with self._lock:
            self._in_flight -= 1
            self._changed()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on the executor in a slot held until it finishes (raises Busy)."""
        self.acquire()
        try:
            future: Future = self.executor.submit(fn, *args)
        except BaseException:
            self.release()
            raise
        future.add_done_callback(self.release)
        return future

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self._in_flight)
