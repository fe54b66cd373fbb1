"""Adaptive batching internals: which score hooks read per-request kwargs, and how the batcher dispatches."""

from __future__ import annotations

import asyncio
import contextvars
import threading

from drum.model.target import TargetType
from drum.serving import batching
from drum.serving.admission import TrackedExecutor
from drum.serving.batcher import Batcher
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

    monkeypatch.setattr("drum.serving.batcher.run_batch", fake_run_batch)
    ctx = ServingContext(predictor=None, target_type=TargetType.REGRESSION, code_dir="")

    async def scenario() -> list[ResponseData]:
        with TrackedExecutor(1) as executor:
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
