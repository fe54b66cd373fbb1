"""Bound how much freed memory glibc keeps for reuse (glibc only).

glibc serves allocations above its mmap threshold with mmap and gives them back on free, so each
large request faults its memory in afresh (~12,000 page faults, ~15 ms of a 100,000-row CSV); blocks
below it come from per-thread heaps that keep freed memory up to the trim threshold. By default glibc
raises the mmap threshold each time such a block is freed (up to 32 MiB, the trim threshold to twice
that), after which the heaps of every thread keep several times the largest body.

`fix_mmap_threshold(t)` fixes the mmap threshold at `t` (which stops glibc's adjustments) and the trim
threshold at `TRIM_FACTOR * t`: most of a CSV parser's buffers are reused from request to request,
a large body (which the server receives into huge pages, see `protocol.py`) is given back, and each
heap keeps at most a few times `t`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger("drum.server")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The trim threshold, as a multiple of the mmap threshold.
TRIM_FACTOR = 4


def fix_mmap_threshold(threshold: int) -> bool:
    """Set glibc's mmap threshold to `threshold` bytes and its trim threshold to `TRIM_FACTOR` times that
    (the server's value is the setting DRUM_MALLOC_MMAP_THRESHOLD); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, threshold * TRIM_FACTOR)
        )
    except (OSError, AttributeError):
        logger.debug("mallopt is not available", exc_info=True)
        return False
