"""Production limits on a real server: 413 (with and without Content-Length), 504, 503 + Retry-After,
health routes answering while every executor thread is busy, invalid settings falling back."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
import requests
from conftest import runtime_param

SLOW_MODEL = {
    "custom.py": """
        import os
        import time
        import pandas as pd

        def load_model(code_dir):
            return "slow"

        def score(data, model, **kwargs):
            time.sleep(float(data["sleep"][0]))
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}


CSV = {"Content-Type": "text/csv"}


def sleep_csv(seconds: float) -> bytes:
    return f"sleep\n{seconds}\n".encode()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    from conftest import start_server, write_model

    root = tmp_path_factory.mktemp("limits")
    code_dir = write_model(root / "model", SLOW_MODEL)
    env = {
        "MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_MAX_UPLOAD_SIZE": runtime_param(1000, "numeric"),
        "MLOPS_RUNTIME_PARAM_DRUM_CLIENT_REQUEST_TIMEOUT": runtime_param(2, "numeric"),
        "MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS": runtime_param(1, "numeric"),
        "MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_MAX_QUEUE": runtime_param(1, "numeric"),
    }
    server = start_server(code_dir, ["--target-type", "regression"], root / "server.log", env=env)
    yield server
    server.stop()


def _raw_request(url: str, method: str, path: str, body_chunks: list[bytes], headers: dict[str, str]):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders()
    try:
        for chunk in body_chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = conn.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    conn.close()
    return result


def test_body_over_limit_with_content_length_is_413(limited_server):
    response = limited_server.post("/predict/", data=b"a\n" + b"1\n" * 1000, headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert response.json() == {"message": "ERROR: Request body too large. Limit is 1000 bytes"}
    assert response.headers["X-Drum-Version"]


def test_chunked_body_over_limit_is_413(limited_server):
    chunks = [b"a\n"] + [b"1\n" * 100] * 20
    status, headers, body = _raw_request(
        limited_server.url, "POST", "/predict/", chunks, {"Transfer-Encoding": "chunked", "Content-Type": "text/csv"}
    )
    assert status == 413
    assert json.loads(body) == {"message": "ERROR: Request body too large. Limit is 1000 bytes"}


def test_chunked_body_under_limit_is_served(limited_server):
    status, _, body = _raw_request(
        limited_server.url,
        "POST",
        "/predict/",
        [b"sleep\n", b"0\n"],
        {"Transfer-Encoding": "chunked", "Content-Type": "text/csv"},
    )
    assert (status, body) == (200, b'{"predictions":[1.0]}')


def test_request_past_the_timeout_is_504(limited_server):
    response = limited_server.post("/predict/", data=sleep_csv(4), headers={"Content-Type": "text/csv"})
    assert response.status_code == 504
    assert response.json() == {"message": "ERROR: Request timed out after 2 seconds"}
    time.sleep(2.5)  # let the thread finish so the next test starts with a free executor


def test_saturation_gives_503_with_retry_after_and_ping_still_answers(limited_server):
    # 1 executor thread + 1 queue place: two slow requests fill the server.
    results: list[int] = []

    def slow():
        r = limited_server.post("/predict/", data=sleep_csv(1.5), headers={"Content-Type": "text/csv"})
        results.append(r.status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    busy = limited_server.post("/predict/", data=sleep_csv(0), headers={"Content-Type": "text/csv"})
    ping = limited_server.get("/ping/", timeout=1)
    for t in threads:
        t.join()
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["message"].startswith("ERROR: Server is busy")
    assert ping.status_code == 200 and ping.json() == {"message": "OK"}
    assert len(results) == 2  # both slow requests were answered (200, or 504 on a very loaded machine)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_invalid_settings_fall_back_with_one_warning(drum_server, model_dir, workers):
    """Settings are read once, in the parent: worker processes never warn again."""
    code_dir = model_dir(SLOW_MODEL)
    env = {"MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS": runtime_param(0, "numeric")}
    server = drum_server(code_dir, "--target-type", "regression", "--max-workers", workers, env=env)
    response = server.post("/predict/", data=sleep_csv(0), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200
    warning = "Invalid value 0 for MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS (valid: 1..256); using default 1"
    assert server.log().count(warning) == 1, server.log()


def test_docs_off_by_default_and_on_when_enabled(drum_server, model_dir):
    code_dir = model_dir(SLOW_MODEL)
    off = drum_server(code_dir, "--target-type", "regression")
    assert off.get("/docs").status_code == 404
    assert off.get("/openapi.json").status_code == 404
    on = drum_server(code_dir, "--target-type", "regression", env={"DRUM_FASTAPI_ENABLE_DOCS": "true"})
    assert on.get("/docs").status_code == 200
    paths = on.get("/openapi.json").json()["paths"]
    assert {"/predict/", "/ping/", "/info/", "/transform/"} <= set(paths)


def test_cors_headers_only_when_enabled(drum_server, model_dir):
    code_dir = model_dir(SLOW_MODEL)
    origin = {"Origin": "http://app.example.com"}
    plain = drum_server(code_dir, "--target-type", "regression")
    assert "access-control-allow-origin" not in plain.get("/ping/", headers=origin).headers
    env = {"DRUM_CORS_ENABLED": "true", "DRUM_CORS_ORIGINS": "http://app.example.com, http://other"}
    cors = drum_server(code_dir, "--target-type", "regression", env=env)
    response = cors.get("/ping/", headers=origin)
    assert response.headers["access-control-allow-origin"] == "http://app.example.com"
    assert "access-control-allow-credentials" not in response.headers
    preflight = cors.request(
        "OPTIONS", "/predict/", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example.com"
    denied = cors.get("/ping/", headers={"Origin": "http://evil.example.com"})
    assert "access-control-allow-origin" not in denied.headers


def test_tls_with_a_self_signed_certificate(drum_server, model_dir, tmp_path):
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    code_dir = model_dir(SLOW_MODEL)
    env = {"DRUM_SSL_CERTFILE": str(cert), "DRUM_SSL_KEYFILE": str(key)}
    server = drum_server(code_dir, "--target-type", "regression", env=env, wait=False)
    https = server.url.replace("http://", "https://")
    deadline = time.monotonic() + 60
    while True:
        try:
            response = requests.post(
                https + "/predict/", data=sleep_csv(0), headers=CSV, verify=str(cert), timeout=2
            )
            break
        except requests.RequestException:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise
            time.sleep(0.2)
    assert response.json() == {"predictions": [1.0]}
    with pytest.raises(requests.RequestException):
        requests.get(server.url + "/ping/", timeout=2)  # plain HTTP is not served


def test_missing_tls_file_stops_startup(model_dir, tmp_path):
    from conftest import run_drum

    code_dir = model_dir(SLOW_MODEL)
    result = run_drum(
        "server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", "--target-type", "regression",
        env={"DRUM_SSL_CERTFILE": str(tmp_path / "missing.pem")},
    )
    assert result.returncode == 1
    assert "DRUM_SSL_CERTFILE: file not found" in result.stderr
