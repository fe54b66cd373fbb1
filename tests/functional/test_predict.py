"""Structured predictions (spec §2.3, §3.2–§3.6): request reading, target types, marshalling, hooks, errors."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from support import (
    SAMPLES_MISSING,
    assert_bytes,
    assert_error,
    ours_only,
    runtime_param,
    server_pool,
    unsupported_payload,
)

HELPERS = """
    import json

    import pandas as pd


    def dense(data):
        if any(isinstance(dtype, pd.SparseDtype) for dtype in data.dtypes):
            return data.sparse.to_dense()
        return data


    def describe(data, kwargs):
        sparse = any(isinstance(dtype, pd.SparseDtype) for dtype in data.dtypes)
        out = {"_columns": [str(c) for c in data.columns], "_sparse": sparse}
        for key, value in sorted(kwargs.items()):
            if isinstance(value, bytes):
                value = value.decode()
            elif key == "target_type":
                value = [type(value).__name__, value.value, str(value)]
            out[key] = value
        return json.dumps(out)
"""

REGRESSION = {
    "helpers.py": HELPERS,
    "custom.py": """
        import json

        import numpy as np
        import pandas as pd
        from datarobot_drum import CustomHTTPError, RuntimeParameters

        from helpers import dense, describe


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            given, data = data, dense(data)
            columns = set(data.columns)
            if "boom" in columns:
                raise ValueError("boom")
            if "teapot" in columns:
                raise CustomHTTPError("short and stout", status_code=418)
            if "http_default" in columns:
                raise CustomHTTPError("bad input")
            if "not_a_frame" in columns:
                return [1, 2]
            if "float32" in columns:
                return pd.DataFrame({"Predictions": np.array([0.1, 1 / 3], dtype=np.float32)})
            if "unicode" in columns:
                return pd.DataFrame({"Predictions": [1.0], "note": ["caf\u00e9 \u2615"], "missing": [np.nan]})
            if "unicode_http" in columns:
                raise CustomHTTPError("caf\u00e9 \u2615", status_code=400)
            if "unicode_error" in columns:
                raise ValueError("na\u00efve")
            if "wide_floats" in columns:
                values = [1e20, 1e-7, 123456789.123456789, np.inf, -np.inf, 0.1 + 0.2, 2**60, -0.0, 5e-324]
                return pd.DataFrame({"Predictions": values})
            if "strings" in columns:
                return pd.DataFrame({"Predictions": ["a", "b"]})
            if "booleans" in columns:
                return pd.DataFrame({"Predictions": [True, False]})
            if "two_columns" in columns:
                return pd.DataFrame({"a": [1.0] * len(data), "b": [2.0] * len(data)})
            if "x" in columns:
                out = pd.DataFrame({"Predictions": data["x"]})
            else:
                out = pd.DataFrame({"Predictions": [1] * len(data)})
            if "extra" in columns:
                out["extra"] = data["extra"]
                out["const"] = 7
            if "kwargs" in columns:
                out["kwargs"] = describe(given, kwargs)
            if "param" in columns:
                names = list(data["param"])
                out["value"] = [json.dumps(RuntimeParameters.get(n)) if RuntimeParameters.has(n) else "-"
                                for n in names]
                out["has"] = [RuntimeParameters.has(name) for name in names]
            if "get_missing" in columns:
                RuntimeParameters.get("NOPE")
            if "more_rows" in columns:
                out = pd.DataFrame({"Predictions": [1.5] * (len(data) + 2)})
            return out
    """,
}

BINARY = {
    "helpers.py": HELPERS,
    "custom.py": """
        import pandas as pd

        from helpers import describe


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            n = len(data)
            columns = set(data.columns)
            if "reverse" in columns:
                return pd.DataFrame({"no": [0.25] * n, "yes": [0.75] * n})
            if "not_one" in columns:
                return pd.DataFrame({"yes": [0.5] * n, "no": [0.6] * n})
            if "negative" in columns:
                return pd.DataFrame({"yes": [1.5] * n, "no": [-0.5] * n})
            if "above_one" in columns:
                return pd.DataFrame({"yes": [1.5] * n, "no": [0.0] * n})
            if "wrong_labels" in columns:
                return pd.DataFrame({"a": [0.5] * n, "b": [0.5] * n})
            if "one_column" in columns:
                return pd.DataFrame({"yes": [0.5] * n})
            out = pd.DataFrame({"yes": [0.75] * n, "no": [0.25] * n})
            if "extra" in columns:
                out.insert(0, "maybe", ["m"] * n)
                out["score"] = list(range(n))
            if "kwargs" in columns:
                out["kwargs"] = describe(data, kwargs)
            return out
    """,
}

MULTICLASS = {
    "helpers.py": HELPERS,
    "custom.py": """
        import pandas as pd

        from helpers import describe


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            n = len(data)
            if "thirds" in data.columns:
                return pd.DataFrame({"b": [1 / 3] * n, "a": [1 / 3] * n, "c": [1 / 3] * n})
            out = pd.DataFrame({"c": [0.5] * n, "a": [0.25] * n, "b": [0.25] * n})
            if "kwargs" in data.columns:
                out["kwargs"] = describe(data, kwargs)
            return out
    """,
}

MULTILABEL = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            n = len(data)
            return pd.DataFrame({"a": [0.9] * n, "b": [0.8] * n, "c": [0.0] * n})
    """
}

