"""InlinePolicy: when a small prediction may run on the event loop."""

from __future__ import annotations

from drum.serving import inline
from drum.serving.inline import STREAK, WALL_FACTOR, InlinePolicy
from drum.serving.request import RequestData
from drum.serving.routes import active_routes

ROUTES = {r.name: r for r in active_routes(True)}
SMALL = RequestData("POST", "/predict/", b"a,b\n1,2\n", [("content-type", "text/csv")])


def _fast(policy: InlinePolicy, n: int = STREAK) -> None:
    for _ in range(n):
        policy.record(0.0001, 0.0002)


def test_a_streak_of_fast_predictions_is_needed():
    policy = InlinePolicy(0.001)
    _fast(policy, STREAK - 1)
    assert not policy.allows(ROUTES["predict"], SMALL, 0)
    _fast(policy, 1)
    assert policy.allows(ROUTES["predict"], SMALL, 0)
    assert policy.allows(ROUTES["v2_infer"], RequestData("POST", "/v2/models/m/infer", b"{}"), 0)


def test_one_slow_prediction_ends_the_streak():
    for cpu, wall in ((0.002, 0.002), (0.0001, 0.001 * WALL_FACTOR + 0.001)):
        policy = InlinePolicy(0.001)
        _fast(policy)
        policy.record(cpu, wall)
        assert not policy.allows(ROUTES["predict"], SMALL, 0)


def test_only_small_predictions_when_nothing_else_runs():
    policy = InlinePolicy(0.001)
    _fast(policy)
    assert not policy.allows(ROUTES["predict"], SMALL, 1)  # never ahead of executor work
    policy.active = inline.MAX_ACTIVE + 1  # heavy load: the executor's thread yields the GIL to the loop
    assert not policy.allows(ROUTES["predict"], SMALL, 0)
    policy.active = 1
    big = RequestData("POST", "/predict/", b"x" * (inline.MAX_BODY + 1), [("content-type", "text/csv")])
    assert not policy.allows(ROUTES["predict"], big, 0)
    assert not policy.allows(ROUTES["transform"], SMALL, 0)
    assert not policy.allows(ROUTES["predict_unstructured"], SMALL, 0)


def test_each_turn_of_the_loop_runs_at_most_its_budget_of_inline_predictions():
    import asyncio
    import time

    from drum.serving.response import ResponseData

    policy = InlinePolicy(1.0)
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


def test_too_many_waiting_requests_go_to_the_executor():
    import asyncio

    policy = InlinePolicy(1.0)
    policy.used = inline.ITERATION_BUDGET  # this turn's budget is spent
    policy.deferred = inline.MAX_DEFERRED

    async def main():
        return await policy.run(lambda: None)  # type: ignore[arg-type,return-value]

    assert asyncio.run(main()) is None


turn = 0
