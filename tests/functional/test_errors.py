"""Start-up failures (spec §1.5, §2.10): the error server, exits with DRUM's messages, and `drum score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    assert_error,
    ours_only,
    run_drum,
    serve,
    start_server,
    wait_for_exit,
    write_model,
)

FAILING = {
    "custom.py": """
        def load_model(code_dir):
            raise ValueError("cannot load")


        def score(data, model, **kwargs):
            raise AssertionError("never called")
    """
}
LOAD_ERROR = (
    "ERROR: An error occurred when loading your artifact: 'load_model' hook failed to load the model. "
    "Exception: ValueError('cannot load')"
)
ERROR_SERVER_GET = ["/", "/ping/", "/ping", "/health/"]
ERROR_SERVER_POST = [
    "/predict/",
    "/predictions/",
    "/invocations",
    "/transform/",
    "/predictUnstructured/",
    "/predictionsUnstructured/",
]


@pytest.fixture(scope="module")
def error_server(tmp_path_factory):
    args = ("--target-type", "regression", "--with-error-server")
    with serve(tmp_path_factory, FAILING, *args, name="error") as server:
        yield server


@pytest.mark.parametrize("path", ERROR_SERVER_GET)
def test_error_server_get_routes_answer_513(error_server, path):
    assert_error(error_server.get(path), 513, LOAD_ERROR)


@pytest.mark.parametrize("path", ERROR_SERVER_POST)
def test_error_server_post_routes_answer_513(error_server, path):
    assert_error(error_server.post(path, data=b"a\n1\n"), 513, LOAD_ERROR)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/info/"),
        ("GET", "/capabilities/"),
        ("GET", "/stats/"),
        ("GET", "/models"),
        ("GET", "/v1/models"),
        ("POST", "/chat/completions"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/directAccess/x"),
    ],
)
def test_error_server_other_routes_are_404(error_server, method, path):
    response = error_server.request(method, path, json={})
    assert response.status_code == 404
    assert response.headers["X-Drum-Version"] == "1.18.1"


@ours_only
@pytest.mark.parametrize(("method", "path"), [("GET", "/info/"), ("POST", "/chat/completions"), ("GET", "/nope")])
def test_error_server_404_body(error_server, method, path):
    assert_error(error_server.request(method, path, json={}), 404, NOT_FOUND)


@ours_only
def test_error_server_slash_variants_and_wrong_method(error_server):
    assert_error(error_server.get("/health", allow_redirects=False), 513, LOAD_ERROR)
    assert_error(error_server.post("/predict", data=b"a\n1\n", allow_redirects=False), 513, LOAD_ERROR)
    response = error_server.get("/predict/")
    assert_error(response, 405, METHOD_NOT_ALLOWED)
    assert "POST" in response.headers["Allow"]


def test_error_server_from_env(tmp_path):
    code_dir = write_model(tmp_path / "code", FAILING)
    env = {"WITH_ERROR_SERVER": "1"}
    server = start_server(code_dir, ["--target-type", "regression"], tmp_path / "log", env=env)
    try:
        assert_error(server.get("/ping/"), 513, LOAD_ERROR)
    finally:
        server.stop()


def test_error_server_with_import_error(tmp_path):
    code_dir = write_model(tmp_path / "code", {"custom.py": "import nonexistent_module_xyz\n"})
    args = ["--target-type", "regression", "--with-error-server"]
    server = start_server(code_dir, args, tmp_path / "log")
    try:
        assert_error(
            server.post("/predict/", data=b"a\n1\n"),
            513,
            "ERROR: \n\nRunning environment language: Python.\nFailed loading hooks from "
            f"[{code_dir.resolve() / 'custom.py'}] : No module named 'nonexistent_module_xyz'",
        )
    finally:
        server.stop()


def test_load_failure_without_error_server_exits(tmp_path):
    code_dir = write_model(tmp_path / "code", FAILING)
    server = start_server(code_dir, ["--target-type", "regression"], tmp_path / "log", wait=False)
    assert wait_for_exit(server) != 0
    assert "'load_model' hook failed to load the model. Exception: ValueError('cannot load')" in server.log()


def test_load_failure_reported_on_stderr(tmp_path):
    code_dir = write_model(tmp_path / "code", FAILING)
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", "--target-type", "regression")
    assert result.returncode == 1
    assert (
        "An error occurred when loading your artifact: 'load_model' hook failed to load the model. "
        "Exception: ValueError('cannot load')"
    ) in result.stderr


# --- option validation ---------------------------------------------------------------------------

SCORE = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1] * len(data)})
    """
}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            [],
            {},
            "Target type is missing. It must be provided in --target-type argument, TARGET_TYPE env var or model "
            "config file.",
        ),
        (
            ["--target-type", "binary"],
            {},
            "Positive/negative class labels are missing. They must be provided with either one: "
            "--positive-class-label/--negative-class-label arguments, environment variables, model config file.",
        ),
        (
            ["--target-type", "multiclass"],
            {},
            "Class labels are missing. They must be provided with either one: --class-labels/--class-labels-file "
            "arguments, environment variables, model config file.",
        ),
        (
            ["--target-type", "multilabel"],
            {},
            "Class labels are missing. They must be provided with either one: --class-labels/--class-labels-file "
            "arguments, environment variables, model config file.",
        ),
        (
            ["--target-type", "textgeneration"],
            {},
            "Unexpected empty target name for text generation, vector database, or agentic workflow target.",
        ),
        (
            [],
            {"TARGET_TYPE": "agenticworkflow"},
            "Unexpected empty target name for text generation, vector database, or agentic workflow target.",
        ),
    ],
    ids=["no-target-type", "binary-no-labels", "multiclass-no-labels", "multilabel-no-labels", "textgen", "agentic"],
)
def test_server_refuses_to_start(tmp_path, args, env, message):
    code_dir = write_model(tmp_path / "code", SCORE)
    env = {"TARGET_TYPE": "", "TARGET_NAME": "", **env}
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", *args, env=env)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr


