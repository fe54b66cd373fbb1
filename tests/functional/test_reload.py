"""`drum server --reload` (issue 25): the worker restarts when a file in the code dir changes; refused
(exit 2) with several workers or --production."""

from __future__ import annotations

import textwrap

import pytest

from tests.functional.support import ours_only, poll_until, run_drum

MODEL = """
    import pandas as pd


    def load_model(code_dir):
        return "model"


    def score(data, model, **kwargs):
        return pd.DataFrame({"Predictions": [VALUE] * len(data)})
"""


def _predict(server) -> float | None:
    try:
        answer = server.post("/predict/", data="a\n1\n", headers={"Content-Type": "text/csv"}, timeout=5)
    except Exception:  # noqa: BLE001 - restarting
        return None
    return answer.json()["predictions"][0] if answer.status_code == 200 else None


@ours_only
def test_a_changed_custom_py_is_served_after_reload(drum_server, model_dir):
    code_dir = model_dir({"custom.py": MODEL.replace("VALUE", "1.0")})
    server = drum_server(code_dir, "--target-type", "regression", "--reload")
    assert _predict(server) == 1.0
    (code_dir / "custom.py").write_text(textwrap.dedent(MODEL.replace("VALUE", "2.0")))
    assert poll_until(lambda: _predict(server), lambda value: value == 2.0, timeout=30) == 2.0


@ours_only
@pytest.mark.parametrize("extra", [["--max-workers", "2"], ["--production", "--max-workers", "1"]])
def test_reload_is_refused_with_several_workers_or_production(model_dir, extra):
    code_dir = model_dir({"custom.py": MODEL.replace("VALUE", "1.0")})
    result = run_drum("server", "--code-dir", str(code_dir), "--address", "127.0.0.1:1", "--target-type",
                      "regression", "--reload", *extra, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--reload" in result.stderr
