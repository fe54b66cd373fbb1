"""The ``drum`` command line: flags per sub-command, env-var injection and DRUM's option checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

import drum
from drum.cli.parser import (
    BOOL_ENV_VARS,
    VALUE_ENV_VARS,
    build_parser,
    check_unstructured_only_options,
    env_var_flag,
    inject_env_args,
    parse_args,
    resolve_max_workers,
)
from drum.errors import DrumCommonException

SCORE, SERVER, FIT, PERF, VALID, NEW_MODEL, PUSH = (
    "score",
    "server",
    "fit",
    "perf-test",
    "validation",
    "new model",
    "push",
)
ALL = {SCORE, SERVER, FIT, PERF, VALID, NEW_MODEL, PUSH}
PREDICTING = {SCORE, SERVER, FIT, PERF, VALID}
DOCKER = {SCORE, SERVER, FIT, PERF, VALID, PUSH}

# Every flag of DRUM 1.18.1 and the sub-commands that have it.
FLAGS: dict[str, set[str]] = {
    "-h": ALL | {"new"},
    "--help": ALL | {"new"},
    "-cd": ALL,
    "--code-dir": ALL,
    "--verbose": {SCORE, SERVER, FIT, "new", NEW_MODEL, PUSH, PERF},
    "--input": {SCORE, FIT, PERF, VALID},
    "--positive-class-label": PREDICTING,
    "--negative-class-label": PREDICTING,
    "--class-labels": PREDICTING,
    "--class-labels-file": PREDICTING,
    "--logging-level": {SCORE, SERVER, FIT, "new", NEW_MODEL, PUSH},
    "--docker": DOCKER,
    "--skip-deps-install": DOCKER,
    "--memory": DOCKER,
    "--output": {SCORE, FIT},
    "--show-perf": {SCORE, SERVER},
    "--target": {FIT},
    "--target-csv": {FIT},
    "--row-weights": {FIT},
    "--row-weights-csv": {FIT},
    "--skip-predict": {FIT},
    "--num-rows": {FIT},
    "--sparse-column-file": {SCORE, FIT},
    "--parameter-file": {FIT},
    "-s": {PERF},
    "--samples": {PERF},
    "-i": {PERF},
    "--iterations": {PERF},
    "--timeout": {PERF},
    "--in-server": {PERF},
    "--url": {PERF},
    "--address": {SERVER},
    "--production": {SERVER, PERF},
    "--max-workers": {SERVER, PERF},
    "--with-error-server": {SERVER},
    "--language": {NEW_MODEL, SERVER, SCORE, PERF, VALID},
    "--show-stacktrace": {SCORE, PERF, SERVER, FIT, VALID, NEW_MODEL},
    "--monitor": {SCORE, SERVER},
    "--monitor-embedded": {SCORE, SERVER},
    "--deployment-id": {SCORE, SERVER},
    "--model-id": {SCORE, SERVER},
    "--monitor-settings": {SCORE, SERVER},
    "--allow-dr-api-access": {SCORE, SERVER},
    "--webserver": {SCORE, SERVER},
    "--api-token": {SCORE, SERVER},
    "--gpu-predictor": {SCORE, SERVER},
    "--sidecar": {SCORE, SERVER},
    "--triton-host": {SCORE, SERVER},
    "--triton-http-port": {SCORE, SERVER},
    "--triton-grpc-port": {SCORE, SERVER},
    "--target-type": PREDICTING,
    "--query": {SCORE, PERF, SERVER, VALID},
    "--content-type": {SCORE, PERF, SERVER, VALID},
    "--deployment-config": {SERVER},
    "--disable-strict-validation": {FIT, PUSH},
    "--enable-fit-metadata": {FIT, PUSH},
    "--user-secrets-mount-path": {FIT, SCORE, SERVER, PUSH},
    "--user-secrets-prefix": {FIT, SCORE, SERVER, PUSH},
    "--runtime-params-file": {SCORE, PERF, SERVER, VALID},
    "--lazy-loading-file": {SCORE, SERVER, VALID},
}

#: drum's own additions (issue 20, docs/ray.md): `drum ray-serve` takes `drum server`'s flags but those that
#: run or size local processes, plus its Ray flags; `drum score` gains Ray Data's two.
RAY_SERVE = "ray-serve"
NOT_ON_RAY = {"--docker", "--skip-deps-install", "--memory", "--production", "--max-workers"}
for _flag, _commands in FLAGS.items():
    if SERVER in _commands and _flag not in NOT_ON_RAY:
        _commands.add(RAY_SERVE)
FLAGS.update({"--num-replicas": {RAY_SERVE}, "--autoscaling": {RAY_SERVE}, "--ray-address": {RAY_SERVE, SCORE},
              "--ray-batch-rows": {SCORE}})  # fmt: skip
#: drum's own development flag (issue 25, docs/deployment.md): `drum server --reload`.
FLAGS["--reload"] = {SERVER}

# Environment variables that could leak into parsing from the developer's shell.
_ENV_NAMES = (
    *VALUE_ENV_VARS,
    *BOOL_ENV_VARS,
    "RUNTIME_PARAMS_FILE",
    "LAZY_LOADING_FILE",
    "DEPLOYMENT_ID",
    "MLOPS_DEPLOYMENT_ID",
    "MODEL_ID",
    "MLOPS_MODEL_ID",
    "MONITOR_SETTINGS",
    "EXTERNAL_WEB_SERVER_URL",
    "API_TOKEN",
    "TRITON_HOST",
    "TRITON_HTTP_PORT",
    "TRITON_GRPC_PORT",
    "MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A code dir, an input CSV, a fit output dir and a few helper files (absolute, real paths)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    (tmp_path / "labels.txt").write_text("cat\n\ndog\nbird\n")
    (tmp_path / "one_label.txt").write_text("cat\n")
    (tmp_path / "deploy.json").write_text("{}")
    (tmp_path / "params.yaml").write_text("{}")
    (tmp_path / "cols.txt").write_text("a\nb\n")
    real = os.path.realpath(tmp_path)
    return {
        "root": real,
        "code_dir": os.path.join(real, "model"),
        "input": os.path.join(real, "in.csv"),
        "out": os.path.join(real, "out"),
        "labels": os.path.join(real, "labels.txt"),
        "one_label": os.path.join(real, "one_label.txt"),
        "deploy": os.path.join(real, "deploy.json"),
        "params": os.path.join(real, "params.yaml"),
        "cols": os.path.join(real, "cols.txt"),
    }


def base_argv(command: str, f: dict[str, str]) -> list[str]:
    """The shortest valid command line of each sub-command."""
    return {
        SCORE: ["score", "--code-dir", f["code_dir"], "--input", f["input"]],
        SERVER: ["server", "--code-dir", f["code_dir"], "--address", "127.0.0.1:8080"],
        RAY_SERVE: ["ray-serve", "--code-dir", f["code_dir"], "--address", "127.0.0.1:8080"],
        FIT: ["fit", "--code-dir", f["code_dir"], "--input", f["input"], "--target", "y"],
        PERF: ["perf-test", "--code-dir", f["code_dir"], "--input", f["input"]],
        VALID: ["validation", "--code-dir", f["code_dir"], "--input", f["input"]],
        NEW_MODEL: ["new", "model", "--code-dir", os.path.join(f["root"], "fresh"), "--language", "python"],
        PUSH: ["push", "--code-dir", f["code_dir"]],
    }[command]


def run(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    return parse_args(argv, environ={} if environ is None else environ)


def exits(argv: list[str], environ: dict[str, str] | None = None) -> int:
    with pytest.raises(SystemExit) as info:
        run(argv, environ)
    return info.value.code


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for inner, subsub in subparsers(sub).items():
                    found[f"{name} {inner}"] = subsub
    return found


# --------------------------------------------------------------------------------------------------
# The parser tree
# --------------------------------------------------------------------------------------------------


def test_sub_commands_are_drums() -> None:
    assert set(subparsers(build_parser())) == ALL | {"new", RAY_SERVE}


@pytest.mark.parametrize("command", sorted(ALL | {"new", RAY_SERVE}))
def test_each_sub_command_has_exactly_drums_flags(command: str) -> None:
    sub = subparsers(build_parser())[command]
    options = {option for action in sub._actions for option in action.option_strings}
    expected = {flag for flag, commands in FLAGS.items() if command in commands}
    assert options == expected


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(["--version"]) == 0
    assert capsys.readouterr().out.strip() == (f"drum {drum.__version__} (DRUM {drum.DRUM_COMPAT_VERSION} compatible)")


def test_version_is_top_level_only(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--version"]) == 2
    assert "unrecognized arguments: --version" in capsys.readouterr().err


def test_no_sub_command_prints_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits([]) == 1
    out = capsys.readouterr().out
    assert out.startswith("usage: drum")
    assert "{score,fit,perf-test,validation,server,new,push,ray-serve}" in out


def test_new_without_model_prints_new_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(["new"]) == 1
    assert capsys.readouterr().out.startswith("usage: drum new")


def test_unknown_sub_command_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(["serve"]) == 2
    assert "invalid choice: 'serve'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (SCORE, "-cd/--code-dir, --input"),
        (SERVER, "-cd/--code-dir, --address"),
        (FIT, "-cd/--code-dir, --input"),
        (PERF, "-cd/--code-dir, --input"),
        (VALID, "-cd/--code-dir, --input"),
        (NEW_MODEL, "-cd/--code-dir, --language"),
        (PUSH, "-cd/--code-dir"),
    ],
)
def test_required_flags(command: str, missing: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(command.split()) == 2
    err = capsys.readouterr().err
    assert f"drum {command}: error: the following arguments are required: {missing}" in err


# --------------------------------------------------------------------------------------------------
# Flags and their dest names, on every sub-command that has them
# --------------------------------------------------------------------------------------------------

# (extra argv, dest, expected value); "{key}" is replaced by files[key].
FLAG_CASES: list[tuple[list[str], str, object]] = [
    (["--verbose"], "verbose", True),
    (["--positive-class-label", "yes", "--negative-class-label", "no"], "positive_class_label", "yes"),
    (["--positive-class-label", "yes", "--negative-class-label", "no"], "negative_class_label", "no"),
    (["--class-labels", "a", "b", "c"], "class_labels", ["a", "b", "c"]),
    (["--class-labels-file", "{labels}"], "class_labels", ["cat", "dog", "bird"]),
    (["--class-labels-file", "{labels}"], "class_labels_file", "{labels}"),
    (["--logging-level", "debug"], "logging_level", "debug"),
    (["--docker", "python:3.11"], "docker", "python:3.11"),
    (["--docker", "img", "--skip-deps-install"], "skip_deps_install", True),
    (["--memory", "1g"], "memory", "1g"),
    (["--output", "preds.csv"], "output", "{root}/preds.csv"),
    (["--show-perf"], "show_perf", True),
    (["--target-csv", "{input}"], "target_csv", "{input}"),
    (["--row-weights", "w"], "row_weights", "w"),
    (["--row-weights-csv", "{input}"], "row_weights_csv", "{input}"),
    (["--skip-predict"], "skip_predict", True),
    (["--num-rows", "100"], "num_rows", "100"),
    (["--sparse-column-file", "{cols}"], "sparse_column_file", "{cols}"),
    (["--parameter-file", "{params}"], "parameter_file", "{params}"),
    (["-s", "5"], "samples", 5),
    (["--samples", "5"], "samples", 5),
    (["-i", "3"], "iterations", 3),
    (["--iterations", "3"], "iterations", 3),
    (["--timeout", "30"], "timeout", 30),
    (["--in-server"], "in_server", True),
    (["--url", "http://x"], "url", "http://x"),
    (["--production", "--max-workers", "2"], "production", True),
    (["--max-workers", "2"], "max_workers", 2),
    (["--with-error-server"], "with_error_server", True),
    (["--language", "r"], "language", "r"),
    (["--show-stacktrace"], "show_stacktrace", True),
    (["--monitor", "--model-id", "m", "--deployment-id", "d", "--monitor-settings", "s"], "monitor", True),
    (["--model-id", "m"], "model_id", "m"),
    (["--deployment-id", "d"], "deployment_id", "d"),
    (["--monitor-settings", "spooler_type=STDOUT"], "monitor_settings", "spooler_type=STDOUT"),
    (["--allow-dr-api-access", "--webserver", "http://dr", "--api-token", "t"], "allow_dr_api_access", True),
    (["--webserver", "http://dr"], "webserver", "http://dr"),
    (["--api-token", "tok"], "api_token", "tok"),
    (["--gpu-predictor", "nim"], "gpu_predictor", "nim"),
    (["--sidecar"], "sidecar", True),
    (["--triton-host", "https://triton:1"], "triton_host", "https://triton:1"),
    (["--triton-http-port", "9000"], "triton_http_port", "9000"),
    (["--triton-grpc-port", "9001"], "triton_grpc_port", "9001"),
    (["--target-type", "unstructured"], "target_type", "unstructured"),
    (["--target-type", "unstructured", "--query", "a=1&b=2"], "query", "a=1&b=2"),
    (["--target-type", "unstructured", "--content-type", "text/csv"], "content_type", "text/csv"),
    (["--deployment-config", "{deploy}"], "deployment_config", "{deploy}"),
    (["--disable-strict-validation"], "disable_strict_validation", True),
    (["--enable-fit-metadata"], "enable_fit_metadata", True),
    (["--user-secrets-mount-path", "/s"], "user_secrets_mount_path", "/s"),
    (["--user-secrets-prefix", "SEC"], "user_secrets_prefix", "SEC"),
    (["--runtime-params-file", "{params}"], "runtime_params_file", "{params}"),
    (["--lazy-loading-file", "{params}"], "lazy_loading_file", "{params}"),
]


def _flag_of(extra: list[str], dest: str) -> str:
    wanted = "--" + dest.replace("_", "-")
    for arg in extra:
        if arg == wanted:
            return arg
    if dest == "class_labels" and "--class-labels-file" in extra:
        return "--class-labels-file"
    return {"samples": "--samples", "iterations": "--iterations"}.get(dest, extra[0])


def _cases() -> list[tuple[str, list[str], str, object]]:
    cases = []
    for extra, dest, expected in FLAG_CASES:
        flag = _flag_of(extra, dest)
        for command in sorted(FLAGS[flag] - {"new"}):
            if command == FIT and dest in ("target_csv", "output"):
                continue  # fit's base argv has --target, exclusive with --target-csv (tested apart)
            if command == PERF and dest == "target_type" and expected == "unstructured":
                continue  # perf-test refuses unstructured (tested apart)
            if command == PERF and dest in ("query", "content_type"):
                continue
            cases.append((command, extra, dest, expected))
    return cases


@pytest.mark.parametrize(("command", "extra", "dest", "expected"), _cases())
def test_flag_sets_dest(command: str, extra: list[str], dest: str, expected: object, files: dict[str, str]) -> None:
    extra = [arg.format(**files) for arg in extra]
    if isinstance(expected, str):
        expected = expected.format(**files)
    options = run(base_argv(command, files) + extra)
    assert getattr(options, dest) == expected


def test_new_and_new_model_verbose_and_logging_level(files: dict[str, str]) -> None:
    argv = ["new", "model", "-cd", "fresh", "--language", "python", "--verbose", "--logging-level", "info"]
    options = run(argv)
    assert (options.verbose, options.logging_level, options.new_mode) == (True, "info", "model")
    # As in DRUM (argparse): the `model` sub-parser's defaults overwrite what `new` itself parsed.
    argv = ["new", "--verbose", "--logging-level", "info", "model", "-cd", "fresh", "--language", "python"]
    options = run(argv)
    assert (options.verbose, options.logging_level) == (False, "warning")


def test_fit_target_csv(files: dict[str, str]) -> None:
    argv = ["fit", "-cd", files["code_dir"], "--input", files["input"], "--target-csv", files["input"]]
    assert run(argv).target_csv == files["input"]


def test_perf_test_query_and_content_type(files: dict[str, str]) -> None:
    options = run(base_argv(PERF, files) + ["--query", "a=1", "--content-type", "text/csv"])
    assert (options.query, options.content_type) == ("a=1", "text/csv")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            SERVER,
            {
                "subparser_name": "server",
                "address": "127.0.0.1:8080",
                "target_type": None,
                "positive_class_label": None,
                "negative_class_label": None,
                "class_labels": None,
                "class_labels_file": None,
                "logging_level": "warning",
                "verbose": False,
                "show_stacktrace": False,
                "with_error_server": False,
                "show_perf": False,
                "max_workers": 0,
                "production": False,
                "language": None,
                "deployment_config": None,
                "runtime_params_file": None,
                "lazy_loading_file": None,
                "docker": None,
                "skip_deps_install": False,
                "memory": None,
                "query": None,
                "content_type": None,
                "monitor": False,
                "monitor_embedded": False,
                "deployment_id": None,
                "model_id": None,
                "monitor_settings": None,
                "allow_dr_api_access": False,
                "webserver": None,
                "api_token": None,
                "gpu_predictor": None,
                "sidecar": False,
                "triton_host": "http://localhost",
                "triton_http_port": "8000",
                "triton_grpc_port": "8001",
                "user_secrets_mount_path": None,
                "user_secrets_prefix": None,
            },
        ),
        (
            SCORE,
            {"output": None, "sparse_column_file": None, "max_workers": 1, "logging_level": "warning"},
        ),
        (
            FIT,
            {
                "target": "y",
                "target_csv": None,
                "row_weights": None,
                "row_weights_csv": None,
                "skip_predict": False,
                "num_rows": "ALL",
                "parameter_file": None,
                "disable_strict_validation": False,
                "enable_fit_metadata": False,
                "output": None,
                "max_workers": 1,
                # fit has no monitoring flags; DRUM defines them as off
                "monitor": False,
                "monitor_embedded": False,
                "model_id": None,
                "deployment_id": None,
                "monitor_settings": None,
            },
        ),
        (
            PERF,
            {
                "samples": None,
                "iterations": None,
                "timeout": 600,
                "in_server": False,
                "url": None,
                "max_workers": 0,
                "production": False,
                "logging_level": "warning",
                "verbose": False,
            },
        ),
        (VALID, {"logging_level": "warning", "verbose": False, "subparser_name": "validation"}),
        (NEW_MODEL, {"subparser_name": "new", "new_mode": "model", "language": "python"}),
        (PUSH, {"subparser_name": "push", "logging_level": "warning", "max_workers": 1}),
    ],
)
def test_defaults(command: str, expected: dict[str, object], files: dict[str, str]) -> None:
    options = vars(run(base_argv(command, files)))
    assert {key: options.get(key, "<absent>") for key in expected} == expected


def test_short_and_long_code_dir(files: dict[str, str]) -> None:
    short = run(["push", "-cd", files["code_dir"]])
    long = run(["push", "--code-dir", files["code_dir"]])
    assert short.code_dir == long.code_dir == files["code_dir"]


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        (SCORE, "--target-type", "nope"),
        (SERVER, "--logging-level", "loud"),
        (SCORE, "--language", "go"),
        (SERVER, "--gpu-predictor", "tgi"),
        (NEW_MODEL, "--language", "java"),
    ],
)
def test_choices(
    command: str, flag: str, value: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = base_argv(command, files)
    if flag in argv:
        argv = argv[: argv.index(flag)]
    assert exits(argv + [flag, value]) == 2
    assert f"argument {flag}: invalid choice: '{value}'" in capsys.readouterr().err


def test_target_type_choices_are_drums(files: dict[str, str]) -> None:
    for target_type in (
        "binary",
        "regression",
        "anomaly",
        "unstructured",
        "multiclass",
        "transform",
        "textgeneration",
        "geopoint",
        "vectordatabase",
        "agenticworkflow",
        "multilabel",
    ):
        assert run(base_argv(SERVER, files) + ["--target-type", target_type]).target_type == target_type


def test_logging_levels_are_drums(files: dict[str, str]) -> None:
    for level in ("all", "debug", "info", "warn", "warning", "error", "critical", "fatal"):
        assert run(base_argv(SCORE, files) + ["--logging-level", level]).logging_level == level


@pytest.mark.parametrize("command", [PERF, VALID])
def test_no_logging_level_on_perf_test_and_validation(
    command: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits(base_argv(command, files) + ["--logging-level", "debug"]) == 2
    assert "unrecognized arguments: --logging-level debug" in capsys.readouterr().err


def test_fit_target_and_target_csv_are_exclusive(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(FIT, files) + ["--target-csv", files["input"]]) == 2
    assert "argument --target-csv: not allowed with argument --target" in capsys.readouterr().err


def test_fit_row_weights_are_exclusive(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(FIT, files) + ["--row-weights", "w", "--row-weights-csv", files["input"]]) == 2
    assert "argument --row-weights-csv: not allowed with argument --row-weights" in capsys.readouterr().err


def test_monitor_and_monitor_embedded_are_exclusive(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--monitor", "--monitor-embedded"]) == 2
    assert "argument --monitor-embedded: not allowed with argument --monitor" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------


def test_code_dir_is_resolved_to_real_absolute_path(files: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "model", target_is_directory=True)
    assert run(["push", "-cd", "link"]).code_dir == files["code_dir"]
    assert run(["push", "-cd", "./model/"]).code_dir == files["code_dir"]


def test_code_dir_must_be_a_directory(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(["score", "-cd", "missing", "--input", files["input"]]) == 2
    assert "argument -cd/--code-dir: The path missing is not a directory!" in capsys.readouterr().err
    assert exits(["score", "-cd", files["input"], "--input", files["input"]]) == 2


def test_new_model_code_dir_must_not_exist(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["new", "model", "-cd", "fresh", "--language", "r"]).code_dir == os.path.join(files["root"], "fresh")
    assert exits(["new", "model", "-cd", "model", "--language", "python"]) == 2
    assert (
        "drum new model: error: argument -cd/--code-dir: The path model already exists! "
        "Please provide a non existing path!" in capsys.readouterr().err
    )


def test_input_must_exist(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["score", "-cd", "model", "--input", "in.csv"]).input == files["input"]
    assert exits(["score", "-cd", "model", "--input", "missing.csv"]) == 2
    assert "argument --input: The file missing.csv does not exist!" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (SERVER, "--deployment-config"),
        (SCORE, "--sparse-column-file"),
        (FIT, "--parameter-file"),
        (SCORE, "--runtime-params-file"),
        (SERVER, "--lazy-loading-file"),
    ],
)
def test_file_flags_must_exist(
    command: str, flag: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits(base_argv(command, files) + [flag, "nope.json"]) == 2
    assert f"argument {flag}: The file nope.json does not exist!" in capsys.readouterr().err


def test_fit_output_must_be_a_directory(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(base_argv(FIT, files) + ["--output", "out"]).output == files["out"]
    assert exits(base_argv(FIT, files) + ["--output", "in.csv"]) == 2
    assert "argument --output: The path in.csv is not a directory!" in capsys.readouterr().err


def test_score_output_need_not_exist(files: dict[str, str]) -> None:
    assert run(base_argv(SCORE, files) + ["--output", "sub/x.csv"]).output == os.path.join(
        files["root"], "sub", "x.csv"
    )


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["--positive-class-label", "--negative-class-label"])
def test_binary_labels_come_in_pairs(given: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SERVER, files) + [given, "x"]) == 2
    err = capsys.readouterr().err
    assert f"drum server: error: argument {given}: \nError - for binary classification case, both" in err
    assert "See --help option for more information" in err


def test_binary_label_pair_may_mix_cli_and_env(files: dict[str, str]) -> None:
    options = run(base_argv(SCORE, files) + ["--negative-class-label", "no"], {"POSITIVE_CLASS_LABEL": "yes"})
    assert (options.positive_class_label, options.negative_class_label) == ("yes", "no")


def test_binary_labels_in_equals_form(files: dict[str, str]) -> None:
    options = run(base_argv(SCORE, files) + ["--positive-class-label=1", "--negative-class-label=0"])
    assert (options.positive_class_label, options.negative_class_label) == ("1", "0")


def test_class_labels_need_two(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--class-labels", "only"]) == 1
    assert "Multiclass classification requires at least 2 labels." in capsys.readouterr().err


def test_class_labels_file_needs_two(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--class-labels-file", files["one_label"]]) == 1
    assert "Multiclass classification requires at least 2 labels." in capsys.readouterr().err


def test_class_labels_file_must_exist(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--class-labels-file", "nope.txt"]) == 1
    assert "argument --class-labels-file: cannot read nope.txt" in capsys.readouterr().err


def test_class_labels_file_ignores_crlf_and_blank_lines(files: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "crlf.txt").write_bytes(b"a\r\nb\r\n\r\nc\r\n")
    assert run(base_argv(SCORE, files) + ["--class-labels-file", "crlf.txt"]).class_labels == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("order", "named"),
    [
        (["--class-labels", "a", "b", "--class-labels-file", "{labels}"], "--class-labels"),
        (["--class-labels-file", "{labels}", "--class-labels", "a", "b"], "--class-labels-file"),
    ],
)
def test_class_labels_and_file_are_exclusive(
    order: list[str], named: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = base_argv(SCORE, files) + [arg.format(**files) for arg in order]
    assert exits(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {named}: \nError - for multiclass classification, either the class labels" in err


# --------------------------------------------------------------------------------------------------
# Env-var injection (pure function)
# --------------------------------------------------------------------------------------------------


def test_env_var_flag_names() -> None:
    assert env_var_flag("CODE_DIR") == "--code-dir"
    assert env_var_flag("MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS") == "--monitor-embedded"
    assert env_var_flag("ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS") == "--allow-dr-api-access"


def test_inject_value_vars_in_drums_order() -> None:
    environ = {
        "ADDRESS": "0.0.0.0:9",
        "CODE_DIR": "/m",
        "TARGET_TYPE": "binary",
        "POSITIVE_CLASS_LABEL": "y",
        "NEGATIVE_CLASS_LABEL": "n",
        "MAX_WORKERS": "3",
        "DEPLOYMENT_CONFIG": "/d.json",
        "USER_SECRETS_PREFIX": "SEC",
        "USER_SECRETS_MOUNT_PATH": "/s",
    }
    assert inject_env_args(["server"], environ) == [
        "server",
        "--target-type",
        "binary",
        "--code-dir",
        "/m",
        "--negative-class-label",
        "n",
        "--positive-class-label",
        "y",
        "--address",
        "0.0.0.0:9",
        "--max-workers",
        "3",
        "--deployment-config",
        "/d.json",
        "--user-secrets-prefix",
        "SEC",
        "--user-secrets-mount-path",
        "/s",
    ]


def test_inject_does_not_modify_its_argument() -> None:
    argv = ["server"]
    inject_env_args(argv, {"CODE_DIR": "/m"})
    assert argv == ["server"]


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "y", "t", "on", " On ", "1.0"])
def test_inject_true_bool(value: str) -> None:
    assert inject_env_args(["server"], {"WITH_ERROR_SERVER": value}) == ["server", "--with-error-server"]


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "n", "off", "none", "0.0"])
def test_inject_false_bool(value: str) -> None:
    assert inject_env_args(["server"], {"WITH_ERROR_SERVER": value}) == ["server"]


@pytest.mark.parametrize("value", ["maybe", "2", "f", "enabled"])
def test_invalid_bool_exits_1(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        inject_env_args(["server"], {"SHOW_STACKTRACE": value})
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "SHOW_STACKTRACE" in err and repr(value) in err and "not a valid boolean" in err


def test_invalid_bool_of_a_flag_the_sub_command_lacks_is_ignored() -> None:
    assert inject_env_args(["score"], {"PRODUCTION": "maybe"}) == ["score"]


def test_inject_all_bool_vars() -> None:
    environ = dict.fromkeys(BOOL_ENV_VARS, "1")
    assert inject_env_args(["fit"], environ) == ["fit", "--show-stacktrace", "--skip-predict"]
    assert inject_env_args(["score"], environ) == [
        "score",
        "--show-stacktrace",
        "--monitor",
        "--monitor-embedded",
        "--allow-dr-api-access",
    ]


def test_monitor_embedded_env_name() -> None:
    environ = {"MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS": "true"}
    assert inject_env_args(["score"], environ) == ["score", "--monitor-embedded"]
    assert inject_env_args(["score"], {"MONITOR_EMBEDDED": "true"}) == ["score"]


def test_class_labels_env_is_split_on_whitespace() -> None:
    assert inject_env_args(["score"], {"CLASS_LABELS": " a  b\tc\n"}) == [
        "score",
        "--class-labels",
        "a",
        "b",
        "c",
    ]


def test_empty_env_var_is_unset() -> None:
    assert inject_env_args(["server"], {"CODE_DIR": "", "SHOW_STACKTRACE": ""}) == ["server"]


@pytest.mark.parametrize(
    "given",
    [["--code-dir", "/cli"], ["-cd", "/cli"], ["--code-dir=/cli"], ["--code", "/cli"]],
)
def test_flag_on_command_line_wins_over_env(given: list[str]) -> None:
    assert inject_env_args(["score", *given], {"CODE_DIR": "/env"}) == ["score", *given]


def test_bool_flag_already_given_is_not_repeated() -> None:
    assert inject_env_args(["server", "--production"], {"PRODUCTION": "1"}) == ["server", "--production"]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("score", "ADDRESS"),
        ("score", "MAX_WORKERS"),
        ("fit", "DEPLOYMENT_CONFIG"),
        ("push", "TARGET_TYPE"),
        ("perf-test", "WITH_ERROR_SERVER"),
        ("server", "SKIP_PREDICT"),
        ("fit", "MONITOR"),
        ("validation", "USER_SECRETS_PREFIX"),
        ("new", "CODE_DIR"),
    ],
)
def test_env_for_flag_missing_on_sub_command_is_ignored(command: str, name: str) -> None:
    assert inject_env_args([command], {name: "1"}) == [command]


def test_no_injection_without_a_known_sub_command() -> None:
    environ = {"CODE_DIR": "/m", "SHOW_STACKTRACE": "1"}
    assert inject_env_args([], environ) == []
    assert inject_env_args(["--version"], environ) == ["--version"]
    assert inject_env_args(["bogus"], environ) == ["bogus"]
    # `drum new model` is looked up by its first word, which has no --code-dir: nothing is injected.
    assert inject_env_args(["new", "model"], environ) == ["new", "model"]


def test_class_labels_env_skipped_when_file_flag_given() -> None:
    argv = ["score", "--class-labels-file", "l.txt"]
    assert inject_env_args(argv, {"CLASS_LABELS": "a b"}) == argv


def test_class_labels_file_env_skipped_when_labels_flag_given() -> None:
    argv = ["score", "--class-labels", "a", "b"]
    assert inject_env_args(argv, {"CLASS_LABELS_FILE": "l.txt"}) == argv


def test_both_label_env_vars_the_file_wins() -> None:
    environ = {"CLASS_LABELS": "a b", "CLASS_LABELS_FILE": "l.txt"}
    assert inject_env_args(["score"], environ) == ["score", "--class-labels-file", "l.txt"]


def test_monitor_pair_is_not_guarded_as_in_drum(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"MONITOR": "1", "MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS": "1"}
    assert inject_env_args(["server"], environ) == ["server", "--monitor", "--monitor-embedded"]
    assert exits(base_argv(SERVER, files), environ) == 2
    assert "argument --monitor-embedded: not allowed with argument --monitor" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Env vars through parse_args
# --------------------------------------------------------------------------------------------------


def test_server_entirely_from_env(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "CODE_DIR": "model",
        "ADDRESS": "0.0.0.0:8080",
        "TARGET_TYPE": "multiclass",
        "CLASS_LABELS": "a b c",
        "MAX_WORKERS": "4",
        "PRODUCTION": "true",
        "WITH_ERROR_SERVER": "1",
        "SHOW_STACKTRACE": "yes",
        "DEPLOYMENT_CONFIG": "deploy.json",
    }
    options = run(["server"], environ)
    assert options.code_dir == files["code_dir"]
    assert options.address == "0.0.0.0:8080"
    assert options.target_type == "multiclass"
    assert options.class_labels == ["a", "b", "c"]
    assert options.max_workers == 4
    assert options.production and options.with_error_server and options.show_stacktrace
    assert options.deployment_config == files["deploy"]


def test_environ_defaults_to_os_environ(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE_DIR", files["code_dir"])
    monkeypatch.setenv("SHOW_STACKTRACE", "1")
    options = parse_args(["push"])
    assert options.code_dir == files["code_dir"]
    assert parse_args(["score", "--input", files["input"]]).show_stacktrace is True


def test_env_max_workers_must_be_positive(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["server", "-cd", "model", "--address", "h:1"]
    assert exits(argv, {"MAX_WORKERS": "0"}) == 2
    assert "argument --max-workers: must be > 0" in capsys.readouterr().err
    assert exits(argv, {"MAX_WORKERS": "abc"}) == 2
    assert "argument --max-workers: invalid int value: 'abc'" in capsys.readouterr().err


def test_env_invalid_bool_aborts_parse(files: dict[str, str]) -> None:
    assert exits(base_argv(SERVER, files), {"WITH_ERROR_SERVER": "sure"}) == 1


def test_env_defaults_of_monitoring_and_dr_flags(files: dict[str, str]) -> None:
    environ = {
        "MLOPS_DEPLOYMENT_ID": "dep",
        "MLOPS_MODEL_ID": "mod",
        "MONITOR_SETTINGS": "spooler_type=STDOUT",
        "EXTERNAL_WEB_SERVER_URL": "http://dr",
        "API_TOKEN": "tok",
        "TRITON_HOST": "https://t",
        "TRITON_HTTP_PORT": "1",
        "TRITON_GRPC_PORT": "2",
        "LAZY_LOADING_FILE": files["params"],
        "RUNTIME_PARAMS_FILE": files["params"],
    }
    options = run(base_argv(SERVER, files), environ)
    assert (options.deployment_id, options.model_id) == ("dep", "mod")
    assert options.monitor_settings == "spooler_type=STDOUT"
    assert (options.webserver, options.api_token) == ("http://dr", "tok")
    assert (options.triton_host, options.triton_http_port, options.triton_grpc_port) == ("https://t", "1", "2")
    assert options.runtime_params_file == options.lazy_loading_file == files["params"]
    # DEPLOYMENT_ID / MODEL_ID win over their MLOPS_ twins
    options = run(base_argv(SERVER, files), {**environ, "DEPLOYMENT_ID": "d2", "MODEL_ID": "m2"})
    assert (options.deployment_id, options.model_id) == ("d2", "m2")


def test_runtime_params_file_env_must_exist(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SERVER, files), {"RUNTIME_PARAMS_FILE": "gone.yaml"}) == 2
    assert "argument --runtime-params-file: The file gone.yaml does not exist!" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Post-parse steps
# --------------------------------------------------------------------------------------------------


def test_address_is_exported(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADDRESS", raising=False)
    run(base_argv(SERVER, files))
    assert os.environ["ADDRESS"] == "127.0.0.1:8080"


def test_address_not_exported_for_score(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADDRESS", raising=False)
    run(base_argv(SCORE, files))
    assert "ADDRESS" not in os.environ


def test_custom_model_workers_runtime_param_overrides(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS", '{"type": "numeric", "payload": 6}')
    assert run(base_argv(SERVER, files) + ["--max-workers", "2"]).max_workers == 6
    assert run(base_argv(SCORE, files)).max_workers == 6


def test_custom_model_workers_satisfies_production(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS", '{"type": "numeric", "payload": 2}')
    assert run(base_argv(SERVER, files) + ["--production"]).max_workers == 2


def test_resolve_max_workers_again_after_loading_params(monkeypatch: pytest.MonkeyPatch) -> None:
    options = argparse.Namespace(max_workers=0)
    resolve_max_workers(options)
    assert options.max_workers == 0
    monkeypatch.setenv("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS", '{"type": "numeric", "payload": 3}')
    resolve_max_workers(options)
    assert options.max_workers == 3
    no_flag = argparse.Namespace()
    monkeypatch.delenv("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS")
    resolve_max_workers(no_flag)
    assert no_flag.max_workers == 1


# --------------------------------------------------------------------------------------------------
# DRUM's verify_options
# --------------------------------------------------------------------------------------------------


def test_perf_test_refuses_unstructured(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(PERF, files) + ["--target-type", "unstructured"]) == 1
    assert capsys.readouterr().out == "Performance testing is not implemented for unstructured models.\n"


@pytest.mark.parametrize("command", [SERVER, PERF])
def test_production_needs_max_workers(command: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(command, files) + ["--production"]) == 1
    assert capsys.readouterr().out == ("Production mode requires a non-zero number of workers [--max-workers > 0].\n")
    assert run(base_argv(command, files) + ["--production", "--max-workers", "1"]).production is True


def test_max_workers_flag_must_be_positive(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SERVER, files) + ["--max-workers", "0"]) == 2
    assert "drum server: error: argument --max-workers: must be > 0" in capsys.readouterr().err


def test_fit_anomaly_refuses_target(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(FIT, files) + ["--target-type", "anomaly"]) == 1
    assert capsys.readouterr().out == (
        "Arguments '--target' and '--target-csv' are mutually exclusive with 'anomaly' target type.\n"
    )


def test_fit_needs_target(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fit", "-cd", "model", "--input", "in.csv"]
    assert exits(argv + ["--target-type", "binary"]) == 1
    assert capsys.readouterr().out == (
        "With target type 'binary', target feature has to be provided using '--target' or '--target-csv' argument.\n"
    )
    assert exits(argv) == 1
    assert "With target type 'None'," in capsys.readouterr().out
    assert run(argv + ["--target-type", "transform"]).target is None
    assert run(argv + ["--target-type", "anomaly"]).target_type == "anomaly"


@pytest.mark.parametrize("command", sorted(DOCKER))
def test_skip_deps_install_needs_docker(
    command: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits(base_argv(command, files) + ["--skip-deps-install"]) == 1
    assert capsys.readouterr().out == "Argument '--skip-deps-install' can only be used together with '--docker'.\n"


@pytest.mark.parametrize("command", [SCORE, SERVER])
def test_monitor_needs_its_options(command: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(command, files) + ["--monitor"]) == 1
    out = capsys.readouterr().out
    assert "Error: MLOps Monitoring requires all monitoring options to be present." in out
    assert "  --model-id\n  --deployment-id\n  --monitor-settings\n" in out
    assert "These options can also be obtained via environment variables" in out
    assert f"usage: drum {command}" in out


def test_monitor_with_options_from_env(files: dict[str, str]) -> None:
    environ = {"MONITOR": "1", "MODEL_ID": "m", "DEPLOYMENT_ID": "d", "MONITOR_SETTINGS": "s"}
    assert run(base_argv(SERVER, files), environ).monitor is True


def test_monitor_refuses_unstructured(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = base_argv(SCORE, files) + ["--monitor", "--target-type", "unstructured"]
    assert exits(argv) == 1
    assert capsys.readouterr().out == "Error: MLOps monitoring can not be used in unstructured mode.\n"


def test_monitor_embedded_is_unstructured_only(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SERVER, files) + ["--monitor-embedded"]) == 1
    assert capsys.readouterr().out == ("Error: MLOps embedded monitoring is supported for unstructured modes only.\n")


def test_monitor_embedded_needs_its_options(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = base_argv(SERVER, files) + ["--monitor-embedded", "--target-type", "unstructured"]
    assert exits(argv + ["--model-id", "m"]) == 1
    out = capsys.readouterr().out
    assert "  --deployment-id\n  --webserver\n  --api-token\n" in out
    assert "--monitor-settings\n" not in out.split("usage:")[0]
    environ = {
        "MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS": "1",
        "MODEL_ID": "m",
        "DEPLOYMENT_ID": "d",
        "EXTERNAL_WEB_SERVER_URL": "http://dr",
        "API_TOKEN": "t",
    }
    options = run(base_argv(SERVER, files) + ["--target-type", "unstructured"], environ)
    assert options.monitor_embedded is True


def test_dr_api_access_needs_webserver_and_token(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SCORE, files) + ["--allow-dr-api-access", "--api-token", "t"]) == 1
    out = capsys.readouterr().out
    assert "Error: DataRobot APIs access requires certain option(s) that are missing." in out
    assert "Missing options:\n  --webserver\n" in out
    assert "--api-token\n" not in out.split("usage:")[0]
    environ = {"ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS": "1", "EXTERNAL_WEB_SERVER_URL": "http://dr"}
    assert exits(base_argv(SCORE, files), environ) == 1
    options = run(base_argv(SCORE, files), {**environ, "API_TOKEN": "t"})
    assert options.allow_dr_api_access is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--triton-host", "localhost:8000"], "Error: Triton Host URL must contain scheme and netloc"),
        (
            ["--triton-http-port", "0"],
            "Error: Triton HTTP port or GRPc port configuration is incorrect. Value should be a positive integer.",
        ),
        (
            ["--triton-grpc-port", "grpc"],
            "Error: Triton HTTP port or GRPc port configuration is incorrect. Value should be a positive integer.",
        ),
        (
            ["--triton-http-port", "8001"],
            "Error: Triton HTTP port or GRPc port configuration is incorrect. Ports can't be the same.",
        ),
    ],
)
@pytest.mark.parametrize("command", [SCORE, SERVER])
def test_triton_options_are_checked(
    command: str, extra: list[str], message: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits(base_argv(command, files) + extra) == 1
    out = capsys.readouterr().out
    assert out.startswith(message + "\n")
    assert f"usage: drum {command}" in out


def test_triton_env_defaults_are_checked(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(base_argv(SERVER, files), {"TRITON_GRPC_PORT": "8000"}) == 1
    assert "Ports can't be the same." in capsys.readouterr().out


def test_triton_not_checked_for_other_sub_commands(files: dict[str, str]) -> None:
    run(base_argv(VALID, files), {"TRITON_HOST": "nohost", "TRITON_HTTP_PORT": "x"})


# --------------------------------------------------------------------------------------------------
# --query / --content-type (checked once the target type is resolved)
# --------------------------------------------------------------------------------------------------


def test_query_and_content_type_are_not_rejected_by_the_parser(files: dict[str, str]) -> None:
    # The target type may still come from model-metadata.yaml.
    options = run(base_argv(SCORE, files) + ["--query", "a=1", "--content-type", "text/csv"])
    assert (options.query, options.content_type) == ("a=1", "text/csv")


def test_check_unstructured_only_options() -> None:
    with pytest.raises(DrumCommonException, match="--query argument can be used only with --target-type"):
        check_unstructured_only_options(argparse.Namespace(query="a=1", content_type=None), "regression")
    with pytest.raises(DrumCommonException, match="--content-type argument can be used only with"):
        check_unstructured_only_options(argparse.Namespace(query=None, content_type="text/csv"), "binary")
    options = argparse.Namespace(query="a=1", content_type=None)
    check_unstructured_only_options(options, "unstructured")
    assert options.content_type == "text/plain; charset=utf8"
    options = argparse.Namespace(query=None, content_type="text/csv")
    check_unstructured_only_options(options, "unstructured")
    assert options.content_type == "text/csv"
