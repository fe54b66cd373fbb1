"""`drum perf-test`: starts this drum's server, posts DRUM's payloads, reads `/stats/`, prints DRUM's table."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import psutil
import pytest
from support import DRUM, run_drum, write_model

MODEL = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            if "boom" in data.columns:
                raise ValueError("boom")
            return pd.DataFrame({"Predictions": data.sum(axis=1) * 1.0})
    """
}
HEADER = ["size", "samples", "iters", "min", "avg", "max", "total", "(s)", "used", "(MB)", "total", "physical", "(MB)"]


def _perf_test(tmp_path, *args: str, env: dict | None = None, columns: str = "x1,x2", rows: int = 4):
    code_dir = write_model(tmp_path / "code", MODEL)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text(columns + "\n" + "".join(f"{i},{i + 1}\n" for i in range(rows)))
    result = run_drum("perf-test", "--code-dir", str(code_dir), "--input", str(input_csv), *args,
                      env={"COLUMNS": "200", **(env or {})})
    return result, code_dir, input_csv


def _table(stdout: str) -> list[list[str]]:
    lines = stdout.rstrip("\n").splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("====="))
    return [lines[rule - 1].split(), *(line.split() for line in lines[rule + 1:])]


def _no_server_left(code_dir) -> bool:
    for proc in psutil.process_iter(["cmdline"]):
        if str(code_dir) in " ".join(proc.info["cmdline"] or []) and "server" in (proc.info["cmdline"] or []):
            return False
    return True


def test_perf_test_on_the_fastapi_server(tmp_path):
    args = ("--target-type", "regression", "-s", "10", "-i", "3", "--in-server")
    result, code_dir, input_csv = _perf_test(tmp_path, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith(
        f"DRUM performance test\nModel:      {code_dir}\nData:       {input_csv}\n# Features: 2\n"
        "Preparing test data...\n"
    )
    size = int(input_csv.stat().st_size / 4) * 10
    assert f"Running test case: {size} bytes - 10 samples, 3 iterations\n" in out
    assert "Test is done, stopping drum server\n" in out
    header, row = _table(out)
    assert header == [*HEADER, "prediction"]
    assert row[:4] == [str(size), "bytes", "10", "3"]
    minimum, average, maximum, total, used, physical, in_server = map(float, row[4:])
    assert 0 < minimum <= average <= maximum <= total
    assert used > 0 and physical > used
    assert in_server >= 0  # --in-server: run_predictor_total avg from /stats/ (the server runs with --show-perf)
    assert _no_server_left(code_dir)


def test_perf_test_with_two_workers(tmp_path):
    args = ("--target-type", "regression", "-s", "5", "-i", "4", "--max-workers", "2")
    result, code_dir, _ = _perf_test(tmp_path, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = _table(result.stdout)
    assert header == HEADER
    assert row[2:4] == ["5", "4"] and float(row[-2]) > 0  # /stats/ of the worker that answered it
    assert _no_server_left(code_dir)


@pytest.mark.skipif(importlib.util.find_spec("flask") is None, reason="needs drum[flask]")
def test_perf_test_on_the_flask_backend(tmp_path):
    result, code_dir, _ = _perf_test(tmp_path, "--target-type", "regression", "-s", "5", "-i", "2",
                                     env={"DRUM_SERVER_TYPE": "flask"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert _table(result.stdout)[0] == HEADER
    assert _no_server_left(code_dir)


def test_failing_predictions_are_reported_in_the_table(tmp_path):
    result, code_dir, _ = _perf_test(tmp_path, "--target-type", "regression", "-s", "2", "-i", "2", columns="boom,x")
    assert result.returncode == 0, result.stdout + result.stderr
    row = _table(result.stdout)[1]
    assert row[2:] == ["2", "2", "Fail", "Fail", "Fail", "Fail", "NA", "NA"]


def test_unstructured_is_refused(tmp_path):
    result, _, _ = _perf_test(tmp_path, "--target-type", "unstructured")
    assert result.returncode == 1
    assert "Performance testing is not implemented for unstructured models." in result.stdout + result.stderr


def test_interrupted_perf_test_stops_its_server(tmp_path):
    code_dir = write_model(tmp_path / "code", MODEL)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("x1,x2\n1,2\n")
    process = subprocess.Popen(
        [*DRUM, "perf-test", "--code-dir", str(code_dir), "--input", str(input_csv), "--target-type", "regression",
         "-s", "1", "-i", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )
    for line in process.stdout:
        if line.startswith("Running test case:"):
            break
    process.send_signal(2)  # Ctrl+C
    rest = process.stdout.read()
    assert process.wait(60) == 0
    assert "Ctrl+C pressed, aborting test" in rest and "Test is done, stopping drum server" in rest
    assert _no_server_left(code_dir)
