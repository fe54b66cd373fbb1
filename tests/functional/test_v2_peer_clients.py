"""drum's Open Inference Protocol routes (issue 24, item 1) driven by MLServer's and KServe's own Python client
code: MLServer's types and codecs (`InferenceRequest`/`InferenceResponse`, `NumpyCodec`, `PandasCodec`,
`StringCodec`) and its `mlserver infer` batch CLI; KServe's `InferenceRESTClient` with `InferRequest`/`InferInput`.

The peers live in their own venvs (tools/peers/setup.sh writes .venv/.peers), so the clients are scripts under
peer_clients/ run with those venvs' python against a real `drum server` on real scikit-learn and custom models;
every decoded value is checked against the model's own predictions computed here. A peer that is not set up
skips its tests with the reason.
"""

from __future__ import annotations

import json
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from support import DrumServer, peer_python, start_server, write_model

CLIENTS = Path(__file__).resolve().parent / "peer_clients"
FEATURES = [f"f{i}" for i in range(4)]
RNG = np.random.default_rng(24)
X = pd.DataFrame(RNG.normal(size=(60, 4)), columns=FEATURES)
Y = X.f0 * 2 - X.f1 + 0.5
LABELS = np.where(X.f0 + X.f2 > 0, "yes", "no")
RIDGE = Ridge().fit(X, Y)
LOGISTIC = LogisticRegression().fit(X, LABELS)
TEXTS = ["a", "peer", "clients ok", "", "naïve ünïcode"]
NOT_FOUND = "Model nope not found"

TEXTLEN = '''
import pandas as pd

def load_model(code_dir):
    return "textlen"

def score(data, model, **kwargs):
    x = data["x"].astype(float) if "x" in data.columns else 0.0
    return pd.DataFrame({"Predictions": data["text"].astype(str).str.len() + x})
'''
ECHO = """
def load_model(code_dir):
    return "echo"

def score_unstructured(model, data, **kwargs):
    return data.upper()
"""


def _proba(rows: pd.DataFrame, label: str) -> np.ndarray:
    return LOGISTIC.predict_proba(rows)[:, list(LOGISTIC.classes_).index(label)]


