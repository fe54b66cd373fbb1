"""What a running server writes: gunicorn-format access lines on stdout, the request id on log records
written by hooks in executor threads, and the DRUM log format."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

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

BARRIER_MODEL = {
    "custom.py": """
        import threading
        import pandas as pd

        barrier = threading.Barrier(4, timeout=20)

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            barrier.wait()
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


def test_migration_guide_plain_runtime_parameters_serve_without_a_warning(drum_server, model_dir):
    """`export MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE=fastapi` (the migration guide) and a plain
    `...EXECUTOR_WORKERS=4` are read as plain values: served, no warning, no error."""
    env = {
        "MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": "fastapi",
        "MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS": "4",
    }
    server = drum_server(model_dir(BARRIER_MODEL), "--target-type", "regression", "--logging-level", "info", env=env)
    assert server.get("/info/").json()["drumServer"] == "fastapi"
    # four requests meet at a barrier inside the model: only four executor threads let them all through
    with ThreadPoolExecutor(4) as pool:
        posts = [
            pool.submit(server.post, "/predict/", data=b"a\n1\n", headers={"Content-Type": "text/csv"})
            for _ in range(4)
        ]
        assert [p.result().status_code for p in posts] == [200] * 4
    log = server.log()
    assert "Invalid" not in log and "Ignoring" not in log and "ERROR" not in log, log


def test_bad_server_type_runtime_parameter_is_one_clear_error(model_dir, tmp_path):
    from support import free_port, run_drum

    env = {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": "tornado"}
    address = f"127.0.0.1:{free_port()}"
    result = run_drum(
        "server", "--code-dir", str(model_dir(MODEL)), "--target-type", "regression", "--address", address, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "fastapi, uvicorn, flask, werkzeug, gunicorn" in output
    assert "Ignoring" not in output and "using default" not in output
