"""Logging set-up in DRUM's format; every record carries the current request id."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

#: The current request's id, set by the server middleware; hooks' log records carry it.
request_id_var: ContextVar[str | None] = ContextVar("drum_request_id", default=None)

LOG_FORMAT = "%(asctime)-15s %(levelname)s %(name)s:  %(message)s %(context_data)s"
LEVELS = {
    "all": logging.NOTSET,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.FATAL,
}


class RequestContextFilter(logging.Filter):
    """Adds `context_data` (`{'request_id': ...}` inside a request, else empty) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        record.context_data = {"request_id": request_id} if request_id else ""
        return True


def setup_logging(level: str = "warning") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), logging.WARNING))
