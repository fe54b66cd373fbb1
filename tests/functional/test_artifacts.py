"""Drop-in artifacts of every framework served by real servers (spec §1.7, §3.3, §3.4, §3.6).

Each model is trained here on synthetic data and written into its own code dir, some with a
`custom.py` transform hook. Expected bodies are computed with the framework in this process and
encoded as DRUM encodes them (float64, pandas `to_json`). All servers of the module start at once.
"""

from __future__ import annotations

import io
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import assert_bytes, assert_json, start_server, wait_for_exit

CSV = b"x1,x2,x3\n1,2,3\n4,5,6\n0.5,1.5,-2\n10,0,1\n"
DATA = pd.read_csv(io.BytesIO(CSV))
BINARY = ["--target-type", "binary", "--positive-class-label", "1", "--negative-class-label", "0"]
MULTICLASS = ["--target-type", "multiclass", "--class-labels", "a", "b", "c"]
REGRESSION = ["--target-type", "regression"]
HOOK = {
    "custom.py": """
        def transform(data, model):
            return data * 2 - 1
    """
}

RNG = np.random.RandomState(0)
TRAIN = pd.DataFrame(RNG.rand(30, 3) * 10, columns=["x1", "x2", "x3"])
SCORE = TRAIN.x1 - TRAIN.x2 + 0.3 * TRAIN.x3
Y_REG = SCORE + RNG.rand(30)
Y_BIN = (SCORE.median() < SCORE).astype(int)
Y_MULTI = np.digitize(SCORE, np.quantile(SCORE, [1 / 3, 2 / 3]))  # 0, 1, 2
ABC = np.array(["a", "b", "c"])


def hooked(data: pd.DataFrame) -> pd.DataFrame:
    return data * 2 - 1


def single_body(values) -> bytes:
    series = pd.Series(np.asarray(values, dtype=np.float64).ravel())
    return b'{"predictions":' + series.to_json(orient="records").encode() + b"}"


def classes_body(matrix, labels: list[str]) -> bytes:
    frame = pd.DataFrame(np.asarray(matrix).astype(np.float64), columns=labels)
    return b'{"predictions":' + frame.to_json(orient="records").encode() + b"}"


def single_probability_body(p: np.ndarray) -> bytes:
    """DRUM's rule for one probability column with labels [positive, negative] = ["1", "0"]: it is the
    probability of the *last* label ("0"), and "1" gets `1 - p` (computed in the column's dtype)."""
    p = np.asarray(p).reshape(-1)
    return classes_body(np.column_stack([1 - p, p]), ["1", "0"])


@dataclass
class Case:
    """A code dir: `build(code_dir)` writes the artifact and returns the body expected for CSV."""

    build: Callable[[Path], bytes]
    args: list[str]
    predictor: str
    files: dict[str, str] = field(default_factory=dict)
    #: One float32 probability column: DRUM computes the complement `1 - p` in float32.
    single_float32_column: bool = False


def _pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


# --- scikit-learn ----------------------------------------------------------------------------------


def sklearn_anomaly_upper_case(code_dir: Path) -> bytes:
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=10, random_state=0).fit(TRAIN)
    _pickle(model, code_dir / "MODEL.PKL")
    return single_body(model.predict(DATA))


def sklearn_regression(code_dir: Path) -> bytes:
    from sklearn.linear_model import Ridge

    model = Ridge().fit(TRAIN, Y_REG)
    _pickle(model, code_dir / "model.pkl")
    return single_body(model.predict(hooked(DATA)))


def sklearn_binary_labels_in_model_order(code_dir: Path) -> bytes:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(TRAIN, Y_BIN)  # classes_ [0, 1]; request labels ["1", "0"]
    _pickle(model, code_dir / "model.pkl")
    return classes_body(model.predict_proba(DATA), ["0", "1"])


def sklearn_multiclass(code_dir: Path) -> bytes:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(TRAIN, np.array(["c", "a", "b"])[Y_MULTI])
    _pickle(model, code_dir / "model.pkl")
    return classes_body(model.predict_proba(hooked(DATA)), ["a", "b", "c"])


JOBLIB_HOOK = {
    "custom.py": """
        import os

        import joblib


        def load_model(code_dir):
            return joblib.load(os.path.join(code_dir, "model.joblib"))
    """
}


def sklearn_joblib_with_load_model_hook(code_dir: Path) -> bytes:
    """`.joblib` has no built-in loader; the hook loads it and the scikit-learn predictor scores it."""
    import joblib
    from sklearn.tree import DecisionTreeRegressor

    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(TRAIN, Y_REG)
    joblib.dump(model, code_dir / "model.joblib")
    return single_body(model.predict(DATA))


# --- XGBoost ---------------------------------------------------------------------------------------


