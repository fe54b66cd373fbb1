"""Parity across backends: the same requests against FastAPI, werkzeug and gunicorn servers of the same
model directories must give the same status, DRUM headers and body bytes (only `/info/`'s drumServer,
`Server`/`Date`/connection headers and the generated request ids may differ).

Every probe is compared with the FastAPI answer, and one set of absolute assertions runs per backend.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
from support import NOT_FOUND, UUID4, DrumServer, PortTaken, start_server, write_model  # noqa: E402

from drum.serving.routes import ROUTES, full_paths  # noqa: E402

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

BACKENDS = ("fastapi", "werkzeug", "gunicorn")
DRUM_SERVER = {"fastapi": "fastapi", "werkzeug": "flask", "gunicorn": "gunicorn"}
PREFIX = "/my/prefix"
UPLOAD_LIMIT = 4096
CSV = b"a,b\n1,2\n3,4\n"

REGRESSION = {
    "custom.py": """
        import pandas as pd
        from datarobot_drum import CustomHTTPError


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            if "boom" in data.columns:
                raise ValueError("boom")
            if "http" in data.columns:
                raise CustomHTTPError("teapot", status_code=418)
            return pd.DataFrame({"Predictions": [float(i) + 0.5 for i in range(len(data))]})
    """
}
BINARY = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"yes": [0.25] * len(data), "no": [0.75] * len(data)})
    """
}
UNSTRUCTURED = {
    "custom.py": """
        def load_model(code_dir):
            return "model"


        def score_unstructured(model, data, **kwargs):
            if data == "boom":
                raise ValueError("boom")
            return f"got {data!r} {kwargs.get('mimetype')} {sorted(kwargs.get('query', {}).items())}"
    """
}
CHAT = {
    "custom.py": """
        import json

        import pandas as pd


        class Obj:
            def __init__(self, **fields):
                self.__dict__.update(fields)

            def to_dict(self):
                return {k: v.to_dict() if isinstance(v, Obj) else v for k, v in self.__dict__.items()}

            def to_json(self, indent=2):
                return json.dumps(self.to_dict(), indent=indent, separators=(",", ":") if indent is None else None)


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"completion": data["prompt"]})


        def chat(params, model):
            last = params["messages"][-1]["content"]
            if last == "boom":
                raise ValueError("boom")
            if params.get("stream"):
                return iter([Obj(object="chat.completion.chunk", n=i, text=w) for i, w in enumerate(last.split())])
            return Obj(object="chat.completion", id="c1", choices=[{"message": {"content": "Echo: " + last}}])
    """
}
FAILING = {
    "custom.py": """
        def load_model(code_dir):
            raise ValueError("cannot load")
    """
}

MODELS: dict[str, tuple[dict[str, str], tuple[str, ...], dict[str, str]]] = {
    "reg": (REGRESSION, ("--target-type", "regression"), {"DRUM_FASTAPI_MAX_UPLOAD_SIZE": str(UPLOAD_LIMIT)}),
    "prefix": (REGRESSION, ("--target-type", "regression"), {"URL_PREFIX": PREFIX + "/"}),
    "bin": (BINARY, ("--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"), {}),
    "unstructured": (UNSTRUCTURED, ("--target-type", "unstructured"), {}),
    "chat": (CHAT, ("--target-type", "textgeneration"), {"TARGET_NAME": "completion"}),
    "error": (FAILING, ("--target-type", "regression", "--with-error-server"), {}),
}


@dataclass(frozen=True)
class Probe:
    model: str
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    files: bool = False
    chunked: bool = False

    @property
    def id(self) -> str:
        body = f":{len(self.body)}:{zlib.crc32(self.body):08x}" if self.body else ""
        sent_id = dict(self.headers).get("X-Request-ID", "")
        flags = (":multipart" if self.files else "") + (":chunked" if self.chunked else "")
        return f"{self.model}:{self.method}:{self.path}{body}{flags}{sent_id}"


def _route_probes() -> list[Probe]:
    """Route table × slash variants × URL_PREFIX: every spelling, its method, OPTIONS and a wrong method."""
    probes: list[Probe] = []
    for model, prefix in (("reg", ""), ("prefix", PREFIX)):
        for route in ROUTES:
            for path in full_paths(route, prefix):
                path = path.replace("{path:path}", "some/where")
                method = route.methods[0]
                body = CSV if method == "POST" else None
                headers = (("Content-Type", "text/csv"),) if body else ()
                probes += [Probe(model, method, path, body, headers), Probe(model, "OPTIONS", path)]
                probes.append(Probe(model, "DELETE", path))
    probes += [Probe("prefix", "GET", "/ping/"), Probe("prefix", "POST", "/predict/", CSV)]
    return probes


