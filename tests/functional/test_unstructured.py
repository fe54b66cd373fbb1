"""Unstructured predictions (spec §2.5): request decoding, hook kwargs, return values and response types."""

from __future__ import annotations

import json

import pytest
from support import JSON, assert_bytes, assert_error, server_pool

UNSTRUCTURED = {
    "custom.py": """
        import json

        from datarobot_drum import CustomHTTPError


        def load_model(code_dir):
            return "model"


        def describe(data, kwargs):
            query = kwargs["query"]
            return json.dumps(
                {
                    "keys": sorted(kwargs),
                    "data_type": type(data).__name__,
                    "data": data if isinstance(data, str) else data.decode("latin-1"),
                    "mimetype": kwargs.get("mimetype"),
                    "charset": kwargs.get("charset", "<absent>"),
                    "query": dict(query),
                    "query_k": query.getlist("k"),
                    "query_first": query.get("k"),
                    "custom_headers": {k: v for k, v in kwargs["headers"].items() if k.lower().startswith("x-")},
                    "content_type": kwargs["headers"].get("Content-Type"),
                },
                sort_keys=True,
            )


        RESULTS = {
            "str": "h\\u00e9llo",
            "bytes": b"\\x00\\x01binary",
            "none": None,
            "tuple": ("h\\u00e9llo", {"mimetype": "application/json", "charset": "latin-1"}),
            "tuple_mimetype": ("h\\u00e9llo", {"mimetype": "text/html"}),
            "tuple_bytes": (b"\\x89PNG", {"mimetype": "image/png"}),
            "tuple_bytes_charset": (b"abc", {"charset": "utf-16"}),
            "tuple_no_kwargs": ("plain", None),
            "tuple_none": (None, {"mimetype": "text/html"}),
            "tuple_empty_dict": ("x", {}),
            "int": 5,
            "list": ["a"],
            "triple": ("a", {}, 1),
            "bad_data": (5, {}),
            "bad_kwargs": ("a", "b"),
        }


        def score_unstructured(model, data, **kwargs):
            mode = kwargs["query"].get("mode", "describe")
            if mode == "describe":
                return describe(data, kwargs)
            if mode == "raise":
                raise ValueError("nope")
            if mode == "http":
                raise CustomHTTPError("too big", status_code=413)
            if mode == "echo":
                return data, {"mimetype": kwargs["mimetype"], "charset": kwargs.get("charset")}
            return RESULTS[mode]
    """
}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture
def server(pool):
    return pool("unstructured", UNSTRUCTURED, "--target-type", "unstructured", name="unstructured")


