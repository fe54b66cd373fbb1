"""Transform target type without a `transform` hook (spec §2.4, §3.3): the drop-in sklearn transformer.

Dense output comes back as CSV, sparse output as Matrix Market with `X.colnames`; a `y` file is echoed
unchanged. Expected payloads are computed with scikit-learn here and encoded as DRUM encodes them.
"""

from __future__ import annotations

import io
import pickle
import time

import numpy as np
import pandas as pd
import pytest
import requests
import scipy.io
import scipy.sparse
from support import assert_json, parse_multipart, start_server

TRAIN = pd.DataFrame({"a": [1.0, -8, 3, 0.5], "b": [2.0, 4, -10, 1], "c": [0.0, 6, 3, -3]})
CSV = b"a,b,c\n1,-2,3\n4,5,-6\n0,0.5,2\n"
Y = b"target\nyes\nno\nyes\n"
COLORS = b"color\nred\nblue\nred\ngreen\n"


def _csv_payload(frame: pd.DataFrame) -> bytes:
    """DRUM's CSV part: CRLF line ends, the last one removed."""
    return frame.to_csv(index=False, lineterminator="\r\n")[:-2].encode()


def _mtx_payload(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    scipy.io.mmwrite(sink, frame.sparse.to_coo())
    return sink.getvalue()


def _mtx(values) -> bytes:
    sink = io.BytesIO()
    scipy.io.mmwrite(sink, scipy.sparse.csr_matrix(np.asarray(values, dtype=float)))
    return sink.getvalue()


def _max_abs(code_dir):
    from sklearn.preprocessing import MaxAbsScaler

    return MaxAbsScaler().fit(TRAIN)


def _pipeline(code_dir):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    return make_pipeline(SimpleImputer(), PolynomialFeatures(degree=2, include_bias=False)).fit(TRAIN)


def _one_hot(code_dir):
    from sklearn.preprocessing import OneHotEncoder

    return OneHotEncoder(sparse_output=True, handle_unknown="ignore").fit(pd.DataFrame({"color": ["red", "blue"]}))


TRANSFORMERS = {"max_abs": _max_abs, "pipeline": _pipeline, "one_hot": _one_hot}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`{name: (server, fitted transformer)}`, all started together."""
    base = tmp_path_factory.mktemp("transformers")
    servers = {}
    try:
        for name, fit in TRANSFORMERS.items():
            code_dir = base / name
            code_dir.mkdir()
            model = fit(code_dir)
            with open(code_dir / "transformer.pkl", "wb") as f:
                pickle.dump(model, f)
            server = start_server(code_dir, ["--target-type", "transform"], base / f"{name}.log", wait=False)
            servers[name] = (server, model)
        deadline = time.monotonic() + 120
        for server, _ in servers.values():
            server.wait_ready(deadline)
        yield servers
    finally:
        for server, _ in servers.values():
            server.stop()


def _parts(response: requests.Response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    return {name: payload for name, (payload, _headers) in parse_multipart(response).items()}


def test_dense_output_is_csv(served):
    server, model = served["max_abs"]
    expected = pd.DataFrame(model.transform(pd.read_csv(io.BytesIO(CSV))))
    parts = _parts(server.post("/transform/", data=CSV, headers={"Content-Type": "text/csv"}))
    assert parts == {"X.format": b"csv", "X.transformed": _csv_payload(expected)}
    assert parts["X.transformed"].startswith(b"0,1,2\r\n")


def test_dense_output_with_y_echoed(served):
    server, model = served["pipeline"]
    data = pd.read_csv(io.BytesIO(b"a,b,c\n1,,3\n2,5,-1\n0,1,\n"))  # blanks are imputed by the pipeline
    expected = pd.DataFrame(model.transform(data))
    files = {"X": ("X.csv", b"a,b,c\n1,,3\n2,5,-1\n0,1,\n"), "y": ("y.csv", Y)}
    parts = _parts(server.post("/transform/", files=files))
    assert list(parts) == ["X.format", "X.transformed", "y.format", "y.transformed"]
    assert parts["X.transformed"] == _csv_payload(expected)
    assert expected.shape == (3, 9)
    assert (parts["y.format"], parts["y.transformed"]) == (b"csv", b"target\r\nyes\r\nno\r\nyes")


def test_sparse_output_from_csv_input(served):
    server, model = served["one_hot"]
    expected = pd.DataFrame.sparse.from_spmatrix(model.transform(pd.read_csv(io.BytesIO(COLORS))))
    files = {"X": ("X.csv", COLORS), "y": ("y.csv", b"t\n1\n0\n1\n0\n")}
    parts = _parts(server.post("/transform/", files=files))
    assert list(parts) == ["X.format", "X.transformed", "X.colnames", "y.format", "y.transformed"]
    assert parts["X.format"] == b"sparse"
    assert parts["X.transformed"] == _mtx_payload(expected)
    np.testing.assert_array_equal(
        scipy.io.mmread(io.BytesIO(parts["X.transformed"])).toarray(), [[0, 1], [1, 0], [0, 1], [0, 0]]
    )
    assert parts["X.colnames"] == b"0\n1"
    assert parts["y.transformed"] == b"t\r\n1\r\n0\r\n1\r\n0"


def test_sparse_input_with_colnames_gives_sparse_output(served):
    server, model = served["max_abs"]
    values = [[1, 0, 3], [0, 5, 0], [-4, 0, 0]]
    frame = pd.DataFrame.sparse.from_spmatrix(scipy.sparse.csr_matrix(np.asarray(values, float)), columns=list("abc"))
    expected = pd.DataFrame.sparse.from_spmatrix(model.transform(frame))
    files = {"X": ("X.mtx", _mtx(values)), "X.colnames": ("X.colnames", b"a\nb\nc\n")}
    parts = _parts(server.post("/transform/", files=files))
    assert parts == {"X.format": b"sparse", "X.transformed": _mtx_payload(expected), "X.colnames": b"0\n1\n2"}


def test_info_has_no_predictor(served):
    server, _ = served["max_abs"]
    info = server.get("/info/").json()
    assert (info["targetType"], info["predictor"]) == ("transform", None)


def test_transformer_failure(served):
    server, model = served["max_abs"]
    with pytest.raises(ValueError) as info:
        model.transform(pd.DataFrame({"a": [1], "b": [2]}))
    response = server.post("/transform/", data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert_json(response, 500, {"message": f"ERROR: Couldn't naively apply transformer: {info.value}"})


def test_non_sklearn_object_needs_a_transform_hook(tmp_path):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "model.pkl").write_bytes(pickle.dumps({"not": "a transformer"}))
    server = start_server(code_dir, ["--target-type", "transform", "--with-error-server"], tmp_path / "log")
    try:
        assert_json(
            server.post("/transform/", data=CSV),
            513,
            {
                "message": "ERROR: An error occurred when loading your artifact: A transform task requires a "
                "user-defined transform hook for non-sklearn transformers"
            },
        )
    finally:
        server.stop()
