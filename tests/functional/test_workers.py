"""Worker processes and lifecycle: N workers each loading the model, a killed worker replaced,
SIGTERM letting in-flight requests finish (exit 0), a worker that cannot load stopping the server."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import poll_until, runtime_param

MODEL = {
    "custom.py": """
        import os
        import time
        import pandas as pd

        def load_model(code_dir):
            print("model loaded in", os.getpid(), flush=True)
            return "m"

        def score(data, model, **kwargs):
            time.sleep(float(data["sleep"][0]))
            return pd.DataFrame({"Predictions": [float(os.getpid())] * len(data)})
    """
}
CSV = {"Content-Type": "text/csv"}


def sleep_csv(seconds: float) -> bytes:
    return f"sleep\n{seconds}\n".encode()


def worker_pids(server, attempts: int = 60) -> set[int]:
    """Pids of the workers that answered `attempts` predictions, sent 4 at a time on new connections.

    A kept-alive connection stays with one worker, and the kernel gives each new connection to whichever
    worker accepts first, so concurrent connections are what spreads them; the model predicts its pid.
    """

    def post(_: int) -> int:
        response = requests.post(
            server.url + "/predict/", data=sleep_csv(0), headers={**CSV, "Connection": "close"}, timeout=10
        )
        return int(response.json()["predictions"][0])

    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(post, range(attempts)))


def wait_until(predicate, timeout: float = 60.0) -> bool:
    return bool(poll_until(predicate, bool, timeout, interval=0.2))


def test_two_workers_each_load_the_model_and_serve(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2")
    assert wait_until(lambda: server.log().count("model loaded in") == 2)
    assert wait_until(lambda: len(worker_pids(server, 20)) == 2)
    assert server.post("/predict/", data=sleep_csv(0), headers=CSV).status_code == 200


def test_custom_model_workers_runtime_parameter(drum_server, model_dir):
    env = {"MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS": runtime_param(2, "numeric")}
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env=env)
    assert wait_until(lambda: server.log().count("model loaded in") == 2)


def test_killed_worker_is_replaced(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2")
    assert wait_until(lambda: len(worker_pids(server, 20)) == 2)
    victim = next(iter(worker_pids(server, 5)))
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: server.log().count("model loaded in") == 3)
    assert wait_until(lambda: victim not in worker_pids(server, 20) and len(worker_pids(server, 20)) == 2)
    assert server.post("/predict/", data=sleep_csv(0), headers=CSV).status_code == 200


def _sigterm_with_requests_in_flight(server) -> tuple[list[int], int]:
    statuses: list[int] = []

    def call():
        response = server.session.post(server.url + "/predict/", data=sleep_csv(1.5), headers=CSV, timeout=30)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    os.kill(server.process.pid, signal.SIGTERM)
    for t in threads:
        t.join(30)
    return statuses, server.process.wait(30)


def test_sigterm_lets_in_flight_requests_finish(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    statuses, code = _sigterm_with_requests_in_flight(server)
    assert statuses == [200, 200, 200]
    assert code == 0


def test_sigterm_with_two_workers(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2")
    assert wait_until(lambda: server.log().count("model loaded in") == 2)
    statuses, code = _sigterm_with_requests_in_flight(server)
    assert statuses == [200, 200, 200]
    assert code == 0


def test_worker_that_cannot_load_stops_the_server(model_dir):
    from conftest import run_drum

    code_dir = model_dir({"custom.py": "def load_model(code_dir):\n    raise RuntimeError('cannot load')\n"})
    result = run_drum(
        "server", "--code-dir", str(code_dir), "--address", "127.0.0.1:0", "--target-type", "regression",
        "--max-workers", "2",
    )
    assert result.returncode == 1
    assert "ERROR: An error occurred when loading your artifact: 'load_model' hook failed" in result.stderr
