"""`drum server`: load the model directory and serve DRUM's HTTP API on FastAPI/uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from drum.config.settings import get_setting
from drum.errors import DrumCommonException
from drum.model.deployment_config import read_deployment_config
from drum.model.predictor import Predictor
from drum.observability.stats import RequestTimes
from drum.servers.fastapi.app import AppConfig, create_app, error_context
from drum.servers.fastapi.run import serve
from drum.servers.select import select_server
from drum.serving.handlers import ServingContext
from drum.serving.routes import url_prefix

logger = logging.getLogger("drum.cli.server")
DEFAULT_PORT = 5000  # Flask's default, which DRUM uses when --address has no port


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.partition(":")
    if not port:
        return host or "127.0.0.1", DEFAULT_PORT
    try:
        return host or "0.0.0.0", int(port)
    except ValueError:
        raise DrumCommonException(f"Invalid --address {address!r}: the port must be a number") from None


def build_context(options: argparse.Namespace) -> ServingContext:
    """Load the model (hooks, artifact) and everything the handlers need."""
    from drum.cli.model_setup import model_config

    config, metadata = model_config(options)
    deployment_config = read_deployment_config(getattr(options, "deployment_config", None))
    predictor = Predictor(config).load()
    return ServingContext(
        predictor=predictor,
        target_type=config.target_type,
        code_dir=config.code_dir,
        language=config.language,
        model_metadata=metadata,
        deployment_config=deployment_config,
        times=RequestTimes(bool(getattr(options, "show_perf", False))),
    )


def run(options: argparse.Namespace) -> int:
    select_server()
    host, port = parse_address(options.address)
    with_error_server = bool(options.with_error_server)
    try:
        context = build_context(options)
    except Exception as exc:
        if not with_error_server:
            raise
        if options.show_stacktrace:
            traceback.print_exc()
        logger.error("Model failed to load; serving errors (513) because of --with-error-server: %s", exc)
        context = error_context(exc)
    app = create_app(
        AppConfig(
            load=lambda: context,
            url_prefix=url_prefix(),
            executor_workers=get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS"),
            with_error_server=with_error_server,
            enable_docs=get_setting("DRUM_FASTAPI_ENABLE_DOCS"),
        )
    )
    started = serve(app, host, port, options.logging_level)
    if not started:
        print(f"drum server could not start on {host}:{port}", file=sys.stderr)
        return 1
    return 0
