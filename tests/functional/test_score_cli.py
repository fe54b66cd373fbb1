"""`drum score` at scale: chunked scoring equals scoring whole, bounded memory, progress bar only on a
terminal, DRUM's `--show-perf` report, sparse input with `--sparse-column-file`."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import DRUM, run_drum, write_model

ROWS = 3000
CHUNKED = {"DRUM_SCORE_CHUNK_BYTES": "4096"}
WHOLE = {"DRUM_SCORE_CHUNK_BYTES": "0"}

ROW_WISE = {
    "custom.py": """
        import os
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def _log(data):
            with open(os.environ["CALLS_FILE"], "a") as f:
                f.write(f"{len(data)}\\n")

        def score(data, model, **kwargs):
            _log(data)
            out = pd.DataFrame({"Predictions": data["x"] * 1.5 + data["n"]})
            out["code"] = data["code"].astype(str)  # "01" stays "01" only if the column is text everywhere
            out["n2"] = data["n"] * 2  # float everywhere: n misses a value near the end of the file
            out["ok"] = data["ok"]  # objects everywhere: ok misses a value near the end
            out["note"] = data["note"]
            out["maybe"] = [k if f != "skip" else None for k, f in zip(data["k"], data["flag"])]  # int/float mix
            return out
    """
}
TRANSFORM = {
    "custom.py": ROW_WISE["custom.py"].split("        def score")[0] + """
        def transform(data, model):
            _log(data)
            return data.assign(n2=data["n"] * 2, code=data["code"].astype(str))
    """
}
MODELS = {"regression": ROW_WISE, "transform": TRANSFORM}


def _input(path: Path, rows: int = ROWS) -> Path:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows).round(4),
            "n": pd.array([int(v) if i != rows - 300 else None for i, v in enumerate(rng.integers(0, 100, rows))],
                          dtype="Int64"),
            "code": [f"{i % 50:02d}" if i != rows - 100 else "A7" for i in range(rows)],
            "k": rng.integers(0, 9, rows),
            "flag": ["skip" if i == rows // 2 else "go" for i in range(rows)],
            "ok": [bool(i % 3) if i != rows - 200 else None for i in range(rows)],
            "note": [f"line {i}\nwith \"quotes\", commas" if i % 10 == 0 else f"n{i}" for i in range(rows)],
        }
    )
    frame.to_csv(path, index=False)
    return path


def _score(code_dir: Path, input_csv: Path, out: Path | None, env: dict, *args: str):
    extra = ["--output", str(out)] if out is not None else []
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(input_csv), *args, *extra, env=env)
    assert result.returncode == 0, result.stderr
    return result


def _calls(path: Path) -> list[int]:
    calls = [int(x) for x in path.read_text().split()]
    path.unlink()
    return calls


@pytest.mark.parametrize("target_type", ["regression", "transform"])
def test_chunked_output_file_equals_scoring_whole(tmp_path, target_type):
    code_dir = write_model(tmp_path / "code", MODELS[target_type])
    input_csv = _input(tmp_path / "input.csv")
    calls = tmp_path / "calls"
    env = {"CALLS_FILE": str(calls)}
    _score(code_dir, input_csv, tmp_path / "whole.csv", {**env, **WHOLE}, "--target-type", target_type)
    assert _calls(calls) == [ROWS]
    _score(code_dir, input_csv, tmp_path / "chunked.csv", {**env, **CHUNKED}, "--target-type", target_type)
    chunks = _calls(calls)
    whole = (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "chunked.csv").read_bytes() == whole
    assert len(chunks) > 10 and max(chunks) < ROWS // 5
    if target_type == "regression":
        # "maybe" is int in every chunk but one: scored a second time with the column as float everywhere
        assert sum(chunks) == 2 * ROWS
        assert b"\n40.44805,01,80.0,True,n1,0.0\n" in whole  # code kept as text ("01"), n2 and maybe as floats
    else:
        assert sum(chunks) == ROWS


def test_chunked_output_on_stdout_equals_scoring_whole(tmp_path):
    code_dir = write_model(tmp_path / "code", ROW_WISE)
    input_csv = _input(tmp_path / "input.csv")
    env = {"CALLS_FILE": str(tmp_path / "calls")}
    whole = _score(code_dir, input_csv, None, {**env, **WHOLE}, "--target-type", "regression").stdout
    chunked = _score(code_dir, input_csv, None, {**env, **CHUNKED}, "--target-type", "regression").stdout
    assert chunked == whole
    assert whole.rstrip().endswith(f"[{ROWS} rows x 6 columns]")


def test_a_failing_chunk_leaves_no_partial_output(tmp_path):
    model = {
        "custom.py": """
            import pandas as pd

            def load_model(code_dir):
                return "m"

            def score(data, model, **kwargs):
                if (data["k"] > 2000).any():
                    raise ValueError("late failure")
                return pd.DataFrame({"Predictions": data["k"] * 1.0})
        """
    }
    code_dir = write_model(tmp_path / "code", model)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("k\n" + "".join(f"{i}\n" for i in range(2500)))
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    args = ("score", "--code-dir", str(code_dir), "--input", str(input_csv), "--target-type", "regression")
    result = run_drum(*args, "--output", str(out), env=CHUNKED)
    assert result.returncode == 1
    assert "late failure" in result.stderr
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code", "input.csv", "out.csv"]


def test_read_input_data_hook_gets_the_whole_file(tmp_path):
    model = {
        "custom.py": """
            import io
            import pandas as pd

            def load_model(code_dir):
                return "m"

            def read_input_data(input_binary_data):
                return pd.read_csv(io.BytesIO(input_binary_data))

            def score(data, model, **kwargs):
                return pd.DataFrame({"Predictions": [float(len(data))] * len(data)})
        """
    }
    code_dir = write_model(tmp_path / "code", model)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("k\n" + "".join(f"{i}\n" for i in range(2000)))
    _score(code_dir, input_csv, tmp_path / "out.csv", CHUNKED, "--target-type", "regression")
    assert set((tmp_path / "out.csv").read_text().split()[1:]) == {"2000.0"}


# The high-water mark of this process's resident memory (VmHWM; ru_maxrss would include the parent's).
HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
MEMORY_PROBE = (
    "import sys\n"
    "from drum.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('PEAK_KB', {HWM}, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
MEMORY_MODEL = {
    "custom.py": f"""
        import sys
        import pandas as pd

        def load_model(code_dir):
            print("LOADED_KB", {HWM}, file=sys.stderr)
            return "m"

        def score(data, model, **kwargs):
            return pd.DataFrame({{"Predictions": data.sum(axis=1)}})
    """
}


def _peak_growth_mb(code_dir: Path, input_csv: Path, out: Path, env: dict) -> float:
    args = ["score", "--code-dir", str(code_dir), "--input", str(input_csv), "--target-type", "regression",
            "--output", str(out)]
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, *args], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = int(re.search(r"LOADED_KB (\d+)", result.stderr).group(1))
    peak = int(re.search(r"PEAK_KB (\d+)", result.stderr).group(1))
    return (peak - loaded) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_memory_stays_bounded_when_scoring_in_chunks(tmp_path):
    rows = 150_000
    rng = np.random.default_rng(1)
    input_csv = tmp_path / "input.csv"
    frame = pd.DataFrame(rng.normal(size=(rows, 8)).round(6), columns=[f"f{i}" for i in range(8)])
    frame.to_csv(input_csv, index=False)
    size_mb = input_csv.stat().st_size / 2**20
    code_dir = write_model(tmp_path / "code", MEMORY_MODEL)
    whole = _peak_growth_mb(code_dir, input_csv, tmp_path / "whole.csv", WHOLE)
    chunked = _peak_growth_mb(code_dir, input_csv, tmp_path / "chunked.csv", {"DRUM_SCORE_CHUNK_BYTES": "262144"})
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert whole > size_mb  # scoring whole holds at least the file's bytes and its frame
    assert chunked < whole / 3, (size_mb, whole, chunked)


def _stderr_on_a_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (stdout piped); returns the exit code and what the terminal got."""
    master, slave = pty.openpty()
    process = subprocess.Popen([*DRUM, *args], stdout=subprocess.PIPE, stderr=slave,
                               env={**os.environ, **env})
    os.close(slave)
    received = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        received += data
    process.stdout.read()
    code = process.wait(60)
    os.close(master)
    return code, received.decode(errors="replace")


