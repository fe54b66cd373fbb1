"""The `drum` command: parse options, set up logging and runtime parameters, run the sub-command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import MutableMapping

from drum.cli.reporting import report_error
from drum.errors import DrumCommonException

logger = logging.getLogger("drum")


def main(argv: list[str] | None = None) -> int:
    from drum.cli.parser import parse_args, resolve_max_workers
    from drum.config.runtime_params import load_runtime_params_file
    from drum.config.settings import get_setting
    from drum.observability.logging import setup_logging

    options = parse_args(argv)
    setup_logging(getattr(options, "logging_level", None) or "warning", get_setting("DRUM_JSON_LOGGING"))
    try:
        if getattr(options, "runtime_params_file", None):
            load_runtime_params_file(options.runtime_params_file, options.code_dir)
            resolve_max_workers(options)
        return _dispatch(options, argv)
    except BaseException as exc:  # noqa: BLE001 - every failure ends with a message and an exit code
        if isinstance(exc, SystemExit):
            raise
        return report_error(exc, bool(getattr(options, "show_stacktrace", False)))


def limit_blas_spin(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set OPENBLAS_THREAD_TIMEOUT from DRUM_OPENBLAS_THREAD_TIMEOUT unless it is set (read when
    OpenBLAS loads, so this must run before NumPy is imported to take effect)."""
    from drum.config.settings import get_setting

    timeout = get_setting("DRUM_OPENBLAS_THREAD_TIMEOUT", dict(environ))
    if timeout and "OPENBLAS_THREAD_TIMEOUT" not in environ:
        environ["OPENBLAS_THREAD_TIMEOUT"] = str(timeout)


#: Sub-commands that `--docker` runs inside a container.
IN_CONTAINER = ("server", "score", "perf-test", "validation", "fit")


def _dispatch(options: argparse.Namespace, argv: list[str] | None) -> int:
    command = options.subparser_name
    if getattr(options, "docker", None) and command in IN_CONTAINER:
        from drum.cli.docker import run_in_container
        from drum.cli.parser import inject_env_args

        return run_in_container(options, inject_env_args(sys.argv[1:] if argv is None else argv))
    if command == "server":
        limit_blas_spin()  # before NumPy loads
        from drum.cli import server

        return server.run(options, argv)
    if command == "score":
        from drum.cli import score

        if getattr(options, "ray_address", None):
            from drum.cli import ray_score

            return ray_score.run(options)
        return score.run(options)
    if command == "ray-serve":
        from drum.cli import ray_serve

        return ray_serve.run(options, argv)
    if command == "new":
        from drum.cli import new_model

        return new_model.run(options)
    if command == "validation":
        from drum.cli import validation

        return validation.run(options, argv)
    if command == "fit":
        from drum.cli import fit

        return fit.run(options)
    if command == "perf-test":
        from drum.cli import perf_test

        return perf_test.run(options, argv)
    if command == "push":
        raise DrumCommonException(
            "'drum push' uploads a model to DataRobot through its API, which this drum does not talk to. Use "
            "DataRobot's own `datarobot-drum push` or the DataRobot Python client (`pip install datarobot`: "
            "CustomInferenceModel / CustomModelVersion) to upload the code dir."
        )
    raise DrumCommonException(f"'drum {command}' is not available in this drum; use server, ray-serve, score, "
                              "fit, validation, perf-test or new model.")
