"""Streamed responses for the FastAPI server: sync iterators run off the event loop, and every stream is
closed when the client goes away.

A handler's sync stream (a chat hook's generator wrapped in SSE framing) is advanced on the prediction
executor by a `Pump` (`drum.serving.stream_pump`), never on the loop; chunks made while the loop was busy
are sent together, as one body message. When the client
disconnects, Starlette cancels the send task; `ClosingStreamingResponse` then closes the body iterator,
which closes the sync stream in the executor once any `next()` still running has returned (a generator
cannot be closed while it runs).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from drum.serving.stream_pump import MAX_AHEAD, GuardedIterator, Pump, PumpedStream

__all__ = ["MAX_AHEAD", "ClosingStreamingResponse", "GuardedIterator", "iterate_off_loop"]

logger = logging.getLogger("drum.server")


async def iterate_off_loop(iterator: Iterator[bytes], executor: Executor) -> AsyncIterator[bytes]:
    """Advance a sync iterator on `executor` (with the request's context vars); close it if not exhausted.
    A `PumpedStream` already advances there (its pump started on the thread that made it)."""
    if isinstance(iterator, PumpedStream):
        guarded, pump = iterator.guarded, iterator.pump
    else:
        guarded = GuardedIterator(iterator)
        pump = Pump(guarded, executor, asyncio.get_running_loop())
    context = contextvars.copy_context()
    try:
        while True:
            if pump.chunks:
                # what the stream made since the last send goes out as one body message: fewer trips
                # through the ASGI send chain and the socket, and never a wait for a chunk not yet made
                chunks = pump.chunks
                yield chunks.popleft() if len(chunks) == 1 else b"".join([chunks.popleft() for _ in range(len(chunks))])
                continue
            if pump.done and not pump.running:
                if pump.error is not None:
                    raise pump.error
                return
            if not pump.running:
                pump.running = True
                try:
                    executor.submit(context.run, pump.run)
                except BaseException:
                    pump.running = False
                    raise
            await pump.wait()
    finally:
        if not guarded.finished:
            _close_later(guarded, executor)


def _close_later(guarded: GuardedIterator, executor: Executor) -> None:
    """Close on a worker thread: it waits for a `next()` in flight, and the loop must not wait for it."""
    try:
        executor.submit(guarded.close)
    except RuntimeError:  # executor already shut down (server stopping)
        threading.Thread(target=guarded.close, name="drum-stream-close", daemon=True).start()


class ClosingStreamingResponse(StreamingResponse):
    """A streamed response that always closes its async body iterator, also when the client disconnected
    mid-stream. Instead of Starlette's anyio task group per response (uvicorn speaks ASGI 2.3, so Starlette
    watches for the disconnect in a second task under a cancel scope: most of a short stream's cost), one
    plain asyncio task reads `receive()` and cancels the sending task when `http.disconnect` comes first."""

    def __init__(self, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._source = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        sender = asyncio.current_task()
        state = {"finished": False, "disconnected": False}

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["finished"] and sender is not None:
                        state["disconnected"] = True
                        sender.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                if not isinstance(chunk, (bytes, memoryview)):
                    chunk = chunk.encode(self.charset)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            if sender is not None:
                sender.uncancel()  # the client left: nothing to answer, the request ends normally
        finally:
            state["finished"] = True
            watcher.cancel()
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.background is not None:
            await self.background()
