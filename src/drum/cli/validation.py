"""`drum validation`: DRUM's two checks, each a `drum score` run of the same command line.

1. Basic batch prediction: score the input.
2. Null value imputation: for every column, score a copy of the input with that column set to null.

Then DRUM's table of PASSED/FAILED (texttable, header decoration, terminal width) is printed. As in
DRUM, the exit code is 0 whether the checks pass or fail; datasets of failed imputation checks are
kept in /tmp/drum_validation_checks_* and named in the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import pandas as pd
from texttable import Texttable

TMP_DIR = "/tmp"
NULL_DIR_PREFIX = "drum_validation_checks_"
BASIC_DIR_PREFIX = "drum_validation_check_"


@dataclass
class CheckResult:
    name: str
    passed: bool
    details: str = ""


def _without(argv: list[str], *flags: str) -> list[str]:
    """argv without the given value flags (`--flag value` and `--flag=value`)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in flags:
            skip = True
            continue
        if any(arg.startswith(flag + "=") for flag in flags):
            continue
        out.append(arg)
    return out


def score_command(argv: list[str], input_path: str, output_path: str) -> list[str]:
    """The `drum score` command line for one check: the validation command line with `score` as the
    sub-command and the check's input and output files."""
    args = list(argv)
    args[args.index("validation")] = "score"
    args = _without(args, "--input", "--output")
    return [sys.executable, "-m", "drum", *args, "--input", input_path, "--output", output_path]


def _run(command: list[str]) -> int:
    sys.stdout.flush()
    return subprocess.call(command, env=os.environ)


def basic_batch_prediction(argv: list[str], input_path: str) -> CheckResult:
    directory = tempfile.mkdtemp(prefix=BASIC_DIR_PREFIX, dir=TMP_DIR)
    try:
        code = _run(score_command(argv, input_path, os.path.join(directory, "output")))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if code != 0:
        return CheckResult("Basic batch prediction", False, f"Test failed on provided dataset: {input_path}")
    return CheckResult("Basic batch prediction", True)


def null_value_imputation(argv: list[str], input_path: str) -> CheckResult:
    name = "Null value imputation"
    directory = tempfile.mkdtemp(prefix=NULL_DIR_PREFIX, dir=TMP_DIR)
    df = pd.read_csv(input_path)
    failed: list[tuple[str, str]] = []
    for i, column in enumerate(df.columns):
        dataset = os.path.join(directory, f"null_value_imputation_column{i}")
        nulled = df.copy()
        nulled[column] = None
        nulled.to_csv(dataset, index=False)
        if _run(score_command(argv, dataset, os.path.join(directory, f"output{i}"))) != 0:
            failed.append((str(column), dataset))
        else:
            os.remove(dataset)
    if not failed:
        shutil.rmtree(directory, ignore_errors=True)
        return CheckResult(name, True)
    for leftover in os.listdir(directory):  # outputs of the columns that passed
        path = os.path.join(directory, leftover)
        if path not in {dataset for _, dataset in failed}:
            os.remove(path)
    table = Texttable()
    table.set_deco(Texttable.HEADER)
    table.set_cols_dtype(["t", "t", "t"])
    table.set_cols_align(["l", "l", "l"])
    table.add_rows([["Failed feature", "Message", "Dataset filename"], *[[c, "", d] for c, d in failed]])
    message = (
        "Null value imputation check performs check by imputing each feature with NaN value. "
        f"If check fails for a feature, test dataset is saved in {TMP_DIR}/{NULL_DIR_PREFIX}* "
        "Make sure to delete those folders if it takes too much space."
    )
    return CheckResult(name, False, f"{message}\n\n{table.draw()}")


def results_table(results: list[CheckResult]) -> str:
    table = Texttable()
    table.set_deco(Texttable.HEADER)
    try:
        table.set_max_width(shutil.get_terminal_size().columns)
    except Exception:  # noqa: BLE001 - DRUM ignores a terminal it cannot measure
        pass
    table.set_cols_dtype(["t", "t", "t"])
    table.set_cols_align(["l", "l", "l"])
    rows = [["Test case", "Status", "Details"]]
    rows += [[r.name, "PASSED" if r.passed else "FAILED", "" if r.passed else r.details] for r in results]
    table.add_rows(rows)
    return table.draw()


def run(options: argparse.Namespace, argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    results = [basic_batch_prediction(argv, options.input), null_value_imputation(argv, options.input)]
    print("\n\nValidation checks results")
    print(results_table(results))
    return 0
