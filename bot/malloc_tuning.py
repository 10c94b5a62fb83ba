"""The C allocator, set once so the large arrays a cycle frees go back to the system.

A cycle allocates and frees arrays of hundreds of kilobytes to hundreds of megabytes (each
answer's samples, the frames' columns, the peer rows), every cycle anew. glibc's ``malloc``
serves a block that large with its own ``mmap``, returned to the system when freed, but only up
to a threshold that it raises to the size of every such block freed (up to 32 MiB): after the
first cycle, most of the next cycle's arrays come from the heap instead, where a freed block
stays resident until everything above it is freed too. A bot that has run a few cycles then
holds the high-water mark of its cycles' arrays, fragmented, on top of what it still uses.

:func:`tune` fixes the threshold at :data:`MMAP_THRESHOLD` (4 MiB), which also turns that
adjustment off (``mallopt(M_MMAP_THRESHOLD)``; the ``MALLOC_MMAP_THRESHOLD_`` environment
variable does the same): every block of 4 MiB or more (at a large fleet, every column of the
frames) is mapped and unmapped on its own, smaller ones are reused from the heap as before.
Measured 2026-12-07 (``benchmarks/results/README.md``, forty-fourth session): at 100,000 GPUs a
steady bot's peak RSS 4,321–4,460 → 4,044 MB (at 128 KiB, glibc's initial value: 3,971–3,982
MB); a 10,000-GPU cold fit's peak 1,810–1,925 → 1,577–1,600 MB (128 KiB: 1,454–1,477 MB). A
lower threshold costs time: each block mapped anew is zeroed page by page, and at 128 KiB the
10,000-GPU fit took 55 s instead of 45 (three alternating pairs), at 4 MiB about 50 s.

Called by the ``gpu-risk`` entry point (``bot.cli.main``) before any command runs, beside
``bot.gc_tuning``. It does nothing where the C library is not glibc (musl has no such
threshold) and when the operator set ``MALLOC_MMAP_THRESHOLD_`` (their choice stands).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

__all__ = ["MMAP_THRESHOLD", "glibc", "tune"]

logger = logging.getLogger(__name__)

#: Blocks at least this large are mapped on their own and unmapped when freed, fixed instead of
#: raised as blocks are freed (glibc starts at 128 KiB: less memory, more time zeroing pages).
MMAP_THRESHOLD = 4 * 1024 * 1024

#: ``mallopt``'s parameter number for the threshold (glibc's ``malloc.h``).
_M_MMAP_THRESHOLD = -3


def tune() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (process-wide; idempotent).

    Returns whether it was set: False on another C library or platform, or when
    ``MALLOC_MMAP_THRESHOLD_`` is set in the environment (glibc read it at start-up)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        logger.warning("the C allocator refused an mmap threshold of %d bytes", MMAP_THRESHOLD)
        return False
    return True


def glibc() -> bool:
    """Whether this process runs on glibc on Linux (where :func:`tune` can set anything)."""
    return _glibc() is not None


def _glibc() -> ctypes.CDLL | None:
    """The process's own C library when it is glibc on Linux (musl's ``mallopt`` sets nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None
