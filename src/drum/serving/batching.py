"""Adaptive batching, the framework-neutral half: which requests may share one model call, and
running a batch of them (on an executor thread) with the same answers as one-by-one calls.

DRUM's `/predict/` and the V2 protocol's `/infer` are batched (each with the other of its own kind).
A batch is split into groups that may be merged: same route handler, same content type and query,
and input frames with the same columns and dtypes. Each group's frames are concatenated, scored in
one call and the predictions split back by row counts. A request whose input fails to read or
prepare gets its own error; when a merged call fails, or returns a different number of rows, every
request of the group is scored on its own, so only the bad one fails.

Models whose hooks may need per-request data are served one by one unless `allow_hooks` is set:
`read_input_data`, `transform`, and a `score` hook that reads its keyword arguments (`binary_data`,
`mimetype`, ...). With `allow_hooks`, each request's `read_input_data`/`transform` still run on
its own input; the merged `score` call receives the first request's keyword arguments.
"""

from __future__ import annotations

import contextvars
import dis
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drum.model import codecs, output
from drum.model.fastcsv import PlainTable
from drum.model.predictor import PredictionInput, Predictor, PredictResponse
from drum.model.target import TargetType
from drum.serving import handlers, v2
from drum.serving.dispatch import exception_response
from drum.serving.errors import response_for_exception
from drum.serving.handlers import ServingContext
from drum.serving.request import RequestData
from drum.serving.response import ResponseData
from drum.serving.routes import Route

logger = logging.getLogger("drum.serving.batching")

BATCHED_TARGETS = frozenset(
    {TargetType.REGRESSION, TargetType.ANOMALY, TargetType.BINARY, TargetType.MULTICLASS, TargetType.MULTILABEL}
)
#: Hooks that read or reshape one request's input.
PER_REQUEST_HOOKS = ("read_input_data", "transform")
#: `batch_key`'s first element for the V2 protocol's `/infer` requests.
V2_KEY = "v2-infer"


def hooks_needing_request_data(predictor: Predictor) -> list[str]:
    """The model's hooks that may need one request's own data (so merging requests could change them)."""
    names = [name for name in PER_REQUEST_HOOKS if predictor.hooks.has(name)]
    score = predictor.hooks.get("score")
    if score is not None and reads_keyword_arguments(score):
        names.append("score (reads its keyword arguments)")
    if predictor.hooks.task_class is not None:
        method = "predict_proba" if predictor.target_type.is_classification() else "predict"
        fn = getattr(predictor.model, method, None)
        if fn is None or reads_keyword_arguments(fn, positional=1):
            names.append(f"CustomTask.{method} (reads its keyword arguments)")
    return names