ANOMALY = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [i % 2 for i in range(len(data))]})
    """
}

TEXT = {
    "custom.py": """
        import os

        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            target = os.environ["TARGET_NAME"].strip('"')
            out = pd.DataFrame({target: data["prompt"].str.upper()})
            if "tokens" in data.columns:
                out["tokens"] = data["tokens"]
            if "numbers" in data.columns:
                out[target] = [1, 2]
            return out
    """
}

GEOPOINT = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [f"POINT({x} {y})" for x, y in zip(data["lat"], data["lon"])]})
    """
}

HOOKS = {
    "custom.py": """
        import io
        import json

        import pandas as pd

        STATE = {}


        def init(**kwargs):
            STATE["init"] = sorted(kwargs)
            STATE["code_dir"] = kwargs.get("code_dir")


        def read_input_data(input_binary_data):
            if input_binary_data == b"bad":
                raise ValueError("bad input")
            if input_binary_data.startswith(b"{"):
                return pd.DataFrame(json.loads(input_binary_data))
            return pd.read_csv(io.BytesIO(input_binary_data))


        def load_model(code_dir):
            return {"factor": 2, "code_dir": code_dir}


        def transform(data, model):
            if "fail_transform" in data.columns:
                raise KeyError("nope")
            if "transform_list" in data.columns:
                return [1]
            return data * model["factor"]


        def score(data, model, **kwargs):
            out = pd.DataFrame({"Predictions": data["x"] + 1})
            if "init" in data.columns:
                out["init"] = json.dumps({**STATE, "same_dir": STATE["code_dir"] == model["code_dir"]})
            if "fail_post" in data.columns:
                out["Predictions"] = -1
            if "post_list" in data.columns:
                out["Predictions"] = -2
            return out


        def post_process(predictions, model):
            if (predictions["Predictions"] == -1).any():
                raise RuntimeError("post failed")
            if (predictions["Predictions"] == -2).any():
                return [0]
            return predictions * 10
    """
}

UNSTRUCTURED = {
    "custom.py": """
        def load_model(code_dir):
            return "model"


        def score_unstructured(model, data, **kwargs):
            return "unused"
    """
}
TRANSFORM = {
    "custom.py": """
        def load_model(code_dir):
            return "model"


        def transform(data, model):
            return data
    """
}

NO_LABELS = """
    import numpy as np
    import pandas as pd
    from sklearn.base import BaseEstimator


    class Probabilities(BaseEstimator):
        # A classifier without `classes_`: DRUM assigns the request labels by position.
        def __init__(self, width=1):
            self.width = width

        def predict_proba(self, X):
            if self.width == 1:
                return np.full(len(X), 0.75)
            if self.width == 2:
                return np.tile([0.75, 0.25], (len(X), 1))
            return np.tile([0.2, 0.3, 0.5], (len(X), 1))


    def load_model(code_dir):
        return Probabilities(int(open(f"{code_dir}/width.txt").read()))
"""
IDENTITY_POST_PROCESS = """

    def post_process(predictions, model):
        return predictions
"""

CSV = b"a,b\n1,2\n3,4\n"
LABELS = ["--positive-class-label", "yes", "--negative-class-label", "no"]


def _train_artifacts(code_dir: Path) -> None:
    """Small sklearn models trained on synthetic data, one artifact per sub directory."""
    from sklearn.dummy import DummyClassifier
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    models = {
        "regressor": DecisionTreeRegressor().fit(x, [1.5, 2.5, 3.5, 4.5]),
        "binary": DummyClassifier(strategy="prior").fit(x, ["yes", "yes", "yes", "no"]),
        "multiclass": DecisionTreeClassifier().fit(x, ["c", "a", "b", "a"]),
    }
    for name, model in models.items():
        (code_dir / name).mkdir()
        with open(code_dir / name / "model.pkl", "wb") as f:
            pickle.dump(model, f)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    code_dir = tmp_path_factory.mktemp("artifacts")
    _train_artifacts(code_dir)
    return code_dir


@pytest.fixture
def regression(pool):
    env = {
        "MLOPS_RUNTIME_PARAM_GREETING": runtime_param("hello"),
        "MLOPS_RUNTIME_PARAM_COUNT": runtime_param(5, "numeric"),
        "MLOPS_RUNTIME_PARAM_ENABLED": runtime_param(True, "boolean"),
        "MLOPS_RUNTIME_PARAM_SECRET": runtime_param({"credentialType": "basic", "user": "u"}, "credential"),
        "MLOPS_RUNTIME_PARAM_RATIO": runtime_param("5.5", "numeric"),
        "MLOPS_RUNTIME_PARAM_BAD_JSON": "{not json",
        "MLOPS_RUNTIME_PARAM_BOOL_STRING": runtime_param("true", "boolean"),
    }
    return pool("regression", REGRESSION, "--target-type", "regression", env=env, name="regression")


