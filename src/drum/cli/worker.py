"""Entry point of one uvicorn worker process (`drum server` with 2+ workers).

The parent exports the command line in `DRUM_SERVER_ARGV`; each worker parses it again (the
environment, runtime parameters included, is inherited), builds the same app and loads the model
in its lifespan.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI


def create_worker_app() -> FastAPI:
    from drum.cli.parser import parse_args
    from drum.cli.server import ARGV_ENV, app_config, build_context, report_load_error
    from drum.observability.logging import setup_logging
    from drum.observability.tracing import setup_otel
    from drum.servers.fastapi.app import create_app

    options = parse_args(json.loads(os.environ[ARGV_ENV]))
    setup_logging(options.logging_level or "warning")
    setup_otel(options.max_workers)  # after logging: its log handler joins the root logger
    os.environ["MAX_WORKERS"] = "1"
    os.environ.pop("MLOPS_RUNTIME_PARAM_CUSTOM_MODEL_WORKERS", None)
    try:
        return create_app(app_config(options, lambda: build_context(options)))
    except Exception as exc:  # e.g. custom_fastapi.py's init_app failing: stop, do not restart forever
        report_load_error(exc, options)
        raise