def _describe(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    return json.loads(response.content)


# --- request decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predictUnstructured/", "/predictionsUnstructured/"])
def test_text_request(server, path):
    described = _describe(server.post(path, data="héllo".encode(), headers={"Content-Type": "text/plain"}))
    assert {k: described[k] for k in ("data_type", "data", "mimetype", "charset")} == {
        "data_type": "str",
        "data": "héllo",
        "mimetype": "text/plain",
        "charset": "utf-8",
    }
    assert described["keys"] == ["charset", "headers", "mimetype", "query"]


def test_missing_content_type_is_text_plain(server):
    described = _describe(server.post("/predictUnstructured/", data=b"abc"))
    assert (described["data_type"], described["mimetype"], described["charset"]) == ("str", "text/plain", "utf-8")


def test_request_charset_decodes_text(server):
    body = "héllo".encode("latin-1")
    response = server.post("/predictUnstructured/", data=body, headers={"Content-Type": "text/csv; charset=latin-1"})
    described = _describe(response)
    assert (described["data"], described["mimetype"], described["charset"]) == ("héllo", "text/csv", "latin-1")


def test_json_is_textual(server):
    response = server.post("/predictUnstructured/", data=b'{"a": 1}', headers={"Content-Type": "application/json"})
    described = _describe(response)
    assert (described["data_type"], described["data"], described["charset"]) == ("str", '{"a": 1}', "utf-8")


def test_binary_request(server):
    body = b"\x00\xff\x10"
    response = server.post("/predictUnstructured/", data=body, headers={"Content-Type": "application/octet-stream"})
    described = _describe(response)
    assert (described["data_type"], described["data"], described["mimetype"], described["charset"]) == (
        "bytes",
        body.decode("latin-1"),
        "application/octet-stream",
        "<absent>",
    )
    assert described["keys"] == ["headers", "mimetype", "query"]


def test_binary_request_with_charset(server):
    headers = {"Content-Type": "image/png; charset=utf-16"}
    described = _describe(server.post("/predictUnstructured/", data=b"\x89PNG", headers=headers))
    assert (described["data_type"], described["mimetype"], described["charset"]) == ("bytes", "image/png", "utf-16")


def test_empty_body(server):
    described = _describe(server.post("/predictUnstructured/", data=b""))
    assert (described["data_type"], described["data"]) == ("str", "")


def test_query_first_value_and_getlist(server):
    response = server.post("/predictUnstructured/?k=1&k=2&other=x", data=b"")
    described = _describe(response)
    assert described["query"] == {"k": "1", "other": "x"}
    assert described["query_k"] == ["1", "2"]
    assert described["query_first"] == "1"


def test_headers_kwarg(server):
    headers = {"X-Custom-Header": "v1", "x-lower": "v2", "Content-Type": "text/plain; charset=utf-8"}
    described = _describe(server.post("/predictUnstructured/", data=b"", headers=headers))
    assert described["custom_headers"] == {"X-Custom-Header": "v1", "X-Lower": "v2"}
    assert described["content_type"] == "text/plain; charset=utf-8"


# --- return values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "body", "content_type"),
    [
        ("str", "héllo".encode(), "text/plain; charset=utf-8"),
        ("bytes", b"\x00\x01binary", "application/octet-stream"),
        ("none", b"", "text/plain; charset=utf-8"),
        ("tuple", "héllo".encode("latin-1"), "application/json; charset=latin-1"),
        ("tuple_mimetype", "héllo".encode(), "text/html; charset=utf-8"),
        ("tuple_bytes", b"\x89PNG", "image/png"),
        ("tuple_bytes_charset", b"abc", "application/octet-stream; charset=utf-16"),
        ("tuple_no_kwargs", b"plain", "text/plain; charset=utf-8"),
        ("tuple_none", b"", "text/html; charset=utf-8"),
        ("tuple_empty_dict", b"x", "text/plain; charset=utf-8"),
    ],
)
def test_return_values(server, mode, body, content_type):
    assert_bytes(server.post(f"/predictUnstructured/?mode={mode}", data=b"x"), 200, body, content_type)


def test_echo_request_mimetype_and_charset(server):
    headers = {"Content-Type": "text/csv; charset=latin-1"}
    response = server.post("/predictUnstructured/?mode=echo", data="é".encode("latin-1"), headers=headers)
    assert_bytes(response, 200, "é".encode("latin-1"), "text/csv; charset=latin-1")


def test_echo_binary(server):
    headers = {"Content-Type": "application/x-thing"}
    response = server.post("/predictUnstructured/?mode=echo", data=b"\x00\xff", headers=headers)
    assert_bytes(response, 200, b"\x00\xff", "application/x-thing")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("int", "ERROR: In unstructured mode single return value can be of type str/bytes, but received <class 'int'>"),
        (
            "list",
            "ERROR: In unstructured mode single return value can be of type str/bytes, but received <class 'list'>",
        ),
        (
            "triple",
            "ERROR: In unstructured mode predictions of type tuple must have length = 2, but received length = 3",
        ),
        (
            "bad_data",
            "ERROR: In unstructured mode tuple return value must be of type (str/bytes, dict) but received "
            "(<class 'int'>, <class 'dict'>)",
        ),
        (
            "bad_kwargs",
            "ERROR: In unstructured mode tuple return value must be of type (str/bytes, dict) but received "
            "(<class 'str'>, <class 'str'>)",
        ),
        ("raise", "ERROR: nope"),
    ],
)
def test_bad_return_values_and_errors(server, mode, message):
    assert_error(server.post(f"/predictUnstructured/?mode={mode}", data=b"x"), 500, message)


def test_custom_http_error(server):
    response = server.post("/predictUnstructured/?mode=http", data=b"x")
    assert_error(response, 413, "too big")
    assert response.headers["X-Drum-User-Http-Error"] == "true"


# --- wrong endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predict/", "/predictions/", "/invocations"])
def test_unstructured_model_on_structured_routes(server, path):
    assert_error(
        server.post(path, data=b"a\n1\n"),
        422,
        "ERROR: This model has target type 'unstructured', use the /predictUnstructured/ or "
        "/predictionsUnstructured/ endpoint.",
    )


