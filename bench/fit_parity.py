"""Side-by-side `drum fit` parity check: this project's drum against the real DRUM 1.18.1.

Generates synthetic data (numpy, seeded) and a set of code dirs in a temp dir: legacy ``fit`` hooks
(regression, binary, multiclass, anomaly, transform), ``CustomTask`` classes on DRUM's
``datarobot_drum.custom_task_interfaces``, error cases, and tasks that read user secrets. Every case runs
on both sides, in sequence, each run on its own fresh copy of the code dir and its own fresh output dir,
and a markdown report is printed: exit codes, normalised stdout, output-dir files, code-dir changes, and
for stderr only whether it holds a traceback and its last line.

Usage, from the repository root::

    .venv/bin/python -m bench.fit_parity [--out bench/results/fit-parity.md]
    .venv/bin/python -m bench.fit_parity --drum-ref /tmp/drumref/bin/drum --ours "/path/python -m drum"
    .venv/bin/python -m bench.fit_parity --cases 'task-*,err-*' --raw-dir /tmp/fit-raw   # a subset, raw logs kept
    .venv/bin/python -m bench.fit_parity --list                                          # the cases

Each run has a 300 s limit; the script takes about 2-5 minutes in all (21 cases x 2 sides, in sequence;
most runs start a prediction-check server). Progress goes to stderr, the report to stdout.

The reference DRUM lives in its own venv (default /tmp/drumref)::

    python3 -m venv /tmp/drumref && /tmp/drumref/bin/python -m pip install datarobot-drum==1.18.1 scikit-learn

Exit status: 0 when the report was produced (whatever it says), 2 when the reference DRUM is missing.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_DRUM_REF = "/tmp/drumref/bin/drum"
REF_INSTALL_HINT = (
    "python3 -m venv /tmp/drumref && /tmp/drumref/bin/python -m pip install datarobot-drum==1.18.1 scikit-learn"
)
RUN_TIMEOUT_S = 300
N_ROWS = 60
SEED = 20240607

# Raw secret values written for the secrets cases: none of them may reach stdout/stderr.
SECRET_PASSWORD = "hunter2secret"
SECRET_API_TOKEN = "tok-s3cr3t-9f8e7d"
SECRET_VALUES = (SECRET_PASSWORD, SECRET_API_TOKEN)
SECRETS_PREFIX = "FITPARITY_SECRET"

REF_LABEL = "DRUM"
OURS_LABEL = "drum"

# ----------------------------------------------------------------------------------------------------------
# Code dirs
# ----------------------------------------------------------------------------------------------------------

LEGACY_FIT_SIG = "def fit(X, y, output_dir, class_order=None, row_weights=None, parameters=None, **kwargs):"


def _legacy_estimator(import_line: str, ctor: str) -> str:
    return textwrap.dedent(
        f"""\
        import os
        import pickle

        {import_line}


        {LEGACY_FIT_SIG}
            model = {ctor}
            model.fit(X, y) if y is not None else model.fit(X)
            with open(os.path.join(output_dir, "model.pkl"), "wb") as f:
                pickle.dump(model, f)
        """
    )


LEGACY_REGRESSION = _legacy_estimator("from sklearn.linear_model import Ridge", "Ridge(alpha=1.0)")
LEGACY_BINARY = _legacy_estimator("from sklearn.linear_model import LogisticRegression", "LogisticRegression()")
LEGACY_MULTICLASS = _legacy_estimator(
    "from sklearn.linear_model import LogisticRegression", "LogisticRegression(max_iter=500)"
)
LEGACY_ANOMALY = _legacy_estimator("from sklearn.ensemble import IsolationForest", "IsolationForest(random_state=0)")

LEGACY_TRANSFORM = textwrap.dedent(
    f"""\
    import os
    import pickle

    import pandas as pd
    from sklearn.preprocessing import StandardScaler


    {LEGACY_FIT_SIG}
        scaler = StandardScaler().fit(X)
        with open(os.path.join(output_dir, "model.pkl"), "wb") as f:
            pickle.dump(scaler, f)


    def transform(X, model):
        return pd.DataFrame(model.transform(X), columns=X.columns, index=X.index)
    """
)

LEGACY_OPTIONS = textwrap.dedent(
    f"""\
    import os
    import pickle

    from sklearn.linear_model import Ridge


    {LEGACY_FIT_SIG}
        print("fit X shape:", X.shape, "columns:", list(X.columns))
        print("fit y len:", len(y), "row_weights:", None if row_weights is None else len(row_weights))
        print("fit parameters:", parameters)
        model = Ridge().fit(X, y, sample_weight=row_weights)
        with open(os.path.join(output_dir, "model.pkl"), "wb") as f:
            pickle.dump(model, f)
    """
)

LEGACY_FIT_RAISES = textwrap.dedent(
    f"""\
    {LEGACY_FIT_SIG}
        raise ValueError("boom")
    """
)

NO_FIT_HOOK = textwrap.dedent(
    """\
    # A custom.py with no fit hook (and no CustomTask): DRUM cannot train anything from this code dir.
    import pandas as pd


    def transform(X, model):
        return pd.DataFrame(X)
    """
)


def _task(interface: str, body: str, imports: str = "") -> str:
    header = "import pandas as pd\n"
    if imports:
        header += imports.rstrip("\n") + "\n"
    header += f"from datarobot_drum.custom_task_interfaces import {interface}\n"
    return header + "\n\n" + f"class CustomTask({interface}):\n" + textwrap.indent(textwrap.dedent(body), "    ")


TASK_FIT_SIG = "def fit(self, X, y, parameters=None, row_weights=None, **kwargs):"

TASK_REGRESSION = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        self.estimator = Ridge().fit(X, y)
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "from sklearn.linear_model import Ridge",
)

_PROBA = """\
{sig}
    self.estimator = LogisticRegression(max_iter=500).fit(X, y)
    return self

