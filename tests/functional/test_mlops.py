"""MLOps monitoring with the real `datarobot-mlops` package: a monitored server (or `drum score`) writes a
filesystem spool, read back here with the package's own spooler."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from support import run_drum, write_model

pytest.importorskip("datarobot_mlops", reason="needs drum[mlops]")

REGRESSION = {
    "custom.py": """
        import os
        import time
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            if "slow" in data.columns:
                open(os.path.join(os.environ["MARKER_DIR"], "slow-started"), "w").close()
                time.sleep(1.5)
            return pd.DataFrame({"Predictions": data.sum(axis=1, numeric_only=True) * 1.5})
    """
}
BINARY = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            p = data["x"] / 10
            return pd.DataFrame({"yes": p, "no": 1 - p})
    """
}
EMBEDDED = {
    "custom.py": """
        import os
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score_unstructured(model, data, **kwargs):
            mlops = kwargs.get("mlops")
            if mlops is None:
                return "no mlops"
            if not getattr(mlops, "_drum_test_patched", False):
                original = mlops.shutdown

                def shutdown(*args, **kw):
                    with open(os.path.join(os.environ["MARKER_DIR"], "shutdown"), "w") as f:
                        f.write("called")
                    return original(*args, **kw)

                mlops.shutdown = shutdown
                mlops._drum_test_patched = True
            mlops.report_deployment_stats(num_predictions=2, execution_time_ms=5.0)
            mlops.report_predictions_data(features_df=pd.DataFrame({"a": [1, 2]}), predictions=[0.5, 0.25])
            return "reported by " + type(mlops).__name__
    """
}


def read_spool(directory: Path) -> list[tuple[str, str, dict]]:
    """(data type, deployment id, payload) of every record, with datarobot-mlops' filesystem spooler."""
    from datarobot_mlops.common import config
    from datarobot_mlops.common.config import ConfigConstants
    from datarobot_mlops.common.enums import MLOpsSpoolAction
    from datarobot_mlops.spooler.filesystem_spooler import FSRecordSpooler

    config.set_config(ConfigConstants.FILESYSTEM_DIRECTORY, str(directory))
    spooler = FSRecordSpooler()
    try:
        spooler.open(action=MLOpsSpoolAction.DEQUEUE)
        records = []
        while batch := spooler.dequeue():
            records += [(r.get_data_type().name, r.get_deployment_id(), r.get_payload()) for r in batch]
        return records
    finally:
        spooler.close()
        config.clear_config()


def _monitor_args(spool: Path) -> list[str]:
    spool.mkdir(exist_ok=True)
    return ["--monitor", "--deployment-id", "dep-1", "--model-id", "model-1",
            "--monitor-settings", f"spooler_type=filesystem;directory={spool}"]


