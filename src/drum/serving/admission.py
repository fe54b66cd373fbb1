"""Admission to the prediction executor: at most `capacity` jobs running or queued, else `Busy` (503);
and `TrackedExecutor`, the executor that knows since when each of its threads has been busy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


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


class TrackedExecutor(ThreadPoolExecutor):
    """A thread pool that records when each thread started its current job, so that readiness can tell a
    wedged model (every thread held by one job for too long) from a busy one."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self.threads = max_workers
        self._started: dict[int, float] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(self._tracked, fn, *args, **kwargs)

    def _tracked(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ident = threading.get_ident()
        self._started[ident] = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self._started.pop(ident, None)

    def wedged_for(self, seconds: float) -> bool:
        """Whether every thread has been running one job for more than `seconds` (0: never)."""
        if seconds <= 0:
            return False
        now = time.monotonic()
        started = list(self._started.values())
        return len(started) >= self.threads and all(now - t > seconds for t in started)

