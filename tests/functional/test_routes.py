"""Every route of DRUM's table (spec §2.2, §2.9), slash variants, URL_PREFIX, DRUM's response headers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from support import (
    DRUM_VERSION,
    JSON,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    REFERENCE_CMD,
    UUID4,
    assert_bytes,
    assert_error,
    assert_json,
    ours_only,
    serve,
    server_pool,
)

REGRESSION = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "dummy"

        def score(data, model, **kwargs):
            if "boom" in data.columns:
                raise ValueError("boom")
            return pd.DataFrame({"Predictions": [1] * len(data)})
    """
}
CSV = b"a,b\n1,2\n3,4\n"
PREDICTIONS = b'{"predictions":[1.0,1.0]}'
OK = b'{"message":"OK"}\n'
CAPABILITIES = b'{"supported_methods":{"chat":false},"supported_payload_formats":{"csv":null,"mtx":null}}\n'
TRANSFORM_GATE = "ERROR: This model has target type TargetType.REGRESSION, use the /predict/ endpoint."
UNSTRUCTURED_GATE = (
    "ERROR: This model has target type TargetType.REGRESSION, use either /predict/ or /predictions/ endpoint."
)
CHAT_UNSUPPORTED = "ERROR: This model's chat interface was called, but chat is not supported."
MODELS_UNSUPPORTED = "ERROR: get_supported_llm_models is supported only for TextGen models"
DIRECT_ACCESS = {"message": "This endpoint is only supported by OpenAI based predictors"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory, REGRESSION, "--target-type", "regression", name="routes") as s:
        yield s


# --- routes as DRUM declares them ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ping", "/ping/", "/health/"])
def test_liveness_and_readiness(server, path):
    assert_bytes(server.get(path), 200, OK)


def test_info(server):
    response = server.get("/info/")
    assert_json(
        response,
        200,
        {
            "codeDir": str(server.code_dir.resolve()),
            "drumServer": "flask" if REFERENCE_CMD else "fastapi",
            "drumVersion": DRUM_VERSION,
            "language": "python",
            "modelMetadata": None,
            "predictor": None,
            "targetType": "regression",
        },
    )
    # Flask's JSON provider: sorted keys, compact separators, trailing newline.
    assert response.content.startswith(b'{"codeDir":"') and response.content.endswith(b'"targetType":"regression"}\n')


@ours_only
def test_info_reports_the_fastapi_server(server):
    assert server.get("/info/").json()["drumServer"] == "fastapi"


def test_capabilities(server):
    assert_bytes(server.get("/capabilities/"), 200, CAPABILITIES)


