"""Small predictions of plain artifact models answered on the event loop, without the executor hop.

A 1-row prediction of a scikit-learn or XGBoost artifact is about 0.1 ms of model work: less than handing
it to a prediction thread and back (a future, a wake-up across threads, the GIL changing hands twice).
`InlinePolicy` lets such a request run on the event loop, under every one of these conditions:

- the model: drum's own Python predictor on a scikit-learn or XGBoost artifact, with no hook that runs
  per request (`read_input_data`, `transform`, `score`, `post_process`, a CustomTask), no MLOps monitor;
- the request: a structured prediction (`/predict/` and its aliases, V2 `/infer`), not multipart, a body of
  at most `MAX_BODY` bytes;
- the model has been fast: each of the last `STREAK` predictions (wherever they ran) took at most
  `max_seconds` (DRUM_INLINE_PREDICTION_MAX_US) of its thread's CPU time, and at most `WALL_FACTOR` times
  that of wall time (a prediction thread also waits for the GIL while the event loop holds it: CPU time
  is the model's own cost); one slower call sends the next ones back to the executor until a new streak;
- the event loop has spent less than `ITERATION_BUDGET` on inline predictions in this turn of the loop
  and nothing waits before it; otherwise the request joins a queue that the loop works through at the
  start of each later turn, `ITERATION_BUDGET` at a time (at most `MAX_QUEUED` requests wait so; more go
  to the executor). A probe or a new connection never waits behind a whole queue of predictions (each
  stage of a request, accept, read, respond, takes a turn), and under load the event loop, which is the
  bottleneck of small requests, spends no time handing predictions to a thread and back. A queued
  request whose deadline (X-Request-Timeout) passes is never scored (504); once a slow call has ended
  the streak, the queued ones go to the executor.

A slow model therefore never runs on the event loop for more than one call, and `/ping/` waits at most
about half a millisecond of predictions per turn of the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from drum.model.predictor import Predictor
from drum.serving import handlers, v2
from drum.serving.batching import BATCHED_TARGETS
from drum.serving.handlers import ServingContext
from drum.serving.request import RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import Route

T = TypeVar("T")

#: Largest request body answered on the event loop (about 300 rows of 10 numbers).
MAX_BODY = 65536
#: Consecutive fast predictions before the next ones may run on the event loop.
STREAK = 32
#: A fast prediction's wall time may be this many times its CPU time limit (waits for the GIL).
WALL_FACTOR = 10
#: Seconds of inline predictions per turn of the event loop.
ITERATION_BUDGET = 0.0005
#: Requests that may wait for a later turn of the loop; more go to the executor.
MAX_QUEUED = 64
#: Artifact predictors whose predictions may run on any thread.
THREAD_AGNOSTIC = ("scikit-learn", "xgboost")
#: Hooks that run user code for each request.
PER_REQUEST_HOOKS = ("read_input_data", "transform", "score", "post_process")


def model_eligible(ctx: ServingContext) -> bool:
    """Whether this model's small predictions may ever run on the event loop (see the module docstring)."""
    model = ctx.predictor
    if model is None or ctx.load_error is not None or ctx.target_type not in BATCHED_TARGETS:
        return False
    if type(model).predict is not Predictor.predict or model.monitor is not None:
        return False
    if model.hooks.task_class is not None or any(model.hooks.has(h) for h in PER_REQUEST_HOOKS):
        return False
    artifact = model.artifact_predictor
    return artifact is not None and artifact.name in THREAD_AGNOSTIC


class DeadlinePassed(Exception):
    """A queued inline prediction reached its request's deadline before its turn: never scored."""


class InlinePolicy:
    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.fast = 0  # consecutive predictions that took at most max_seconds
        self.used = 0.0  # seconds of inline predictions in this turn of the loop
        #: Requests waiting for a later turn: the call, its deadline (monotonic) and its future.
        self.queue: deque[tuple[Callable[[], ResponseData], float | None, asyncio.Future]] = deque()
        self._turn_scheduled = False

    async def run(self, call: Callable[[], ResponseData], deadline: float | None = None) -> ResponseData | None:
        """`call()` on the event loop, now if this turn's budget allows and nothing waits, else in a later
        turn; None when `MAX_QUEUED` requests wait already (then the caller uses the executor). Raises
        DeadlinePassed when `deadline` passes while it waits."""
        loop = asyncio.get_running_loop()
        if not self._turn_scheduled:  # the next turn starts afresh (and works through the queue)
            self._turn_scheduled = True
            loop.call_soon(self._next_turn)
        if not self.queue and self.used < ITERATION_BUDGET:
            return self._timed_turn(call)
        if len(self.queue) >= MAX_QUEUED:
            return None
        future = loop.create_future()
        self.queue.append((call, deadline, future))
        return await future

    def _timed_turn(self, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return self.timed(call)
        finally:
            self.used += time.perf_counter() - started

    def _next_turn(self) -> None:
        """A new turn's budget, spent on the queue (oldest first); scheduled again while work remains."""
        self.used = 0.0
        self._turn_scheduled = False
        queue = self.queue
        while queue and self.used < ITERATION_BUDGET:
            call, deadline, future = queue.popleft()
            if future.done():  # cancelled: the request's task was cancelled
                continue
            if self.fast < STREAK:  # a slow call ended the streak: the executor takes the rest
                future.set_result(None)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                future.set_exception(DeadlinePassed())
                continue
            try:
                future.set_result(self._timed_turn(call))
            except Exception as exc:  # noqa: BLE001 - raised where the request awaits it
                future.set_exception(exc)
        if queue or self.used:
            self._turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    @staticmethod
    def candidate(route: Route) -> bool:
        """Whether the route makes structured predictions (the only ones ever run inline)."""
        return route.handler is handlers.predict or route.handler is v2.infer

    def allows(self, route: Route, req: RequestData) -> bool:
        return self.candidate(route) and self.allows_request(req)

    def allows_request(self, req: RequestData) -> bool:
        """The model has been fast and `req` is small (the route is the caller's to check)."""
        return self.fast >= STREAK and len(req.body) <= MAX_BODY and not req.is_form

    def record(self, cpu_seconds: float, wall_seconds: float) -> None:
        fast = cpu_seconds <= self.max_seconds and wall_seconds <= self.max_seconds * WALL_FACTOR
        self.fast = self.fast + 1 if fast else 0

    def timed(self, run: Callable[[], T], requests: int = 1) -> T:
        """`run()`, its CPU and wall time per request (of `requests`) recorded."""
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return run()
        finally:
            self.record((time.thread_time() - cpu) / requests, (time.perf_counter() - wall) / requests)
