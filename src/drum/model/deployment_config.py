"""`--deployment-config`: predictions in DataRobot's prediction-server (PPS) response format."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from drum.errors import DrumCommonException
from drum.model.target import TargetType


def read_deployment_config(filename: str | None) -> dict | None:
    """Parse the JSON file; it must have a `target` section."""
    if filename is None:
        return None
    with open(filename) as f:
        try:
            config = json.load(f)
            config["target"]
        except json.JSONDecodeError:
            raise DrumCommonException(f"Failed to parse deployment config json file '{filename}'") from None
        except (KeyError, TypeError):
            raise DrumCommonException(
                f"'target' section not found in deployment config json file {filename}"
            ) from None
    return config


def _class_names(class_mapping: list | None) -> list[str] | None:
    if not class_mapping:
        return None
    return [kv[0] for kv in sorted(class_mapping, key=lambda kv: kv[1])]


Row = dict[str, Any]


def _single(row: pd.Series, index: int, target: dict, classes: list | None) -> Row:
    value = row.iloc[0]
    return {"prediction": value, "predictionValues": [{"label": target["name"], "value": value}], "rowId": index}


def _binary(row: pd.Series, index: int, target: dict, classes: list) -> Row:
    threshold = target["prediction_threshold"]
    positive, negative = classes[1], classes[0]
    value = row[positive]
    return {
        "prediction": positive if value > threshold else negative,
        "predictionValues": [{"label": positive, "value": value}, {"label": negative, "value": 1 - value}],
        "predictionThreshold": threshold,
        "rowId": index,
    }


def _multiclass(row: pd.Series, index: int, target: dict, classes: list) -> Row:
    values = [{"label": c, "value": row[c]} for c in classes]
    top = max(row.values)
    decision = next(v for v in values if v["value"] >= top)["label"]
    return {"prediction": decision, "predictionValues": values, "rowId": index}


def _multilabel(row: pd.Series, index: int, target: dict, classes: list) -> Row:
    threshold = target["prediction_threshold"]
    values = [{"label": c, "value": row[c]} for c in classes]
    return {
        "prediction": [v["label"] for v in values if v["value"] > threshold],
        "predictionValues": values,
        "predictionThreshold": threshold,
        "rowId": index,
    }


MAPPERS: dict[TargetType, Callable[..., Row]] = {
    TargetType.REGRESSION: _single,
    TargetType.ANOMALY: _single,
    TargetType.TEXT_GENERATION: _single,
    TargetType.GEO_POINT: _single,
    TargetType.VECTOR_DATABASE: _single,
    TargetType.AGENTIC_WORKFLOW: _single,
    TargetType.BINARY: _binary,
    TargetType.MULTICLASS: _multiclass,
    TargetType.MULTILABEL: _multilabel,
}


def pps_response(
    predictions: pd.DataFrame, extra: pd.DataFrame | None, config: dict, target_type: TargetType
) -> bytes:
    target = dict(config["target"])
    mapper = MAPPERS.get(target_type)
    if mapper is None:
        raise DrumCommonException(f"target type '{target_type}' is not supported")
    if target_type == TargetType.ANOMALY:
        target["name"] = "Anomaly Score"
    classes = _class_names(target["class_mapping"])  # a missing key fails (500) as in DRUM
    rows = []
    for index, row in predictions.iterrows():
        record = mapper(row, index, target, classes)
        if extra is not None:
            record["extraModelOutput"] = extra.iloc[index].to_dict()
        rows.append(record)
    return json.dumps({"data": rows}).encode("utf-8")
