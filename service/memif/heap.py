"""Keep the C heap from shrinking and growing again around every received burst.

A burst of large packets becomes hundreds of bytes objects of 1–9 KB, each
one ``malloc`` below the allocator's mmap threshold. When the caller drops the
burst they coalesce into free memory at the top of the heap, and glibc hands
everything above its trim threshold (128 KiB by default) back to the kernel;
the next burst takes a page fault for every 4 KiB it writes. At 1500 B that
cost a quarter of a fault per packet and more than half of the receive rate.

glibc raises both thresholds on its own once the process frees a block that
was big enough to be mapped on its own (mallopt(3), "dynamic mmap threshold"):
the mmap threshold becomes that block's size and the trim threshold twice
that. :func:`reserve` makes and frees one such block, sized from the largest
burst seen so far, so a burst's memory stays in the heap for the next one.
It costs one ``mmap``/``munmap`` pair per doubling (the block is ``calloc``'d,
never touched) and keeps at most :data:`MAX_RESERVE` × 2 of free heap; other
allocators simply free the block again.
"""

from __future__ import annotations

from typing import Final

MIN_RESERVE: Final = 1 << 20
# glibc adapts to freed blocks of up to 32 MiB, allocator overhead included
# (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit); stay a little below.
MAX_RESERVE: Final = (32 << 20) - (64 << 10)

covered = 0
"""Burst bytes the heap already keeps room for; :func:`reserve` raises it."""


def reserve(burst_bytes: int) -> None:
    """Make the heap keep at least four bursts of ``burst_bytes`` free between bursts."""
    global covered
    if burst_bytes <= covered or covered >= MAX_RESERVE // 2:
        return
    size = min(MAX_RESERVE, max(MIN_RESERVE, 1 << (2 * burst_bytes - 1).bit_length()))
    block = bytes(size)  # calloc of fresh mapped pages: nothing is written
    del block
    covered = size // 2
