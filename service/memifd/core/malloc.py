"""glibc malloc tuned for a server whose threads handle large messages now and then.

By default glibc gives threads their own arenas (up to eight per core) and
serves a large block from the heap once a block of that size was freed (the
mmap threshold adapts upwards, to 32 MiB). Freed memory then stays in the
arenas: after bursts of large packet batches on many gRPC threads memifd
would keep hundreds of MiB it no longer uses. :func:`tune` caps the arenas
and pins the mmap threshold, so every large block is mapped on its own and
unmapped when it is freed. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger("memifd")

# mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2  # the worker and the API threads rarely allocate at the same instant
# Blocks this large or larger are mapped, and unmapped when freed. gRPC reads messages in
# pieces of tens to hundreds of KiB; with 1 MiB here memifd kept about 100 MiB more after
# a burst of large batches (tests/reliability/test_service_grpc_memory.py).
MMAP_THRESHOLD = 64 << 10


def tune(arenas: int = ARENAS, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Apply the caps (unless ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` set them
    already); True when glibc took them."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        done = mallopt(M_ARENA_MAX, arenas) == 1 and done
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and done
    if not done:
        log.warning("cannot tune malloc (mallopt refused): memory may grow under load")
    return done
