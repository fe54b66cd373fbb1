"""R models (issue 19): `.rds` artifacts and `custom.R` hooks in `drum score`, `drum server` (FastAPI and
gunicorn), `drum fit`; models trained by R here (`Rscript`), predictions compared with R's own within 1e-6.
Needs R and rpy2, which `make test` installs (tools/runtimes/setup.sh); skipped with its reason otherwise."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import run_drum, skip_unless_runtime, write_model

pytestmark = pytest.mark.timeout(300)


def _r_ready() -> None:
    skip_unless_runtime("r", "R")
    if shutil.which("Rscript") is None:
        pytest.skip("R is not installed: run `make test` (tools/runtimes/setup.sh) as root on Debian/Ubuntu")
    try:
        import rpy2  # noqa: F401
    except ImportError:
        pytest.skip("rpy2 is not installed: pip install 'drum[r]'")


TRAIN = r"""
set.seed(7)
n <- 80
d <- data.frame(a = rnorm(n), b = rnorm(n))
d$y <- 2 * d$a - d$b + rnorm(n, sd = 0.1)
d$t <- ifelse(d$a + d$b + rnorm(n, sd = 0.5) > 0, "yes", "no")
write.csv(d, "train.csv", row.names = FALSE)
write.csv(d[, c("a", "b")], "x.csv", row.names = FALSE)
reg <- lm(y ~ a + b, data = d)
binary <- glm(factor(t) ~ a + b, data = d, family = binomial)
dir.create("reg"); saveRDS(reg, "reg/model.rds")
dir.create("bin"); saveRDS(binary, "bin/model.rds")
x <- d[, c("a", "b")]
p <- predict(binary, x, type = "response")
out <- data.frame(reg = predict(reg, x), yes = p, no = 1 - p)
write.csv(format(out, digits = 17), "expected.csv", row.names = FALSE, quote = FALSE)
"""

BINARY_HOOKS = """
score <- function(data, model, ...) {
  labels <- list(...)[[1]]
  p <- stats::predict(model, data, type = "response")
  out <- data.frame(p, 1 - p)
  names(out) <- c(labels$positive_class_label, labels$negative_class_label)
  out
}
"""

HOOKS = """
init <- function(code_dir, ...) {
  assign("scale_factor", as.numeric(readLines(file.path(code_dir, "factor.txt"))), envir = .GlobalEnv)
}
load_model <- function(code_dir) readRDS(file.path(code_dir, "model.rds"))
read_input_data <- function(input_binary_data) {
  read.csv(text = gsub(";", ",", rawToChar(input_binary_data)))
}
transform <- function(data, model) {
  data$b <- data$b * scale_factor
  data
}
score <- function(data, model, ...) data.frame(Predictions = stats::predict(model, data))
post_process <- function(predictions, model) {
  predictions$Predictions <- predictions$Predictions + 1000
  predictions
}
"""

UNSTRUCTURED = """
load_model <- function(code_dir) "model"
score_unstructured <- function(model, data, query, ...) {
  kwargs <- list(...)
  if (is.raw(data)) return(list(rev(data), list(mimetype = "application/octet-stream")))
  paste(model, toupper(data), kwargs$mimetype, kwargs$charset, query$q, sep = "|")
}
"""

FIT = """
fit <- function(X, y, output_dir, class_order = NULL, row_weights = NULL, parameters = NULL, ...) {
  cat("R fit got", nrow(X), "rows,", ncol(X), "columns:", names(X), "\\n")
  data <- X
  data$.y <- y
  saveRDS(lm(.y ~ a + b, data = data), file.path(output_dir, "model.rds"))
}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _r_ready()
    base = tmp_path_factory.mktemp("r")
    subprocess.run(["Rscript", "-e", TRAIN], cwd=base, check=True, capture_output=True, timeout=120)
    write_model(base / "bin", {"custom.R": BINARY_HOOKS})
    return base


