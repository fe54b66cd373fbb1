"""Adaptive batching, the event-loop half: queue prediction requests, hand them to the executor in
batches, wake each request with its own answer.

"Batch what accumulated while the previous batch ran": requests are dispatched at the end of the turn of
the event loop that queued them (every request that arrived in that turn goes in one batch; no waiting
for company that may never come). While a batch runs, new requests queue; when it ends, everything
queued (up to `max_rows` rows) goes as the next batch. With several executor threads, a free thread takes
queued requests early only once they hold `max_rows` rows or the oldest has waited `max_wait` seconds.

A batch of one request of a model the inline policy allows (`inline`: a plain scikit-learn/XGBoost
artifact whose last batches cost at most DRUM_INLINE_PREDICTION_MAX_US per request, a small body, nothing
else running) is answered on the event loop: at low load batching then costs no thread hop.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque

from drum.serving.admission import TrackedExecutor
from drum.serving.batching import BatchItem, run_batch
from drum.serving.handlers import ServingContext
from drum.serving.inline import InlinePolicy


class Batcher:
    def __init__(
        self, ctx: ServingContext, executor: TrackedExecutor, threads: int, max_rows: int, max_wait: float
    ) -> None:
        self.ctx = ctx
        self.executor = executor
        self.threads = threads
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._queue: deque[tuple[BatchItem, asyncio.Future]] = deque()
        self._queued_rows = 0
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon = False  # a dispatch is scheduled for the end of this turn of the loop
        #: Set by the runtime for models whose lone small requests may run on the event loop.
        self.inline: InlinePolicy | None = None

    def submit(self, item: BatchItem) -> asyncio.Future:
        """Queue a request; the future resolves to its `ResponseData` (or fails if the batch job died)."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        self._queued_rows += item.rows
        if not self._soon:
            self._soon = True
            loop.call_soon(self._dispatch_soon)
        return future

    def _dispatch_soon(self) -> None:
        self._soon = False
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._running < self.threads:
            if self._running and self._queued_rows < self.max_rows:
                wait = self._queue[0][0].enqueued + self.max_wait - time.perf_counter()
                if wait > 0:
                    if self._timer is None:
                        self._timer = self._loop.call_later(wait, self._on_timer)
                    return
            self._start(self._take())

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _take(self) -> list[tuple[BatchItem, asyncio.Future]]:
        batch = [self._queue.popleft()]
        rows = batch[0][0].rows
        while self._queue and rows + self._queue[0][0].rows <= self.max_rows:
            entry = self._queue.popleft()
            rows += entry[0].rows
            batch.append(entry)
        self._queued_rows -= rows
        for item, _ in batch:
            item.taken = True
        return batch

    def _inline(self, batch: list[tuple[BatchItem, asyncio.Future]]) -> bool:
        """Whether `batch` is answered on the event loop (see the module docstring)."""
        policy = self.inline
        return policy is not None and len(batch) == 1 and not self._running and policy.allows_request(batch[0][0].req)

    def _start(self, batch: list[tuple[BatchItem, asyncio.Future]]) -> None:
        if self._inline(batch):
            self._run([batch[0][0]])  # run_batch enters the request's context itself
            self._answer(batch, None)
            return
        self._running += 1
        items = [item for item, _ in batch]
        loop = self._loop
        try:
            job = self.executor.submit_to_loop(loop, contextvars.copy_context().run, self._run, items)
        except BaseException as exc:  # noqa: BLE001 - executor shut down
            self._running -= 1
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        job.future.add_done_callback(lambda done: self._finished(batch, done))

    def _run(self, items: list[BatchItem]) -> None:
        """`run_batch`, its CPU and wall time per request told to the inline policy."""
        if self.inline is None:
            run_batch(self.ctx, items)
        else:
            self.inline.timed(lambda: run_batch(self.ctx, items), len(items))

    def _finished(self, batch: list[tuple[BatchItem, asyncio.Future]], job: asyncio.Future) -> None:
        self._running -= 1
        error = RuntimeError("the batch was cancelled (the server is stopping)") if job.cancelled() else job.exception()
        self._answer(batch, error)
        self._dispatch()

    def _answer(self, batch: list[tuple[BatchItem, asyncio.Future]], error: BaseException | None) -> None:
        for item, future in batch:
            if future.done():
                continue
            if error is None and item.expired:
                future.set_result(None)  # past its deadline: the runtime answers 504
            elif error is not None or item.response is None:
                future.set_exception(error or RuntimeError("batch ended without an answer"))
            else:
                future.set_result(item.response)

    @property
    def queued(self) -> int:
        return len(self._queue)