def predict_proba(self, X, **kwargs):
    return pd.DataFrame(self.estimator.predict_proba(X), columns=self.estimator.classes_)
"""

TASK_BINARY = _task(
    "BinaryEstimatorInterface", _PROBA.format(sig=TASK_FIT_SIG), "from sklearn.linear_model import LogisticRegression"
)
TASK_MULTICLASS = _task(
    "MulticlassEstimatorInterface",
    _PROBA.format(sig=TASK_FIT_SIG),
    "from sklearn.linear_model import LogisticRegression",
)

TASK_ANOMALY = _task(
    "AnomalyEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        self.estimator = IsolationForest(random_state=0).fit(X)
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "from sklearn.ensemble import IsolationForest",
)

TASK_TRANSFORM = _task(
    "TransformerInterface",
    f"""\
    {TASK_FIT_SIG}
        self.scaler = StandardScaler().fit(X)
        return self

    def transform(self, X):
        return pd.DataFrame(self.scaler.transform(X), columns=X.columns, index=X.index)
    """,
    "from sklearn.preprocessing import StandardScaler",
)

TASK_PARAMS = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        print("fit parameters:", json.dumps(parameters, sort_keys=True))
        self.estimator = Ridge(alpha=parameters["alpha"]).fit(X, y)
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "import json\n\nfrom sklearn.linear_model import Ridge",
)

PARAMS_METADATA = textwrap.dedent(
    """\
    name: fit-parity-params
    type: training
    targetType: regression
    hyperparameters:
      - name: alpha
        type: float
        min: 0.0
        max: 10.0
        default: 1.0
    """
)

TASK_FIT_ATTRIBUTE_ERROR = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        self.estimator = Ridge().fit(X, y)
        self.estimator.no_such_attribute.fit(X, y)  # AttributeError
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "from sklearn.linear_model import Ridge",
)

TASK_UNPICKLABLE = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        self.estimator = Ridge().fit(X, y)
        self.lock = threading.Lock()  # cannot be pickled: saving the artifact fails
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "import threading\n\nfrom sklearn.linear_model import Ridge",
)

TASK_SECRETS = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        print("secret password:", self.secrets["DB"].password)
        print("secrets repr:", repr(self.secrets))
        self.estimator = Ridge().fit(X, y)
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "from sklearn.linear_model import Ridge",
)

TASK_SECRETS_PREFIX = _task(
    "RegressionEstimatorInterface",
    f"""\
    {TASK_FIT_SIG}
        print("secret api token:", self.secrets["API"].api_token)
        print("secrets repr:", repr(self.secrets))
        self.estimator = Ridge().fit(X, y)
        return self

    def predict(self, X, **kwargs):
        return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "from sklearn.linear_model import Ridge",
)


# ----------------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One `drum fit` invocation, run on both sides."""

    name: str
    files: dict[str, str]
    target_type: str
    input_csv: str
    args: list[str] = field(default_factory=list)
    output_is_code_dir: bool = False
    env: dict[str, str] = field(default_factory=dict)
    check_secrets: bool = False
    description: str = ""


