"""Streamed responses for the FastAPI server: sync iterators run off the event loop, and every stream is
closed when the client goes away.

A handler's sync stream (a chat hook's generator wrapped in SSE framing) is advanced one `next()` at a
time on the prediction executor, never on the loop. When the client disconnects, Starlette cancels the
send task; `ClosingStreamingResponse` then closes the body iterator, which closes the sync stream in
the executor once any `next()` still running has returned (a generator cannot be closed while it runs).
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


async def iterate_off_loop(iterator: Iterator[bytes], executor: Executor) -> AsyncIterator[bytes]:
    """Advance a sync iterator on `executor` (with the request's context vars); close it if not exhausted."""
    guarded = GuardedIterator(iterator)
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    try:
        while True:
            chunk = await loop.run_in_executor(executor, context.run, guarded.next_or_none)
            if chunk is None:
                return
            yield chunk
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
    """A StreamingResponse that always closes its async body iterator, also when the client disconnected
    mid-stream (Starlette cancels the sending task and leaves the iterator open)."""

    def __init__(self, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._source = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                await aclose()
