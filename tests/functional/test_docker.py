"""`--docker` with real containers (podman or docker, set up by `make test`: tools/containers/setup.sh):
`drum score --docker <environment dir>` writes what a local `drum score` writes, `drum server --docker`
serves on the host's 127.0.0.1 and stops on SIGTERM, `--memory` is enforced with a clear message, and a
wrong image name fails with the engine's error."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from support import DRUM, free_port, run_drum

from drum.cli import docker
from drum.errors import DrumCommonException

ROOT = Path(__file__).resolve().parents[2]
SKLEARN_ENV = ROOT / "example_dropin_environments" / "python3_sklearn"
BASE_IMAGE = "localhost/drum-dropin-base:latest"
STATE = ROOT / ".venv" / ".containers"

pytestmark = pytest.mark.timeout(900)


def _engine() -> str:
    """The engine `make test` set up (drum is told to use it), or skip with the reason it gave."""
    reason = "no container engine: run `make test` (tools/containers/setup.sh) as root on Debian/Ubuntu"
    if STATE.is_file():
        state = dict(line.split("=", 1) for line in STATE.read_text().splitlines() if "=" in line)
        if "skipped" in state:
            pytest.skip(f"containers: {state['skipped']}")
        if "engine" in state:
            os.environ[docker.ENGINE_ENV] = state["engine"]
    try:
        engine = docker.container_engine()
    except DrumCommonException as exc:
        pytest.skip(f"{reason}: {exc}")
    if not docker.image_exists(engine, BASE_IMAGE):
        pytest.skip(f"{reason}: the image {BASE_IMAGE} is missing")
    return engine


@pytest.fixture(scope="module")
def engine() -> str:
    return _engine()


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pickled scikit-learn regression trained here, its input CSV; requirements.txt pins this
    scikit-learn, so the environment built for it can unpickle the model."""
    from sklearn import __version__ as sklearn_version
    from sklearn.linear_model import Ridge

    base = tmp_path_factory.mktemp("docker")
    code_dir = base / "model"
    code_dir.mkdir()
    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = x @ np.array([1.5, -2.0, 0.5]) + 3
    with open(code_dir / "model.pkl", "wb") as f:
        pickle.dump(Ridge().fit(x, y), f)
    (code_dir / "requirements.txt").write_text(f"scikit-learn=={sklearn_version}\n")
    data = base / "input.csv"
    x.head(25).to_csv(data, index=False)
    os.chmod(base, 0o755)
    return code_dir, data


@pytest.fixture(scope="module")
def sklearn_image(engine: str, sklearn_model: tuple[Path, Path]) -> str:
    """The python3_sklearn environment with the model's requirements, built (or reused) as --docker does."""
    return docker.build_image(engine, str(SKLEARN_ENV), str(sklearn_model[0]), "python", skip_deps=False)


