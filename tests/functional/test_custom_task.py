"""The CustomTask interface (issue 18): `drum fit` trains and saves a `CustomTask` of every target type,
`drum score` and `drum server` load and use it; user secrets reach the task with DRUM's precedence and
their values never reach stdout, stderr or the logs. Real scikit-learn estimators on synthetic data.

Run against DRUM 1.18.1 with `DRUM_FUNCTIONAL_REFERENCE_CMD=/path/to/drum` (see support.py): the tests not
marked `ours_only` pass there too."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from support import ours_only, run_drum, write_model

pytestmark = pytest.mark.timeout(300)

TASKS = {
    "regression": """
        import pandas as pd
        from sklearn.linear_model import Ridge
        from datarobot_drum.custom_task_interfaces import RegressionEstimatorInterface

        class CustomTask(RegressionEstimatorInterface):
            def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
                print("fit got", sorted(kwargs), parameters)
                self.estimator = Ridge().fit(X, y, sample_weight=row_weights)
                return self

            def predict(self, X, **kwargs):
                return pd.DataFrame(self.estimator.predict(X), columns=["Predictions"])
    """,
    "binary": """
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        from datarobot_drum.custom_task_interfaces import BinaryEstimatorInterface

        class CustomTask(BinaryEstimatorInterface):
            def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
                self.class_order = kwargs["class_order"]
                self.estimator = LogisticRegression().fit(X, y)
                return self

            def predict_proba(self, X, **kwargs):
                return pd.DataFrame(self.estimator.predict_proba(X), columns=self.estimator.classes_)
    """,
    "multiclass": """
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        from datarobot_drum.custom_task_interfaces import MulticlassEstimatorInterface

        class CustomTask(MulticlassEstimatorInterface):
            def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
                self.estimator = LogisticRegression().fit(X, y)
                return self

            def predict_proba(self, X, **kwargs):
                return pd.DataFrame(self.estimator.predict_proba(X), columns=self.estimator.classes_)
    """,
    "anomaly": """
        import pandas as pd
        from sklearn.ensemble import IsolationForest
        from datarobot_drum.custom_task_interfaces import AnomalyEstimatorInterface

        class CustomTask(AnomalyEstimatorInterface):
            def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
                assert y is None
                self.estimator = IsolationForest(random_state=0).fit(X)
                return self

            def predict(self, X, **kwargs):
                return pd.DataFrame(self.estimator.decision_function(X), columns=["Predictions"])
    """,
    "transform": """
        import pandas as pd
        from sklearn.preprocessing import StandardScaler
        from datarobot_drum.custom_task_interfaces import TransformerInterface

        class CustomTask(TransformerInterface):
            def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
                self.scaler = StandardScaler().fit(X)
                return self

            def transform(self, X):
                return pd.DataFrame(self.scaler.transform(X), columns=X.columns)
    """,
}
TARGET = {"regression": "y", "binary": "t", "multiclass": "m", "anomaly": None, "transform": None}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    data = pd.DataFrame(rng.normal(size=(70, 2)), columns=["a", "b"])
    data["y"] = data.a * 2 - data.b + 0.5
    data["t"] = np.where(data.a + data.b > 0, "yes", "no")
    data["m"] = np.select([data.a < -0.4, data.a > 0.4], ["low", "high"], "mid")
    return data


def fit(*args: str, **kwargs):
    return run_drum("fit", *args, timeout=240, **kwargs)


def expected(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """What the same estimator predicts in-process, in the layout `drum score` writes."""
    x = frame[["a", "b"]]
    if kind == "regression":
        return pd.DataFrame({"Predictions": Ridge().fit(x, frame.y).predict(x)})
    if kind in ("binary", "multiclass"):
        model = LogisticRegression().fit(x, frame[TARGET[kind]])
        return pd.DataFrame(model.predict_proba(x), columns=model.classes_)
    if kind == "anomaly":
        return pd.DataFrame({"Predictions": IsolationForest(random_state=0).fit(x).decision_function(x)})
    return pd.DataFrame(StandardScaler().fit(x).transform(x), columns=["a", "b"])


@pytest.mark.parametrize("kind", list(TASKS))
def test_fit_saves_the_task_and_score_uses_it(kind, frame, tmp_path):
    code = write_model(tmp_path / "task", {"custom.py": TASKS[kind]})
    data = tmp_path / "train.csv"
    columns = ["a", "b"] + ([TARGET[kind]] if TARGET[kind] else [])
    frame[columns].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    args = ["--code-dir", str(code), "--input", str(data), "--target-type", kind, "--output", str(out)]
    if TARGET[kind]:
        args += ["--target", TARGET[kind]]
    result = fit(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-4:] == [
        "Fit successful", "Starting Prediction", "Prediction successful for fit validation", "Success 🎉"
    ]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "custom.py", "drum_artifact.pkl"]

    features = tmp_path / "x.csv"
    frame[["a", "b"]].to_csv(features, index=False)
    scored = tmp_path / "scored.csv"
    labels = {"binary": ["--positive-class-label", "yes", "--negative-class-label", "no"],
              "multiclass": ["--class-labels", "high", "low", "mid"]}.get(kind, [])  # fmt: skip
    score = run_drum("score", "--code-dir", str(out), "--input", str(features), "--target-type", kind,
                     "--output", str(scored), *labels)  # fmt: skip
    assert score.returncode == 0, score.stderr
    got = pd.read_csv(scored)
    want = expected(kind, frame)
    assert list(got.columns) == [str(c) for c in want.columns]
    np.testing.assert_allclose(got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-6, atol=1e-9)


@ours_only
def test_fit_leaves_the_code_dir_as_it_was(frame, tmp_path):
    """Decided deviation: DRUM 1.18.1 saves `drum_artifact.pkl` into the code dir (its copy then brings it to
    the output dir); drum saves it into the output dir. A stale artifact in the code dir is not copied over
    the new one."""
    code = write_model(tmp_path / "task", {"custom.py": TASKS["regression"], "drum_artifact.pkl": "stale"})
    data = tmp_path / "train.csv"
    frame[["a", "b", "y"]].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    result = fit("--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type", "regression",
                 "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in code.iterdir()) == ["custom.py", "drum_artifact.pkl"]
    assert (code / "drum_artifact.pkl").read_text() == "stale"
    assert (out / "drum_artifact.pkl").read_bytes()[:1] == b"\x80"  # a pickle, not the stale file
    assert "Files were overwritten" not in result.stdout


def test_the_task_gets_drums_keywords_and_serves_over_http(frame, tmp_path, drum_server):
    code = write_model(tmp_path / "task", {"custom.py": TASKS["binary"]})
    data = tmp_path / "train.csv"
    frame[["a", "b", "t"]].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    result = fit("--code-dir", str(code), "--input", str(data), "--target", "t", "--target-type", "binary",
                 "--positive-class-label", "yes", "--negative-class-label", "no", "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    server = drum_server(out, "--target-type", "binary", "--positive-class-label", "yes",
                         "--negative-class-label", "no")  # fmt: skip
    body = frame[["a", "b"]].head(5).to_csv(index=False)
    response = server.post("/predict/", files={"X": ("x.csv", body)})
    assert response.status_code == 200, response.text
    predictions = pd.DataFrame(response.json()["predictions"])
    want = expected("binary", frame).head(5)
    np.testing.assert_allclose(predictions[["yes", "no"]].to_numpy(), want[["yes", "no"]].to_numpy(), rtol=1e-6)
    info = server.get("/info/").json()
    assert info["targetType"] == "binary"


TRANSFORM_WITH_TARGET = """
    import pandas as pd
    from datarobot_drum.custom_task_interfaces import TransformerInterface

    class CustomTask(TransformerInterface):
        def fit(self, X, y, parameters=None, row_weights=None, **kwargs):
            self.columns = list(X.columns)
            self.means = X.mean()
            return self

        def transform(self, X):
            assert list(X.columns) == self.columns, list(X.columns)  # the target is not among them
            return X - self.means
