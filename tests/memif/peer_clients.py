"""Clients that send, byte for byte, what libmemif 4.0 and gomemif clients send.

CI cannot build either library, so these reproduce their handshakes on a raw
``SOCK_SEQPACKET`` socket, with their memory layouts and their quirks, read
from their sources (libmemif: ``extras/libmemif/src/socket.c`` and ``main.c``
in FDio/vpp; gomemif: ``extras/gomemif/memif/control_channel.go``,
``interface.go`` and ``memif.go`` in FDio/govpp):

* gomemif reads HELLO's ``max_*_ring`` as a queue-pair *count* (its M2S line
  overwrites the S2M one), builds one region (rings, then one buffer per
  slot), never sends its secret, and sends 128 bytes from a Go buffer that can
  be shorter: bytes 64..127 of short messages are whatever lies behind it.
* libmemif reads them as count − 1, puts the rings in region 0 and the
  buffers in region 1, and builds messages in ``malloc``'d memory: every byte
  it does not set, including a secret field it leaves empty and the rest of a
  string after its NUL, is stale.

No library code is used; messages come from :mod:`tests.memif.hostile_peer`.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import random
import struct
from dataclasses import dataclass
from typing import Literal

from tests.memif import hostile_peer as hp

Flavour = Literal["libmemif", "gomemif"]
MASK_INT = 1


@dataclass(frozen=True)
class Hello:
    """A HELLO as a client reads it."""

    name: bytes
    min_version: int
    max_version: int
    max_region: int
    max_m2s: int
    max_s2m: int
    max_log2: int

    @classmethod
    def parse(cls, got: hp.Received) -> Hello:
        assert got.kind == hp.HELLO, got.name
        name, *numbers = got.unpack("32sHHHHHB")
        return cls(name.split(b"\0", 1)[0], *numbers)


@dataclass(frozen=True)
class Geometry:
    """What a client builds."""

    s2m: int
    m2s: int
    log2: int
    buffer_size: int


def gomemif_geometry(hello: Hello, pairs: int, log2: int, buffer_size: int = 2048) -> Geometry:
    """gomemif's parseHello: counts, and the M2S limit decides both directions."""
    count = min(pairs, hello.max_s2m)
    count = min(pairs, hello.max_m2s)
    return Geometry(count, count, min(log2, hello.max_log2), buffer_size)


def libmemif_geometry(
    hello: Hello, s2m: int, m2s: int, log2: int, buffer_size: int = 2048
) -> Geometry:
    """libmemif's memif_msg_parse_hello: count − 1."""
    return Geometry(
        min(s2m, hello.max_s2m + 1),
        min(m2s, hello.max_m2s + 1),
        min(log2, hello.max_log2),
        buffer_size,
    )


class PeerMemory(hp.SharedMemory):
    """A client's regions and rings in either flavour's layout.

    Descriptors are written only when a packet is sent or a buffer posted, so a
    client with 510 rings of 2^14 slots touches a few pages, as a real one that
    has not moved traffic yet would (ring headers, the slots it used).
    """

    def __init__(self, flavour: Flavour, geometry: Geometry) -> None:
        super().__init__()
        self.geometry = geometry
        ring_bytes = hp.RING_HEADER + hp.DESC * (1 << geometry.log2)
        count = geometry.s2m + geometry.m2s
        rings_size = count * ring_bytes
        buffers_size = count * (1 << geometry.log2) * geometry.buffer_size
        if flavour == "gomemif":
            sizes = [rings_size + buffers_size]
            self.buffer_region, self.buffer_base = 0, rings_size
        else:
            sizes = [rings_size, buffers_size]
            self.buffer_region, self.buffer_base = 1, 0
        self.sizes = sizes
        self.fds: list[int] = []
        for index, size in enumerate(sizes):
            fd = os.memfd_create(f"memif region {index}", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
            self._fds.append(fd)
            self.fds.append(fd)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)  # both seal, then size
            os.ftruncate(fd, size)
            self.maps.append(mmap.mmap(fd, size))
        order = [(True, i) for i in range(geometry.s2m)] + [(False, i) for i in range(geometry.m2s)]
        for position, (s2m, index) in enumerate(order):
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._fds.append(efd)
            ring = hp.Ring(s2m, index, 0, position * ring_bytes, geometry.log2, efd)
            self.rings.append(ring)
            struct.pack_into("<I", self.maps[0], ring.offset, hp.COOKIE)
        self._sent = {ring: 0 for ring in self.rings}  # S2M: our head
        self._read = {ring: 0 for ring in self.rings}  # M2S: how far we have read

    def buffer(self, ring: hp.Ring, slot: int) -> int:
        """Offset (in the buffer region) of ``slot``'s buffer: one per slot of every ring."""
        position = ring.index if ring.s2m else self.geometry.s2m + ring.index
        return self.buffer_base + (position * ring.size + (slot & (ring.size - 1))) * (
            self.geometry.buffer_size
        )

    def send(self, ring: hp.Ring, packets: list[bytes]) -> None:
        """Client tx (S2M): fill buffers and descriptors, then publish ``head`` and kick."""
        assert ring.s2m
        head = self._sent[ring]
        for packet in packets:
            offset = self.buffer(ring, head)
            self.write(self.buffer_region, offset, packet)
            self.write_descriptor(
                ring, head, length=len(packet), offset=offset, region=self.buffer_region
            )
            head = (head + 1) & 0xFFFF
        self._sent[ring] = head
        self.set_head(ring, head)
        if not self.header(ring)[1] & MASK_INT:
            self.kick(ring)

    def post(self, ring: hp.Ring, count: int) -> None:
        """Client rx (M2S): offer ``count`` empty buffers to the server."""
        assert not ring.s2m
        head = self.header(ring)[2]
        for slot in range(head, head + count):
            self.write_descriptor(
                ring,
                slot,
                length=self.geometry.buffer_size,
                offset=self.buffer(ring, slot),
                region=self.buffer_region,
            )
        self.set_head(ring, (head + count) & 0xFFFF)

    def receive(self, ring: hp.Ring) -> list[bytes]:
        """Client rx (M2S): the packets the server filled since the last call."""
        assert not ring.s2m
        tail = self.header(ring)[3]
        got = []
        slot = self._read[ring]
        while slot != tail:
            _, region, length, offset = self.descriptor(ring, slot)
            got.append(self.read(region, offset, length))
            slot = (slot + 1) & 0xFFFF
        self._read[ring] = slot
        return got


