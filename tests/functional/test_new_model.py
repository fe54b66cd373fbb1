"""`drum new model --code-dir DIR --language python`: a template directory that serves as generated."""

from __future__ import annotations

import argparse
import json

import pytest
from support import assert_error, run_drum, runtime_param

from drum.cli.new_model import run, write_template
from drum.errors import DrumCommonException

CSV = b"a,b,c\n1,2,x\n3,4,y\n"
#: The template's stand-in model: 1.0 + 0.5 * mean of the numeric features.
PREDICTIONS = {"predictions": [1.75, 2.75]}
FILES = {"README.md", "custom.py", "custom_fastapi.py"}


@pytest.fixture
def template(tmp_path):
    code_dir = tmp_path / "my_model"
    result = run_drum("new", "model", "--code-dir", str(code_dir), "--language", "python")
    assert result.returncode == 0, result.stderr
    assert str(code_dir) in result.stdout
    return code_dir


def predict(server, token: str | None = None):
    headers = {"Content-Type": "text/csv"}
    if token is not None:
        headers["X-Auth-Token"] = token
    return server.post("/predict/", data=CSV, headers=headers)


def test_writes_the_template_files(template):
    assert {p.name for p in template.iterdir()} == FILES
    for name in FILES:
        text = (template / name).read_text()
        assert "drum new model --language python" in text
        assert "{{" not in text
    custom = (template / "custom.py").read_text()
    assert "def load_model(code_dir):" in custom and "def score(data, model, **kwargs):" in custom
    for hook in ("init", "read_input_data", "transform", "post_process"):
        assert f"# def {hook}(" in custom  # documented, commented out
    compile(custom, "custom.py", "exec")
    compile((template / "custom_fastapi.py").read_text(), "custom_fastapi.py", "exec")


def test_refuses_an_existing_directory(tmp_path):
    result = run_drum("new", "model", "--code-dir", str(tmp_path), "--language", "python")
    assert result.returncode != 0
    assert "already exists" in result.stderr


@pytest.mark.parametrize("language", ["other"])
def test_other_languages_are_a_clear_error(tmp_path, language):
    code_dir = tmp_path / "m"
    result = run_drum("new", "model", "--code-dir", str(code_dir), "--language", language)
    assert result.returncode == 1
    assert f"Language: {language} is not supported yet" in result.stderr
    assert not code_dir.exists()


def test_java_is_not_offered(tmp_path):
    result = run_drum("new", "model", "--code-dir", str(tmp_path / "m"), "--language", "java")
    assert result.returncode == 2
    assert "invalid choice: 'java'" in result.stderr


def test_the_template_serves_with_its_auth(template, drum_server):
    server = drum_server(template, "--target-type", "regression", "--logging-level", "info", env={"AUTH_TOKEN": "tok"})
    response = predict(server, "tok")
    assert (response.status_code, response.json()) == (200, PREDICTIONS)
    assert_error(predict(server), 401, "Unauthorized")
    assert_error(predict(server, "wrong"), 401, "Unauthorized")
    assert_error(server.get("/info/"), 401, "Unauthorized")
    for path in ("/", "/ping", "/ping/", "/health/"):
        assert server.get(path).status_code == 200, path
    log = server.log()
    assert "Detected custom_fastapi.py .. trying to load FastAPI extensions" in log
    assert "Successfully loaded FastAPI extensions" in log


def test_the_token_can_be_a_runtime_parameter(template, drum_server):
    env = {"MLOPS_RUNTIME_PARAM_AUTH_TOKEN": runtime_param("from-param"), "AUTH_TOKEN": "from-env"}
    server = drum_server(template, "--target-type", "regression", env=env)
    assert predict(server, "from-param").json() == PREDICTIONS
    assert predict(server, "from-env").status_code == 401


def test_the_token_can_be_a_credential_runtime_parameter(template, drum_server):
    credential = {"credentialType": "api_token", "apiToken": "cred-token"}
    env = {"MLOPS_RUNTIME_PARAM_AUTH_TOKEN": runtime_param(credential, "credential")}
    server = drum_server(template, "--target-type", "regression", env=env)
    assert predict(server, "cred-token").json() == PREDICTIONS


def test_without_a_token_everything_but_health_is_refused(template, drum_server, monkeypatch):
    monkeypatch.delenv("AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MLOPS_RUNTIME_PARAM_AUTH_TOKEN", raising=False)
    server = drum_server(template, "--target-type", "regression")
    assert_error(predict(server), 401, "Unauthorized")
    assert_error(predict(server, ""), 401, "Unauthorized")
    assert_error(predict(server, "None"), 401, "Unauthorized")
    assert server.get("/ping/").status_code == 200
    assert "no AUTH_TOKEN runtime parameter or environment variable is set" in server.log()


def test_health_checks_stay_open_under_url_prefix(template, drum_server):
    env = {"AUTH_TOKEN": "tok", "URL_PREFIX": "/deploy"}
    server = drum_server(template, "--target-type", "regression", env=env, prefix="/deploy")
    for path in ("", "/", "/ping/", "/health/"):
        assert server.get(path).status_code == 200, path
    assert_error(predict(server), 401, "Unauthorized")
    assert predict(server, "tok").json() == PREDICTIONS


def test_without_custom_fastapi_py_the_model_serves_openly(template, drum_server):
    (template / "custom_fastapi.py").unlink()
    server = drum_server(template, "--target-type", "regression")
    assert predict(server).json() == PREDICTIONS


def test_the_template_scores_in_batch(template, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(CSV)
    output = tmp_path / "out.csv"
    result = run_drum(
        "score",
        "--code-dir",
        str(template),
        "--input",
        str(data),
        "--target-type",
        "regression",
        "--output",
        str(output),
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text().split() == ["Predictions", "1.75", "2.75"]


def test_write_template_in_process(tmp_path):
    assert set(write_template(tmp_path / "m")) == FILES
    with pytest.raises(DrumCommonException, match="already exists"):
        write_template(tmp_path / "m")
    with pytest.raises(DrumCommonException, match="Language: other is not supported yet"):
        write_template(tmp_path / "o", "other")
    assert not (tmp_path / "o").exists()


def test_run_in_process(tmp_path, capsys):
    options = argparse.Namespace(
        subparser_name="new", new_mode="model", code_dir=str(tmp_path / "x"), language="python"
    )
    assert run(options) == 0
    out = capsys.readouterr().out
    assert "--target-type regression" in out
    assert json.dumps(sorted(p.name for p in (tmp_path / "x").iterdir())) == json.dumps(sorted(FILES))