def test_one_binary_label_is_an_argument_error(tmp_path):
    code_dir = write_model(tmp_path / "code", SCORE)
    args = ["--target-type", "binary", "--positive-class-label", "a"]
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", *args)
    assert result.returncode == 2
    assert "Error - for binary classification case, both positive and negative class labels have to be provided." in (
        result.stderr
    )


# --- drum score ----------------------------------------------------------------------------------

BINARY = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            n = len(data)
            return pd.DataFrame({"yes": [0.75] * n, "no": [0.25] * n, "extra": ["e"] * n})
    """
}
UNSTRUCTURED = {
    "custom.py": """
        import json


        def load_model(code_dir):
            return "model"


        def score_unstructured(model, data, **kwargs):
            query = kwargs["query"]
            if query.get("ret") == "bytes":
                return b"\\x00bytes"
            if query.get("ret") == "none":
                return None
            if query.get("ret") == "latin":
                return "caf\\u00e9", {"charset": "latin-1"}
            described = {k: v for k, v in kwargs.items() if k != "query"}
            described["query"] = [type(query).__name__, query]
            shown = data if isinstance(data, str) else repr(data)
            return json.dumps({"data": shown, "kwargs": described}, sort_keys=True)
    """
}
TRANSFORM = {
    "custom.py": """
        def load_model(code_dir):
            return "model"


        def transform(data, model):
            return data * 2
    """
}
INPUT = "a,b\n1,2\n3,4\n"


@pytest.fixture
def input_csv(tmp_path) -> Path:
    path = tmp_path / "input.csv"
    path.write_text(INPUT)
    return path


def _score(tmp_path, files, input_csv, *args, output: bool = True):
    code_dir = write_model(tmp_path / "code", files)
    out = tmp_path / "out.csv"
    extra = ["--output", str(out)] if output else []
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(input_csv), *args, *extra)
    assert result.returncode == 0, result.stderr
    return (out.read_bytes() if output else None), result


def test_score_regression_to_file(tmp_path, input_csv):
    written, _ = _score(tmp_path, SCORE, input_csv, "--target-type", "regression")
    assert written == b"Predictions\n1\n1\n"


def test_score_regression_to_stdout(tmp_path, input_csv):
    _, result = _score(tmp_path, SCORE, input_csv, "--target-type", "regression", output=False)
    assert result.stdout == "   Predictions\n0            1\n1            1\n"


def test_score_binary_to_file(tmp_path, input_csv):
    args = ("--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no")
    written, _ = _score(tmp_path, BINARY, input_csv, *args)
    assert written == b"yes,no,extra\n0.75,0.25,e\n0.75,0.25,e\n"


def test_score_binary_to_stdout(tmp_path, input_csv):
    args = ("--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no")
    _, result = _score(tmp_path, BINARY, input_csv, *args, output=False)
    assert result.stdout == "    yes    no extra\n0  0.75  0.25     e\n1  0.75  0.25     e\n"


def test_score_unstructured_to_file(tmp_path, input_csv):
    args = ("--target-type", "unstructured", "--query", "a=1&a=2&b=x")
    written, _ = _score(tmp_path, UNSTRUCTURED, input_csv, *args)
    assert json.loads(written) == {
        "data": INPUT,
        "kwargs": {"charset": "utf8", "mimetype": "text/plain", "query": ["dict", {"a": "2", "b": "x"}]},
    }


def test_score_unstructured_binary_content_type_to_stdout(tmp_path, input_csv):
    args = ("--target-type", "unstructured", "--content-type", "application/octet-stream")
    _, result = _score(tmp_path, UNSTRUCTURED, input_csv, *args, output=False)
    assert json.loads(result.stdout) == {
        "data": repr(INPUT.encode()),
        "kwargs": {"mimetype": "application/octet-stream", "query": ["dict", {}]},
    }


def test_score_unstructured_bytes_and_none(tmp_path, input_csv):
    written, _ = _score(tmp_path, UNSTRUCTURED, input_csv, "--target-type", "unstructured", "--query", "ret=bytes")
    assert written == b"\x00bytes"
    written, _ = _score(tmp_path, UNSTRUCTURED, input_csv, "--target-type", "unstructured", "--query", "ret=none")
    assert written == b"Return value from prediction is: None (NULL in R)"


def test_score_unstructured_returned_charset(tmp_path, input_csv):
    written, _ = _score(tmp_path, UNSTRUCTURED, input_csv, "--target-type", "unstructured", "--query", "ret=latin")
    assert written == "café".encode("latin-1")


def test_score_transform_to_file(tmp_path, input_csv):
    written, _ = _score(tmp_path, TRANSFORM, input_csv, "--target-type", "transform")
    assert written == b"a,b\n2,4\n6,8\n"


def test_score_transform_to_stdout(tmp_path, input_csv):
    _, result = _score(tmp_path, TRANSFORM, input_csv, "--target-type", "transform", output=False)
    assert result.stdout == "   a  b\n0  2  4\n1  6  8\n"


def test_score_query_only_for_unstructured(tmp_path, input_csv):
    code_dir = write_model(tmp_path / "code", SCORE)
    args = ("--target-type", "regression", "--query", "a=1")
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(input_csv), *args)
    assert result.returncode == 1
    assert "--query argument can be used only with --target-type unstructured" in result.stderr


# --- model directory problems --------------------------------------------------------------------


def _refuses(tmp_path, files: dict[str, str], *args: str, artifacts: tuple[str, ...] = ()) -> str:
    code_dir = write_model(tmp_path / "code", files)
    for name in artifacts:
        (code_dir / name).write_bytes(b"")
    args = args or ("--target-type", "regression")
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", *args)
    assert result.returncode == 1, result.stderr
    return result.stderr


def test_load_model_returning_none(tmp_path):
    files = {"custom.py": "def load_model(code_dir):\n    return None\n"}
    stderr = _refuses(tmp_path, files)
    assert (
        "An error occurred when loading your artifact: 'load_model' hook failed to load model, None is returned."
    ) in stderr


def test_too_many_custom_py(tmp_path):
    stderr = _refuses(tmp_path, {"custom.py": "x = 1\n", "sub/custom.py": "y = 1\n"})
    code_dir = (tmp_path / "code").resolve()
    assert (
        f"Found too many custom hook files: [PosixPath('{code_dir / 'custom.py'}'), "
        f"PosixPath('{code_dir / 'sub' / 'custom.py'}')]"
    ) in stderr


def test_no_artifact_and_no_load_model(tmp_path):
    stderr = _refuses(tmp_path, {"custom.py": "import pandas\n"})
    assert (
        f"Could not find model artifact file in: {(tmp_path / 'code').resolve()} supported by default predictors.\n"
        "They support filenames with the following extensions ['.h5', '.onnx', '.pkl', '.pth'].\n"
        "If your artifact is not supported by default predictor, implement custom.load_model() hook.\n"
        "List of retrieved files are: custom.py"
    ) in stderr


def test_multiple_artifacts(tmp_path):
    stderr = _refuses(tmp_path, {}, artifacts=("a.pkl", "b.pkl"))
    assert (
        "Multiple serialized model files found. Remove extra artifacts or overwrite custom.load_model()\n"
        "List of retrieved files are: "
    ) in stderr
    listed = stderr.split("List of retrieved files are: ")[1].splitlines()[0]
    assert sorted(listed.split(" | ")) == ["a.pkl", "b.pkl"]


METADATA_BINARY = """
    name: m
    type: inference
    targetType: binary
    inferenceModel:
      positiveClassLabel: yes
      negativeClassLabel: no