"""


def test_transform_check_posts_the_target_apart(frame, tmp_path):
    """DRUM's check for a transform task posts X without the --target column (and the target as `y`)."""
    code = write_model(tmp_path / "task", {"custom.py": TRANSFORM_WITH_TARGET})
    data = tmp_path / "train.csv"
    frame[["a", "b", "y"]].to_csv(data, index=False)
    result = fit("--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type", "transform")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation Complete 🎉" in result.stdout


def test_transform_output_schema_violation_exits_3(frame, tmp_path):
    schema = ("name: t\ntype: training\ntargetType: transform\ntypeSchema:\n  output_requirements:\n"
              "    - field: data_types\n      condition: EQUALS\n      value: CAT\n")  # fmt: skip
    code = write_model(tmp_path / "task", {"custom.py": TASKS["transform"], "model-metadata.yaml": schema})
    data = tmp_path / "train.csv"
    frame[["a", "b"]].to_csv(data, index=False)
    result = fit("--code-dir", str(code), "--input", str(data), "--target-type", "transform")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Starting Prediction" in result.stdout and "schema validation failed for output" in result.stderr


FAILING = {
    "raises": ("""
        from datarobot_drum.custom_task_interfaces import RegressionEstimatorInterface

        class CustomTask(RegressionEstimatorInterface):
            def fit(self, X, y, **kwargs):
                raise ValueError("boom from fit")
    """, "boom from fit"),
    "attribute": ("""
        from datarobot_drum.custom_task_interfaces import RegressionEstimatorInterface

        class CustomTask(RegressionEstimatorInterface):
            def fit(self, X, y, **kwargs):
                return self.no_such_thing
    """, "There appears to be an issue with your fit method OR it is missing entirely. Please verify that that "
         "the fit method in custom.py is present and runs without errors."),
    "unpicklable": ("""
        import threading
        from datarobot_drum.custom_task_interfaces import RegressionEstimatorInterface

        class CustomTask(RegressionEstimatorInterface):
            def fit(self, X, y, **kwargs):
                self.lock = threading.Lock()
                return self
    """, "An error occurred when saving your custom task. Ensure all variables stored on self are pickle-able or "
         "excluded when saving"),
    "not_an_interface": ("""
        class CustomTask:
            def fit(self, X, y, **kwargs):
                return self
    """, "The CustomTask class must inherit from the CustomTaskInterface"),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_a_failing_task_exits_1_with_drums_message(case, frame, tmp_path):
    source, message = FAILING[case]
    code = write_model(tmp_path / "task", {"custom.py": source})
    data = tmp_path / "train.csv"
    frame[["a", "b", "y"]].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    result = fit("--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type", "regression",
                 "--output", str(out))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert "Fit successful" not in result.stdout
    assert not (out / "custom.py").exists() and not (out / "drum_artifact.pkl").exists()


# --- user secrets -------------------------------------------------------------------------------------

SECRET_TASK = """
    import hashlib
    import json
    import logging
    import os

    import pandas as pd
    from datarobot_drum.custom_task_interfaces import RegressionEstimatorInterface

    logger = logging.getLogger("secret.task")

    def digest(value):
        return hashlib.sha256(value.encode()).hexdigest()

    class CustomTask(RegressionEstimatorInterface):
        def fit(self, X, y, parameters=None, row_weights=None, output_dir=None, **kwargs):
            db = self.secrets["DB"]
            print("fit sees", db.password, repr(db), self.secrets["TOKEN"].api_token)
            logger.warning("fit logs %s", db.password)
            seen = {key: type(value).__name__ for key, value in self.secrets.items()}
            seen["DB.password"] = digest(db.password)
            with open(os.path.join(output_dir, "seen.json"), "w") as f:
                json.dump(seen, f)
            self.mean = float(y.mean())
            return self

        def predict(self, X, **kwargs):
            password = self.secrets["DB"].password
            print("predict sees", password)
            logger.warning("predict logs %s", password)
            return pd.DataFrame({"Predictions": [float(len(password))] * len(X)})
"""
MOUNTED = "mounted-p4ssw0rd-value"
FROM_ENV = "environment-p4ssw0rd-value"
TOKEN = "tok-0123456789abcdef"


def _secrets(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    mount = tmp_path / "secrets"
    mount.mkdir()
    (mount / "DB").write_text(json.dumps({"credential_type": "basic", "username": "bob", "password": MOUNTED}))
    env = {
        "MYSECRETS_DB": json.dumps({"credential_type": "basic", "username": "eve", "password": FROM_ENV}),
        "MYSECRETS_TOKEN": json.dumps({"credential_type": "api_token", "api_token": TOKEN}),
    }
    return mount, env


def test_user_secrets_reach_fit_and_are_masked(frame, tmp_path):
    mount, env = _secrets(tmp_path)
    code = write_model(tmp_path / "task", {"custom.py": SECRET_TASK})
    data = tmp_path / "train.csv"
    frame[["a", "b", "y"]].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    result = fit("--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type", "regression",
                 "--output", str(out), "--skip-predict", "--user-secrets-mount-path", str(mount),
                 "--user-secrets-prefix", "MYSECRETS", env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads((out / "seen.json").read_text())
    # Both sources, and a mounted file wins over the environment variable of the same key.
    assert seen == {"DB": "BasicSecret", "TOKEN": "ApiTokenSecret",
                    "DB.password": hashlib.sha256(MOUNTED.encode()).hexdigest()}  # fmt: skip
    output = result.stdout + result.stderr
    for value in (MOUNTED, FROM_ENV, TOKEN, "bob"):
        assert value not in output
    assert "fit sees ***** BasicSecret(username='*****', password='*****', snowflake_account_name=None) *****" in (
        result.stderr
    )
    assert "fit logs *****" in result.stderr


def test_user_secrets_reach_the_served_task_and_are_masked(frame, tmp_path, drum_server):
    mount, env = _secrets(tmp_path)
    code = write_model(tmp_path / "task", {"custom.py": SECRET_TASK})
    data = tmp_path / "train.csv"
    frame[["a", "b", "y"]].to_csv(data, index=False)
    out = tmp_path / "out"
    out.mkdir()
    trained = fit("--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type", "regression",
                  "--output", str(out), "--user-secrets-mount-path", str(mount), "--user-secrets-prefix", "MYSECRETS",
                  env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    server = drum_server(out, "--target-type", "regression", "--user-secrets-prefix", "MYSECRETS", env=env)
    response = server.post("/predict/", files={"X": ("x.csv", frame[["a", "b"]].head(3).to_csv(index=False))})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [float(len(FROM_ENV))] * 3  # only the environment this time
    server.wait_for_log("predict logs")
    log = server.log()
    assert "predict sees *****" in log and FROM_ENV not in log and TOKEN not in log

    predictions = tmp_path / "predictions.csv"
    scored = run_drum("score", "--code-dir", str(out), "--input", str(data), "--target-type", "regression",
                      "--user-secrets-mount-path", str(mount), "--output", str(predictions))  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert pd.read_csv(predictions).Predictions.iloc[0] == len(MOUNTED)
    assert "predict sees *****" in scored.stdout + scored.stderr and MOUNTED not in scored.stdout + scored.stderr
