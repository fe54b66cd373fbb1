"""The NIM watchdog (`USE_NIM_WATCHDOG`): each worker polls its own /info/; when the polls keep failing
it reports unhealthy (513 on the health routes) and ends no process, since drum started none."""

from __future__ import annotations

import time

from support import assert_json, ours_only, runtime_param

MODEL = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}
WATCHDOG = {
    "MLOPS_RUNTIME_PARAM_USE_NIM_WATCHDOG": runtime_param(True, "boolean"),
    "MLOPS_RUNTIME_PARAM_NIM_WATCHDOG_MAX_ATTEMPTS": runtime_param(1, "numeric"),
    "MLOPS_RUNTIME_PARAM_NIM_WATCHDOG_REQUEST_TIMEOUT": runtime_param(2, "numeric"),
    "NIM_WATCHDOG_INTERVAL": "1",
}


def _wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_watchdog_polls_info_and_keeps_the_server_healthy(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--logging-level", "info", env=WATCHDOG)
    _wait_for(lambda: server.log().count('"GET /info/ HTTP/1.1" 200') >= 2, "two watchdog polls of /info/")
    assert "Starting watchdog to monitor server health..." in server.log()
    assert_json(server.get("/ping/"), 200, {"message": "OK"})


@ours_only
def test_failing_watchdog_reports_unhealthy_and_kills_nothing(drum_server, model_dir):
    # The server listens on 127.0.0.1 only: polls of 127.0.0.2 are refused, as if the server hung.
    env = {**WATCHDOG, "TEST_URL_HOST": "127.0.0.2"}
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env=env)
    _wait_for(lambda: server.get("/ping/").status_code == 513, "the watchdog to report unhealthy")
    for path in ("/", "/ping/", "/health/"):
        response = server.get(path)
        assert response.status_code == 513
        assert response.json()["message"].startswith("ERROR: NIM watchdog: http://127.0.0.2:")
    assert "All health check attempts failed." in server.log()
    assert server.process.poll() is None  # still serving: nothing was killed
    response = server.post("/predict/", data=b"a\n1\n", headers={"Content-Type": "text/csv"})
    assert (response.status_code, response.content) == (200, b'{"predictions":[1.0]}')