@pytest.fixture
def binary(pool):
    return pool("binary", BINARY, "--target-type", "binary", *LABELS, name="binary")


@pytest.fixture
def multiclass(pool):
    return pool("multiclass", MULTICLASS, "--target-type", "multiclass", "--class-labels", "a", "b", "c")


@pytest.fixture
def hooks(pool):
    return pool("hooks", HOOKS, "--target-type", "regression", name="hooks")


# --- response format per target type -------------------------------------------------------------


def test_regression_predictions_are_cast_to_float(regression):
    assert_bytes(regression.post("/predict/", data=b"x\n1\n2\n-3\n"), 200, b'{"predictions":[1.0,2.0,-3.0]}')


def test_regression_nan_is_null(regression):
    body = b"x,y\n1.5,1\n,2\n"
    assert_bytes(regression.post("/predict/", data=body), 200, b'{"predictions":[1.5,null]}')


def test_regression_extra_model_output_split_format(regression):
    response = regression.post("/predictions/", data=b"x,extra\n1,a\n2,b\n")
    expected = (
        b'{"predictions":[1.0,2.0],'
        b'"extraModelOutput":{"columns":["extra","const"],"index":[0,1],"data":[["a",7],["b",7]]}}'
    )
    assert_bytes(response, 200, expected)


def test_float32_predictions_are_cast_to_float64(regression):
    expected = b'{"predictions":[0.1000000015,0.3333333433]}'
    assert_bytes(regression.post("/predict/", data=b"float32\n1\n"), 200, expected)


def test_float_formatting_of_pandas(regression):
    expected = (
        b'{"predictions":[1e+20,0.0000001,123456789.123456791,null,null,0.3,1.152921505e+18,0.0,4.940656458e-324]}'
    )
    assert_bytes(regression.post("/predict/", data=b"wide_floats\n1\n"), 200, expected)


def test_boolean_predictions_become_floats(regression):
    assert_bytes(regression.post("/predict/", data=b"booleans\n1\n"), 200, b'{"predictions":[1.0,0.0]}')


def test_string_predictions_for_regression_are_500(regression):
    assert_error(
        regression.post("/predict/", data=b"strings\n1\n"), 500, "ERROR: could not convert string to float: 'a'"
    )


def test_non_ascii_is_escaped(regression):
    expected = (
        b'{"predictions":[1.0],'
        b'"extraModelOutput":{"columns":["note","missing"],"index":[0],"data":[["caf\\u00e9 \\u2615",null]]}}'
    )
    assert_bytes(regression.post("/predict/", data=b"unicode\n1\n"), 200, expected)
    response = regression.post("/predict/", data=b"unicode_http\n1\n")
    assert_bytes(response, 400, b'{"message":"caf\\u00e9 \\u2615"}\n')
    response = regression.post("/predict/", data=b"unicode_error\n1\n")
    assert_bytes(
        response,
        500,
        b'{"message":"ERROR: Model \'score\' hook failed to make predictions. '
        b'Exception: ValueError(\'na\\u00efve\')"}\n',
    )


def test_predictions_are_not_checked_against_input_rows(regression):
    assert_bytes(regression.post("/predict/", data=b"more_rows\n1\n"), 200, b'{"predictions":[1.5,1.5,1.5]}')


def test_binary_columns_follow_the_model_column_order(binary):
    expected = b'{"predictions":[{"yes":0.75,"no":0.25},{"yes":0.75,"no":0.25}]}'
    assert_bytes(binary.post("/predict/", data=CSV), 200, expected)
    reversed_ = b'{"predictions":[{"no":0.25,"yes":0.75}]}'
    assert_bytes(binary.post("/predict/", data=b"reverse\n1\n"), 200, reversed_)


def test_binary_extra_model_output(binary):
    expected = (
        b'{"predictions":[{"yes":0.75,"no":0.25},{"yes":0.75,"no":0.25}],'
        b'"extraModelOutput":{"columns":["maybe","score"],"index":[0,1],"data":[["m",0],["m",1]]}}'
    )
    assert_bytes(binary.post("/predict/", data=b"extra\n1\n2\n"), 200, expected)


def test_multiclass_columns_follow_the_model_column_order(multiclass):
    expected = b'{"predictions":[{"c":0.5,"a":0.25,"b":0.25}]}'
    assert_bytes(multiclass.post("/predict/", data=b"x\n1\n"), 200, expected)


def test_multiclass_float_formatting(multiclass):
    expected = b'{"predictions":[{"b":0.3333333333,"a":0.3333333333,"c":0.3333333333}]}'
    assert_bytes(multiclass.post("/predict/", data=b"thirds\n1\n"), 200, expected)


