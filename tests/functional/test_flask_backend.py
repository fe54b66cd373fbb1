"""The legacy Flask backend (issue 5): server selection, `custom_flask.py` extensions with DRUM's endpoint
names (the migration guide's examples verbatim), gunicorn workers, and a default install without Flask."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import assert_json, free_port, run_drum, serve, server_pool

from drum.config.settings import Settings
from drum.errors import DrumCommonException
from drum.servers import select

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

REGRESSION = {
    "custom.py": """
        import os

        import pandas as pd


        def load_model(code_dir):
            marker = os.environ.get("LOAD_MARKER_DIR")
            if marker:
                open(os.path.join(marker, str(os.getpid())), "a").write("loaded\\n")
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1.5] * len(data)})
    """
}
# The migration guide's Flask examples, verbatim (seed 000, sections 1 and 2).
AUTH_EXTENSION = """
from flask import request, jsonify

def init_app(app):
    @app.before_request
    def check_auth():
        if request.endpoint == 'model_api.ping':
            return
        
        token = request.headers.get("X-Auth-Token")
        if token != "secret":
            return jsonify({"message": "Unauthorized"}), 401
"""  # noqa: W293 - verbatim
BLUEPRINT_EXTENSION = """
from flask import Blueprint, jsonify

custom_bp = Blueprint("custom", __name__)

@custom_bp.route("/custom/status")
def status():
    return jsonify({"status": "ok"})

def init_app(app):
    app.register_blueprint(custom_bp)
"""
ENDPOINTS_EXTENSION = """
from flask import jsonify, request

def init_app(app):
    @app.after_request
    def name_endpoint(response):
        response.headers["X-Endpoint"] = str(request.endpoint)
        return response