def test_stats_keys(server):
    response = server.get("/stats/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert sorted(body) == ["drum_info", "mem_info", "time_info"]
    assert sorted(body["mem_info"]) == [
        "avail",
        "container_limit",
        "container_max_used",
        "container_used",
        "drum_rss",
        "free",
        "total",
    ]
    assert body["time_info"] == {"run_predictor_total": {"avg": None, "max": None, "min": None, "total": None}}
    assert len(body["drum_info"]) >= 1
    for proc in body["drum_info"]:
        assert sorted(proc) == ["cmdline", "cpu_percent", "mem", "pid"]
        assert isinstance(proc["cmdline"], list) and isinstance(proc["pid"], int)
    assert body["mem_info"]["drum_rss"] == pytest.approx(sum(p["mem"] for p in body["drum_info"]))
    assert body["mem_info"]["total"] > 0
    # Keys sorted like Flask's JSON provider.
    assert response.content.startswith(b'{"drum_info":[{"cmdline":[')


@pytest.mark.parametrize("path", ["/predict/", "/predictions/", "/invocations"])
def test_structured_prediction_routes(server, path):
    assert_bytes(server.post(path, data=CSV), 200, PREDICTIONS)


def test_transform_route_on_regression_model(server):
    assert_error(server.post("/transform/", data=CSV), 422, TRANSFORM_GATE)


@pytest.mark.parametrize("path", ["/predictUnstructured/", "/predictionsUnstructured/"])
def test_unstructured_routes_on_regression_model(server, path):
    assert_error(server.post(path, data=b"hello"), 422, UNSTRUCTURED_GATE)


@pytest.mark.parametrize("path", ["/chat/completions", "/v1/chat/completions"])
def test_chat_routes_on_regression_model(server, path):
    assert_error(server.post(path, json={"model": "m", "messages": []}), 404, CHAT_UNSUPPORTED)


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
def test_models_routes_on_regression_model(server, path):
    assert_error(server.get(path), 404, MODELS_UNSUPPORTED)


@pytest.mark.parametrize("root", ["/directAccess", "/nim"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_direct_access_routes_without_openai_backend(server, root, method):
    assert_json(server.request(method, f"{root}/v1/some/path", data=b"{}"), 400, DIRECT_ACCESS)


def test_there_is_no_shutdown_route(server):
    assert server.post("/shutdown/").status_code == 404


# --- the other spelling of each route (served directly: a decided deviation) --------------------


@ours_only
@pytest.mark.parametrize("path", ["/health", "/ping/"])
def test_slash_variants_of_health_routes(server, path):
    assert_bytes(server.get(path, allow_redirects=False), 200, OK)


@ours_only
def test_slash_variants_of_metadata_routes(server):
    assert server.get("/info", allow_redirects=False).json() == server.get("/info/").json()
    assert_bytes(server.get("/capabilities", allow_redirects=False), 200, CAPABILITIES)
    response = server.get("/stats", allow_redirects=False)
    assert response.status_code == 200 and sorted(response.json()) == ["drum_info", "mem_info", "time_info"]


@ours_only
@pytest.mark.parametrize("path", ["/predict", "/predictions", "/invocations/"])
def test_slash_variants_of_prediction_routes(server, path):
    assert_bytes(server.post(path, data=CSV, allow_redirects=False), 200, PREDICTIONS)


@ours_only
def test_slash_variants_of_other_routes(server):
    assert_error(server.post("/transform", data=CSV, allow_redirects=False), 422, TRANSFORM_GATE)
    for path in ("/predictUnstructured", "/predictionsUnstructured"):
        assert_error(server.post(path, data=b"x", allow_redirects=False), 422, UNSTRUCTURED_GATE)
    for path in ("/chat/completions/", "/v1/chat/completions/"):
        assert_error(server.post(path, json={"messages": []}, allow_redirects=False), 404, CHAT_UNSUPPORTED)
    for path in ("/models/", "/v1/models/"):
        assert_error(server.get(path, allow_redirects=False), 404, MODELS_UNSUPPORTED)


# --- unknown routes and wrong methods (JSON in DRUM's error format: a decided deviation) ---------


@ours_only
@pytest.mark.parametrize("path", ["/nope", "/predict/extra", "/v2/models", "/pingg"])
def test_unknown_route_is_json_404(server, path):
    assert_error(server.get(path), 404, NOT_FOUND)
    assert_error(server.post(path, data=CSV), 404, NOT_FOUND)


@ours_only
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/predict/", {"POST"}),
        ("PUT", "/predictions/", {"POST"}),
        ("GET", "/invocations", {"POST"}),
        ("GET", "/transform/", {"POST"}),
        ("GET", "/predictUnstructured/", {"POST"}),
        ("GET", "/chat/completions", {"POST"}),
        ("POST", "/ping/", {"GET"}),
        ("DELETE", "/health/", {"GET"}),
        ("POST", "/info/", {"GET"}),
        ("POST", "/models", {"GET"}),
        ("DELETE", "/directAccess/x", {"GET", "POST", "PUT"}),
        ("PATCH", "/nim/x", {"GET", "POST", "PUT"}),
    ],
)
def test_wrong_method_is_json_405_with_allow(server, method, path, allowed):
    response = server.request(method, path)
    assert_error(response, 405, METHOD_NOT_ALLOWED)
    methods = {m.strip() for m in response.headers["Allow"].split(",")}
    # Flask adds HEAD/OPTIONS to the allowed set; what matters is that the route's methods are listed.
    assert allowed <= methods and methods - allowed <= {"HEAD", "OPTIONS"}


def test_head_on_get_routes(server):
    """Flask answers HEAD for every GET route (kubernetes/http probes may use it)."""
    for path in ("/", "/ping/", "/health/", "/info/"):
        response = server.request("HEAD", path)
        assert response.status_code == 200, path
        assert response.content == b""
        assert response.headers["Content-Type"] == JSON


def test_options_lists_the_allowed_methods(server):
    response = server.request("OPTIONS", "/predict/")
    assert (response.status_code, response.content) == (200, b"")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"POST", "OPTIONS"}
    response = server.request("OPTIONS", "/ping/")
    assert response.status_code == 200
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_head_on_post_route_is_405(server):
    response = server.request("HEAD", "/predict/")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"POST", "OPTIONS"}


