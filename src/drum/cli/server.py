"""`drum server`: load the model directory and serve DRUM's HTTP API on FastAPI/uvicorn.

One worker: the model is loaded in this process before serving. Several workers
(`--max-workers`, `MAX_WORKERS`, runtime parameter `CUSTOM_MODEL_WORKERS`): each worker process
rebuilds the options from `DRUM_SERVER_ARGV` (see `drum.cli.worker`) and loads the model itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable

from drum.config.settings import get_setting
from drum.errors import DrumCommonException
from drum.model.deployment_config import read_deployment_config
from drum.model.fastcsv import load_polars
from drum.model.monitoring import attach_monitor, check_available
from drum.model.predictor import ModelConfig, Predictor
from drum.model.target import TargetType
from drum.observability.metrics import prepare_multiprocess_dir
from drum.observability.stats import RequestTimes
from drum.observability.tracing import setup_otel, shutdown_otel
from drum.servers.fastapi.app import AppConfig, create_app, error_context
from drum.servers.fastapi.extensions import check_flask_extension, load_fastapi_extension
from drum.servers.fastapi.run import STARTUP_FAILURE, serve, serve_workers
from drum.servers.select import select_server
from drum.serving.handlers import ServingContext
from drum.serving.routes import url_prefix

logger = logging.getLogger("drum.cli.server")
DEFAULT_PORT = 5000  # Flask's default, which DRUM uses when --address has no port
WORKER_FACTORY = "drum.cli.worker:create_worker_app"
ARGV_ENV = "DRUM_SERVER_ARGV"


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.partition(":")
    if not port:
        return host or "127.0.0.1", DEFAULT_PORT
    try:
        return host or "0.0.0.0", int(port)
    except ValueError:
        raise DrumCommonException(f"Invalid --address {address!r}: the port must be a number") from None


def build_context(options: argparse.Namespace, csv_reader: bool = True) -> ServingContext:
    """Load the model (hooks, artifact) and everything the handlers need; `csv_reader`: also the
    large-CSV reader (`load_csv_reader`; False when this process forks its request handlers)."""
    from drum.cli.model_setup import model_config

    config, metadata = model_config(options)
    deployment_config = read_deployment_config(getattr(options, "deployment_config", None))
    gpu_predictor = getattr(options, "gpu_predictor", None)
    if gpu_predictor:
        predictor: Predictor = openai_backend_predictor(config, gpu_predictor, bool(getattr(options, "sidecar", False)))
    else:
        predictor = Predictor(config).load()
    attach_monitor(predictor, options)
    context = ServingContext(
        predictor=predictor,
        target_type=config.target_type,
        code_dir=config.code_dir,
        language=config.language,
        model_metadata=metadata,
        deployment_config=deployment_config,
        times=RequestTimes(bool(getattr(options, "show_perf", False))),
    )
    if csv_reader:
        load_csv_reader(context)
    return context


def openai_backend_predictor(config: ModelConfig, kind: str, sidecar: bool) -> Predictor:
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
    return OpenAIBackendPredictor(config, kind).load()


def load_csv_reader(context: ServingContext) -> None:
    """Load polars for large CSV bodies (DRUM_POLARS_CSV) when the model takes structured input; in the
    process that serves requests, after any fork."""
    if context.predictor is None or context.target_type == TargetType.UNSTRUCTURED:
        return
    if get_setting("DRUM_POLARS_CSV") and not load_polars():
        logger.info("polars is not available: large CSV bodies are read by pandas (DRUM_POLARS_CSV)")


def load_context(options: argparse.Namespace, server_name: str = "fastapi", csv_reader: bool = True) -> ServingContext:
    """The loaded model; with --with-error-server a failure gives the context that answers 513.
    `csv_reader`: as in `build_context`."""
    try:
        context = build_context(options, csv_reader)
    except Exception as exc:
        if not options.with_error_server:
            raise
        if options.show_stacktrace:
            traceback.print_exc()
        logger.error("Model failed to load; serving errors (513) because of --with-error-server: %s", exc)
        context = error_context(exc)
    context.server_name = server_name
    return context


def app_config(options: argparse.Namespace, load: Callable[[], ServingContext]) -> AppConfig:
    """Everything the app factory needs, from the options and the settings table."""
    cors = get_setting("DRUM_CORS_ENABLED")
    origins = [o.strip() for o in get_setting("DRUM_CORS_ORIGINS").split(",") if o.strip()] if cors else None
    return AppConfig(
        load=load,
        url_prefix=url_prefix(),
        executor_workers=get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS"),
        max_queue=get_setting("DRUM_FASTAPI_MAX_QUEUE"),
        request_timeout=get_setting("DRUM_CLIENT_REQUEST_TIMEOUT"),
        max_upload_size=get_setting("DRUM_FASTAPI_MAX_UPLOAD_SIZE"),
        with_error_server=bool(options.with_error_server),
        enable_docs=get_setting("DRUM_FASTAPI_ENABLE_DOCS"),
        cors_origins=origins,
        access_log=get_setting("DRUM_ACCESS_LOG"),
        metrics_enabled=get_setting("DRUM_METRICS_ENABLED"),
        batching_max_rows=get_setting("DRUM_BATCHING_MAX_ROWS"),
        batching_max_wait_ms=get_setting("DRUM_BATCHING_MAX_WAIT_MS"),
        batching_allow_hooks=get_setting("DRUM_BATCHING_ALLOW_HOOKS"),
        gil_switch_interval_us=get_setting("DRUM_GIL_SWITCH_INTERVAL_US"),
        malloc_mmap_threshold=get_setting("DRUM_MALLOC_MMAP_THRESHOLD"),
        extend=load_fastapi_extension(options.code_dir),
        on_load_error=lambda exc: report_load_error(exc, options),
        port=parse_address(options.address)[1],
        use_watchdog=get_setting("USE_NIM_WATCHDOG"),
    )


def report_load_error(exc: BaseException, options: argparse.Namespace) -> None:
    """A worker's model failed to load (no error server): report once and end the worker with
    uvicorn's startup-failure code, which makes the supervisor stop instead of restarting it."""
    if options.show_stacktrace:
        traceback.print_exception(exc)
    print(f"ERROR: {exc}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(STARTUP_FAILURE)


def run(options: argparse.Namespace, argv: list[str] | None = None) -> int:
    server = select_server(options.code_dir)
    host, port = parse_address(options.address)
    check_available(options)  # --monitor without datarobot-mlops: one clear error before any worker starts
    if server != "fastapi":
        if getattr(options, "gpu_predictor", None):
            raise DrumCommonException(
                "--gpu-predictor needs the FastAPI server (its backend proxy is asynchronous); unset "
                "DRUM_SERVER_TYPE or set it to fastapi."
            )
        from drum.servers.flask.run import run_flask

        return run_flask(server, options, argv if argv is not None else sys.argv[1:], host, port)
    check_flask_extension(options.code_dir)
    workers = max(1, int(getattr(options, "max_workers", 0) or 0))
    setup_otel(workers)
    try:
        return _serve(options, argv, host, port, workers)
    finally:
        shutdown_otel()


def _serve(options: argparse.Namespace, argv: list[str] | None, host: str, port: int, workers: int) -> int:
    if get_setting("DRUM_METRICS_ENABLED"):
        prepare_multiprocess_dir()  # before any worker starts, so all of them share it
    if workers > 1:
        load_fastapi_extension(options.code_dir)  # a broken extension fails here, once, before workers start
        environ = {ARGV_ENV: json.dumps(argv if argv is not None else sys.argv[1:])}
        result = serve_workers(WORKER_FACTORY, workers, host, port, options.logging_level, environ)
        if result.failed_workers:
            print("ERROR: drum server stopped: a worker failed to start (see the error above)", file=sys.stderr)
            return 1
        return 0
    context = load_context(options)
    started = serve(create_app(app_config(options, lambda: context)), host, port, options.logging_level).started
    if not started:
        print(f"ERROR: drum server could not start on {host}:{port}", file=sys.stderr)
        return 1
    return 0
