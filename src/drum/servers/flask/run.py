"""Run the Flask app: werkzeug's server (`--max-workers` → forked processes), or gunicorn, exec'd so its
master is the process the user started; each gunicorn worker builds the app and loads the model once.

Imported only when DRUM_SERVER_TYPE selects Flask (`pip install 'drum[flask]'`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, run_simple

from drum.config.settings import get_setting
from drum.serving.handlers import ServingContext
from drum.serving.routes import url_prefix

logger = logging.getLogger("drum.server")
ARGV_ENV = "DRUM_SERVER_ARGV"
SERVER_NAME_ENV = "DRUM_FLASK_SERVER_NAME"
BIND_ENV = "DRUM_GUNICORN_BIND"
WORKERS_ENV = "DRUM_GUNICORN_WORKERS"
GUNICORN_APP = "drum.servers.flask.run:gunicorn_app()"
GUNICORN_CONFIG = "python:drum.servers.flask.gunicorn_conf"


def load_context(options: argparse.Namespace, server_name: str, forks: bool = False) -> ServingContext:
    """The model (or the 513 error context), labelled for /info/'s drumServer; `forks`: this process forks
    a child per request (werkzeug with 2+ processes), which must not inherit polars' threads."""
    from drum.cli.server import load_context as load

    return load(options, server_name, csv_reader=not forks)


def build_app(options: argparse.Namespace, server_name: str, forks: bool = False) -> Flask:
    from drum.servers.flask.app import FlaskAppConfig, create_flask_app
    from drum.servers.flask.extensions import load_flask_extension

    extend = load_flask_extension(options.code_dir)
    config = FlaskAppConfig(
        context=load_context(options, server_name, forks),
        url_prefix=url_prefix(),
        max_upload_size=get_setting("DRUM_FASTAPI_MAX_UPLOAD_SIZE"),
        extend=extend,
    )
    return create_flask_app(config)


class TimeoutRequestHandler(WSGIRequestHandler):
    """werkzeug's handler with DRUM's socket timeout (DRUM_CLIENT_REQUEST_TIMEOUT; 0 disables it)."""

    timeout = get_setting("DRUM_CLIENT_REQUEST_TIMEOUT") or None


def run_werkzeug(options: argparse.Namespace, host: str, port: int, workers: int) -> int:
    app = build_app(options, "flask", forks=workers > 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(host, port, app, threaded=False, processes=workers, request_handler=TimeoutRequestHandler)
    return 0


def exec_gunicorn(options: argparse.Namespace, argv: list[str], host: str, port: int, workers: int) -> int:
    """Replace this process with gunicorn's master; workers rebuild the options from DRUM_SERVER_ARGV."""
    from drum.servers.flask.extensions import load_flask_extension

    load_flask_extension(options.code_dir)  # a broken extension fails here, once, before any worker starts
    os.environ.update({ARGV_ENV: json.dumps(argv), BIND_ENV: f"{host}:{port}", WORKERS_ENV: str(workers)})
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, GUNICORN_APP]
    os.execv(sys.executable, args)
    return 1  # pragma: no cover - execv does not return


def gunicorn_app() -> Flask:
    """App factory of one gunicorn worker: parse the command line again, load the model once."""
    from drum.cli.parser import parse_args
    from drum.observability.logging import setup_logging

    options = parse_args(json.loads(os.environ[ARGV_ENV]))
    setup_logging(options.logging_level or "warning")
    return build_app(options, "gunicorn")


def run_flask(server: str, options: argparse.Namespace, argv: list[str], host: str, port: int) -> int:
    """`drum server` on the Flask backend: `server` is "flask" (werkzeug) or "gunicorn"."""
    workers = max(1, int(getattr(options, "max_workers", 0) or 0))
    if server == "gunicorn":
        return exec_gunicorn(options, argv, host, port, workers)
    return run_werkzeug(options, host, port, workers)
