"""Keeping freed memory for reuse: a network's large temporaries on CPU, allocated and freed on every forward pass.

With glibc's defaults (Linux), a block above the mmap threshold (128 KiB at first, raised as such blocks are
freed) is mapped from the kernel when allocated and unmapped when freed, and free memory at the top of the heap is
returned to the kernel above the trim threshold; either way each forward pass faults its temporaries' pages in
again, and how often depends on the process's allocation history, so the same network runs at different speeds in
different processes. :func:`retain_freed_memory` fixes both thresholds high, so that the temporaries of one batch
are reused by the next (docs: measured.md gives the speed-ups). It changes the allocator of the whole process: the
command line calls it; a program of your own may call it once at start.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameters (``malloc.h``)."""

MMAP_THRESHOLD = 32 << 20
"""Blocks at most this large come from the heap (glibc's largest allowed mmap threshold on 64-bit systems)."""

TRIM_THRESHOLD = 1 << 30
"""Free memory at the top of the heap is kept up to this much instead of being returned to the kernel."""


def retain_freed_memory() -> bool:
    """Set glibc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to :data:`TRIM_THRESHOLD` for
    this process (both fixed: setting either one alone stops glibc's own adjustment and runs slower). Guarantee:
    afterwards a freed block of at most :data:`MMAP_THRESHOLD` bytes is reused by a later allocation without the
    kernel mapping it again. Returns whether it was applied: False where the C library has no ``mallopt`` (not
    glibc: macOS, Windows, musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: no search for the library (no subprocess)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