def test_multilabel_probabilities_need_not_sum_to_one(pool):
    server = pool("multilabel", MULTILABEL, "--target-type", "multilabel", "--class-labels", "a", "b", "c")
    expected = b'{"predictions":[{"a":0.9,"b":0.8,"c":0.0},{"a":0.9,"b":0.8,"c":0.0}]}'
    assert_bytes(server.post("/predict/", data=CSV), 200, expected)


def test_anomaly(pool):
    server = pool("anomaly", ANOMALY, "--target-type", "anomaly")
    assert_bytes(server.post("/predict/", data=b"x\n1\n2\n3\n"), 200, b'{"predictions":[0.0,1.0,0.0]}')


@pytest.mark.parametrize("target_type", ["textgeneration", "vectordatabase", "agenticworkflow"])
def test_text_target_types_keep_strings(pool, target_type):
    server = pool(target_type, TEXT, "--target-type", target_type, env={"TARGET_NAME": "completion"})
    body = b"prompt\nhello there\nwhy?\n"
    assert_bytes(server.post("/predict/", data=body), 200, b'{"predictions":["HELLO THERE","WHY?"]}')
    # Values are not cast to float for these target types.
    numbers = b"prompt,numbers\na,1\nb,2\n"
    assert_bytes(server.post("/predict/", data=numbers), 200, b'{"predictions":[1,2]}')


def test_textgeneration_extra_output_uses_target_name(pool):
    server = pool("textgeneration", TEXT, "--target-type", "textgeneration", env={"TARGET_NAME": "completion"})
    expected = (
        b'{"predictions":["HI","YO"],'
        b'"extraModelOutput":{"columns":["tokens"],"index":[0,1],"data":[[1],[2]]}}'
    )
    assert_bytes(server.post("/predict/", data=b"prompt,tokens\nhi,1\nyo,2\n"), 200, expected)


def test_textgeneration_quoted_target_name(pool):
    env = {"TARGET_NAME": '"completion"'}
    server = pool("quoted", TEXT, "--target-type", "textgeneration", env=env, name="quoted")
    expected = b'{"predictions":["HI"],"extraModelOutput":{"columns":["tokens"],"index":[0],"data":[[3]]}}'
    assert_bytes(server.post("/predict/", data=b"prompt,tokens\nhi,3\n"), 200, expected)


def test_geopoint_keeps_strings(pool):
    server = pool("geopoint", GEOPOINT, "--target-type", "geopoint")
    expected = b'{"predictions":["POINT(1.5 2)","POINT(-3.0 4)"]}'
    assert_bytes(server.post("/predict/", data=b"lat,lon\n1.5,2\n-3,4\n"), 200, expected)


# --- drop-in sklearn artifacts -------------------------------------------------------------------


def _artifact(pool, artifacts, name, *args):
    def copy(code_dir):
        (code_dir / "model.pkl").write_bytes((artifacts / name / "model.pkl").read_bytes())

    return pool((name, *args), {}, *args, name=name, setup=copy)


def test_sklearn_regressor_artifact(pool, artifacts):
    server = _artifact(pool, artifacts, "regressor", "--target-type", "regression")
    assert_bytes(server.post("/predict/", data=b"x\n0\n3\n"), 200, b'{"predictions":[1.5,4.5]}')
    assert server.get("/info/").json()["predictor"] == "scikit-learn"


def test_sklearn_binary_artifact_uses_classes_order(pool, artifacts):
    server = _artifact(pool, artifacts, "binary", "--target-type", "binary", *LABELS)
    expected = b'{"predictions":[{"no":0.25,"yes":0.75},{"no":0.25,"yes":0.75}]}'
    assert_bytes(server.post("/predict/", data=b"x\n0\n1\n"), 200, expected)


def test_sklearn_multiclass_artifact_uses_classes_order(pool, artifacts):
    args = ("--target-type", "multiclass", "--class-labels", "c", "b", "a")
    server = _artifact(pool, artifacts, "multiclass", *args)
    expected = b'{"predictions":[{"a":0.0,"b":0.0,"c":1.0},{"a":1.0,"b":0.0,"c":0.0},{"a":0.0,"b":1.0,"c":0.0}]}'
    assert_bytes(server.post("/predict/", data=b"x\n0\n1\n2\n"), 200, expected)


def test_sklearn_binary_artifact_with_wrong_labels(pool, artifacts):
    args = ("--target-type", "binary", "--positive-class-label", "a", "--negative-class-label", "b")
    server = _artifact(pool, artifacts, "binary", *args)
    assert_error(
        server.post("/predict/", data=b"x\n0\n"),
        500,
        "ERROR: Expected predictions to have columns ['a', 'b'], but encountered [np.str_('no'), np.str_('yes')]",
    )


# --- label handling quirks -----------------------------------------------------------------------