def build_cases() -> list[Case]:
    """Every case of the report, in the order they run."""
    reg = ["--target", "y"]
    binary = ["--target", "t", "--positive-class-label", "yes", "--negative-class-label", "no"]
    multi = ["--target", "m"]
    secret_env = {f"{SECRETS_PREFIX}_API": json.dumps({"credential_type": "api_token", "api_token": SECRET_API_TOKEN})}
    return [
        Case(
            "legacy-regression",
            {"custom.py": LEGACY_REGRESSION},
            "regression",
            "reg.csv",
            reg,
            description="fit hook, Ridge pickled to model.pkl",
        ),
        Case(
            "legacy-binary",
            {"custom.py": LEGACY_BINARY},
            "binary",
            "bin.csv",
            binary,
            description="fit hook, LogisticRegression, yes/no labels",
        ),
        Case(
            "legacy-multiclass",
            {"custom.py": LEGACY_MULTICLASS},
            "multiclass",
            "multi.csv",
            multi,
            description="fit hook, LogisticRegression, 3 classes",
        ),
        Case(
            "legacy-anomaly",
            {"custom.py": LEGACY_ANOMALY},
            "anomaly",
            "feat.csv",
            [],
            description="fit hook, IsolationForest, no target",
        ),
        Case(
            "legacy-transform",
            {"custom.py": LEGACY_TRANSFORM},
            "transform",
            "reg.csv",
            reg,
            description="fit hook pickles a StandardScaler, transform(X, model) hook",
        ),
        Case(
            "legacy-options",
            {"custom.py": LEGACY_OPTIONS},
            "regression",
            "reg_w.csv",
            ["--target-csv", "@DATA/target.csv", "--row-weights", "w", "--skip-predict"],
            description="--target-csv, --row-weights, --skip-predict; the hook prints what it got",
        ),
        Case(
            "legacy-num-rows",
            {"custom.py": LEGACY_OPTIONS},
            "regression",
            "reg.csv",
            reg + ["--num-rows", "40"],
            description="--num-rows 40 (fit on a 40-row sample); the hook prints what it got",
        ),
        Case(
            "task-regression",
            {"custom.py": TASK_REGRESSION},
            "regression",
            "reg.csv",
            reg,
            description="CustomTask(RegressionEstimatorInterface)",
        ),
        Case(
            "task-binary",
            {"custom.py": TASK_BINARY},
            "binary",
            "bin.csv",
            binary,
            description="CustomTask(BinaryEstimatorInterface), predict_proba",
        ),
        Case(
            "task-multiclass",
            {"custom.py": TASK_MULTICLASS},
            "multiclass",
            "multi.csv",
            multi,
            description="CustomTask(MulticlassEstimatorInterface), predict_proba",
        ),
        Case(
            "task-anomaly",
            {"custom.py": TASK_ANOMALY},
            "anomaly",
            "feat.csv",
            [],
            description="CustomTask(AnomalyEstimatorInterface), no target",
        ),
        Case(
            "task-transform",
            {"custom.py": TASK_TRANSFORM},
            "transform",
            "reg.csv",
            reg,
            description="CustomTask(TransformerInterface)",
        ),
        Case(
            "task-params",
            {"custom.py": TASK_PARAMS, "model-metadata.yaml": PARAMS_METADATA},
            "regression",
            "reg.csv",
            reg + ["--parameter-file", "@DATA/params.json"],
            description="--parameter-file with a hyperparameter declared in model-metadata.yaml",
        ),
        Case(
            "err-fit-raises",
            {"custom.py": LEGACY_FIT_RAISES},
            "regression",
            "reg.csv",
            reg,
            description='fit hook raises ValueError("boom")',
        ),
        Case(
            "err-task-attributeerror",
            {"custom.py": TASK_FIT_ATTRIBUTE_ERROR},
            "regression",
            "reg.csv",
            reg,
            description="CustomTask.fit raises AttributeError",
        ),
        Case(
            "err-task-unpicklable",
            {"custom.py": TASK_UNPICKLABLE},
            "regression",
            "reg.csv",
            reg,
            description="CustomTask stores a threading.Lock on self: saving the artifact fails",
        ),
        Case(
            "err-no-fit-hook",
            {"custom.py": NO_FIT_HOOK},
            "regression",
            "reg.csv",
            reg,
            description="custom.py with no fit hook and no CustomTask",
        ),
        Case(
            "err-no-target",
            {"custom.py": LEGACY_REGRESSION},
            "regression",
            "reg.csv",
            [],
            description="regression without --target",
        ),
        Case(
            "err-output-is-code-dir",
            {"custom.py": LEGACY_REGRESSION},
            "regression",
            "reg.csv",
            reg,
            output_is_code_dir=True,
            description="--output equal to --code-dir",
        ),
        Case(
            "secrets-mount",
            {"custom.py": TASK_SECRETS},
            "regression",
            "reg.csv",
            reg + ["--user-secrets-mount-path", "@DATA/secrets"],
            check_secrets=True,
            description="CustomTask prints self.secrets['DB'].password and repr(self.secrets); mounted file DB",
        ),
        Case(
            "secrets-prefix",
            {"custom.py": TASK_SECRETS_PREFIX},
            "regression",
            "reg.csv",
            reg + ["--user-secrets-prefix", SECRETS_PREFIX],
            env=secret_env,
            check_secrets=True,
            description=f"as secrets-mount, from the env var {SECRETS_PREFIX}_API (api_token)",
        ),
    ]


