"""Built-in artifact predictors (spec §3.6): order, "can load"/"can use" rules, raw predictions, load errors.

Models are tiny and trained here on synthetic data; server-level behaviour is in
tests/functional/test_artifacts.py.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from drum.errors import DrumCommonException, DrumSerializationError
from drum.model.artifacts import (
    KerasPredictor,
    ONNXPredictor,
    PyTorchPredictor,
    SKLearnPredictor,
    XGBoostPredictor,
    artifact_predictors,
)
from drum.model.artifacts.base import load_pickle
from drum.model.artifacts.keras import import_keras
from drum.model.predictor import ModelConfig, Predictor
from drum.model.target import TargetType

X = pd.DataFrame(np.random.RandomState(0).rand(12, 3) * 10, columns=["x1", "x2", "x3"])
Y_BIN = (X.x1 > X.x2).astype(int)
Y_MULTI = np.arange(12) % 3


def _predictor(name: str):
    return next(p for p in artifact_predictors() if p.name == name)


def _can_use(model) -> list[str]:
    return [p.name for p in artifact_predictors() if p.can_use(model)]


# --- the table -----------------------------------------------------------------------------------


def test_lookup_order_names_extensions_and_extras():
    table = [(type(p).__name__, p.name, p.extension, p.extra) for p in artifact_predictors()]
    assert table == [
        ("KerasPredictor", "keras", ".h5", "keras"),
        ("XGBoostPredictor", "xgboost", ".pkl", "xgboost"),
        ("PyTorchPredictor", "torch", ".pth", "torch"),
        ("SKLearnPredictor", "scikit-learn", ".pkl", "sklearn"),
        ("ONNXPredictor", "onnx", ".onnx", "onnx"),
    ]


@pytest.mark.parametrize(
    ("filename", "names"),
    [
        ("model.pkl", ["xgboost", "scikit-learn"]),
        ("MODEL.PKL", ["xgboost", "scikit-learn"]),
        ("m.Pth", ["torch"]),
        ("m.H5", ["keras"]),
        ("m.onnx", ["onnx"]),
        ("m.joblib", []),
        ("m.pkl.bak", []),
    ],
)
def test_supports_file_ignores_case(filename, names):
    assert [p.name for p in artifact_predictors() if p.supports_file(filename)] == names


def test_every_framework_of_the_test_extra_is_present():
    assert all(p.framework_present() for p in artifact_predictors())


def test_plain_objects_are_used_by_no_framework():
    assert _can_use({"a": 1}) == []
    assert _can_use("model") == []


# --- scikit-learn ----------------------------------------------------------------------------------


def test_sklearn_estimators_and_pipelines():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, np.where(Y_BIN, "yes", "no"))
    assert _can_use(model) == ["scikit-learn"]
    predictions, labels = SKLearnPredictor().predict(X, model, TargetType.BINARY, ["no", "yes"])
    np.testing.assert_array_equal(predictions, model.predict_proba(X))
    assert labels == ["no", "yes"]


def test_sklearn_regression_anomaly_and_unsupported_target():
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=5, random_state=0).fit(X)
    predictions, labels = SKLearnPredictor().predict(X, model, TargetType.ANOMALY, None)
    np.testing.assert_array_equal(predictions, model.predict(X))
    assert labels is None
    message = "^Target type 'textgeneration' is not supported by 'SKLearnPredictor' predictor$"
    with pytest.raises(DrumCommonException, match=message):
        SKLearnPredictor().predict(X, model, TargetType.TEXT_GENERATION, None)


def test_any_pickle_loads_without_a_framework_check(tmp_path, monkeypatch):
    # DRUM loads any .pkl with the scikit-learn loader, so a score hook can use any pickled object.
    path = tmp_path / "model.PKL"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    monkeypatch.setattr(SKLearnPredictor, "framework_present", lambda self: False)
    assert SKLearnPredictor().can_load(path)
    assert SKLearnPredictor().load(path) == {"weights": [1, 2]}


def test_pickle_of_a_missing_framework_names_the_extra(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"cxgboost.not_a_module\nBooster\n.")  # protocol 0: a global from a missing module
    with pytest.raises(ModuleNotFoundError) as info:
        load_pickle(path)
    assert str(info.value) == (
        "No module named 'xgboost.not_a_module'; install it with: pip install 'drum[xgboost]'"
    )
    path.write_bytes(b"cno_such_module_anywhere\nThing\n.")
    with pytest.raises(ModuleNotFoundError, match="^No module named 'no_such_module_anywhere'$"):
        load_pickle(path)


# --- XGBoost ---------------------------------------------------------------------------------------


def test_xgboost_booster_predicts_through_dmatrix():
    import xgboost

    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(X, Y_BIN), 3)
    assert _can_use(booster) == ["xgboost"]
    predictions, labels = XGBoostPredictor().predict(X, booster, TargetType.BINARY, ["0", "1"])
    assert predictions.shape == (12,)  # one probability column: the single-column rule applies
    np.testing.assert_array_equal(predictions, booster.predict(xgboost.DMatrix(X)))
    assert labels is None


def test_xgboost_pipeline_uses_predict_proba_and_classes():
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=3, max_depth=2)).fit(X, Y_MULTI)
    assert _can_use(model) == ["xgboost", "scikit-learn"]
    predictions, labels = XGBoostPredictor().predict(X, model, TargetType.MULTICLASS, ["0", "1", "2"])
    np.testing.assert_array_equal(predictions, model.predict_proba(X))
    assert isinstance(labels, np.ndarray) and labels.tolist() == [0, 1, 2]  # as is, like DRUM
    regressor = make_pipeline(xgboost.XGBRegressor(n_estimators=3)).fit(X, X.x1)
    np.testing.assert_array_equal(
        XGBoostPredictor().predict(X, regressor, TargetType.REGRESSION, None)[0], regressor.predict(X)
    )
    with pytest.raises(DrumCommonException, match="not supported by 'XGBoostPredictor' predictor$"):
        XGBoostPredictor().predict(X, regressor, TargetType.TEXT_GENERATION, None)


def test_bare_xgboost_sklearn_wrapper_goes_to_scikit_learn():
    import xgboost

    assert _can_use(xgboost.XGBClassifier(n_estimators=2).fit(X, Y_BIN)) == ["scikit-learn"]


# --- PyTorch ---------------------------------------------------------------------------------------


def test_torch_module_forward_on_float_tensor(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Softmax(dim=1))
    path = tmp_path / "model.pth"
    torch.save(model, path)
    loaded = PyTorchPredictor().load(path)
    assert not loaded.training  # eval() was called
    assert _can_use(loaded) == ["torch"]
    integers = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})  # int64 columns become float32
    predictions, labels = PyTorchPredictor().predict(integers, loaded, TargetType.MULTICLASS, ["a", "b", "c"])
    with torch.no_grad():
        expected = model(torch.tensor([[1.0, 3, 5], [2, 4, 6]])).numpy()
    np.testing.assert_array_equal(predictions, expected)
    assert predictions.dtype == np.float32 and labels is None


# --- ONNX ------------------------------------------------------------------------------------------


def _onnx_session(model, **options):
    import onnxruntime
    from skl2onnx import to_onnx

    onx = to_onnx(model, X.values[:1].astype(np.float32), **options)
    return onnxruntime.InferenceSession(onx.SerializeToString())


def test_onnx_zipmap_probabilities_become_a_matrix():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(X.values.astype(np.float32), np.array(["b", "a", "c"])[Y_MULTI])
    session = _onnx_session(model)
    assert [o.name for o in session.get_outputs()] == ["output_label", "output_probability"]
    assert _can_use(session) == ["onnx"]
    predictions, labels = ONNXPredictor().predict(X, session, TargetType.MULTICLASS, ["a", "b", "c"])
    zipmap = session.run(None, {"X": X.values.astype(np.float32)})[1]
    np.testing.assert_array_equal(predictions, [[row["a"], row["b"], row["c"]] for row in zipmap])
    np.testing.assert_allclose(predictions, model.predict_proba(X.values.astype(np.float32)), rtol=1e-5)
    assert labels is None


def test_onnx_other_target_types_use_the_first_output():
    from sklearn.linear_model import LinearRegression, LogisticRegression

    session = _onnx_session(LogisticRegression().fit(X.values.astype(np.float32), Y_BIN), options={"zipmap": False})
    predictions, _ = ONNXPredictor().predict(X, session, TargetType.BINARY, ["0", "1"])
    assert predictions.shape == (12, 2)  # "probabilities" output
    label_output, _ = ONNXPredictor().predict(X, session, TargetType.MULTILABEL, ["0", "1"])
    assert label_output.shape == (12,)  # "label" output: multilabel is not searched for probabilities
    regression = _onnx_session(LinearRegression().fit(X.values.astype(np.float32), X.x1))
    predictions, _ = ONNXPredictor().predict(X, regression, TargetType.REGRESSION, None)
    np.testing.assert_allclose(predictions[:, 0], X.x1, rtol=1e-4)


# --- Keras -----------------------------------------------------------------------------------------


def test_keras_h5_round_trip_and_pipelines(tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    keras = import_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    path = tmp_path / "model.h5"
    model.save(path)
    loaded = KerasPredictor().load(path)
    assert _can_use(loaded) == ["keras", "torch"]  # on the torch backend a keras.Model is an nn.Module too
    predictions, labels = KerasPredictor().predict(X, loaded, TargetType.BINARY, ["0", "1"])
    np.testing.assert_array_equal(predictions, model.predict(X, verbose=0))
    assert labels is None
    assert _can_use(Pipeline([("f", FunctionTransformer()), ("k", loaded)]))[0] == "keras"


def test_keras_defaults_to_the_torch_backend():
    script = "from drum.model.artifacts.keras import import_keras; print(import_keras().backend.backend())"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "torch", out.stderr


# --- without the optional extras -------------------------------------------------------------------


def test_everything_imports_without_any_framework():
    script = textwrap.dedent(
        """
        import sys
        for name in ("sklearn", "xgboost", "torch", "keras", "tensorflow", "onnxruntime"):
            sys.modules[name] = None  # makes `import name` raise ImportError
        import drum.cli.main, drum.model.predictor
        from drum.model.artifacts import artifact_predictors
        print([p.framework_present() for p in artifact_predictors()])
        print([p.can_use(object()) for p in artifact_predictors()])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == [str([False] * 5)] * 2, out.stderr


