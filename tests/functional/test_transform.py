"""`/transform/` (spec §2.4): hooks with 2 and 3 arguments, `y`, the multipart response, sparse output."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from support import SAMPLES_MISSING, assert_error, parse_multipart, server_pool, unsupported_payload

TWO_ARGS = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def transform(data, model):
            n = len(data)
            columns = set(data.columns)
            if "tuple" in columns:
                return data, data
            if "fewer_rows" in columns:
                return data.iloc[:1]
            if "fail" in columns:
                raise ValueError("bad")
            if "series" in columns:
                return data["series"]
            if "names" in columns:
                return pd.DataFrame({" padded ": [1] * n, "multi\\nline": [2] * n})
            if "blank" in columns:
                return pd.DataFrame({"ok": [1] * n, "  ": [2] * n})
            if "sparse_in" in columns:
                return pd.DataFrame({"sparse": [str(any(isinstance(d, pd.SparseDtype) for d in data.dtypes))] * n})
            if "text" in columns:
                return data
            return data * 2
    """
}

THREE_ARGS = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def transform(data, model, y):
            out = data.copy()
            out["y"] = "none" if y is None else ",".join(str(v) for v in y.iloc[:, 0])
            return out
    """
}

CSV = b"a,b\n1,2\n3,4\n"


def _sklearn(code_dir, which: str) -> None:
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if which == "sparse":
        model = OneHotEncoder(sparse_output=True).fit(np.array([["a"], ["b"], ["c"]]))
    else:
        model = StandardScaler().fit(np.array([[0.0, 10.0], [2.0, 30.0]]))
    with open(code_dir / "transformer.pkl", "wb") as f:
        pickle.dump(model, f)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture
def two_args(pool):
    return pool("two", TWO_ARGS, "--target-type", "transform", name="two")


@pytest.fixture
def three_args(pool):
    return pool("three", THREE_ARGS, "--target-type", "transform", name="three")


def _csv_parts(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    return parse_multipart(response)


def test_two_argument_hook_csv_response(two_args):
    parts = _csv_parts(two_args.post("/transform/", data=CSV))
    assert list(parts) == ["X.format", "X.transformed"]
    assert parts["X.format"] == (b"csv", {"content-disposition": 'form-data; name="X.format"'})
    payload, headers = parts["X.transformed"]
    assert payload == b"a,b\r\n2,4\r\n6,8"  # CRLF line endings, no trailing newline
    assert headers == {
        "content-disposition": 'form-data; name="X.transformed"; filename="X.transformed"',
        "content-type": "application/octet-stream",
    }


def test_transform_without_trailing_slash(two_args):
    assert _csv_parts(two_args.post("/transform", data=CSV))["X.transformed"][0] == b"a,b\r\n2,4\r\n6,8"


def test_multipart_x_file(two_args):
    parts = _csv_parts(two_args.post("/transform/", files={"X": ("X.csv", b"v\n5\n")}))
    assert parts["X.transformed"][0] == b"v\r\n10"


def test_two_argument_hook_echoes_y(two_args):
    files = {"X": ("X.csv", CSV), "y": ("y.csv", b"target\n0\n1\n")}
    parts = _csv_parts(two_args.post("/transform/", files=files))
    assert list(parts) == ["X.format", "X.transformed", "y.format", "y.transformed"]
    assert parts["X.transformed"][0] == b"a,b\r\n2,4\r\n6,8"
    assert parts["y.format"][0] == b"csv"
    assert parts["y.transformed"] == (
        b"target\r\n0\r\n1",
        {
            "content-disposition": 'form-data; name="y.transformed"; filename="y.transformed"',
            "content-type": "application/octet-stream",
        },
    )


def test_three_argument_hook_receives_y(three_args):
    files = {"X": ("X.csv", CSV), "y": ("y.csv", b"target\n7\n8\n")}
    parts = _csv_parts(three_args.post("/transform/", files=files))
    assert parts["X.transformed"][0] == b'a,b,y\r\n1,2,"7,8"\r\n3,4,"7,8"'
    assert parts["y.transformed"][0] == b"target\r\n7\r\n8"


def test_three_argument_hook_without_y(three_args):
    parts = _csv_parts(three_args.post("/transform/", data=CSV))
    assert list(parts) == ["X.format", "X.transformed"]
    assert parts["X.transformed"][0] == b"a,b,y\r\n1,2,none\r\n3,4,none"


def test_strings_are_quoted_like_pandas(two_args):
    body = b'text,n\n"hello, world",1\nplain,2\n'
    parts = _csv_parts(two_args.post("/transform/", data=body))
    assert parts["X.transformed"][0] == b'text,n\r\n"hello, world",1\r\nplain,2'


def test_column_names_are_stripped_and_newlines_escaped(two_args):
    parts = _csv_parts(two_args.post("/transform/", data=b"names\n1\n"))
    assert parts["X.transformed"][0] == b"padded,multi\\nline\r\n1,2"


def test_blank_column_name_is_rejected(two_args):
    assert_error(
        two_args.post("/transform/", data=b"blank\n1\n"),
        500,
        "ERROR: Column name serialization check failed, deserializing column names resulted in 1, expected 2\n"
        "Ensure there are no column names made up entirely of whitespace",
    )


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            "tuple",
            "ERROR: Model 'transform hook' failed to transform dataset. "
            "Exception: DrumTransformException('Transformation of the target variable is not supported by DRUM.')",
        ),
        ("fail", "ERROR: Model 'transform hook' failed to transform dataset. Exception: ValueError('bad')"),
        ("fewer_rows", "ERROR: Transformation resulted in different number of rows than original data"),
        ("series", "ERROR: transform must return a dataframe, but received <class 'pandas.Series'>"),
    ],
)
def test_transform_hook_errors(two_args, column, message):
    assert_error(two_args.post("/transform/", data=f"{column}\n1\n2\n".encode()), 500, message)


def test_missing_samples(two_args):
    assert_error(two_args.post("/transform/", data=b""), 422, SAMPLES_MISSING)
    assert_error(two_args.post("/transform/", files={"y": ("y.csv", b"t\n1\n")}), 422, SAMPLES_MISSING)


def test_unsupported_content_type(two_args):
    response = two_args.post("/transform/", data=b"{}", headers={"Content-Type": "application/json"})
    assert_error(response, 422, unsupported_payload("application/json"))


def _mtx(matrix) -> bytes:
    import scipy.io
    import scipy.sparse

    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, scipy.sparse.csr_matrix(np.array(matrix, dtype=float)))
    return buffer.getvalue()


def test_sparse_input_reaches_the_hook_as_sparse_frame(two_args):
    files = {"X": ("X.mtx", _mtx([[1, 0], [0, 2]])), "X.colnames": ("X.colnames", b"sparse_in\nother\n")}
    parts = _csv_parts(two_args.post("/transform/", files=files))
    assert parts["X.transformed"][0] == b"sparse\r\nTrue\r\nTrue"


# --- sklearn transformers without a transform hook -----------------------------------------------


def test_sklearn_dense_transformer_without_hook(pool):
    server = pool("dense", {}, "--target-type", "transform", name="dense", setup=lambda d: _sklearn(d, "dense"))
    parts = _csv_parts(server.post("/transform/", data=b"a,b\n0,10\n2,30\n"))
    assert parts["X.format"][0] == b"csv"
    assert parts["X.transformed"][0] == b"0,1\r\n-1.0,-1.0\r\n1.0,1.0"


def test_sklearn_sparse_transformer_without_hook(pool):
    import scipy.io

    server = pool("sparse", {}, "--target-type", "transform", name="sparse", setup=lambda d: _sklearn(d, "sparse"))
    parts = _csv_parts(server.post("/transform/", data=b"letter\nb\na\nc\nb\n"))
    assert list(parts) == ["X.format", "X.transformed", "X.colnames"]
    assert parts["X.format"][0] == b"sparse"
    payload, headers = parts["X.transformed"]
    assert headers["content-type"] == "application/octet-stream"
    assert payload.startswith(b"%%MatrixMarket matrix coordinate")
    matrix = scipy.io.mmread(io.BytesIO(payload)).toarray()
    np.testing.assert_array_equal(matrix, [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert parts["X.colnames"] == (
        b"0\n1\n2",
        {
            "content-disposition": 'form-data; name="X.colnames"; filename="X.colnames"',
            "content-type": "application/octet-stream",
        },
    )


def test_sklearn_sparse_transformer_echoes_y(pool):
    server = pool("sparse", {}, "--target-type", "transform", name="sparse", setup=lambda d: _sklearn(d, "sparse"))
    files = {"X": ("X.csv", b"letter\na\nc\n"), "y": ("y.csv", b"t\n1\n0\n")}
    parts = _csv_parts(server.post("/transform/", files=files))
    assert list(parts) == ["X.format", "X.transformed", "X.colnames", "y.format", "y.transformed"]
    assert parts["y.transformed"][0] == b"t\r\n1\r\n0"


# --- wrong endpoint ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predictUnstructured/", "/predictionsUnstructured/"])
def test_transform_model_on_unstructured_routes(two_args, path):
    assert_error(
        two_args.post(path, data=b"x"),
        422,
        "ERROR: This model has target type TargetType.TRANSFORM, use either /predict/ or /predictions/ endpoint.",
    )


REGRESSION = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "model"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1.0] * len(data)})

        def score_unstructured(model, data, **kwargs):
            return "unstructured"
    """
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--target-type", "regression"),
            "ERROR: This model has target type TargetType.REGRESSION, use the /predict/ endpoint.",
        ),
        (
            ("--target-type", "binary", "--positive-class-label", "1", "--negative-class-label", "0"),
            "ERROR: This model has target type TargetType.BINARY, use the /predict/ endpoint.",
        ),
        (
            ("--target-type", "unstructured"),
            "ERROR: This model has target type TargetType.UNSTRUCTURED, use the /predictUnstructured/ endpoint.",
        ),
    ],
    ids=["regression", "binary", "unstructured"],
)
def test_transform_route_on_other_target_types(pool, args, message):
    server = pool(args, REGRESSION, *args, name="other")
    assert_error(server.post("/transform/", data=CSV), 422, message)
    # The gate answers before the request data is looked at.
    assert_error(server.post("/transform/", data=b""), 422, message)


SCHEMA_METADATA = """
    name: schema
    type: training
    targetType: transform
    typeSchema:
      output_requirements:
        - field: number_of_columns
          condition: EQUALS
          value: 5
"""


@pytest.fixture
def schema(pool):
    files = {**TWO_ARGS, "model-metadata.yaml": SCHEMA_METADATA}
    return pool("schema", files, name="schema")  # target type from model-metadata.yaml


def test_output_schema_violation_is_422(schema):
    response = schema.post("/transform/", data=CSV)
    assert (response.status_code, response.headers["Content-Type"]) == (422, "application/json")
    assert response.json() == {
        "is_schema_validation_error": True,
        "message": "ERROR: schema validation failed for output:\n ['Incorrect number of columns. 2 received. "
        "However, the schema dictates that number of columns should be EQUALS 5']",
    }
    assert response.content.startswith(b'{"is_schema_validation_error":true,"message":')


def test_output_schema_satisfied(schema):
    parts = _csv_parts(schema.post("/transform/", data=b"a,b,c,d,e\n1,2,3,4,5\n"))
    assert parts["X.transformed"][0] == b"a,b,c,d,e\r\n2,4,6,8,10"
