"""Per-request deadlines (issue 25): `X-Request-Timeout: SECONDS`, capped by DRUM_CLIENT_REQUEST_TIMEOUT.

A request still queued at its deadline gets 504 and is never scored; one that runs past it gets 504 and
its late result is dropped; an invalid header is a 400 that names it. The model records which requests it
scored (the first column's value) in a file, and sleeps long enough for the others to queue behind it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.functional.support import SLEEPING_MODEL as SLOW
from tests.functional.support import ours_only


def _post(url: str, marker: int, sleep: float, timeout: str | None = None, path: str = "/predict/"):
    headers = {"Content-Type": "text/csv"}
    if timeout is not None:
        headers["X-Request-Timeout"] = timeout
    return requests.post(url + path, data=f"a,b\n{marker},{sleep}\n", headers=headers, timeout=60)


def _scored(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture
def server(drum_server, model_dir, tmp_path):
    calls, code_dir = tmp_path / "calls.txt", model_dir(SLOW)
    srv = drum_server(code_dir, "--target-type", "regression", env={"CALLS_FILE": str(calls)})
    srv.calls, srv.code_dir = calls, code_dir
    return srv


@ours_only
def test_a_request_queued_past_its_deadline_gets_504_and_is_never_scored(server):
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, server.url, 1, 1.5)  # holds the one prediction thread
        for _ in range(100):  # until the first request runs
            if _scored(server.calls) == [1]:
                break
            time.sleep(0.05)
        late = _post(server.url, 2, 0, timeout="0.3")
        assert first.result().status_code == 200
    assert late.status_code == 504
    assert late.json() == {"message": "ERROR: Request timed out after 0.3 seconds"}
    assert _post(server.url, 3, 0).status_code == 200  # the thread is free again; 2 was skipped
    assert _scored(server.calls) == [1, 3]


@ours_only
def test_a_request_running_past_its_deadline_gets_504(server):
    headers = {"Content-Type": "text/csv", "X-Request-Timeout": "0.2"}
    # answered at its deadline: a server that waited for the model (5 s) would make this read time out
    answer = requests.post(server.url + "/predict/", data="a,b\n7,5\n", headers=headers, timeout=4)
    assert answer.status_code == 504, answer.text
    assert _scored(server.calls) == [7]  # it ran; its late result is dropped


@ours_only
@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", ""])
def test_an_invalid_deadline_is_a_400_naming_the_header(server, value):
    answer = _post(server.url, 9, 0, timeout=value)
    assert answer.status_code == 400
    assert "X-Request-Timeout" in answer.json()["message"]
    assert _scored(server.calls) == []


@ours_only
def test_v2_routes_answer_deadline_errors_in_their_protocol(server):
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [5]},
                       {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}]}  # fmt: skip
    infer = f"/v2/models/{server.code_dir.name}/infer"
    bad = requests.post(server.url + infer, json=body, headers={"X-Request-Timeout": "soon"}, timeout=30)
    assert bad.status_code == 400 and "X-Request-Timeout" in bad.json()["error"]
    late = requests.post(server.url + infer, json=body, headers={"X-Request-Timeout": "0.2"}, timeout=30)
    assert late.status_code == 504 and late.json() == {"error": "Request timed out after 0.2 seconds"}


@ours_only
def test_the_header_is_capped_by_the_servers_timeout(drum_server, model_dir, tmp_path):
    calls = tmp_path / "calls.txt"
    env = {"CALLS_FILE": str(calls), "DRUM_CLIENT_REQUEST_TIMEOUT": "1"}
    srv = drum_server(model_dir(SLOW), "--target-type", "regression", env=env)
    answer = _post(srv.url, 4, 2.5, timeout="100")
    assert answer.status_code == 504
    assert answer.json() == {"message": "ERROR: Request timed out after 1 seconds"}
