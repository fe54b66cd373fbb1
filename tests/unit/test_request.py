"""RequestData: content-type parsing, form consumption, multipart files, canonical header names, query."""

from drum.serving.request import QueryParams, RequestData, parse_options_header


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_parse_options_header_keeps_mimetype_case():
    assert parse_options_header("Text/CSV; Charset=UTF-8") == ("Text/CSV", {"charset": "UTF-8"})
    assert parse_options_header(None) == ("", {})
    assert parse_options_header('text/plain;charset="latin-1"') == ("text/plain", {"charset": "latin-1"})


def test_multipart_files_only_parts_with_filenames():
    body = _multipart([("X", "data.csv", b"a,b\n1,2\n"), ("note", None, b"text"), ("X.colnames", "c", b"a\nb")])
    req = RequestData("POST", "/", body, [("Content-Type", "multipart/form-data; boundary=XyZ")])
    assert set(req.files) == {"X", "X.colnames"}
    assert req.files["X"].filename == "data.csv" and req.files["X"].data == b"a,b\n1,2\n"
    assert req.data == b""  # form bodies are consumed, as Flask does


def test_urlencoded_body_is_consumed():
    req = RequestData("POST", "/", b"a=1", [("content-type", "application/x-www-form-urlencoded")])
    assert req.data == b"" and req.files == {}


def test_raw_body_and_charset():
    req = RequestData("POST", "/", b"x", [("content-type", "text/plain; charset=latin-1")])
    assert (req.data, req.mimetype, req.charset) == (b"x", "text/plain", "latin-1")


def test_headers_dict_canonical_names():
    req = RequestData("GET", "/", headers=[("x-request-id", "1"), ("content-type", "a/b")])
    assert req.headers_dict() == {"X-Request-Id": "1", "Content-Type": "a/b"}


def test_query_params_first_value_and_getlist():
    q = QueryParams([("a", "1"), ("a", "2"), ("b", "3")])
    assert q["a"] == "1" and q.get("b") == "3" and q.getlist("a") == ["1", "2"]
    assert dict(q) == {"a": "1", "b": "3"}