def test_score_in_the_environment_writes_what_a_local_score_writes(engine, sklearn_model, sklearn_image, tmp_path):
    code_dir, data = sklearn_model
    common = ["score", "--code-dir", str(code_dir), "--input", str(data), "--target-type", "regression"]
    local = run_drum(*common, "--output", str(tmp_path / "local.csv"), timeout=300)
    assert local.returncode == 0, local.stderr
    # the build-context DIR, as a user passes it: the image built above (same content hash) is reused
    contained = run_drum(*common, "--output", str(tmp_path / "docker.csv"), "--docker", str(SKLEARN_ENV), timeout=600)
    assert contained.returncode == 0, contained.stdout + contained.stderr
    assert f"Reusing the image {sklearn_image}" in contained.stdout
    assert (tmp_path / "docker.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_server_in_a_container_answers_on_the_host_and_stops_on_sigterm(engine, sklearn_model, sklearn_image, tmp_path):
    code_dir, data = sklearn_model
    port = free_port()
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            [*DRUM, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{port}", "--target-type",
             "regression", "--docker", sklearn_image],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        response = requests.post(f"http://127.0.0.1:{port}/predict/", data=data.read_bytes(),
                                 headers={"Content-Type": "text/csv"}, timeout=30)  # fmt: skip
        assert response.status_code == 200 and len(response.json()["predictions"]) == 25
        assert response.headers["X-Drum-Version"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "server.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    ancestor = f"ancestor={sklearn_image}"
    running = subprocess.run([engine, "ps", "-q", "--filter", ancestor], capture_output=True, text=True)
    assert running.stdout.strip() == ""  # --rm: nothing left behind


def test_memory_limit_is_enforced_with_a_clear_message(engine, sklearn_image, tmp_path):
    code_dir = tmp_path / "greedy"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text(
        "import numpy as np\n\n\ndef load_model(code_dir):\n    return np.ones(1_000_000_000 // 8)\n"
    )
    os.chmod(tmp_path, 0o755)
    (tmp_path / "in.csv").write_text("a\n1\n")
    result = run_drum("score", "--code-dir", str(code_dir), "--input", str(tmp_path / "in.csv"), "--target-type",
                      "regression", "--docker", sklearn_image, "--memory", "256m", timeout=300)  # fmt: skip
    assert result.returncode == 1
    assert "because it used more memory than --memory 256m allows" in result.stderr
    assert not Path("oom").exists()  # podman's conmon marks an OOM with a file in its working directory


def test_a_wrong_image_name_fails_with_the_engines_error(engine, tmp_path):
    (tmp_path / "custom.py").write_text("def load_model(code_dir):\n    return 1\n")
    (tmp_path / "in.csv").write_text("a\n1\n")
    result = run_drum("score", "--code-dir", str(tmp_path), "--input", str(tmp_path / "in.csv"), "--target-type",
                      "regression", "--docker", "localhost/drum-no-such-image:1", timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "does not represent a docker image in your registry or a directory" in result.stderr
    assert "Error" in result.stdout + result.stderr  # the engine's own explanation, shown as is


def test_no_engine_exits_1_saying_what_to_install(tmp_path):
    (tmp_path / "custom.py").write_text("def load_model(code_dir):\n    return 1\n")
    (tmp_path / "in.csv").write_text("a\n1\n")
    env = {"PATH": str(Path(sys.executable).parent), "DRUM_CONTAINER_ENGINE": "no-such-engine"}
    result = run_drum("score", "--code-dir", str(tmp_path), "--input", str(tmp_path / "in.csv"), "--target-type",
                      "regression", "--docker", "img", env=env)  # fmt: skip
    assert result.returncode == 1
    assert "--docker needs a container engine" in result.stderr and "apt-get install podman" in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_validation_runs_in_the_container(engine, sklearn_model, sklearn_image):
    code_dir, data = sklearn_model
    result = run_drum("validation", "--code-dir", str(code_dir), "--input", str(data), "--target-type", "regression",
                      "--docker", sklearn_image, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Basic batch prediction   PASSED" in result.stdout and "Null value imputation" in result.stdout
    assert "WARNING: looks like host DRUM version" not in result.stdout  # the image's drum is this one


def test_fit_in_the_container_writes_the_output_dir_on_the_host(engine, sklearn_model, sklearn_image, tmp_path):
    code_dir = tmp_path / "task"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text(
        "import os, pickle\nfrom sklearn.linear_model import Ridge\n\n\n"
        "def fit(X, y, output_dir, **kwargs):\n"
        "    with open(os.path.join(output_dir, 'model.pkl'), 'wb') as f:\n"
        "        pickle.dump(Ridge().fit(X, y), f)\n"
    )
    _, data = sklearn_model
    target = tmp_path / "y.csv"
    pd.DataFrame({"y": pd.read_csv(data).sum(axis=1)}).to_csv(target, index=False)
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(tmp_path, 0o755)
    args = ["--target-type", "regression", "--target-csv", str(target), "--output", str(out)]
    result = run_drum("fit", "--code-dir", str(code_dir), "--input", str(data), *args, "--docker", sklearn_image,
                      timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success 🎉" in result.stdout
    assert {"model.pkl", "custom.py", "README.md"} <= {p.name for p in out.iterdir()}