def xgboost_booster_binary(code_dir: Path) -> bytes:
    import xgboost

    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(TRAIN, Y_BIN), 4)
    _pickle(booster, code_dir / "model.pkl")
    return single_probability_body(booster.predict(xgboost.DMatrix(DATA)))


def xgboost_booster_multiclass(code_dir: Path) -> bytes:
    import xgboost

    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2}
    booster = xgboost.train(params, xgboost.DMatrix(TRAIN, Y_MULTI), 4)
    _pickle(booster, code_dir / "model.pkl")
    return classes_body(booster.predict(xgboost.DMatrix(hooked(DATA))), ["a", "b", "c"])  # positional


def xgboost_booster_regression(code_dir: Path) -> bytes:
    import xgboost

    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 2}, xgboost.DMatrix(TRAIN, Y_REG), 4)
    _pickle(booster, code_dir / "model.pkl")
    return single_body(booster.predict(xgboost.DMatrix(DATA)))


def xgboost_pipeline_regression(code_dir: Path) -> bytes:
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=4, max_depth=2)).fit(TRAIN, Y_REG)
    _pickle(model, code_dir / "model.pkl")
    return single_body(model.predict(hooked(DATA)))


def xgboost_pipeline_binary(code_dir: Path) -> bytes:
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=4, max_depth=2)).fit(TRAIN, Y_BIN)
    _pickle(model, code_dir / "model.pkl")
    return classes_body(model.predict_proba(DATA), ["0", "1"])  # classes_ order


def xgboost_bare_classifier(code_dir: Path) -> bytes:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(TRAIN, Y_MULTI)
    _pickle(model, code_dir / "model.pkl")
    return classes_body(model.predict_proba(DATA), ["0", "1", "2"])


# --- PyTorch ---------------------------------------------------------------------------------------


def _torch_predict(model, data: pd.DataFrame) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(data.to_numpy()).float()).numpy()


def torch_regression(code_dir: Path) -> bytes:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    torch.save(model, code_dir / "model.pth")
    return single_body(_torch_predict(model, hooked(DATA)))


def torch_binary_single_column(code_dir: Path) -> bytes:
    import torch
    from torch import nn

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    torch.save(model, code_dir / "model.pth")
    return single_probability_body(_torch_predict(model, DATA))


TORCH_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x):
        return torch.softmax(self.linear(x) / 4, dim=1)
