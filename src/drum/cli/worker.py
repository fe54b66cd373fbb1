"""Entry points of worker processes: a uvicorn worker (`drum server` with 2+ workers) and a gunicorn
worker (DRUM_SERVER_TYPE=gunicorn).

The parent exports its command line (`DRUM_SERVER_ARGV`) and its `ServerConfig` (`DRUM_SERVER_CONFIG`);
each worker parses the command line again for the model's options (the environment, runtime parameters
included, is inherited), takes the config as it is (settings are never read again) and builds its app.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from drum.config.server_config import CONFIG_ENV, ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI
    from flask import Flask


def _worker_setup() -> tuple[argparse.Namespace, ServerConfig]:
    from drum.cli.parser import parse_args
    from drum.cli.server import ARGV_ENV
    from drum.observability.logging import setup_logging

    options = parse_args(json.loads(os.environ[ARGV_ENV]))
    config = ServerConfig.from_json(os.environ[CONFIG_ENV])
    setup_logging(config.logging_level, config.settings.json_logging)
    # As DRUM's workers: the model sees one worker
    os.environ["MAX_WORKERS"] = "1"
    os.environ.pop("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS", None)
    return options, config


def create_worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process; a failure to build or start ends the worker with
    uvicorn's startup-failure code, which stops the supervisor instead of restarting it forever."""
    from drum.cli.server import STARTUP_FAILURE, exit_on_start_error, fastapi_app
    from drum.observability.tracing import setup_otel

    options, config = _worker_setup()
    setup_otel(config.workers)  # after logging: its log handler joins the root logger

    def on_start_error(exc: BaseException) -> None:
        exit_on_start_error(exc, config.show_stacktrace, STARTUP_FAILURE)

    try:
        return fastapi_app(options, config, on_start_error)
    except Exception as exc:  # e.g. custom_fastapi.py's init_app failing
        on_start_error(exc)
        raise


def create_gunicorn_app() -> Flask:
    """gunicorn's app factory in each worker process: the runtime starts (the model loads) here."""
    from drum.cli.server import flask_app

    options, config = _worker_setup()
    return flask_app(options, config, "gunicorn")
