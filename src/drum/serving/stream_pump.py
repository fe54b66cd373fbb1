"""Streamed answers advanced on the prediction threads, never on the event loop.

A handler's sync stream (a chat hook's generator wrapped in SSE framing) is pulled by a `Pump`: one
executor job pulls chunks while no other job waits for a thread and the client keeps up, handing each to
the loop at once (a hop to a thread and back per chunk costs more than a chunk of a fast stream).
`GuardedIterator` keeps `next()` and `close()` (which may run on different threads) from overlapping.

`PumpedStream`: the prediction thread that made a stream queues its pump right away (`pump_stream`), so
the thread goes on to it without sleeping, instead of the loop waking a thread for it once the answer's
head is sent: one cross-thread wake-up less per streamed answer. The head still goes out as soon as the
handler returns, before the first chunk.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Executor

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


class Pump:
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


class PumpedStream:
    """A handler's stream whose pump was started on the thread that made it (`pump_stream`); the server
    sends the chunks it gathers. `close()` stops it (once a `next()` in flight has returned)."""

    def __init__(self, guarded: GuardedIterator, pump: Pump) -> None:
        self.guarded, self.pump = guarded, pump

    def __iter__(self) -> Iterator[bytes]:  # pragma: no cover - servers read `pump`, never iterate it
        raise TypeError("a PumpedStream is read through its pump")

    def close(self) -> None:
        self.guarded.close()


def pump_stream(stream: Iterator[bytes], executor: Executor, loop: asyncio.AbstractEventLoop) -> PumpedStream:
    """Queue a pump for `stream` on `executor` now, in the caller's context (a prediction thread, in the
    request's context): the thread takes it as soon as the job that made the stream ends."""
    guarded = GuardedIterator(stream)
    pump = Pump(guarded, executor, loop)
    pump.running = True
    try:
        executor.submit(contextvars.copy_context().run, pump.run)
    except RuntimeError:  # shutting down: the loop's side starts it, or fails
        pump.running = False
    return PumpedStream(guarded, pump)
