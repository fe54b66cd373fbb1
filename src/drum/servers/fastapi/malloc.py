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
#: Blocks from 1 MiB up are mapped (and returned to the system when freed).
MMAP_THRESHOLD = 1024 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold (which also stops its dynamic growth); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        logger.debug("mallopt is not available", exc_info=True)
        return False
