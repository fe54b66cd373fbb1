"""Closing a streamed chat answer at any layer closes the hook's generator (what a disconnect does)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from drum.model.predictor import tag_chunks
from drum.observability.tracing import stream_with_span
from drum.servers.fastapi.streaming import GuardedIterator, iterate_off_loop
from drum.serving.handlers import _sse


class Chunk:
    object = "chat.completion.chunk"

    def __init__(self, n: int) -> None:
        self.n = n

    def to_json(self, indent=None) -> str:
        return f'{{"n":{self.n}}}'


def endless(events: list[str]):
    i = 0
    try:
        while True:
            events.append(f"chunk {i}")
            yield Chunk(i)
            i += 1
    finally:
        events.append("closed")


def test_closing_the_sse_stream_closes_the_hook_generator():
    events: list[str] = []
    stream = stream_with_span(None, _sse(tag_chunks(endless(events), "assoc")))
    assert next(stream) == b"data: {\"n\":0}\n\n"
    assert next(stream) == b"data: {\"n\":1}\n\n"
    stream.close()
    assert events == ["chunk 0", "chunk 1", "closed"]


def test_closing_before_the_first_chunk_still_closes_the_hook_generator():
    """A client gone before the first byte: the wrappers never ran, the hook's generator (already
    started by DRUM's first-chunk peek) must still be closed."""
    events: list[str] = []
    stream = stream_with_span(None, _sse(tag_chunks(endless(events), "assoc")))
    stream.close()
    assert events == ["chunk 0", "closed"]


def test_a_rejected_stream_is_closed():
    events: list[str] = []

    def wrong():
        try:
            yield "not a chunk"
        finally:
            events.append("closed")

    with pytest.raises(Exception, match="Expected response to be ChatCompletion"):
        tag_chunks(wrong(), "assoc")
    assert events == ["closed"]


def test_close_waits_for_a_next_in_flight():
    """A generator cannot be closed while it runs: close() waits for the running next() to return."""
    started, release = threading.Event(), threading.Event()
    events: list[str] = []

    def slow():
        try:
            yield b"a"
            started.set()
            release.wait(10)
            events.append("second produced")
            yield b"b"
        finally:
            events.append("closed")

    guarded = GuardedIterator(slow())
    assert guarded.next_or_none() == b"a"
    worker = threading.Thread(target=guarded.next_or_none)
    worker.start()
    assert started.wait(10)
    closer = threading.Thread(target=guarded.close)
    closer.start()
    release.set()
    worker.join(10)
    closer.join(10)
    assert events == ["second produced", "closed"]
    assert guarded.next_or_none() is None


def test_iterate_off_loop_runs_next_on_the_executor_and_closes_on_aclose():
    events: list[str] = []
    threads: set[str] = set()

    def gen():
        try:
            for i in range(100):
                threads.add(threading.current_thread().name)
                yield str(i).encode()
        finally:
            events.append("closed")

    async def main(executor: ThreadPoolExecutor) -> list[bytes]:
        stream = iterate_off_loop(gen(), executor)
        got = [await stream.__anext__(), await stream.__anext__()]
        await stream.aclose()
        return got

    with ThreadPoolExecutor(1, thread_name_prefix="drum-predict") as executor:
        got = asyncio.run(main(executor))
    assert b"".join(got).startswith(b"01")  # chunks in order (several at once when made meanwhile)
    assert events == ["closed"]
    assert threads == {"drum-predict_0"}


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="drum-predict")
        self.jobs = 0

    def submit(self, *args, **kwargs):
        self.jobs += 1
        return super().submit(*args, **kwargs)


def test_a_fast_stream_is_pulled_by_few_executor_jobs():
    async def main(executor) -> list[bytes]:
        return [chunk async for chunk in iterate_off_loop((str(i).encode() for i in range(200)), executor)]

    with CountingExecutor() as executor:
        got = asyncio.run(main(executor))
    assert b"".join(got) == b"".join(str(i).encode() for i in range(200))
    assert executor.jobs < 50  # one hop per chunk before