def write_data(data_dir: Path) -> None:
    """Synthetic, seeded data: features a, b; targets y (regression), t (yes/no), m (3 classes)."""
    rng = np.random.default_rng(SEED)
    a = rng.normal(size=N_ROWS).round(4)
    b = rng.normal(size=N_ROWS).round(4)
    y = (2.0 * a - 1.5 * b + rng.normal(scale=0.1, size=N_ROWS)).round(4)
    t = np.where(a + b + rng.normal(scale=0.3, size=N_ROWS) > 0, "yes", "no")
    m = np.array(["red", "green", "blue"])[np.digitize(a - b, [-0.7, 0.7])]
    w = rng.uniform(0.5, 2.0, size=N_ROWS).round(3)
    data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"a": a, "b": b, "y": y}).to_csv(data_dir / "reg.csv", index=False)
    pd.DataFrame({"a": a, "b": b, "t": t}).to_csv(data_dir / "bin.csv", index=False)
    pd.DataFrame({"a": a, "b": b, "m": m}).to_csv(data_dir / "multi.csv", index=False)
    pd.DataFrame({"a": a, "b": b}).to_csv(data_dir / "feat.csv", index=False)
    pd.DataFrame({"a": a, "b": b, "w": w}).to_csv(data_dir / "reg_w.csv", index=False)
    pd.DataFrame({"y": y}).to_csv(data_dir / "target.csv", index=False)
    (data_dir / "params.json").write_text(json.dumps({"alpha": 0.5}))
    secrets = data_dir / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "DB").write_text(
        json.dumps({"credential_type": "basic", "username": "bob", "password": SECRET_PASSWORD})
    )


# ----------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one side did on one case."""

    side: str
    rc: int | None = None
    seconds: float = 0.0
    stdout_raw: str = ""
    stderr_raw: str = ""
    stdout: list[str] = field(default_factory=list)
    dropped: int = 0
    stderr_traceback: bool = False
    stderr_last: str = ""
    output_files: list[str] = field(default_factory=list)
    code_added: list[str] = field(default_factory=list)
    code_removed: list[str] = field(default_factory=list)
    code_modified: list[str] = field(default_factory=list)
    secret_leaked: bool = False
    secret_redacted: bool = False
    error: str = ""

    def code_change_summary(self) -> str:
        parts = [f"+{p}" for p in self.code_added]
        parts += [f"-{p}" for p in self.code_removed]
        parts += [f"~{p}" for p in self.code_modified]
        return " ".join(parts) if parts else "no"


