"""Hostile shared memory: random descriptors, a reference reader, and victim/attacker scenes.

A *scene* is one of our interfaces (the victim) connected over a real control
socket to the raw peer of :mod:`tests.memif.hostile_peer`, which does its own
handshake and then owns the other end of the shared memory: it writes any
descriptor, counter or byte it likes, exactly when the test says.

What a correct victim must do with what the attacker wrote is computed here
independently of the library (:func:`expected_read`, :func:`expected_fill`),
from the protocol's rules: a descriptor is good when its region exists, its
length is 1..the limit and ``offset + length`` fits the region in 64-bit
arithmetic; a chain is dropped when any part is bad, when it runs past the
published descriptors or past 65535 bytes.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import memif
from memif.constants import MAX_PACKET_SIZE

from tests.memif import hostile_peer as hp

NEXT = 1
U32 = 0xFFFFFFFF
BAD_KINDS = ("region", "offset", "zero", "huge", "wrap", "too_long")


@dataclass(frozen=True)
class Desc:
    """One descriptor as the attacker writes it."""

    flags: int
    region: int
    length: int
    offset: int


@dataclass(frozen=True)
class Geometry:
    """What the victim mapped: region sizes, where packet bytes live, its length limit."""

    sizes: tuple[int, ...]
    zones: tuple[tuple[int, int, int], ...]  # (region, start, end) of packet buffers
    max_desc_len: int


def good_desc(rng: random.Random, geo: Geometry, longest: int) -> Desc:
    """A descriptor the victim must accept: inside a buffer zone, 1..longest bytes."""
    region, start, end = rng.choice(geo.zones)
    length = rng.randint(1, min(longest, geo.max_desc_len, end - start))
    offset = rng.randint(start, end - length)
    return Desc(0, region, length, offset)


def bad_desc(rng: random.Random, geo: Geometry, kind: str) -> Desc:
    """A descriptor the victim must refuse, of the given kind."""
    region, start, end = rng.choice(geo.zones)
    size = geo.sizes[region]
    length = rng.randint(1, min(geo.max_desc_len, end - start))
    offset = rng.randint(start, end - length)
    if kind == "region":
        return Desc(0, rng.randint(len(geo.sizes), 0xFFFF), length, offset)
    if kind == "offset":
        return Desc(0, region, length, rng.randint(size - length + 1, U32))
    if kind == "zero":
        return Desc(0, region, 0, offset)
    if kind == "huge":
        return Desc(0, region, U32, rng.choice([0, offset, U32]))
    if kind == "wrap":  # offset + length overflows 32 bits to a small number
        length = rng.randint(2, min(geo.max_desc_len, 1 << 16))
        return Desc(0, region, length, (1 << 32) - rng.randint(1, length - 1))
    if kind == "too_long":
        return Desc(0, region, rng.randint(geo.max_desc_len + 1, U32), start)
    raise ValueError(kind)


def random_descs(rng: random.Random, geo: Geometry, count: int, bad_share: float) -> list[Desc]:
    """``count`` descriptors, some bad, some chained, some with stray flag bits."""
    out = []
    for _ in range(count):
        if rng.random() < bad_share:
            desc = bad_desc(rng, geo, rng.choice(BAD_KINDS))
        else:
            desc = good_desc(rng, geo, rng.choice([64, 2048, geo.max_desc_len]))
        flags = NEXT if rng.random() < 0.2 else 0
        if rng.random() < 0.1:
            flags |= rng.randrange(0, 0x10000) & ~NEXT  # bits the protocol does not define
        out.append(Desc(flags, desc.region, desc.length, desc.offset))
    return out


def posted_descs(
    rng: random.Random, geo: Geometry, count: int, bad_share: float, stride: int
) -> list[Desc]:
    """Empty buffers to post: good ones are disjoint, ``stride`` apart, 1..stride bytes."""
    region, start, end = geo.zones[0]
    assert start + count * stride <= end
    out = []
    for n in range(count):
        if rng.random() < bad_share:
            desc = bad_desc(rng, geo, rng.choice(BAD_KINDS))
        else:
            desc = Desc(0, region, rng.choice([stride, rng.randint(1, stride)]), start + n * stride)
        flags = rng.choice([0, 0, NEXT, rng.randrange(0x10000)])
        out.append(Desc(flags, desc.region, desc.length, desc.offset))
    return out


def is_good(desc: Desc, geo: Geometry, limit: int) -> bool:
    """The protocol's check of one descriptor, in unbounded integers."""
    return (
        desc.region < len(geo.sizes)
        and 0 < desc.length <= limit
        and desc.offset + desc.length <= geo.sizes[desc.region]
    )


def expected_read(descs: list[Desc], geo: Geometry, maps: list[bytes]) -> tuple[list[bytes], int]:
    """The packets a correct reader returns from ``descs``, and how many it drops."""
    packets: list[bytes] = []
    drops = 0
    i = 0
    while i < len(descs):
        parts: list[bytes] = []
        total = 0
        ok = True
        while True:
            desc = descs[i]
            i += 1
            if is_good(desc, geo, geo.max_desc_len):
                total += desc.length
                if total > MAX_PACKET_SIZE:
                    ok = False
                else:
                    parts.append(maps[desc.region][desc.offset : desc.offset + desc.length])
            else:
                ok = False
            if not desc.flags & NEXT:
                break
            if i >= len(descs):
                ok = False  # the chain runs past what was published
                break
        if ok:
            packets.append(b"".join(parts))
        else:
            drops += 1
    return packets, drops


