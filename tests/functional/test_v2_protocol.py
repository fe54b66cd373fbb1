"""The Open Inference Protocol's REST routes (issue 24, item 1), driven by the official Triton HTTP client
(`tritonclient[http]`) and plain HTTP: health, metadata, inference on one [N, F] tensor and on named input
columns (MLServer's pandas-codec shape), classification labels as outputs, requested outputs, the protocol's
errors; on the FastAPI and Flask backends; off with DRUM_V2_PROTOCOL. Real scikit-learn models."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression, Ridge

tritonclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a test dependency")
from tritonclient.utils import InferenceServerException  # noqa: E402

FEATURES = [f"f{i}" for i in range(4)]
RNG = np.random.default_rng(9)
X = pd.DataFrame(RNG.normal(size=(60, 4)), columns=FEATURES)
Y = X.f0 * 2 - X.f1 + 0.5
LABELS = np.where(X.f0 + X.f2 > 0, "yes", "no")


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory: pytest.TempPathFactory):
    code = tmp_path_factory.mktemp("v2") / "ridge"
    code.mkdir()
    (code / "model.pkl").write_bytes(pickle.dumps(Ridge().fit(X, Y)))
    return code


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory: pytest.TempPathFactory):
    code = tmp_path_factory.mktemp("v2") / "logistic"
    code.mkdir()
    (code / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(X, LABELS)))
    (code / "model-metadata.yaml").write_text(
        "name: churn\ntype: inference\ntargetType: binary\ninferenceModel:\n  targetName: churned\n"
        "  positiveClassLabel: \"yes\"\n  negativeClassLabel: \"no\"\n"
    )
    return code


def client(server) -> tritonclient.InferenceServerClient:
    return tritonclient.InferenceServerClient(server.url.removeprefix("http://"))


@pytest.mark.parametrize("backend", ["fastapi", "gunicorn"])
def test_triton_client_health_metadata_and_inference(regression_dir, drum_server, backend):
    server = drum_server(regression_dir, "--target-type", "regression",
                         env={"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": backend})  # fmt: skip
    triton = client(server)
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("ridge")
    assert not triton.is_model_ready("other")
    assert triton.get_server_metadata()["name"] == "drum"
    metadata = triton.get_model_metadata("ridge")
    assert [i["name"] for i in metadata["inputs"]] == FEATURES and metadata["outputs"][0]["name"] == "Predictions"

    batch = X.head(5).to_numpy()
    tensor = tritonclient.InferInput("x", list(batch.shape), "FP64")
    tensor.set_data_from_numpy(batch, binary_data=False)
    result = triton.infer("ridge", [tensor], request_id="r-1",
                          outputs=[tritonclient.InferRequestedOutput("Predictions", binary_data=False)])  # fmt: skip
    want = Ridge().fit(X, Y).predict(X.head(5))
    np.testing.assert_allclose(result.as_numpy("Predictions"), want, rtol=1e-9)
    assert result.get_response()["id"] == "r-1"
    # the same rows through DRUM's own route give the same numbers
    csv = server.post("/predict/", data=X.head(5).to_csv(index=False), headers={"Content-Type": "text/csv"})
    np.testing.assert_allclose(csv.json()["predictions"], want, rtol=1e-9)


def test_named_columns_and_labels_as_outputs(binary_dir, drum_server):
    server = drum_server(binary_dir, "--target-type", "binary", "--positive-class-label", "yes",
                         "--negative-class-label", "no")  # fmt: skip
    rows = X.head(3)
    inputs = [{"name": f, "shape": [3], "datatype": "FP64", "data": rows[f].tolist(),
               "parameters": {"content_type": "np"}} for f in FEATURES]  # fmt: skip
    body = {"inputs": inputs, "parameters": {"content_type": "pd"}}
    response = server.post("/v2/models/churn/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert set(outputs) == {"yes", "no"} and outputs["yes"]["datatype"] == "FP64"
    model = LogisticRegression().fit(X, LABELS)
    np.testing.assert_allclose(outputs["yes"]["data"], model.predict_proba(rows)[:, list(model.classes_).index("yes")],
                               rtol=1e-9)  # fmt: skip
    only = server.post("/v2/models/churn/infer", json={**body, "outputs": [{"name": "no"}]})
    assert [o["name"] for o in only.json()["outputs"]] == ["no"]


def test_protocol_errors(regression_dir, drum_server):
    server = drum_server(regression_dir, "--target-type", "regression")
    url = "/v2/models/ridge/infer"
    cases = [
        (server.post(url, data=b"not json"), 400, "the request body is not JSON"),
        (server.post(url, json={"inputs": []}), 400, "needs a non-empty 'inputs' list"),
        (server.post(url, json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}),
         400, "unsupported datatype 'FP99'"),
        (server.post(url, json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2]}]}),
         400, "shape [2, 4] holds 8 values, data has 2"),
        (server.post("/v2/models/nope/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64",
                                                               "data": [1]}]}), 404, "Model nope not found"),
        (server.post(url, json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
                                "outputs": [{"name": "zzz"}]}), 400, "unknown outputs requested: ['zzz']"),
    ]  # fmt: skip
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"} and message in response.json()["error"]
    triton = client(server)
    with pytest.raises(InferenceServerException, match="Model nope not found"):
        triton.get_model_metadata("nope")


def test_v2_routes_can_be_turned_off(regression_dir, drum_server):
    server = drum_server(regression_dir, "--target-type", "regression", env={"DRUM_V2_PROTOCOL": "false"})
    assert server.get("/v2/health/ready").status_code == 404
    assert server.get("/ping/").status_code == 200
    assert requests.get(server.url + "/v2", timeout=10).status_code == 404
