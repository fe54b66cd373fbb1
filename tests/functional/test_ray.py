"""Ray (issue 20) on a real local Ray cluster started once for this module (`ray start --head` on 127.0.0.1,
stopped at the end): `drum ray-serve` answers as `drum server` does, spreads requests over two replicas,
replaces a killed replica, stops cleanly on SIGTERM; `drum score --ray-address` writes plain `drum score`'s
output. Needs Ray, which `make test` installs (tools/runtimes/setup.sh); skipped with its reason otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from support import DRUM, free_port, run_drum, skip_unless_runtime, write_model
from test_chat import OPENAI_LIKE

RAY = str(Path(sys.executable).parent / "ray")

pytestmark = pytest.mark.timeout(600)

MODEL = {
    "custom.py": """
        import os
        import pandas as pd

        def load_model(code_dir):
            return "model"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": data.sum(axis=1).astype(float)})

        def score_unstructured(model, data, **kwargs):
            return data.upper() if isinstance(data, str) else data

        def chat(completion_create_params, model):
            from openai_like import chunk, completion

            last = completion_create_params["messages"][-1]["content"]
            if completion_create_params.get("stream"):
                return iter([chunk("m", "Echo:"), chunk("m", last), chunk("m", None, finish_reason="stop")])
            return completion("m", "Echo: " + last)
    """,
    "openai_like.py": OPENAI_LIKE,
    "custom_fastapi.py": """
        import os

        def init_app(app):
            @app.get("/pid")
            def pid():
                return {"pid": os.getpid()}
    """,
}


def _ray_ready() -> None:
    skip_unless_runtime("ray", "Ray")
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'drum[ray]'")
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'drum[ray]'")


@pytest.fixture(scope="module")
def cluster() -> str:
    """One local Ray cluster for the module: its address."""
    _ray_ready()
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=4",
                    "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True,
                   env=env, timeout=180)  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=180)


class RayServe:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path):
        self.process, self.url, self.log = process, url, log

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def served(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> RayServe:
    base = tmp_path_factory.mktemp("ray_serve")
    code = write_model(base / "model", MODEL)
    port = free_port()
    log = base / "ray-serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*DRUM, "ray-serve", "--code-dir", str(code), "--target-type", "regression", "--address",
             f"127.0.0.1:{port}", "--num-replicas", "2", "--ray-address", cluster],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = RayServe(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if server.get("/").status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail(f"drum ray-serve did not start:\n{log.read_text()[-3000:]}")
    server.code = code  # type: ignore[attr-defined]
    yield server
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def _exchange(base: str) -> list[tuple]:
    """The same requests to a server: (status, content type, body, echoed request id) of each."""
    csv = b"a,b\n1,2\n3,4\n"
    calls = [
        ("GET", "/", {}), ("GET", "/ping/", {}), ("GET", "/health", {}), ("GET", "/capabilities/", {}),
        ("POST", "/predict/", {"data": csv, "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/predictions", {"files": {"X": ("x.csv", csv)}}),
        ("POST", "/predict/", {"data": b"a,b\n1,2", "headers": {"Content-Type": "application/x-nope"}}),
        ("POST", "/predict/", {"data": b"", "headers": {"Content-Type": "text/csv"}}),
        ("GET", "/predict/", {}), ("GET", "/no/such/route", {}),
        ("POST", "/predictUnstructured/", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/transform/", {"data": csv, "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/chat/completions", {"json": {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                "datarobot_association_id": "a-1"}}),
        ("POST", "/v1/chat/completions", {"json": {"model": "m", "stream": True, "datarobot_association_id": "a-2",
                                                   "messages": [{"role": "user", "content": "hi"}]}}),
    ]
    answers = []
    for method, path, kwargs in calls:
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": f"req-{path}"}
        response = requests.request(method, base + path, headers=headers, timeout=30, **kwargs)
        answers.append((method, path, response.status_code, response.headers.get("content-type"), response.content,
                        response.headers.get("X_Request_ID"), response.headers.get("X-Drum-Version")))  # fmt: skip
    return answers


def test_routes_answer_as_drum_server(served, drum_server):
    plain = drum_server(served.code, "--target-type", "regression")
    ours, theirs = _exchange(served.url), _exchange(plain.url)
    for got, want in zip(ours, theirs, strict=True):
        assert got == want
    info, plain_info = served.get("/info/").json(), plain.get("/info/").json()
    assert info == plain_info and info["drumServer"] == "fastapi"


def test_two_replicas_take_traffic(served):
    pids = {served.get("/pid").json()["pid"] for _ in range(40)}
    assert len(pids) == 2


def test_a_killed_replica_is_replaced(served):
    pids = {served.get("/pid").json()["pid"] for _ in range(40)}
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    failures, seen = 0, set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            response = served.get("/pid")
            if response.status_code == 200:
                seen.add(response.json()["pid"])
            else:
                failures += 1
        except requests.RequestException:
            failures += 1
        if seen - pids and len(seen - {victim}) >= 2:
            break
        time.sleep(0.1)
    assert seen - pids, "no replacement replica answered"
    assert victim not in {served.get("/pid").json()["pid"] for _ in range(20)}
    assert failures <= 2  # at most the request that was on the killed replica (and one retry race)


def test_sigterm_stops_the_application(served):
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(120) == 0, served.log.read_text()[-3000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url + "/", timeout=5)


def test_ray_data_score_equals_plain_score(cluster, tmp_path):
    code = write_model(tmp_path / "model", {"custom.py": MODEL["custom.py"]})
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.integers(0, 1000, size=(6000, 3)), columns=["a", "b", "c"])
    frame.loc[::7, "b"] = np.nan  # an int column with missing values in some chunks only: float everywhere
    data = tmp_path / "in.csv"
    frame.to_csv(data, index=False)
    env = {"DRUM_SCORE_CHUNK_BYTES": "20000"}
    plain = run_drum("score", "--code-dir", str(code), "--input", str(data), "--target-type", "regression",
                     "--output", str(tmp_path / "plain.csv"), env=env)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    for extra in ([], ["--ray-batch-rows", "700"]):
        out = tmp_path / f"ray{len(extra)}.csv"
        result = run_drum("score", "--code-dir", str(code), "--input", str(data), "--target-type", "regression",
                          "--output", str(out), "--ray-address", cluster, *extra, env=env, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert out.read_bytes() == (tmp_path / "plain.csv").read_bytes()
