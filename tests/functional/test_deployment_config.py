"""`--deployment-config FILE` (spec §2.3.4): predictions in DataRobot's prediction-server (PPS) format.

Most models are `score` hooks that return the request frame as is, so each request decides the
predictions exactly; regression and anomaly also go through drop-in scikit-learn artifacts.
Expected bodies are `json.dumps` of the documented rows (DRUM builds them the same way).
"""

from __future__ import annotations

import io
import json
import pickle
import time

import numpy as np
import pandas as pd
import pytest
import requests
from support import assert_bytes, start_server, wait_for_exit, write_model

ECHO = {
    "custom.py": """
        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return data
    """
}
FEATURES = b"x1,x2\n1,2\n3,-4\n0.5,7\n"
TRAIN = pd.DataFrame(np.random.RandomState(0).rand(20, 2) * 10, columns=["x1", "x2"])


def _sklearn_regression(code_dir):
    from sklearn.linear_model import Ridge

    model = Ridge().fit(TRAIN, TRAIN.x1 * 2 - TRAIN.x2)
    with open(code_dir / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    return model


def _sklearn_anomaly(code_dir):
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=10, random_state=0).fit(TRAIN)
    with open(code_dir / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    return model


def target(name="target", classes=None, threshold=0.5) -> dict:
    return {
        "target": {
            "name": name,
            "type": "whatever",
            "class_mapping": [[label, index] for index, label in enumerate(classes)] if classes else None,
            "prediction_threshold": threshold,
        }
    }


#: name -> (files, artifact setup or None, deployment config, args, env)
SERVERS = {
    "regression_artifact": ({}, _sklearn_regression, target("price"), ["--target-type", "regression"], {}),
    "anomaly_artifact": ({}, _sklearn_anomaly, target("ignored"), ["--target-type", "anomaly"], {}),
    "regression_extra": (ECHO, None, target("y"), ["--target-type", "regression"], {}),
    "binary": (
        ECHO,
        None,
        target("churn", ["no", "yes"], 0.5),
        ["--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"],
        {},
    ),
    "multiclass": (
        ECHO,
        None,
        target("kind", ["c", "b", "a"]),
        ["--target-type", "multiclass", "--class-labels", "a", "b", "c"],
        {},
    ),
    "multilabel": (
        ECHO,
        None,
        target("tags", ["a", "b", "c"], 0.3),
        ["--target-type", "multilabel", "--class-labels", "a", "b", "c"],
        {},
    ),
    "textgeneration": (
        ECHO, None, target("completion"), ["--target-type", "textgeneration"], {"TARGET_NAME": "completion"}
    ),
    "vectordatabase": (ECHO, None, target("docs"), ["--target-type", "vectordatabase"], {"TARGET_NAME": "docs"}),
    "agenticworkflow": (ECHO, None, target("answer"), ["--target-type", "agenticworkflow"], {"TARGET_NAME": "answer"}),
    "geopoint": (ECHO, None, target("where"), ["--target-type", "geopoint"], {}),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`{name: (server, model or None)}`, all started together."""
    base = tmp_path_factory.mktemp("pps")
    servers = {}
    try:
        for name, (files, setup, config, args, env) in SERVERS.items():
            code_dir = write_model(base / name, files)
            model = setup(code_dir) if setup else None
            config_file = base / f"{name}.json"
            config_file.write_text(json.dumps(config))
            server = start_server(
                code_dir, [*args, "--deployment-config", str(config_file)], base / f"{name}.log", env=env, wait=False
            )
            servers[name] = (server, model)
        deadline = time.monotonic() + 180
        for server, _ in servers.values():
            server.wait_ready(deadline)
        yield servers
    finally:
        for server, _ in servers.values():
            server.stop()


def _post(served, name: str, body: bytes) -> requests.Response:
    server, _ = served[name]
    return server.post("/predict/", data=body, headers={"Content-Type": "text/csv"})


def _expect(response: requests.Response, rows: list[dict]) -> None:
    assert_bytes(response, 200, json.dumps({"data": rows}).encode())


def _single(values, label) -> list[dict]:
    return [
        {"prediction": v, "predictionValues": [{"label": label, "value": v}], "rowId": i} for i, v in enumerate(values)
    ]


def test_regression_artifact(served):
    _, model = served["regression_artifact"]
    values = [float(v) for v in model.predict(pd.read_csv(io.BytesIO(FEATURES)))]
    _expect(_post(served, "regression_artifact", FEATURES), _single(values, "price"))


def test_anomaly_label_is_anomaly_score(served):
    _, model = served["anomaly_artifact"]
    values = [float(v) for v in model.predict(pd.read_csv(io.BytesIO(FEATURES)))]
    assert set(values) <= {-1.0, 1.0}
    _expect(_post(served, "anomaly_artifact", FEATURES), _single(values, "Anomaly Score"))


def test_regression_extra_model_output_per_row(served):
    # All-numeric extra columns come out of `iloc[row]` as floats (1 -> 1.0), as in DRUM.
    response = _post(served, "regression_extra", b"Predictions,count,score\n1.5,1,0.25\n-2,2,0.5\n")
    rows = _single([1.5, -2.0], "y")
    rows[0]["extraModelOutput"] = {"count": 1.0, "score": 0.25}
    rows[1]["extraModelOutput"] = {"count": 2.0, "score": 0.5}
    _expect(response, rows)


def test_binary_threshold_is_strict_and_negative_is_one_minus_positive(served):
    response = _post(served, "binary", b"yes,no\n0.7,0.3\n0.5,0.5\n0.2,0.8\n")
    rows = []
    for i, p in enumerate([0.7, 0.5, 0.2]):
        rows.append(
            {
                "prediction": "yes" if p > 0.5 else "no",
                "predictionValues": [{"label": "yes", "value": p}, {"label": "no", "value": 1 - p}],
                "predictionThreshold": 0.5,
                "rowId": i,
            }
        )
    assert [r["prediction"] for r in rows] == ["yes", "no", "no"]
    assert rows[0]["predictionValues"][1]["value"] == 0.30000000000000004  # computed, not the model's 0.3
    _expect(response, rows)


def test_binary_extra_model_output(served):
    response = _post(served, "binary", b"no,yes,reason\n0.1,0.9,high\n0.6,0.4,low\n")
    rows = [
        {
            "prediction": "yes",
            "predictionValues": [{"label": "yes", "value": 0.9}, {"label": "no", "value": 1 - 0.9}],
            "predictionThreshold": 0.5,
            "rowId": 0,
            "extraModelOutput": {"reason": "high"},
        },
        {
            "prediction": "no",
            "predictionValues": [{"label": "yes", "value": 0.4}, {"label": "no", "value": 0.6}],
            "predictionThreshold": 0.5,
            "rowId": 1,
            "extraModelOutput": {"reason": "low"},
        },
    ]
    _expect(response, rows)


def test_multiclass_values_follow_class_mapping_and_ties_go_to_the_first(served):
    # class_mapping order is c, b, a; the tie between a and b goes to b (first in that order).
    response = _post(served, "multiclass", b"a,b,c\n0.2,0.5,0.3\n0.4,0.4,0.2\n0.25,0.25,0.5\n")
    frame = [(0.2, 0.5, 0.3), (0.4, 0.4, 0.2), (0.25, 0.25, 0.5)]
    rows = [
        {
            "prediction": decision,
            "predictionValues": [{"label": "c", "value": c}, {"label": "b", "value": b}, {"label": "a", "value": a}],
            "rowId": i,
        }
        for i, ((a, b, c), decision) in enumerate(zip(frame, ["b", "b", "c"], strict=True))
    ]
    _expect(response, rows)


def test_multilabel_prediction_is_every_label_over_the_threshold(served):
    response = _post(served, "multilabel", b"a,b,c\n0.9,0.1,0.31\n0.3,0.2,0.1\n")
    rows = [
        {
            "prediction": decision,
            "predictionValues": [{"label": "a", "value": a}, {"label": "b", "value": b}, {"label": "c", "value": c}],
            "predictionThreshold": 0.3,
            "rowId": i,
        }
        for i, ((a, b, c), decision) in enumerate(
            zip([(0.9, 0.1, 0.31), (0.3, 0.2, 0.1)], [["a", "c"], []], strict=True)
        )
    ]
    _expect(response, rows)


def test_textgeneration_keeps_strings_and_extra_model_output(served):
    response = _post(served, "textgeneration", b"completion,tokens,model\nHello there,3,m1\nBye,1,m2\n")
    rows = _single(["Hello there", "Bye"], "completion")
    rows[0]["extraModelOutput"] = {"tokens": 3, "model": "m1"}  # mixed dtypes: ints stay ints
    rows[1]["extraModelOutput"] = {"tokens": 1, "model": "m2"}
    _expect(response, rows)


@pytest.mark.parametrize(
    ("name", "column", "label"),
    [("vectordatabase", "docs", "docs"), ("agenticworkflow", "answer", "answer"), ("geopoint", "Predictions", "where")],
)
def test_other_text_like_target_types(served, name, column, label):
    response = _post(served, name, f"{column}\nPOINT (1 2)\nsecond\n".encode())
    _expect(response, _single(["POINT (1 2)", "second"], label))


def test_default_format_is_unchanged_for_other_routes(served):
    # /info/ and the other routes are not affected by the deployment config.
    server, _ = served["binary"]
    assert server.get("/info/").json()["targetType"] == "binary"


# --- the file itself -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"not_target": {}}', "'target' section not found in deployment config json file {path}"),
        ("{not json", "Failed to parse deployment config json file '{path}'"),
    ],
    ids=["no-target", "not-json"],
)
def test_invalid_deployment_config_stops_the_server(tmp_path, content, message):
    code_dir = write_model(tmp_path / "code", ECHO)
    config = tmp_path / "deployment.json"
    config.write_text(content)
    server = start_server(
        code_dir, ["--target-type", "regression", "--deployment-config", str(config)], tmp_path / "log", wait=False
    )
    assert wait_for_exit(server) != 0
    assert message.format(path=config) in server.log()
