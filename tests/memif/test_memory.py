"""Shared memory: sealed memfd regions, checks on peer regions, the client's layout."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import struct
from collections.abc import Iterator

import pytest
from memif import LocalProtocolError, RegionError, RemoteProtocolError
from memif.constants import COOKIE
from memif.handshake import NegotiatedConfig, RingInfo
from memif.link import ClientMemory, ServerLinkBuild, build_client_memory
from memif.memory import Layout, Region, create_region, map_peer_region

from tests.conftest import open_fds


@pytest.fixture
def memfd() -> Iterator[int]:
    """An unsealed 8 KiB memfd that allows sealing."""
    fd = os.memfd_create("test region", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.ftruncate(fd, 8192)
    yield fd
    with contextlib.suppress(OSError):  # some tests hand the fd over to a Region
        os.close(fd)


def test_created_region_is_sealed_against_shrinking() -> None:
    region = create_region(0, 8192)
    try:
        seals = fcntl.fcntl(region.fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_SHRINK
        assert seals & fcntl.F_SEAL_SEAL  # nobody can remove the seal again
        assert region.sealed and region.size == 8192
        assert os.fstat(region.fd).st_size == 8192
        with pytest.raises(PermissionError):
            os.ftruncate(region.fd, 4096)
        os.ftruncate(region.fd, 16384)  # growing stays allowed
    finally:
        region.close()


def test_created_region_is_shared_through_its_fd() -> None:
    region = create_region(3, 4096, "shared")
    try:
        assert region.map is not None and region.index == 3
        region.map[100:105] = b"hello"
        assert os.pread(region.fd, 5, 100) == b"hello"
        assert os.readlink(f"/proc/self/fd/{region.fd}").startswith("/memfd:shared 3")
    finally:
        region.close()


def test_close_releases_fd_and_is_idempotent() -> None:
    before = open_fds()
    region = create_region(0, 4096)
    fd = region.fd
    region.close()
    region.close()
    assert region.fd == -1 and region.map is None
    assert fd not in open_fds() or fd in before
    assert open_fds() == before


@pytest.mark.parametrize("size", [0, -1, (1 << 32) + 1])
def test_create_region_size_limits(size: int) -> None:
    with pytest.raises(LocalProtocolError, match=r"outside 1\.\.4294967296"):
        create_region(0, size)


def test_map_sealed_peer_region(memfd: int) -> None:
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    os.pwrite(memfd, b"peer data", 4000)
    region = map_peer_region(0, memfd, 8192, accept_unsealed=False)
    assert region.sealed and region.map is not None
    assert region.map[4000:4009] == b"peer data"
    region.map[0:2] = b"ok"
    assert os.pread(memfd, 2, 0) == b"ok"
    region.close()
    with pytest.raises(OSError):
        os.fstat(memfd)  # the region owned the fd and closed it


def test_map_a_smaller_announced_size(memfd: int) -> None:
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    region = map_peer_region(0, memfd, 4096, accept_unsealed=False)
    assert region.map is not None and len(region.map) == 4096
    region.close()


def test_refuse_region_smaller_than_announced(memfd: int) -> None:
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    with pytest.raises(RegionError, match="region 2 is 8192 bytes, announced 8193"):
        map_peer_region(2, memfd, 8193, accept_unsealed=True)
    os.fstat(memfd)  # still open: the caller closes it


def test_refuse_unsealed_region(memfd: int) -> None:
    with pytest.raises(RegionError, match=r"not sealed against shrinking.*accept_unsealed_regions"):
        map_peer_region(0, memfd, 8192, accept_unsealed=False)
    os.fstat(memfd)


def test_refuse_region_sealed_otherwise(memfd: int) -> None:
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    with pytest.raises(RegionError, match="not sealed"):
        map_peer_region(0, memfd, 8192, accept_unsealed=False)


def test_accept_unsealed_when_asked(memfd: int) -> None:
    region = map_peer_region(0, memfd, 8192, accept_unsealed=True)
    assert not region.sealed and region.map is not None
    region.close()


def test_refuse_a_pipe_as_region() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(RegionError, match="region 0 is 0 bytes, announced 4096"):
            map_peer_region(0, read_end, 4096, accept_unsealed=True)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_refuse_region_that_cannot_be_mapped_writable(memfd: int) -> None:
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_WRITE)
    with pytest.raises(RegionError, match="mmap failed"):
        map_peer_region(0, memfd, 8192, accept_unsealed=False)
    os.fstat(memfd)


def test_refuse_closed_fd() -> None:
    fd = os.memfd_create("gone")
    os.close(fd)
    with pytest.raises(RegionError, match="fstat failed"):
        map_peer_region(0, fd, 4096, accept_unsealed=True)


# -- layout ----------------------------------------------------------------------------------


def test_libmemif_layout_rings_in_region_0_buffers_in_region_1() -> None:
    layout = Layout(num_s2m=2, num_m2s=3, log2_ring_size=4, buffer_size=2048, separate_buffers=True)
    ring_bytes = 128 + 16 * 16
    assert layout.ring_bytes == ring_bytes
    assert layout.region_sizes() == [5 * ring_bytes, 5 * 16 * 2048]
    places = layout.placements()
    assert [(p.s2m, p.index) for p in places] == [
        (True, 0),
        (True, 1),
        (False, 0),
        (False, 1),
        (False, 2),
    ]
    assert [p.region for p in places] == [0] * 5
    assert [p.offset for p in places] == [i * ring_bytes for i in range(5)]
    assert [p.buffer_region for p in places] == [1] * 5
    assert [p.buffer_offset for p in places] == [i * 16 * 2048 for i in range(5)]


def test_single_region_layout_rings_then_buffers() -> None:
    layout = Layout(
        num_s2m=1, num_m2s=1, log2_ring_size=10, buffer_size=2048, separate_buffers=False
    )
    ring_bytes = 128 + 16 * 1024
    buffer_offset = 2 * ring_bytes
    assert layout.region_sizes() == [buffer_offset + 2048 * 1024 * 2]
    s2m, m2s = layout.placements()
    assert (s2m.s2m, s2m.region, s2m.offset, s2m.buffer_region) == (True, 0, 0, 0)
    assert (m2s.s2m, m2s.region, m2s.offset, m2s.buffer_region) == (False, 0, ring_bytes, 0)
    assert s2m.buffer_offset == buffer_offset
    assert m2s.buffer_offset == buffer_offset + 1024 * 2048


@pytest.mark.parametrize("max_regions", [1, 2, 256])
def test_client_memory_in_shared_memory(max_regions: int) -> None:
    """Rings carry the cookie and every descriptor points at its own buffer."""
    before = open_fds()
    neg = NegotiatedConfig(
        num_s2m_rings=2,
        num_m2s_rings=1,
        log2_ring_size=3,
        packet_buffer_size=256,
        max_regions=max_regions,
    )
    memory = build_client_memory(neg, "t")
    try:
        separate = max_regions >= 2
        assert len(memory.region_infos) == (2 if separate else 1)
        assert [r.size for r in memory.region_infos] == memory.layout.region_sizes()
        for info in memory.region_infos:
            assert fcntl.fcntl(info.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
        assert [(r.s2m, r.index) for r in memory.ring_infos] == [(True, 0), (True, 1), (False, 0)]
        ring_map = memory.link.regions[0].map
        assert ring_map is not None
        buffers_region = 1 if separate else 0
        for ring, place in zip(memory.ring_infos, memory.layout.placements(), strict=True):
            assert os.readlink(f"/proc/self/fd/{ring.eventfd}") == "anon_inode:[eventfd]"
            assert ring.offset == place.offset and ring.log2_ring_size == 3
            cookie, flags, head = struct.unpack_from("<IHH", ring_map, ring.offset)
            (tail,) = struct.unpack_from("<H", ring_map, ring.offset + 64)
            assert (cookie, flags, head, tail) == (COOKIE, 0, 0, 0)
            for slot in range(8):
                desc = struct.unpack_from("<HHIII", ring_map, ring.offset + 128 + 16 * slot)
                assert desc == (0, buffers_region, 256, place.buffer_offset + slot * 256, 0)
        last = memory.layout.placements()[-1]
        assert last.buffer_offset + 8 * 256 == memory.region_infos[-1].size
    finally:
        memory.link.close()
    del ring_map  # a live mmap object holds a duplicate of the region's fd
    assert open_fds() == before


def _server_view(
    memory: ClientMemory,
) -> tuple[list[Region], tuple[RingInfo, ...], tuple[RingInfo, ...]]:
    """What a server holds after the handshake: its own fds for the client's memory."""
    regions = [
        map_peer_region(r.index, os.dup(r.fd), r.size, accept_unsealed=False)
        for r in memory.region_infos
    ]
    rings = [dataclasses.replace(r, eventfd=os.dup(r.eventfd)) for r in memory.ring_infos]
    return regions, tuple(r for r in rings if r.s2m), tuple(r for r in rings if not r.s2m)


