"""Run the FastAPI app under uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger("drum.server")


def serve(app: FastAPI, host: str, port: int, log_level: str = "warning") -> bool:
    """Serve until SIGINT/SIGTERM (graceful). Returns False when the server could not start."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level if log_level in ("critical", "error", "warning", "info", "debug") else "warning",
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return server.started