def test_progress_bar_on_a_terminal_only(tmp_path):
    code_dir = write_model(tmp_path / "code", TRANSFORM)
    input_csv = _input(tmp_path / "input.csv")
    env = {"CALLS_FILE": str(tmp_path / "calls"), **CHUNKED}
    args = ["score", "--code-dir", str(code_dir), "--input", str(input_csv), "--target-type", "transform",
            "--output", str(tmp_path / "out.csv")]
    code, terminal = _stderr_on_a_terminal(args, env)
    assert code == 0, terminal
    assert "\rScoring |" in terminal
    assert f"| {ROWS}/{ROWS} rows 100%" in terminal
    piped = run_drum(*args, env=env)
    assert piped.returncode == 0 and "Scoring" not in piped.stderr and "Scoring" not in piped.stdout


PERF = re.compile(r"^\tsec: min: \d+\.\d\d; avg: \d+\.\d\d; max: \d+\.\d\d$")


@pytest.mark.parametrize("to_file", [True, False])
def test_show_perf_prints_drums_timing_report(tmp_path, to_file):
    code_dir = write_model(tmp_path / "code", ROW_WISE)
    input_csv = _input(tmp_path / "input.csv", rows=5)
    out = tmp_path / "out.csv" if to_file else None
    result = _score(code_dir, input_csv, out, {"CALLS_FILE": str(tmp_path / "calls")}, "--target-type", "regression",
                    "--show-perf")
    lines = result.stdout.splitlines()
    assert lines[-6::2] == ["Full time:", "Init time (incl model loading):", "Run time (incl reading CSV):"]
    assert all(PERF.match(line) for line in lines[-5::2])
    if not to_file:
        assert lines[-7] == "[5 rows x 6 columns]" or lines[0].split() == ["Predictions", "code", "n2", "ok", "note",
                                                                           "maybe"]


