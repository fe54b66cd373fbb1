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
- no prediction is running or queued on the executor (an inline one never overtakes queued work), and at
  most `MAX_ACTIVE` prediction requests are in progress (under heavier load the event loop is the
  bottleneck: predictions go to the executor, whose thread yields the GIL to the loop every switch
  interval, and probes stay fast);

- the event loop has spent less than `ITERATION_BUDGET` on inline predictions in this turn of the loop;
  otherwise the request waits for the next turn (at most `MAX_DEFERRED` requests wait so; more go to
  the executor), so that a probe or a new connection never waits behind a whole queue of predictions
  (each stage of a request, accept, read, respond, takes a turn).

A slow model therefore never runs on the event loop for more than one call, and `/ping/` waits at most
about half a millisecond of predictions per turn of the loop.
"""

from __future__ import annotations

import asyncio
import time
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
MAX_DEFERRED = 8
#: Prediction requests in progress at most for a new one to run inline.
MAX_ACTIVE = 8
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


class InlinePolicy:
    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.fast = 0  # consecutive predictions that took at most max_seconds
        self.used = 0.0  # seconds of inline predictions in this turn of the loop
        self.deferred = 0  # requests waiting for a later turn
        self.active = 0  # prediction requests in progress (counted by the runtime)
        self._reset_scheduled = False

    async def run(self, call: Callable[[], ResponseData]) -> ResponseData | None:
        """`call()` on the event loop within this turn's budget (waiting for later turns if needed), or None
        when too many requests wait already (then the caller uses the executor)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._reset_scheduled:  # the first inline request of this turn: the next turn starts afresh
                self._reset_scheduled = True
                loop.call_soon(self._new_turn)
            if self.used < ITERATION_BUDGET:
                started = time.perf_counter()
                try:
                    return self.timed(call)
                finally:
                    self.used += time.perf_counter() - started
            if self.deferred >= MAX_DEFERRED:
                return None
            self.deferred += 1
            try:
                await asyncio.sleep(0)
            finally:
                self.deferred -= 1

    def _new_turn(self) -> None:
        self.used = 0.0
        self._reset_scheduled = False

    @staticmethod
    def candidate(route: Route) -> bool:
        """Whether the route makes structured predictions (the only ones ever run inline)."""
        return route.handler is handlers.predict or route.handler is v2.infer

    def allows(self, route: Route, req: RequestData, in_flight: int) -> bool:
        return (
            self.fast >= STREAK
            and in_flight == 0
            and self.active <= MAX_ACTIVE
            and self.candidate(route)
            and len(req.body) <= MAX_BODY
            and not req.is_form
        )

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
