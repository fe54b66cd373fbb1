"""Logging set-up in DRUM's format (or JSON lines with `DRUM_JSON_LOGGING`); every record carries the
current request id."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import datetime, timezone

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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, `Z`), level, logger, message, module, function, line,
    and `request_id` / `exception` when there are."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        entry = {
            "timestamp": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "warning", json_format: bool = False) -> None:
    """Root handler on stderr at `level` (`--logging-level`); JSON lines when `json_format`
    (the `DRUM_JSON_LOGGING` setting)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), logging.WARNING))
