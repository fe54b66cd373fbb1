"""Java models (issue 19): a custom predictor class (DRUM_JAVA_CUSTOM_PREDICTOR_CLASS), a DataRobot Scoring Code
style jar, and H2O MOJO/POJO models trained here with the h2o package, in `drum score` and `drum server`.
Predictions equal the runtime's own within 1e-6. Needs a JDK and py4j (and h2o for the H2O tests), which
`make test` installs (tools/runtimes/setup.sh); skipped with its reason otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import run_drum, skip_unless_runtime, write_model

pytestmark = pytest.mark.timeout(300)


def _java_ready() -> None:
    skip_unless_runtime("java", "Java")
    if shutil.which("javac") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no JDK: run `make test` (tools/runtimes/setup.sh) as root on Debian/Ubuntu")
    try:
        import py4j  # noqa: F401
    except ImportError:
        pytest.skip("py4j is not installed: pip install 'drum[java]'")


LINEAR = """
package custom;

import com.datarobot.drum.BasePredictor;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;

public class Linear extends BasePredictor {
    private double[] coef;
    private String positive, negative, targetType;

    public Linear(String name) { super(name); }

    @Override
    public void configure(Map<String, Object> params) throws Exception {
        String dir = (String) params.get("__custom_model_path__");
        byte[] text = Files.readAllBytes(Paths.get(dir, "coef.txt"));
        String[] parts = new String(text, StandardCharsets.UTF_8).trim().split(",");
        coef = new double[parts.length];
        for (int i = 0; i < parts.length; i++) coef[i] = Double.parseDouble(parts[i]);
        positive = (String) params.get("positiveClassLabel");
        negative = (String) params.get("negativeClassLabel");
        targetType = (String) params.get("target_type");
    }

    @Override
    public String predict(byte[] input) throws Exception {
        String[] lines = new String(input, StandardCharsets.UTF_8).split("\\r?\\n");
        boolean binary = targetType.equals("binary");
        StringBuilder out = new StringBuilder(binary ? positive + "," + negative + "\\n" : "Predictions\\n");
        for (int r = 1; r < lines.length; r++) {
            if (lines[r].isEmpty()) continue;
            String[] cells = lines[r].split(",");
            double z = coef[0];
            for (int i = 0; i < cells.length; i++) z += coef[i + 1] * Double.parseDouble(cells[i]);
            if (binary) {
                double p = 1 / (1 + Math.exp(-z));
                out.append(p).append(",").append(1 - p).append("\\n");
            } else {
                out.append(z).append("\\n");
            }
        }
        return out.toString();
    }

