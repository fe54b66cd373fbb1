"""Flush `sys.stdout` shortly after request activity stops, so model prints reach piped logs promptly.

When stdout is a pipe (containers, log collectors) Python buffers it in blocks: a model's `print()`
would otherwise appear only when the buffer fills. `StdoutFlusher` is DRUM's daemon thread that wakes
every second and flushes once more than a second has passed since the last request activity;
`StdoutFlusherMiddleware` (pure ASGI) marks that activity. One flusher per worker process, started in
the lifespan and stopped on shutdown.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("drum.observability.stdout_flusher")


class StdoutFlusher:
    """Flushes stdout after `max_time_until_flushing` seconds without request activity.

    `stream` is what gets flushed; by default whatever `sys.stdout` is at that moment.
    """

    def __init__(self, max_time_until_flushing: float = 1.0, stream: TextIO | None = None) -> None:
        self._interval = max_time_until_flushing
        self._stream = stream
        self._last_activity: float | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the flusher thread (a no-op when it is already running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._run, name="drum-stdout-flusher", daemon=True)
            self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and wait for it, then flush whatever is still buffered."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None and thread.is_alive():
            self._stop_event.set()
            thread.join()
        self._flush()

    def set_last_activity_time(self) -> None:
        """Mark request activity now; stdout is flushed once it has been quiet for the interval."""
        self._last_activity = time.monotonic()

    def _run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self._flush_if_idle()

    def _flush_if_idle(self) -> None:
        last = self._last_activity
        if last is not None and time.monotonic() - last > self._interval:
            self._last_activity = None
            self._flush()

    def _flush(self) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        if stream is None:
            return
        try:
            stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken pipe: nothing left to flush into
            logger.debug("Could not flush stdout: %s", exc)


class StdoutFlusherMiddleware:
    """Pure ASGI: marks flusher activity when an HTTP request starts and when its response has finished."""

    def __init__(self, app: ASGIApp, flusher: StdoutFlusher) -> None:
        self.app = app
        self.flusher = flusher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.flusher.set_last_activity_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.flusher.set_last_activity_time()