"""


def test_target_type_differs_from_metadata(tmp_path):
    stderr = _refuses(tmp_path, {**SCORE, "model-metadata.yaml": METADATA_BINARY}, "--target-type", "regression")
    assert (
        "Target type provided in --target-type argument doesn't match target type from model config file. "
        "Use either one of them or make them match."
    ) in stderr


def test_labels_differ_from_metadata(tmp_path):
    args = ("--target-type", "binary", "--positive-class-label", "a", "--negative-class-label", "b")
    stderr = _refuses(tmp_path, {**SCORE, "model-metadata.yaml": METADATA_BINARY}, *args)
    assert (
        "Positive/negative class labels provided with command arguments or environment variable don't match values "
        "from model config file. Use either one of them or make them match."
    ) in stderr


def test_score_textgeneration_uses_predictions_column(tmp_path):
    files = {
        "custom.py": """
            import pandas as pd


            def load_model(code_dir):
                return "model"


            def score(data, model, **kwargs):
                return pd.DataFrame({"completion": data["prompt"].str.upper(), "n": [1] * len(data)})
        """
    }
    code_dir = write_model(tmp_path / "code", files)
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt\nhi there\nyo\n")
    out = tmp_path / "out.csv"
    args = ("--target-type", "textgeneration", "--output", str(out))
    env = {"TARGET_NAME": "completion"}
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(prompts), *args, env=env)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"Predictions,n\nHI THERE,1\nYO,1\n"


def test_score_sparse_input_with_column_file(tmp_path):
    import numpy as np
    import scipy.io
    import scipy.sparse

    files = {
        "custom.py": """
            import pandas as pd


            def load_model(code_dir):
                return "model"


            def score(data, model, **kwargs):
                sparse = any(isinstance(dtype, pd.SparseDtype) for dtype in data.dtypes)
                dense = data.sparse.to_dense() if sparse else data
                n = len(data)
                return pd.DataFrame(
                    {
                        "Predictions": dense["x"],
                        "sparse": [sparse] * n,
                        "colnames": [",".join(kwargs["sparse_colnames"])] * n,
                        "mimetype": [kwargs["mimetype"]] * n,
                    }
                )
        """
    }
    code_dir = write_model(tmp_path / "code", files)
    matrix = tmp_path / "input.mtx"
    scipy.io.mmwrite(str(matrix), scipy.sparse.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.5], [3.0, 0.0]])))
    columns = tmp_path / "columns.txt"
    columns.write_text("x\ny\n")
    out = tmp_path / "out.csv"
    args = ("--sparse-column-file", str(columns), "--target-type", "regression", "--output", str(out))
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(matrix), *args)
    assert result.returncode == 0, result.stderr
    row = ',True,"x,y",text/mtx\n'
    expected = "Predictions,sparse,colnames,mimetype\n" + "".join(v + row for v in ("1.0", "0.0", "3.0"))
    assert out.read_text() == expected


RUNTIME_METADATA = """
    name: params
    type: inference
    targetType: regression
    runtimeParameterDefinitions:
      - fieldName: COUNT
        type: numeric
        defaultValue: 3
        minValue: 0
        maxValue: 100
"""


def test_runtime_params_file_value_out_of_range(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("COUNT: 1000\n")
    files = {**SCORE, "model-metadata.yaml": RUNTIME_METADATA}
    stderr = _refuses(tmp_path, files, "--runtime-params-file", str(values))
    assert (
        "Failed to load runtime parameter 'COUNT'. {'payload': DataError(\"{0: DataError('value should be None'), "
        "1: DataError('value is greater than 100')}\")}"
    ) in stderr


def test_runtime_params_file_needs_model_metadata(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("COUNT: 1\n")
    stderr = _refuses(tmp_path, SCORE, "--target-type", "regression", "--runtime-params-file", str(values))
    assert "model-metadata.yaml must exist to use runtime parameters" in stderr