def reads_keyword_arguments(fn: Callable[..., Any], positional: int = 2) -> bool:
    """Whether `fn(data, model, **kwargs)` (`positional` arguments, then keywords) may look at its keyword
    arguments: explicit keyword parameters, or a `**kwargs` that its code loads (or code we cannot inspect)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    varkw = [p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    if len([p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]) > positional:
        return True
    if not varkw:
        return False
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return True
    if varkw[0] in code.co_cellvars:  # captured by a nested function
        return True
    return any(ins.argval == varkw[0] and ins.opname.startswith("LOAD_") for ins in dis.get_instructions(code))


def model_batchable(ctx: ServingContext, allow_hooks: bool) -> tuple[bool, str]:
    """Whether predictions of this model may be batched, and why not."""
    if ctx.predictor is None or ctx.load_error is not None:
        return False, "the model is not loaded"
    if ctx.target_type not in BATCHED_TARGETS:
        return False, f"target type {ctx.target_type.value} is not batched"
    if type(ctx.model).predict is not Predictor.predict:
        return False, "the model is served by another runtime (R, an OpenAI-compatible backend): one call per request"
    if ctx.model.monitor is not None:
        return False, "MLOps monitoring reports each request's own features and timing"
    needing = hooks_needing_request_data(ctx.model)
    if needing and not allow_hooks:
        return False, f"hooks that may need per-request data ({', '.join(needing)}); DRUM_BATCHING_ALLOW_HOOKS opts in"
    return True, ""


def batch_key(route: Route, req: RequestData) -> tuple | None:
    """What must be equal for two requests to be merged, or None when this request is never batched
    (not a structured prediction, sparse or multipart input)."""
    if req.method != "POST":
        return None
    if route.handler is v2.infer:
        return (V2_KEY,)
    if route.handler is not handlers.predict:
        return None
    mimetype = req.mimetype
    if req.is_form or mimetype == codecs.TEXT_MTX or not codecs.is_mimetype_supported(mimetype):
        return None
    return (req.header("content-type"), tuple(req.query.items_multi()))


#: `estimated_rows` counts line ends this many bytes at a time.
COUNT_STEP = 65536


def estimated_rows(req: RequestData, at_most: int | None = None, key: tuple | None = None) -> int:
    """Rows in a CSV body, roughly (line ends less the header); at least 1. With `at_most`, counting stops
    once the body is known to hold more (a 20 MB body costs ~10 ms to count whole, on the event loop).
    A V2 body (`key` from `batch_key`): the first dimension of its first input's shape."""
    body = req.body
    if key is not None and key[0] == V2_KEY:
        return v2.estimated_rows(body)
    lines = 0
    for start in range(0, len(body), COUNT_STEP):
        lines += body.count(b"\n", start, start + COUNT_STEP)
        if at_most is not None and lines - 1 > at_most:
            break
    return max(1, lines - 1)


@dataclass
class BatchItem:
    req: RequestData
    key: tuple
    rows: int
    context: contextvars.Context
    enqueued: float = field(default_factory=time.perf_counter)
    response: ResponseData | None = None
    #: `time.monotonic()` after which the request is not scored any more (its client got 504).
    deadline: float | None = None
    #: Set when the batch found the deadline passed or the client gone (the request's answer is then None).
    expired: bool = False
    #: Set by the batcher when a batch takes the request; by the runtime when its client left.
    taken: bool = False
    abandoned: bool = False


@dataclass
class _Prepared:
    item: BatchItem
    inputs: PredictionInput
    data: pd.DataFrame
    #: The parsed V2 request (None for DRUM's `/predict/`).
    v2: v2.InferRequest | None = None

    def answer(self, ctx: ServingContext, result: PredictResponse) -> ResponseData:
        """This request's answer from its own rows of a prediction."""
        if self.v2 is not None:
            return self.v2.answer(result.predictions)
        body = output.prediction_body(result, ctx.target_type, ctx.deployment_config)
        return ResponseData(200, body, "application/json")

    def error(self, exc: BaseException) -> ResponseData:
        """This request's error answer, in its protocol's format."""
        return exception_response("v2" if self.v2 is not None else "drum", exc)


def run_batch(ctx: ServingContext, items: Sequence[BatchItem]) -> None:
    """Answer every item (sets `item.response`); never raises."""
    started = time.perf_counter()
    groups: dict[tuple, list[_Prepared]] = {}
    for item in items:
        is_v2 = item.key[0] == V2_KEY
        if item.abandoned or (item.deadline is not None and time.monotonic() >= item.deadline):
            item.expired = True  # its client left or got 504: never scored
            continue
        try:
            prepared = item.context.run(_prepare_v2 if is_v2 else _prepare, ctx, item)
        except BaseException as exc:  # noqa: BLE001 - this request fails alone
            item.response = item.context.run(exception_response, "v2" if is_v2 else "drum", exc)
            continue
        data = prepared.data
        if isinstance(data, PlainTable):
            signature = (item.key, "plain", data.names, data.dtypes)
        elif isinstance(data, pd.DataFrame):
            signature = (item.key, "frame", tuple(data.columns), tuple(str(t) for t in data.dtypes))
        else:
            item.response = item.context.run(_answer_alone, ctx, prepared)
            continue
        groups.setdefault(signature, []).append(prepared)
    for group in groups.values():
        if len(group) == 1:
            group[0].item.response = group[0].item.context.run(_answer_alone, ctx, group[0])
        else:
            _answer_group(ctx, group)
    elapsed = time.perf_counter() - started
    for _ in items:
        ctx.times.add(elapsed)