def test_query_string_is_ignored_by_structured_routes(server):
    assert_bytes(server.get("/ping/?probe=1"), 200, OK)
    assert_bytes(server.post("/predict/?x=1&y=2", data=CSV), 200, PREDICTIONS)


def test_doubled_leading_slash_is_tolerated(server):
    """werkzeug merges the slashes of `//predict/` (a client joining `http://host/` and `/predict/`)."""
    assert_bytes(server.post("//predict/", data=CSV, allow_redirects=False), 200, PREDICTIONS)
    assert_bytes(server.post("//invocations", data=CSV, allow_redirects=False), 200, PREDICTIONS)
    assert_bytes(server.get("//ping/", allow_redirects=False), 200, OK)


# --- DRUM's headers on every response ------------------------------------------------------------


def test_request_id_is_echoed(server):
    response = server.get("/ping/", headers={"X-Request-ID": "my-request-42"})
    assert response.headers["X_Request_ID"] == "my-request-42"
    response = server.post("/predict/", data=CSV, headers={"X-Request-ID": "abc"})
    assert response.headers["X_Request_ID"] == "abc"


def test_request_id_is_generated_per_request(server):
    first = server.get("/ping/").headers["X_Request_ID"]
    second = server.get("/ping/").headers["X_Request_ID"]
    assert UUID4.match(first) and UUID4.match(second)
    assert first != second


def _responses_of_every_kind(server):
    yield server.get("/ping/")  # 200
    yield server.post("/predict/", data=b"")  # 422
    yield server.post("/predict/", data=b"boom\n1\n")  # 500
    yield server.get("/models")  # 404 from the handler
    yield server.get("/directAccess/x")  # 400
    yield server.get("/nope")  # unknown route
    yield server.get("/predict/")  # wrong method


def test_drum_version_header_on_every_response(server):
    statuses = []
    for response in _responses_of_every_kind(server):
        statuses.append(response.status_code)
        assert response.headers["X-Drum-Version"] == DRUM_VERSION, response.url
        assert UUID4.match(response.headers["X_Request_ID"]), response.url
    assert statuses == [200, 422, 500, 404, 400, 404, 405]


def test_request_id_echoed_on_errors(server):
    for path in ("/nope", "/predict/"):
        response = server.get(path, headers={"X-Request-ID": "err-1"})
        assert response.status_code in (404, 405)
        assert response.headers["X_Request_ID"] == "err-1"
        assert response.headers["X-Drum-Version"] == DRUM_VERSION
    response = server.post("/predict/", data=b"boom\n1\n", headers={"X-Request-ID": "err-2"})
    assert response.status_code == 500
    assert response.headers["X_Request_ID"] == "err-2"


def test_hook_failure_is_500_with_drum_message(server):
    assert_error(
        server.post("/predict/", data=b"boom\n1\n"),
        500,
        "ERROR: Model 'score' hook failed to make predictions. Exception: ValueError('boom')",
    )


# --- URL_PREFIX ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture(params=["/test", pytest.param("test", marks=ours_only), "/test/"], ids=["slash", "bare", "trailing"])
def prefixed(request, pool):
    env = {"URL_PREFIX": request.param}
    server = pool(request.param, REGRESSION, "--target-type", "regression", env=env, prefix="/test", name="prefix")
    server.prefix = ""  # the tests spell out the full paths
    return server


def test_prefix_serves_every_route_under_it(prefixed):
    assert_bytes(prefixed.get("/test/"), 200, OK)
    assert_bytes(prefixed.get("/test/ping/"), 200, OK)
    assert_bytes(prefixed.get("/test/ping"), 200, OK)
    assert_bytes(prefixed.get("/test/health/"), 200, OK)
    assert prefixed.get("/test/info/").json()["targetType"] == "regression"
    assert_bytes(prefixed.get("/test/capabilities/"), 200, CAPABILITIES)
    assert prefixed.get("/test/stats/").status_code == 200
    for path in ("/test/predict/", "/test/predictions/", "/test/invocations"):
        assert_bytes(prefixed.post(path, data=CSV), 200, PREDICTIONS)
    assert_error(prefixed.post("/test/transform/", data=CSV), 422, TRANSFORM_GATE)
    assert_error(prefixed.post("/test/predictUnstructured/", data=b"x"), 422, UNSTRUCTURED_GATE)
    assert_error(prefixed.post("/test/chat/completions", json={"messages": []}), 404, CHAT_UNSUPPORTED)
    assert_error(prefixed.get("/test/v1/models"), 404, MODELS_UNSUPPORTED)
    assert_json(prefixed.get("/test/directAccess/x"), 400, DIRECT_ACCESS)