def _no_labels(pool, width: int, post_process: bool = False):
    files = {"custom.py": NO_LABELS + (IDENTITY_POST_PROCESS if post_process else ""), "width.txt": str(width)}
    key = f"no-labels-{width}-{post_process}"
    return pool(key, files, "--target-type", "binary", *LABELS, name="nolabels")


def test_single_probability_column_is_the_negative_class(pool):
    """DRUM quirk: one column with two labels is the probability of the *last* request label (negative)."""
    server = _no_labels(pool, 1)
    assert_bytes(server.post("/predict/", data=b"x\n1\n"), 200, b'{"predictions":[{"yes":0.25,"no":0.75}]}')


def test_single_probability_column_with_post_process_is_the_positive_class(pool):
    """With a post_process hook the frame is marshalled with [negative, positive] first."""
    server = _no_labels(pool, 1, post_process=True)
    assert_bytes(server.post("/predict/", data=b"x\n1\n"), 200, b'{"predictions":[{"no":0.25,"yes":0.75}]}')


def test_two_columns_without_labels_are_positive_then_negative(pool):
    server = _no_labels(pool, 2)
    assert_bytes(server.post("/predict/", data=b"x\n1\n"), 200, b'{"predictions":[{"yes":0.75,"no":0.25}]}')


def test_wrong_number_of_columns_without_labels(pool):
    server = _no_labels(pool, 3)
    assert_error(
        server.post("/predict/", data=b"x\n1\n"),
        500,
        "ERROR: Your predictions must return the probability distribution for the correct number of class "
        "labels. Expected 2 columns, but received 3",
    )


def test_numeric_labels_match_numeric_model_columns(pool):
    files = {
        "custom.py": """
            import pandas as pd

            def load_model(code_dir):
                return "model"

            def score(data, model, **kwargs):
                return pd.DataFrame({0: [0.25] * len(data), 1: [0.75] * len(data)})
        """
    }
    args = ("--target-type", "binary", "--positive-class-label", "1.0", "--negative-class-label", "0")
    server = pool("numeric-labels", files, *args, name="numeric")
    assert_bytes(server.post("/predict/", data=b"x\n1\n"), 200, b'{"predictions":[{"0":0.25,"1.0":0.75}]}')


# --- classification validation errors → 500 -----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("negative", "ERROR: Your prediction probabilities have negative values"),
        ("above_one", "ERROR: Your prediction probabilities have values greater than 1"),
        (
            "wrong_labels",
            "ERROR: Expected predictions to have columns ['yes', 'no'], but encountered Index(['a', 'b'], dtype='str')",
        ),
        (
            "one_column",
            "ERROR: Expected predictions to have columns ['yes', 'no'], but encountered Index(['yes'], dtype='str')",
        ),
    ],
)
def test_classification_validation_errors(binary, column, message):
    assert_error(binary.post("/predict/", data=f"{column}\n1\n".encode()), 500, message)


def test_probabilities_must_sum_to_one(binary):
    assert_error(
        binary.post("/predict/", data=b"not_one\n1\n2\n"),
        500,
        "ERROR: Your prediction probabilities do not add up to 1. \n[[0.5 0.6]\n [0.5 0.6]]",
    )


def test_regression_with_two_columns_and_no_predictions_column(regression):
    response = regression.post("/predict/", data=b"two_columns\n1\n")
    assert_error(response, 500, "ERROR: \"['Predictions'] not found in axis\"")


def test_score_must_return_a_dataframe(regression):
    assert_error(
        regression.post("/predict/", data=b"not_a_frame\n1\n"),
        500,
        "ERROR: score must return a dataframe, but received <class 'list'>",
    )


# --- reading the request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "", "text/csv", "text/plain", "text/csv; charset=utf-8", "text/csv; charset=latin-1"]
)
def test_raw_csv_body_with_csv_like_content_types(regression, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = regression.post("/predict/", data=b"x\n4\n5\n", headers=headers)
    assert_bytes(response, 200, b'{"predictions":[4.0,5.0]}')


def test_multipart_csv_file(regression):
    files = {"X": ("data.csv", b"x\n7\n8\n")}
    assert_bytes(regression.post("/predict/", files=files), 200, b'{"predictions":[7.0,8.0]}')


def test_multipart_file_with_any_extension_is_csv(regression):
    files = {"X": ("data.json", b"x\n7\n")}
    assert_bytes(regression.post("/predict/", files=files), 200, b'{"predictions":[7.0]}')


def _mtx(matrix) -> bytes:
    import scipy.io
    import scipy.sparse

    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, scipy.sparse.csr_matrix(np.array(matrix, dtype=float)))
    return buffer.getvalue()


def test_multipart_mtx_with_colnames(regression):
    files = {"X": ("X.mtx", _mtx([[1, 0], [0, 2], [3, 0]])), "X.colnames": ("X.colnames", b"x\nkwargs\n")}
    response = regression.post("/predict/", files=files)
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["predictions"] == [1.0, 0.0, 3.0]
    described = json.loads(body["extraModelOutput"]["data"][0][0])
    assert described["_columns"] == ["x", "kwargs"]
    assert described["_sparse"] is True
    assert described["mimetype"] == "text/mtx"
    assert described["sparse_colnames"] == ["x", "kwargs"]
    assert described["charset"] is None


