"""A hand-written memif peer that breaks the rules on purpose.

It is built on raw ``socket``, ``os.memfd_create``, ``os.eventfd`` and ``mmap``,
with its own message encoder, so it shares no code with the library under
test. A test drives it step by step: send exactly these bytes with exactly
these fds, read what comes back, scribble on shared memory.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import mmap
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

MSG_SIZE = 128
VERSION = 0x0200
COOKIE = 0x3E31F20
RING_HEADER = 128
DESC = 16
NEXT = 1
TIMEOUT = 5.0

# Message types.
NONE, ACK, HELLO, INIT, ADD_REGION, ADD_RING, CONNECT, CONNECTED, DISCONNECT = range(9)
NAMES = (
    "NONE",
    "ACK",
    "HELLO",
    "INIT",
    "ADD_REGION",
    "ADD_RING",
    "CONNECT",
    "CONNECTED",
    "DISCONNECT",
)


# -- messages ----------------------------------------------------------------------------------


def message(kind: int, fmt: str = "", *fields: object) -> bytes:
    """A 128-byte message: u16 type, the packed fields, zero padding."""
    return struct.pack("<H" + fmt, kind, *fields).ljust(MSG_SIZE, b"\0")


def ack() -> bytes:
    return message(ACK)


def hello(
    *,
    min_version: int = VERSION,
    max_version: int = VERSION,
    max_region: int = 255,
    max_m2s: int = 255,
    max_s2m: int = 255,
    max_log2: int = 14,
) -> bytes:
    return message(
        HELLO,
        "32sHHHHHB",
        b"hostile",
        min_version,
        max_version,
        max_region,
        max_m2s,
        max_s2m,
        max_log2,
    )


def init(*, id: int = 0, mode: int = 0, secret: bytes = b"", version: int = VERSION) -> bytes:
    return message(INIT, "HIB24s32s", version, id, mode, secret, b"hostile")


def add_region(index: int, size: int) -> bytes:
    return message(ADD_REGION, "HQ", index, size)


def add_ring(s2m: bool, index: int, region: int, offset: int, log2: int) -> bytes:
    return message(ADD_RING, "HHHIBH", int(s2m), index, region, offset, log2, 0)


def connect(name: bytes = b"hostile") -> bytes:
    return message(CONNECT, "32s", name)


def connected(name: bytes = b"hostile") -> bytes:
    return message(CONNECTED, "32s", name)


def disconnect(code: int, reason: bytes) -> bytes:
    return message(DISCONNECT, "I96s", code, reason)


@dataclass
class Received:
    """One message read from the control socket, with any fds that came along."""

    data: bytes
    fds: list[int] = field(default_factory=list)

    @property
    def kind(self) -> int:
        return int(struct.unpack_from("<H", self.data)[0]) if len(self.data) >= 2 else -1

    @property
    def name(self) -> str:
        return NAMES[self.kind] if 0 <= self.kind < len(NAMES) else f"type {self.kind}"

    @property
    def reason(self) -> str:
        """The text of a DISCONNECT."""
        assert self.kind == DISCONNECT, self
        return self.data[6:102].split(b"\0", 1)[0].decode(errors="replace")

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        """The payload fields after the type."""
        return struct.unpack_from("<" + fmt, self.data, 2)


# -- the control connection ---------------------------------------------------------------------


class Peer:
    """One end of a control connection; closes every fd it received on :meth:`close`."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self._fds: list[int] = []

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([data], ancillary)

    def recv(self) -> Received | None:
        """The next message, or None once the other side has closed."""
        data, ancillary, _, _ = self.sock.recvmsg(1024, socket.CMSG_SPACE(16 * 4))
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        self._fds.extend(fds)
        if not data and not fds:
            return None
        return Received(data, fds)

    def expect(self, kind: int) -> Received:
        """The next message, which must be of type ``kind``."""
        got = self.recv()
        assert got is not None, f"connection closed, expected {NAMES[kind]}"
        assert got.kind == kind, f"expected {NAMES[kind]}, got {got.name}: {got.data!r}"
        return got

    def disconnect_reason(self) -> str:
        """Read until DISCONNECT and return its reason; fails on a silent close."""
        while True:
            got = self.recv()
            assert got is not None, "closed without DISCONNECT"
            if got.kind == DISCONNECT:
                return got.reason

    def wait_closed(self) -> None:
        """Read (and ignore) until the other side closes."""
        while self.recv() is not None:
            pass

    def close(self) -> None:
        self.sock.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path


