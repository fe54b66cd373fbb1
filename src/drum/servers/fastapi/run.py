"""Run the FastAPI app under uvicorn: one in-process server, or N supervised worker processes.

With N > 1 workers uvicorn's supervisor owns the socket, starts each worker with an app factory
(an import string; each worker loads the model once in its lifespan) and
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
from uvicorn.supervisors import Multiprocess

from drum.config.settings import get_setting
from drum.servers.fastapi.protocol import WholeBodyHttpToolsProtocol

logger = logging.getLogger("drum.server")
UVICORN_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


__all__ = ["STARTUP_FAILURE", "ServeResult", "serve", "serve_workers"]


@dataclass
class ServeResult:
    started: bool
    failed_workers: int = 0


def event_loop() -> str:
    """DRUM_UVICORN_LOOP with its fallback: uvloop that is not installed → asyncio, with a warning."""
    loop = get_setting("DRUM_UVICORN_LOOP")
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        logger.warning("DRUM_UVICORN_LOOP=uvloop but uvloop is not installed (pip install uvloop); using asyncio")
        return "asyncio"
    return loop


def tls_options() -> dict[str, Any]:
    """uvicorn's TLS options from DRUM_SSL_* (TLS 1.2 minimum; the password never leaves this process)."""
    certfile = get_setting("DRUM_SSL_CERTFILE")
    keyfile = get_setting("DRUM_SSL_KEYFILE")
    if not certfile:
        if keyfile:
            logger.warning("DRUM_SSL_KEYFILE is set without DRUM_SSL_CERTFILE; serving plain HTTP")
        return {}
    ca_certs = get_setting("DRUM_SSL_CA_CERTS")
    options: dict[str, Any] = {
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        "ssl_keyfile_password": get_setting("DRUM_SSL_KEYFILE_PASSWORD"),
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


def uvicorn_config(app: Any, host: str, port: int, log_level: str, workers: int = 1, **extra: Any) -> uvicorn.Config:
    max_requests = get_setting("DRUM_UVICORN_MAX_REQUESTS")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        loop=event_loop(),
        log_config=None,
        log_level=log_level if log_level in UVICORN_LOG_LEVELS else "warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        # httptools receiving large bodies whole (protocol.py), else uvicorn's choice
        http=WholeBodyHttpToolsProtocol or "auto",
        backlog=get_setting("DRUM_WEBSERVER_BACKLOG"),
        timeout_keep_alive=get_setting("DRUM_UVICORN_KEEP_ALIVE"),
        timeout_graceful_shutdown=get_setting("DRUM_UVICORN_GRACEFUL_TIMEOUT"),
        limit_max_requests=max_requests if max_requests and workers > 1 else None,
        limit_max_requests_jitter=max(1, max_requests // 10) if max_requests and workers > 1 else 0,
        **tls_options(),
        **extra,
    )


def serve(app: Any, host: str, port: int, log_level: str = "warning") -> ServeResult:
    """One process: serve until SIGINT/SIGTERM (graceful)."""
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level))
    # uvicorn re-raises the signal it stopped on to the previous handler: make SIGTERM's a no-op so a
    # graceful stop exits 0 instead of being killed by the default handler.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ServeResult(server.started)


def serve_workers(
    factory: str, workers: int, host: str, port: int, log_level: str, environ: dict[str, str]
) -> ServeResult:
    """N worker processes under uvicorn's supervisor; `environ` carries the DRUM options to workers."""
    os.environ.update(environ)
    config = uvicorn_config(factory, host, port, log_level, workers=workers, factory=True)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    failed = sum(1 for p in supervisor.processes if p.exitcode == STARTUP_FAILURE)
    return ServeResult(True, failed)
