"""StdoutFlusher: flushes stdout once request activity has been quiet for the interval; its middleware."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from drum.observability.stdout_flusher import StdoutFlusher, StdoutFlusherMiddleware

INTERVAL = 0.05


class CountingStdout:
    def __init__(self, fail: bool = False) -> None:
        self.flushes = 0
        self.fail = fail
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        with self.lock:
            self.flushes += 1
        if self.fail:
            raise ValueError("I/O operation on closed file")


@pytest.fixture
def stdout() -> CountingStdout:
    return CountingStdout()


@pytest.fixture
def flusher(stdout):
    f = StdoutFlusher(INTERVAL, stream=stdout)
    yield f
    f.stop()


def wait_for(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_flushes_once_after_activity_goes_quiet(stdout, flusher):
    flusher.start()
    flusher.set_last_activity_time()
    assert wait_for(lambda: stdout.flushes >= 1)
    time.sleep(INTERVAL * 5)
    assert stdout.flushes == 1  # one flush per quiet period, not one per tick


def test_no_flush_without_activity(stdout, flusher):
    flusher.start()
    time.sleep(INTERVAL * 5)
    assert stdout.flushes == 0


def test_no_flush_while_activity_continues(stdout):
    flusher = StdoutFlusher(0.3, stream=stdout)
    flusher.start()
    try:
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            flusher.set_last_activity_time()
            time.sleep(0.02)
        assert stdout.flushes == 0
        assert wait_for(lambda: stdout.flushes == 1)
    finally:
        flusher.stop()


def test_each_quiet_period_flushes_again(stdout, flusher):
    flusher.start()
    flusher.set_last_activity_time()
    assert wait_for(lambda: stdout.flushes == 1)
    flusher.set_last_activity_time()
    assert wait_for(lambda: stdout.flushes == 2)


def test_default_interval_is_one_second(stdout):
    flusher = StdoutFlusher(stream=stdout)
    flusher.start()
    try:
        flusher.set_last_activity_time()
        time.sleep(0.5)
        assert stdout.flushes == 0
        assert wait_for(lambda: stdout.flushes == 1, timeout=3)
    finally:
        flusher.stop()


def test_thread_is_a_daemon_and_stop_joins_it(stdout, flusher):
    flusher.start()
    thread = flusher._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    started = time.monotonic()
    flusher.stop()
    assert time.monotonic() - started < 1
    assert not thread.is_alive()
    assert not flusher.is_alive()


def test_stop_flushes_what_is_left(stdout, flusher):
    flusher.start()
    flusher.stop()
    assert stdout.flushes == 1


def test_start_twice_and_stop_twice_are_safe(stdout, flusher):
    flusher.stop()  # never started
    flusher.start()
    thread = flusher._thread
    flusher.start()  # already running: no second thread, no "threads can only be started once"
    assert flusher._thread is thread
    flusher.stop()
    flusher.stop()
    assert not flusher.is_alive()


def test_can_start_again_after_stop(stdout, flusher):
    flusher.start()
    flusher.stop()
    flusher.start()
    assert flusher.is_alive()
    flusher.set_last_activity_time()
    assert wait_for(lambda: stdout.flushes >= 2)


def test_a_failing_flush_does_not_kill_the_thread():
    broken = CountingStdout(fail=True)
    flusher = StdoutFlusher(INTERVAL, stream=broken)
    flusher.start()
    flusher.set_last_activity_time()
    assert wait_for(lambda: broken.flushes == 1)
    assert flusher.is_alive()
    flusher.set_last_activity_time()
    assert wait_for(lambda: broken.flushes == 2)
    flusher.stop()
    assert not flusher.is_alive()


def test_flushes_the_current_sys_stdout_by_default(monkeypatch):
    flusher = StdoutFlusher(INTERVAL)
    fake = CountingStdout()
    monkeypatch.setattr(sys, "stdout", fake)
    flusher._flush()
    monkeypatch.undo()
    assert fake.flushes == 1


class RecordingFlusher(StdoutFlusher):
    def __init__(self) -> None:
        super().__init__()
        self.marks = 0

    def set_last_activity_time(self) -> None:
        self.marks += 1
        super().set_last_activity_time()


async def _http_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(app, scope_type: str = "http") -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": scope_type, "method": "GET", "path": "/", "headers": []}, receive, send))
    return sent


def test_middleware_marks_activity_when_the_response_has_finished():
    flusher = RecordingFlusher()
    seen_during: list[float | None] = []

    async def app(scope, receive, send):
        flusher._last_activity = None
        await _http_app(scope, receive, send)
        seen_during.append(flusher._last_activity)

    sent = _call(StdoutFlusherMiddleware(app, flusher))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert seen_during == [None]
    assert flusher._last_activity is not None  # marked after the response
    assert flusher.marks == 2  # at the start and at the end


def test_middleware_marks_activity_when_the_app_raises():
    flusher = RecordingFlusher()

    async def app(scope, receive, send):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _call(StdoutFlusherMiddleware(app, flusher))
    assert flusher.marks == 2


def test_middleware_ignores_lifespan():
    flusher = RecordingFlusher()
    called = []

    async def app(scope, receive, send):
        called.append(scope["type"])

    _call(StdoutFlusherMiddleware(app, flusher), "lifespan")
    assert called == ["lifespan"]
    assert flusher.marks == 0
