"""Keep large request buffers from inflating the resident set (glibc only).

glibc serves allocations above a threshold with mmap and gives them back to the system on free; but
it raises that threshold each time such a block is freed (up to 32 MiB), after which a 20 MB body,
its parsed frame and the parser's buffers come from heaps that keep the memory, per thread arena,
after the request. Fixing the threshold keeps the resident set near what requests really hold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger("drum.server")

M_MMAP_THRESHOLD = -3


def fix_mmap_threshold(threshold: int) -> bool:
    """Set glibc's mmap threshold in bytes (which also stops its dynamic growth; the server's value is
    the setting DRUM_MALLOC_MMAP_THRESHOLD); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        logger.debug("mallopt is not available", exc_info=True)
        return False