def expected_fill(posted: list[Desc], geo: Geometry, lengths: list[int]) -> tuple[int, int, bool]:
    """Filling posted buffers: (packets sent, slots used, whether a bad buffer was hit)."""
    used = 0
    count = 0
    for length in lengths:
        start = used
        done = 0
        while done < length and used < len(posted):
            desc = posted[used]
            if not is_good(desc, geo, U32):
                return count, start, True
            done += min(desc.length, length - done)
            used += 1
        if done < length:
            return count, start, False
        count += 1
    return count, used, False


# -- scenes -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a run tried and saw."""

    cases: int = 0
    reconnects: int = 0
    packets: int = 0
    drops: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        """Count one case of ``kind``."""
        self.cases += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def add(self, other: Tally) -> None:
        """Add another tally's figures to this one."""
        self.cases += other.cases
        self.reconnects += other.reconnects
        self.packets += other.packets
        self.drops += other.drops
        for kind, n in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n

    def line(self) -> str:
        """A one-line summary."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return (
            f"{self.cases} cases tried, {self.packets} packets delivered, {self.drops} dropped "
            f"and counted, {self.reconnects} reconnects ({kinds})"
        )


def read_chain(mem: hp.SharedMemory, ring: hp.Ring, slot: int) -> tuple[bytes, int]:
    """Follow a chain the victim wrote from ``slot``; returns its bytes and slots used."""
    parts = []
    used = 0
    while True:
        flags, region, length, offset = mem.descriptor(ring, slot + used)
        parts.append(mem.read(region, offset, length))
        used += 1
        if not flags & NEXT or used > ring.size:
            return b"".join(parts), used


class Scene:
    """Base of both scenes: the victim socket and interface, and the attacker's memory."""

    victim_sock: memif.Socket
    victim: memif.Interface
    mem: hp.SharedMemory
    rx_ring: hp.Ring  # the ring the victim reads
    tx_ring: hp.Ring  # the ring the victim writes
    geometry: Geometry

    def __init__(self, rng: random.Random, log2: int, buffer_size: int) -> None:
        self.rng = rng
        self.log2 = log2
        self.buffer_size = buffer_size
        self.peer: hp.Peer | None = None

    @property
    def size(self) -> int:
        """Descriptors per ring."""
        return 1 << self.log2

    def maps(self) -> list[bytes]:
        """A snapshot of every region, as the attacker sees it."""
        return [bytes(m) for m in self.mem.maps]

    def start_counter(self) -> int:
        """Where a new connection's counters start: zero, just before the wrap, or anywhere."""
        return self.rng.choice(
            [0, 0xFFFF - self.rng.randint(0, 2 * self.size), self.rng.randrange(0x10000)]
        )

    def write_descs(self, ring: hp.Ring, first: int, descs: list[Desc]) -> None:
        """Write descriptors from slot counter ``first`` on, wrapping around the ring."""
        for n, d in enumerate(descs):
            self.mem.write_descriptor(
                ring, first + n, length=d.length, offset=d.offset, region=d.region, flags=d.flags
            )

    def fill_buffers(self, descs: list[Desc]) -> None:
        """Random bytes into every good descriptor's buffer (bad ones stay as they are)."""
        for d in descs:
            if is_good(d, self.geometry, self.geometry.max_desc_len):
                self.mem.write(d.region, d.offset, self.rng.randbytes(d.length))

    def close_peer(self) -> None:
        """Close the attacker's side of the current connection."""
        if self.peer is not None:
            self.peer.close()
            self.peer = None
        self.mem.close()

    def disconnect_reason(self) -> str:
        """The DISCONNECT the victim sent on the current connection ('' if it just closed)."""
        assert self.peer is not None
        with contextlib.suppress(TimeoutError, OSError, AssertionError):
            return self.peer.disconnect_reason()
        return ""