def test_sparse_input_with_column_file(tmp_path):
    import scipy.io
    import scipy.sparse

    model = {
        "custom.py": """
            import pandas as pd

            def load_model(code_dir):
                return "m"

            def score(data, model, **kwargs):
                return pd.DataFrame({"Predictions": data["b"].sparse.to_dense() * 10 + data["c"].sparse.to_dense()})
        """
    }
    code_dir = write_model(tmp_path / "code", model)
    matrix = scipy.sparse.coo_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]))
    scipy.io.mmwrite(tmp_path / "input.mtx", matrix)
    (tmp_path / "columns.txt").write_text("a\nb\nc\n")
    _score(code_dir, tmp_path / "input.mtx", tmp_path / "out.csv", CHUNKED, "--target-type", "regression",
           "--sparse-column-file", str(tmp_path / "columns.txt"))
    assert (tmp_path / "out.csv").read_text() == "Predictions\n2.0\n30.0\n"


def test_input_starting_with_a_blank_line_is_scored_whole(tmp_path):
    code_dir = write_model(tmp_path / "code", MEMORY_MODEL)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("\nk,j\n" + "".join(f"{i},{i}\n" for i in range(2000)))
    _score(code_dir, input_csv, tmp_path / "chunked.csv", CHUNKED, "--target-type", "regression")
    _score(code_dir, input_csv, tmp_path / "whole.csv", WHOLE, "--target-type", "regression")
    assert (tmp_path / "chunked.csv").read_text() == (tmp_path / "whole.csv").read_text()
    assert (tmp_path / "whole.csv").read_text().splitlines()[:3] == ["Predictions", "0", "2"]
