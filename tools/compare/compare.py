#!/usr/bin/env python3
"""Side-by-side compatibility harness: our `drum` against the real DRUM 1.18.1.

For every case under ``models/`` (a model directory with a ``case.yaml``) both servers are started
on free ports on 127.0.0.1, the same requests are replayed against both, and status code,
Content-Type and body bytes are compared after normalising only what must differ (code dir paths,
ports, uuids, multipart boundaries, ``drumServer``, ``/stats/`` numbers, memory addresses).

Run ``compare.py --help`` and see README.md in this directory.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import concurrent.futures
import contextlib
import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
import yaml

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE / "models"
DATA_DIR = MODELS_DIR / "_data"
DEFAULT_OURS = "/work/main/.venv/bin/drum"
DEFAULT_THEIRS = "/tmp/drumref/bin/drum"
WERKZEUG_ENV = ("MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE", '{"type":"string","payload":"werkzeug"}')
BOUNDARY = "drumcompareboundary7MA4YWxkTrZu0gW"

# Environment variables that DRUM turns into CLI flags or otherwise reads; removed from the
# inherited environment so that every case is hermetic.
SCRUBBED_ENV = {
    "TARGET_TYPE",
    "CODE_DIR",
    "NEGATIVE_CLASS_LABEL",
    "POSITIVE_CLASS_LABEL",
    "CLASS_LABELS_FILE",
    "CLASS_LABELS",
    "ADDRESS",
    "MAX_WORKERS",
    "DEPLOYMENT_CONFIG",
    "USER_SECRETS_PREFIX",
    "USER_SECRETS_MOUNT_PATH",
    "WITH_ERROR_SERVER",
    "SHOW_STACKTRACE",
    "PRODUCTION",
    "MONITOR",
    "MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS",
    "SKIP_PREDICT",
    "ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS",
    "URL_PREFIX",
    "TARGET_NAME",
    "RUNTIME_PARAMS_FILE",
    "LAZY_LOADING_FILE",
    "DEPLOYMENT_ID",
    "MLOPS_DEPLOYMENT_ID",
    "MODEL_ID",
    "MLOPS_MODEL_ID",
    "MONITOR_SETTINGS",
    "EXTERNAL_WEB_SERVER_URL",
    "API_TOKEN",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "MLOPS_LAZY_LOADING_DATA",
    "DRUM_GUNICORN_DRUM_ARGS",
}
SCRUBBED_PREFIXES = ("MLOPS_RUNTIME_PARAM_", "MLOPS_REPOSITORY_SECRET_", "DRUM_FASTAPI_")

# Response headers compared for information (not part of the identical verdict unless
# --strict-headers is given).
COMPARED_HEADERS = ("X_Request_ID", "X-Drum-Version", "X-Drum-User-Http-Error", "Allow", "Location")

UUID_RE = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ADDR_RE = re.compile(rb"0x[0-9a-fA-F]{6,16}")
DRUM_SERVER_RE = re.compile(rb'("drumServer"\s*:\s*)"[^"]*"')
STATS_CMDLINE_RE = re.compile(rb'("cmdline"\s*:\s*)\[[^\]]*\]')
STATS_NUMBER_RE = re.compile(rb"(?<=[:\[,])(\s*)-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
BOUNDARY_RE = re.compile(r'boundary="?([^";,\s]+)"?')

_live_servers: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_stop = threading.Event()


# --------------------------------------------------------------------------------------------
# Case and request model
# --------------------------------------------------------------------------------------------


@dataclass
class Req:
    """One HTTP request of a case, already resolved to bytes."""

    name: str
    method: str
    path: str  # path relative to the URL prefix, may include a query string
    headers: dict[str, str]
    body: bytes | None
    raw_path: bool = False  # do not prepend URL_PREFIX
    variant_of: int | None = None  # index of the canonical request for slash variants
    normalise: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Case:
    name: str
    model_dir: Path
    target_type: str | None
    args: list[str]
    env: dict[str, str]
    prepare: str | None
    requests: list[Req]
    description: str = ""
    url_prefix: str = ""


def _data_file(case_dir: Path, name: str) -> Path:
    for base in (case_dir, DATA_DIR):
        p = base / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"data file {name!r} not found in {case_dir} or {DATA_DIR}")


def _body_from(spec: dict[str, Any], case_dir: Path) -> bytes | None:
    if "body" in spec:
        return None if spec["body"] is None else str(spec["body"]).encode("utf-8")
    if "body_file" in spec:
        return _data_file(case_dir, spec["body_file"]).read_bytes()
    if "body_hex" in spec:
        if not isinstance(spec["body_hex"], str):
            raise TypeError(f"body_hex must be a quoted string in YAML: {spec!r}")
        return bytes.fromhex(spec["body_hex"])
    if "body_b64" in spec:
        return base64.b64decode(spec["body_b64"])
    if "body_latin1" in spec:
        return str(spec["body_latin1"]).encode("latin-1")
    if "json" in spec:
        return json.dumps(spec["json"]).encode("utf-8")
    return None


def _multipart(parts: list[dict[str, Any]], case_dir: Path) -> bytes:
    out = bytearray()
    for part in parts:
        if "file" in part:
            content = _data_file(case_dir, part["file"]).read_bytes()
        elif "hex" in part:
            content = bytes.fromhex(part["hex"])
        else:
            content = str(part.get("text", "")).encode("utf-8")
        disp = f'form-data; name="{part["name"]}"'
        filename = part.get("filename")
        if filename is None and "file" in part and not part.get("field"):
            filename = Path(part["file"]).name
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n".encode()
        if part.get("content_type"):
            out += f"Content-Type: {part['content_type']}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def toggle_slash(path: str, prefix: str = "") -> str:
    base, sep, query = path.partition("?")
    if base in ("", "/"):
        # Under a URL prefix the root route is "<prefix>/": its variant is "<prefix>".
        return ("" if base == "/" else "/") + sep + query if prefix else path
    base = base[:-1] if base.endswith("/") else base + "/"
    return base + sep + query


def build_request(spec: dict[str, Any], case_dir: Path) -> Req:
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    body: bytes | None
    if "files" in spec:
        body = _multipart(spec["files"], case_dir)
        headers.setdefault("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    else:
        body = _body_from(spec, case_dir)
        if "json" in spec:
            headers.setdefault("Content-Type", "application/json")
    method = str(spec.get("method") or ("POST" if body is not None else "GET")).upper()
    path = str(spec["path"])
    query = spec.get("query")
    if query:
        path += "?" + (query if isinstance(query, str) else urlencode(query, doseq=True))
    name = str(spec.get("name") or "")
    norm = [(p["pattern"].encode(), p.get("repl", "<X>").encode()) for p in spec.get("normalise", [])]
    return Req(
        name=name,
        method=method,
        path=path,
        headers=headers,
        body=body,
        raw_path=bool(spec.get("raw_path")),
        normalise=norm,
    )


def expand_requests(specs: list[dict[str, Any]], case_dir: Path, prefix: str = "") -> list[Req]:
    out: list[Req] = []
    for spec in specs:
        req = build_request(spec, case_dir)
        out.append(req)
        if spec.get("slash_variant") and toggle_slash(req.path, prefix) != req.path:
            alt = copy.deepcopy(req)
            alt.path = toggle_slash(req.path, prefix)
            alt.variant_of = len(out) - 1
            alt.name = (req.name + " " if req.name else "") + "[slash variant]"
            out.append(alt)
    for r in out:
        if not r.name:
            r.name = f"{r.method} {r.path}"
    return out


# Standard probe groups ----------------------------------------------------------------------


def _post(path: str, name: str, slash: bool = False, **kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"method": "POST", "path": path, "name": name, **kw}
    if slash:
        spec["slash_variant"] = True
    return spec


def probe_group(group: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    csv = cfg.get("data_csv", "num.csv")
    mtx = cfg.get("data_mtx", "sparse.mtx")
    colnames = cfg.get("data_colnames", "sparse.colnames")
    sparse = cfg.get("sparse", True)
    ct_csv = {"Content-Type": "text/csv"}
    if group == "meta":
        return [
            {"path": "/", "name": "GET /", "slash_variant": True},
            {"path": "/ping/", "name": "GET /ping/", "slash_variant": True},
            {"path": "/health/", "name": "GET /health/", "slash_variant": True},
            {"path": "/info/", "name": "GET /info/", "slash_variant": True},
            {"path": "/capabilities/", "name": "GET /capabilities/", "slash_variant": True},
            {"path": "/stats/", "name": "GET /stats/", "slash_variant": True},
            {"path": "/ping/", "name": "GET /ping/ X-Request-ID echo", "headers": {"X-Request-ID": "compare-req-0001"}},
            {"path": "/info/", "name": "GET /info/ with query", "query": {"a": "1"}},
            {"path": "/nonexistent", "name": "unknown route"},
            {"path": "/nonexistent/", "name": "unknown route with slash"},
            {"path": "/ping/", "method": "POST", "name": "wrong method POST /ping/", "body": ""},
            {"path": "/info/", "method": "DELETE", "name": "wrong method DELETE /info/"},
            {"path": "/predict/", "method": "GET", "name": "wrong method GET /predict/"},
            {"path": "/models", "name": "GET /models", "slash_variant": True},
            {"path": "/v1/models", "name": "GET /v1/models"},
            _post(
                "/chat/completions",
                "POST /chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            ),
            _post(
                "/v1/chat/completions",
                "POST /v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            ),
            {"path": "/directAccess/v1/models", "name": "GET /directAccess/..."},
            _post("/nim/v1/chat", "POST /nim/...", body="{}", headers={"Content-Type": "application/json"}),
        ]
    if group == "methods":
        return [
            {"path": "/info/", "method": "HEAD", "name": "HEAD /info/"},
            {"path": "/predict/", "method": "OPTIONS", "name": "OPTIONS /predict/"},
            {"path": "/predict/", "method": "PUT", "name": "wrong method PUT /predict/", "body": "a"},
        ]
    if group == "structured":
        reqs = [
            _post("/predict/", "predict csv", True, body_file=csv, headers=ct_csv),
            _post("/predictions/", "predictions csv", True, body_file=csv, headers=ct_csv),
            _post("/invocations", "invocations csv", True, body_file=csv, headers=ct_csv),
            _post("/predict/", "predict csv no content-type", body_file=csv),
            _post("/predict/", "predict csv text/plain", body_file=csv, headers={"Content-Type": "text/plain"}),
            _post(
                "/predict/", "predict csv charset", body_file=csv, headers={"Content-Type": "text/csv; charset=utf-8"}
            ),
            _post(
                "/predict/",
                "predict csv X-Request-ID",
                body_file=csv,
                headers={"Content-Type": "text/csv", "X-Request-ID": "compare-req-0002"},
            ),
            _post(
                "/predict/",
                "multipart X .csv",
                files=[{"name": "X", "filename": "X.csv", "file": csv, "content_type": "text/csv"}],
            ),
            _post("/predictions/", "multipart X no extension", files=[{"name": "X", "filename": "data", "file": csv}]),
            _post(
                "/predict/", "multipart wrong field X.csv", files=[{"name": "X.csv", "filename": "X.csv", "file": csv}]
            ),
            _post("/predict/", "multipart X as plain field", files=[{"name": "X", "file": csv, "field": True}]),
            _post("/predict/", "empty body", body=""),
            _post("/predict/", "empty body text/csv", body="", headers=ct_csv),
            _post(
                "/predict/",
                "form-urlencoded",
                body="a=1&b=2",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            _post("/predict/", "application/json body", json={"x1": [1, 2]}),
            _post(
                "/predict/",
                "arrow content-type",
                body_file=csv,
                headers={"Content-Type": "application/x-apache-arrow-stream"},
            ),
            _post("/predict/", "unknown content-type", body_file=csv, headers={"Content-Type": "application/foo"}),
            _post("/predict/", "non-utf8 csv", body_latin1="x1,x2\ncaf\u00e9,1\n", headers=ct_csv),
            _post("/predict/", "malformed csv", body_file="malformed.csv", headers=ct_csv),
            _post("/transform/", "wrong endpoint /transform/", body_file=csv, headers=ct_csv),
            _post(
                "/predictUnstructured/",
                "wrong endpoint /predictUnstructured/",
                True,
                body="hello",
                headers={"Content-Type": "text/plain"},
            ),
            _post(
                "/predictionsUnstructured/",
                "wrong endpoint /predictionsUnstructured/",
                body="hello",
                headers={"Content-Type": "text/plain"},
            ),
        ]
        if sparse:
            reqs += [
                _post(
                    "/predict/",
                    "multipart X .mtx + X.colnames",
                    files=[
                        {"name": "X", "filename": "X.mtx", "file": mtx},
                        {"name": "X.colnames", "filename": "X.colnames", "file": colnames},
                    ],
                ),
                _post(
                    "/predict/",
                    "multipart X .mtx without colnames",
                    files=[{"name": "X", "filename": "X.mtx", "file": mtx}],
                ),
                _post("/predict/", "raw body text/mtx", body_file=mtx, headers={"Content-Type": "text/mtx"}),
            ]
        return reqs
    if group == "transform":
        return [
            _post("/transform/", "transform csv", True, body_file=csv, headers=ct_csv),
            _post("/transform/", "transform csv no content-type", body_file=csv),
            _post("/transform/", "transform multipart X", files=[{"name": "X", "filename": "X.csv", "file": csv}]),
            _post(
                "/transform/",
                "transform multipart X + y",
                files=[
                    {"name": "X", "filename": "X.csv", "file": csv},
                    {"name": "y", "filename": "y.csv", "file": cfg.get("data_y", "y.csv")},
                ],
            ),
            _post(
                "/transform/",
                "transform multipart X .mtx + X.colnames",
                files=[
                    {"name": "X", "filename": "X.mtx", "file": mtx},
                    {"name": "X.colnames", "filename": "X.colnames", "file": colnames},
                ],
            ),
            _post(
                "/transform/", "transform multipart y only", files=[{"name": "y", "filename": "y.csv", "file": "y.csv"}]
            ),
            _post("/transform/", "transform empty body", body=""),
            _post("/transform/", "transform json", json={"x1": [1]}),
            _post("/transform/", "transform malformed csv", body_file="malformed.csv", headers=ct_csv),
            _post(
                "/transform/",
                "transform X-Request-ID",
                body_file=csv,
                headers={"Content-Type": "text/csv", "X-Request-ID": "compare-req-0003"},
            ),
            _post("/predict/", "wrong endpoint /predict/", True, body_file=csv, headers=ct_csv),
            _post("/invocations", "wrong endpoint /invocations", body_file=csv, headers=ct_csv),
            _post(
                "/predictUnstructured/",
                "wrong endpoint /predictUnstructured/",
                body="hello",
                headers={"Content-Type": "text/plain"},
            ),
        ]
    if group == "unstructured":
        tp = {"Content-Type": "text/plain"}
        return [
            _post("/predictUnstructured/", "unstructured text", True, body="hello world", headers=tp),
            _post("/predictionsUnstructured/", "predictionsUnstructured text", True, body="one two three", headers=tp),
            _post("/predictUnstructured/", "unstructured no content-type", body="no type"),
            _post("/predictUnstructured/", "unstructured empty body", body=""),
            _post("/predictUnstructured/", "unstructured json", json={"a": [1, 2]}),
            _post(
                "/predictUnstructured/",
                "unstructured octet-stream",
                body_hex="00010203fffe",
                headers={"Content-Type": "application/octet-stream"},
            ),
            _post(
                "/predictUnstructured/",
                "unstructured latin-1 charset",
                body_latin1="caf\u00e9 cr\u00e8me",
                headers={"Content-Type": "text/plain; charset=latin-1"},
            ),
            _post(
                "/predictUnstructured/", "unstructured csv", body_file="num.csv", headers={"Content-Type": "text/csv"}
            ),
            _post(
                "/predictUnstructured/",
                "unstructured multipart",
                files=[{"name": "X", "filename": "X.csv", "file": "num.csv"}],
            ),
            _post(
                "/predictUnstructured/",
                "unstructured X-Request-ID",
                body="x",
                headers={"Content-Type": "text/plain", "X-Request-ID": "compare-req-0004"},
            ),
            _post("/predict/", "wrong endpoint /predict/", True, body_file="num.csv", headers=ct_csv),
            _post("/predictions/", "wrong endpoint /predictions/", body_file="num.csv", headers=ct_csv),
            _post("/invocations", "wrong endpoint /invocations", body_file="num.csv", headers=ct_csv),
            _post("/transform/", "wrong endpoint /transform/", body_file="num.csv", headers=ct_csv),
        ]
    if group == "error_server":
        return [
            {"path": "/", "name": "GET / (error server)"},
            {"path": "/ping/", "name": "GET /ping/ (error server)", "slash_variant": True},
            {"path": "/health/", "name": "GET /health/ (error server)", "slash_variant": True},
            {"path": "/info/", "name": "GET /info/ (error server)", "slash_variant": True},
            {"path": "/capabilities/", "name": "GET /capabilities/ (error server)"},
            {"path": "/stats/", "name": "GET /stats/ (error server)"},
            {"path": "/ping/", "name": "error server X-Request-ID", "headers": {"X-Request-ID": "compare-req-0005"}},
            _post("/predict/", "predict (error server)", True, body_file="num.csv", headers=ct_csv),
            _post("/predictions/", "predictions (error server)", body_file="num.csv", headers=ct_csv),
            _post("/invocations", "invocations (error server)", body_file="num.csv", headers=ct_csv),
            _post("/transform/", "transform (error server)", body_file="num.csv", headers=ct_csv),
            _post(
                "/predictUnstructured/",
                "predictUnstructured (error server)",
                body="x",
                headers={"Content-Type": "text/plain"},
            ),
            _post(
                "/predictionsUnstructured/",
                "predictionsUnstructured (error server)",
                body="x",
                headers={"Content-Type": "text/plain"},
            ),
            _post(
                "/chat/completions",
                "chat (error server)",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            ),
            {"path": "/models", "name": "GET /models (error server)"},
            {"path": "/nonexistent", "name": "unknown route (error server)"},
            {"path": "/predict/", "method": "GET", "name": "wrong method (error server)"},
        ]
    if group == "prefix":
        return [
            {"path": "/ping/", "name": "no prefix /ping/", "raw_path": True},
            {"path": "/info/", "name": "no prefix /info/", "raw_path": True},
            {"path": "/", "name": "no prefix /", "raw_path": True},
            _post("/predict/", "no prefix /predict/", raw_path=True, body_file="num.csv", headers=ct_csv),
        ]
    raise ValueError(f"unknown probe group {group!r}")


def _subst(value: str, code_dir: str) -> str:
    return value.replace("{code_dir}", code_dir)


def load_cases(models_dir: Path) -> list[Case]:
    cases: list[Case] = []
    for case_file in sorted(models_dir.glob("*/case.yaml")):
        case_dir = case_file.parent
        raw = yaml.safe_load(case_file.read_text()) or {}
        variants = raw.pop("variants", None) or []
        configs: list[tuple[str, dict[str, Any]]] = [(case_dir.name, raw)]
        for v in variants:
            merged = copy.deepcopy(raw)
            vname = v.pop("name")
            env = dict(merged.get("env") or {})
            env.update(v.pop("env", None) or {})
            merged.update(v)
            merged["env"] = env
            if "extra_args" in v:
                merged["args"] = list(raw.get("args") or []) + list(v["extra_args"])
            configs.append((f"{case_dir.name}:{vname}", merged))
        for name, cfg in configs:
            specs: list[dict[str, Any]] = []
            for group in cfg.get("probes") or []:
                specs += probe_group(group, cfg)
            specs += cfg.get("requests") or []
            env = {str(k): str(v) for k, v in (cfg.get("env") or {}).items()}
            prefix = env.get("URL_PREFIX", "").rstrip("/")
            cases.append(
                Case(
                    name=name,
                    model_dir=case_dir,
                    target_type=cfg.get("target_type"),
                    args=[str(a) for a in cfg.get("args") or []],
                    env=env,
                    prepare=cfg.get("prepare"),
                    requests=expand_requests(specs, case_dir, prefix),
                    description=str(cfg.get("description", "")),
                    url_prefix=prefix,
                )
            )
    return cases


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may still hold workers even if the leader is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with _live_lock:
        _live_servers.discard(proc)


def kill_all_servers() -> None:
    with _live_lock:
        procs = list(_live_servers)
    for p in procs:
        kill_group(p, grace=1.0)


@dataclass
class Server:
    side: str
    code_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    start_s: float = 0.0
    ready_status: int | None = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")


def start_server(
    side: str, cmd: list[str], case: Case, code_dir: Path, work: Path, extra_env: dict[str, str]
) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV and not k.startswith(SCRUBBED_PREFIXES)}
    home = work / "home"
    home.mkdir(exist_ok=True)
    env.update({"PYTHONUNBUFFERED": "1", "HOME": str(home)})
    env.update({k: _subst(v, str(code_dir)) for k, v in case.env.items()})
    env.update(extra_env)
    argv = [*cmd, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{port}"]
    if case.target_type:
        argv += ["--target-type", case.target_type]
    argv += [_subst(a, str(code_dir)) for a in case.args]
    log_path = work / "server.log"
    with open(log_path, "ab") as log:
        log.write(("$ " + shlex.join(argv) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=str(code_dir),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    with _live_lock:
        _live_servers.add(proc)
    return Server(side=side, code_dir=code_dir, port=port, proc=proc, log_path=log_path)


def wait_ready(server: Server, prefix: str, deadline: float) -> bool:
    """Ready once GET <prefix>/ping/ gets any HTTP answer (200, or 513 from an error server)."""
    t0 = time.monotonic()
    url = f"http://127.0.0.1:{server.port}{prefix}/ping/"
    while time.monotonic() < deadline and not _stop.is_set():
        if server.proc.poll() is not None:
            return False
        try:
            r = requests.get(url, timeout=2.0)
            server.ready_status = r.status_code
            server.start_s = time.monotonic() - t0
            return True
        except requests.RequestException:
            time.sleep(0.1)
    return False


# --------------------------------------------------------------------------------------------
# Sending and comparing
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int | None = None
    ctype: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    elapsed_ms: float = 0.0


def send(server: Server, prefix: str, req: Req, timeout: float) -> Reply:
    path = req.path if req.raw_path else prefix + req.path
    url = f"http://127.0.0.1:{server.port}{path}"
    t0 = time.monotonic()
    try:
        r = requests.request(
            req.method, url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
        )
        return Reply(
            status=r.status_code,
            ctype=r.headers.get("Content-Type"),
            body=r.content,
            headers={h: r.headers[h] for h in COMPARED_HEADERS if h in r.headers},
            elapsed_ms=(time.monotonic() - t0) * 1000,
        )
    except requests.RequestException as e:
        return Reply(error=f"{type(e).__name__}: {e}", elapsed_ms=(time.monotonic() - t0) * 1000)


def normalise(reply: Reply, server: Server, req: Req) -> Reply:
    if reply.error is not None:
        return reply
    subs: list[tuple[bytes, bytes]] = []
    for p in {str(server.code_dir), os.path.realpath(server.code_dir)}:
        subs.append((p.encode(), b"<CODE_DIR>"))
        subs.append((p.replace("/", "\\/").encode(), b"<CODE_DIR>"))  # pandas to_json escapes "/"
    for host in ("127.0.0.1", "localhost"):
        subs.append((f"{host}:{server.port}".encode(), b"<HOST>"))
    ctype = reply.ctype
    body = reply.body
    if ctype:
        m = BOUNDARY_RE.search(ctype)
        if m and ctype.lower().startswith("multipart/"):
            subs.insert(0, (m.group(1).encode(), b"<BOUNDARY>"))

    def apply(data: bytes) -> bytes:
        for old, new in subs:
            data = data.replace(old, new)
        data = UUID_RE.sub(b"<UUID>", data)
        data = ADDR_RE.sub(b"0x<ADDR>", data)
        for pat, repl in req.normalise:
            data = re.sub(pat, repl, data)
        return data

    body = apply(body)
    body = DRUM_SERVER_RE.sub(rb'\1"<SERVER>"', body)
    if req.path.split("?")[0].rstrip("/").endswith("/stats") and reply.status == 200:
        body = STATS_CMDLINE_RE.sub(rb"\1[]", body)
        body = STATS_NUMBER_RE.sub(rb"\g<1>0", body)
    headers = {k: apply(v.encode("latin-1", "replace")).decode("latin-1") for k, v in reply.headers.items()}
    if "Allow" in headers:  # werkzeug builds it from a set: the order is random
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
    ctype_n = apply(ctype.encode("latin-1", "replace")).decode("latin-1") if ctype is not None else None
    return Reply(
        status=reply.status, ctype=ctype_n, body=body, headers=headers, error=reply.error, elapsed_ms=reply.elapsed_ms
    )


def _first_diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def diff_reasons(theirs: Reply, ours: Reply, strict_headers: bool) -> tuple[list[str], list[str]]:
    """Return (verdict-relevant differences, header-only differences)."""
    reasons: list[str] = []
    if theirs.error or ours.error:
        if theirs.error and ours.error and theirs.error.split(":")[0] == ours.error.split(":")[0]:
            return [], []
        return [f"request error: theirs={theirs.error!r} ours={ours.error!r}"], []
    if theirs.status != ours.status:
        reasons.append(f"status {theirs.status} != {ours.status}")
    if theirs.ctype != ours.ctype:
        reasons.append(f"content-type {theirs.ctype!r} != {ours.ctype!r}")
    if theirs.body != ours.body:
        i = _first_diff(theirs.body, ours.body)
        lo = max(0, i - 40)
        reasons.append(
            f"body differs at byte {i} (len {len(theirs.body)} vs {len(ours.body)}): "
            f"theirs …{theirs.body[lo : i + 60]!r} ours …{ours.body[lo : i + 60]!r}"
        )
    hdr: list[str] = []
    for h in COMPARED_HEADERS:
        tv, ov = theirs.headers.get(h), ours.headers.get(h)
        if tv != ov:
            hdr.append(f"header {h}: {tv!r} != {ov!r}")
    if strict_headers:
        reasons += hdr
    return reasons, hdr


@dataclass
class Outcome:
    req: Req
    verdict: str  # identical | deviation:<kind> | different | error
    reasons: list[str]
    header_diffs: list[str]
    theirs: Reply
    ours: Reply


def classify(req: Req, theirs: Reply, ours: Reply, canonical: Outcome | None, strict_headers: bool) -> Outcome:
    reasons, hdr = diff_reasons(theirs, ours, strict_headers)
    if not reasons:
        return Outcome(req, "identical", [], hdr, theirs, ours)
    if theirs.error or ours.error:
        return Outcome(req, "error", reasons, hdr, theirs, ours)
    # Decided deviation 1: slash variants are served directly instead of 308 (or 404 for routes
    # declared without a trailing slash). Ours must then answer like the canonical route did.
    if canonical is not None and theirs.status in (308, 404) and canonical.theirs.error is None:
        c_reasons, _ = diff_reasons(canonical.theirs, ours, False)
        if not c_reasons:
            hdr = [h for h in hdr if not h.startswith("header Location")]
            return Outcome(req, "deviation:slash", reasons, hdr, theirs, ours)
        if ours.status not in (308, 404):
            return Outcome(
                req,
                "different",
                ["slash variant answered directly but unlike the canonical route: " + "; ".join(c_reasons)],
                hdr,
                theirs,
                ours,
            )
    # Decided deviation 2: unknown routes / wrong methods answer JSON instead of Flask's HTML page.
    if (
        theirs.status in (404, 405)
        and ours.status == theirs.status
        and (theirs.ctype or "").startswith("text/html")
        and (ours.ctype or "").startswith("application/json")
    ):
        return Outcome(req, "deviation:json-error", reasons, hdr, theirs, ours)
    return Outcome(req, "different", reasons, hdr, theirs, ours)


# --------------------------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    outcomes: list[Outcome] = field(default_factory=list)
    problem: str | None = None  # "theirs-start-failed", "ours-start-failed", "prepare-failed", ...
    theirs_log: str = ""
    ours_log: str = ""
    theirs_start_s: float | None = None
    ours_start_s: float | None = None
    wall_s: float = 0.0

    def count(self, prefix: str) -> int:
        return sum(1 for o in self.outcomes if o.verdict.startswith(prefix))


@dataclass
class Options:
    ours: list[str]
    theirs: list[str]
    ours_env: dict[str, str]
    theirs_env: dict[str, str]
    timeout: float
    start_timeout: float
    case_timeout: float
    strict_headers: bool
    keep: bool
    prepare_python: str


def _copy_model(src: Path, dst: Path, exclude: set[str]) -> None:
    shutil.copytree(
        src, dst, ignore=lambda d, names: [n for n in names if n in exclude or n == "__pycache__" or n.endswith(".pyc")]
    )


def run_case(case: Case, opts: Options, root: Path) -> CaseResult:
    res = CaseResult(case=case)
    t_start = time.monotonic()
    deadline = t_start + opts.case_timeout
    work = Path(tempfile.mkdtemp(prefix=case.name.replace(":", "_") + "-", dir=root))
    exclude = {"case.yaml"} | ({case.prepare} if case.prepare else set())
    staging = work / "staging" / case.model_dir.name
    _copy_model(case.model_dir, staging, exclude)
    if case.prepare:
        p = subprocess.run(
            [opts.prepare_python, str(case.model_dir / case.prepare)],
            cwd=staging,
            capture_output=True,
            timeout=max(5.0, deadline - time.monotonic()),
        )
        if p.returncode != 0:
            res.problem = "prepare-failed"
            res.theirs_log = (p.stdout + p.stderr).decode("utf-8", "replace")[-4000:]
            res.wall_s = time.monotonic() - t_start
            return res
    servers: dict[str, Server] = {}
    try:
        for side, cmd, extra in (("theirs", opts.theirs, opts.theirs_env), ("ours", opts.ours, opts.ours_env)):
            side_dir = work / side
            side_dir.mkdir()
            code_dir = side_dir / case.model_dir.name
            shutil.copytree(staging, code_dir)
            servers[side] = start_server(side, cmd, case, code_dir, side_dir, extra)
        start_deadline = min(deadline, time.monotonic() + opts.start_timeout)
        ready: dict[str, bool] = {}
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            futs = {s: ex.submit(wait_ready, srv, case.url_prefix, start_deadline) for s, srv in servers.items()}
            for s, f in futs.items():
                ready[s] = f.result()
        res.theirs_start_s = servers["theirs"].start_s if ready["theirs"] else None
        res.ours_start_s = servers["ours"].start_s if ready["ours"] else None
        if _stop.is_set():
            res.problem = "interrupted"
        elif not ready["theirs"]:
            res.problem = "theirs-start-failed"
        elif not ready["ours"]:
            res.problem = "ours-start-failed"
        if res.problem is None:
            for req in case.requests:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or _stop.is_set():
                    res.problem = "case-timeout" if not _stop.is_set() else "interrupted"
                    break
                t = min(opts.timeout, remaining)
                theirs = normalise(send(servers["theirs"], case.url_prefix, req, t), servers["theirs"], req)
                ours = normalise(send(servers["ours"], case.url_prefix, req, t), servers["ours"], req)
                canonical = res.outcomes[req.variant_of] if req.variant_of is not None else None
                res.outcomes.append(classify(req, theirs, ours, canonical, opts.strict_headers))
    finally:
        for srv in servers.values():
            kill_group(srv.proc)
        if "theirs" in servers:
            res.theirs_log = servers["theirs"].log_tail()
        if "ours" in servers:
            res.ours_log = servers["ours"].log_tail()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    res.wall_s = time.monotonic() - t_start
    return res


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _body_text(b: bytes, limit: int) -> str:
    s = b.decode("utf-8", "backslashreplace")
    return s if len(s) <= limit else s[:limit] + f"… [{len(s) - limit} more chars]"


def _reply_json(r: Reply, limit: int) -> dict[str, Any]:
    return {
        "status": r.status,
        "content_type": r.ctype,
        "headers": r.headers,
        "body": _body_text(r.body, limit),
        "error": r.error,
        "elapsed_ms": round(r.elapsed_ms, 1),
    }


def build_report(results: list[CaseResult], opts: Options, report_all: bool, limit: int) -> dict[str, Any]:
    total, ident, dev, comparable_cases = _totals(results)
    cases = []
    for r in results:
        entries = []
        for o in r.outcomes:
            if o.verdict == "identical" and not report_all and not o.header_diffs:
                continue
            entries.append(
                {
                    "name": o.req.name,
                    "method": o.req.method,
                    "path": o.req.path,
                    "verdict": o.verdict,
                    "reasons": o.reasons,
                    "header_diffs": o.header_diffs,
                    "theirs": _reply_json(o.theirs, limit),
                    "ours": _reply_json(o.ours, limit),
                }
            )
        cases.append(
            {
                "name": r.case.name,
                "model_dir": str(r.case.model_dir),
                "problem": r.problem,
                "requests": len(r.case.requests),
                "identical": r.count("identical"),
                "deviations": r.count("deviation"),
                "different": r.count("different"),
                "errors": r.count("error"),
                "theirs_start_s": r.theirs_start_s,
                "ours_start_s": r.ours_start_s,
                "wall_s": round(r.wall_s, 2),
                "theirs_log_tail": r.theirs_log if (r.problem or entries) else "",
                "ours_log_tail": r.ours_log if (r.problem or entries) else "",
                "outcomes": entries,
            }
        )
    return {
        "ours": opts.ours,
        "theirs": opts.theirs,
        "ours_env": opts.ours_env,
        "theirs_env": opts.theirs_env,
        "summary": {
            "cases": len(results),
            "comparable_cases": comparable_cases,
            "requests": total,
            "identical": ident,
            "decided_deviations": dev,
            "identical_pct": round(100.0 * ident / total, 2) if total else 0.0,
            "identical_or_deviation_pct": round(100.0 * (ident + dev) / total, 2) if total else 0.0,
        },
        "cases": cases,
    }


def _totals(results: list[CaseResult]) -> tuple[int, int, int, int]:
    """Requests of cases whose reference server started count; ours failing to start counts as 0."""
    total = ident = dev = comparable = 0
    for r in results:
        if r.problem in ("theirs-start-failed", "prepare-failed", "interrupted"):
            continue
        comparable += 1
        total += len(r.case.requests)
        ident += r.count("identical")
        dev += r.count("deviation")
    return total, ident, dev, comparable


def print_table(results: list[CaseResult], show: int, verbose: bool) -> None:
    w = max([len(r.case.name) for r in results] + [4])
    head = (
        f"{'case':<{w}}  {'reqs':>4} {'ident':>5} {'dev':>4} {'diff':>4} {'err':>4} {'hdr':>4}  {'start t/o':>11}  note"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        hdr = sum(1 for o in r.outcomes if o.header_diffs)
        st = (
            (f"{r.theirs_start_s:.1f}" if r.theirs_start_s is not None else "-")
            + "/"
            + (f"{r.ours_start_s:.1f}" if r.ours_start_s is not None else "-")
        )
        print(
            f"{r.case.name:<{w}}  {len(r.case.requests):>4} {r.count('identical'):>5} "
            f"{r.count('deviation'):>4} {r.count('different'):>4} {r.count('error'):>4} {hdr:>4}  "
            f"{st:>11}  {r.problem or ''}"
        )
    shown = 0
    lines: list[str] = []
    for r in results:
        if r.problem and r.problem not in ("case-timeout", "interrupted"):
            log = r.ours_log if r.problem == "ours-start-failed" else r.theirs_log
            lines.append(f"[{r.case.name}] {r.problem}; log tail:\n    " + "\n    ".join(log.strip().splitlines()[-8:]))
        for o in r.outcomes:
            if o.verdict in ("different", "error") or (verbose and o.verdict != "identical"):
                if shown >= show:
                    continue
                shown += 1
                lines.append(f"[{r.case.name}] {o.verdict}: {o.req.name} ({o.req.method} {o.req.path})")
                lines += [f"    - {x}" for x in o.reasons]
            if verbose and o.header_diffs:
                lines.append(f"[{r.case.name}] headers: {o.req.name}")
                lines += [f"    - {x}" for x in o.header_diffs]
    if lines:
        print("\nDetails:")
        print("\n".join(lines))
    total, ident, dev, comparable = _totals(results)
    skipped = len(results) - comparable
    pct = 100.0 * ident / total if total else 0.0
    pct2 = 100.0 * (ident + dev) / total if total else 0.0
    print()
    if skipped:
        print(
            f"WARNING: {skipped} case(s) not counted (reference server failed to start, prepare failed, or interrupted)"
        )
    print(f"decided deviations: {dev}; identical or decided deviation: {ident + dev}/{total} ({pct2:.1f}%)")
    print(f"identical: {ident}/{total} ({pct:.1f}%)")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _env_pairs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {v!r}")
        out[k] = val
    return out


def _select(cases: list[Case], patterns: list[str]) -> list[Case]:
    if not patterns:
        return cases
    out = []
    for c in cases:
        base = c.name.split(":")[0]
        if any(c.name == p or base == p or fnmatch.fnmatch(c.name, p) for p in patterns):
            out.append(c)
    return out


def _on_signal(signum: int, _frame: Any) -> None:
    if _stop.is_set():  # second signal: give up at once
        kill_all_servers()
        os._exit(128 + signum)
    _stop.set()
    kill_all_servers()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", default=DEFAULT_OURS, help="command for our drum (shell-split)")
    ap.add_argument("--theirs", default=DEFAULT_THEIRS, help="command for the reference DRUM (shell-split)")
    ap.add_argument("--ours-env", action="append", default=[], metavar="K=V", help="extra env for our server")
    ap.add_argument(
        "--theirs-env", action="append", default=[], metavar="K=V", help="extra env for the reference server"
    )
    ap.add_argument(
        "--self-test",
        action="store_true",
        help="compare DRUM (gunicorn, default) with DRUM in werkzeug mode: the noise floor",
    )
    ap.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="NAME",
        help="case name, 'dir' (all its variants) or glob; repeatable",
    )
    ap.add_argument("--list", action="store_true", help="list cases and request counts, start nothing")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    ap.add_argument("--start-timeout", type=float, default=60.0, help="server start timeout in seconds")
    ap.add_argument("--case-timeout", type=float, default=240.0, help="bound on one case's total time")
    ap.add_argument("--jobs", "-j", type=int, default=4, help="cases run in parallel")
    ap.add_argument("--report", type=Path, help="write the JSON report here")
    ap.add_argument("--report-all", action="store_true", help="include identical requests in the report")
    ap.add_argument("--max-body", type=int, default=4000, help="body characters kept per reply in the report")
    ap.add_argument("--show", type=int, default=200, help="max differing requests printed")
    ap.add_argument(
        "--strict-headers", action="store_true", help="also require X_Request_ID/X-Drum-Version/… headers to match"
    )
    ap.add_argument("--keep", action="store_true", help="keep temp dirs (code copies, server logs)")
    ap.add_argument(
        "--prepare-python",
        default=None,
        help="python used to run case prepare scripts (default: the one next to --theirs)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="print deviations and header diffs too")
    args = ap.parse_args(argv)

    cases = _select(load_cases(MODELS_DIR), args.case)
    if args.list:
        for c in cases:
            print(f"{c.name:<40} {len(c.requests):>4} requests  {c.target_type or '(metadata)'}")
        print(f"{len(cases)} cases, {sum(len(c.requests) for c in cases)} requests")
        return 0
    if not cases:
        print("no case matched", file=sys.stderr)
        return 2

    theirs = shlex.split(args.theirs)
    ours = shlex.split(args.ours)
    ours_env = _env_pairs(args.ours_env)
    if args.self_test:
        ours = list(theirs)
        ours_env.setdefault(*WERKZEUG_ENV)
    for label, cmd in (("--theirs", theirs), ("--ours", ours)):
        if not cmd or shutil.which(cmd[0]) is None:
            print(f"{label}: command not found: {shlex.join(cmd)}", file=sys.stderr)
            return 2
    prepare_python = args.prepare_python
    if prepare_python is None:
        cand = Path(theirs[0]).parent / "python"
        prepare_python = str(cand) if cand.exists() else sys.executable
    opts = Options(
        ours=ours,
        theirs=theirs,
        ours_env=ours_env,
        theirs_env=_env_pairs(args.theirs_env),
        timeout=args.timeout,
        start_timeout=args.start_timeout,
        case_timeout=args.case_timeout,
        strict_headers=args.strict_headers,
        keep=args.keep,
        prepare_python=prepare_python,
    )

    atexit.register(kill_all_servers)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    root = Path(tempfile.mkdtemp(prefix="drum-compare-"))
    print(f"theirs: {shlex.join(theirs)} {opts.theirs_env or ''}")
    print(f"ours:   {shlex.join(ours)} {opts.ours_env or ''}")
    print(f"{len(cases)} cases, {sum(len(c.requests) for c in cases)} requests, jobs={args.jobs}\n", flush=True)
    results: dict[str, CaseResult] = {}
    interrupted = False
    ex = concurrent.futures.ThreadPoolExecutor(max(1, args.jobs))
    futs = {ex.submit(run_case, c, opts, root): c for c in cases}

    def record(f: concurrent.futures.Future[CaseResult]) -> CaseResult:
        c = futs[f]
        try:
            r = f.result()
        except Exception as e:  # a harness bug must not hide the other cases
            r = CaseResult(case=c, problem=f"harness-error: {type(e).__name__}: {e}")
        results[c.name] = r
        return r

    try:
        for f in concurrent.futures.as_completed(futs):
            r = record(f)
            print(
                f"  done {r.case.name}: {r.count('identical')}/{len(r.case.requests)} identical"
                f"{' (' + r.problem + ')' if r.problem else ''} [{r.wall_s:.1f}s]",
                flush=True,
            )
    except KeyboardInterrupt:
        interrupted = True
        _stop.set()
        print("\ninterrupted: stopping the running cases …", flush=True)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        kill_all_servers()
        for f in futs:
            if f.done() and not f.cancelled() and futs[f].name not in results:
                record(f)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept work dir {root}")
    ordered = [results[c.name] for c in cases if c.name in results]
    print()
    print_table(ordered, args.show, args.verbose)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(build_report(ordered, opts, args.report_all, args.max_body), indent=1))
        print(f"report: {args.report}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