class ServerScene(Scene):
    """Victim: our server interface. Attacker: a raw client that created the memory."""

    def __init__(self, path: str, rng: random.Random, log2: int = 6, buffer_size: int = 2048):
        super().__init__(rng, log2, buffer_size)
        self.path = path
        self.victim_sock = memif.Socket(path, reconnect_interval=0.02)
        self.victim = self.victim_sock.create_interface(
            id=0,
            role="server",
            name="victim",
            rx_mode="polling",
            memory=memif.MemoryConfig(log2_ring_size=log2),
        )
        self.victim_sock.start()
        self.connect()

    def connect(self) -> None:
        """A fresh connection with fresh memory; counters start anywhere."""
        mem = hp.ClientMemory(pairs=1, log2=self.log2, buffer_size=self.buffer_size)
        self.mem = mem
        self.rx_ring, self.tx_ring = mem.ring(True), mem.ring(False)
        start = self.start_counter()
        for ring in (self.rx_ring, self.tx_ring):
            mem.set_head(ring, start)
            mem.set_tail(ring, start)
        self.geometry = Geometry((mem.size,), ((0, mem.buffer_offset, mem.size),), 65535)
        self.peer = hp.dial(self.path)
        mem.offer(self.peer)
        assert self.victim.wait_connected(5), self.victim.disconnect_reason

    def reconnect(self) -> None:
        """Drop the current connection (if the victim has not) and make a new one."""
        self.close_peer()
        assert self.victim.wait_disconnected(5)
        self.connect()

    def produce(self, descs: list[Desc]) -> None:
        """Publish ``descs`` on S2M: write them at tail and move head past them."""
        _, _, _, tail = self.mem.header(self.rx_ring)
        self.write_descs(self.rx_ring, tail, descs)
        self.fill_buffers(descs)
        self.mem.set_head(self.rx_ring, tail + len(descs))

    def rx_position(self) -> tuple[int, int]:
        """(published, handed back): head and tail of the ring the victim reads."""
        _, _, head, tail = self.mem.header(self.rx_ring)
        return head, tail

    def break_rx(self) -> int:
        """Move head further ahead of tail than the ring is long; returns the distance."""
        _, _, _, tail = self.mem.header(self.rx_ring)
        ahead = self.rng.randint(self.size + 1, 0xFFFF)
        self.mem.set_head(self.rx_ring, tail + ahead)
        return ahead

    def post(self, descs: list[Desc]) -> int:
        """Post ``descs`` as empty M2S buffers; returns the slot counter they start at."""
        _, _, _, tail = self.mem.header(self.tx_ring)
        self.write_descs(self.tx_ring, tail, descs)
        self.mem.set_head(self.tx_ring, tail + len(descs))
        return tail

    def break_tx(self) -> None:
        """Post more buffers than the ring holds."""
        _, _, _, tail = self.mem.header(self.tx_ring)
        self.mem.set_head(self.tx_ring, tail + self.rng.randint(self.size + 1, 0xFFFF))

    def close(self) -> None:
        """Close both sides."""
        self.close_peer()
        self.victim_sock.close()


class ClientScene(Scene):
    """Victim: our client interface. Attacker: a raw server mapping the victim's memory."""

    def __init__(self, path: str, rng: random.Random, log2: int = 6, buffer_size: int = 2048):
        super().__init__(rng, log2, buffer_size)
        self.listener = hp.Listener(path)
        self.victim_sock = memif.Socket(path, reconnect_interval=0.02)
        self.victim = self.victim_sock.create_interface(
            id=0,
            role="client",
            name="victim",
            rx_mode="interrupt",
            memory=memif.MemoryConfig(log2_ring_size=log2, packet_buffer_size=buffer_size),
        )
        self.victim_sock.start()
        self.connect()

    def connect(self) -> None:
        """Accept the victim's next connection and serve it up to CONNECTED."""
        self.peer = self.listener.accept()
        mem, _ = hp.serve(self.peer, hp.hello(max_log2=self.log2))
        self.mem = mem
        self.rx_ring, self.tx_ring = mem.ring(False), mem.ring(True)
        assert self.victim.wait_connected(5), self.victim.disconnect_reason
        link = self.victim._link
        assert link is not None
        sizes = tuple(r.size for r in link.regions)
        self.geometry = Geometry(sizes, ((1, 0, sizes[1]),), self.buffer_size)

    def reconnect(self) -> None:
        """Drop the current connection (if the victim has not) and serve its next one."""
        self.close_peer()
        assert self.victim.wait_disconnected(5)
        self.connect()

    def posted(self) -> tuple[int, int]:
        """(head, tail) of M2S: the victim posts up to head, the attacker fills up to tail."""
        _, _, head, tail = self.mem.header(self.rx_ring)
        return head, tail

    def produce(self, descs: list[Desc]) -> None:
        """Fill M2S slots from tail with ``descs`` and move tail past them."""
        _, tail = self.posted()
        self.write_descs(self.rx_ring, tail, descs)
        self.fill_buffers(descs)
        self.mem.set_tail(self.rx_ring, tail + len(descs))

    def rx_position(self) -> tuple[int, int]:
        """(published, handed back): tail, and head minus the ring size."""
        head, tail = self.posted()
        return tail, (head - self.size) & 0xFFFF

    def break_rx(self) -> int:
        """Move tail past the buffers the victim posted; returns the distance."""
        head, tail = self.posted()
        posted = (head - tail) & 0xFFFF
        ahead = self.rng.randint(posted + 1, 0xFFFF)
        self.mem.set_tail(self.rx_ring, tail + ahead)
        return ahead

    def s2m(self) -> tuple[int, int]:
        """(head, tail) of the ring the victim transmits on."""
        _, _, head, tail = self.mem.header(self.tx_ring)
        return head, tail

    def close(self) -> None:
        """Close both sides."""
        self.close_peer()
        self.victim_sock.close()
        self.listener.close()