def test_unstructured_model_on_transform(server):
    assert_error(
        server.post("/transform/", data=b"a\n1\n"),
        422,
        "ERROR: This model has target type TargetType.UNSTRUCTURED, use the /predictUnstructured/ endpoint.",
    )


def test_unstructured_info_and_capabilities(server):
    info = server.get("/info/").json()
    assert (info["targetType"], info["predictor"], info["modelMetadata"]) == ("unstructured", None, None)
    assert_bytes(
        server.get("/capabilities/"),
        200,
        b'{"supported_methods":{"chat":false},"supported_payload_formats":{"csv":null,"mtx":null}}\n',
        JSON,
    )


STRUCTURED = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "model"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}


@pytest.mark.parametrize(
    ("args", "enum"),
    [
        (("--target-type", "regression"), "REGRESSION"),
        (("--target-type", "anomaly"), "ANOMALY"),
        (("--target-type", "multiclass", "--class-labels", "a", "b"), "MULTICLASS"),
    ],
    ids=["regression", "anomaly", "multiclass"],
)
def test_structured_models_on_unstructured_routes(pool, args, enum):
    server = pool(args, STRUCTURED, *args, name="structured")
    for path in ("/predictUnstructured/", "/predictionsUnstructured/"):
        assert_error(
            server.post(path, data=b"x"),
            422,
            f"ERROR: This model has target type TargetType.{enum}, use either /predict/ or /predictions/ endpoint.",
        )


def test_textgeneration_model_without_unstructured_hook(pool):
    """textgeneration passes the gate, but `score_unstructured` is not loaded for it: a 500."""
    server = pool("textgen", STRUCTURED, "--target-type", "textgeneration", env={"TARGET_NAME": "t"}, name="tg")
    assert_error(server.post("/predictUnstructured/", data=b"x"), 500, "ERROR: 'NoneType' object is not callable")


@pytest.mark.parametrize(
    ("content_type", "data_type", "mimetype", "charset"),
    [
        ("TEXT/PLAIN", "bytes", "TEXT/PLAIN", "<absent>"),
        ("Application/JSON", "bytes", "Application/JSON", "<absent>"),
        ("text/plain; charset=UTF-8", "str", "text/plain", "UTF-8"),
        ("application/xml", "bytes", "application/xml", "<absent>"),
        ("text/html; charset=utf-8; format=flowed", "str", "text/html", "utf-8"),
    ],
)
def test_textual_mimetypes_are_case_sensitive(server, content_type, data_type, mimetype, charset):
    described = _describe(server.post("/predictUnstructured/", data=b"abc", headers={"Content-Type": content_type}))
    assert (described["data_type"], described["data"], described["mimetype"], described["charset"]) == (
        data_type,
        "abc",
        mimetype,
        charset,
    )


@pytest.mark.parametrize(
    ("kwargs", "mimetype"),
    [
        ({"data": {"a": "1"}}, "application/x-www-form-urlencoded"),
        ({"files": {"f": ("a.txt", b"x")}}, "multipart/form-data"),
    ],
)
def test_form_bodies_reach_the_hook_as_bytes(server, kwargs, mimetype):
    response = server.post("/predictUnstructured/", **kwargs)
    described = _describe(response)
    assert (described["data_type"], described["mimetype"], described["charset"]) == ("bytes", mimetype, "<absent>")
    sent = response.request.body
    assert described["data"].encode("latin-1") == (sent.encode() if isinstance(sent, str) else sent)


def test_returned_charset_encodes_the_text(server):
    response = server.post(
        "/predictUnstructured/?mode=echo",
        data="hé".encode("utf-16"),
        headers={"Content-Type": "text/plain; charset=utf-16"},
    )
    assert_bytes(response, 200, "hé".encode("utf-16"), "text/plain; charset=utf-16")


def test_headers_kwarg_is_a_plain_dict_of_all_headers(server):
    response = server.post(
        "/predictUnstructured/?mode=describe", data=b"x", headers={"X-A": "1", "x-b": "2", "User-Agent": "tester"}
    )
    described = _describe(response)
    assert described["custom_headers"] == {"X-A": "1", "X-B": "2"}