def test_prefix_routes_are_not_served_at_root(prefixed):
    for path in ("/", "/ping/", "/info/", "/testping/"):
        assert prefixed.get(path).status_code == 404, path
    assert prefixed.post("/predict/", data=CSV).status_code == 404


@ours_only
def test_prefix_unknown_route_and_bare_prefix(prefixed):
    assert_error(prefixed.get("/test/nope"), 404, NOT_FOUND)
    assert_error(prefixed.get("/ping/"), 404, NOT_FOUND)
    assert_bytes(prefixed.get("/test", allow_redirects=False), 200, OK)
    assert_bytes(prefixed.post("/test/predict", data=CSV, allow_redirects=False), 200, PREDICTIONS)


# --- /info/ for the other target types and model-metadata.yaml -----------------------------------

METADATA = """
    name: functional-model
    type: inference
    targetType: regression
    description: a test model
    majorVersion: true
    inferenceModel:
      targetName: y
      predictionThreshold: 1
    runtimeParameterDefinitions:
      - fieldName: OPTION
        type: string
        defaultValue: hello
        description: some text
      - fieldName: FLAG
        type: boolean
        defaultValue: true
      - fieldName: LIMIT
        type: numeric
        defaultValue: 5
        minValue: 0
        maxValue: 10.5
"""


def test_info_model_metadata(tmp_path_factory):
    files = {**REGRESSION, "model-metadata.yaml": METADATA}
    with serve(tmp_path_factory, files, name="meta") as s:  # target type from the metadata only
        body = s.get("/info/").json()
        assert_bytes(s.post("/predict/", data=CSV), 200, PREDICTIONS)
    assert body["targetType"] == "regression"
    # strictyaml: scalars of free-form sections stay strings; typed keys are typed.
    assert body["modelMetadata"] == {
        "description": "a test model",
        "inferenceModel": {"predictionThreshold": 1, "targetName": "y"},
        "majorVersion": True,
        "name": "functional-model",
        "runtimeParameterDefinitions": [
            {"defaultValue": "hello", "description": "some text", "fieldName": "OPTION", "type": "string"},
            {"defaultValue": "true", "fieldName": "FLAG", "type": "boolean"},
            {"defaultValue": "5", "fieldName": "LIMIT", "maxValue": "10.5", "minValue": "0", "type": "numeric"},
        ],
        "targetType": "regression",
        "type": "inference",
    }