def dial(path: str) -> Peer:
    """Connect to a memif socket as a client would."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(_address(path))
    return Peer(sock)


class Listener:
    """A memif server socket, bound and listening."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(_address(path))
        self.sock.listen(8)
        self.sock.settimeout(TIMEOUT)

    def accept(self) -> Peer:
        sock, _ = self.sock.accept()
        return Peer(sock)

    def close(self) -> None:
        self.sock.close()
        if not self.path.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def full_backlog_listener(path: str) -> tuple[socket.socket, list[socket.socket]]:
    """A listener that never accepts, its backlog filled with pending connections.

    One more blocking ``connect()`` to it would wait forever; a non-blocking one
    fails with EAGAIN. Returns the listener and the connections holding the backlog.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(_address(path))
    listener.listen(0)
    pending: list[socket.socket] = []
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
        try:
            probe.connect(_address(path))
        except BlockingIOError:
            probe.close()
            return listener, pending
        pending.append(probe)


# -- shared memory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ring:
    """Where a ring lives."""

    s2m: bool
    index: int
    region: int
    offset: int
    log2: int
    eventfd: int

    @property
    def size(self) -> int:
        return 1 << self.log2


def _store16(region: mmap.mmap, offset: int, value: int) -> None:
    """One aligned 16-bit store, as the protocol wants counters published."""
    with memoryview(region) as whole, whole[offset : offset + 2] as part, part.cast("H") as word:
        word[0] = value & 0xFFFF


class SharedMemory:
    """Regions and rings as either side sees them, with raw access to every field."""

    def __init__(self) -> None:
        self.maps: list[mmap.mmap] = []
        self.rings: list[Ring] = []
        self._fds: list[int] = []

    def ring(self, s2m: bool, index: int = 0) -> Ring:
        return next(r for r in self.rings if r.s2m == s2m and r.index == index)

    def header(self, ring: Ring) -> tuple[int, int, int, int]:
        """(cookie, flags, head, tail) as currently in memory."""
        region = self.maps[ring.region]
        cookie, flags, head = struct.unpack_from("<IHH", region, ring.offset)
        (tail,) = struct.unpack_from("<H", region, ring.offset + 64)
        return cookie, flags, head, tail

    def set_head(self, ring: Ring, value: int) -> None:
        _store16(self.maps[ring.region], ring.offset + 6, value)

    def set_tail(self, ring: Ring, value: int) -> None:
        _store16(self.maps[ring.region], ring.offset + 64, value)

    def descriptor(self, ring: Ring, slot: int) -> tuple[int, int, int, int]:
        """(flags, region, length, offset) of a slot."""
        at = ring.offset + RING_HEADER + DESC * (slot & (ring.size - 1))
        flags, region, length, offset, _ = struct.unpack_from("<HHIII", self.maps[ring.region], at)
        return flags, region, length, offset

    def write_descriptor(
        self, ring: Ring, slot: int, *, length: int, offset: int, region: int = 0, flags: int = 0
    ) -> None:
        at = ring.offset + RING_HEADER + DESC * (slot & (ring.size - 1))
        struct.pack_into("<HHIII", self.maps[ring.region], at, flags, region, length, offset, 0)

    def write(self, region: int, offset: int, data: bytes) -> None:
        self.maps[region][offset : offset + len(data)] = data

    def read(self, region: int, offset: int, length: int) -> bytes:
        return self.maps[region][offset : offset + length]

    def adopt(self, *fds: int) -> list[int]:
        """Keep ``fds`` open until :meth:`close` (extra fds an attack hands over)."""
        self._fds.extend(fds)
        return list(fds)

    def kick(self, ring: Ring) -> None:
        os.write(ring.eventfd, (1).to_bytes(8, "little"))

    def close(self) -> None:
        for region in self.maps:
            region.close()
        self.maps.clear()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


class ClientMemory(SharedMemory):
    """Memory a (hostile) client creates: one memfd, rings first, then one buffer per slot.

    ``sealed=False`` leaves out ``F_SEAL_SHRINK``; ``cookie`` is written into every ring.
    """

    def __init__(
        self,
        *,
        pairs: int = 1,
        log2: int = 4,
        buffer_size: int = 2048,
        sealed: bool = True,
        cookie: int = COOKIE,
        extra: int = 0,
    ) -> None:
        super().__init__()
        self.log2 = log2
        self.buffer_size = buffer_size
        ring_bytes = RING_HEADER + DESC * (1 << log2)
        count = 2 * pairs
        self.buffer_offset = count * ring_bytes
        self.size = self.buffer_offset + count * (1 << log2) * buffer_size + extra
        self.fd = os.memfd_create("hostile region", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        self._fds.append(self.fd)
        os.ftruncate(self.fd, self.size)
        if sealed:
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.maps.append(mmap.mmap(self.fd, self.size))
        order = [(True, i) for i in range(pairs)] + [(False, i) for i in range(pairs)]
        for position, (s2m, index) in enumerate(order):
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._fds.append(efd)
            ring = Ring(s2m, index, 0, position * ring_bytes, log2, efd)
            self.rings.append(ring)
            struct.pack_into("<I", self.maps[0], ring.offset, cookie)
            for slot in range(ring.size):
                self.write_descriptor(
                    ring, slot, length=buffer_size, offset=self.buffer(ring, slot)
                )

    def buffer(self, ring: Ring, slot: int) -> int:
        """Offset of the buffer that belongs to ``slot`` of ``ring``."""
        position = self.rings.index(ring) if ring in self.rings else len(self.rings)
        return self.buffer_offset + (position * ring.size + (slot & (ring.size - 1))) * (
            self.buffer_size
        )

    def put_packet(self, ring: Ring, slot: int, data: bytes, flags: int = 0) -> None:
        """Copy ``data`` into the slot's own buffer and describe it."""
        offset = self.buffer(ring, slot)
        self.write(0, offset, data)
        self.write_descriptor(ring, slot, length=len(data), offset=offset, flags=flags)

    def offer(self, peer: Peer, *, id: int = 0, secret: bytes = b"") -> Received:
        """Answer HELLO with a complete, well-formed handshake; returns CONNECTED."""
        peer.expect(HELLO)
        peer.send(init(id=id, secret=secret))
        peer.expect(ACK)
        peer.send(add_region(0, self.size), [self.fd])
        peer.expect(ACK)
        for ring in self.rings:
            peer.send(
                add_ring(ring.s2m, ring.index, ring.region, ring.offset, ring.log2), [ring.eventfd]
            )
            peer.expect(ACK)
        peer.send(connect())
        return peer.expect(CONNECTED)


