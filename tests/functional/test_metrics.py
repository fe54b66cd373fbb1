"""Prometheus `/metrics`: off by default (404), and with 2 workers the counts of both are summed."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import requests
from support import poll_until

MODEL = {
    "custom.py": """
        import os
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [float(os.getpid())] * len(data)})
    """
}
CSV = {"Content-Type": "text/csv", "Connection": "close"}


def _value(text: str, pattern: str) -> float:
    match = re.search(r"^" + pattern + r" ([0-9.e+]+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def test_metrics_off_by_default(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    response = server.get("/metrics")
    assert response.status_code == 404
    assert response.json()["message"].startswith("ERROR: 404 Not Found")


def test_metrics_summed_over_two_workers(drum_server, model_dir):
    env = {"DRUM_METRICS_ENABLED": "true"}
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2", env=env)
    pids: set[float] = set()
    sent = 0

    def post(_: int) -> float:
        response = requests.post(server.url + "/predict/", data=b"a\n1\n", headers=CSV, timeout=10)
        assert response.status_code == 200
        return response.json()["predictions"][0]

    # The kernel hands each new connection to whichever worker accepts first, so one worker may win
    # many in a row: send concurrent rounds of new connections until both workers have answered.
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 and sent < 2000:
            pids.update(pool.map(post, range(40)))
            sent += 40
    requests.get(server.url + "/nope", timeout=10)
    assert len(pids) == 2
    # a request is counted once its response is sent, so the last counts may land just after it
    expected = {
        r'drum_requests_total\{method="POST",route="/predict/",status="200"\}': sent,
        r'drum_requests_total\{method="GET",route="unmatched",status="404"\}': 1,
        r'drum_request_duration_seconds_count\{route="/predict/"\}': sent,
    }
    text = poll_until(
        lambda: requests.get(server.url + "/metrics", timeout=10).text,
        lambda text: all(re.search(f"^{name} {value}(\\.0)?$", text, re.M) for name, value in expected.items()),
        timeout=10,
    )
    assert _value(text, r'drum_requests_total\{method="POST",route="/predict/",status="200"\}') == sent
    assert _value(text, r'drum_requests_total\{method="GET",route="unmatched",status="404"\}') == 1
    assert _value(text, r'drum_request_duration_seconds_count\{route="/predict/"\}') == sent
    assert _value(text, r"drum_prediction_jobs") == 0
    assert _value(text, r"drum_worker_rss_bytes") > 0