def _prepare(ctx: ServingContext, item: BatchItem) -> _Prepared:
    """A request's prediction input and the model's input: a `PlainTable` when the built-in reader would
    read it (merged without building a frame per request), else what `prepare_data` gives."""
    inputs = handlers.prediction_input(ctx, item.req)
    table = None if ctx.model.hooks.has("transform") else ctx.model.read_table(inputs)
    return _Prepared(item, inputs, ctx.model.prepare_data(inputs) if table is None else table)


def _prepare_v2(ctx: ServingContext, item: BatchItem) -> _Prepared:
    """A V2 `/infer` request's frame (its tensors, then the `transform` hook, as `v2.infer` does)."""
    parsed = v2.parse_infer(ctx, item.req)
    inputs = PredictionInput(item.req.body, "application/json")
    if not ctx.model.hooks.has("transform"):  # one [N, F] tensor: merged without a frame per request
        table = parsed.table_of(ctx)
        if table is not None:
            return _Prepared(item, inputs, table, parsed)
    frame = ctx.model.transform_input(parsed.frame(ctx))
    return _Prepared(item, inputs, frame, parsed)


def _answer_alone(ctx: ServingContext, prepared: _Prepared) -> ResponseData:
    try:
        return prepared.answer(ctx, ctx.model.predict_data(prepared.data, prepared.inputs))
    except BaseException as exc:  # noqa: BLE001 - the protocol's error response, as run_route gives
        return prepared.error(exc)


def _answer_group(ctx: ServingContext, group: list[_Prepared]) -> None:
    sizes = [len(p.data) for p in group]
    first = group[0]
    try:
        if isinstance(first.data, PlainTable):
            merged = PlainTable.concat([p.data for p in group])  # framed by the predictor where a frame is due
        else:
            merged = pd.concat([p.data for p in group], ignore_index=True)
        result = first.item.context.run(ctx.model.predict_data, merged, first.inputs)
        extra = result.extra_model_output
        merged_ok = len(result.predictions) == len(merged) and (extra is None or len(extra) == len(merged))
    except BaseException as exc:  # noqa: BLE001 - fall back to one call per request
        logger.debug("Merged call for %d requests failed (%r); scoring them one by one", len(group), exc)
        merged_ok = False
    if not merged_ok:
        for p in group:
            p.item.response = p.item.context.run(_answer_alone, ctx, p)
        return
    if first.v2 is not None:
        try:  # each request's outputs are its rows of the merged outputs
            columns: tuple[list[str], list[np.ndarray]] | None = v2.output_columns(result.predictions)
        except Exception:  # noqa: BLE001 - each slice then fails (or not) as it would alone
            columns = None
        start = 0
        for p, size in zip(group, sizes, strict=True):
            if columns is not None:
                names, arrays = columns
                rows = [array[start : start + size] for array in arrays]
                p.item.response = p.item.context.run(_answer_v2_rows, p, names, rows)
            else:
                p.item.response = p.item.context.run(_answer_slice, ctx, p, result, start, start + size)
            start += size
        return
    bodies = output.split_prediction_bodies(result, sizes, ctx.target_type, ctx.deployment_config)
    for p, body in zip(group, bodies, strict=True):
        if isinstance(body, bytes):
            p.item.response = ResponseData(200, body, "application/json")
        else:
            p.item.response = p.item.context.run(response_for_exception, body)


def _answer_v2_rows(p: _Prepared, names: list[str], rows: list[np.ndarray]) -> ResponseData:
    assert p.v2 is not None
    try:
        return p.v2.answer_columns(names, rows)
    except BaseException as exc:  # noqa: BLE001 - this request's answer is its error
        return p.error(exc)


def _answer_slice(ctx: ServingContext, p: _Prepared, result: PredictResponse, start: int, stop: int) -> ResponseData:
    try:
        return p.answer(ctx, output.slice_response(result, start, stop))
    except BaseException as exc:  # noqa: BLE001 - this request's answer is its error
        return p.error(exc)
