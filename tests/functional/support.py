"""Helpers shared by the functional tests: module-scoped servers, model directories, response checks.

The fixtures and process helpers live in `tests/conftest.py`; this module loads that file by path
(so it does not depend on which `conftest` module pytest imported last) and re-exports them.

Development aid: set `DRUM_FUNCTIONAL_REFERENCE_CMD=/path/to/drum` to run the same tests against
another DRUM executable (e.g. the original DRUM 1.18.1 with the werkzeug server). Tests marked
`ours_only` pin a decided deviation and are skipped then. Nothing depends on that variable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

_CONFTEST_PATH = Path(__file__).resolve().parents[1] / "conftest.py"


def _load_conftest():
    module = sys.modules.get("conftest")
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == _CONFTEST_PATH:
        return module
    spec = importlib.util.spec_from_file_location("drum_tests_conftest", _CONFTEST_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["drum_tests_conftest"] = module
    spec.loader.exec_module(module)
    return module


_conftest = _load_conftest()
DRUM = _conftest.DRUM
DrumServer = _conftest.DrumServer
PortTaken = _conftest.PortTaken
free_port = _conftest.free_port
poll_until = _conftest.poll_until
run_drum = _conftest.run_drum
runtime_param = _conftest.runtime_param
start_server = _conftest.start_server
write_model = _conftest.write_model

REFERENCE_CMD = os.environ.get("DRUM_FUNCTIONAL_REFERENCE_CMD")
if REFERENCE_CMD:  # pragma: no cover - development aid only
    _conftest.DRUM[:] = REFERENCE_CMD.split()
    os.environ.setdefault("MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE", runtime_param("werkzeug"))

#: Tests that pin one of our decided deviations from DRUM 1.18.1 (see docs/compatibility.md).
ours_only = pytest.mark.skipif(bool(REFERENCE_CMD), reason="decided deviation from DRUM 1.18.1")

DRUM_VERSION = "1.18.1"
JSON = "application/json"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NOT_FOUND = (
    "ERROR: 404 Not Found: The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again."
)
METHOD_NOT_ALLOWED = "ERROR: 405 Method Not Allowed: The method is not allowed for the requested URL."
SAMPLES_MISSING = (
    "ERROR: Samples should be provided as:   - a csv or mtx under `X` form-data param key.  - binary data"
)


#: What `make test`'s tools/runtimes/setup.sh set up: `r=`, `java=`, `ray=` lines, `ready` or `skipped: <reason>`.
_DEFAULT_RUNTIMES_STATE = Path(__file__).resolve().parents[2] / ".venv" / ".runtimes"
RUNTIMES_STATE = Path(os.environ.get("DRUM_RUNTIMES_STATE", _DEFAULT_RUNTIMES_STATE))


def skip_unless_runtime(name: str, label: str) -> None:
    """Skip with the set-up's reason when tools/runtimes/setup.sh could not provide runtime `name`."""
    if RUNTIMES_STATE.is_file():
        state = dict(line.split("=", 1) for line in RUNTIMES_STATE.read_text().splitlines() if "=" in line)
        if state.get(name, "").startswith("skipped"):
            pytest.skip(f"{label}: {state[name]}")


#: What tools/peers/setup.sh set up: `mlserver=` and `kserve=` lines, each the python of the peer's own venv
#: (relative to the repository root, as setup.sh writes it) or empty when it could not be installed.
_REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS_STATE = Path(os.environ.get("DRUM_PEERS_STATE", _REPO_ROOT / ".venv" / ".peers"))


def peer_python(name: str) -> str:
    """The python of peer `name`'s venv (tools/peers/setup.sh); skip with the reason when there is none."""
    setup = "bash tools/peers/setup.sh .venv"
    if not PEERS_STATE.is_file():
        pytest.skip(f"{name}: no {PEERS_STATE} (run `{setup}`)")
    state = dict(line.split("=", 1) for line in PEERS_STATE.read_text().splitlines() if "=" in line)
    python = state.get(name, "").strip()
    if not python:
        pytest.skip(f"{name}: `{setup}` could not install it (see its output)")
    path = Path(python) if Path(python).is_absolute() else _REPO_ROOT / python
    if not path.is_file():
        pytest.skip(f"{name}: {path} is gone (run `{setup}` again)")
    return str(path)


def unsupported_payload(mimetype: str) -> str:
    return (
        f"ERROR: payload format `{mimetype}` is not supported by predictor/transformer. Make DRUM support the "
        "format or implement `read_input_data` hook to read the data. "
    )


