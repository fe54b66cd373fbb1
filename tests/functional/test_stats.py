"""`/stats/` on a running server: every worker process listed under the `drum server` process."""

from __future__ import annotations

import os

import psutil
import requests

MODEL = {
    "custom.py": """
        import os
        import pandas as pd

        def load_model(code_dir):
            print("model loaded in", os.getpid(), flush=True)
            return "m"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [float(os.getpid())] * len(data)})
    """
}


def test_stats_lists_every_worker_with_two_workers(drum_server, model_dir):
    from test_workers import wait_until, worker_pids

    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2")
    assert wait_until(lambda: server.log().count("model loaded in") == 2)
    workers = set()
    assert wait_until(lambda: len(workers.update(worker_pids(server, 10)) or workers) == 2)
    for _ in range(4):  # whichever worker answers, the whole server is listed
        response = requests.get(server.url + "/stats/", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
        body = response.json()
        info = body["drum_info"]
        pids = [p["pid"] for p in info]
        assert pids[0] == server.process.pid  # the process the user started comes first
        assert workers <= set(pids)
        assert set(pids) <= {server.process.pid, *(c.pid for c in psutil.Process(server.process.pid).children(True))}
        assert body["mem_info"]["drum_rss"] == sum(p["mem"] for p in info)
        assert all(p["mem"] > 0 and isinstance(p["cmdline"], list) for p in info)
    assert os.getpid() not in pids


def test_stats_one_worker_lists_the_server_process(drum_server, model_dir):
    server = drum_server(model_dir(MODEL), "--target-type", "regression")
    body = server.get("/stats/").json()
    assert body["drum_info"][0]["pid"] == server.process.pid
    mem = body["mem_info"]
    assert mem["total"] > 0 and mem["avail"] > 0 and mem["free"] > 0
    if mem["container_limit"] is not None:
        assert mem["avail"] == mem["container_limit"] - mem["container_used"]