def test_multipart_mtx_without_colnames(regression):
    files = {"X": ("matrix.mtx", _mtx([[1, 0], [0, 2], [3, 0]]))}
    assert_bytes(regression.post("/predict/", files=files), 200, b'{"predictions":[1.0,1.0,1.0]}')


def test_mtx_extension_is_case_sensitive(regression):
    files = {"X": ("matrix.MTX", _mtx([[1, 0], [0, 2], [3, 0]]))}
    assert_bytes(regression.post("/predict/", files=files), 200, b'{"predictions":[1.0,1.0,1.0,1.0,1.0]}')


def test_mtx_file_name_decides_the_format(regression):
    """A multipart file not named *.mtx is read as CSV: the 5 text lines after the header are rows."""
    files = {"X": ("data.csv", _mtx([[1, 0], [0, 2], [3, 0]]))}
    assert_bytes(regression.post("/predict/", files=files), 200, b'{"predictions":[1.0,1.0,1.0,1.0,1.0]}')


def test_raw_mtx_body(regression):
    response = regression.post("/predict/", data=_mtx([[1, 0], [0, 2], [3, 0]]), headers={"Content-Type": "text/mtx"})
    assert_bytes(response, 200, b'{"predictions":[1.0,1.0,1.0]}')


def test_single_column_csv_keeps_blank_lines_as_nan_rows(regression):
    assert_bytes(regression.post("/predict/", data=b"x\n1\n\n2\n"), 200, b'{"predictions":[1.0,null,2.0]}')


def test_csv_without_trailing_newline(regression):
    assert_bytes(regression.post("/predict/", data=b"x\n1\n2"), 200, b'{"predictions":[1.0,2.0]}')


@ours_only
def test_csv_without_columns_is_422(regression):
    assert_error(regression.post("/predict/", data=b"\n"), 422, "ERROR: No columns to parse from file")


def test_content_type_is_case_sensitive(regression):
    """DRUM compares the mimetype as sent: `TEXT/CSV` is not `text/csv`."""
    response = regression.post("/predict/", data=b"x\n1\n", headers={"Content-Type": "TEXT/CSV"})
    assert_error(response, 422, unsupported_payload("TEXT/CSV"))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"data": b""}, "empty body"),
        ({"data": b"", "headers": {"Content-Type": "text/csv"}}, "empty csv"),
        ({"data": {"x": "1"}}, "form-urlencoded"),
        ({"data": b"x=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, "form header"),
        ({"files": {"X.csv": ("X.csv", b"x\n1\n")}}, "other field name"),
        ({"files": {"X": (None, b"x\n1\n")}}, "form field without filename"),
        ({"files": {"y": ("y.csv", b"x\n1\n")}}, "only y"),
    ],
)
def test_missing_samples_is_422(regression, kwargs, name):
    assert_error(regression.post("/predict/", **kwargs), 422, SAMPLES_MISSING)


@pytest.mark.parametrize(
    "mimetype", ["application/json", "application/x-apache-arrow-stream", "application/octet-stream", "image/png"]
)
def test_unsupported_content_type_is_422(regression, mimetype):
    response = regression.post("/predict/", data=b'{"x": [1]}', headers={"Content-Type": mimetype})
    assert_error(response, 422, unsupported_payload(mimetype))


def test_unsupported_content_type_keeps_parameters_out_of_the_message(regression):
    response = regression.post("/predict/", data=b"{}", headers={"Content-Type": "application/json; charset=utf-8"})
    assert_error(response, 422, unsupported_payload("application/json"))


@ours_only
def test_empty_multipart_file_is_422(regression):
    assert_error(
        regression.post("/predict/", files={"X": ("x.csv", b"")}), 422, "ERROR: No columns to parse from file"
    )


def test_multipart_without_boundary_is_an_unsupported_payload(regression):
    response = regression.post("/predict/", data=b"x\n1\n", headers={"Content-Type": "multipart/form-data"})
    assert_error(response, 422, unsupported_payload("multipart/form-data"))


def test_broken_multipart_has_no_samples(regression):
    headers = {"Content-Type": "multipart/form-data; boundary=xx"}
    assert_error(regression.post("/predict/", data=b"--xx\r\nbroken", headers=headers), 422, SAMPLES_MISSING)


