"""Adaptive batching (DRUM_BATCHING_*): merged model calls answer exactly as one-by-one calls do.

Each test compares a batching server with an unbatched one on the same model. Models that record the
rows of each model call (a slow score hook, so concurrent requests queue behind it) show whether
requests were merged; nothing here depends on timings.
"""

from __future__ import annotations

import json
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

BATCHING = {"DRUM_BATCHING_MAX_ROWS": "1000"}
COLUMNS = ["a", "b", "c"]

# A score hook that records how many rows each call gets and is slow enough for requests to queue.
RECORDING = """
    import os
    import time

    import pandas as pd


    def load_model(code_dir):
        return "model"


    def score(data, model, **kwargs):
        with open(os.environ["CALLS_FILE"], "a") as f:
            f.write(f"{len(data)}\\n")
        time.sleep(0.2)
        if (data["a"] == 999).any():
            raise ValueError("a is 999")
        return pd.DataFrame({"Predictions": data.iloc[:, 0] * 10 + data.iloc[:, 1]})
"""
READ_INPUT = RECORDING + """

    def read_input_data(input_binary_data):
        import io

        return pd.read_csv(io.BytesIO(input_binary_data))
"""
READS_KWARGS = RECORDING.replace(
    '        if (data["a"] == 999).any():',
    '        assert kwargs["mimetype"] is not None\n        if (data["a"] == 999).any():',
)


def csv(rows: list[list[float]], columns: list[str] = COLUMNS) -> str:
    return ",".join(columns) + "\n" + "".join(",".join(repr(v) for v in row) + "\n" for row in rows)


def post_all(url: str, requests_: list[dict]) -> list[requests.Response]:
    """POST every request at once (one connection each) and return the responses in order."""

    def post(spec: dict) -> requests.Response:
        spec = dict(spec)
        path = spec.pop("path", "/predict/")
        return requests.post(url + path, timeout=60, **spec)

    with ThreadPoolExecutor(len(requests_)) as pool:
        return list(pool.map(post, requests_))


def calls(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def assert_same_answer(batched: requests.Response, alone: requests.Response) -> None:
    assert batched.status_code == alone.status_code
    assert batched.headers["Content-Type"] == alone.headers["Content-Type"]
    got, want = batched.json(), alone.json()
    if "predictions" in want:
        assert set(got) == set(want)
        g, w = got["predictions"], want["predictions"]
        if w and isinstance(w[0], dict):
            assert [list(r) for r in g] == [list(r) for r in w]
            g = [list(r.values()) for r in g]
            w = [list(r.values()) for r in w]
        np.testing.assert_allclose(np.array(g, dtype=float), np.array(w, dtype=float), rtol=0, atol=1e-9)
    else:
        assert got == want


@pytest.fixture
def sklearn_models(tmp_path: Path) -> dict[str, Path]:
    from sklearn.linear_model import LogisticRegression, Ridge

    rng = np.random.default_rng(0)
    import pandas as pd

    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    dirs = {}
    for name, model in (
        ("ridge", Ridge().fit(x, x.values @ [1.5, -2.0, 0.5])),
        ("logistic", LogisticRegression().fit(x, np.where(x["a"] > 0, "yes", "no"))),
    ):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "model.pkl").write_bytes(pickle.dumps(model))
        dirs[name] = directory
    return dirs


@pytest.mark.parametrize(
    ("model", "args"),
    [
        ("ridge", ["--target-type", "regression"]),
        ("logistic", ["--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"]),
    ],
)
def test_batched_answers_equal_unbatched_ones(drum_server, sklearn_models, model, args):
    batched = drum_server(sklearn_models[model], *args, env=BATCHING)
    alone = drum_server(sklearn_models[model], *args)
    rng = np.random.default_rng(1)
    specs = []
    for i in range(48):
        rows = rng.normal(size=(1 + i % 4, 3)).round(6).tolist()
        path = ("/predict/", "/predictions/", "/invocations")[i % 3]
        specs.append({"path": path, "data": csv(rows), "headers": {"Content-Type": "text/csv"}})
    got = post_all(batched.url, specs)
    want = post_all(alone.url, specs)
    for g, w in zip(got, want, strict=True):
        assert g.status_code == 200
        assert_same_answer(g, w)
        assert g.headers["X-Drum-Version"] == w.headers["X-Drum-Version"]


