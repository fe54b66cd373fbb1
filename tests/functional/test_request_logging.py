"""Log records written by hooks while serving a request carry its request id, in DRUM's format."""

from __future__ import annotations

import json
import re
import time

import pytest

MODEL = {
    "custom.py": """
        import logging
        import pandas as pd

        logger = logging.getLogger("my.model")


        def load_model(code_dir):
            logger.warning("loading outside any request")
            return "m"


        def score(data, model, **kwargs):
            logger.warning("scoring %d rows", len(data))
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}
CSV = {"Content-Type": "text/csv"}


def wait_for_line(server, pattern: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, server.log(), re.MULTILINE)
        if match:
            return match.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}:\n{server.log()}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_hook_log_record_carries_the_request_id(drum_server, model_dir, workers):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", workers)
    for request_id in ("req-one", "req-two"):
        response = server.post("/predict/", data=b"a\n1\n2\n", headers={**CSV, "X-Request-ID": request_id})
        assert response.status_code == 200
        assert response.headers["X_Request_ID"] == request_id
        line = wait_for_line(server, rf"^.* WARNING my\.model:  scoring 2 rows .*{request_id}.*$")
        # DRUM's format: "%(asctime)-15s %(levelname)s %(name)s:  %(message)s %(context_data)s"
        assert line.endswith(f"scoring 2 rows {{'request_id': '{request_id}'}}")
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING my\.model:  ", line)
    loading = wait_for_line(server, r"^.*loading outside any request.*$")
    assert "request_id" not in loading


def test_json_logging(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env={"DRUM_JSON_LOGGING": "true"})
    response = server.post("/predict/", data=b"a\n1\n2\n", headers={**CSV, "X-Request-ID": "json-req"})
    assert response.status_code == 200
    entry = json.loads(wait_for_line(server, r'^\{.*"scoring 2 rows".*$'))
    assert entry["request_id"] == "json-req"
    assert (entry["level"], entry["logger"], entry["function"], entry["module"]) == (
        "WARNING",
        "my.model",
        "score",
        "custom",
    )
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["timestamp"])
    loading = json.loads(wait_for_line(server, r'^\{.*"loading outside any request".*$'))
    assert "request_id" not in loading


def test_access_log_names_the_forwarded_client_of_a_trusted_proxy(drum_server, model_dir):
    """DRUM's routes skip uvicorn's proxy-headers middleware only for requests it would leave alone: a
    request from 127.0.0.1 (trusted by default) with X-Forwarded-For is logged with the forwarded client."""
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    assert server.post("/predict/", data=b"a\n1\n", headers=CSV).status_code == 200
    forwarded = {**CSV, "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    assert server.post("/predict/?f=1", data=b"a\n1\n", headers=forwarded).status_code == 200
    wait_for_line(server, r'^127\.0\.0\.1 - - \[[^]]+\] "POST /predict/ HTTP/1\.1" 200 ')
    wait_for_line(server, r'^203\.0\.113\.7 - - \[[^]]+\] "POST /predict/\?f=1 HTTP/1\.1" 200 ')