@ours_only
def test_unreadable_payloads_are_422_with_a_short_excerpt(regression):
    """Decided deviation: DRUM answers 500 to a payload it cannot read; the client's error is a 4xx, and a
    large unreadable body is quoted only in part (DRUM echoed it whole, in the answer and the log)."""
    not_utf8 = regression.post("/predict/", data=b"x\n\xff\xfe\n")
    assert_error(not_utf8, 422, "ERROR: Supplied CSV input file encoding must be UTF-8.")
    assert_error(
        regression.post("/predict/", data=b"x,y\n3,1\n4\n5,1,2\n"),
        422,
        "ERROR: Pandas failed to read input binary data b'x,y\\n3,1\\n4\\n5,1,2\\n'",
    )
    ragged = b"x,y\n" + b"3,1\n" * 200_000 + b"5,1,2\n"
    response = regression.post("/predict/", data=ragged)
    assert response.status_code == 422 and len(response.content) < 1000
    assert response.json()["message"].endswith(f"... ({len(ragged)} bytes)")
    mtx = regression.post("/predict/", data=b"garbage\x00\xff", headers={"Content-Type": "text/mtx"})
    assert mtx.status_code == 422 and mtx.json()["message"].startswith("ERROR: Failed to read Matrix Market input")


# --- score kwargs --------------------------------------------------------------------------------


def _kwargs(response) -> dict:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["extraModelOutput"]["data"][0][-1])


def test_score_kwargs_regression(regression):
    body = b"x,kwargs\n1,k\n"
    described = _kwargs(regression.post("/predict/", data=body, headers={"Content-Type": "text/csv; charset=utf-8"}))
    assert described == {
        "_columns": ["x", "kwargs"],
        "_sparse": False,
        "binary_data": "x,kwargs\n1,k\n",
        "charset": "utf-8",
        "mimetype": "text/csv",
        "sparse_colnames": None,
        "target_type": ["TargetType", "regression", "TargetType.REGRESSION"],
    }


def test_score_kwargs_without_content_type(regression):
    described = _kwargs(regression.post("/predict/", data=b"kwargs\n1\n"))
    assert (described["mimetype"], described["charset"]) == ("", None)


def test_score_kwargs_multipart(regression):
    described = _kwargs(regression.post("/predict/", files={"X": ("x.csv", b"kwargs\n1\n")}))
    assert (described["mimetype"], described["charset"], described["binary_data"]) == (None, None, "kwargs\n1\n")


def test_score_kwargs_binary(binary):
    described = _kwargs(binary.post("/predict/", data=b"kwargs\n1\n", headers={"Content-Type": "text/plain"}))
    assert described == {
        "_columns": ["kwargs"],
        "_sparse": False,
        "binary_data": "kwargs\n1\n",
        "charset": None,
        "mimetype": "text/plain",
        "negative_class_label": "no",
        "positive_class_label": "yes",
        "sparse_colnames": None,
        "target_type": ["TargetType", "binary", "TargetType.BINARY"],
    }


def test_score_kwargs_multiclass(multiclass):
    described = _kwargs(multiclass.post("/predict/", data=b"kwargs\n1\n", headers={"Content-Type": "text/csv"}))
    assert described["class_labels"] == ["a", "b", "c"]
    assert described["target_type"] == ["TargetType", "multiclass", "TargetType.MULTICLASS"]
    assert "positive_class_label" not in described and "negative_class_label" not in described


# --- hooks ---------------------------------------------------------------------------------------


def test_full_hook_pipeline(hooks):
    # read_input_data → transform (x2) → score (+1) → post_process (x10)
    assert_bytes(hooks.post("/predict/", data=b"x\n1\n2\n"), 200, b'{"predictions":[30.0,50.0]}')


def test_read_input_data_accepts_any_content_type(hooks):
    for content_type in ("application/json", "application/x-anything", "text/csv"):
        response = hooks.post("/predict/", data=b'{"x": [1, 2]}', headers={"Content-Type": content_type})
        assert_bytes(response, 200, b'{"predictions":[30.0,50.0]}')


def test_read_input_data_used_for_multipart(hooks):
    response = hooks.post("/predict/", files={"X": ("data.json", b'{"x": [3]}')})
    assert_bytes(response, 200, b'{"predictions":[70.0]}')


def test_init_hook_gets_code_dir(hooks):
    response = hooks.post("/predict/", data=b"x,init\n1,1\n")
    assert response.status_code == 200, response.text
    state = json.loads(response.json()["extraModelOutput"]["data"][0][0])
    assert state["init"] == ["code_dir"] and state["same_dir"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"bad",
            "ERROR: Model 'read_input_data' hook failed to read input data. Exception: ValueError('bad input')",
        ),
        (
            b"x,fail_transform\n1,1\n",
            "ERROR: Model 'transform hook' failed to transform dataset. Exception: KeyError('nope')",
        ),
        (
            b"x,fail_post\n1,1\n",
            "ERROR: Model 'post_process' hook failed to post-process predictions. "
            "Exception: RuntimeError('post failed')",
        ),
        (b"x,post_list\n1,1\n", "ERROR: Output of post_process hook must be a dataframe, not a <class 'list'>"),
        (b"x,transform_list\n1,1\n", "ERROR: transform must return a dataframe, but received <class 'list'>"),
    ],
)
def test_hook_failures(hooks, body, message):
    assert_error(hooks.post("/predict/", data=body), 500, message)