    @Override
    @SuppressWarnings("unchecked")
    public <T> T predictUnstructured(byte[] input, String mimetype, String charset, Map<String, String> query)
            throws Exception {
        if ("bytes".equals(query.get("mode"))) return (T) new byte[] {input[2], input[1], input[0]};
        return (T) ("echo:" + new String(input, charset) + ":" + mimetype + ":" + query.get("q"));
    }
}
"""

# A jar in the shape of DataRobot Scoring Code: the Scoring Code API (com.datarobot.prediction) and a model.
SCORING_API = {
    "com/datarobot/prediction/IPredictorInfo.java": """
        package com.datarobot.prediction;
        public interface IPredictorInfo { String getModelId(); }
    """,
    "com/datarobot/prediction/IRegressionPredictor.java": """
        package com.datarobot.prediction;
        public interface IRegressionPredictor extends IPredictorInfo { double score(java.util.Map<String, ?> row); }
    """,
    "com/datarobot/prediction/IClassificationPredictor.java": """
        package com.datarobot.prediction;
        public interface IClassificationPredictor extends IPredictorInfo {
            String[] getClassLabels();
            java.util.Map<String, Double> score(java.util.Map<String, ?> row);
        }
    """,
    "com/datarobot/prediction/Predictors.java": """
        package com.datarobot.prediction;
        public final class Predictors {
            public static IPredictorInfo getPredictor(ClassLoader loader) {
                try {
                    Class<?> model = Class.forName("model.Model", true, loader);
                    return (IPredictorInfo) model.getDeclaredConstructor().newInstance();
                } catch (Exception e) {
                    throw new UnsupportedOperationException("Could not find any DataRobot models in the classpath.");
                }
            }
        }
    """,
    "model/Model.java": """
        package model;
        import com.datarobot.prediction.IClassificationPredictor;
        import java.util.HashMap;
        import java.util.Map;
        public class Model implements IClassificationPredictor {
            public String getModelId() { return "m1"; }
            public String[] getClassLabels() { return new String[] {"1", "0"}; }
            public Map<String, Double> score(Map<String, ?> row) {
                double a = Double.parseDouble((String) row.get("a"));
                double p = 1 / (1 + Math.exp(-(0.5 + 2 * a)));
                Map<String, Double> out = new HashMap<>();
                out.put("1", p);
                out.put("0", 1 - p);
                return out;
            }
        }
    """,
}


def _javac(sources: Path, classes: Path, classpath: str) -> None:
    files = [str(p) for p in sources.rglob("*.java")]
    command = ["javac", "-d", str(classes), "-cp", classpath, *files]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _jar(classes: Path, target: Path) -> None:
    subprocess.run(["jar", "cf", str(target), "-C", str(classes), "."], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    path = tmp_path_factory.mktemp("java") / "x.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A code dir with the custom predictor's jar and its coefficients, and the env that selects it."""
    _java_ready()
    from drum.model.java_predictor import build

    base = tmp_path_factory.mktemp("custom_java")
    write_model(base / "src" / "custom", {"Linear.java": LINEAR})
    (base / "classes").mkdir()
    _javac(base / "src", base / "classes", str(build(None)))
    code = write_model(base / "model", {"coef.txt": "0.5,2,-1\n"})
    _jar(base / "classes", code / "custom.jar")
    env = {"DRUM_JAVA_CUSTOM_PREDICTOR_CLASS": "custom.Linear", "DRUM_JAVA_CUSTOM_CLASS_PATH": str(code / "custom.jar")}
    return code, env


def test_custom_predictor_regression_and_binary(custom_model, features, tmp_path):
    code, env = custom_model
    path, frame = features
    z = 0.5 + 2 * frame.a - frame.b
    result = run_drum("score", "--code-dir", str(code), "--input", str(path), "--target-type", "regression",
                      "--output", str(tmp_path / "reg.csv"), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(pd.read_csv(tmp_path / "reg.csv").Predictions, z, atol=1e-6)
    result = run_drum("score", "--code-dir", str(code), "--input", str(path), "--target-type", "binary",
                      "--positive-class-label", "yes", "--negative-class-label", "no",
                      "--output", str(tmp_path / "bin.csv"), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "bin.csv")
    np.testing.assert_allclose(got.yes, 1 / (1 + np.exp(-z)), atol=1e-6)
    np.testing.assert_allclose(got.yes + got.no, 1.0, atol=1e-9)


def test_custom_predictor_served(custom_model, features, drum_server):
    code, env = custom_model
    path, frame = features
    server = drum_server(code, "--target-type", "regression", env=env)
    response = server.post("/predict/", files={"X": ("x.csv", path.read_bytes())})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], 0.5 + 2 * frame.a - frame.b, atol=1e-6)
    big = pd.concat([frame] * 60, ignore_index=True).to_csv(index=False).encode()  # > 33 KB: passed as a file
    assert len(big) > 33792
    response = server.post("/predict/", data=big, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2400
    info = server.get("/info/").json()
    assert info["language"] == "java" and "predictor" not in info
    assert server.get("/capabilities/").json()["supported_payload_formats"] == {"csv": None}
    mtx = server.post("/predict/", data=b"%%MatrixMarket", headers={"Content-Type": "text/mtx"})
    assert mtx.status_code == 422 and "payload format `text/mtx` is not supported" in mtx.json()["message"]
    bad = server.post("/predict/", data=b"a,b\n1,x\n", headers={"Content-Type": "text/csv"})
    assert bad.status_code == 500 and "NumberFormatException" in bad.json()["message"]


@pytest.mark.parametrize("backend", ["fastapi", "gunicorn", "werkzeug"])
def test_backends_and_workers(custom_model, features, drum_server, backend):
    code, env = custom_model
    path, frame = features
    workers = [] if backend == "werkzeug" else ["--max-workers", "2"]
    server = drum_server(code, "--target-type", "regression", *workers,
                         env={**env, "MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": backend})  # fmt: skip
    for _ in range(4):
        response = server.post("/predict/", files={"X": ("x.csv", path.read_bytes())})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], 0.5 + 2 * frame.a - frame.b, atol=1e-6)


