"""Run the Flask app: werkzeug's server (`--max-workers` → forked processes), or gunicorn, exec'd so its
master is the process the user started; each gunicorn worker builds its app (and runtime) itself.

Imported only when DRUM_SERVER_TYPE selects Flask (`pip install 'drum[flask]'`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, run_simple

from drum.config.server_config import CONFIG_ENV, ServerConfig

logger = logging.getLogger("drum.server")


def request_handler(timeout: int) -> type[WSGIRequestHandler]:
    """werkzeug's handler with DRUM's socket timeout (DRUM_CLIENT_REQUEST_TIMEOUT; 0 disables it)."""
    return type("TimeoutRequestHandler", (WSGIRequestHandler,), {"timeout": timeout or None})


def run_werkzeug(app: Flask, config: ServerConfig) -> int:
    """Serve `app` with werkzeug until SIGTERM; 2+ workers fork a process per request."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handler = request_handler(config.settings.request_timeout)
    run_simple(config.host, config.port, app, threaded=False, processes=config.workers, request_handler=handler)
    return 0


def exec_gunicorn(app_factory: str, conf: str, config: ServerConfig, environ: dict[str, str]) -> int:
    """Replace this process with gunicorn's master serving `app_factory` (gunicorn's `module:callable()`)
    with the configuration module `conf`; `config` (as CONFIG_ENV) and `environ` reach its workers."""
    os.environ.update({**environ, CONFIG_ENV: config.to_json()})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", conf, app_factory])
    return 1  # pragma: no cover - execv does not return