# --- loading through Predictor ---------------------------------------------------------------------


def _load(code_dir, target_type=TargetType.REGRESSION) -> Predictor:
    return Predictor(ModelConfig(code_dir=str(code_dir), target_type=target_type)).load()


def test_missing_framework_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "model.pth").write_bytes(b"not loaded")
    monkeypatch.setattr(PyTorchPredictor, "framework_present", lambda self: False)
    with pytest.raises(DrumSerializationError) as info:
        _load(tmp_path)
    assert str(info.value) == (
        "An error occurred when loading your artifact: \n"
        "The following frameworks support this model artifact\n"
        "but could not load the model. Check if requirements are missing\n"
        "Framework: torch, requirements: pip install 'drum[torch]'"
    )


def test_unloadable_artifact(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    prefix = "^An error occurred when loading your artifact: Could not load model from the artifact file. Exception: "
    with pytest.raises(DrumSerializationError, match=prefix):
        _load(tmp_path)


def test_loaded_object_no_framework_can_use(tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DrumSerializationError) as info:
        _load(tmp_path)
    assert str(info.value) == (
        "An error occurred when loading your artifact: \n\nRunning environment language: Python.\n"
        "Could not find any framework to handle loaded model and a score hook is not provided"
    )


def test_multiple_and_missing_artifacts(tmp_path):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "b.ONNX").write_bytes(b"x")
    with pytest.raises(DrumSerializationError, match="Multiple serialized model files found"):
        _load(tmp_path)
    (tmp_path / "a.pkl").unlink()
    (tmp_path / "b.ONNX").unlink()
    (tmp_path / "model.joblib").write_bytes(b"x")
    with pytest.raises(DrumSerializationError) as info:
        _load(tmp_path)
    assert "They support filenames with the following extensions ['.h5', '.onnx', '.pkl', '.pth']." in str(
        info.value
    )


def test_predictor_chosen_for_each_artifact(tmp_path):
    import torch

    torch.save(torch.nn.Linear(3, 1), tmp_path / "model.pth")
    predictor = _load(tmp_path)
    assert predictor.artifact_predictor.name == "torch"
    assert predictor.info()["predictor"] == "torch"
