"""Memory of large request bodies: `BodyBuffer`, a `bytes` object written in place as its body arrives, and
`BodyPool`, the memory of answered bodies kept for the next ones.

A body in fresh memory pays for its page faults and for the kernel zeroing each page. For 10 MB bodies on
8 connections, that was a quarter of the server's CPU. On a virtual machine that hands freed memory back to
its host, memory touched again after an idle second or two also pays the host's faults. On Firecracker,
with free page reporting, the first answers to 8 connections after a pause took 120-200 ms against 30-50 ms
later on. DRUM's single sync worker does not pay this: one body at a time, in a heap glibc keeps.

The pool keeps bodies' `bytes` objects that nothing refers to any more, up to a byte limit (the body
budget), and the next body of at most that size is written into one of them. Nothing can see the object
change: only the pool holds it (its reference count says so). Its length is set to the new body's, its
cached hash cleared and its terminating NUL moved. This relies on CPython's layout of `bytes`, which is
checked at import; where it differs, the pool keeps nothing.
"""

from __future__ import annotations

import ctypes
import sys

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
    """Ask for transparent huge pages over the buffer's whole 2 MiB pages: faulting fresh memory in 2 MiB
    at a time instead of 4 KiB is several times cheaper."""
    start = (address + _HUGE - 1) & ~(_HUGE - 1)
    end = (address + size) & ~(_HUGE - 1)
    if _madvise is not None and end > start:
        _madvise(start, end - start, MADV_HUGEPAGE)


def new_body_bytes(size: int) -> bytes:
    """A `bytes` object of `size` bytes, not yet written, over huge pages where they fit."""
    data: bytes = _new_bytes(None, size)
    _huge_pages(_bytes_address(data), size)
    return data


# PyBytesObject: reference count and type, ob_size, ob_shash, then the bytes (ob_sval) and a NUL.
_WORD = ctypes.sizeof(ctypes.c_ssize_t)
_SIZE_AT, _HASH_AT, _BYTES_AT = 2 * _WORD, 3 * _WORD, 4 * _WORD


def _layout_is_cpythons() -> bool:
    """Whether `bytes` objects are laid out as `_set_length` writes them (CPython's default build)."""
    if sys.implementation.name != "cpython" or bytes.__basicsize__ != _BYTES_AT + 1:
        return False
    probe = _new_bytes(b"layout probe", 12)
    address, cached_hash = id(probe), hash(probe)
    return (
        _bytes_address(probe) == address + _BYTES_AT
        and ctypes.c_ssize_t.from_address(address + _SIZE_AT).value == 12
        and ctypes.c_ssize_t.from_address(address + _HASH_AT).value == cached_hash
    )


REUSABLE = _layout_is_cpythons()


def _set_length(data: bytes, size: int) -> None:
    """Make `data` (held by nobody else, allocated for at least `size` bytes) `size` bytes long."""
    address = id(data)
    ctypes.c_ssize_t.from_address(address + _SIZE_AT).value = size
    ctypes.c_ssize_t.from_address(address + _HASH_AT).value = -1
    ctypes.c_char.from_address(address + _BYTES_AT + size).value = b"\0"


def _references(entry: list) -> int:
    """References to a pool entry's object, counted the same way for the calibration and the pool."""
    return sys.getrefcount(entry[0])


#: What `_references` gives for an object that only its pool entry holds.
_ONLY_THE_POOL = _references([_new_bytes(None, 8), 8])


class BodyPool:
    """Bodies' `bytes` objects kept for reuse, their capacities summing to at most `limit` bytes. `buffer`
    gives the smallest kept object of at least the size that nothing else refers to, made that long, or
    a new one (kept too, when the limit allows after dropping free smaller ones). Used from one thread
    (the event loop's)."""

    #: Bodies smaller than this come from glibc's heaps, which reuse their memory already.
    MIN_SIZE = 1 << 20

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = 0
        self._entries: list[list] = []  # [bytes object, capacity]

    def buffer(self, size: int) -> bytes:
        if size < self.MIN_SIZE or not REUSABLE:
            return new_body_bytes(size)
        best = None
        for entry in self._entries:
            if entry[1] >= size and (best is None or entry[1] < best[1]) and _references(entry) <= _ONLY_THE_POOL:
                best = entry
        if best is not None:
            _set_length(best[0], size)
            return best[0]
        data = new_body_bytes(size)
        self._keep(data, size)
        return data

    def _keep(self, data: bytes, size: int) -> None:
        if self.kept + size > self.limit:
            free = sorted((e for e in self._entries if _references(e) <= _ONLY_THE_POOL), key=lambda e: e[1])
            for entry in free:
                if self.kept + size <= self.limit:
                    break
                self._entries.remove(entry)
                self.kept -= entry[1]
        if self.kept + size <= self.limit:
            self._entries.append([data, size])
            self.kept += size


class BodyBuffer:
    """A request body of known size, written in place as it arrives. Its memory (`data`, a `bytes` object
    whose first `received` bytes are the body so far; nothing else holds it until the body is complete)
    is taken from `pool` (or fresh) by `allocate`, once the body may be read: pieces written before that
    (those that came with the request's head) are kept aside and copied in then."""

    def __init__(self, size: int, pool: BodyPool | None = None) -> None:
        self.size = size
        self.received = 0
        self._pool = pool
        self._data: bytes | None = None
        self._address = 0
        self._early: list[bytes] = []

    def allocate(self) -> bool:
        """Take the body's memory (False: there is none to be had)."""
        if self._data is None:
            try:
                self._data = self._pool.buffer(self.size) if self._pool is not None else new_body_bytes(self.size)
            except MemoryError:
                return False
            self._address = _bytes_address(self._data)
            at = self._address
            for piece in self._early:
                ctypes.memmove(at, piece, len(piece))
                at += len(piece)
            self._early = []
        return True

    @property
    def allocated(self) -> bool:
        return self._data is not None

    @property
    def data(self) -> bytes:
        if self._data is None and not self.allocate():
            raise MemoryError(f"no memory for a request body of {self.size} bytes")
        assert self._data is not None
        return self._data

    def early(self) -> bytes:
        """What was written before `allocate` (for a body read in pieces after all)."""
        return b"".join(self._early)

    def free(self) -> memoryview:
        """The part of the body not yet received, writable in place (a socket reads straight into it)."""
        assert self._data is not None, "allocate() first"
        free = (ctypes.c_ubyte * (self.size - self.received)).from_address(self._address + self.received)
        return memoryview(free).cast("B")

    def write(self, chunk: bytes) -> bool:
        """Append `chunk`; False (nothing written) when it would overflow the declared size."""
        n = len(chunk)
        if self.received + n > self.size:
            return False
        if self._data is None:
            self._early.append(bytes(chunk))
        else:
            ctypes.memmove(self._address + self.received, chunk, n)
        self.received += n
        return True

    @property
    def complete(self) -> bool:
        return self.received == self.size
