"""`drum server`: read the config once, build the serving runtime and serve it on the selected backend.

FastAPI, one worker: the app is built here and served in this process; the runtime starts (loads the
model) in the app's lifespan. Several workers (`--max-workers`, `MAX_WORKERS`, runtime parameter
`CUSTOM_MODEL_WORKERS`): uvicorn's supervisor starts worker processes that each rebuild the app with
`drum.cli.worker` from this process's command line and config. Flask: the runtime starts here (werkzeug)
or in each gunicorn worker (`drum.cli.worker`, `drum.cli.gunicorn_conf`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from drum.cli.reporting import report_error
from drum.config.server_config import ServerConfig
from drum.config.settings import Settings
from drum.errors import DrumCommonException
from drum.model.deployment_config import read_deployment_config
from drum.model.fastcsv import enable_polars
from drum.model.monitoring import attach_monitor, check_available
from drum.model.predictor import ModelConfig, Predictor
from drum.model.target import TargetType
from drum.observability.metrics import prepare_multiprocess_dir
from drum.observability.stats import RequestTimes
from drum.observability.tracing import setup_otel, shutdown_otel
from drum.servers.select import select_server
from drum.serving.handlers import ServingContext
from drum.serving.runtime import Runtime

if TYPE_CHECKING:
    from fastapi import FastAPI
    from flask import Flask

logger = logging.getLogger("drum.cli.server")
WORKER_FACTORY = "drum.cli.worker:create_worker_app"
GUNICORN_APP = "drum.cli.worker:create_gunicorn_app()"
GUNICORN_CONFIG = "python:drum.cli.gunicorn_conf"
ARGV_ENV = "DRUM_SERVER_ARGV"
#: uvicorn's exit code for a worker that failed to start: its supervisor then stops instead of restarting.
STARTUP_FAILURE = 3


def build_context(options: argparse.Namespace, config: ServerConfig, csv_reader: bool = True) -> ServingContext:
    """Load the model (hooks, artifact) and everything the handlers need; `csv_reader`: also the
    large-CSV reader (`load_csv_reader`; False when this process forks its request handlers)."""
    from drum.cli.model_setup import load_predictor, model_config

    model, metadata = model_config(options)
    deployment_config = read_deployment_config(getattr(options, "deployment_config", None))
    gpu_predictor = getattr(options, "gpu_predictor", None)
    if gpu_predictor:
        sidecar = bool(getattr(options, "sidecar", False))
        predictor: Predictor = openai_backend_predictor(model, gpu_predictor, sidecar, config.settings)
    else:
        predictor = load_predictor(model)
    attach_monitor(predictor, options)
    context = ServingContext(
        predictor=predictor,
        target_type=model.target_type,
        code_dir=model.code_dir,
        language=model.language,
        model_metadata=metadata,
        deployment_config=deployment_config,
        times=RequestTimes(bool(getattr(options, "show_perf", False))),
    )
    if csv_reader:
        load_csv_reader(context, config.settings.polars_csv)
    return context


def openai_backend_predictor(config: ModelConfig, kind: str, sidecar: bool, settings: Settings) -> Predictor:
    """`--gpu-predictor nim|vllm --sidecar`: the backend runs beside drum, which never starts it."""
    from drum.model.openai_backend import OpenAIBackendPredictor

    if kind not in ("nim", "vllm"):
        raise DrumCommonException(f"--gpu-predictor {kind} is not supported by this drum (only nim and vllm).")
    if not sidecar:
        raise DrumCommonException(
            f"--gpu-predictor {kind} without --sidecar would make drum start the {kind} server itself, which "
            "this drum does not do. Start the OpenAI-compatible server yourself, point OPENAI_HOST/OPENAI_PORT "
            "at it and add --sidecar."
        )
    return OpenAIBackendPredictor(
        config, kind, settings.openai_host, settings.openai_port, settings.openai_client_timeout
    ).load()


def load_csv_reader(context: ServingContext, enabled: bool) -> None:
    """Let polars read large CSV bodies (loaded by the first) when `enabled` (DRUM_POLARS_CSV) and the model
    takes structured input; in the process that serves requests, after any fork."""
    if not enabled or context.predictor is None or context.target_type == TargetType.UNSTRUCTURED:
        return
    enable_polars()


def make_runtime(
    options: argparse.Namespace, config: ServerConfig, server_name: str, csv_reader: bool = True
) -> Runtime:
    """The runtime that loads this model directory (in `Runtime.start`)."""
    return Runtime(config, lambda: build_context(options, config, csv_reader), server_name)


def fastapi_app(
    options: argparse.Namespace, config: ServerConfig, on_start_error: Callable[[BaseException], None]
) -> FastAPI:
    """The FastAPI app of one serving process (the runtime starts in its lifespan)."""
    from drum.servers.fastapi.app import create_app
    from drum.servers.fastapi.extensions import load_fastapi_extension

    extend = load_fastapi_extension(config.code_dir)
    return create_app(make_runtime(options, config, "fastapi"), extend, on_start_error)


def flask_app(options: argparse.Namespace, config: ServerConfig, server_name: str, forks: bool = False) -> Flask:
    """The Flask app of one serving process, its runtime started (the model loaded); `forks`: this
    process forks a child per request (werkzeug with 2+ processes), which must not inherit polars' threads."""
    from drum.servers.flask.app import create_flask_app
    from drum.servers.flask.extensions import load_flask_extension

    extend = load_flask_extension(config.code_dir)
    runtime = make_runtime(options, config, server_name, csv_reader=not forks)
    runtime.start()
    return create_flask_app(runtime, extend)