def test_score_hook_exception_is_500(regression):
    assert_error(
        regression.post("/predict/", data=b"boom\n1\n"),
        500,
        "ERROR: Model 'score' hook failed to make predictions. Exception: ValueError('boom')",
    )


def test_custom_http_error_keeps_status_and_message(regression):
    response = regression.post("/predict/", data=b"teapot\n1\n")
    assert_error(response, 418, "short and stout")
    assert response.headers["X-Drum-User-Http-Error"] == "true"


def test_custom_http_error_defaults_to_400(regression):
    response = regression.post("/invocations", data=b"http_default\n1\n")
    assert_error(response, 400, "bad input")
    assert response.headers["X-Drum-User-Http-Error"] == "true"


def test_ordinary_errors_have_no_user_error_header(regression):
    response = regression.post("/predict/", data=b"boom\n1\n")
    assert "X-Drum-User-Http-Error" not in response.headers


# --- target-type gates ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predict/", "/predictions/", "/invocations"])
def test_transform_model_on_predict_routes(pool, path):
    server = pool("transform", TRANSFORM, "--target-type", "transform", name="transform")
    assert_error(
        server.post(path, data=CSV),
        422,
        "ERROR: This model has target type 'transform', use the /transform/ endpoint.",
    )


@pytest.mark.parametrize("path", ["/predict/", "/predictions/", "/invocations"])
def test_unstructured_model_on_predict_routes(pool, path):
    server = pool("unstructured", UNSTRUCTURED, "--target-type", "unstructured", name="unstructured")
    assert_error(
        server.post(path, data=CSV),
        422,
        "ERROR: This model has target type 'unstructured', use the /predictUnstructured/ or "
        "/predictionsUnstructured/ endpoint.",
    )


def test_gate_comes_before_reading_the_body(pool):
    server = pool("transform", TRANSFORM, "--target-type", "transform", name="transform")
    assert_error(
        server.post("/predict/", data=b""),
        422,
        "ERROR: This model has target type 'transform', use the /transform/ endpoint.",
    )


# --- runtime parameters --------------------------------------------------------------------------


def _params(response) -> list[list]:
    assert response.status_code == 200, response.text
    return response.json()["extraModelOutput"]["data"]


def test_runtime_parameters_from_env(regression):
    body = b"param\nGREETING\nCOUNT\nENABLED\nSECRET\n"
    assert _params(regression.post("/predict/", data=body)) == [
        ['"hello"', True],
        ["5", True],
        ["true", True],
        ['{"credentialType": "basic", "user": "u"}', True],
    ]


def test_numeric_runtime_parameter_is_not_coerced(regression):
    assert _params(regression.post("/predict/", data=b"param\nRATIO\n")) == [['"5.5"', True]]


def test_runtime_parameter_with_invalid_json(regression):
    assert_error(
        regression.post("/predict/", data=b"param\nBAD_JSON\n"),
        500,
        "ERROR: Model 'score' hook failed to make predictions. "
        "Exception: InvalidJsonException('Invalid runtime parameter json payload. payload={not json')",
    )


def test_runtime_parameter_failing_its_schema(regression):
    response = regression.post("/predict/", data=b"param\nBOOL_STRING\n")
    assert response.status_code == 500
    assert response.json()["message"].startswith(
        "ERROR: Model 'score' hook failed to make predictions. Exception: InvalidRuntimeParam('Invalid runtime "
        "parameter! env_value={\\'type\\': \\'boolean\\', \\'payload\\': \\'true\\'}, exception: "
    )


def test_missing_runtime_parameter(regression):
    assert_error(
        regression.post("/predict/", data=b"get_missing\n1\n"),
        500,
        "ERROR: Model 'score' hook failed to make predictions. "
        "Exception: ValueError(\"Runtime parameter 'NOPE' does not exist!\")",
    )


RUNTIME_METADATA = """
    name: params
    type: inference
    targetType: regression
    runtimeParameterDefinitions:
      - fieldName: GREETING
        type: string
        defaultValue: default greeting
      - fieldName: COUNT
        type: numeric
        defaultValue: 3
        minValue: 0
        maxValue: 100
      - fieldName: ENABLED
        type: boolean
      - fieldName: UNSET
        type: string
"""


def test_runtime_params_file(pool, tmp_path_factory):
    values = tmp_path_factory.mktemp("values") / "values.yaml"
    values.write_text("GREETING: from file\nENABLED: true\nUNDEFINED: ignored\n")
    files = {**REGRESSION, "model-metadata.yaml": RUNTIME_METADATA}
    server = pool("params-file", files, "--runtime-params-file", str(values), name="params")
    body = b"param\nGREETING\nCOUNT\nENABLED\nUNSET\nUNDEFINED\n"
    assert _params(server.post("/predict/", data=body)) == [
        ['"from file"', True],
        ["3", True],
        ["true", True],
        ["null", True],
        ["-", False],
    ]