# --- servers (module-scoped, started only when a test asks) ---------------------------------------------


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, files: dict[str, str], *args: str,
           pickled: object = None) -> Iterator[DrumServer]:  # fmt: skip
    base = tmp_path_factory.mktemp("peers")
    code_dir = write_model(base / name, files)  # the V2 model name is the code dir's name
    if pickled is not None:
        (code_dir / "model.pkl").write_bytes(pickle.dumps(pickled))
    server = start_server(code_dir, list(args), base / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ridge(tmp_path_factory):
    yield from _serve(tmp_path_factory, "ridge", {}, "--target-type", "regression", pickled=RIDGE)


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    yield from _serve(tmp_path_factory, "churn", {}, "--target-type", "binary", "--positive-class-label", "yes",
                      "--negative-class-label", "no", pickled=LOGISTIC)  # fmt: skip


@pytest.fixture(scope="module")
def textlen(tmp_path_factory):
    yield from _serve(tmp_path_factory, "textlen", {"custom.py": TEXTLEN}, "--target-type", "regression")


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    yield from _serve(tmp_path_factory, "echo", {"custom.py": ECHO}, "--target-type", "unstructured")


# --- the peers' clients -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlserver_python() -> str:
    return peer_python("mlserver")


@pytest.fixture(scope="module")
def kserve_python() -> str:
    return peer_python("kserve")


def run_client(python: str, script: str, server: DrumServer, model: str, case: dict, tmp_path: Path) -> dict:
    """Run peer_clients/`script` with the peer's python against `server`; its printed JSON."""
    case_path = tmp_path / f"{script}.case.json"
    case_path.write_text(json.dumps(case))
    done = subprocess.run([python, str(CLIENTS / script), server.url, model, str(case_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}\nserver log:\n{server.log()}"
    return json.loads(done.stdout)


def mlserver(python: str, server: DrumServer, model: str, case: dict, tmp_path: Path) -> dict:
    return run_client(python, "mlserver_client.py", server, model, case, tmp_path)


def kserve(python: str, server: DrumServer, model: str, case: dict, tmp_path: Path) -> dict:
    return run_client(python, "kserve_client.py", server, model, case, tmp_path)


def ok(result: dict, server: DrumServer) -> dict:
    """The client's "infer" part of a successful inference."""
    infer = result["infer"]
    assert "error" not in infer, f"{infer}\nserver log:\n{server.log()}"
    return infer


# --- MLServer ---------------------------------------------------------------------------------------------


def test_mlserver_numpy_tensor_regression_health_and_metadata(mlserver_python, ridge, tmp_path):
    rows = X.head(5)
    case = {"inputs": [{"codec": "np", "name": "x", "data": rows.to_numpy().tolist()}], "outputs": ["Predictions"],
            "id": "mls-1"}  # fmt: skip
    result = mlserver(mlserver_python, ridge, "ridge", case, tmp_path)
    assert result["live"] == {"status": 200, "body": {"live": True}}
    assert result["ready"] == {"status": 200, "body": {"ready": True}}
    assert result["model_ready"] == {"status": 200, "body": {"name": "ridge", "ready": True}}
    assert result["server_metadata"]["name"] == "drum" and result["server_metadata"]["extensions"] == []
    metadata = result["model_metadata"]
    assert metadata["status"] == 200 and metadata["body"]["name"] == "ridge"
    assert metadata["body"]["platform"].startswith("drum-")
    assert [i["name"] for i in metadata["body"]["inputs"]] == FEATURES
    assert [(o["name"], o["datatype"]) for o in metadata["body"]["outputs"]] == [("Predictions", "FP64")]
    # what NumpyCodec sent: one [5, 4] FP64 tensor
    assert [(i["name"], i["shape"], i["datatype"]) for i in result["request"]["inputs"]] == [("x", [5, 4], "FP64")]

    infer = ok(result, ridge)
    assert infer["status"] == 200 and infer["content_type"] == "application/json"
    assert infer["response"]["id"] == "mls-1" and infer["response"]["model_name"] == "ridge"
    want = RIDGE.predict(rows)
    np.testing.assert_allclose(infer["tensors"]["Predictions"], want, rtol=1e-9)
    np.testing.assert_allclose(infer["frame"]["Predictions"], want, rtol=1e-9)


def test_mlserver_pandas_codec_named_columns_regression(mlserver_python, ridge, tmp_path):
    rows = X.iloc[10:17]
    result = mlserver(mlserver_python, ridge, "ridge", {"frame": rows.to_dict(orient="list")}, tmp_path)
    request = result["request"]
    assert request["parameters"] == {"content_type": "pd"}
    columns = [(i["name"], i["shape"], i["datatype"]) for i in request["inputs"]]
    assert columns == [(f, [7, 1], "FP64") for f in FEATURES]
    infer = ok(result, ridge)
    assert list(infer["frame"]) == ["Predictions"]
    np.testing.assert_allclose(infer["frame"]["Predictions"], RIDGE.predict(rows), rtol=1e-9)


def test_mlserver_pandas_codec_binary_labels_as_outputs(mlserver_python, churn, tmp_path):
    rows = X.iloc[20:26]
    result = mlserver(mlserver_python, churn, "churn", {"frame": rows.to_dict(orient="list")}, tmp_path)
    outputs = result["model_metadata"]["body"]["outputs"]
    assert sorted((o["name"], o["datatype"]) for o in outputs) == [("no", "FP64"), ("yes", "FP64")]
    assert result["model_metadata"]["body"]["parameters"]["target_type"] == "binary"
    frame = ok(result, churn)["frame"]
    assert sorted(frame) == ["no", "yes"]
    np.testing.assert_allclose(frame["yes"], _proba(rows, "yes"), rtol=1e-9)
    np.testing.assert_allclose(frame["no"], _proba(rows, "no"), rtol=1e-9)
    np.testing.assert_allclose(np.add(frame["yes"], frame["no"]), 1.0, rtol=1e-12)

    only = mlserver(mlserver_python, churn, "churn", {"frame": rows.to_dict(orient="list"), "outputs": ["yes"]},
                    tmp_path)  # fmt: skip
    assert list(ok(only, churn)["tensors"]) == ["yes"]
    np.testing.assert_allclose(only["infer"]["tensors"]["yes"], _proba(rows, "yes"), rtol=1e-9)


@pytest.mark.parametrize("encoding", ["pandas", "string+numpy"])
def test_mlserver_string_column(mlserver_python, textlen, tmp_path, encoding):
    x = [0.5, 1.0, -2.0, 3.25, 0.0]
    if encoding == "pandas":
        case = {"frame": {"text": TEXTS, "x": x}}
    else:
        case = {"inputs": [{"codec": "str", "name": "text", "data": TEXTS}, {"codec": "np", "name": "x", "data": x}]}
    result = mlserver(mlserver_python, textlen, "textlen", case, tmp_path)
    text_input = result["request"]["inputs"][0]
    assert (text_input["datatype"], text_input["parameters"]["content_type"]) == ("BYTES", "str")
    infer = ok(result, textlen)
    np.testing.assert_allclose(infer["frame"]["Predictions"], [len(t) + v for t, v in zip(TEXTS, x, strict=True)])


@pytest.mark.parametrize("encoding", ["pandas", "string"])
def test_mlserver_single_string_column_keeps_its_name(mlserver_python, textlen, tmp_path, encoding):
    """One BYTES input ([N, 1], as both codecs shape a column) is the column `text`, as MLServer decodes it."""
    if encoding == "pandas":
        case = {"frame": {"text": TEXTS}}
    else:
        case = {"inputs": [{"codec": "str", "name": "text", "data": TEXTS}]}
    result = mlserver(mlserver_python, textlen, "textlen", case, tmp_path)
    assert [(i["name"], i["shape"]) for i in result["request"]["inputs"]] == [("text", [len(TEXTS), 1])]
    infer = ok(result, textlen)
    np.testing.assert_allclose(infer["frame"]["Predictions"], [len(t) for t in TEXTS])


def test_mlserver_string_codec_unstructured(mlserver_python, echo, tmp_path):
    case = {"inputs": [{"codec": "str", "name": "text", "data": ["hello from mlserver"]}]}
    infer = ok(mlserver(mlserver_python, echo, "echo", case, tmp_path), echo)
    assert infer["strings"] == {"output": ["HELLO FROM MLSERVER"]}
    assert infer["frame"] == {"output": ["HELLO FROM MLSERVER"]}


def test_mlserver_wrong_model_name(mlserver_python, ridge, tmp_path):
    case = {"inputs": [{"codec": "np", "name": "x", "data": X.head(1).to_numpy().tolist()}]}
    result = mlserver(mlserver_python, ridge, "nope", case, tmp_path)
    assert result["model_ready"] == {"status": 404, "body": {"error": NOT_FOUND}}
    assert result["model_metadata"] == {"status": 404, "body": {"error": NOT_FOUND}}  # MetadataModelErrorResponse
    assert result["infer"] == {"status": 404, "content_type": "application/json", "error": NOT_FOUND}


def test_mlserver_infer_batch_cli(mlserver_python, ridge, tmp_path):
    """`mlserver infer`: MLServer's batch client merges requests into micro-batches (tritonclient underneath)
    and splits the answers back into one InferenceResponse per request."""
    rows = X.iloc[30:35]
    requests_path, responses_path = tmp_path / "requests.jsonl", tmp_path / "responses.jsonl"
    lines = [{"id": f"row-{i}", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row,
                                             "parameters": {"content_type": "np"}}]}
             for i, row in enumerate(rows.to_numpy().tolist())]  # fmt: skip
    requests_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    host = ridge.url.removeprefix("http://")
    done = subprocess.run([str(Path(mlserver_python).parent / "mlserver"), "infer", "-u", host, "-m", "ridge",
                           "-i", str(requests_path), "-o", str(responses_path), "-s", "2", "-w", "1", "-r", "1"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in responses_path.read_text().splitlines()]
    assert not [a for a in answers if "error" in a], answers
    assert sorted(a["id"] for a in answers) == [f"row-{i}" for i in range(5)]
    got = {a["parameters"]["batch_index"]: a["outputs"][0] for a in answers}
    assert {o["name"] for o in got.values()} == {"Predictions"}
    np.testing.assert_allclose([got[i]["data"][0] for i in range(5)], RIDGE.predict(rows), rtol=1e-9)


# --- KServe -----------------------------------------------------------------------------------------------


def test_kserve_health_and_tensor_regression(kserve_python, ridge, tmp_path):
    rows = X.head(6)
    case = {"inputs": [{"name": "x", "datatype": "FP64", "data": rows.to_numpy().tolist()}],
            "outputs": ["Predictions"], "id": "ks-1"}  # fmt: skip
    result = kserve(kserve_python, ridge, "ridge", case, tmp_path)
    assert (result["live"], result["ready"], result["model_ready"]) == (True, True, True)
    infer = ok(result, ridge)
    assert (infer["id"], infer["model_name"]) == ("ks-1", "ridge")
    prediction = infer["outputs"]["Predictions"]
    assert (prediction["datatype"], prediction["shape"]) == ("FP64", [6])
    np.testing.assert_allclose(prediction["data"], RIDGE.predict(rows), rtol=1e-9)


def test_kserve_named_columns_binary(kserve_python, churn, tmp_path):
    rows = X.iloc[40:48]
    case = {"inputs": [{"name": f, "datatype": "FP64", "data": rows[f].tolist()} for f in FEATURES]}
    infer = ok(kserve(kserve_python, churn, "churn", case, tmp_path), churn)
    assert sorted(infer["outputs"]) == ["no", "yes"]
    for label in ("yes", "no"):
        output = infer["outputs"][label]
        assert (output["datatype"], output["shape"]) == ("FP64", [8])
        np.testing.assert_allclose(output["data"], _proba(rows, label), rtol=1e-9)


def test_kserve_bytes_column(kserve_python, textlen, tmp_path):
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    case = {"inputs": [{"name": "text", "datatype": "BYTES", "data": TEXTS},
                       {"name": "x", "datatype": "FP64", "data": x}], "id": "ks-bytes"}  # fmt: skip
    infer = ok(kserve(kserve_python, textlen, "textlen", case, tmp_path), textlen)
    assert infer["id"] == "ks-bytes"
    want = [len(t) + v for t, v in zip(TEXTS, x, strict=True)]
    np.testing.assert_allclose(infer["outputs"]["Predictions"]["data"], want)


def test_kserve_wrong_model_name(kserve_python, ridge, tmp_path):
    case = {"inputs": [{"name": "x", "datatype": "FP64", "data": X.head(1).to_numpy().tolist()}]}
    result = kserve(kserve_python, ridge, "nope", case, tmp_path)
    assert (result["live"], result["ready"], result["model_ready"]) == (True, True, False)
    infer = result["infer"]
    assert (infer["type"], infer["status"]) == ("HTTPStatusError", 404)
    # the client lifts the protocol's {"error": ...} into its message
    assert infer["error"].startswith(f"{NOT_FOUND}, '404 Not Found' for url "), infer["error"]


def test_kserve_binary_tensor_extension_is_refused_as_the_protocol_says(kserve_python, ridge, tmp_path):
    """`InferInput.set_data_from_numpy` defaults to KServe's binary tensor extension (raw bytes after the JSON,
    `Inference-Header-Content-Length`); drum does not implement it (`/v2` lists no extensions) and refuses the
    request with the protocol's 400 `{"error": ...}`, which the client surfaces."""
    case = {"inputs": [{"name": "x", "datatype": "FP64", "data": X.head(2).to_numpy().tolist(), "binary": True}]}
    infer = kserve(kserve_python, ridge, "ridge", case, tmp_path)["infer"]
    assert (infer["type"], infer["status"]) == ("HTTPStatusError", 400)
    assert infer["error"].startswith("the request body is not JSON"), infer["error"]
