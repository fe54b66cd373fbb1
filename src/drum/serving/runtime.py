"""The serving runtime: one object per serving process, the same under both backends.

`Runtime(config, load, server_name)` owns, from `start()` to `stop()`: the process tuning (glibc's
mmap threshold, the GIL switch interval), the prediction executor and its admission (503), loading
the model once on that executor (with `--with-error-server`'s 513 fallback), the backend proxy of
GPU/sidecar mode, the NIM watchdog, the adaptive batcher, the stdout flusher and the metrics.
`respond(route, req)` is the dispatch policy of one request: early answers (OPTIONS, not loaded, error
server), event-loop routes, admission, batching and the request timeout (504). The Flask backend,
which serves one request per thread or process, calls `respond_blocking` instead.

Servers only translate their framework's request into `RequestData` and the `ResponseData` back.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import math
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from drum.config.server_config import ServerConfig
from drum.errors import DrumCommonException
from drum.model import codecs
from drum.model.target import TargetType
from drum.observability import tracing
from drum.observability.metrics import Metrics
from drum.observability.stdout_flusher import StdoutFlusher
from drum.serving.admission import Admission, Busy, LoopJob, TrackedExecutor
from drum.serving.batcher import Batcher
from drum.serving.batching import BatchItem, batch_key, estimated_rows, model_batchable
from drum.serving.dispatch import early_response, protocol_error, run_route, run_route_async
from drum.serving.handlers import ServingContext
from drum.serving.inline import DeadlinePassed, InlinePolicy, model_eligible
from drum.serving.malloc import fix_mmap_threshold
from drum.serving.request import RequestData
from drum.serving.response import ResponseData, error_response
from drum.serving.routes import ROUTES, UNSTRUCTURED, Route
from drum.serving.stream_pump import pump_stream

if TYPE_CHECKING:
    from drum.serving.watchdog import Watchdog

logger = logging.getLogger("drum.server")
BUSY_TEXT = "Server is busy: every prediction thread and queue place is taken. Retry later."
#: The status logged for a request whose client left before its answer (nginx's "client closed request").
CLIENT_CLOSED = 499
#: A client's deadline for its request, in seconds (capped by DRUM_CLIENT_REQUEST_TIMEOUT).
TIMEOUT_HEADER = "X-Request-Timeout"


class BadTimeout(ValueError):
    """An `X-Request-Timeout` header that is not a positive number of seconds."""


def timed_out_text(timeout: float) -> str:
    return f"Request timed out after {timeout:g} seconds"


def error_context(exc: BaseException) -> ServingContext:
    """The context of `--with-error-server` after a failed load: the routes DRUM keeps answer 513."""
    return ServingContext(predictor=None, target_type=TargetType.REGRESSION, code_dir="", load_error=str(exc))


class Runtime:
    """See the module docstring. `load` builds the serving context (loads the model); it runs on the
    prediction executor, the thread that will run the model."""

    def __init__(self, config: ServerConfig, load: Callable[[], ServingContext], server_name: str = "fastapi") -> None:
        self.config = config
        self.server_name = server_name
        self._load = load
        self.ctx: ServingContext | None = None
        self.executor: TrackedExecutor | None = None
        self.admission: Admission | None = None
        self.batcher: Batcher | None = None
        self.inline: InlinePolicy | None = None
        self.watchdog: Watchdog | None = None
        self.flusher = StdoutFlusher()
        self.metrics: Metrics | None = Metrics() if config.settings.metrics_enabled else None
        #: Seconds before a request is answered 504 (0: no limit).
        self.request_timeout: float = config.settings.request_timeout

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Tune the process, start the executor and load the model on it, then everything around it.
        A load failure raises, unless `--with-error-server` (then the routes answer 513)."""
        settings = self.config.settings
        if settings.malloc_mmap_threshold:  # large bodies and frames go back to the system after each request
            fix_mmap_threshold(settings.malloc_mmap_threshold)
        if settings.gil_switch_interval_us:
            # The loop waits at most this long for the GIL while a prediction thread runs Python code
            # (Python's default 5 ms makes every /ping wait behind predictions).
            sys.setswitchinterval(settings.gil_switch_interval_us / 1e6)
        self.executor = TrackedExecutor(settings.executor_workers, thread_name_prefix="drum-predict")
        capacity = settings.executor_workers + settings.max_queue
        self.admission = Admission(self.executor, capacity, self.metrics.set_jobs if self.metrics else None)
        ctx = self.ctx = self._load_model()
        ctx.server_name = self.server_name
        ctx.wedged = self.wedged
        ctx.metrics = self.metrics
        if getattr(ctx.predictor, "openai_host", None) is not None:  # httpx is imported only for such backends
            from drum.serving.proxy import backend_proxy_for

            ctx.proxy = backend_proxy_for(ctx.predictor, settings.direct_access_timeout)
            if ctx.proxy is not None:
                ctx.proxy.open()
        if settings.nim_watchdog:
            from drum.serving.watchdog import Watchdog  # imports httpx: only when asked for

            c = self.config
            url = f"http://{c.watchdog_host}:{c.port}{c.url_prefix}/info/"
            self.watchdog = Watchdog(
                ctx, url, settings.nim_watchdog_request_timeout, settings.nim_watchdog_max_attempts,
                settings.nim_watchdog_interval,
            )
            self.watchdog.start()
        self.batcher = self._batcher(ctx)
        if settings.warmup_input and ctx.load_error is None:
            self._warm_up(ctx, settings.warmup_input, settings.warmup_requests)
        if settings.inline_prediction_max_us and model_eligible(ctx):
            policy = InlinePolicy(settings.inline_prediction_max_us / 1e6)
            if self.batcher is None:
                self.inline = policy
            else:  # batching: only a batch of one runs on the loop (Batcher._inline)
                self.batcher.inline = policy
        self.flusher.start()
        # Everything loaded so far (libraries, the model) lives as long as the server: out of the
        # collector's sight, a full collection walks only what requests made (~35 ms -> ~1 ms with
        # pandas and sklearn loaded; those pauses were the whole p99 of small requests).
        gc.collect()
        gc.freeze()

    def _load_model(self) -> ServingContext:
        assert self.executor is not None
        try:
            return self.executor.submit(self._load).result()
        except (Exception, SystemExit) as exc:
            if not self.config.with_error_server:
                self.executor.shutdown(wait=False)
                raise
            if self.config.show_stacktrace:
                traceback.print_exception(exc)
            logger.error("Model failed to load; serving errors (513) because of --with-error-server: %s", exc)
            return error_context(exc)

    def _warm_up(self, ctx: ServingContext, path: str, times: int) -> None:
        """Score `path` `times` times through the target type's route on the executor (DRUM_WARMUP_INPUT),
        before the server accepts connections; a failed request raises (the server does not start)."""
        assert self.executor is not None
        routes = {TargetType.TRANSFORM: "transform", TargetType.UNSTRUCTURED: UNSTRUCTURED}
        name = routes.get(ctx.target_type, "predict")
        route = next(r for r in ROUTES if r.name == name)
        with open(path, "rb") as f:
            body = f.read()
        mimetype = codecs.mimetype_from_filename(path) or ("text/csv" if name != UNSTRUCTURED else None)
        headers = [("content-type", mimetype)] if mimetype else []
        started = time.perf_counter()
        for _ in range(times):
            req = RequestData("POST", route.path, body, headers)
            answer = self.executor.submit(contextvars.copy_context().run, run_route, ctx, route, req).result()
            if answer.status >= 400:
                raise DrumCommonException(
                    f"Warm-up with {path} failed ({answer.status}): {answer.body.decode(errors='replace').strip()}"
                )
        # printed like DRUM's start-up lines (shown at the default log level)
        print(f"Warm-up: {times} request(s) with {path} in {(time.perf_counter() - started) * 1000:.1f} ms", flush=True)

    def _batcher(self, ctx: ServingContext) -> Batcher | None:
        """The batcher when DRUM_BATCHING_MAX_ROWS is set and the model may be batched (else None, logged)."""
        settings = self.config.settings
        if not settings.batching_max_rows:
            return None
        ok, reason = model_batchable(ctx, settings.batching_allow_hooks)
        if ok and tracing.tracing_active():
            ok, reason = False, "tracing is on (each request keeps its own span)"
        if not ok:
            logger.warning("Adaptive batching is off for this model: %s", reason)
            return None
        logger.info(
            "Adaptive batching on: up to %d rows per model call, %d ms wait", settings.batching_max_rows,
            settings.batching_max_wait_ms,
        )
        assert self.executor is not None
        return Batcher(
            ctx, self.executor, settings.executor_workers, settings.batching_max_rows,
            settings.batching_max_wait_ms / 1000,
        )

    async def aclose(self) -> None:
        """Close what lives on the event loop (the backend proxy's connections); the caller then calls `stop()`."""
        if self.ctx is not None and self.ctx.proxy is not None:
            await self.ctx.proxy.aclose()

    def stop(self) -> None:
        """Stop after the last request: let running predictions finish, flush the MLOps reporter,
        stdout and the tracing exporters."""
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if self.ctx is not None and self.ctx.predictor is not None:
            self.ctx.predictor.terminate()  # after the last prediction: flushes the MLOps reporter
        self.flusher.stop()
        tracing.shutdown_otel()
        gc.unfreeze()

    # --- one request -----------------------------------------------------------------------------

    async def respond(self, route: Route, req: RequestData) -> ResponseData:
        """The answer to one request of `route` (event-loop servers)."""
        ctx = self.ctx
        early = early_response(ctx, route, req.method, req.path)
        if early is not None:
            return early
        assert ctx is not None
        if route.async_handler is not None:
            return await run_route_async(ctx, route, req)
        if route.on_loop:
            return run_route(ctx, route, req)
        try:
            timeout = self.timeout_of(req)
        except BadTimeout as exc:
            return protocol_error(route.protocol, str(exc), 400)
        inline = self.inline
        if inline is None or not inline.candidate(route):
            return await self._on_executor(ctx, route, req, timeout)
        if inline.allows(route, req):
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                answer = await inline.run(lambda: run_route(ctx, route, req), deadline)
            except DeadlinePassed:
                return self._timed_out(route, req, timeout)
            if answer is not None:
                return answer
        return await self._on_executor(ctx, route, req, timeout)

    def respond_blocking(self, route: Route, req: RequestData) -> ResponseData:
        """The answer to one request of `route`, computed in the calling thread (the Flask backend)."""
        early = early_response(self.ctx, route, req.method, req.path)
        if early is not None:
            return early
        assert self.ctx is not None
        if not route.on_loop:
            try:
                self.timeout_of(req)  # WSGI cannot stop waiting for a thread: an invalid header is still a 400
            except BadTimeout as exc:
                return protocol_error(route.protocol, str(exc), 400)
        return run_route(self.ctx, route, req)

    def wedged(self) -> str | None:
        """Why the model is not ready: every prediction thread held by one request for longer than the
        request timeout (DRUM_CLIENT_REQUEST_TIMEOUT); None while a thread is free or moving."""
        executor, limit = self.executor, self.request_timeout
        if executor is None or not limit or not executor.wedged_for(limit):
            return None
        return f"every prediction thread has been busy with one request for more than {limit:g} seconds"

    def timeout_of(self, req: RequestData) -> float | None:
        """Seconds this request may take before its 504: `X-Request-Timeout` (a positive number, at most
        DRUM_CLIENT_REQUEST_TIMEOUT), else DRUM_CLIENT_REQUEST_TIMEOUT; None: no limit. Raises BadTimeout."""
        limit = self.request_timeout or None
        value = req.header(TIMEOUT_HEADER)
        if value is None:
            return limit
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise BadTimeout(f"{TIMEOUT_HEADER} must be a positive number of seconds, not {value!r}")
        return seconds if limit is None else min(seconds, limit)

    async def _on_executor(
        self, ctx: ServingContext, route: Route, req: RequestData, timeout: float | None
    ) -> ResponseData:
        """Model work: batched or alone, admitted or 503, answered or 504 after `timeout` seconds. Work still
        queued at its deadline is never run; work that runs past it finishes and its answer is dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        assert self.admission is not None
        loop = asyncio.get_running_loop()
        batcher = self.batcher
        key = batch_key(route, req) if batcher is not None else None
        rows = 0
        if key is not None:
            assert batcher is not None
            rows = estimated_rows(req, batcher.max_rows, key)
            if rows > batcher.max_rows:  # a batch of its own anyway: served as without batching
                key = None
        item: BatchItem | None = None
        job = None
        try:
            if batcher is not None and key is not None:
                self.admission.acquire()
                item = BatchItem(req, key, rows, contextvars.copy_context(), deadline=deadline)
                future = batcher.submit(item)
                future.add_done_callback(self.admission.release)
            else:
                job = self.admission.submit_to_loop(
                    loop, contextvars.copy_context().run, self._run_route, ctx, route, req, deadline, loop
                )
                future = job.future
        except Busy:
            busy = protocol_error(route.protocol, BUSY_TEXT, 503)
            busy.headers.append(("Retry-After", "1"))
            return busy
        if timeout is None and req.on_disconnect is None:
            return await future
        # wake on the answer, the client's disconnect or the deadline, whichever comes first (callbacks, not
        # asyncio.wait: this is every queued request's path)
        waiter = loop.create_future()
        left = False

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        def leave() -> None:
            nonlocal left
            left = True
            wake()

        future.add_done_callback(wake)
        if req.on_disconnect is not None:
            req.on_disconnect(leave)
        timer = loop.call_later(timeout, wake) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
        if future.done():
            answer = future.result()  # the job's failure is raised, as when awaited
            if answer is not None:
                return answer
        future.add_done_callback(self._close_abandoned_stream)
        if not future.done() and left:
            return self._abandoned(req, job, item)
        return self._timed_out(route, req, timeout)  # still running (its answer will be dropped), or never run

    @staticmethod
    def _timed_out(route: Route, req: RequestData, timeout: float | None) -> ResponseData:
        logger.error("Request %s %s timed out after %ss", req.method, req.path, f"{timeout:g}")
        return protocol_error(route.protocol, timed_out_text(timeout or 0), 504)

    def _abandoned(self, req: RequestData, job: LoopJob | None, item: BatchItem | None) -> ResponseData:
        """The client left before its answer: work not started is never run (its thread goes to the next
        request); work running finishes and its result is dropped. Logged as 499, counted in /metrics."""
        if job is not None:
            queued = job.cancel()
        else:
            assert item is not None
            queued = not item.taken
            item.abandoned = True
        if self.metrics is not None:
            self.metrics.count_abandoned("queued" if queued else "running")
        logger.info("Client left before the answer to %s %s (%s)", req.method, req.path,
                    "never scored" if queued else "its result is dropped")  # fmt: skip
        return error_response("Client closed the request", CLIENT_CLOSED)

    def _run_route(
        self, ctx: ServingContext, route: Route, req: RequestData, deadline: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> ResponseData | None:
        """`run_route` on the executor (None, never run, when the request's deadline passed while it was
        queued); a prediction's duration tells the inline policy whether it is fast. A streamed answer's
        pump is queued here, for this thread to take next (`stream_pump.pump_stream`)."""
        if deadline is not None and time.monotonic() >= deadline:
            return None
        inline = self.inline
        if inline is None or not inline.candidate(route):
            answer = run_route(ctx, route, req)
        else:
            answer = inline.timed(lambda: run_route(ctx, route, req))
        if answer is not None and answer.stream is not None and loop is not None and self.executor is not None:
            answer.stream = pump_stream(answer.stream, self.executor, loop)
        return answer

    def _close_abandoned_stream(self, future: asyncio.Future) -> None:
        """A handler that finished after its request got 504 may have opened a stream (a chat generator):
        close it on the executor (never on the loop)."""
        if future.cancelled() or future.exception() is not None or future.result() is None:
            return
        close = getattr(getattr(future.result(), "stream", None), "close", None)
        if close is None:
            return
        try:
            assert self.executor is not None
            self.executor.submit(close)
        except (AssertionError, RuntimeError):  # shutting down
            close()
