"""Shared memory regions: create and seal them (client), check and map them (server).

A region is a memfd sealed with ``F_SEAL_SHRINK`` so the peer cannot shrink it
under our mapping (touching a page past a shrunk end raises SIGBUS, which
kills a Python process). A received region is checked for size and seals
*before* it is mapped.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from dataclasses import dataclass

from .constants import DESC_SIZE, MAX_REGION_SIZE, RING_HEADER_SIZE
from .errors import LocalProtocolError, RegionError

_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL


class Region:
    """One mapped region; owns its fd and mapping until :meth:`close`."""

    __slots__ = ("fd", "index", "map", "sealed", "size")

    def __init__(self, index: int, fd: int, size: int, sealed: bool) -> None:
        self.index = index
        self.fd = fd
        self.size = size
        self.sealed = sealed
        self.map: mmap.mmap | None = mmap.mmap(
            fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )

    def mapping(self) -> mmap.mmap:
        """The mapping; raises :class:`LocalProtocolError` once closed."""
        if self.map is None:
            raise LocalProtocolError(f"region {self.index} is closed")
        return self.map

    def close(self) -> None:
        """Close the fd and drop our reference to the mapping.

        The mapping itself is released when the last view onto it goes away:
        a data-path call still running in another thread keeps it valid until
        it returns, so nothing ever touches unmapped memory.
        """
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.map = None


def create_region(index: int, size: int, name: str = "memif region") -> Region:
    """Create, size and seal a memfd region and map it (client side)."""
    if not 0 < size <= MAX_REGION_SIZE:
        raise LocalProtocolError(f"region size {size} outside 1..{MAX_REGION_SIZE}")
    fd = os.memfd_create(f"{name} {index}", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        return Region(index, fd, size, sealed=True)
    except BaseException:
        os.close(fd)
        raise


def map_peer_region(index: int, fd: int, size: int, accept_unsealed: bool) -> Region:
    """Check a region received from the peer and map it (server side).

    Raises :class:`RegionError` (the fd stays open: the caller closes it) when the
    file is smaller than announced or, unless ``accept_unsealed``, is not sealed
    against shrinking.
    """
    try:
        actual = os.fstat(fd).st_size
    except OSError as exc:
        raise RegionError(f"region {index}: fstat failed: {exc.strerror}") from None
    if actual < size:
        raise RegionError(f"region {index} is {actual} bytes, announced {size}")
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        seals = 0  # not a memfd (e.g. a hugepage file): it cannot carry seals
    sealed = bool(seals & fcntl.F_SEAL_SHRINK)
    if not sealed and not accept_unsealed:
        raise RegionError(
            f"region {index} is not sealed against shrinking (F_SEAL_SHRINK); "
            "set accept_unsealed_regions to allow it"
        )
    try:
        return Region(index, fd, size, sealed)
    except (OSError, ValueError) as exc:
        raise RegionError(f"region {index}: mmap failed: {exc}") from None


@dataclass(frozen=True, slots=True)
class RingPlacement:
    """Where one ring lives and where its buffers start."""

    s2m: bool
    index: int
    region: int
    offset: int
    buffer_region: int
    buffer_offset: int


@dataclass(frozen=True, slots=True)
class Layout:
    """The client's memory layout, matching libmemif's.

    With two or more regions allowed: region 0 holds the rings (all S2M, then all
    M2S), region 1 the packet buffers in the same ring order. A server that allows
    one region (max_region 0) gets gomemif's single region: rings, then buffers.
    """

    num_s2m: int
    num_m2s: int
    log2_ring_size: int
    buffer_size: int
    separate_buffers: bool

    @property
    def ring_size(self) -> int:
        """Descriptors per ring."""
        return 1 << self.log2_ring_size

    @property
    def ring_bytes(self) -> int:
        """Bytes one ring takes: header plus descriptors."""
        return RING_HEADER_SIZE + DESC_SIZE * self.ring_size

    @property
    def rings_size(self) -> int:
        """Bytes of all rings."""
        return (self.num_s2m + self.num_m2s) * self.ring_bytes

    @property
    def buffers_size(self) -> int:
        """Bytes of all packet buffers."""
        return (self.num_s2m + self.num_m2s) * self.ring_size * self.buffer_size

    def region_sizes(self) -> list[int]:
        """Sizes of the regions to create, in index order."""
        if self.separate_buffers:
            return [self.rings_size, self.buffers_size]
        return [self.rings_size + self.buffers_size]

    def placements(self) -> list[RingPlacement]:
        """Every ring's placement: S2M rings first, then M2S."""
        out = []
        buf_region = 1 if self.separate_buffers else 0
        buf_base = 0 if self.separate_buffers else self.rings_size
        order = [(True, i) for i in range(self.num_s2m)] + [(False, i) for i in range(self.num_m2s)]
        for pos, (s2m, index) in enumerate(order):
            out.append(
                RingPlacement(
                    s2m=s2m,
                    index=index,
                    region=0,
                    offset=pos * self.ring_bytes,
                    buffer_region=buf_region,
                    buffer_offset=buf_base + pos * self.ring_size * self.buffer_size,
                )
            )
        return out
