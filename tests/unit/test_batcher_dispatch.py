"""Adaptive batching internals: which score hooks read per-request kwargs, and how the batcher dispatches."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from drum.model.target import TargetType
from drum.servers.fastapi.batcher import Batcher
from drum.serving import batching
from drum.serving.batching import BatchItem, reads_keyword_arguments
from drum.serving.handlers import ServingContext
from drum.serving.request import RequestData
from drum.serving.response import ResponseData


def test_score_hooks_that_read_their_kwargs_are_detected():
    def ignores(data, model, **kwargs):
        return data

    def reads(data, model, **kwargs):
        return kwargs["binary_data"]

    def passes_on(data, model, **kwargs):
        return helper(**kwargs)

    def captures(data, model, **kwargs):
        return (lambda: kwargs)()

    def named(data, model, mimetype=None):
        return data

    def plain(data, model):
        return data

    def helper(**kwargs):
        return kwargs

    assert not reads_keyword_arguments(ignores)
    assert not reads_keyword_arguments(plain)
    assert reads_keyword_arguments(reads)
    assert reads_keyword_arguments(passes_on)
    assert reads_keyword_arguments(captures)
    assert reads_keyword_arguments(named)


def _item(rows: int) -> BatchItem:
    return BatchItem(RequestData("POST", "/predict/"), ("text/csv", ()), rows, contextvars.copy_context())


def test_batcher_dispatches_at_once_when_idle_and_merges_what_queued_meanwhile(monkeypatch):
    batches: list[int] = []
    release = threading.Event()

    def fake_run_batch(ctx, items):
        batches.append(len(items))
        if len(batches) == 1:
            release.wait(5)
        for item in items:
            item.response = ResponseData(200, b"ok")

    monkeypatch.setattr("drum.servers.fastapi.batcher.run_batch", fake_run_batch)
    ctx = ServingContext(predictor=None, target_type=TargetType.REGRESSION, code_dir="")

    async def scenario() -> list[ResponseData]:
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(ctx, executor, threads=1, max_rows=3, max_wait=10)
            first = batcher.submit(_item(1))  # nothing running: goes at once, alone
            await asyncio.sleep(0.05)
            rest = [batcher.submit(_item(1)) for _ in range(4)]  # queue while the first runs
            assert batcher.queued == 4
            release.set()
            return await asyncio.gather(first, *rest)

    answers = asyncio.run(scenario())
    assert [a.body for a in answers] == [b"ok"] * 5
    assert batches == [1, 3, 1]  # at most max_rows rows per batch
    assert batching.estimated_rows(RequestData("POST", "/", b"a,b\n1,2\n3,4\n")) == 2


def test_estimated_rows_stops_counting_past_the_bound():
    body = b"a,b\n" + b"1,2\n" * 200_000
    assert batching.estimated_rows(RequestData("POST", "/", body)) == 200_000
    bounded = batching.estimated_rows(RequestData("POST", "/", body), at_most=100)
    assert 100 < bounded < 20_000  # the first 64 KiB told it all
    assert batching.estimated_rows(RequestData("POST", "/", b"a,b\n1,2\n3,4\n"), at_most=100) == 2
    assert batching.estimated_rows(RequestData("POST", "/", b""), at_most=100) == 1


def test_requests_larger_than_a_batch_skip_the_batcher(monkeypatch):
    """A request with more rows than a batch may hold is served as without batching (never through the
    batcher, its rows never counted whole on the event loop)."""
    from drum.servers.fastapi import app as fastapi_app
    from drum.servers.fastapi.limits import Admission
    from drum.serving.routes import ROUTES

    route = next(r for r in ROUTES if r.path == "/predict/")
    alone: list[int] = []
    monkeypatch.setattr(fastapi_app, "run_route", lambda ctx, route, req: alone.append(len(req.body))
                        or ResponseData(200, b"alone"))  # fmt: skip

    class RecordingBatcher:
        max_rows = 4

        def __init__(self) -> None:
            self.rows: list[int] = []

        def submit(self, item: BatchItem) -> asyncio.Future:
            self.rows.append(item.rows)
            future = asyncio.get_running_loop().create_future()
            future.set_result(ResponseData(200, b"batched"))
            return future

    def scope() -> dict:
        return {"type": "http", "method": "POST", "path": "/predict/", "query_string": b"",
                "headers": [(b"content-type", b"text/csv")]}  # fmt: skip

    def receive_of(body: bytes):
        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    small, large = b"a,b\n" + b"1,2\n" * 4, b"a,b\n" + b"1,2\n" * 50_000

    async def scenario() -> list[bytes]:
        with ThreadPoolExecutor(1) as executor:
            state = fastapi_app.DrumState()
            state.ctx = ServingContext(predictor=None, target_type=TargetType.REGRESSION, code_dir="")
            state.executor, state.admission = executor, Admission(executor, 8, None)
            state.batcher = batcher = RecordingBatcher()  # type: ignore[assignment]
            answers = [(await state.respond(route, scope(), receive_of(b))).body for b in (small, large)]
            assert batcher.rows == [4]
            return answers

    assert asyncio.run(scenario()) == [b"batched", b"alone"]
    assert alone == [len(large)]
