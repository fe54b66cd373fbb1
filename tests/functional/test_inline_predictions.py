"""Small predictions of plain artifact models run on the event loop once the model has been fast
(DRUM_INLINE_PREDICTION_MAX_US), and go back to the prediction threads after one slow call.

The model is a scikit-learn Ridge subclass that records the thread of each `predict` call; a feature
value of 99 makes one call compute (CPU time) far past the (test's generous) limit. No timing is asserted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.functional.support import ours_only

RECORDING_RIDGE = '''
import os
import threading
import time

from sklearn.linear_model import Ridge


class RecordingRidge(Ridge):
    def predict(self, X):
        with open(os.environ["THREADS_FILE"], "a") as f:
            f.write(threading.current_thread().name + "\\n")
        if float(X.iloc[0, 0] if hasattr(X, "iloc") else X[0][0]) == 99:
            started = time.thread_time()
            while time.thread_time() - started < 0.2:  # 200 ms of CPU
                pass
        if len(X) > 5000:  # a big request waits (no CPU): it holds its prediction thread
            time.sleep(1.0)
        return super().predict(X)
'''
LIMIT_US = "50000"  # 50 ms: a 1-row Ridge is far below it even on a busy machine; the slow call takes 200 ms


@pytest.fixture(scope="module")
def recording_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code_dir = tmp_path_factory.mktemp("inline") / "ridge"
    code_dir.mkdir()
    (code_dir / "recording_ridge.py").write_text(RECORDING_RIDGE)
    script = (
        "import pickle, sys, numpy as np, pandas as pd\n"
        f"sys.path.insert(0, {str(code_dir)!r})\n"
        "from recording_ridge import RecordingRidge\n"
        "rng = np.random.default_rng(0)\n"
        "x = pd.DataFrame(rng.normal(size=(50, 3)), columns=['a', 'b', 'c'])\n"
        "model = RecordingRidge(alpha=1e-9).fit(x, x.values @ [1.0, 2.0, 3.0])\n"
        f"pickle.dump(model, open({str(code_dir / 'model.pkl')!r}, 'wb'))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    return code_dir


def _threads(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _predict(url: str, first: float) -> float:
    r = requests.post(url + "/predict/", data=f"a,b,c\n{first},1,2\n", headers={"Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


@ours_only
def test_fast_predictions_move_to_the_event_loop_and_back_after_a_slow_one(drum_server, recording_model, tmp_path):
    threads_file = tmp_path / "threads.txt"
    env = {"THREADS_FILE": str(threads_file), "DRUM_INLINE_PREDICTION_MAX_US": LIMIT_US}
    server = drum_server(recording_model, "--target-type", "regression", env=env)
    answers = [_predict(server.url, i / 10) for i in range(60)]
    np.testing.assert_allclose(answers, [i / 10 + 2 + 6 for i in range(60)], rtol=1e-6)
    threads = _threads(threads_file)
    assert threads[0].startswith("drum-predict"), threads[:3]  # the first ones run on a prediction thread
    assert threads[-1] == "MainThread", threads[-5:]  # then on the event loop
    # V2 requests too, and every answer is the same wherever it ran
    columns = zip("abc", (1, 1, 2), strict=True)
    body = {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in columns]}
    r = requests.post(server.url + "/v2/models/ridge/infer", json=body, timeout=30)
    assert r.json()["outputs"][0]["data"] == pytest.approx([9.0])
    assert _threads(threads_file)[-1] == "MainThread"
    # one slow call (it ran inline: nobody knew) sends the next ones back to the prediction threads
    _predict(server.url, 99)
    _predict(server.url, 1)
    threads = _threads(threads_file)
    assert threads[-2] == "MainThread" and threads[-1].startswith("drum-predict"), threads[-4:]


@ours_only
def test_small_predictions_run_inline_while_a_big_one_holds_a_prediction_thread(
    drum_server, recording_model, tmp_path
):
    threads_file = tmp_path / "threads.txt"
    env = {"THREADS_FILE": str(threads_file), "DRUM_INLINE_PREDICTION_MAX_US": LIMIT_US}
    server = drum_server(recording_model, "--target-type", "regression", env=env)
    for i in range(40):
        _predict(server.url, i)
    assert _threads(threads_file)[-1] == "MainThread"
    big = "a,b,c\n" + "1,1,2\n" * 12000  # over the inline body limit: a prediction thread's
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(requests.post, server.url + "/predict/", data=big,
                           headers={"Content-Type": "text/csv"}, timeout=30)  # fmt: skip
        deadline = time.monotonic() + 20
        while len(_threads(threads_file)) < 41 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _threads(threads_file)[-1].startswith("drum-predict")  # the big one is running
        answers = [_predict(server.url, i) for i in range(5)]
        during = _threads(threads_file)[41:]
        assert held.result().status_code == 200
    np.testing.assert_allclose(answers, [i + 8 for i in range(5)], rtol=1e-6)
    assert during == ["MainThread"] * 5, during  # not queued behind it on the executor


@ours_only
def test_inline_predictions_can_be_turned_off(drum_server, recording_model, tmp_path):
    threads_file = tmp_path / "threads.txt"
    env = {"THREADS_FILE": str(threads_file), "DRUM_INLINE_PREDICTION_MAX_US": "0"}
    server = drum_server(recording_model, "--target-type", "regression", env=env)
    for i in range(50):
        _predict(server.url, i)
    assert all(t.startswith("drum-predict") for t in _threads(threads_file))


@ours_only
def test_models_with_hooks_never_run_inline(drum_server, recording_model, tmp_path, model_dir):
    code_dir = model_dir({"custom.py": "def transform(data, model):\n    return data\n"}, name="ridge")
    for name in ("model.pkl", "recording_ridge.py"):
        (code_dir / name).write_bytes((recording_model / name).read_bytes())
    threads_file = tmp_path / "threads.txt"
    env = {"THREADS_FILE": str(threads_file), "DRUM_INLINE_PREDICTION_MAX_US": LIMIT_US}
    server = drum_server(code_dir, "--target-type", "regression", env=env)
    for i in range(50):
        _predict(server.url, i)
    assert all(t.startswith("drum-predict") for t in _threads(threads_file))


@ours_only
def test_with_batching_a_lone_request_runs_inline_and_overlapping_ones_are_batched(
    drum_server, recording_model, tmp_path
):
    threads_file = tmp_path / "threads.txt"
    env = {"THREADS_FILE": str(threads_file), "DRUM_INLINE_PREDICTION_MAX_US": LIMIT_US,
           "DRUM_BATCHING_MAX_ROWS": "64", "DRUM_BATCHING_MAX_WAIT_MS": "50"}  # fmt: skip
    server = drum_server(recording_model, "--target-type", "regression", env=env)
    answers = [_predict(server.url, i / 10) for i in range(40)]  # one at a time: batches of one, then inline
    np.testing.assert_allclose(answers, [i / 10 + 2 + 6 for i in range(40)], rtol=1e-6)
    threads = _threads(threads_file)
    assert threads[0].startswith("drum-predict"), threads[:3]
    assert threads[-1] == "MainThread", threads[-5:]
    # requests that arrive together are batched: a slow lone one (200 ms of CPU, inline: nobody knew) holds
    # the event loop while 15 more arrive; they go out as batches on a prediction thread, in fewer model calls
    before = len(_threads(threads_file))
    with ThreadPoolExecutor(16) as pool:
        slow = pool.submit(_predict, server.url, 99)
        time.sleep(0.05)
        answers = list(pool.map(lambda i: _predict(server.url, i), range(15)))
        slow.result()
    np.testing.assert_allclose(answers, [i + 8 for i in range(15)], rtol=1e-6)
    calls = _threads(threads_file)[before:]
    assert calls[0] == "MainThread", calls  # the slow lone one
    assert 1 < len(calls) < 16 and all(t.startswith("drum-predict") for t in calls[1:]), calls