def test_chunks_made_while_the_loop_was_busy_go_out_together():
    async def main(executor) -> list[bytes]:
        stream = iterate_off_loop((str(i % 10).encode() for i in range(12)), executor)
        first = await stream.__anext__()
        await asyncio.sleep(0.2)  # the loop is busy elsewhere: the pump makes the rest meanwhile
        return [first] + [chunk async for chunk in stream]

    with ThreadPoolExecutor(1) as executor:
        got = asyncio.run(main(executor))
    assert b"".join(got) == b"012345678901"
    assert len(got) <= 2  # the chunks made before the loop looked go out as one body message, not 12


def test_a_stream_runs_ahead_of_its_client_only_so_far():
    from drum.servers.fastapi.streaming import MAX_AHEAD

    produced = []

    def gen():
        for i in range(1000):
            produced.append(i)
            yield b"x"

    async def main(executor) -> None:
        stream = iterate_off_loop(gen(), executor)
        await stream.__anext__()
        await asyncio.sleep(0.2)  # the client does not read
        assert len(produced) <= MAX_AHEAD + 2
        await stream.aclose()

    with ThreadPoolExecutor(1) as executor:
        asyncio.run(main(executor))


def test_a_stream_lets_other_jobs_run_between_its_chunks():
    order: list[str] = []

    def slow():
        for i in range(20):
            time.sleep(0.005)
            order.append(f"chunk{i}")
            yield b"x"

    async def main(executor) -> None:
        stream = iterate_off_loop(slow(), executor)
        await stream.__anext__()
        other = asyncio.wrap_future(executor.submit(order.append, "other"))
        async for _ in stream:
            pass
        await other

    with ThreadPoolExecutor(1) as executor:
        asyncio.run(main(executor))
    assert order.index("other") < order.index("chunk19")


def test_a_failing_stream_raises_to_its_reader():
    def failing():
        yield b"a"
        raise ValueError("hook broke")

    async def main(executor) -> list[bytes]:
        got = []
        with pytest.raises(ValueError, match="hook broke"):
            async for chunk in iterate_off_loop(failing(), executor):
                got.append(chunk)
        return got

    with ThreadPoolExecutor(1) as executor:
        assert asyncio.run(main(executor)) == [b"a"]


def test_a_stream_pumped_where_it_was_made_needs_no_job_from_the_loop():
    """`pump_stream` on the prediction thread queues the stream's pump there: the thread goes on to it
    once the job that made the stream ends, and the loop submits nothing (the old way, the loop woke a
    thread for it after sending the head); the chunks arrive whole and in order, and closing stops it."""
    from drum.serving.admission import TrackedExecutor
    from drum.serving.stream_pump import PumpedStream, pump_stream

    submitted_from: list[str] = []
    made_on: list[str] = []

    class Recording(TrackedExecutor):
        def submit(self, *args, **kwargs):
            submitted_from.append(threading.current_thread().name)
            return super().submit(*args, **kwargs)

    def chunks(n: int):
        for i in range(n):
            made_on.append(threading.current_thread().name)
            yield b"%d," % i

    async def main(executor: TrackedExecutor, n: int, close_early: bool) -> bytes:
        loop = asyncio.get_running_loop()
        job = executor.submit_to_loop(loop, lambda: pump_stream(chunks(n), executor, loop))
        stream = await job.future
        assert isinstance(stream, PumpedStream)
        body = iterate_off_loop(stream, executor)
        if close_early:
            first = await body.__anext__()
            await body.aclose()
            return first
        return b"".join([chunk async for chunk in body])

    executor = Recording(1, "drum-predict")
    try:
        assert asyncio.run(main(executor, 6, False)) == b"0,1,2,3,4,5,"
        assert submitted_from == ["drum-predict_0"]  # the pump, queued by the thread itself
        assert set(made_on) == {"drum-predict_0"}
        made_on.clear()
        assert asyncio.run(main(executor, 10_000, True)).startswith(b"0,")
        time.sleep(0.2)
        assert 0 < len(made_on) < 10_000  # closed: the pump stopped pulling
    finally:
        executor.shutdown(wait=True)
