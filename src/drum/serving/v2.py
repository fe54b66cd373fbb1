"""The Open Inference Protocol (KServe V2, as MLServer and Triton speak it) over REST, beside DRUM's routes.

`GET /v2/health/live`, `/v2/health/ready`, `/v2`, `/v2/models/{name}`, `/v2/models/{name}/ready` and
`POST /v2/models/{name}/infer`. An inference request's tensors become the model's input frame: several
inputs are columns named by the inputs; one `[N, F]` tensor is N rows of F columns (named by the model's
features when it knows F of them); MLServer's pandas codec (`"content_type": "pd"`) is the same table.
The frame goes through the same path as `/predict/` (transform, score or the artifact, post_process,
DRUM's marshalling; no `read_input_data` hook: the payload is already parsed), `/transform/` for transform
models, and `score_unstructured` for unstructured models (the first BYTES element as text). Each prediction
column is one output tensor: `Predictions` (regression, anomaly) or one per class label. Errors answer
the protocol's `{"error": "..."}`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import drum
from drum.model.fastcsv import PlainTable, column_dtypes, column_index
from drum.model.predictor import PredictionInput
from drum.model.target import TargetType
from drum.serving.errors import response_for_exception as drum_response_for_exception
from drum.serving.handlers import ServingContext
from drum.serving.request import RequestData
from drum.serving.response import ResponseData, json_response

#: V2 datatypes → numpy dtypes (BYTES are Python strings).
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": object,
}  # fmt: skip
MODEL_PATH = re.compile(r"/v2/models/([^/]+)")


class V2Error(Exception):
    """A V2 request the server refuses: `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error(message: str, status: int) -> ResponseData:
    return json_response({"error": message}, status)


def response_for_exception(exc: BaseException) -> ResponseData:
    """A V2 route's failure as the protocol answers it: `{"error": ...}`; the request's fault is 4xx (a user
    error keeps its status), the model's 500 (logged as DRUM logs it)."""
    if isinstance(exc, V2Error):
        return error(str(exc), exc.status)
    drum_answer = drum_response_for_exception(exc)  # logs, and knows the 4xx cases (payloads, user errors)
    try:
        message = json.loads(drum_answer.body).get("message", "")
    except (ValueError, AttributeError, TypeError):
        message = str(exc)
    return error(message.removeprefix("ERROR: "), drum_answer.status)


def model_name(ctx: ServingContext) -> str:
    """The model's V2 name: model-metadata.yaml's `name`, else the code dir's directory name."""
    name = (ctx.model_metadata or {}).get("name")
    return str(name) if name else os.path.basename(os.path.normpath(ctx.code_dir)) or "model"


def _requested_model(ctx: ServingContext, req: RequestData) -> str:
    found = MODEL_PATH.search(req.path)
    name = found.group(1) if found else ""
    if name != model_name(ctx):
        raise V2Error(f"Model {name} not found", 404)
    return name


# --- health and metadata ----------------------------------------------------------------------------


def live(ctx: ServingContext, req: RequestData) -> ResponseData:
    return json_response({"live": True})


def _not_ready(ctx: ServingContext) -> str | None:
    return ctx.wedged() if ctx.wedged is not None else None


def ready(ctx: ServingContext, req: RequestData) -> ResponseData:
    """Ready unless the model is wedged (every prediction thread held past the request timeout): then 503."""
    reason = _not_ready(ctx)
    return error(f"not ready: {reason}", 503) if reason else json_response({"ready": True})


def model_ready(ctx: ServingContext, req: RequestData) -> ResponseData:
    name = _requested_model(ctx, req)
    reason = _not_ready(ctx)
    return error(f"not ready: {reason}", 503) if reason else json_response({"name": name, "ready": True})


def server_metadata(ctx: ServingContext, req: RequestData) -> ResponseData:
    return json_response({"name": "drum", "version": drum.__version__, "extensions": []})


def _feature_names(ctx: ServingContext) -> tuple[str, ...] | None:
    """The model's feature names (scikit-learn's `feature_names_in_`), or None."""
    model = getattr(ctx.model, "model", None)
    names = getattr(model, "feature_names_in_", None)
    return tuple(str(n) for n in names) if names is not None else None


def _features(ctx: ServingContext) -> pd.Index | None:
    """The model's feature names as a column index, or None."""
    names = _feature_names(ctx)
    return column_index(names) if names is not None else None


def _output_names(ctx: ServingContext) -> list[str]:
    ordering = ctx.model.class_ordering if ctx.target_type.is_classification() else None
    return [str(label) for label in ordering] if ordering else ["Predictions"]


def model_metadata(ctx: ServingContext, req: RequestData) -> ResponseData:
    name = _requested_model(ctx, req)
    features = _features(ctx)
    inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in ([] if features is None else features)]
    outputs = [{"name": o, "datatype": "FP64", "shape": [-1]} for o in _output_names(ctx)]
    return json_response({"name": name, "versions": [], "platform": f"drum-{ctx.language}", "inputs": inputs,
                          "outputs": outputs, "parameters": {"target_type": ctx.target_type.value}})  # fmt: skip


# --- inference -------------------------------------------------------------------------------------------


def _tensor(spec: Any) -> tuple[str, np.ndarray]:
    if not isinstance(spec, dict):
        raise V2Error("each input must be an object with name, shape, datatype and data")
    name, shape, datatype, data = spec.get("name"), spec.get("shape"), spec.get("datatype"), spec.get("data")
    if not isinstance(name, str) or not isinstance(shape, list) or data is None:
        raise V2Error(f"input {name!r} needs name, shape, datatype and data")
    if datatype not in DATATYPES:
        raise V2Error(f"input {name!r}: unsupported datatype {datatype!r}")
    try:
        values = np.asarray(data, dtype=DATATYPES[datatype])
        expected = int(np.prod(shape)) if shape else 1
        if values.size != expected:
            raise V2Error(f"input {name!r}: shape {shape} holds {expected} values, data has {values.size}")
        return name, values.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise V2Error(f"input {name!r}: {exc}") from None


def request_frame(ctx: ServingContext, inputs: list[Any], table: bool = False) -> pd.DataFrame:
    """The model's input frame from the request's tensors (see the module docstring). `table`: the request
    is MLServer's pandas-codec table (`"content_type": "pd"`): every input is a column, even a lone one."""
    tensors = [_tensor(spec) for spec in inputs]
    if len(tensors) == 1 and _one_matrix(tensors[0][1], table):
        name, values = tensors[0]
        names = _feature_names(ctx)
        if names is not None and len(names) == values.shape[1]:
            return PlainTable(names, matrix=values).frame()
        # one [N, 1] tensor is one column, named by its input (as MLServer's codecs send a column)
        return pd.DataFrame(values, columns=[name] if values.shape[1] == 1 else None)
    columns = {}
    rows = None
    for name, values in tensors:
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise V2Error(f"input {name!r}: several inputs must each be one column ([N] or [N, 1]), not {values.shape}")
        if rows is not None and len(values) != rows:
            raise V2Error("all inputs must have the same number of rows")
        rows = len(values)
        columns[name] = values
    return pd.DataFrame(columns)


def request_table(ctx: ServingContext, inputs: list[Any], table: bool = False) -> PlainTable | None:
    """`request_frame`'s frame as a `PlainTable` (its `frame()` is that frame) when the request is one
    [N, F] tensor of the model's F named features, else None (errors are `request_frame`'s)."""
    names = _feature_names(ctx)
    if len(inputs) != 1 or names is None:
        return None
    _, values = _tensor(inputs[0])
    if not _one_matrix(values, table) or len(names) != values.shape[1]:
        return None
    return PlainTable(names, matrix=values)


def _one_matrix(values: np.ndarray, table: bool) -> bool:
    """Whether a lone input tensor is the whole [N, F] input (not a pandas-codec table's one column)."""
    return values.ndim == 2 and not (table and values.shape[1] == 1)


def output_columns(frame: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """The output names and arrays of a prediction frame (`InferRequest.answer_columns`)."""
    return [str(c) for c in frame.columns.tolist()], _columns(frame)


def _columns(frame: pd.DataFrame) -> list[np.ndarray]:
    """Each column of `frame` as an array (one `to_numpy()` when all columns have one plain dtype)."""
    dtypes = column_dtypes(frame)
    if dtypes and all(d == dtypes[0] for d in dtypes) and getattr(dtypes[0], "kind", "O") in "biuf":
        return list(frame.to_numpy().T)
    return [frame.iloc[:, i].to_numpy() for i in range(frame.shape[1])]


def _output(name: str, array: np.ndarray) -> dict[str, Any]:
    if array.dtype.kind == "f":
        datatype, data = "FP64", array.astype(np.float64).tolist()
    elif array.dtype.kind in "iu":
        datatype, data = "INT64", array.astype(np.int64).tolist()
    elif array.dtype.kind == "b":
        datatype, data = "BOOL", array.tolist()
    else:
        datatype, data = "BYTES", [str(v) for v in array]
    return {"name": name, "shape": [len(array)], "datatype": datatype, "data": data}


@dataclass
class InferRequest:
    """A parsed `/infer` request: the model name it named and its JSON body."""

    name: str
    body: dict[str, Any]

    @property
    def inputs(self) -> list[Any]:
        return self.body["inputs"]

    @property
    def table(self) -> bool:
        """Whether the request is MLServer's pandas-codec table (`parameters.content_type` "pd")."""
        parameters = self.body.get("parameters")
        return isinstance(parameters, dict) and parameters.get("content_type") == "pd"

    def frame(self, ctx: ServingContext) -> pd.DataFrame:
        return request_frame(ctx, self.inputs, self.table)

    def table_of(self, ctx: ServingContext) -> PlainTable | None:
        return request_table(ctx, self.inputs, self.table)

    def answer(self, frame: pd.DataFrame) -> ResponseData:
        """The protocol's answer: each column of `frame` one output (only the requested ones)."""
        return self.answer_columns(*output_columns(frame))

    def answer_columns(self, names: list[str], arrays: list[np.ndarray]) -> ResponseData:
        """`answer` of the frame whose columns are `names` and `arrays`."""
        outputs = [_output(name, array) for name, array in zip(names, arrays, strict=True)]
        requested = self.body.get("outputs")
        if isinstance(requested, list) and requested:
            wanted = [o.get("name") for o in requested if isinstance(o, dict)]
            missing = [w for w in wanted if w not in {o["name"] for o in outputs}]
            if missing:
                raise V2Error(f"unknown outputs requested: {missing}; this model has {[o['name'] for o in outputs]}")
            outputs = [o for o in outputs if o["name"] in wanted]
        answer: dict[str, Any] = {"model_name": self.name, "outputs": outputs}
        if self.body.get("id") is not None:
            answer["id"] = self.body["id"]
        return json_response(answer)


def parse_infer(ctx: ServingContext, req: RequestData) -> InferRequest:
    """The request's model name (404 unless it is this model's) and JSON body (400 unless it has inputs)."""
    name = _requested_model(ctx, req)
    try:
        body = json.loads(req.body or b"{}")
    except ValueError as exc:
        raise V2Error(f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise V2Error("an inference request needs a non-empty 'inputs' list")
    return InferRequest(name, body)


#: The first dimension of the first input's shape, as written in a request body (for the batcher's row count).
FIRST_SHAPE = re.compile(rb'"shape"\s*:\s*\[\s*(\d+)')


def estimated_rows(body: bytes) -> int:
    """Rows of an `/infer` body, roughly (the first input's first dimension); at least 1."""
    found = FIRST_SHAPE.search(body, 0, 4096)
    return max(1, int(found.group(1))) if found else 1


def infer(ctx: ServingContext, req: RequestData) -> ResponseData:
    parsed = parse_infer(ctx, req)
    target = ctx.target_type
    if target == TargetType.UNSTRUCTURED:
        _, values = _tensor(parsed.inputs[0])
        first = values.reshape(-1)[0] if values.size else ""
        result, _extra = ctx.model.predict_unstructured(str(first), mimetype="text/plain", charset="utf8", query={})
        text = result.decode() if isinstance(result, bytes) else result
        frame = pd.DataFrame({"output": ["" if text is None else text]})
    elif target == TargetType.TRANSFORM:
        frame, _ = ctx.model.transform_loaded(parsed.frame(ctx))
    else:
        table = parsed.table_of(ctx)  # framed by the predictor wherever a frame is due
        data = parsed.frame(ctx) if table is None else table
        frame = ctx.model.predict_loaded(data, PredictionInput(req.body, "application/json")).predictions
    return parsed.answer(frame)