@pytest.fixture(scope="module")
def expected(trained: Path) -> pd.DataFrame:
    return pd.read_csv(trained / "expected.csv")


def score(code_dir: Path, inputs: Path, output: Path, *args: str, env: dict[str, str] | None = None):
    return run_drum("score", "--code-dir", str(code_dir), "--input", str(inputs), "--output", str(output), *args,
                    env=env)  # fmt: skip


def test_rds_regression_scores_as_r_predicts(trained, expected, tmp_path):
    result = score(trained / "reg", trained / "x.csv", tmp_path / "out.csv", "--target-type", "regression")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "out.csv")
    assert list(got.columns) == ["Predictions"]
    np.testing.assert_allclose(got.Predictions, expected.reg, rtol=0, atol=1e-6)


def test_custom_r_hooks_in_order(trained, expected, tmp_path):
    code = write_model(tmp_path / "hooks", {"custom.R": HOOKS, "factor.txt": "1\n"})
    shutil.copy(trained / "reg" / "model.rds", code / "model.rds")
    semicolons = tmp_path / "x.csv"
    semicolons.write_text((trained / "x.csv").read_text().replace(",", ";"))
    result = score(code, semicolons, tmp_path / "out.csv", "--target-type", "regression")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(got.Predictions, expected.reg + 1000, rtol=0, atol=1e-6)


def test_language_detection_and_info(trained):
    from drum.errors import DrumCommonException
    from drum.model.code_dir import detect_language

    assert detect_language(trained / "reg") == "r" and detect_language(trained / "bin") == "r"
    mixed = trained / "mixed"
    write_model(mixed, {"custom.R": "x <- 1\n", "model.pkl": ""})
    with pytest.raises(DrumCommonException, match="language by artifacts - python; language by custom - r"):
        detect_language(mixed)
    assert detect_language(mixed, "r") == "r"


def test_server_binary_info_capabilities_and_errors(trained, expected, drum_server):
    server = drum_server(trained / "bin", "--target-type", "binary", "--positive-class-label", "yes",
                         "--negative-class-label", "no")  # fmt: skip
    body = (trained / "x.csv").read_bytes()
    response = server.post("/predict/", data=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    got = pd.DataFrame(response.json()["predictions"])
    np.testing.assert_allclose(got[["yes", "no"]].to_numpy(), expected[["yes", "no"]].to_numpy(), atol=1e-6)
    info = server.get("/info/").json()
    assert info["language"] == "r" and "predictor" not in info and info["positiveClassLabel"] == "yes"
    assert server.get("/capabilities/").json() == {
        "supported_payload_formats": {"csv": None, "mtx": None}, "supported_methods": {"chat": False}
    }  # fmt: skip
    bad = server.post("/predict/", data=b"a,b\n1,x\n", headers={"Content-Type": "text/csv"})
    assert bad.status_code == 500
    assert bad.json()["message"].startswith("ERROR: Error") and "was fitted with type" in bad.json()["message"]

    # Many requests at once: the executor's threads share one R, one call at a time.
    rows = [f"a,b\n{a},{b}\n".encode() for a, b in expected.index.to_series().head(24).map(lambda i: (i / 10, -i / 7))]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: server.post("/predict/", data=data, headers={"Content-Type": "text/csv"}),
                                rows))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(rows)
    probabilities = [a.json()["predictions"][0]["yes"] for a in answers]
    assert len(set(probabilities)) == len(rows)  # each answer is its own row's