def snapshot(directory: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under `directory`, skipping __pycache__."""
    out: dict[str, str] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        out[path.relative_to(directory).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# Lines dropped from stdout: web server lifecycle and access logs of the prediction check, and progress noise.
NOISE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "gunicorn lifecycle",
        re.compile(
            r"\[(INFO|DEBUG)\] (Starting gunicorn|Listening at|Using worker|Booting worker|Handling signal|"
            r"Worker exiting|Shutting down: Master|Control socket)"
        ),
    ),
    (
        "uvicorn lifecycle",
        re.compile(
            r"^(INFO|DEBUG):\s+(Started server process|Waiting for application|Application startup|Uvicorn running|"
            r"Shutting down|Waiting for connections|Finished server process|Application shutdown)"
        ),
    ),
    ("HTTP access logs", re.compile(r'"(GET|POST|PUT|DELETE|HEAD) /[^"]* HTTP/1\.[01]" \d{3}')),
    (
        "werkzeug/flask banner",
        re.compile(
            r"^\s*\* (Serving Flask app|Debug mode|Running on)|WARNING: This is a development server|Press CTRL\+C"
        ),
    ),
]

TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[,.]\d+)?(?: ?[+-]\d{2}:?\d{2}|Z)?")
PORT_RE = re.compile(r"((?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1?\])):\d{2,5}")
PORT_WORD_RE = re.compile(r"\b(port)([ =:]+)\d{2,5}\b", re.IGNORECASE)
PID_RE = re.compile(r"\b(pid|process)([ =:]+\[?)\d+", re.IGNORECASE)
BRACKET_PID_RE = re.compile(r"\[\d{2,7}\]")
HEX_ADDR_RE = re.compile(r"0x[0-9a-fA-F]{6,}")
TMP_PATH_RE = re.compile(r"/tmp/[^\s'\",)\]]+")
ELAPSED_RE = re.compile(r"\b\d+\.\d+ ?(s|sec|seconds|ms)\b")


class Normaliser:
    """Rewrites run-specific text (paths, times, ports, pids) to placeholders."""

    def __init__(self, replacements: list[tuple[str, str]]) -> None:
        # Longest path first so that a code dir inside the temp root wins over the root.
        pairs: list[tuple[str, str]] = []
        for raw, placeholder in replacements:
            for variant in {raw, os.path.realpath(raw)}:
                if variant:
                    pairs.append((variant, placeholder))
        self.pairs = sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    def line(self, text: str) -> str:
        for raw, placeholder in self.pairs:
            text = text.replace(raw, placeholder)
        text = TIMESTAMP_RE.sub("<TS>", text)
        text = TMP_PATH_RE.sub("<TMPPATH>", text)
        text = PORT_RE.sub(r"\1:<PORT>", text)
        text = PORT_WORD_RE.sub(r"\1\2<PORT>", text)
        text = PID_RE.sub(r"\1\2<PID>", text)
        text = BRACKET_PID_RE.sub("[<PID>]", text)
        text = HEX_ADDR_RE.sub("0x<ADDR>", text)
        text = ELAPSED_RE.sub(r"<N> \1", text)
        return text.rstrip()

    def stdout(self, text: str, dropped_kinds: dict[str, int]) -> tuple[list[str], int]:
        kept: list[str] = []
        dropped = 0
        for raw in text.splitlines():
            if not raw.strip():
                continue
            kind = next((k for k, pat in NOISE_PATTERNS if pat.search(raw)), None)
            if kind is not None:
                dropped += 1
                dropped_kinds[kind] = dropped_kinds.get(kind, 0) + 1
                continue
            kept.append(self.line(raw))
        return kept, dropped


def stderr_summary(text: str, norm: Normaliser) -> tuple[bool, str]:
    has_tb = "Traceback (most recent call last)" in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return has_tb, norm.line(lines[-1].strip()) if lines else ""


def run_side(
    side: str,
    side_dir: str,
    base_cmd: list[str],
    case: Case,
    work: Path,
    data_dir: Path,
    venv_prefixes: list[tuple[str, str]],
    dropped_kinds: dict[str, int],
    raw_dir: Path | None,
) -> RunResult:
    """Run one case on one side: fresh code dir copy, fresh output dir."""
    run_dir = work / "runs" / case.name / side_dir
    code_dir = run_dir / "code"
    out_dir = code_dir if case.output_is_code_dir else run_dir / "output"
    code_dir.mkdir(parents=True)
    for name, text in case.files.items():
        (code_dir / name).write_text(text)
    if not case.output_is_code_dir:
        out_dir.mkdir()
    before = snapshot(code_dir)

    args = [a.replace("@DATA", str(data_dir)) for a in case.args]
    cmd = [
        *base_cmd,
        "fit",
        "--code-dir",
        str(code_dir),
        "--input",
        str(data_dir / case.input_csv),
        "--target-type",
        case.target_type,
        "--output",
        str(out_dir),
        *args,
    ]
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(SECRETS_PREFIX) or key in {
            "TARGET_TYPE",
            "CODE_DIR",
            "POSITIVE_CLASS_LABEL",
            "NEGATIVE_CLASS_LABEL",
            "CLASS_LABELS",
            "VIRTUAL_ENV",
        }:
            del env[key]
    env.update(case.env)
    env["PYTHONUNBUFFERED"] = "1"
    # DRUM's prediction check spawns `drum server` by name: the side's own bin dir goes first on PATH.
    bin_dir = os.path.dirname(shutil.which(base_cmd[0]) or base_cmd[0])
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])

    started = time.monotonic()
    rc, out_text, err_text, error = run_command(cmd, run_dir, env)
    seconds = time.monotonic() - started

    if raw_dir is not None:
        dest = raw_dir / case.name
        dest.mkdir(parents=True, exist_ok=True)
        (dest / f"{side_dir}.cmd").write_text(shlex.join(cmd) + "\n")
        (dest / f"{side_dir}.stdout").write_text(out_text)
        (dest / f"{side_dir}.stderr").write_text(err_text)

    norm = Normaliser(
        [
            (str(code_dir), "<CODE>"),
            (str(out_dir), "<OUT>"),
            (str(data_dir), "<DATA>"),
            (str(work), "<WORK>"),
            *venv_prefixes,
        ]
    )
    stdout, dropped = norm.stdout(out_text, dropped_kinds)
    has_tb, last = stderr_summary(err_text, norm)
    after = snapshot(code_dir)
    output_files = sorted(after) if case.output_is_code_dir else sorted(snapshot(out_dir))
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    leaked = any(s in out_text or s in err_text for s in SECRET_VALUES)
    redacted = "*****" in out_text or "*****" in err_text
    return RunResult(
        side=side,
        rc=rc,
        seconds=seconds,
        stdout_raw=out_text,
        stderr_raw=err_text,
        stdout=stdout,
        dropped=dropped,
        stderr_traceback=has_tb,
        stderr_last=last,
        output_files=output_files,
        code_added=added,
        code_removed=removed,
        code_modified=modified,
        secret_leaked=leaked,
        error=error,
        secret_redacted=redacted,
    )


def run_command(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int | None, str, str, str]:
    """Run `cmd` in its own session with a RUN_TIMEOUT_S limit: (rc, stdout, stderr, error).

    The command's process group is killed after a timeout, and also when the command exits but leaves
    processes of its own behind (e.g. a prediction-check server): `error` then says so.
    """
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    except OSError as exc:
        return None, "", "", f"could not start: {exc}"
    error = ""
    try:
        out_text, err_text = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        exited = proc.poll() is not None
        _kill_group(proc.pid)
        out_text, err_text = proc.communicate()
        error = (
            f"exited, but processes it started held its output open past {RUN_TIMEOUT_S} s (killed)"
            if exited
            else f"timed out after {RUN_TIMEOUT_S} s (killed)"
        )
        return (proc.returncode if exited else None), out_text, err_text, error
    if _kill_group(proc.pid):
        error = "left processes of its own running after it exited (killed)"
    return proc.returncode, out_text, err_text, error


def _kill_group(pgid: int) -> bool:
    """SIGKILL the process group `pgid` (a session this script started); True when it still had members."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _venv_prefixes(cmd: list[str], placeholder: str) -> list[tuple[str, str]]:
    """Map the side's venv (the dir above its executable's bin dir, symlinks not followed) to a placeholder."""
    exe = shutil.which(cmd[0]) or cmd[0]
    return [(str(Path(os.path.abspath(exe)).parent.parent), placeholder)]


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _files(files: list[str]) -> str:
    return ", ".join(f"`{f}`" for f in files) if files else "—"


def _rc(result: RunResult) -> str:
    return str(result.rc) if result.rc is not None else "— (see notes)"


def case_notes(case: Case, ref: RunResult, ours: RunResult) -> list[str]:
    notes: list[str] = []
    if ref.rc != ours.rc:
        notes.append("exit code differs")
    if ref.stdout != ours.stdout:
        notes.append("stdout differs")
    if ref.output_files != ours.output_files:
        notes.append("output files differ")
    if ref.code_change_summary() != ours.code_change_summary():
        notes.append("code dir changes differ")
    if ref.stderr_traceback != ours.stderr_traceback:
        notes.append(
            f"traceback on stderr: {REF_LABEL} {_yn(ref.stderr_traceback)} / {OURS_LABEL} {_yn(ours.stderr_traceback)}"
        )
    if ref.stderr_last != ours.stderr_last:
        notes.append("stderr last line differs")
    if case.check_secrets or ref.secret_leaked or ours.secret_leaked:
        notes.append(
            f"raw secret in stdout/stderr: {REF_LABEL} {_yn(ref.secret_leaked)} / {OURS_LABEL} "
            f"{_yn(ours.secret_leaked)}; `*****` shown: {REF_LABEL} {_yn(ref.secret_redacted)} / {OURS_LABEL} "
            f"{_yn(ours.secret_redacted)}"
        )
    for r in (ref, ours):
        if r.error:
            notes.append(f"{r.side}: {r.error}")
    notes.append(f"{ref.seconds:.1f} s / {ours.seconds:.1f} s")
    return notes


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"


def differs(case: Case, ref: RunResult, ours: RunResult) -> bool:
    return (
        ref.rc != ours.rc
        or ref.stdout != ours.stdout
        or ref.output_files != ours.output_files
        or ref.code_change_summary() != ours.code_change_summary()
        or ref.stderr_traceback != ours.stderr_traceback
        or ref.stderr_last != ours.stderr_last
        or ref.secret_leaked != ours.secret_leaked
        or bool(ref.error or ours.error)
    )


def unified(ref_lines: list[str], ours_lines: list[str]) -> str:
    import difflib

    diff = difflib.unified_diff(
        ref_lines, ours_lines, fromfile=f"{REF_LABEL} (1.18.1)", tofile=f"{OURS_LABEL} (ours)", lineterm="", n=2
    )
    return "\n".join(diff)


def render_report(
    results: list[tuple[Case, RunResult, RunResult]],
    ref_cmd: list[str],
    ours_cmd: list[str],
    dropped_kinds: dict[str, int],
    total_seconds: float,
) -> str:
    """The markdown report: one summary table, then details of every case where anything differs."""
    same = sum(1 for c, r, o in results if not differs(c, r, o))
    lines = [
        "# drum fit parity: DRUM 1.18.1 vs this project",
        "",
        f"- {REF_LABEL} (reference): `{shlex.join(ref_cmd)}`",
        f"- {OURS_LABEL} (this project): `{shlex.join(ours_cmd)}`",
        f"- {len(results)} cases, {same} identical on every compared point; total {total_seconds:.0f} s "
        "(runs in sequence, each side on its own fresh copy of the code dir and its own output dir, with the "
        "bin dir of its own executable first on PATH: DRUM's prediction check spawns `drum server` by name).",
        "- stdout is compared after normalisation: timestamps → `<TS>`, the run's code/output/data dirs → "
        "`<CODE>`/`<OUT>`/`<DATA>`, other `/tmp/...` paths → `<TMPPATH>`, venv prefixes → `<VENV:...>`, "
        "ports → `<PORT>`, PIDs → `<PID>`, hex addresses → `0x<ADDR>`, durations → `<N> s`; blank lines dropped.",
        "- Lines dropped from stdout as noise (prediction-check web server chatter): "
        + (", ".join(f"{k} ({n})" for k, n in sorted(dropped_kinds.items())) or "none matched this run")
        + ". Patterns: "
        + "; ".join(k for k, _ in NOISE_PATTERNS)
        + ".",
        "- Output files: every file under `--output`, recursively, `__pycache__` excluded. Code dir changed: "
        "`+added`, `-removed`, `~modified` files after the run (`__pycache__` excluded).",
        "- stderr: only whether it contains a Python traceback (tb) and its last non-blank line.",
        "- notes end with the wall time of each side (DRUM / drum).",
        "",
        f"| case | {REF_LABEL} rc | {OURS_LABEL} rc | same stdout? | output files {REF_LABEL} "
        f"| output files {OURS_LABEL} | code dir changed {REF_LABEL} / {OURS_LABEL} | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, ref, ours in results:
        lines.append(
            f"| {case.name} | {_rc(ref)} | {_rc(ours)} | {'yes' if ref.stdout == ours.stdout else 'no'} "
            f"| {_md(_files(ref.output_files))} | {_md(_files(ours.output_files))} "
            f"| {_md(ref.code_change_summary())} / {_md(ours.code_change_summary())} "
            f"| {_md('; '.join(case_notes(case, ref, ours)))} |"
        )
    lines += ["", "## Cases", ""]
    for case in (c for c, _, _ in results):
        lines.append(
            f"- **{case.name}** (`--target-type {case.target_type}`, input `{case.input_csv}`"
            f"{' ' + ' '.join(case.args) if case.args else ''}): {case.description}"
        )
    lines += ["", "## Details of the cases that differ", ""]
    any_diff = False
    for case, ref, ours in results:
        if not differs(case, ref, ours):
            continue
        any_diff = True
        lines += [f"### {case.name}", "", case.description, ""]
        lines.append(f"- rc: {REF_LABEL} {_rc(ref)}, {OURS_LABEL} {_rc(ours)}")
        lines.append(f"- stdout lines dropped as noise: {REF_LABEL} {ref.dropped}, {OURS_LABEL} {ours.dropped}")
        for r in (ref, ours):
            lines.append(
                f"- stderr {r.side}: traceback {_yn(r.stderr_traceback)}, last line: `{r.stderr_last or '(empty)'}`"
            )
        if ref.output_files != ours.output_files:
            lines.append(
                f"- output files: {REF_LABEL} {_files(ref.output_files)}; {OURS_LABEL} {_files(ours.output_files)}"
            )
        if ref.code_change_summary() != ours.code_change_summary():
            lines.append(
                f"- code dir changes: {REF_LABEL} {ref.code_change_summary()}; {OURS_LABEL} "
                f"{ours.code_change_summary()}"
            )
        if case.check_secrets or ref.secret_leaked or ours.secret_leaked:
            lines.append(
                f"- raw secret value in stdout/stderr: {REF_LABEL} {_yn(ref.secret_leaked)}, "
                f"{OURS_LABEL} {_yn(ours.secret_leaked)}"
            )
        if ref.stdout != ours.stdout:
            lines += ["", "stdout diff (normalised):", "", "```diff", unified(ref.stdout, ours.stdout), "```"]
        else:
            lines += [
                "",
                "stdout (normalised, identical on both sides):",
                "",
                "```",
                "\n".join(ref.stdout) or "(empty)",
                "```",
            ]
        lines.append("")
    if not any_diff:
        lines.append("None: every case is identical on every compared point.")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def select_cases(cases: list[Case], patterns: str | None) -> list[Case]:
    """Cases whose name matches one of the comma-separated glob patterns (all when none are given)."""
    if not patterns:
        return cases
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in cases if any(fnmatch.fnmatch(c.name, p) for p in pats)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fit_parity",
        description="Compare `drum fit` of this project with DRUM 1.18.1 on the same code dirs.",
    )
    parser.add_argument(
        "--drum-ref", default=DEFAULT_DRUM_REF, help=f"the reference DRUM executable (default {DEFAULT_DRUM_REF})"
    )
    parser.add_argument(
        "--ours",
        default=f"{shlex.quote(sys.executable)} -m drum",
        help="this project's drum command line (default: '%(default)s')",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--cases", help="comma-separated glob patterns of the cases to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--raw-dir", type=Path, help="keep each run's command, raw stdout and stderr here")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir with code dirs and outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, log: Callable[[str], None] | None = None) -> int:
    """Run every selected case on both sides and print (and optionally write) the report."""
    args = parse_args(argv)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cases = select_cases(build_cases(), args.cases)
    if args.list:
        for case in cases:
            print(f"{case.name}: {case.description}")
        return 0
    if not cases:
        say(f"no case matches {args.cases!r} (see --list)")
        return 2

    ref_path = Path(args.drum_ref)
    if not (ref_path.is_file() and os.access(ref_path, os.X_OK)):
        say(
            f"reference DRUM not found at {ref_path}. Create it with:\n    {REF_INSTALL_HINT}\n"
            "or pass --drum-ref PATH_TO_DRUM_EXECUTABLE."
        )
        return 2
    ref_cmd = [str(ref_path)]
    ours_cmd = shlex.split(args.ours)
    if not ours_cmd:
        say("--ours is empty")
        return 2

    work = Path(tempfile.mkdtemp(prefix="fit-parity-"))
    data_dir = work / "data"
    write_data(data_dir)
    venvs = _venv_prefixes(ref_cmd, "<VENV:DRUM>") + _venv_prefixes(ours_cmd, "<VENV:drum>")
    dropped_kinds: dict[str, int] = {}
    results: list[tuple[Case, RunResult, RunResult]] = []
    started = time.monotonic()
    try:
        for i, case in enumerate(cases, 1):
            pair = []
            for side, cmd in ((REF_LABEL, ref_cmd), (OURS_LABEL, ours_cmd)):
                side_dir = "ref" if side == REF_LABEL else "ours"
                try:
                    res = run_side(side, side_dir, cmd, case, work, data_dir, venvs, dropped_kinds, args.raw_dir)
                except Exception as exc:  # the harness must survive whatever a side does
                    res = RunResult(side, error=f"harness error: {type(exc).__name__}: {exc}")
                pair.append(res)
            ref, ours = pair
            results.append((case, ref, ours))
            say(
                f"[{i}/{len(cases)}] {case.name}: {REF_LABEL} rc={ref.rc} ({ref.seconds:.1f} s), "
                f"{OURS_LABEL} rc={ours.rc} ({ours.seconds:.1f} s)"
                f"{'' if not differs(case, ref, ours) else '  [differs]'}"
            )
    finally:
        if args.keep_temp:
            say(f"temp dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = render_report(results, ref_cmd, ours_cmd, dropped_kinds, time.monotonic() - started)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        say(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