def test_perf_test_and_validation_run_java_models(custom_model, features):
    code, env = custom_model
    timed = run_drum("perf-test", "--code-dir", str(code), "--input", str(features[0]), "--target-type",
                     "regression", "-s", "5", "-i", "3", env=env, timeout=240)  # fmt: skip
    assert timed.returncode == 0 and "Test is done, stopping drum server" in timed.stdout, timed.stderr
    checked = run_drum("validation", "--code-dir", str(code), "--input", str(features[0]), "--target-type",
                       "regression", env=env, timeout=240)  # fmt: skip
    assert checked.returncode == 0 and "Basic batch prediction" in checked.stdout, checked.stderr


def test_custom_predictor_unstructured(custom_model, drum_server):
    code, env = custom_model
    server = drum_server(code, "--target-type", "unstructured", env=env)
    text = server.post("/predictUnstructured/?q=5", data=b"hello", headers={"Content-Type": "text/plain"})
    assert text.status_code == 200 and text.text == "echo:hello:text/plain:5"
    raw = server.post("/predictUnstructured/?mode=bytes", data=b"\x01\x02\x03",
                      headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert raw.status_code == 200 and raw.content == b"\x03\x02\x01"


def test_scoring_code_jar(features, tmp_path):
    _java_ready()
    path, frame = features
    sources = write_model(tmp_path / "src", SCORING_API)
    (tmp_path / "classes").mkdir()
    _javac(sources, tmp_path / "classes", str(tmp_path / "classes"))
    code = tmp_path / "scoring"
    code.mkdir()
    _jar(tmp_path / "classes", code / "model.jar")
    result = run_drum("score", "--code-dir", str(code), "--input", str(path), "--target-type", "binary",
                      "--positive-class-label", "yes", "--negative-class-label", "no",
                      "--output", str(tmp_path / "o.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "o.csv")
    # Binary labels map onto the model's ("1", "0") by position, positive first, as DRUM's ScoringCode.
    np.testing.assert_allclose(got.yes, 1 / (1 + np.exp(-(0.5 + 2 * frame.a))), atol=1e-6)


@pytest.fixture(scope="module")
def h2o_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression and a binary GBM trained by H2O (its own JVM), exported as MOJO and POJO, with H2O's own
    predictions on the features."""
    _java_ready()
    pytest.importorskip("h2o", reason="the h2o package is not installed (make test installs it)")
    base = tmp_path_factory.mktemp("h2o")
    script = r"""
import sys, numpy as np, pandas as pd, h2o
from h2o.estimators import H2OGradientBoostingEstimator
h2o.init(ip="127.0.0.1", port=int(sys.argv[1]), nthreads=1, max_mem_size="512M", verbose=False)
try:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["y"] = df.a * 2 - df.b + rng.normal(scale=0.1, size=200)
    df["t"] = np.where(df.a + df.c > 0, "yes", "no")
    frame = h2o.H2OFrame(df)
    frame["t"] = frame["t"].asfactor()
    reg = H2OGradientBoostingEstimator(ntrees=10, max_depth=3, seed=1)
    reg.train(x=["a", "b", "c"], y="y", training_frame=frame)
    binary = H2OGradientBoostingEstimator(ntrees=10, max_depth=3, seed=1)
    binary.train(x=["a", "b", "c"], y="t", training_frame=frame)
    reg.download_mojo(path="reg_mojo/model.zip")
    reg.download_pojo(path="reg_pojo")
    binary.download_mojo(path="bin_mojo/model.zip")
    df[["a", "b", "c"]].to_csv("x.csv", index=False)
    reg.predict(frame).as_data_frame().to_csv("reg_expected.csv", index=False)
    binary.predict(frame).as_data_frame().to_csv("bin_expected.csv", index=False)
finally:
    h2o.cluster().shutdown()
"""
    from support import free_port

    for name in ("reg_mojo", "reg_pojo", "bin_mojo"):
        (base / name).mkdir()
    subprocess.run([sys.executable, "-c", script, str(free_port())], cwd=base, check=True, capture_output=True,
                   timeout=240)  # fmt: skip
    return base


@pytest.mark.parametrize("model", ["reg_mojo", "reg_pojo"])
def test_h2o_regression_mojo_and_pojo(h2o_models, model, tmp_path):
    result = run_drum("score", "--code-dir", str(h2o_models / model), "--input", str(h2o_models / "x.csv"),
                      "--target-type", "regression", "--output", str(tmp_path / "o.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    want = pd.read_csv(h2o_models / "reg_expected.csv").predict
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv").Predictions, want, atol=1e-6)
    assert [p.name for p in (h2o_models / model).iterdir() if p.suffix == ".class"] == []  # compiled elsewhere


def test_h2o_binary_mojo_served(h2o_models, drum_server):
    server = drum_server(h2o_models / "bin_mojo", "--target-type", "binary", "--positive-class-label", "yes",
                         "--negative-class-label", "no")  # fmt: skip
    response = server.post("/predict/", files={"X": ("x.csv", (h2o_models / "x.csv").read_bytes())})
    assert response.status_code == 200, response.text
    got = pd.DataFrame(response.json()["predictions"])
    want = pd.read_csv(h2o_models / "bin_expected.csv")
    np.testing.assert_allclose(got[["yes", "no"]].to_numpy(), want[["yes", "no"]].to_numpy(), atol=1e-6)


def test_errors_name_what_is_missing(features, tmp_path):
    _java_ready()
    path, _ = features
    dai = write_model(tmp_path / "dai", {"pipeline.mojo": "not really"})
    result = run_drum("score", "--code-dir", str(dai), "--input", str(path), "--target-type", "regression",
                      env={"DRIVERLESS_AI_LICENSE_FILE": "", "DRIVERLESS_AI_LICENSE_KEY": ""})  # fmt: skip
    assert result.returncode == 1 and "Cannot find license file for DAI Mojo Pipeline." in result.stderr

    empty = write_model(tmp_path / "empty", {"readme.txt": "nothing\n"})
    result = run_drum("score", "--code-dir", str(empty), "--input", str(path), "--target-type", "regression",
                      "--language", "java")  # fmt: skip
    assert result.returncode == 1
    assert "Could not find model artifact file in: " in result.stderr and "List of retrieved files are: readme.txt" in (
        result.stderr
    )

    jar = write_model(tmp_path / "jar", {"model.jar": ""})
    no_java = {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}
    result = run_drum("score", "--code-dir", str(jar), "--input", str(path), "--target-type", "regression", env=no_java)
    assert result.returncode == 1 and "Java models need a JDK, and `java" in result.stderr


def test_transform_is_not_for_java(custom_model, features):
    code, env = custom_model
    result = run_drum("score", "--code-dir", str(code), "--input", str(features[0]), "--target-type", "transform",
                      env=env)  # fmt: skip
    assert result.returncode == 1 and "Transform feature is not supported for Java/Scala" in result.stderr