def _pairs(records: list) -> list[tuple[dict, dict]]:
    assert [kind for kind, _, _ in records] == ["DEPLOYMENT_STATS", "PREDICTIONS_DATA"] * (len(records) // 2)
    assert {deployment for _, deployment, _ in records} == {"dep-1"}
    assert {payload["modelId"] for _, _, payload in records} == {"model-1"}
    return [(records[i][2], records[i + 1][2]) for i in range(0, len(records), 2)]


def test_server_reports_every_prediction(drum_server, model_dir, tmp_path):
    spool = tmp_path / "spool"
    server = drum_server(model_dir(REGRESSION), "--target-type", "regression", *_monitor_args(spool),
                         env={"MARKER_DIR": str(tmp_path)})
    assert server.post("/predict/", data=b"a,b,c\n1,2,x\n3,,y\n5,6,z\n",
                       headers={"Content-Type": "text/csv"}).status_code == 200
    assert server.post("/predict/", files={"X": ("x.csv", b"a\n10\n20\n")}).status_code == 200
    assert server.stop() == 0
    (stats1, data1), (stats2, data2) = _pairs(read_spool(spool))
    assert stats1["numPredictions"] == 3 and stats2["numPredictions"] == 2
    assert data1["features"] == {"a": [1, 3, 5], "b": [2.0, None, 6.0], "c": ["x", "y", "z"]}
    assert data1["predictions"] == [4.5, 4.5, 16.5]
    assert data2["features"] == {"a": [10, 20]} and data2["predictions"] == [15.0, 30.0]
    assert stats1["executionTime"] > 0


def test_binary_predictions_are_reported_per_class(drum_server, model_dir, tmp_path):
    spool = tmp_path / "spool"
    server = drum_server(model_dir(BINARY), "--target-type", "binary", "--positive-class-label", "yes",
                         "--negative-class-label", "no", *_monitor_args(spool))
    assert server.post("/predict/", data=b"x\n1\n4\n", headers={"Content-Type": "text/csv"}).status_code == 200
    server.stop()
    [(stats, data)] = _pairs(read_spool(spool))
    assert stats["numPredictions"] == 2
    assert data["features"] == {"x": [1, 4]}
    assert data["predictions"] == [[0.1, 0.9], [0.4, 0.6]]
    assert data["classNames"] == ["yes", "no"]


def test_execution_time_is_the_predictions_own_not_its_wait_for_a_thread(drum_server, model_dir, tmp_path):
    spool = tmp_path / "spool"
    server = drum_server(model_dir(REGRESSION), "--target-type", "regression", *_monitor_args(spool),
                         env={"MARKER_DIR": str(tmp_path), "DRUM_FASTAPI_EXECUTOR_WORKERS": "1"})
    slow = threading.Thread(target=lambda: requests.post(server.url + "/predict/", data=b"slow\n1\n", timeout=30))
    slow.start()
    deadline = time.monotonic() + 20
    while not (tmp_path / "slow-started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    fast = requests.post(server.url + "/predict/", data=b"fast\n1\n2\n", timeout=30)  # waits for the one thread
    slow.join()
    assert fast.status_code == 200
    server.stop()
    (slow_stats, _), (fast_stats, _) = _pairs(read_spool(spool))
    assert slow_stats["numPredictions"] == 1 and fast_stats["numPredictions"] == 2
    assert slow_stats["executionTime"] >= 1500  # the model's own 1.5 s
    assert fast_stats["executionTime"] < slow_stats["executionTime"]  # its wait for the thread is not counted


def test_two_workers_share_one_spool(drum_server, model_dir, tmp_path):
    spool = tmp_path / "spool"
    server = drum_server(model_dir(REGRESSION), "--target-type", "regression", "--max-workers", "2",
                         *_monitor_args(spool), env={"MARKER_DIR": str(tmp_path)})
    for i in range(6):
        response = requests.post(server.url + "/predict/", data=f"a\n{i}\n".encode(), timeout=30,
                                 headers={"Connection": "close"})
        assert response.status_code == 200
    server.stop()
    pairs = _pairs(sorted(read_spool(spool), key=lambda r: (r[2]["timestamp"], r[0])))
    assert sorted(data["predictions"][0] for _, data in pairs) == [i * 1.5 for i in range(6)]


def test_embedded_monitoring_hands_mlops_to_score_unstructured_and_shutdown_flushes_it(
    drum_server, model_dir, tmp_path
):
    spool = tmp_path / "spool"
    args = _monitor_args(spool)
    args[0] = "--monitor-embedded"
    server = drum_server(model_dir(EMBEDDED), "--target-type", "unstructured", *args, "--webserver",
                         "http://localhost:1", "--api-token", "token", env={"MARKER_DIR": str(tmp_path)})
    response = server.post("/predictUnstructured/", data=b"hello")
    assert response.text == "reported by MLOps"
    assert not (tmp_path / "shutdown").exists()
    assert server.stop() == 0
    assert (tmp_path / "shutdown").read_text() == "called"  # graceful stop shut the reporter down
    [(stats, data)] = _pairs(read_spool(spool))
    assert stats["numPredictions"] == 2 and data["predictions"] == [0.5, 0.25]


def test_score_reports_like_the_server(tmp_path):
    spool = tmp_path / "spool"
    code_dir = write_model(tmp_path / "code", REGRESSION)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("a,b\n1,2\n3,4\n")
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(input_csv), "--target-type",
                      "regression", "--output", str(tmp_path / "out.csv"), *_monitor_args(spool))
    assert result.returncode == 0, result.stderr
    [(stats, data)] = _pairs(read_spool(spool))
    assert stats["numPredictions"] == 2
    assert data["features"] == {"a": [1, 3], "b": [2, 4]} and data["predictions"] == [4.5, 10.5]


def test_missing_package_is_a_clear_error(tmp_path):
    shadow = tmp_path / "shadow" / "datarobot_mlops"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named datarobot_mlops')\n")
    code_dir = write_model(tmp_path / "code", REGRESSION)
    env = {"PYTHONPATH": str(tmp_path / "shadow")}
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", "--target-type",
                      "regression", *_monitor_args(tmp_path / "spool"), env=env)
    assert result.returncode == 1
    assert "needs the datarobot-mlops package, which is not installed: pip install 'drum[mlops]'" in result.stderr


def test_batching_stays_off_when_monitored(drum_server, model_dir, tmp_path):
    """Monitoring reports each request's own features and timing, so batching must not merge them."""
    spool = tmp_path / "spool"
    env = {"MARKER_DIR": str(tmp_path), "DRUM_BATCHING_MAX_ROWS": "1000"}
    server = drum_server(model_dir(REGRESSION), "--target-type", "regression", *_monitor_args(spool), env=env)
    bodies = [f"a\n{i}\n{i + 100}\n".encode() for i in range(12)]
    threads = [
        threading.Thread(
            target=lambda body=body: requests.post(
                server.url + "/predict/", data=body, headers={"Content-Type": "text/csv"}, timeout=30
            )
        )
        for body in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.stop() == 0
    assert "Adaptive batching is off for this model: MLOps monitoring" in server.log()
    pairs = _pairs(read_spool(spool))
    assert sorted(data["features"]["a"][0] for _, data in pairs) == list(range(12))
    assert all(stats["numPredictions"] == 2 and len(data["predictions"]) == 2 for stats, data in pairs)
