"""Health that tells the truth (issue 25): V2 readiness answers 503 while every prediction thread has been
held by one request for longer than the request timeout (a wedged model) and 200 once a thread frees;
liveness and DRUM's /ping/ keep answering. The model's `score` blocks until the test creates a file."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.functional.support import ours_only, poll_until

BLOCKING = {
    "custom.py": """
        import os
        import time

        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            release = os.environ["RELEASE_FILE"]
            while not os.path.exists(release):  # blocks until the test releases it
                time.sleep(0.02)
            return pd.DataFrame({"Predictions": data.iloc[:, 0] * 1.0})
    """,
}


@ours_only
def test_readiness_is_503_while_the_model_is_wedged_and_200_once_a_thread_frees(
    drum_server, model_dir, tmp_path
):
    release = tmp_path / "release"
    code_dir = model_dir(BLOCKING)
    env = {"RELEASE_FILE": str(release), "DRUM_CLIENT_REQUEST_TIMEOUT": "1"}
    server = drum_server(code_dir, "--target-type", "regression", env=env)
    ready, model_ready = "/v2/health/ready", f"/v2/models/{code_dir.name}/ready"
    assert server.get(ready).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(server.post, "/predict/", data="a\n1\n", headers={"Content-Type": "text/csv"})
        assert poll_until(lambda: server.get(ready).status_code, lambda status: status == 503, timeout=15) == 503
        answer = server.get(model_ready)
        assert answer.status_code == 503 and "busy with one request" in answer.json()["error"]
        assert server.get("/v2/health/live").status_code == 200  # the event loop runs
        assert server.get("/ping/").json() == {"message": "OK"}  # DRUM's probe keeps DRUM's answer
        release.touch()
        assert stuck.result().status_code == 504  # it ran past the request timeout
    assert poll_until(lambda: server.get(ready).status_code, lambda status: status == 200, timeout=15) == 200
    assert server.get(model_ready).json() == {"name": code_dir.name, "ready": True}


@ours_only
def test_a_busy_model_is_ready(drum_server, model_dir, tmp_path):
    """A thread held for less than the request timeout is work, not a wedged model."""
    release = tmp_path / "release"
    env = {"RELEASE_FILE": str(release), "DRUM_CLIENT_REQUEST_TIMEOUT": "600"}
    server = drum_server(model_dir(BLOCKING), "--target-type", "regression", env=env)
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(server.post, "/predict/", data="a\n1\n", headers={"Content-Type": "text/csv"})
        time.sleep(1.0)  # the request runs (nothing here depends on how long)
        assert server.get("/v2/health/ready").status_code == 200
        release.touch()
        assert busy.result().status_code == 200