class OfferedMemory(SharedMemory):
    """The memory a client offered, as a (hostile) server maps it."""

    def __init__(self, regions: list[tuple[int, int]], rings: list[Ring]) -> None:
        super().__init__()
        for fd, size in regions:
            self.maps.append(mmap.mmap(fd, size))
        for ring in rings:
            efd = os.dup(ring.eventfd)
            self._fds.append(efd)
            self.rings.append(Ring(ring.s2m, ring.index, ring.region, ring.offset, ring.log2, efd))


def serve(peer: Peer, greeting: bytes | None = None) -> tuple[OfferedMemory, Received]:
    """Play a well-behaved server up to CONNECTED; returns the offered memory and INIT."""
    peer.send(greeting or hello())
    first = peer.expect(INIT)
    peer.send(ack())
    regions: list[tuple[int, int]] = []
    rings: list[Ring] = []
    while True:
        got = peer.recv()
        assert got is not None, "client closed during the handshake"
        if got.kind == ADD_REGION:
            _, size = got.unpack("HQ")
            regions.append((got.fds[0], size))
        elif got.kind == ADD_RING:
            flags, index, region, offset, log2, _ = got.unpack("HHHIBH")
            rings.append(Ring(bool(flags & 1), index, region, offset, log2, got.fds[0]))
        elif got.kind == CONNECT:
            break
        else:
            raise AssertionError(f"unexpected {got.name} during the handshake")
        peer.send(ack())
    memory = OfferedMemory(regions, rings)
    peer.send(connected())
    return memory, first


@contextlib.contextmanager
def closing(*things: Peer | Listener | SharedMemory) -> Iterator[None]:
    """Close peers, listeners and memory however the block ends."""
    try:
        yield
    finally:
        for thing in things:
            thing.close()