@contextmanager
def serve(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, str],
    *args: str,
    env: dict[str, str] | None = None,
    prefix: str = "",
    name: str = "model",
    setup=None,
) -> Iterator[DrumServer]:
    """Write a model directory, start `drum server` on it, yield the server, stop it afterwards.

    `setup(code_dir)` may add binary artifacts (pickles) before the server starts.
    """
    server = _start(tmp_path_factory, files, args, env, prefix, name, setup)
    try:
        yield server
    finally:
        server.stop()


def _start(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, str],
    args: tuple[str, ...],
    env: dict[str, str] | None,
    prefix: str,
    name: str,
    setup,
) -> DrumServer:
    base = tmp_path_factory.mktemp(name)
    code_dir = write_model(base / "code", files)
    if setup is not None:
        setup(code_dir)
    server = start_server(code_dir, list(args), base / "server.log", env=env, prefix=prefix)
    server.code_dir = code_dir
    return server


def stop_all(servers: list[DrumServer]) -> None:
    """Signal every server first, then wait for each: shutdowns overlap instead of queueing."""
    for server in servers:
        if server.process.poll() is None:
            try:
                os.killpg(server.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for server in servers:
        server.stop()


@contextmanager
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """`get(key, files, *args, **kwargs)`: start a server the first time a key is asked for, reuse it after.

    For module-scoped fixtures whose tests are parametrized over server variants: each variant starts
    once per worker however the tests are distributed. All are stopped when the pool closes.
    """
    servers: dict[object, DrumServer] = {}

    def get(
        key: object,
        files: dict[str, str],
        *args: str,
        env: dict[str, str] | None = None,
        prefix: str = "",
        name: str = "model",
        setup=None,
    ) -> DrumServer:
        if key not in servers:
            servers[key] = _start(tmp_path_factory, files, args, env, prefix, name, setup)
        return servers[key]

    try:
        yield get
    finally:
        stop_all(list(servers.values()))


def wait_for_exit(server: DrumServer, timeout: float = 60) -> int:
    """Wait for a server process that is expected to exit on its own; returns the exit code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return code
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"drum server did not exit within {timeout}s:\n{server.log()}")


def assert_json(response: requests.Response, status: int, body: object) -> None:
    """Exact status, `application/json` content type and the parsed body."""
    assert (response.status_code, response.json()) == (status, body), response.text
    assert response.headers["Content-Type"] == JSON


def assert_error(response: requests.Response, status: int, message: str) -> None:
    """DRUM's error format: exact status and `{"message": ...}` body."""
    assert_json(response, status, {"message": message})


def assert_bytes(response: requests.Response, status: int, body: bytes, content_type: str = JSON) -> None:
    assert (response.status_code, response.content) == (status, body), response.text
    assert response.headers["Content-Type"] == content_type


def csv_bytes(rows: list[list[object]], columns: list[str]) -> bytes:
    lines = [",".join(columns)] + [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def parse_multipart(response: requests.Response) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Split a multipart/form-data response into `{field name: (exact payload bytes, part headers)}`."""
    content_type = response.headers["Content-Type"]
    match = re.fullmatch(r'multipart/form-data; boundary="?([^";]+)"?', content_type)
    assert match, content_type
    delimiter = b"--" + match.group(1).encode()
    segments = response.content.split(delimiter)
    assert segments[0] == b"" and segments[-1] in (b"--\r\n", b"--"), response.content
    parts: dict[str, tuple[bytes, dict[str, str]]] = {}
    for segment in segments[1:-1]:
        assert segment.startswith(b"\r\n") and segment.endswith(b"\r\n"), segment
        head, _, payload = segment[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        name = re.search(r'name="([^"]*)"', headers["content-disposition"])
        assert name, headers
        parts[name.group(1)] = (payload, headers)
    return parts


def dumps(obj: object) -> str:
    return json.dumps(obj)


#: A model that records which requests it scored (the first column's value, in $CALLS_FILE) and sleeps
#: for the second column's seconds: requests queue behind it (deadlines, abandoned requests).
SLEEPING_MODEL = {
    "custom.py": """
        import os
        import time

        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            with open(os.environ["CALLS_FILE"], "a") as f:
                f.write(f"{int(data.iloc[0, 0])}\\n")
            time.sleep(float(data.iloc[0, 1]))
            return pd.DataFrame({"Predictions": data.iloc[:, 0] * 1.0})
    """,
}