"""


def torch_multiclass_own_class(code_dir: Path) -> bytes:
    """A module class defined in the code dir (importable there when the server unpickles it)."""
    import importlib.util
    import sys

    import torch

    (code_dir / "drum_test_torch_net.py").write_text(TORCH_NET)
    spec = importlib.util.spec_from_file_location("drum_test_torch_net", code_dir / "drum_test_torch_net.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["drum_test_torch_net"] = module
    spec.loader.exec_module(module)
    torch.manual_seed(2)
    model = module.Net()
    torch.save(model, code_dir / "model.pth")
    return classes_body(_torch_predict(model, DATA), ["a", "b", "c"])


# --- ONNX ------------------------------------------------------------------------------------------


def _onnx(model, code_dir: Path, **options):
    import onnxruntime
    from skl2onnx import to_onnx

    onx = to_onnx(model, TRAIN.to_numpy(np.float32)[:1], **options).SerializeToString()
    (code_dir / "model.onnx").write_bytes(onx)
    return onnxruntime.InferenceSession(onx)


def onnx_regression(code_dir: Path) -> bytes:
    from sklearn.linear_model import LinearRegression

    session = _onnx(LinearRegression().fit(TRAIN.to_numpy(np.float32), Y_REG), code_dir)
    return single_body(session.run(None, {"X": hooked(DATA).to_numpy(np.float32)})[0])


def onnx_binary_zipmap_positional(code_dir: Path) -> bytes:
    from sklearn.linear_model import LogisticRegression

    session = _onnx(LogisticRegression().fit(TRAIN.to_numpy(np.float32), Y_BIN), code_dir)
    zipmap = session.run(None, {"X": DATA.to_numpy(np.float32)})[1]  # [{0: p0, 1: p1}, ...]
    matrix = [[row[0], row[1]] for row in zipmap]
    # No model labels: columns are assigned to [positive, negative] = ["1", "0"] by position.
    return classes_body(matrix, ["1", "0"])


def onnx_binary_single_column(code_dir: Path) -> bytes:
    """A hand-built graph: sigmoid(X @ W + b), one output with one column."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[0.3], [-0.2], [0.1]], dtype=np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.05], dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["z"]),
            helper.make_node("Add", ["z", "B"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "single",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (code_dir / "model.onnx").write_bytes(model.SerializeToString())
    session = onnxruntime.InferenceSession(model.SerializeToString())
    return single_probability_body(session.run(None, {"input": DATA.to_numpy(np.float32)})[0])


def onnx_multiclass_zipmap(code_dir: Path) -> bytes:
    from sklearn.linear_model import LogisticRegression

    session = _onnx(LogisticRegression().fit(TRAIN.to_numpy(np.float32), ABC[Y_MULTI]), code_dir)
    zipmap = session.run(None, {"X": hooked(DATA).to_numpy(np.float32)})[1]
    return classes_body([[row[c] for c in "abc"] for row in zipmap], ["a", "b", "c"])


# --- Keras -----------------------------------------------------------------------------------------


def _keras_model(units: int, activation: str | None, seed: int):
    from drum.model.artifacts.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    hidden = keras.layers.Dense(4, activation="tanh")
    return keras.Sequential([keras.Input((3,)), hidden, keras.layers.Dense(units, activation=activation)])


def keras_regression(code_dir: Path) -> bytes:
    model = _keras_model(1, None, 0)
    model.save(code_dir / "model.h5")
    return single_body(model.predict(DATA, verbose=0))


def keras_binary_single_column(code_dir: Path) -> bytes:
    model = _keras_model(1, "sigmoid", 1)
    model.save(code_dir / "model.h5")
    return single_probability_body(model.predict(hooked(DATA), verbose=0))


def keras_multiclass(code_dir: Path) -> bytes:
    model = _keras_model(3, "softmax", 2)
    model.save(code_dir / "model.h5")
    return classes_body(model.predict(DATA, verbose=0), ["a", "b", "c"])


CASES: dict[str, Case] = {
    "sklearn_anomaly_upper_case": Case(sklearn_anomaly_upper_case, ["--target-type", "anomaly"], "scikit-learn"),
    "sklearn_regression_hook": Case(sklearn_regression, REGRESSION, "scikit-learn", HOOK),
    "sklearn_binary": Case(sklearn_binary_labels_in_model_order, BINARY, "scikit-learn"),
    "sklearn_multiclass_hook": Case(sklearn_multiclass, MULTICLASS, "scikit-learn", HOOK),
    "sklearn_joblib_load_model_hook": Case(
        sklearn_joblib_with_load_model_hook, REGRESSION, "scikit-learn", JOBLIB_HOOK
    ),
    "xgboost_booster_binary": Case(xgboost_booster_binary, BINARY, "xgboost", single_float32_column=True),
    "xgboost_booster_multiclass_hook": Case(xgboost_booster_multiclass, MULTICLASS, "xgboost", HOOK),
    "xgboost_booster_regression": Case(xgboost_booster_regression, REGRESSION, "xgboost"),
    "xgboost_pipeline_regression_hook": Case(xgboost_pipeline_regression, REGRESSION, "xgboost", HOOK),
    "xgboost_pipeline_binary": Case(xgboost_pipeline_binary, BINARY, "xgboost"),
    "xgboost_bare_classifier": Case(
        xgboost_bare_classifier, ["--target-type", "multiclass", "--class-labels", "0", "1", "2"], "scikit-learn"
    ),
    "torch_regression_hook": Case(torch_regression, REGRESSION, "torch", HOOK),
    "torch_binary_single_column": Case(torch_binary_single_column, BINARY, "torch", single_float32_column=True),
    "torch_multiclass_own_class": Case(torch_multiclass_own_class, MULTICLASS, "torch"),
    "onnx_regression_hook": Case(onnx_regression, REGRESSION, "onnx", HOOK),
    "onnx_binary_zipmap": Case(onnx_binary_zipmap_positional, BINARY, "onnx"),
    "onnx_binary_single_column": Case(onnx_binary_single_column, BINARY, "onnx", single_float32_column=True),
    "onnx_multiclass_zipmap_hook": Case(onnx_multiclass_zipmap, MULTICLASS, "onnx", HOOK),
    "keras_regression": Case(keras_regression, REGRESSION, "keras"),
    "keras_binary_single_column_hook": Case(
        keras_binary_single_column, BINARY, "keras", HOOK, single_float32_column=True
    ),
    "keras_multiclass": Case(keras_multiclass, MULTICLASS, "keras"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`{case name: (server, expected body)}`: every case trained, then all servers started together."""
    from support import write_model

    base = tmp_path_factory.mktemp("artifacts")
    servers = {}
    try:
        for name, case in CASES.items():
            code_dir = write_model(base / name, case.files)
            expected = case.build(code_dir)
            servers[name] = (start_server(code_dir, case.args, base / f"{name}.log", wait=False), expected)
        deadline = time.monotonic() + 240
        for server, _ in servers.values():
            server.wait_ready(deadline)
        yield servers
    finally:
        for server, _ in servers.values():
            server.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_predictions(served, name):
    server, expected = served[name]
    assert_bytes(server.post("/predict/", data=CSV, headers={"Content-Type": "text/csv"}), 200, expected)


@pytest.mark.parametrize("name", list(CASES))
def test_info_names_the_predictor(served, name):
    server, _ = served[name]
    info = server.get("/info/").json()
    assert info["predictor"] == CASES[name].predictor
    assert info["targetType"] == CASES[name].args[1]


def test_multipart_and_sparse_input_reach_the_artifact(served):
    server, expected = served["torch_binary_single_column"]
    assert_bytes(server.post("/predict/", files={"X": ("X.csv", CSV)}), 200, expected)
    import scipy.io
    import scipy.sparse

    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, scipy.sparse.csr_matrix(DATA.to_numpy()))
    files = {"X": ("X.mtx", buffer.getvalue()), "X.colnames": ("X.colnames", b"x1\nx2\nx3\n")}
    server, expected = served["sklearn_binary"]
    # Sparse input reaches scikit-learn as a sparse frame; LogisticRegression gives the same numbers.
    assert_bytes(server.post("/predict/", files=files), 200, expected)


def test_wrong_number_of_features_is_a_prediction_failure(served):
    server, _ = served["torch_regression_hook"]
    response = server.post("/predict/", data=b"x1,x2\n1,2\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 500
    assert response.json()["message"].startswith("ERROR: Failure when making predictions. Exception: RuntimeError(")


# --- load errors -----------------------------------------------------------------------------------


LOAD_ERROR = "ERROR: An error occurred when loading your artifact: "


def _error_server(tmp_path, files: dict[str, bytes], *args: str):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    for name, content in files.items():
        (code_dir / name).write_bytes(content)
    return start_server(code_dir, ["--target-type", "regression", "--with-error-server", *args], tmp_path / "log")


def test_multiple_artifacts(tmp_path):
    server = _error_server(tmp_path, {"a.pkl": pickle.dumps(1), "b.onnx": b"x", "notes.txt": b""})
    try:
        assert_json(
            server.post("/predict/", data=CSV),
            513,
            {
                "message": LOAD_ERROR + "\n\nRunning environment language: Python.\nMultiple serialized model files "
                "found. Remove extra artifacts or overwrite custom.load_model()\n"
                "List of retrieved files are: a.pkl | b.onnx | notes.txt"
            },
        )
    finally:
        server.stop()


def test_no_artifact(tmp_path):
    server = _error_server(tmp_path, {"custom.py": b"x = 1\n", "model.joblib": b"x"})
    try:
        assert_json(
            server.post("/predict/", data=CSV),
            513,
            {
                "message": LOAD_ERROR + "\n\nRunning environment language: Python.\nCould not find model artifact "
                f"file in: {tmp_path / 'code'} supported by default predictors.\nThey support filenames with the "
                "following extensions ['.h5', '.onnx', '.pkl', '.pth'].\nIf your artifact is not supported by "
                "default predictor, implement custom.load_model() hook.\n"
                "List of retrieved files are: custom.py | model.joblib"
            },
        )
    finally:
        server.stop()


def _state_dict() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(3, 1).state_dict(), buffer)  # weights only: not a module
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        (
            "model.pkl",
            lambda: b"not a model",
            "Could not load model from the artifact file. Exception: UnpicklingError(\"invalid load key, 'n'.\")",
        ),
        (
            "model.pth",
            lambda: b"not a model",
            "Could not load model from the artifact file. Exception: UnpicklingError(\"invalid load key, 'n'.\")",
        ),
        (
            "model.pth",
            _state_dict,
            "Could not load model from the artifact file. Exception: "
            "AttributeError(\"'collections.OrderedDict' object has no attribute 'eval'\")",
        ),
        (
            "model.pkl",
            lambda: pickle.dumps([1, 2, 3]),
            "\n\nRunning environment language: Python.\n"
            "Could not find any framework to handle loaded model and a score hook is not provided",
        ),
    ],
    ids=["bad-pickle", "bad-pth", "state-dict-pth", "no-framework-can-use"],
)
def test_unloadable_artifact(tmp_path, filename, content, message):
    server = _error_server(tmp_path, {filename: content()})
    try:
        assert_json(server.post("/predict/", data=CSV), 513, {"message": LOAD_ERROR + message})
    finally:
        server.stop()


def test_load_failure_without_error_server_exits(tmp_path):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "model.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    server = start_server(code_dir, REGRESSION, tmp_path / "log", wait=False)
    assert wait_for_exit(server) != 0
    assert "Could not find any framework to handle loaded model and a score hook is not provided" in server.log()
