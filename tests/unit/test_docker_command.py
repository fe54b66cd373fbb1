"""`--docker`: the engine command drum builds (DRUM 1.18.1's argument rewriting), engine selection and the
build-context tag. The real containers run in tests/functional/test_docker.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from drum.cli import docker
from drum.cli.parser import inject_env_args, parse_args
from drum.errors import DrumCommonException

USER = f"{os.getuid()}:{os.getgid()}"


def command(argv: list[str], engine: str = "podman", environ: dict[str, str] | None = None) -> list[str]:
    options = parse_args(argv, environ=environ or {})
    return docker.docker_command(engine, "img:1", options, inject_env_args(argv, environ or {}))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    code_dir = tmp_path / "model"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text("def load_model(code_dir):\n    return 1\n")
    (tmp_path / "in.csv").write_text("a\n1\n")
    return code_dir


def test_score_mounts_the_code_dir_input_and_output_and_limits_memory(model, tmp_path):
    out = tmp_path / "out.csv"
    argv = ["score", "-cd", str(model), "--input", str(tmp_path / "in.csv"), "--output", str(out),
            "--target-type", "regression", "--docker", "img", "--memory", "256m", "--skip-deps-install"]  # fmt: skip
    assert command(argv) == [
        "podman", "run", "--pull=never", "--rm", "--init", "--entrypoint", "", "--interactive", "--user", USER,
        "-v", f"{model}:/opt/model", "--memory", "256m", "--memory-swap", "256m",
        "-v", f"{tmp_path / 'in.csv'}:/opt/input.csv", "-v", f"{out}:/opt/output.csv",
        "img:1", "drum", "score", "--code-dir", "/opt/model", "--input", "/opt/input.csv",
        "--output", "/opt/output.csv", "--target-type", "regression",
    ]  # fmt: skip
    assert out.is_file()  # created so that the engine mounts a file, not a directory


def test_server_binds_all_interfaces_inside_and_publishes_the_port(model):
    argv = ["server", "--code-dir", str(model), "--address", "127.0.0.1:8123", "--target-type", "regression",
            "--docker", "img"]  # fmt: skip
    cmd = command(argv, engine="docker")
    assert cmd[:3] == ["docker", "run", "--rm"] and "--pull=never" not in cmd
    assert cmd[cmd.index("-p") + 1] == "8123:8123"
    inner = cmd[cmd.index("img:1") + 1 :]
    assert inner == ["drum", "server", "--code-dir", "/opt/model", "--address", "0.0.0.0:8123", "--target-type",
                     "regression"]  # fmt: skip


def test_server_without_a_port_is_refused(model):
    argv = ["server", "--code-dir", str(model), "--address", "localhost", "--target-type", "regression",
            "--docker", "img"]  # fmt: skip
    with pytest.raises(DrumCommonException, match="provide argument --address host:port"):
        command(argv)


def test_env_vars_runtime_params_and_class_labels_reach_the_container(model, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("X: 1\n")
    (model / "model-metadata.yaml").write_text(
        "name: m\ntype: inference\ntargetType: regression\nruntimeParameterDefinitions:\n"
        "  - fieldName: X\n    type: numeric\n"
    )
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    environ = {"CODE_DIR": str(model), "TARGET_TYPE": "multiclass"}
    argv = ["score", "--input", str(tmp_path / "in.csv"), "--class-labels-file", str(labels),
            "--runtime-params-file", str(params), "--docker", "img"]  # fmt: skip
    cmd = command(argv, environ=environ)
    assert f"{params}:/opt/runtime_parameters.yaml" in cmd
    inner = cmd[cmd.index("img:1") + 1 :]
    assert inner[:2] == ["drum", "score"]
    assert inner[inner.index("--code-dir") + 1] == "/opt/model"  # injected from CODE_DIR, then mapped
    assert inner[inner.index("--runtime-params-file") + 1] == "/opt/runtime_parameters.yaml"
    assert inner[inner.index("--class-labels") + 1 : inner.index("--class-labels") + 4] == ["a", "b", "c"]
    assert "--class-labels-file" not in inner and "--docker" not in inner


def _fake_engines(tmp_path: Path, working: set[str]) -> str:
    """A PATH with `docker` and `podman` scripts whose `info` succeeds only for the `working` ones."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "podman"):
        script = bin_dir / name
        info = "exit 0" if name in working else "echo no daemon >&2; exit 1"
        script.write_text(f'#!/bin/sh\n[ "$1" = info ] && {{ {info}; }}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(bin_dir)


def test_the_engine_is_one_that_answers_info(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_engines(tmp_path, {"podman"}))
    assert docker.container_engine({}) == "podman"  # a docker client without a daemon does not count
    with pytest.raises(DrumCommonException, match=r"docker: `docker info` failed: no daemon.*apt-get install podman"):
        docker.container_engine({"DRUM_CONTAINER_ENGINE": "docker"})
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(DrumCommonException, match="docker: not found on PATH; podman: not found on PATH"):
        docker.container_engine({})


def test_a_build_context_is_tagged_by_its_content_and_requirements(tmp_path):
    context = tmp_path / "My_Env"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    tag = docker.context_tag(context, [])
    assert tag.startswith("localhost/drum-env-my_env:") and tag == docker.context_tag(context, [])
    assert docker.context_tag(context, ["pandas"]) != tag
    (context / "Dockerfile").write_text("FROM y\n")
    assert docker.context_tag(context, []) != tag


def test_a_different_drum_in_the_image_is_a_warning(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    engine = bin_dir / "podman"
    engine.write_text('#!/bin/sh\necho "drum 0.0.1 (DRUM 1.17.0 compatible)"\n')
    engine.chmod(engine.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    docker.check_version("podman", "img:1")
    out = capsys.readouterr().out
    assert "WARNING: looks like host DRUM version doesn't match container DRUM version" in out
    assert "Container DRUM version: drum 0.0.1 (DRUM 1.17.0 compatible)" in out
