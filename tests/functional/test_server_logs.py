"""What a running server writes: gunicorn-format access lines on stdout, the request id on log records
written by hooks in executor threads, and the DRUM log format."""

from __future__ import annotations

import re

MODEL = {
    "custom.py": """
        import logging
        import pandas as pd

        log = logging.getLogger("user.model")

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            log.warning("scoring %d rows", len(data))
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}


def test_hook_log_records_carry_the_request_id(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    response = server.post(
        "/predict/", data=b"a\n1\n2\n", headers={"Content-Type": "text/csv", "X-Request-ID": "req-42"}
    )
    assert response.status_code == 200
    assert response.headers["X_Request_ID"] == "req-42"
    line = next(line for line in server.log().splitlines() if "scoring 2 rows" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING user.model:  scoring 2 rows ", line)
    assert line.endswith("{'request_id': 'req-42'}")


def test_access_log_in_gunicorn_format(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    server.post("/predict/?x=1", data=b"a\n1\n", headers={"Content-Type": "text/csv", "User-Agent": "probe/1"})
    server.get("/nope")
    # uvicorn writes the access log line after the response is sent: wait for it
    predict_line = r'^127\.0\.0\.1 - - \[[^\]]+\] "POST /predict/\?x=1 HTTP/1\.1" 200 21 "-" "probe/1"$'
    not_found_line = r'"GET /nope HTTP/1\.1" 404 \d+ "-" "python-requests/[^"]+"$'
    server.wait_for_log(not_found_line)
    log = server.wait_for_log(predict_line)
    assert re.search(predict_line, log, re.M), log
    assert re.search(not_found_line, log, re.M), log


def test_access_log_can_be_turned_off(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env={"DRUM_ACCESS_LOG": "false"})
    server.get("/ping/")
    assert server.get("/info/").status_code == 200
    assert '"GET /ping/ HTTP/1.1"' not in server.log()
