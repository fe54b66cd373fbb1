"""Small CSV bodies and one-tensor V2 requests reach a scikit-learn artifact as arrays, never as a frame
built per request, with the same answers to the byte as through a frame; hooks still get DataFrames."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

COLUMNS = ["a", "b", "c"]
RECORDING = """
import os

import pandas as pd


def _record(name, data):
    with open(os.environ["SEEN_FILE"], "a") as f:
        f.write(f"{name} {type(data).__name__}\\n")


def transform(data, model):
    _record("transform", data)
    return data
"""
SCORE = RECORDING.replace("def transform(", "def _unused(") + """

def score(data, model, **kwargs):
    _record("score", data)
    return pd.DataFrame({"Predictions": model.predict(data)})
"""


@pytest.fixture(scope="module")
def ridge(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(100, 3)), columns=COLUMNS)
    return pickle.dumps(Ridge().fit(x, x.to_numpy() @ [0.3, -1.7, 2.9] + 0.1))


def _code_dir(root: Path, name: str, model: bytes, custom: str | None) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.pkl").write_bytes(model)
    if custom is not None:
        (directory / "custom.py").write_text(custom)
    return directory


def test_tables_answer_as_frames_and_hooks_see_frames(drum_server, ridge, tmp_path):
    seen = tmp_path / "seen.txt"
    env = {"SEEN_FILE": str(seen)}
    servers = {
        name: drum_server(_code_dir(tmp_path, name, ridge, custom), "--target-type", "regression", env=env)
        for name, custom in (("plain", None), ("transform", RECORDING), ("score", SCORE))
    }
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(3, 3)).round(7)
    csv = ("a,b,c\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)).encode()
    tensor = {"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": rows.tolist()}]}
    answers = {}
    for name, server in servers.items():
        predict = server.post("/predict/", data=csv, headers={"Content-Type": "text/csv"})
        infer = server.post(f"/v2/models/{name}/infer", json=tensor)
        assert predict.status_code == infer.status_code == 200, (predict.text, infer.text)
        answers[name] = (predict.content, infer.json()["outputs"])
    assert answers["plain"] == answers["transform"]  # the array of the table, the array of its frame
    np.testing.assert_allclose(  # the score hook's own model.predict on the frame
        json.loads(answers["score"][0])["predictions"],
        pickle.loads(ridge).predict(pd.DataFrame(rows, columns=COLUMNS)), rtol=0, atol=1e-9,  # DRUM writes 10 digits
    )
    lines = seen.read_text().split("\n")
    assert sorted(set(filter(None, lines))) == ["score DataFrame", "transform DataFrame"]