def test_requests_are_merged_and_bad_ones_fail_alone(drum_server, model_dir, tmp_path):
    code_dir = model_dir({"custom.py": RECORDING})
    calls_file = tmp_path / "calls.txt"
    batched = drum_server(code_dir, "--target-type", "regression", env={**BATCHING, "CALLS_FILE": str(calls_file)})
    alone = drum_server(code_dir, "--target-type", "regression", env={"CALLS_FILE": str(tmp_path / "alone.txt")})
    good = [{"data": csv([[i, i + 1, 0]]), "headers": {"Content-Type": "text/csv"}} for i in range(16)]
    bad = [
        {"data": 'a,b,c\n"1,2\n3,4,5,6\n', "headers": {"Content-Type": "text/csv"}},  # does not parse
        {"data": csv([[999, 1, 0]]), "headers": {"Content-Type": "text/csv"}},  # the model raises
        {"data": csv([[1, 2]], ["a", "b"]), "headers": {"Content-Type": "text/csv"}},  # other columns
        {"data": csv([[1, 2, 3]]), "headers": {"Content-Type": "application/json"}},  # unsupported format
        {"data": "", "headers": {"Content-Type": "text/csv"}},  # no data
    ]
    specs = good[:8] + bad + good[8:]
    got = post_all(batched.url, specs)
    want = post_all(alone.url, specs)
    for g, w in zip(got, want, strict=True):
        assert_same_answer(g, w)
    statuses = [r.status_code for r in got]
    assert statuses[:8] == [200] * 8 and statuses[-8:] == [200] * 8
    assert got[8].status_code == 422 and got[8].json()["message"].startswith("ERROR: Pandas failed to read")
    assert got[9].status_code == 500 and "a is 999" in got[9].json()["message"]
    assert got[10].status_code == 200 and got[10].json() == {"predictions": [12.0]}
    assert got[11].status_code == 422 and got[12].status_code == 422
    assert max(calls(calls_file)) > 1  # some requests were merged into one model call
    assert max(calls(tmp_path / "alone.txt")) == 1


def test_per_request_data_is_never_mixed(drum_server, model_dir, tmp_path):
    """Column orders, content types and query strings that differ are never merged together."""
    code_dir = model_dir({"custom.py": RECORDING})
    batched = drum_server(code_dir, "--target-type", "regression", env={**BATCHING, "CALLS_FILE": str(tmp_path / "b")})
    alone = drum_server(code_dir, "--target-type", "regression", env={"CALLS_FILE": str(tmp_path / "a")})
    specs = []
    for i in range(24):
        columns = [COLUMNS, ["b", "a", "c"], ["c", "b", "a"]][i % 3]
        content_type = ["text/csv", "text/plain", "text/csv; charset=utf-8", None][i % 4]
        specs.append(
            {
                "path": f"/predict/?x={i % 2}",
                "data": csv([[i, 2 * i, 3 * i], [i + 1, 0, 1]], columns),
                "headers": {"Content-Type": content_type} if content_type else {},
            }
        )
    got = post_all(batched.url, specs)
    want = post_all(alone.url, specs)
    for g, w in zip(got, want, strict=True):
        assert g.status_code == 200
        assert_same_answer(g, w)
        assert g.content == w.content


@pytest.mark.parametrize(
    ("hooks", "opt_in", "merged"),
    [(READ_INPUT, False, False), (READ_INPUT, True, True), (READS_KWARGS, False, False), (READS_KWARGS, True, True)],
)
def test_hooks_needing_request_data_are_batched_only_when_opted_in(
    drum_server, model_dir, tmp_path, hooks, opt_in, merged
):
    code_dir = model_dir({"custom.py": hooks})
    calls_file = tmp_path / "calls.txt"
    env = {**BATCHING, "CALLS_FILE": str(calls_file)}
    if opt_in:
        env["DRUM_BATCHING_ALLOW_HOOKS"] = "true"
    server = drum_server(code_dir, "--target-type", "regression", env=env)
    specs = [{"data": csv([[i, 1, 2]]), "headers": {"Content-Type": "text/csv"}} for i in range(12)]
    got = post_all(server.url, specs)
    assert [r.json() for r in got] == [{"predictions": [float(i * 10 + 1)]} for i in range(12)]
    assert (max(calls(calls_file)) > 1) is merged
    assert ("Adaptive batching is off for this model" in server.log()) is not merged


def test_invalid_batching_settings_warn_and_fall_back(drum_server, model_dir, tmp_path):
    code_dir = model_dir({"custom.py": RECORDING})
    env = {"DRUM_BATCHING_MAX_ROWS": "-5", "DRUM_BATCHING_MAX_WAIT_MS": "soon", "CALLS_FILE": str(tmp_path / "c")}
    server = drum_server(code_dir, "--target-type", "regression", env=env)
    response = server.post("/predict/", data=csv([[1, 2, 3]]), headers={"Content-Type": "text/csv"})
    assert response.json() == {"predictions": [12.0]}
    log = server.log()
    assert "Invalid value '-5' for DRUM_BATCHING_MAX_ROWS (valid: 0..10000000); using default 0" in log
    assert "Invalid value 'soon' for DRUM_BATCHING_MAX_WAIT_MS (valid: 0..10000); using default 5" in log