CSV_HEADERS = (("Content-Type", "text/csv"),)
PROBES: list[Probe] = [
    *_route_probes(),
    Probe("reg", "GET", "/nope"),
    Probe("reg", "HEAD", "/ping/"),
    Probe("reg", "HEAD", "/capabilities"),
    Probe("reg", "PUT", "/directAccess/x/y", b"{}"),
    Probe("reg", "GET", "//ping//"),
    Probe("reg", "POST", "//predict/", CSV, CSV_HEADERS),
    Probe("reg", "POST", "/predict/?passthrough=1", CSV, CSV_HEADERS),
    Probe("reg", "POST", "/predict/", CSV, files=True),
    Probe("reg", "POST", "/predict/", b"", CSV_HEADERS),  # 422: no samples
    Probe("reg", "POST", "/predict/", b'{"a": 1}', (("Content-Type", "application/json"),)),
    Probe("reg", "POST", "/predict/", b"boom\n1\n", CSV_HEADERS),  # 500
    Probe("reg", "POST", "/predict/", b"http\n1\n", CSV_HEADERS),  # user HTTP error 418
    Probe("reg", "POST", "/predict/", b"a\n" + b"1\n" * UPLOAD_LIMIT, CSV_HEADERS),  # 413
    Probe("reg", "POST", "/predict/", b"a\n" + b"1\n" * UPLOAD_LIMIT, CSV_HEADERS, chunked=True),  # 413
    Probe("reg", "POST", "/predict/", CSV, CSV_HEADERS, chunked=True),
    Probe("reg", "GET", "/ping/", headers=(("X-Request-ID", "my-id-1"),)),
    Probe("reg", "POST", "/predict/", b"boom\n1\n", (("X-Request-ID", "my-id-2"), *CSV_HEADERS)),
    Probe("bin", "POST", "/predict/", CSV, CSV_HEADERS),
    Probe("bin", "POST", "/invocations", CSV, CSV_HEADERS),
    Probe("bin", "POST", "/predictUnstructured/", CSV, CSV_HEADERS),
    Probe("unstructured", "POST", "/predictUnstructured/?a=1&b=2", b"hello", (("Content-Type", "text/plain"),)),
    Probe("unstructured", "POST", "/predictionsUnstructured", b"\x00\x01", (("Content-Type", "image/png"),)),
    Probe("unstructured", "POST", "/predictUnstructured/", b"boom", (("Content-Type", "text/plain"),)),
    Probe("unstructured", "POST", "/predict/", CSV, CSV_HEADERS),
    Probe("chat", "POST", "/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}'),
    Probe("chat", "POST", "/v1/chat/completions", b'{"stream": true, "messages": [{"content": "a b c"}]}'),
    Probe("chat", "POST", "/chat/completions", b'{"messages": [{"content": "boom"}]}'),
    Probe("chat", "POST", "/chat/completions", b"not json"),
    Probe("chat", "GET", "/models"),
    Probe("error", "GET", "/"),
    Probe("error", "GET", "/ping/"),
    Probe("error", "POST", "/predict/", CSV, CSV_HEADERS),
    Probe("error", "POST", "/predictUnstructured/", CSV, CSV_HEADERS),
    Probe("error", "GET", "/info/"),
    Probe("error", "GET", "/stats/"),
]
assert len({p.id for p in PROBES}) == len(PROBES), "probe ids must be unique"
COMPARED_HEADERS = ("content-type", "content-length", "x-drum-version", "x-drum-user-http-error", "retry-after")


Launch = tuple[Path, tuple[str, ...], dict[str, str], Path]


def _start(launch: Launch, wait: bool) -> DrumServer:
    code_dir, args, env, log_path = launch
    prefix = env.get("URL_PREFIX", "").rstrip("/")
    return start_server(code_dir, list(args), log_path, env, prefix=prefix, wait=wait, timeout=90)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], DrumServer]]:
    """Every model on every backend, started together and shared by the module."""
    started: dict[tuple[str, str], DrumServer] = {}
    launches: dict[tuple[str, str], Launch] = {}
    try:
        for model, (files, args, env) in MODELS.items():
            base = tmp_path_factory.mktemp(model)
            code_dir = write_model(base / "code", files)
            for backend in BACKENDS:
                backend_env = {**env, "DRUM_SERVER_TYPE": backend}
                launches[backend, model] = (code_dir, args, backend_env, base / f"{backend}.log")
                started[backend, model] = _start(launches[backend, model], wait=False)
        for key, server in started.items():
            try:
                server.wait_ready(time.monotonic() + 90)
            except PortTaken:  # another server took the port first: start_server tries new ones
                started[key] = _start(launches[key], wait=True)
        yield started
    finally:
        for server in started.values():
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in started.values():
            server.stop()


def _send(server: DrumServer, probe: Probe) -> requests.Response:
    kwargs: dict[str, Any] = {"headers": dict(probe.headers), "timeout": 30}
    if probe.files:
        kwargs["files"] = {"X": ("data.csv", probe.body)}
    elif probe.chunked:
        kwargs["data"] = iter([probe.body[i : i + 1000] for i in range(0, len(probe.body or b""), 1000)])
    elif probe.body is not None:
        kwargs["data"] = probe.body
    return server.session.request(probe.method, server.url + probe.path, **kwargs)


