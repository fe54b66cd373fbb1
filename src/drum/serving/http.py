"""DRUM's HTTP policy, framework-neutral: what both backends (ASGI and WSGI) do around every request.

Request id (`X-Request-ID`, else a random uuid4) echoed as `X_Request_ID` with `X-Drum-Version`; repeated
slashes merged (werkzeug's `//predict/` is `/predict/`); the body limit and its 413 answer;
Content-Length parsing; 404/405 and other framework errors in DRUM's error format; the INFO line
logged for answers >= 400. The servers only translate their framework's request and response.
"""

from __future__ import annotations

import logging
import random
import re
from http import HTTPStatus

from drum import DRUM_COMPAT_VERSION
from drum.serving.errors import METHOD_NOT_ALLOWED_TEXT, NOT_FOUND_TEXT
from drum.serving.response import ResponseData, error_response

logger = logging.getLogger("drum.server")

HEADER_REQUEST_ID = "X_Request_ID"
HEADER_DRUM_VERSION = "X-Drum-Version"
_SLASHES = re.compile("/{2,}")


def merge_slashes(path: str) -> str:
    """`//predict//` → `/predict/` (werkzeug's merge, without its redirect)."""
    return _SLASHES.sub("/", path) if "//" in path else path


def request_id(incoming: str | None) -> str:
    """The client's `X-Request-ID`, else a new random (version 4) UUID."""
    return incoming or new_request_id()


def new_request_id() -> str:
    """`str(uuid.uuid4())` at a third of its cost: 122 random bits from `random` (re-seeded in each forked
    worker) instead of 16 bytes from os.urandom, a request id's uniqueness needing no cryptography."""
    n = (random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def drum_headers(req_id: str) -> list[tuple[str, str]]:
    """The headers DRUM adds to every answer."""
    return [(HEADER_REQUEST_ID, req_id), (HEADER_DRUM_VERSION, DRUM_COMPAT_VERSION)]


def content_length(value: str | bytes | None) -> int | None:
    """The Content-Length header's value; None when absent or not a non-negative number (the body is
    then read and counted instead)."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def too_large_text(limit: int) -> str:
    return f"Request body too large. Limit is {limit} bytes"


def body_too_large(limit: int) -> ResponseData:
    """The 413 answer for a body over `limit` bytes (the connection is closed after it)."""
    return error_response(too_large_text(limit), 413, [("Connection", "close")])


def read_timed_out(seconds: float) -> ResponseData:
    """The 408 answer to a client that took too long to send its request (DRUM_REQUEST_READ_TIMEOUT)."""
    return error_response(
        f"Request timeout: the request was not received within {seconds:g} seconds", 408, [("Connection", "close")]
    )


def head_too_large(limit: int) -> ResponseData:
    """The 431 answer to a request whose target and headers exceed `limit` bytes (DRUM_MAX_HEADER_SIZE)."""
    return error_response(
        f"Request header fields too large: the request line and headers exceed {limit} bytes",
        431,
        [("Connection", "close")],
    )


def raw_response(data: ResponseData) -> bytes:
    """`data` as HTTP/1.1 bytes (for answers written below the framework, by the protocol itself)."""
    reason = HTTPStatus(data.status).phrase
    headers = [*data.headers, ("Content-Length", str(len(data.body)))]
    if data.content_type is not None:
        headers.append(("Content-Type", data.content_type))
    head = f"HTTP/1.1 {data.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + data.body


def exceeds(limit: int, length: int | None) -> bool:
    """Whether a declared body length is over the limit (0: no limit)."""
    return bool(limit) and length is not None and length > limit


def framework_error(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> ResponseData:
    """A framework's own HTTP error (unknown route, wrong method, ...) in DRUM's error format; a 405
    keeps only its `Allow` header."""
    if status == 404:
        return error_response(NOT_FOUND_TEXT, 404)
    if status == 405:
        allow = [(k, v) for k, v in headers or [] if k.lower() == "allow"]
        return error_response(METHOD_NOT_ALLOWED_TEXT, 405, allow)
    return error_response(f"{status}: {detail}", status, list(headers or []))


def log_error_answer(method: str, path: str, query: str, seconds: float, req_id: str) -> None:
    """DRUM's INFO line for an answer >= 400."""
    logger.info(
        "API [%s %s?%s] request time: %s sec, request_id: %s", method, path, query, round(seconds, 6), req_id
    )
