"""The access log in gunicorn's format, written by a pure-ASGI middleware when each response ends.

DRUM under gunicorn logs `'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'` to stdout:

    127.0.0.1 - - [23/Nov/2026:13:33:08 +0000] "POST /predict/?x=1 HTTP/1.1" 200 27 "-" "python-requests/2.32.3"

The atoms are computed as gunicorn does: `u` is the user of a Basic `Authorization` header, `t` the
local time when the response ended, `r` the raw request target, `b` the response body bytes sent.
uvicorn's own access log must be off (it logs at response start and knows neither bytes nor headers).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER_NAME = "drum.access"
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _StdoutHandler(logging.StreamHandler):
    """A stream handler bound to the current `sys.stdout` (also when it is replaced later)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; always use sys.stdout
        pass


def access_logger() -> logging.Logger:
    """`drum.access`: plain `%(message)s` lines to stdout at INFO, not propagated to the root logger."""
    logger = logging.getLogger(ACCESS_LOGGER_NAME)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


_last_time: tuple[tuple[int, int, int], str] = ((-1, 0, 0), "")


def format_time(timestamp: float | None = None) -> str:
    """`[23/Nov/2026:13:33:08 +0000]` in local time (gunicorn's `%(t)s`, month names not localised)."""
    global _last_time
    second = int(time.time() if timestamp is None else timestamp)
    key = (second, time.timezone, time.altzone)  # the zone too: it changes with TZ and tzset()
    if _last_time[0] == key:  # one string per second
        return _last_time[1]
    now = time.localtime(second)
    offset = now.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    text = (
        f"[{now.tm_mday:02d}/{_MONTHS[now.tm_mon - 1]}/{now.tm_year}:"
        f"{now.tm_hour:02d}:{now.tm_min:02d}:{now.tm_sec:02d} {sign}{hours:02d}{minutes:02d}]"
    )
    _last_time = (key, text)
    return text


def _basic_auth_user(value: str | None) -> str | None:
    if not value or not value.lower().startswith("basic"):
        return None
    parts = value.split(" ", 1)
    if len(parts) != 2:
        return None
    try:
        return base64.b64decode(parts[1].strip().encode()).split(b":", 1)[0].decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def format_access_line(scope: Scope, status: int, sent: int | None, timestamp: float | None = None) -> str:
    """One access log line for an HTTP `scope` answered with `status` and `sent` body bytes
    (`ACCESS_LOG_FORMAT`; a header sent more than once is joined with commas, as WSGI does)."""
    auth = referer = agent = None
    for key, value in scope.get("headers") or ():  # ASGI header names are lower case
        if key == b"user-agent":
            agent = value if agent is None else agent + b"," + value
        elif key == b"referer":
            referer = value if referer is None else referer + b"," + value
        elif key == b"authorization":
            auth = value if auth is None else auth + b"," + value
    client = scope.get("client")
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
    target = raw_path.decode("latin-1")
    query = scope.get("query_string") or b""
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    user = (_basic_auth_user(auth.decode("latin-1")) if auth is not None else None) or "-"
    return (
        f"{client[0] if client else '-'} - {user} {format_time(timestamp)} "
        f"\"{scope.get('method', '-')} {target} HTTP/{scope.get('http_version', '1.1')}\" {status} "
        f"{'-' if sent is None else sent} \"{'-' if referer is None else referer.decode('latin-1')}\" "
        f"\"{'-' if agent is None else agent.decode('latin-1')}\""
    )


class AccessLog:
    """Writes access lines through `drum.access`; while that logger is as `access_logger` set it up (one
    plain stdout handler, no filters, INFO enabled), the lines of one turn of the event loop go to stdout
    in one write instead (the same text, a logging record per line is most of a line's cost). A logging
    configuration of the user's (handlers, filters, formatters, levels) sees every line as a record."""

    def __init__(self) -> None:
        self.logger = access_logger()
        self.handler = next(h for h in self.logger.handlers if isinstance(h, _StdoutHandler))
        self.pending: list[str] = []
        atexit.register(self.flush)  # lines of a loop that stopped before its next turn

    def _plain(self) -> bool:
        logger, handler = self.logger, self.handler
        formatter = handler.formatter
        return (
            logger.handlers == [handler] and not logger.filters and not handler.filters
            and handler.level <= logging.INFO and logger.isEnabledFor(logging.INFO)
            and type(formatter) is logging.Formatter and formatter._fmt == "%(message)s"
        )  # fmt: skip

    def log(self, scope: Scope, status: int, sent: int | None) -> None:
        """The line of a request answered with `status` and `sent` body bytes (None: none sent)."""
        try:
            line = format_access_line(scope, status, sent)
            if not self._plain():
                self.logger.info(line)
                return
            if not self.pending:
                try:
                    asyncio.get_running_loop().call_soon(self.flush)
                except RuntimeError:  # no event loop: now
                    self.pending.append(line)
                    self.flush()
                    return
            self.pending.append(line)
        except Exception:  # noqa: BLE001 - logging must never break a response
            logging.getLogger("drum.server").debug("Could not write the access log line", exc_info=True)

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        if not lines:
            return
        try:
            stream = sys.stdout
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001
            logging.getLogger("drum.server").debug("Could not write the access log lines", exc_info=True)


class AccessLogMiddleware:
    """Pure ASGI: after each HTTP response, one gunicorn-format line through the `drum.access` logger.

    With `enabled=False` it only passes requests through. A request whose app raised before
    answering is logged as 500 with `-` bytes (the status the server then sends).
    """

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.log = AccessLog() if enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.log is None:
            await self.app(scope, receive, send)
            return
        status: int | None = None
        sent = 0
        head = scope.get("method") == "HEAD"  # the server drops a HEAD body; gunicorn counts 0

        async def send_counting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not head:
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.log.log(scope, 500 if status is None else status, None if status is None else sent)