def _normalized(response: requests.Response, probe: Probe) -> dict[str, Any]:
    """What must be identical across backends."""
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        headers["content-length"] = None  # streamed: chunked on HTTP/1.1, close-delimited on HTTP/1.0
    allow = response.headers.get("allow")
    headers["allow"] = sorted(m.strip() for m in allow.split(",")) if allow else None
    sent_id = dict(probe.headers).get("X-Request-ID")
    request_id = response.headers.get("X_Request_ID", "")
    headers["x_request_id"] = request_id if sent_id else bool(UUID4.match(request_id))
    body: Any = response.content
    path = probe.path.split("?")[0].rstrip("/")
    ok_get = probe.method == "GET" and response.status_code == 200
    if path.endswith("/stats") and ok_get:
        body, headers["content-length"] = sorted(response.json()), None
    elif path.endswith("/info") and ok_get:
        body, headers["content-length"] = {**response.json(), "drumServer": "<server>"}, None
    return {"status": response.status_code, "headers": headers, "body": body}


@pytest.fixture(scope="module")
def answers(servers) -> dict[tuple[str, str], dict[str, Any]]:
    """Every probe against every backend, sent once."""
    return {
        (backend, probe.id): _normalized(_send(servers[backend, probe.model], probe), probe)
        for probe in PROBES
        for backend in BACKENDS
    }


@pytest.mark.parametrize("backend", ("werkzeug", "gunicorn"))
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.id)
def test_backend_answers_like_fastapi(answers, backend, probe):
    assert answers[backend, probe.id] == answers["fastapi", probe.id]


def test_probes_cover_every_error_class(answers):
    statuses = {answers["fastapi", p.id]["status"] for p in PROBES}
    assert {200, 400, 404, 405, 413, 418, 422, 500, 513} <= statuses


# --- the same absolute assertions on every backend -----------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def test_info_names_the_server(servers, backend):
    assert servers[backend, "reg"].get("/info/").json()["drumServer"] == DRUM_SERVER[backend]


def test_request_id_is_echoed_or_generated(servers, backend):
    server = servers[backend, "reg"]
    response = server.get("/ping/", headers={"X-Request-ID": "abc-123"})
    assert (response.headers["X_Request_ID"], response.headers["X-Drum-Version"]) == ("abc-123", "1.18.1")
    assert UUID4.match(server.get("/nope").headers["X_Request_ID"])


@pytest.mark.parametrize("path", ["/ping", "/ping/", "/predict", "/predict/", "/invocations", "/invocations/"])
def test_slash_variants_are_served_directly(servers, backend, path):
    server = servers[backend, "reg"]
    response = server.request("GET" if "ping" in path else "POST", path, data=CSV, allow_redirects=False)
    assert response.status_code == 200, response.text


def test_url_prefix_root_and_unprefixed_paths(servers, backend):
    server = servers[backend, "prefix"]
    assert server.session.get(server.url + PREFIX).json() == {"message": "OK"}
    assert server.session.get(server.url + "/ping/").json() == {"message": NOT_FOUND}


def test_error_formats(servers, backend):
    server = servers[backend, "reg"]
    assert server.get("/nope").json() == {"message": NOT_FOUND}
    wrong = server.request("DELETE", "/predict/")
    assert (wrong.status_code, set(wrong.headers["Allow"].split(", "))) == (405, {"POST", "OPTIONS"})
    boom = server.post("/predict/", data=b"boom\n1\n", headers={"Content-Type": "text/csv"})
    assert (boom.status_code, boom.json()["message"].startswith("ERROR: ")) == (500, True)
    user = server.post("/predict/", data=b"http\n1\n", headers={"Content-Type": "text/csv"})
    assert (user.status_code, user.json(), user.headers["X-Drum-User-Http-Error"]) == (
        418,
        {"message": "teapot"},
        "true",
    )
    big = server.post("/predict/", data=b"x" * (UPLOAD_LIMIT + 1))
    assert (big.status_code, big.json()) == (
        413,
        {"message": f"ERROR: Request body too large. Limit is {UPLOAD_LIMIT} bytes"},
    )
    assert servers[backend, "error"].get("/ping/").status_code == 513


def test_stats_keys(servers, backend):
    body = servers[backend, "reg"].get("/stats/").json()
    assert {"mem_info", "time_info"} <= set(body)


def test_chat_streaming_framing(servers, backend):
    response = servers[backend, "chat"].post(
        "/chat/completions", json={"stream": True, "messages": [{"content": "x y"}]}
    )
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert [json.loads(e.removeprefix(b"data: "))["text"] for e in events[:-2]] == ["x", "y"]


def test_no_redirects_anywhere(answers):
    assert not [key for key, answer in answers.items() if 300 <= answer["status"] < 400]


def test_dev_server_is_single_http10_or_gunicorn(servers):
    assert re.match(r"Werkzeug/", servers["werkzeug", "reg"].get("/ping/").headers["Server"])
    assert servers["gunicorn", "reg"].get("/ping/").headers["Server"] == "gunicorn"
