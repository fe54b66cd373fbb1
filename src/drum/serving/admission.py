"""Admission to the prediction executor: at most `capacity` jobs running or queued, else `Busy` (503);
and `TrackedExecutor`, the prediction threads, which know since when each of them has been busy and hand
an answer back to the event loop in one step (`LoopJob`)."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class Busy(Exception):
    """All executor threads and queue places are taken."""


class Admission:
    """Runs model work on the executor while at most `capacity` jobs are running or queued.

    A slot is held until the thread finishes, even when the request timed out, so a hung model
    cannot make the server accept unbounded work.
    """

    def __init__(
        self, executor: TrackedExecutor, capacity: int, on_change: Callable[[int], None] | None = None
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

    def submit_to_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> LoopJob:
        """`submit`, its answer on `loop` (`TrackedExecutor.submit_to_loop`); called on `loop`'s thread."""
        self.acquire()
        try:
            job = self.executor.submit_to_loop(loop, fn, *args)
        except BaseException:
            self.release()
            raise
        job.future.add_done_callback(self.release)
        return job

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self._in_flight)


class _Call:
    """A `submit`ted call: its answer goes to a `concurrent.futures.Future`."""

    __slots__ = ("future", "fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
        self.future: Future = Future()
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the future, as ThreadPoolExecutor does
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def withdraw(self) -> None:
        self.future.cancel()


class LoopJob:
    """A call for an executor thread whose answer comes back to an event loop as `future`: the loop's own
    future, resolved by one `call_soon_threadsafe` (no `concurrent.futures.Future`, lock or condition, no
    `wrap_future` chain: the hop of every request that is not answered on the loop)."""

    __slots__ = ("fn", "args", "loop", "future", "_claim")

    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args, self.loop = fn, args, loop
        self.future: asyncio.Future = loop.create_future()
        self._claim = [True]  # popped once: by the thread that starts the call, or by cancel()

    def _take(self) -> bool:
        """Whether the caller got the call: the one thread to start it, or the one side to withdraw it."""
        try:
            self._claim.pop()  # atomic: two threads cannot both pop the one element
        except IndexError:
            return False
        return True

    def cancel(self) -> bool:
        """Withdraw the call if no thread has started it, cancelling `future` (on the loop's thread)."""
        if not self._take():
            return False
        self.future.cancel()
        return True

    def withdraw(self) -> None:  # from any thread (shutdown)
        if self._take():
            self._post(self.future.cancel)

    def run(self) -> None:  # on an executor thread
        if not self._take():
            return  # cancelled while queued
        try:
            result = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the future
            self._post(self._fail, exc)
        else:
            self._post(self._done, result)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody waits for the answer
            pass

    def _done(self, result: Any) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class TrackedExecutor(Executor):
    """The prediction threads: a fixed pool that records when each thread started its current job, so
    that readiness can tell a wedged model (every thread held by one job for too long) from a busy one.
    `submit` is `concurrent.futures`' (model loading, warm-up, streams); `submit_to_loop` hands a call to
    the same threads with its answer on an event loop (`LoopJob`), at a fraction of the cost."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        self.threads = max_workers
        self._prefix = thread_name_prefix or "drum-executor"
        self._queue: queue.SimpleQueue[_Call | LoopJob | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._started: dict[int, float] = {}
        self._stopped = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        call = _Call(fn, args, kwargs)
        self._put(call)
        return call.future

    def submit_to_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> LoopJob:
        """Run `fn(*args)` on a thread; its answer (or error) resolves the job's `future` on `loop`.
        Called on `loop`'s thread."""
        job = LoopJob(loop, fn, args)
        self._put(job)
        return job

    def waiting(self) -> bool:
        """Whether jobs wait for a free thread."""
        return not self._queue.empty()

    def _put(self, item: _Call | LoopJob) -> None:
        if self._stopped:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if len(self._workers) < self.threads:
            self._start_threads()
        self._queue.put(item)

    def _start_threads(self) -> None:
        with self._lock:
            while len(self._workers) < self.threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}_{len(self._workers)}", daemon=True
                )
                thread.start()
                self._workers.append(thread)

    def _work(self) -> None:
        ident, take, started = threading.get_ident(), self._queue.get, self._started
        while True:
            item = take()
            if item is None:
                self._queue.put(None)  # wakes the next thread to stop too
                return
            started[ident] = time.monotonic()
            try:
                item.run()
            finally:
                started.pop(ident, None)
            del item

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._stopped = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.withdraw()
        self._queue.put(None)
        if wait:
            for thread in self._workers:
                if thread is not threading.current_thread():
                    thread.join()

    def wedged_for(self, seconds: float) -> bool:
        """Whether every thread has been running one job for more than `seconds` (0: never)."""
        if seconds <= 0:
            return False
        now = time.monotonic()
        started = list(self._started.values())
        return len(started) >= self.threads and all(now - t > seconds for t in started)

