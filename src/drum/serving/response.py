"""`ResponseData`: what handlers return; servers only copy it onto their framework's response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"


@dataclass
class ResponseData:
    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: When set, the body is streamed from this iterator (run off the event loop) instead of `body`.
    stream: Iterator[bytes] | None = None
    #: An async stream (proxied backend bytes), sent from the event loop; servers that cannot, refuse.
    astream: AsyncIterator[bytes] | None = None


def json_bytes(obj: Any) -> bytes:
    """Serialise like Flask's JSON provider: sorted keys, compact, ASCII, trailing newline."""
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default) + "\n").encode()


def _default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> ResponseData:
    return ResponseData(status, json_bytes(obj), JSON, list(headers or []))


def error_response(message: str, status: int, headers: list[tuple[str, str]] | None = None) -> ResponseData:
    """DRUM's error body: `{"message": "ERROR: ..."}`."""
    return json_response({"message": f"ERROR: {message}"}, status, headers)
