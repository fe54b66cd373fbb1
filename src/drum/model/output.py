"""A structured prediction's output: what DRUM answers (`/predict/`) or writes (`drum score`) for a
`PredictResponse`.

Every decision about the body lives here: numeric predictions are cast to float64 (string targets keep
their values), `--deployment-config` selects DataRobot's prediction-server format, else DRUM's
`{"predictions": [...]}` with any `extraModelOutput`. Adaptive batching gets the same bytes per request
from one merged prediction (`split_prediction_bodies`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drum.model.deployment_config import pps_response
from drum.model.fastcsv import column_dtypes
from drum.model.predictor import PredictResponse
from drum.model.target import TargetType


def prediction_body(
    result: PredictResponse, target_type: TargetType, deployment_config: dict | None = None
) -> bytes:
    """The JSON body of DRUM's 200 answer to a structured prediction."""
    predictions = result.predictions
    if not target_type.keeps_strings():
        predictions = float_predictions(predictions)
    if deployment_config is not None:
        return pps_response(predictions, result.extra_model_output, deployment_config, target_type)
    return predictions_json(predictions, result.extra_model_output)


def split_prediction_bodies(
    result: PredictResponse, sizes: list[int], target_type: TargetType, deployment_config: dict | None = None
) -> list[bytes | Exception]:
    """The bodies of consecutive row slices of a merged prediction (adaptive batching), each byte for byte
    the `prediction_body` of that slice scored alone; a slice whose body fails gets its exception instead.
    `sizes` must add up to the rows of `result`."""
    if deployment_config is None and result.extra_model_output is None and not target_type.keeps_strings():
        try:
            bodies = split_predictions_json(float_predictions(result.predictions), sizes)
        except Exception:  # noqa: BLE001 - each slice then fails (or not) as it would alone
            bodies = None
        if bodies is not None:
            return list(bodies)
    out: list[bytes | Exception] = []
    start = 0
    for size in sizes:
        try:
            out.append(prediction_body(slice_response(result, start, start + size), target_type, deployment_config))
        except Exception as exc:  # noqa: BLE001 - this request's answer is its error
            out.append(exc)
        start += size
    return out


def slice_response(result: PredictResponse, start: int, stop: int) -> PredictResponse:
    """Rows [start, stop) of a merged result, indexed from 0 as a one-request call would give them."""
    extra = result.extra_model_output
    return PredictResponse(
        result.predictions.iloc[start:stop].reset_index(drop=True),
        None if extra is None else extra.iloc[start:stop].reset_index(drop=True),
    )


def prediction_csv(result: PredictResponse) -> str:
    """What `drum score` writes: predictions joined with any extra output, no index."""
    predictions, extra = result.predictions, result.extra_model_output
    frame = predictions if extra is None else predictions.join(extra)
    return frame.to_csv(index=False)


# --- encoders --------------------------------------------------------------------------------------


def float_predictions(df: pd.DataFrame) -> pd.DataFrame:
    """DRUM casts numeric prediction frames to float64 before encoding (so `1` becomes `1.0`)."""
    if all(dtype == np.float64 for dtype in column_dtypes(df)):
        return df
    return df.astype(np.float64)


def predictions_json(predictions: pd.DataFrame, extra_model_output: pd.DataFrame | None = None) -> bytes:
    """DRUM's default body: `{"predictions":[...]}` plus `extraModelOutput` in split orientation."""
    out = predictions[predictions.columns[0]] if len(predictions.columns) == 1 else predictions
    body = '{"predictions":' + out.to_json(orient="records")
    if extra_model_output is not None:
        body += ',"extraModelOutput":' + extra_model_output.to_json(orient="split")
    return (body + "}").encode("utf-8")


def split_predictions_json(predictions: pd.DataFrame, sizes: list[int]) -> list[bytes] | None:
    """`predictions_json` of consecutive row slices of `predictions`, byte for byte: the frame is encoded
    once and the JSON array cut at record boundaries. None when a cut is not certain (a label containing
    `},{`); then encode each slice."""
    total = sum(sizes)
    if len(predictions) != total:
        return None
    single = len(predictions.columns) == 1
    out = predictions[predictions.columns[0]] if single else predictions
    inner = out.to_json(orient="records")[1:-1]
    separator = "," if single else "},{"
    records = (inner if single else inner[1:-1]).split(separator) if inner else []
    if len(records) != total:
        return None
    bodies = []
    start = 0
    for size in sizes:
        part = records[start : start + size]
        start += size
        text = ",".join(part) if single else ",".join("{" + r + "}" for r in part)
        bodies.append(('{"predictions":[' + text + "]}").encode("utf-8"))
    return bodies
