"""InlinePolicy: when a small prediction may run on the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from drum.serving import inline
from drum.serving.inline import STREAK, WALL_FACTOR, DeadlinePassed, InlinePolicy
from drum.serving.request import RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import active_routes

ROUTES = {r.name: r for r in active_routes(True)}
SMALL = RequestData("POST", "/predict/", b"a,b\n1,2\n", [("content-type", "text/csv")])


def _fast(policy: InlinePolicy, n: int = STREAK) -> None:
    for _ in range(n):
        policy.record(0.0001, 0.0002)


def test_a_streak_of_fast_predictions_is_needed():
    policy = InlinePolicy(0.001)
    _fast(policy, STREAK - 1)
    assert not policy.allows(ROUTES["predict"], SMALL)
    _fast(policy, 1)
    assert policy.allows(ROUTES["predict"], SMALL)
    assert policy.allows(ROUTES["v2_infer"], RequestData("POST", "/v2/models/m/infer", b"{}"))


def test_one_slow_prediction_ends_the_streak():
    for cpu, wall in ((0.002, 0.002), (0.0001, 0.001 * WALL_FACTOR + 0.001)):
        policy = InlinePolicy(0.001)
        _fast(policy)
        policy.record(cpu, wall)
        assert not policy.allows(ROUTES["predict"], SMALL)


def test_only_small_structured_predictions():
    policy = InlinePolicy(0.001)
    _fast(policy)
    big = RequestData("POST", "/predict/", b"x" * (inline.MAX_BODY + 1), [("content-type", "text/csv")])
    assert not policy.allows(ROUTES["predict"], big)
    assert not policy.allows(ROUTES["transform"], SMALL)
    assert not policy.allows(ROUTES["predict_unstructured"], SMALL)


def test_each_turn_of_the_loop_runs_at_most_its_budget_of_inline_predictions():
    policy = InlinePolicy(1.0)
    _fast(policy)
    turns: list[int] = []

    def slow() -> ResponseData:  # longer than a turn's budget
        turns.append(turn)
        time.sleep(inline.ITERATION_BUDGET * 2)
        return ResponseData(200)

    async def main() -> list[ResponseData | None]:
        global turn
        runs = [asyncio.ensure_future(policy.run(slow)) for _ in range(3)]
        for turn in range(1, 20):  # noqa: B007 - read by slow()
            await asyncio.sleep(0)
        return [await r for r in runs]

    answers = asyncio.run(main())
    assert [a.status for a in answers if a is not None] == [200, 200, 200]
    assert len(set(turns)) == 3  # one per turn: the others waited for a later one


def _spent(policy: InlinePolicy, queued: int = 0) -> None:
    """This turn's budget spent, `queued` requests waiting already."""
    policy.used = inline.ITERATION_BUDGET
    policy._turn_scheduled = True  # no new turn comes: the test drives _next_turn itself
    for _ in range(queued):
        policy.queue.append((lambda: None, None, asyncio.Future()))  # type: ignore[arg-type]


def test_too_many_waiting_requests_go_to_the_executor():
    policy = InlinePolicy(1.0)

    async def main():
        _spent(policy, inline.MAX_QUEUED)
        return await policy.run(lambda: ResponseData(200))

    assert asyncio.run(main()) is None


def test_a_queued_request_past_its_deadline_is_never_run():
    policy = InlinePolicy(1.0)
    _fast(policy)
    ran: list[str] = []

    async def main():
        _spent(policy)
        late = asyncio.ensure_future(policy.run(lambda: ran.append("late") or ResponseData(200), time.monotonic()))
        on_time = asyncio.ensure_future(policy.run(lambda: ran.append("on time") or ResponseData(200), None))
        await asyncio.sleep(0)  # both queued
        policy._next_turn()
        with pytest.raises(DeadlinePassed):
            await late
        return await on_time

    assert asyncio.run(main()).status == 200
    assert ran == ["on time"]


def test_queued_requests_go_to_the_executor_once_a_slow_call_ends_the_streak():
    policy = InlinePolicy(0.001)
    _fast(policy)
    ran: list[str] = []

    def slow() -> ResponseData:
        ran.append("slow")
        policy.record(0.5, 0.5)  # what timed() records for a slow call
        return ResponseData(200)

    async def main():
        _spent(policy)
        first = asyncio.ensure_future(policy.run(slow))
        second = asyncio.ensure_future(policy.run(lambda: ran.append("second") or ResponseData(200)))
        cancelled = asyncio.ensure_future(policy.run(lambda: ran.append("cancelled") or ResponseData(200)))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        policy.used = 0.0
        policy._next_turn()
        return (await first).status, await second, cancelled.cancelled()

    assert asyncio.run(main()) == (200, None, True)  # None: the caller takes it to the executor
    assert ran == ["slow"]


turn = 0
