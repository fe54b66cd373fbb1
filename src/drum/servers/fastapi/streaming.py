"""Streamed responses for the FastAPI server: sync iterators run off the event loop, and every stream is
closed when the client goes away.

A handler's sync stream (a chat hook's generator wrapped in SSE framing) is advanced on the prediction
executor, never on the loop: one job pulls chunks while no other job waits and hands each to the loop
at once; chunks made while the loop was busy are sent together, as one body message. When the client
disconnects, Starlette cancels the send task; `ClosingStreamingResponse` then closes the body iterator,
which closes the sync stream in the executor once any `next()` still running has returned (a generator
cannot be closed while it runs).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

logger = logging.getLogger("drum.server")


class GuardedIterator:
    """A sync iterator whose `next()` and `close()` never overlap (they may run on different threads)."""

    def __init__(self, iterator: Iterator[bytes]) -> None:
        self._iterator = iterator
        self._lock = threading.Lock()
        self.finished = False

    def next_or_none(self) -> bytes | None:
        with self._lock:
            if self.finished:
                return None
            try:
                return next(self._iterator)
            except StopIteration:
                self.finished = True
                return None
            except BaseException:
                self.finished = True
                raise

    def close(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            close = getattr(self._iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - a failing close must not hide the disconnect
                    logger.exception("Closing a response stream failed")


#: Chunks a stream may run ahead of its client before its pump stops (and is started again when they are sent).
MAX_AHEAD = 16


def _others_waiting(executor: Executor) -> bool:
    """Whether other jobs wait for the executor's threads (True when that cannot be told)."""
    waiting = getattr(executor, "waiting", None)  # drum's TrackedExecutor
    if waiting is not None:
        return waiting()
    queue = getattr(executor, "_work_queue", None)  # a ThreadPoolExecutor
    return queue is None or not queue.empty()


class _Pump:
    """Advances a stream on the executor: one job pulls chunks for as long as no other job waits for a
    thread and the client keeps up (a hop to a thread and back per chunk costs more than a chunk of a
    fast stream), handing each to the loop as soon as it is made."""

    def __init__(self, guarded: GuardedIterator, executor: Executor, loop: asyncio.AbstractEventLoop) -> None:
        self.guarded, self.executor, self.loop = guarded, executor, loop
        self.chunks: collections.deque[bytes] = collections.deque()
        self.running = False
        self.done = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake_pending = False

    def run(self) -> None:  # on an executor thread
        try:
            while True:
                chunk = self.guarded.next_or_none()
                if chunk is None:
                    self.done = True
                    return
                self.chunks.append(chunk)
                self._notify()
                if len(self.chunks) >= MAX_AHEAD or _others_waiting(self.executor):
                    return
        except BaseException as exc:  # noqa: BLE001 - raised on the loop, where the response is
            self.error = exc
            self.done = True
        finally:
            self.running = False
            self._notify()

    def _notify(self) -> None:
        """Wake the loop, once until it has woken (a wake-up costs a write to the loop's pipe)."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the server stopped
            pass

    def _wake(self) -> None:
        self._wake_pending = False  # first: what the pump does from now on wakes the loop again
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


async def iterate_off_loop(iterator: Iterator[bytes], executor: Executor) -> AsyncIterator[bytes]:
    """Advance a sync iterator on `executor` (with the request's context vars); close it if not exhausted."""
    guarded = GuardedIterator(iterator)
    pump = _Pump(guarded, executor, asyncio.get_running_loop())
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
