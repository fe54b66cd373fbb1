"""`drum validation`: DRUM's basic batch prediction and null value imputation checks, its table and exit code."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support import run_drum, write_model

GOOD = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": data.fillna(0).sum(axis=1) * 1.0})
    """
}
NO_NULLS_IN_X2 = {
    "custom.py": """
        import pandas as pd

        def load_model(code_dir):
            return "m"

        def score(data, model, **kwargs):
            if data["x2"].isna().any():
                raise ValueError("x2 is null")
            return pd.DataFrame({"Predictions": data["x1"] * 1.0})
    """
}
PASSED_TABLE = """

Validation checks results
      Test case          Status   Details
=========================================
Basic batch prediction   PASSED          
Null value imputation    PASSED          
"""  # noqa: W291 - texttable pads cells with spaces


def _validate(tmp_path: Path, files: dict[str, str], *args: str):
    code_dir = write_model(tmp_path / "code", files)
    input_csv = tmp_path / "input.csv"
    input_csv.write_text("x1,x2\n1,2\n3,4\n")
    return run_drum("validation", "--code-dir", str(code_dir), "--input", str(input_csv), *args,
                    env={"COLUMNS": "80"})


def test_validation_passes(tmp_path):
    result = _validate(tmp_path, GOOD, "--target-type", "regression")
    assert result.returncode == 0, result.stderr
    assert result.stdout == PASSED_TABLE


def test_null_imputation_failure_names_the_feature_and_keeps_its_dataset(tmp_path):
    result = _validate(tmp_path, NO_NULLS_IN_X2, "--target-type", "regression")
    assert result.returncode == 0  # DRUM reports failed checks in the table, with exit code 0
    assert "x2 is null" in result.stderr  # the failing score run's own error
    table = result.stdout.split("Validation checks results\n", 1)[1]
    lines = table.splitlines()
    assert lines[0].split() == ["Test", "case", "Status", "Details"]
    assert re.match(r"^Basic batch prediction   PASSED +$", lines[2])
    assert lines[3].startswith("Null value imputation    FAILED   Null value imputation check performs check by ")
    assert all(len(line) <= 80 for line in lines)  # wrapped to the terminal width
    details = "".join(line[33:].strip() for line in lines[3:])
    assert "/tmp/drum_validation_checks_* Make sure to delete those folders" in re.sub(r"\s+", " ", table)
    dataset = re.search(r"(/tmp/drum_validation_checks_\w+)/null_value_imputation_column1", details)
    assert dataset is not None, table
    kept = Path(dataset.group(1))
    try:
        assert sorted(p.name for p in kept.iterdir()) == ["null_value_imputation_column1"]
        assert (kept / "null_value_imputation_column1").read_text() == "x1,x2\n1,\n3,\n"
    finally:
        shutil.rmtree(kept)


def test_basic_batch_prediction_failure(tmp_path):
    broken = {"custom.py": "def load_model(code_dir):\n    return 'm'\n\n\ndef score(data, model, **kw):\n    1 / 0\n"}
    result = _validate(tmp_path, broken, "--target-type", "regression")
    try:
        assert result.returncode == 0
        lines = result.stdout.split("Validation checks results\n", 1)[1].splitlines()
        assert lines[2].startswith("Basic batch prediction   FAILED   Test failed on provided dataset: ")
        assert f"dataset:{tmp_path / 'input.csv'}Nullvalue" in "".join(result.stdout.split())  # wrapped lines
        assert "Null value imputation    FAILED" in result.stdout
    finally:
        for kept in set(re.findall(r"/tmp/drum_validation_checks_\w+", "".join(result.stdout.split()))):
            shutil.rmtree(kept, ignore_errors=True)