def _stale(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(1, 256) for _ in range(size))


def _with_stale(data: bytes, start: int, rng: random.Random) -> bytes:
    """``data`` with every byte from ``start`` on replaced by stale (non-zero) bytes."""
    return data[:start] + _stale(rng, hp.MSG_SIZE - start)


def _c_string(value: bytes, size: int, rng: random.Random) -> bytes:
    """strlcpy into malloc'd memory: the value, its NUL, then whatever was there."""
    if not value:
        return _stale(rng, size)
    return (value + b"\0" + _stale(rng, size))[:size]


def init_message(
    flavour: Flavour,
    rng: random.Random,
    *,
    id: int,
    mode: int = 0,
    secret: bytes = b"",
    name: bytes = b"app",
) -> bytes:
    """INIT as each flavour fills it in."""
    if flavour == "gomemif":  # a zeroed Go struct; the secret is never copied in
        return hp.message(hp.INIT, "HIB24s32s", hp.VERSION, id, mode, b"", name)
    body = hp.message(
        hp.INIT,
        "HIB24s32s",
        hp.VERSION,
        id,
        mode,
        _c_string(secret, 24, rng),
        _c_string(name, 32, rng),
    )
    return _with_stale(body, 2 + 2 + 4 + 1 + 24 + 32, rng)


def _tail(flavour: Flavour, body: bytes, used: int, rng: random.Random) -> bytes:
    """libmemif: stale after the payload; gomemif: stale past its 64-byte Go buffer."""
    return _with_stale(body, used if flavour == "libmemif" else 64, rng)


def offer(
    peer: hp.Peer,
    flavour: Flavour,
    memory: PeerMemory,
    rng: random.Random,
    *,
    id: int = 0,
    secret: bytes = b"",
) -> hp.Received:
    """Answer HELLO (already read) with the flavour's INIT, regions, rings and CONNECT."""
    peer.send(init_message(flavour, rng, id=id, secret=secret, name=flavour.encode()))
    peer.expect(hp.ACK)
    for index, (fd, size) in enumerate(zip(memory.fds, memory.sizes, strict=True)):
        peer.send(_tail(flavour, hp.add_region(index, size), 12, rng), [fd])
        peer.expect(hp.ACK)
    for ring in memory.rings:  # every S2M ring, then every M2S ring
        message = hp.add_ring(ring.s2m, ring.index, ring.region, ring.offset, ring.log2)
        peer.send(_tail(flavour, message, 15, rng), [ring.eventfd])
        peer.expect(hp.ACK)
    if_name = flavour.encode() + b"-if"
    if flavour == "libmemif":
        if_name = _c_string(if_name, 32, rng)
    peer.send(_tail(flavour, hp.message(hp.CONNECT, "32s", if_name), 34, rng))
    return peer.expect(hp.CONNECTED)