def exit_on_start_error(exc: BaseException, show_stacktrace: bool, code: int | None = None) -> None:
    """The runtime failed to start in the app's lifespan (the model failed to load, no error server):
    report it as `drum` reports any error and end the process with `code` (default: what `drum` would
    return for it); uvicorn would otherwise log the traceback and keep a supervisor restarting workers."""
    status = report_error(exc, show_stacktrace)
    sys.stdout.flush()
    sys.stderr.flush()
    shutdown_otel()
    os._exit(status if code is None else code)


def run(options: argparse.Namespace, argv: list[str] | None = None) -> int:
    config = ServerConfig.from_options(options)  # every setting read and validated once, here
    server = select_server(config.settings, config.code_dir)
    check_available(options)  # --monitor without datarobot-mlops: one clear error before any worker starts
    argv = argv if argv is not None else sys.argv[1:]
    if getattr(options, "reload", False):
        problem = None
        if config.workers > 1:
            problem = "--max-workers > 1 (reload restarts one worker)"
        elif getattr(options, "production", False):
            problem = "--production"
        elif server != "fastapi":
            problem = f"the {server} backend (reload needs FastAPI: DRUM_SERVER_TYPE=fastapi)"
        if problem is not None:
            print(f"ERROR: --reload is for development and cannot be used with {problem}", file=sys.stderr)
            return 2
    if server != "fastapi":
        return _run_flask(server, options, config, argv)
    from drum.servers.fastapi.extensions import check_flask_extension

    check_flask_extension(config.code_dir)
    setup_otel(config.workers)
    try:
        return _serve_fastapi(options, config, argv)
    finally:
        shutdown_otel()


def _serve_fastapi(options: argparse.Namespace, config: ServerConfig, argv: list[str]) -> int:
    from drum.servers.fastapi.extensions import load_fastapi_extension
    from drum.servers.fastapi.run import serve, serve_reload, serve_workers

    if config.settings.metrics_enabled:
        prepare_multiprocess_dir()  # before any worker starts, so all of them share it
    if getattr(options, "reload", False):
        serve_reload(WORKER_FACTORY, config, {ARGV_ENV: json.dumps([a for a in argv if a != "--reload"])})
        return 0
    if config.workers > 1:
        load_fastapi_extension(config.code_dir)  # a broken extension fails here, once, before workers start
        result = serve_workers(WORKER_FACTORY, config, {ARGV_ENV: json.dumps(argv)})
        if result.failed_workers:
            print("ERROR: drum server stopped: a worker failed to start (see the error above)", file=sys.stderr)
            return 1
        return 0
    app = fastapi_app(options, config, lambda exc: exit_on_start_error(exc, config.show_stacktrace))
    if not serve(app, config).started:
        print(f"ERROR: drum server could not start on {config.host}:{config.port}", file=sys.stderr)
        return 1
    return 0


def _run_flask(server: str, options: argparse.Namespace, config: ServerConfig, argv: list[str]) -> int:
    """`drum server` on the legacy Flask backend: `server` is "flask" (werkzeug) or "gunicorn"."""
    if getattr(options, "gpu_predictor", None):
        raise DrumCommonException(
            "--gpu-predictor needs the FastAPI server (its backend proxy is asynchronous); unset "
            "DRUM_SERVER_TYPE or set it to fastapi."
        )
    if server == "gunicorn":
        from drum.servers.flask.extensions import load_flask_extension
        from drum.servers.flask.run import exec_gunicorn

        load_flask_extension(config.code_dir)  # a broken extension fails here, once, before any worker starts
        return exec_gunicorn(GUNICORN_APP, GUNICORN_CONFIG, config, {ARGV_ENV: json.dumps(argv)})
    from drum.servers.flask.run import run_werkzeug

    return run_werkzeug(flask_app(options, config, "flask", forks=config.workers > 1), config)