"""
ARGS = ("--target-type", "regression")
CSV = b"a\n1\n2\n"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


def _files(extension: str) -> dict[str, str]:
    return {**REGRESSION, "custom_flask.py": extension}


@pytest.mark.parametrize("server_type", ["werkzeug", "gunicorn"])
def test_auth_extension_exempts_model_api_ping(pool, server_type):
    env = {"DRUM_SERVER_TYPE": server_type}
    server = pool(("auth", server_type), _files(AUTH_EXTENSION), *ARGS, env=env)
    for path in ("/", "/ping", "/ping/"):
        assert_json(server.get(path), 200, {"message": "OK"})
    denied = server.post("/predict/", data=CSV, headers={"Content-Type": "text/csv"})
    assert_json(denied, 401, {"message": "Unauthorized"})
    assert denied.headers["X-Drum-Version"] == "1.18.1" and denied.headers["X_Request_ID"]
    assert server.get("/health/").status_code == 401
    allowed = server.post("/predict/", data=CSV, headers={"Content-Type": "text/csv", "X-Auth-Token": "secret"})
    assert_json(allowed, 200, {"predictions": [1.5, 1.5]})


def test_custom_blueprint_route(pool):
    server = pool("blueprint", _files(BLUEPRINT_EXTENSION), *ARGS, env={"DRUM_SERVER_TYPE": "flask"})
    assert_json(server.get("/custom/status"), 200, {"status": "ok"})
    assert_json(server.get("/ping/"), 200, {"message": "OK"})


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/", "model_api.ping"),
        ("GET", "/ping", "model_api.ping"),
        ("GET", "/health/", "model_api.health"),
        ("GET", "/info", "model_api.info"),
        ("GET", "/capabilities/", "model_api.capabilities"),
        ("GET", "/stats/", "model_api.stats"),
        ("POST", "/predict/", "model_api.predict"),
        ("POST", "/predictions", "model_api.predict"),
        ("POST", "/invocations", "model_api.predict"),
        ("POST", "/transform/", "model_api.transform"),
        ("POST", "/predictUnstructured/", "model_api.predict_unstructured"),
        ("POST", "/chat/completions", "model_api.chat"),
        ("GET", "/v1/models", "model_api.get_supported_llm_models"),
        ("GET", "/directAccess/a/b", "model_api.forward_request"),
        ("GET", "/nope", "None"),
    ],
)
def test_drum_endpoint_names(pool, method, path, endpoint):
    env = {"DRUM_SERVER_TYPE": "werkzeug", "URL_PREFIX": "/p"}
    server = pool("endpoints", _files(ENDPOINTS_EXTENSION), *ARGS, env=env, prefix="/p")
    assert server.request(method, path, data=CSV).headers["X-Endpoint"] == endpoint


def test_custom_flask_only_selects_flask_with_deprecation_warning(pool):
    server = pool("implicit", _files(BLUEPRINT_EXTENSION), *ARGS)
    assert server.get("/info/").json()["drumServer"] == "flask"
    assert_json(server.get("/custom/status"), 200, {"status": "ok"})
    assert "deprecated" in server.log() and "migration guide" in server.log()


def test_fastapi_extension_wins_when_both_exist(pool):
    files = {**_files(AUTH_EXTENSION), "custom_fastapi.py": "def init_app(app):\n    pass\n"}
    server = pool("both", files, *ARGS)
    assert server.get("/info/").json()["drumServer"] == "fastapi"


@pytest.mark.parametrize(
    ("server_type", "name"), [("uvicorn", "fastapi"), ("werkzeug", "flask"), ("gunicorn", "gunicorn")]
)
def test_server_type_values(pool, server_type, name):
    server = pool(("type", server_type), REGRESSION, *ARGS, env={"DRUM_SERVER_TYPE": server_type})
    assert server.get("/info/").json()["drumServer"] == name


def test_unknown_server_type_lists_valid_values(tmp_path):
    code_dir = tmp_path / "m"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text(REGRESSION["custom.py"])
    address = f"127.0.0.1:{free_port()}"
    result = run_drum(
        "server", "--code-dir", str(code_dir), *ARGS, "--address", address, env={"DRUM_SERVER_TYPE": "tornado"}
    )
    assert result.returncode != 0
    assert "fastapi, uvicorn, flask, werkzeug, gunicorn" in result.stderr + result.stdout


def test_gunicorn_is_execd_and_each_worker_loads_once(tmp_path_factory, tmp_path):
    env = {"DRUM_SERVER_TYPE": "gunicorn", "LOAD_MARKER_DIR": str(tmp_path)}
    with serve(tmp_path_factory, REGRESSION, *ARGS, "--max-workers", "2", env=env) as server:
        for _ in range(6):
            assert server.post("/predict/", data=CSV, headers={"Content-Type": "text/csv"}).status_code == 200
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"gunicorn" in cmdline  # the process the user started is gunicorn's master
        deadline = time.monotonic() + 30
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        loads = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert len(loads) == 2 and set(loads.values()) == {"loaded\n"}


@pytest.mark.parametrize(
    "env",
    [
        {"DRUM_SERVER_TYPE": "gunicorn", "DRUM_GUNICORN_WORKER_CLASS": "gevent", "DRUM_WORKER_CONNECTIONS": "10"},
        {"DRUM_SERVER_TYPE": "werkzeug", "MAX_WORKERS": "2"},
    ],
    ids=["gevent", "werkzeug-processes"],
)
def test_worker_variants_serve(tmp_path_factory, env):
    with serve(tmp_path_factory, REGRESSION, *ARGS, env=env) as server:
        response = server.post("/predict/", data=CSV, headers={"Content-Type": "text/csv"})
        assert_json(response, 200, {"predictions": [1.5, 1.5]})


@pytest.mark.parametrize("server_type", ["werkzeug", "gunicorn"])
def test_load_failure_exits_without_crash_loop(tmp_path, server_type):
    code_dir = tmp_path / "failing"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text("def load_model(code_dir):\n    raise ValueError('cannot load')\n")
    address = f"127.0.0.1:{free_port()}"
    env = {"DRUM_SERVER_TYPE": server_type}
    result = run_drum("server", "--code-dir", str(code_dir), *ARGS, "--address", address, env=env, timeout=60)
    assert result.returncode != 0
    assert "cannot load" in result.stdout + result.stderr


# --- selection rules, in process -------------------------------------------------------------------


def _select(monkeypatch, code_dir: Path | None = None, installed: bool = True, **env: str) -> str:
    for name in ("DRUM_SERVER_TYPE", "MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE", "DRUM_FASTAPI_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(select, "flask_installed", lambda: installed)
    return select.select_server(Settings.read(), code_dir)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fastapi", "fastapi"),
        ("UVICORN", "fastapi"),
        ("flask", "flask"),
        ("werkzeug", "flask"),
        ("gunicorn", "gunicorn"),
    ],
)
def test_select_values(monkeypatch, value, expected):
    assert _select(monkeypatch, DRUM_SERVER_TYPE=value) == expected


def test_select_runtime_parameter(monkeypatch):
    value = json.dumps({"type": "string", "payload": "gunicorn"})
    assert _select(monkeypatch, MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE=value) == "gunicorn"


def test_select_default_and_extension_fallback(monkeypatch, tmp_path):
    assert _select(monkeypatch, tmp_path) == "fastapi"
    (tmp_path / "custom_flask.py").write_text("")
    assert _select(monkeypatch, tmp_path) == "flask"
    with pytest.raises(DrumCommonException, match=r"pip install 'drum\[flask\]'"):
        _select(monkeypatch, tmp_path, installed=False)
    (tmp_path / "custom_fastapi.py").write_text("")
    assert _select(monkeypatch, tmp_path, installed=False) == "fastapi"


def test_select_flask_without_extra_names_it(monkeypatch):
    with pytest.raises(DrumCommonException, match=r"pip install 'drum\[flask\]'"):
        _select(monkeypatch, installed=False, DRUM_SERVER_TYPE="werkzeug")


def test_select_unknown_lists_valid(monkeypatch):
    with pytest.raises(DrumCommonException, match="fastapi, uvicorn, flask, werkzeug, gunicorn"):
        _select(monkeypatch, DRUM_SERVER_TYPE="tornado")


def test_select_rollout_flag(monkeypatch):
    assert _select(monkeypatch, DRUM_FASTAPI_ENABLED="false") == "flask"


# --- packaging -----------------------------------------------------------------------------------

FLASK_PACKAGES = {"flask", "werkzeug", "gunicorn", "gevent"}


def test_default_install_has_no_flask_and_the_extra_adds_it(tmp_path):
    """A real resolution of `pip install drum` (ignoring what this venv has): no Flask stack in it."""
    root = Path(__file__).resolve().parents[2]
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    result = subprocess.run([*command, "--report", str(report), str(root)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in installs}
    assert "fastapi" in names and "uvicorn" in names
    assert not names & FLASK_PACKAGES
    drum = next(item["metadata"] for item in installs if item["metadata"]["name"] == "drum")
    extra = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower() for r in drum["requires_dist"] if "flask" in r}
    assert extra >= FLASK_PACKAGES
