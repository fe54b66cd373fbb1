"""Run the FastAPI app under uvicorn: one in-process server, or N supervised worker processes.

With N > 1 workers uvicorn's supervisor owns the socket, starts each worker with an app factory
(an import string, `drum.cli.worker`; each worker starts its runtime, loading the model, in its lifespan) and
replaces workers that die; a worker that fails to start stops the whole server. SIGTERM stops
accepting connections and lets in-flight requests finish (DRUM_UVICORN_GRACEFUL_TIMEOUT).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.supervisors import Multiprocess

from drum.config.server_config import CONFIG_ENV, ServerConfig
from drum.config.settings import Settings
from drum.servers.fastapi.app import DrumApp
from drum.servers.fastapi.fastpath import FastFront
from drum.servers.fastapi.protocol import WholeBodyHttpToolsProtocol

logger = logging.getLogger("drum.server")
UVICORN_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


__all__ = ["STARTUP_FAILURE", "ServeResult", "serve", "serve_reload", "serve_workers"]


@dataclass
class ServeResult:
    started: bool
    failed_workers: int = 0


def event_loop(loop: str) -> str:
    """DRUM_UVICORN_LOOP with its fallback: uvloop that is not installed → asyncio, with a warning."""
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        logger.warning("DRUM_UVICORN_LOOP=uvloop but uvloop is not installed (pip install uvloop); using asyncio")
        return "asyncio"
    return loop


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options from DRUM_SSL_* (TLS 1.2 minimum; the password never leaves this process)."""
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if not certfile:
        if keyfile:
            logger.warning("DRUM_SSL_KEYFILE is set without DRUM_SSL_CERTFILE; serving plain HTTP")
        return {}
    ca_certs = settings.ssl_ca_certs
    options: dict[str, Any] = {
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        "ssl_keyfile_password": settings.ssl_keyfile_password,
        "ssl_ca_certs": ca_certs,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if ca_certs else ssl.CERT_NONE,
        "ssl_context_factory": _tls12_minimum,
    }
    logger.info("TLS enabled: cert=%s key=%s client certificates=%s", certfile, keyfile, bool(ca_certs))
    return options


def _tls12_minimum(config: uvicorn.Config, default_factory: Any) -> ssl.SSLContext:
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class DrumUvicornConfig(uvicorn.Config):
    """uvicorn's Config whose loaded app (also in each worker process) is DRUM's app behind `FastFront`."""

    def load(self) -> None:
        super().load()
        loaded = self.loaded_app
        app = loaded.app if isinstance(loaded, ProxyHeadersMiddleware) else loaded
        if isinstance(app, DrumApp):  # not under uvicorn's TRACE message logger: that sees every message
            self.loaded_app = FastFront(loaded, app)


def uvicorn_config(app: Any, config: ServerConfig, **extra: Any) -> uvicorn.Config:
    """uvicorn's Config for `config` (`app`: the app, or a factory's import string with factory=True)."""
    s = config.settings
    supervised = config.workers > 1
    max_requests = s.uvicorn_max_requests if supervised else 0
    level = config.logging_level
    return DrumUvicornConfig(
        app,
        host=config.host,
        port=config.port,
        workers=config.workers,
        loop=event_loop(s.uvicorn_loop),
        log_config=None,
        log_level=level if level in UVICORN_LOG_LEVELS else "warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        # httptools receiving large bodies whole (protocol.py), else uvicorn's choice
        http=WholeBodyHttpToolsProtocol or "auto",
        backlog=s.backlog,
        timeout_keep_alive=s.uvicorn_keep_alive,
        timeout_graceful_shutdown=s.uvicorn_graceful_timeout,
        limit_max_requests=max_requests or None,
        limit_max_requests_jitter=max(1, max_requests // 10) if max_requests else 0,
        **tls_options(s),
        **extra,
    )


def serve(app: Any, config: ServerConfig) -> ServeResult:
    """One process: serve until SIGINT/SIGTERM (graceful)."""
    server = uvicorn.Server(uvicorn_config(app, config))
    # uvicorn re-raises the signal it stopped on to the previous handler: make SIGTERM's a no-op so a
    # graceful stop exits 0 instead of being killed by the default handler.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ServeResult(server.started)


def serve_workers(factory: str, config: ServerConfig, environ: dict[str, str]) -> ServeResult:
    """`config.workers` processes under uvicorn's supervisor, each building its app with `factory` (an
    import string); `config` (as CONFIG_ENV) and `environ` reach them in their environment."""
    os.environ.update({**environ, CONFIG_ENV: config.to_json()})
    uv_config = uvicorn_config(factory, config, factory=True)
    supervisor = Multiprocess(uv_config, sockets=[uv_config.bind_socket()])
    supervisor.run()
    failed = sum(1 for p in supervisor.processes if p.exitcode == STARTUP_FAILURE)
    return ServeResult(True, failed)


#: Files of a code dir whose change restarts a `--reload` server (compiled Python is never watched).
RELOAD_PATTERNS = ["*.py", "*.R", "*.r", "*.pkl", "*.joblib", "*.yaml", "*.yml", "*.json", "*.onnx", "*.pth",
                   "*.h5", "*.jar", "*.mojo", "*.txt", "*.csv"]  # fmt: skip


def serve_reload(factory: str, config: ServerConfig, environ: dict[str, str]) -> ServeResult:
    """`drum server --reload`: one worker process, started again by uvicorn's watchfiles supervisor whenever
    a file of the code dir changes; `config` and `environ` reach it as in `serve_workers`."""
    from uvicorn.supervisors import ChangeReload

    os.environ.update({**environ, CONFIG_ENV: config.to_json()})
    uv_config = uvicorn_config(
        factory, config, factory=True, reload=True, reload_dirs=[config.code_dir], reload_includes=RELOAD_PATTERNS
    )
    server = uvicorn.Server(uv_config)
    ChangeReload(uv_config, target=server.run, sockets=[uv_config.bind_socket()]).run()
    return ServeResult(True)