def _sklearn_binary(code_dir: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = np.where(x[:, 0] > 0, "yes", "no")
    with open(code_dir / "model.pkl", "wb") as f:
        pickle.dump(LogisticRegression().fit(x, y), f)


CLASSIFIER = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "dummy"

        def score(data, model, **kwargs):
            labels = kwargs.get("class_labels") or [kwargs["negative_class_label"], kwargs["positive_class_label"]]
            return pd.DataFrame({label: [1.0 / len(labels)] * len(data) for label in labels})
    """
}


@pytest.mark.parametrize(
    ("files", "setup", "args", "expected"),
    [
        (
            {"README.md": "binary sklearn artifact\n"},
            _sklearn_binary,
            ["--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"],
            {"negativeClassLabel": "no", "positiveClassLabel": "yes", "predictor": "scikit-learn"},
        ),
        (
            CLASSIFIER,
            None,
            ["--target-type", "multiclass", "--class-labels", "a", "b", "c"],
            {"classLabels": ["a", "b", "c"], "predictor": None},
        ),
        (CLASSIFIER, None, ["--target-type", "multilabel", "--class-labels", "a", "b", "c"], {"predictor": None}),
    ],
    ids=["binary", "multiclass", "multilabel"],
)
def test_info_labels(tmp_path_factory, files, setup, args, expected):
    with serve(tmp_path_factory, files, *args, name="labels", setup=setup) as s:
        body = s.get("/info/").json()
    target_type = args[1]
    base = {"drumVersion": DRUM_VERSION, "language": "python", "modelMetadata": None, "targetType": target_type}
    assert {k: v for k, v in body.items() if k not in ("codeDir", "drumServer")} == {**base, **expected}


@pytest.mark.parametrize(
    ("files", "args", "env", "expected"),
    [
        (
            CLASSIFIER,
            ["--target-type", "binary"],
            {"POSITIVE_CLASS_LABEL": "yes", "NEGATIVE_CLASS_LABEL": "no"},
            {"negativeClassLabel": "no", "positiveClassLabel": "yes"},
        ),
        (CLASSIFIER, ["--target-type", "multiclass"], {"CLASS_LABELS": "a  b\tc"}, {"classLabels": ["a", "b", "c"]}),
        (
            CLASSIFIER,
            ["--target-type", "multiclass", "--class-labels-file", "{labels_file}"],
            {},
            {"classLabels": ["x", "y", "z"]},
        ),
        (
            CLASSIFIER,
            ["--target-type", "multilabel"],
            {"CLASS_LABELS_FILE": "{labels_file}"},
            {},
        ),
        (
            {
                **CLASSIFIER,
                "model-metadata.yaml": """
                    name: m
                    type: inference
                    targetType: multiclass
                    inferenceModel:
                      classLabels:
                        - p
                        - q
                """,
            },
            [],
            {},
            {"classLabels": ["p", "q"]},
        ),
        (
            {
                **CLASSIFIER,
                "model-metadata.yaml": """
                    name: m
                    type: inference
                    targetType: binary
                    inferenceModel:
                      positiveClassLabel: "1"
                      negativeClassLabel: "0"
                """,
            },
            ["--positive-class-label", "1", "--negative-class-label", "0"],
            {},
            {"negativeClassLabel": "0", "positiveClassLabel": "1"},
        ),
    ],
    ids=["binary-env", "multiclass-env", "labels-file", "multilabel-labels-file-env", "metadata", "metadata-and-cli"],
)
def test_labels_from_env_file_and_metadata(tmp_path_factory, files, args, env, expected):
    labels_file = tmp_path_factory.mktemp("labels") / "labels.txt"
    labels_file.write_text("x\n\ny\nz\n")
    args = [a.replace("{labels_file}", str(labels_file)) for a in args]
    env = {k: v.replace("{labels_file}", str(labels_file)) for k, v in env.items()}
    with serve(tmp_path_factory, files, *args, env=env, name="labelsrc") as s:
        body = s.get("/info/").json()
        response = s.post("/predict/", data=CSV)
    label_keys = ("classLabels", "negativeClassLabel", "positiveClassLabel")
    assert {k: v for k, v in body.items() if k in label_keys} == expected
    assert response.status_code == 200, response.text
    if "classLabels" in expected:
        labels = expected["classLabels"]
    elif expected:
        labels = [expected["negativeClassLabel"], expected["positiveClassLabel"]]
    else:
        labels = ["x", "y", "z"]
    assert list(response.json()["predictions"][0]) == labels


def test_stats_time_info_with_show_perf(tmp_path_factory):
    with serve(tmp_path_factory, REGRESSION, "--target-type", "regression", "--show-perf", name="perf") as s:
        for _ in range(3):
            assert s.post("/predict/", data=CSV).status_code == 200
        first = s.get("/stats/").json()["time_info"]["run_predictor_total"]
        second = s.get("/stats/").json()["time_info"]["run_predictor_total"]
    assert all(isinstance(first[k], float) for k in ("avg", "max", "min", "total"))
    assert first["min"] <= first["avg"] <= first["max"] <= first["total"]
    # Read and reset: nothing was timed since the previous read.
    assert second["total"] in (None, 0.0)


def test_error_requests_are_logged_with_request_id(tmp_path_factory):
    args = ("--target-type", "regression", "--logging-level", "info")
    with serve(tmp_path_factory, REGRESSION, *args, name="logs") as s:
        s.post("/predict/", data=b"", headers={"X-Request-ID": "log-me-422"})
        s.post("/predict/", data=b"boom\n1\n", headers={"X-Request-ID": "log-me-500"})
        s.post("/predict/", data=CSV, headers={"X-Request-ID": "quiet-200"})
        log = s.log()
    assert "API [POST /predict/?] request time:" in log
    assert "request_id: log-me-422" in log and "request_id: log-me-500" in log
    # Log records made while serving a request carry its id.
    assert "{'request_id': 'log-me-500'}" in log
    assert "request_id: quiet-200" not in log
