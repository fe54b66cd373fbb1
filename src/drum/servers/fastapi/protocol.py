"""uvicorn's httptools protocol, receiving large request bodies whole.

uvicorn hands a body to the app in socket-read pieces (256 KiB): each is copied three times
(parser, per-cycle bytearray, `bytes()` in `receive`), reading pauses after 64 KiB until the app
asks for more, and the app's task wakes once per piece. A 20 MB CSV spent ~22 ms there on a
2-core machine, twice what the socket needs. For a request whose Content-Length lies between
`WHOLE_BODY_MIN_BYTES` and the upload limit, this protocol writes each piece once, straight into
one `bytes` object of that length (allocated lazily by the system: pages are touched only as data
arrives), reads without pausing, and wakes the app once: `receive()` returns that very object, so
the app gets the body without another copy. Smaller bodies, chunked bodies and the streamed
prefixes (the backend proxy forwards those as they arrive) keep uvicorn's behaviour.

(Parsing a CSV body's first parts while the rest arrives was tried and measured no faster on 2
CPUs: the parser threads and the receiving loop then contend for the same cores.)
"""

from __future__ import annotations

import ctypes
import logging
from functools import lru_cache
from typing import Any

from drum.config.settings import get_setting
from drum.serving.routes import STREAMED_PREFIXES, url_prefix

logger = logging.getLogger("drum.server")

#: Bodies at least this large (by Content-Length) are received whole.
WHOLE_BODY_MIN_BYTES = 1 << 18

# CPython's C API: a bytes object of a given size whose contents are written before anyone reads it.
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
_bytes_address = ctypes.pythonapi.PyBytes_AsString
_bytes_address.restype = ctypes.c_void_p
_bytes_address.argtypes = [ctypes.py_object]


_HUGE = 1 << 21
MADV_HUGEPAGE = 14
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _madvise = None


def _huge_pages(address: int, size: int) -> None:
    """Ask for transparent huge pages over the buffer's whole 2 MiB pages: its memory is fresh for
    each body, and faulting it in 2 MiB at a time instead of 4 KiB is several times cheaper."""
    start = (address + _HUGE - 1) & ~(_HUGE - 1)
    end = (address + size) & ~(_HUGE - 1)
    if _madvise is not None and end > start:
        _madvise(start, end - start, MADV_HUGEPAGE)


class BodyBuffer:
    """A request body of known size, written in place as it arrives. `data` is a `bytes` object
    whose first `received` bytes are the body so far (the rest is not yet written; nothing else
    holds it until the body is complete)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: bytes = _new_bytes(None, size)
        self._address: int = _bytes_address(self.data)
        _huge_pages(self._address, size)
        self.received = 0

    def write(self, chunk: bytes) -> bool:
        """Append `chunk`; False (nothing written) when it would overflow the declared size."""
        n = len(chunk)
        if self.received + n > self.size:
            return False
        ctypes.memmove(self._address + self.received, chunk, n)
        self.received += n
        return True

    @property
    def complete(self) -> bool:
        return self.received == self.size


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools not installed: uvicorn's h11 protocol serves
    HttpToolsProtocol = None


@lru_cache(maxsize=1)
def _settings() -> tuple[int, tuple[str, ...]]:
    prefix = url_prefix()
    return get_setting("DRUM_FASTAPI_MAX_UPLOAD_SIZE"), tuple(prefix + p for p in STREAMED_PREFIXES)


if HttpToolsProtocol is not None:

    class WholeBodyHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol receiving bodies of `WHOLE_BODY_MIN_BYTES` up to the upload limit
        whole, except under the streamed prefixes (both from the settings, read in each worker process:
        the class travels to workers by name)."""

        #: Largest body received whole (0: no bound) and the paths never received whole; None: the settings.
        max_body: int | None = None
        streamed_prefixes: tuple[str, ...] | None = None
        _whole: BodyBuffer | None = None
        _whole_cycle: Any = None

        def on_headers_complete(self) -> None:
            self._whole = self._whole_cycle = None
            super().on_headers_complete()
            cycle = self.cycle
            max_body, prefixes = _settings()
            max_body = max_body if self.max_body is None else self.max_body
            prefixes = prefixes if self.streamed_prefixes is None else self.streamed_prefixes
            if cycle is None or cycle.scope is not self.scope or self.scope["path"].startswith(prefixes):
                return
            size = _content_length(self.scope["headers"])
            if size < WHOLE_BODY_MIN_BYTES or (max_body and size > max_body):
                return
            try:
                buffer = BodyBuffer(size)
            except MemoryError:
                return
            self._whole, self._whole_cycle = buffer, cycle

        def on_body(self, body: bytes) -> None:
            buffer = self._whole
            if buffer is None or self.cycle is not self._whole_cycle:
                super().on_body(body)
                return
            if self.cycle.response_complete:
                return
            if not buffer.write(body):  # more than Content-Length: cannot happen with httptools
                self._whole = None
                self.cycle.body += memoryview(buffer.data)[: buffer.received]
                super().on_body(body)

        def on_message_complete(self) -> None:
            buffer = self._whole
            if buffer is not None and self.cycle is self._whole_cycle and buffer.complete:
                self.cycle.body = buffer.data  # receive() returns bytes(data): this very object
            self._whole = self._whole_cycle = None
            super().on_message_complete()

else:  # pragma: no cover
    WholeBodyHttpToolsProtocol = None


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return -1
