"""`drum ray-serve` options: replicas or autoscaling, their checks, and what reaches the replicas."""

from __future__ import annotations

import pytest

from drum.cli.parser import parse_args
from drum.cli.ray_serve import deployment_options, replica_env

BASE = ["ray-serve", "--code-dir", ".", "--target-type", "regression", "--address", "127.0.0.1:8000"]


def test_replicas_and_autoscaling():
    assert deployment_options(parse_args(BASE)) == {"num_replicas": 1}
    assert deployment_options(parse_args([*BASE, "--num-replicas", "3"])) == {"num_replicas": 3}
    assert deployment_options(parse_args([*BASE, "--autoscaling", "1:4"])) == {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4}
    }


@pytest.mark.parametrize("bad", [["--autoscaling", "4:1"], ["--autoscaling", "x"], ["--num-replicas", "0"]])
def test_bad_scaling_exits_1(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*BASE, *bad])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "--autoscaling takes MIN:MAX" in out or "--num-replicas must be at least 1" in out


def test_replicas_and_autoscaling_are_exclusive_and_max_workers_is_not_a_flag():
    for extra in (["--num-replicas", "2", "--autoscaling", "1:2"], ["--max-workers", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args([*BASE, *extra])
        assert exit_info.value.code == 2


def test_replicas_get_drums_environment_only():
    env = {"MLOPS_RUNTIME_PARAM_X": "1", "DRUM_FASTAPI_EXECUTOR_WORKERS": "2", "TARGET_NAME": "y", "HOME": "/root",
           "PATH": "/bin"}  # fmt: skip
    assert replica_env(env) == {"MLOPS_RUNTIME_PARAM_X": "1", "DRUM_FASTAPI_EXECUTOR_WORKERS": "2", "TARGET_NAME": "y"}