def test_batching_with_several_workers_and_threads(drum_server, sklearn_models):
    env = {**BATCHING, "DRUM_FASTAPI_EXECUTOR_WORKERS": "2", "DRUM_BATCHING_MAX_WAIT_MS": "1"}
    server = drum_server(sklearn_models["ridge"], "--target-type", "regression", "--max-workers", "2", env=env)
    alone = drum_server(sklearn_models["ridge"], "--target-type", "regression")
    specs = [{"data": csv([[i, -i, 0.5]]), "headers": {"Content-Type": "text/csv"}} for i in range(32)]
    for g, w in zip(post_all(server.url, specs), post_all(alone.url, specs), strict=True):
        assert_same_answer(g, w)
    assert json.loads(server.get("/ping/").content) == {"message": "OK"}


def v2_infer(rows: list[list[float]], columns: list[str] | None = None, **extra) -> dict:
    """A V2 `/infer` request: one [N, F] tensor, or one column per input when `columns` are given."""
    if columns is None:
        inputs = [{"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}]
    else:
        inputs = [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[i] for r in rows]}
            for i, c in enumerate(columns)
        ]
    return {"inputs": inputs, **extra}


def test_v2_requests_are_batched_and_answer_as_alone(drum_server, model_dir, tmp_path):
    """V2 `/infer` requests are merged into one model call (with each other, never with /predict/), each
    answered with its own rows, id and requested outputs; a bad one fails alone in the protocol's format."""
    code_dir = model_dir({"custom.py": RECORDING})
    calls_file = tmp_path / "calls.txt"
    batched = drum_server(code_dir, "--target-type", "regression", env={**BATCHING, "CALLS_FILE": str(calls_file)})
    alone = drum_server(code_dir, "--target-type", "regression", env={"CALLS_FILE": str(tmp_path / "alone.txt")})
    infer = f"/v2/models/{code_dir.name}/infer"
    specs = []
    for i in range(20):
        rows = [[float(i), float(i + 1), 0.5]] * (1 + i % 3)
        body = v2_infer(rows, COLUMNS, id=f"r{i}")
        if i % 5 == 0:
            body["outputs"] = [{"name": "Predictions"}]
        specs.append({"path": infer, "json": body})
    specs[7] = {"path": infer, "json": v2_infer([[999.0, 1.0, 0.0]], COLUMNS)}  # the model raises
    specs[11] = {"path": infer, "json": {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1]}]}}
    specs[13] = {"path": infer, "json": v2_infer([[1.0, 2.0, 3.0]], COLUMNS, outputs=[{"name": "nope"}])}
    specs[15] = {"path": "/predict/", "data": csv([[3, 4, 5]]), "headers": {"Content-Type": "text/csv"}}
    got = post_all(batched.url, specs)
    want = post_all(alone.url, specs)
    for g, w in zip(got, want, strict=True):
        assert (g.status_code, g.json()) == (w.status_code, w.json())
    first = {"name": "Predictions", "shape": [1], "datatype": "FP64", "data": [1.0]}
    assert got[0].json() == {"id": "r0", "model_name": code_dir.name, "outputs": [first]}
    assert got[7].status_code == 500 and "a is 999" in got[7].json()["error"]
    assert got[11].status_code == 400 and "data has 1" in got[11].json()["error"]
    assert got[13].status_code == 400 and "unknown outputs" in got[13].json()["error"]
    assert got[15].json() == {"predictions": [34.0]}
    assert max(calls(calls_file)) > 3  # V2 requests of several rows were merged into one call
    assert max(calls(tmp_path / "alone.txt")) == 3


def test_v2_batching_of_a_scikit_learn_model(drum_server, sklearn_models):
    args = ["--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"]
    batched = drum_server(sklearn_models["logistic"], *args, env=BATCHING)
    alone = drum_server(sklearn_models["logistic"], *args)
    rng = np.random.default_rng(2)
    infer = "/v2/models/logistic/infer"
    specs = [{"path": infer, "json": v2_infer(rng.normal(size=(1 + i % 4, 3)).round(6).tolist())} for i in range(32)]
    got = post_all(batched.url, specs)
    want = post_all(alone.url, specs)
    for g, w in zip(got, want, strict=True):
        assert g.status_code == w.status_code == 200
        g_out, w_out = g.json()["outputs"], w.json()["outputs"]
        assert [o["name"] for o in g_out] == [o["name"] for o in w_out] == ["no", "yes"]
        for go, wo in zip(g_out, w_out, strict=True):
            np.testing.assert_allclose(go["data"], wo["data"], rtol=0, atol=1e-12)