def test_server_link_attaches_a_slice_of_rings_per_step() -> None:
    before = open_fds()
    neg = NegotiatedConfig(20, 20, 3, 128, 2)
    memory = build_client_memory(neg, "t")
    build = ServerLinkBuild(*_server_view(memory))
    try:
        assert not build.step(32)
        assert len(build.link.rx) == 20 and len(build.link.tx) == 12
        assert build.link.log2_ring_size == 0  # not finished yet
        assert build.step(32) and build.done
        assert len(build.link.tx) == 20 and build.link.log2_ring_size == 3
    finally:
        build.link.close()
        memory.link.close()
    assert open_fds() == before


def test_server_link_build_refuses_a_ring_without_the_cookie_in_its_slice() -> None:
    before = open_fds()
    memory = build_client_memory(NegotiatedConfig(20, 20, 3, 128, 2), "t")
    regions, s2m, m2s = _server_view(memory)
    ring_map = memory.link.regions[0].map
    assert ring_map is not None
    struct.pack_into("<I", ring_map, m2s[5].offset, 0)
    del ring_map
    build = ServerLinkBuild(regions, s2m, m2s)
    try:
        assert not build.step(20)  # every S2M ring is fine
        with pytest.raises(RemoteProtocolError, match="M2S ring 5: wrong cookie 0x0"):
            build.step(20)
    finally:
        build.link.close()
        memory.link.close()
    assert open_fds() == before
