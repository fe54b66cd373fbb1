"""`drum.model.output`: a `PredictResponse` to DRUM's body (plain JSON or deployment-config format), the
batched split that gives every request the bytes it would get alone, and `drum score`'s CSV."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import drum.model
from drum.model import output
from drum.model.predictor import PredictResponse
from drum.model.target import TargetType


def _config(classes=None, threshold=0.5) -> dict:
    mapping = [[label, index] for index, label in enumerate(classes)] if classes else None
    return {"target": {"name": "y", "type": "t", "class_mapping": mapping, "prediction_threshold": threshold}}


def test_plain_body_casts_numbers_to_float():
    result = PredictResponse(pd.DataFrame({"Predictions": [1, 2]}))
    assert output.prediction_body(result, TargetType.REGRESSION) == b'{"predictions":[1.0,2.0]}'


def test_plain_body_with_extra_model_output():
    result = PredictResponse(pd.DataFrame({"Predictions": [1.5]}), pd.DataFrame({"e": ["x"], "n": [1]}))
    assert output.prediction_body(result, TargetType.REGRESSION) == (
        b'{"predictions":[1.5],"extraModelOutput":{"columns":["e","n"],"index":[0],"data":[["x",1]]}}'
    )


def test_plain_body_of_classes_keeps_column_order():
    result = PredictResponse(pd.DataFrame({"b": [0.25], "a": [0.75]}))
    assert output.prediction_body(result, TargetType.BINARY) == b'{"predictions":[{"b":0.25,"a":0.75}]}'


def test_text_targets_keep_strings():
    result = PredictResponse(pd.DataFrame({"Predictions": ["hi", "1"]}))
    assert output.prediction_body(result, TargetType.TEXT_GENERATION) == b'{"predictions":["hi","1"]}'


def test_deployment_config_body():
    result = PredictResponse(pd.DataFrame({"no": [0.25, 0.5], "yes": [0.75, 0.5]}), pd.DataFrame({"e": [1, 2]}))
    body = output.prediction_body(result, TargetType.BINARY, _config(["no", "yes"]))
    assert json.loads(body) == {
        "data": [
            {
                "prediction": "yes",
                "predictionValues": [{"label": "yes", "value": 0.75}, {"label": "no", "value": 0.25}],
                "predictionThreshold": 0.5,
                "rowId": 0,
                "extraModelOutput": {"e": 1},
            },
            {
                "prediction": "no",  # the threshold is strict
                "predictionValues": [{"label": "yes", "value": 0.5}, {"label": "no", "value": 0.5}],
                "predictionThreshold": 0.5,
                "rowId": 1,
                "extraModelOutput": {"e": 2},
            },
        ]
    }
    regression = PredictResponse(pd.DataFrame({"Predictions": [3]}))
    assert output.prediction_body(regression, TargetType.REGRESSION, _config()) == json.dumps(
        {"data": [{"prediction": 3.0, "predictionValues": [{"label": "y", "value": 3.0}], "rowId": 0}]}
    ).encode()


def _one_by_one(result: PredictResponse, sizes: list[int], target_type: TargetType, config: dict | None) -> list:
    bodies: list = []
    start = 0
    for size in sizes:
        alone = output.slice_response(result, start, start + size)
        try:
            bodies.append(output.prediction_body(alone, target_type, config))
        except Exception as exc:  # noqa: BLE001
            bodies.append(type(exc))
        start += size
    return bodies


SPLIT_CASES = {
    "regression": (PredictResponse(pd.DataFrame({"Predictions": [0.1 + 0.2, 1e20, 1e-5, 3, np.nan, 7.25]})),
                   TargetType.REGRESSION, None),
    "classes": (PredictResponse(pd.DataFrame({"yes": [0.25, 0.5, 0.1, 1.0, 0.0, 0.3],
                                              "no": [0.75, 0.5, 0.9, 0.0, 1.0, 0.7]})),
                TargetType.BINARY, None),
    "label with a record separator": (PredictResponse(pd.DataFrame({"a": [0.5] * 6, "b},{c": [0.5] * 6})),
                                      TargetType.BINARY, None),
    "extra output": (PredictResponse(pd.DataFrame({"Predictions": [1, 2, 3, 4, 5, 6]}),
                                     pd.DataFrame({"e": list("abcdef")}, index=range(6))),
                     TargetType.REGRESSION, None),
    "deployment config": (PredictResponse(pd.DataFrame({"no": [0.2, 0.6, 0.1, 0.9, 0.5, 0.3],
                                                        "yes": [0.8, 0.4, 0.9, 0.1, 0.5, 0.7]})),
                          TargetType.BINARY, _config(["no", "yes"])),
    "a slice that cannot be a number": (PredictResponse(pd.DataFrame({"Predictions": [1, "x", 2, 3, 4, 5]})),
                                        TargetType.REGRESSION, None),
}


@pytest.mark.parametrize("case", SPLIT_CASES)
def test_batched_split_equals_one_by_one_bodies(case):
    result, target_type, config = SPLIT_CASES[case]
    sizes = [1, 0, 2, 3]
    split = output.split_prediction_bodies(result, sizes, target_type, config)
    got = [body if isinstance(body, bytes) else type(body) for body in split]
    assert got == _one_by_one(result, sizes, target_type, config)
    if case == "a slice that cannot be a number":
        assert got[0] == b'{"predictions":[1.0]}' and got[2] is ValueError
    if case == "deployment config":
        assert [row["rowId"] for row in json.loads(split[3])["data"]] == [0, 1, 2]  # each request from 0


@pytest.mark.parametrize(
    "frame",
    [
        SPLIT_CASES["regression"][0].predictions,
        SPLIT_CASES["classes"][0].predictions,
        pd.DataFrame({"a": [0.1] * 6, "b": [0.2] * 6, "c": [0.7] * 6}),
    ],
)
def test_split_predictions_json_is_byte_identical_to_encoding_each_slice(frame):
    frame = output.float_predictions(frame)
    sizes = [1, 0, 2, 3]
    start, expected = 0, []
    for size in sizes:
        expected.append(output.predictions_json(frame.iloc[start : start + size].reset_index(drop=True)))
        start += size
    assert output.split_predictions_json(frame, sizes) == expected
    assert output.split_predictions_json(frame, [1, 2]) is None  # rows do not add up
    assert output.split_predictions_json(pd.DataFrame({"a},{b": [1.0], "c": [2.0]}), [1]) is None  # uncertain cut


def test_score_csv_joins_extra_output():
    result = PredictResponse(pd.DataFrame({"Predictions": [1.5, 2]}), pd.DataFrame({"e": ["x", "y"]}))
    assert output.prediction_csv(result) == "Predictions,e\n1.5,x\n2.0,y\n"
    assert output.prediction_csv(PredictResponse(pd.DataFrame({"Predictions": [1]}))) == "Predictions\n1\n"


def test_model_layer_imports_nothing_above_it():
    above = ("drum.serving", "drum.servers", "drum.cli")
    for path in Path(drum.model.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.startswith(above)], f"{path} imports {names}"
