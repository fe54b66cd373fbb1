"""Warm-up (issue 25): DRUM_WARMUP_INPUT is scored DRUM_WARMUP_REQUESTS times through the normal path
before the server accepts connections; a failing warm-up stops the server with the model's error."""

from __future__ import annotations

from tests.functional.support import ours_only, run_drum

COUNTING = {
    "custom.py": """
        import pandas as pd

        CALLS = []


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            if (data["a"] == 13).any():
                raise ValueError("thirteen is not allowed")
            CALLS.append(len(data))
            # the first call would be the slow one (a cache to fill); each answer says which call it was
            return pd.DataFrame({"Predictions": [float(len(CALLS))] * len(data)})
    """,
}


@ours_only
def test_warm_up_requests_run_before_the_first_real_one(drum_server, model_dir, tmp_path):
    warmup = tmp_path / "warmup.csv"
    warmup.write_text("a\n1\n")
    env = {"DRUM_WARMUP_INPUT": str(warmup), "DRUM_WARMUP_REQUESTS": "3"}
    server = drum_server(model_dir(COUNTING), "--target-type", "regression", env=env)
    first = server.post("/predict/", data="a\n5\n", headers={"Content-Type": "text/csv"})
    assert first.json() == {"predictions": [4.0]}  # the model's 4th call: 3 warm-up calls came first
    assert "Warm-up: 3 request(s)" in server.log()


@ours_only
def test_a_failing_warm_up_stops_the_server_with_the_models_error(model_dir, tmp_path):
    warmup = tmp_path / "warmup.csv"
    warmup.write_text("a\n13\n")
    result = run_drum(
        "server", "--code-dir", str(model_dir(COUNTING)), "--address", "127.0.0.1:1", "--target-type", "regression",
        env={"DRUM_WARMUP_INPUT": str(warmup)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "thirteen is not allowed" in result.stdout + result.stderr


@ours_only
def test_a_missing_warm_up_file_is_a_startup_error(model_dir, tmp_path):
    result = run_drum(
        "server", "--code-dir", str(model_dir(COUNTING)), "--address", "127.0.0.1:1", "--target-type", "regression",
        env={"DRUM_WARMUP_INPUT": str(tmp_path / "nope.csv")}, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DRUM_WARMUP_INPUT" in result.stdout + result.stderr
