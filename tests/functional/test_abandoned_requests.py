"""Abandoned requests (issue 25): a prediction whose client disconnected before its turn in the executor
is never scored and its place goes to the next request; one already running finishes and its result is
dropped; the access log records 499 and /metrics counts drum_requests_abandoned_total."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from tests.functional.support import SLEEPING_MODEL as SLOW
from tests.functional.support import ours_only


def _impatient(url: str, marker: int) -> None:
    """POST a prediction and give up after 0.2 s, closing the connection."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=0.2)
    try:
        conn.request("POST", "/predict/", body=f"a,b\n{marker},0.5\n", headers={"Content-Type": "text/csv"})
        conn.getresponse().read()
    except TimeoutError:
        pass
    finally:
        conn.close()


@ours_only
def test_requests_whose_clients_left_are_not_scored(drum_server, model_dir, tmp_path):
    calls = tmp_path / "calls.txt"
    env = {"CALLS_FILE": str(calls), "DRUM_FASTAPI_EXECUTOR_WORKERS": "4", "DRUM_METRICS_ENABLED": "true"}
    server = drum_server(model_dir(SLOW), "--target-type", "regression", env=env)
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda i: _impatient(server.url, i), range(20)))
    answer = server.post("/predict/", data="a,b\n100,0\n", headers={"Content-Type": "text/csv"})
    assert answer.json() == {"predictions": [100.0]}
    scored = [int(x) for x in calls.read_text().split()]
    abandoned_scored = [m for m in scored if m < 100]
    assert len(abandoned_scored) <= 8, scored  # at most those that had started before their client left
    assert scored[-1] == 100
    time.sleep(0.6)  # the last abandoned ones that were running finish
    assert " 499 " in server.log()
    metrics = server.get("/metrics").text
    queued = [line for line in metrics.splitlines() if line.startswith('drum_requests_abandoned_total{stage="queued"}')]
    assert queued and float(queued[0].split()[-1]) >= 12
