"""Unstructured echo model. The `ret` query argument selects the return shape."""

import json

from datarobot_drum import CustomHTTPError

STATE = {"init": None}


def init(code_dir, **kwargs):
    STATE["init"] = sorted(kwargs)


def load_model(code_dir):
    return {"loaded": True}


def _echo(model, data, kwargs):
    query = kwargs.get("query") or {}
    headers = kwargs.get("headers") or {}
    return json.dumps(
        {
            "data_type": type(data).__name__,
            "data": data if isinstance(data, str) else (data.hex() if isinstance(data, bytes) else repr(data)),
            "mimetype": kwargs.get("mimetype"),
            "charset": kwargs.get("charset"),
            "kwargs": sorted(kwargs),
            "query": {k: query.get(k) for k in sorted(query)},
            "header_names": sorted(h for h in headers if h.lower() not in ("host",)),
            "x_custom": headers.get("X-Custom"),
            "content_type": headers.get("Content-Type"),
            "model": model,
            "init_kwargs": STATE["init"],
        },
        sort_keys=True,
    )


def score_unstructured(model, data, **kwargs):
    query = kwargs.get("query") or {}
    ret = query.get("ret", "str")
    text = _echo(model, data, kwargs)
    if ret == "str":
        return text
    if ret == "bytes":
        return text.encode("utf-8")
    if ret == "none":
        return None
    if ret == "tuple_json":
        return text, {"mimetype": "application/json", "charset": "utf-8"}
    if ret == "tuple_latin1":
        return "caf\u00e9 cr\u00e8me", {"mimetype": "text/plain", "charset": "latin-1"}
    if ret == "tuple_mimetype_only":
        return "<b>hi</b>", {"mimetype": "text/html"}
    if ret == "tuple_charset_only":
        return "plain", {"charset": "utf-16"}
    if ret == "tuple_bytes_png":
        return b"\x89PNG\r\n\x1a\n\x00", {"mimetype": "image/png"}
    if ret == "tuple_bytes_charset":
        return b"a,b\n1,2\n", {"mimetype": "text/csv", "charset": "utf-8"}
    if ret == "tuple_none_kwargs":
        return text, None
    if ret == "tuple_none_data":
        return None, {"mimetype": "application/json"}
    if ret == "tuple_empty_dict":
        return b"\x00\x01", {}
    if ret == "bad_int":
        return 42
    if ret == "bad_dict":
        return {"a": 1}
    if ret == "bad_tuple3":
        return "a", {}, "c"
    if ret == "bad_tuple_inner":
        return 5, {"mimetype": "text/plain"}
    if ret == "raise":
        raise ValueError("unstructured failure")
    if ret == "http_error":
        raise CustomHTTPError("I'm a teapot", status_code=418)
    if ret == "http_error_default":
        raise CustomHTTPError("bad input")
    if ret == "http_error_500":
        raise CustomHTTPError({"detail": "structured message"}, status_code=503)
    return text