@pytest.mark.parametrize("backend", ["fastapi", "gunicorn"])
def test_server_backends_and_workers(trained, expected, drum_server, backend):
    env = {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": backend}
    server = drum_server(trained / "reg", "--target-type", "regression", "--max-workers", "2", env=env)
    body = (trained / "x.csv").read_bytes()
    for _ in range(4):
        response = server.post("/predict/", files={"X": ("x.csv", body)})
        assert response.status_code == 200, response.text
        got = [row["predictions"] if isinstance(row, dict) else row for row in response.json()["predictions"]]
        np.testing.assert_allclose(got, expected.reg, atol=1e-6)


def test_unstructured(trained, drum_server, tmp_path):
    code = write_model(tmp_path / "unstr", {"custom.R": UNSTRUCTURED})
    server = drum_server(code, "--target-type", "unstructured")
    text = server.post("/predictUnstructured/?q=7", data="héllo".encode(), headers={"Content-Type": "text/plain"})
    assert text.status_code == 200, text.text
    assert text.text == "model|HÉLLO|text/plain|utf-8|7"  # as the charsets Python hooks get
    binary = server.post("/predictUnstructured/", data=b"\x01\x02\x03",
                         headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert binary.status_code == 200 and binary.content == b"\x03\x02\x01"
    assert binary.headers["content-type"].startswith("application/octet-stream")

    inputs = tmp_path / "in.txt"
    inputs.write_text("abc")
    result = score(code, inputs, tmp_path / "out.txt", "--target-type", "unstructured", "--query", "q=1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.txt").read_text() == "model|ABC|text/plain|utf8|1"


def test_fit_with_custom_r(trained, expected, tmp_path):
    code = write_model(tmp_path / "task", {"custom.R": FIT})
    out = tmp_path / "out"
    out.mkdir()
    data = tmp_path / "train.csv"
    pd.read_csv(trained / "train.csv")[["a", "b", "y"]].to_csv(data, index=False)
    result = run_drum("fit", "--code-dir", str(code), "--input", str(data), "--target", "y", "--target-type",
                      "regression", "--output", str(out), timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "R fit got 80 rows, 2 columns: a b" in result.stderr
    assert result.stdout.splitlines()[-2:] == ["Prediction successful for fit validation", "Success 🎉"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "custom.R", "model.rds"]
    scored = score(out, trained / "x.csv", tmp_path / "pred.csv", "--target-type", "regression")
    assert scored.returncode == 0, scored.stderr
    np.testing.assert_allclose(pd.read_csv(tmp_path / "pred.csv").Predictions, expected.reg, atol=1e-6)


def test_errors_name_what_is_missing(trained, tmp_path):
    no_artifact = write_model(tmp_path / "none", {"custom.R": "init <- function(...) NULL\n"})
    result = score(no_artifact, trained / "x.csv", tmp_path / "o.csv", "--target-type", "regression")
    assert result.returncode == 1
    assert "Could not find a serialized model artifact with .rds extension" in result.stderr

    broken = write_model(tmp_path / "broken", {"custom.R": "score <- function(data, model, ...) {\n"})
    shutil.copy(trained / "reg" / "model.rds", broken / "model.rds")
    result = score(broken, trained / "x.csv", tmp_path / "o.csv", "--target-type", "regression")
    assert result.returncode == 1 and "unexpected end of input" in result.stderr

    no_r = {"PATH": str(Path(sys.executable).parent), "R_HOME": ""}
    result = score(trained / "reg", trained / "x.csv", tmp_path / "o.csv", "--target-type", "regression", env=no_r)
    assert result.returncode == 1, result.stderr
    assert "R models need R, which was not found" in result.stderr


def test_r_and_json_round_trip_of_labels_with_sanitised_names(trained, tmp_path):
    """Class labels R would rename in a data.frame (`1` → `X1`, `a b` → `a.b`) come back as the labels."""
    code = write_model(tmp_path / "labels", {"custom.R": """
        load_model <- function(code_dir) "m"
        score <- function(data, model, ...) data.frame(`1` = rep(0.25, nrow(data)), `a b` = rep(0.75, nrow(data)))
    """})  # fmt: skip
    result = score(code, trained / "x.csv", tmp_path / "o.csv", "--target-type", "binary",
                   "--positive-class-label", "a b", "--negative-class-label", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "o.csv")
    assert list(got.columns) == ["1", "a b"] and json.loads(got.iloc[0].to_json()) == {"1": 0.25, "a b": 0.75}


SPARSE_AND_MULTICLASS = """
load_model <- function(code_dir) "m"
score <- function(data, model, ...) {
  labels <- list(...)[[1]]$class_labels
  if (inherits(data, "sparseMatrix")) {
    return(data.frame(Predictions = as.numeric(Matrix::rowSums(data)) + ncol(data) * 1000))
  }
  n <- nrow(data)
  out <- data.frame(matrix(rep(c(0.2, 0.3, 0.5), each = n), nrow = n))
  names(out) <- labels
  out
}
"""


def test_matrix_market_payload_and_multiclass_labels(trained, tmp_path, drum_server):
    code = write_model(tmp_path / "sparse", {"custom.R": SPARSE_AND_MULTICLASS})
    mtx = b"%%MatrixMarket matrix coordinate real general\n2 3 3\n1 1 1.5\n2 2 2.0\n2 3 0.25\n"
    server = drum_server(code, "--target-type", "regression")
    response = server.post("/predict/", files={"X": ("x.mtx", mtx), "X.colnames": ("X.colnames", b"a\nb\nc\n")})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [3001.5, 3002.25]

    result = score(code, trained / "x.csv", tmp_path / "o.csv", "--target-type", "multiclass",
                   "--class-labels", "low", "mid", "high")  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "o.csv")
    assert list(got.columns) == ["low", "mid", "high"] and got.iloc[0].tolist() == [0.2, 0.3, 0.5]


def test_validation_and_perf_test_run_r_models(trained):
    checked = run_drum("validation", "--code-dir", str(trained / "reg"), "--input", str(trained / "x.csv"),
                       "--target-type", "regression", timeout=240)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Basic batch prediction" in checked.stdout and "PASSED" in checked.stdout
    timed = run_drum("perf-test", "--code-dir", str(trained / "reg"), "--input", str(trained / "x.csv"),
                     "--target-type", "regression", "-s", "5", "-i", "3", timeout=240)  # fmt: skip
    assert timed.returncode == 0, timed.stdout + timed.stderr
    assert "Test is done, stopping drum server" in timed.stdout


def test_new_r_model_template_serves_as_generated(trained, tmp_path, drum_server):
    code = tmp_path / "new_r"
    created = run_drum("new", "model", "--code-dir", str(code), "--language", "r")
    assert created.returncode == 0, created.stderr
    assert sorted(p.name for p in code.iterdir()) == ["README.md", "custom.R"]
    assert "drum new model --language r" in (code / "custom.R").read_text()
    server = drum_server(code, "--target-type", "regression")
    response = server.post("/predict/", data=b"a,b\n1,3\n-2,2\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.0, 1.0]}


def test_an_rds_classifier_with_its_own_predict_method(trained, tmp_path):
    """No score hook: the .rds model's predict(model, data, type = "prob"), with an S3 method from custom.R."""
    code = write_model(tmp_path / "s3", {"custom.R": """
        predict.threshold <- function(object, newdata, type = "raw", ...) {
          p <- 1 / (1 + exp(-(newdata$a - object$cut)))
          data.frame(yes = p, no = 1 - p)
        }
    """})  # fmt: skip
    subprocess.run(["Rscript", "-e", f'saveRDS(structure(list(cut = 0.25), class = "threshold"), "{code}/model.rds")'],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    result = score(code, trained / "x.csv", tmp_path / "o.csv", "--target-type", "binary",
                   "--positive-class-label", "yes", "--negative-class-label", "no")  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "o.csv")
    a = pd.read_csv(trained / "x.csv").a
    np.testing.assert_allclose(got.yes, 1 / (1 + np.exp(-(a - 0.25))), atol=1e-9)
