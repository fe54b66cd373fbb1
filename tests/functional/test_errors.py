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
