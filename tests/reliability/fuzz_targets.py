"""Fuzz targets over the control protocol: ``wire.decode`` and both handshake machines.

One entry point, :func:`one_input`, turns arbitrary bytes into a run of one of
three targets (chosen by the first byte):

* ``decode``: any byte string through :func:`memif.wire.decode`; a message that
  decodes must survive an encode/decode round trip unchanged.
* ``server``: a :class:`~memif.handshake.ServerHandshake` with a configuration
  taken from six bytes, then a series of 129-byte records (one byte picking the
  fd that travels with the message, 128 bytes of message) fed to ``receive``.
* ``client``: the same for a :class:`~memif.handshake.ClientHandshake`, which
  is given memory (well-formed or not, as the record byte says) whenever it asks.

Only :class:`memif.MemifError` subclasses may come out of the library; any
other exception, or a broken invariant (an ``AssertionError`` raised here), is a
finding. The fds carried along are real (an eventfd and a memfd made once by
:func:`open_fake_fds`) or -1: the machines only carry fds, they never use them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from memif import Arguments, LocalProtocolError, MemoryConfig, Mode, wire
from memif.constants import MAX_REGION_SIZE, MSG_SIZE, VERSION
from memif.errors import PeerDisconnected, RemoteProtocolError, WireError
from memif.handshake import (
    ClientHandshake,
    RegionInfo,
    RingInfo,
    Send,
    ServerHandshake,
    ServerLimits,
    ServerTarget,
)
from memif.memory import Layout

CONFIG_SIZE = 6
RECORD_SIZE = 1 + MSG_SIZE
TARGETS = ("decode", "server", "client")
_MODES = (Mode.ETHERNET, Mode.IP, Mode.PUNT_INJECT)
_SECRETS = (None, "s3cret", "x" * 24)
_BUFFER_SIZES = (64, 1500, 2048, 9216)

# What the low two bits of a record's first byte attach to the message.
FD_NONE, FD_INVALID, FD_EVENTFD, FD_MEMFD = range(4)
# What bits 2..3 of that byte make a client do when it asks for memory.
MEM_GOOD, MEM_NONE, MEM_TOO_MANY, MEM_WITHHELD = range(4)


@dataclass
class FakeFds:
    """Real fds handed to the machines as the ones that came with a message."""

    eventfd: int
    memfd: int

    def pick(self, selector: int) -> int | None:
        """The fd a record's selector names (None: no fd at all)."""
        return (None, -1, self.eventfd, self.memfd)[selector & 3]

    def close(self) -> None:
        """Close both fds."""
        os.close(self.eventfd)
        os.close(self.memfd)


def open_fake_fds() -> FakeFds:
    """An eventfd and a memfd, opened once per fuzzing process."""
    return FakeFds(
        os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC),
        os.memfd_create("fuzz region", os.MFD_CLOEXEC),
    )


@dataclass
class Tally:
    """What the targets saw, for the summary line."""

    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TARGETS, 0))
    typed_errors: int = 0
    handshakes_done: int = 0


TALLY = Tally()
_FDS: FakeFds | None = None


def _fds() -> FakeFds:
    global _FDS
    if _FDS is None:
        _FDS = open_fake_fds()
    return _FDS


# -- the entry point ----------------------------------------------------------------------------


def one_input(data: bytes) -> None:
    """Run one fuzz input; raises only on a finding."""
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    TALLY.runs[target] += 1
    body = data[1:]
    if target == "decode":
        fuzz_decode(body)
    elif target == "server":
        fuzz_server(body[:CONFIG_SIZE].ljust(CONFIG_SIZE, b"\0"), _records(body[CONFIG_SIZE:]))
    else:
        fuzz_client(body[:CONFIG_SIZE].ljust(CONFIG_SIZE, b"\0"), _records(body[CONFIG_SIZE:]))


def _records(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    for start in range(0, len(data), RECORD_SIZE):
        chunk = data[start : start + RECORD_SIZE]
        out.append((chunk[0], chunk[1:].ljust(MSG_SIZE, b"\0")))
    return out


def _decode(raw: bytes) -> wire.Message | None:
    try:
        return wire.decode(raw)
    except WireError:
        TALLY.typed_errors += 1
        return None


def _check_round_trip(message: wire.Message) -> None:
    encoded = wire.encode(message)
    assert len(encoded) == MSG_SIZE
    again = wire.decode(encoded)
    assert again == message, f"round trip changed {message!r} into {again!r}"


def _check_sends(sends: list[Send]) -> None:
    for item in sends:
        assert isinstance(item, Send)
        encoded = wire.encode(item.message)  # every reply must fit the wire
        assert len(encoded) == MSG_SIZE


# -- decode -------------------------------------------------------------------------------------


def fuzz_decode(body: bytes) -> None:
    """Any length through decode, then the first 128 bytes (zero-padded)."""
    for raw in (body, body[:MSG_SIZE].ljust(MSG_SIZE, b"\0")):
        message = _decode(raw)
        if message is not None:
            assert len(raw) == MSG_SIZE, f"decoded a {len(raw)}-byte message"
            _check_round_trip(message)


# -- server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSetup:
    """A server handshake's configuration as six fuzz bytes describe it."""

    target: ServerTarget
    limits: ServerLimits

    @classmethod
    def from_bytes(cls, config: bytes) -> ServerSetup:
        """Decode the configuration bytes (every byte string is valid)."""
        target = ServerTarget(
            id=(config[4] >> 1) & 3,
            name="fuzz-server",
            mode=_MODES[config[0] % 3],
            secret=_SECRETS[config[1] % 3],
            busy=bool(config[4] & 1),
        )
        limits = ServerLimits(
            max_regions=1 + config[5] % 4,
            max_m2s_rings=1 + (config[5] >> 2) % 4,
            max_s2m_rings=1 + (config[5] >> 4) % 4,
            max_log2_ring_size=1 + (config[3] >> 4) % 14 if config[3] >= 16 else 14,
        )
        return cls(target, limits)


def _feed(
    hs: ServerHandshake | ClientHandshake, message: wire.Message, fd: int | None, failed: bool
) -> tuple[list[Send] | None, bool]:
    """Feed one message; returns (replies, failed), replies None when it was refused.

    Only typed errors may come out, a failed machine stays failed, and an
    established link accepts nothing.
    """
    try:
        if hs.done:
            hs.after_connected(message, fd)
            raise AssertionError("after_connected accepted a message")
        replies = hs.receive(message, fd)
    except LocalProtocolError:
        TALLY.typed_errors += 1
        assert failed, "LocalProtocolError from a machine that had not failed"
        return None, failed
    except (RemoteProtocolError, PeerDisconnected):
        TALLY.typed_errors += 1
        assert hs.state == "failed", f"error left the machine in {hs.state!r}"
        return None, True
    assert not failed, "a failed machine accepted a message"
    return replies, failed


def fuzz_server(config: bytes, records: list[tuple[int, bytes]]) -> None:
    """Feed records to a server handshake and check what it accepted."""
    setup = ServerSetup.from_bytes(config)
    table = {setup.target.id: setup.target}
    hs = ServerHandshake("fuzz", table.get, setup.limits)
    _check_sends([hs.hello()])
    fds = _fds()
    regions: list[tuple[int, int]] = []  # (index, size) of every ADD_REGION accepted
    failed = False
    for selector, raw in records:
        message = _decode(raw)
        if message is None:
            continue
        fd = fds.pick(selector)
        was_done = hs.done
        replies, failed = _feed(hs, message, fd, failed)
        if replies is None:
            continue
        _check_sends(replies)
        if fd is not None:  # only the two messages that carry one may come with an fd
            assert isinstance(message, wire.AddRegion | wire.AddRing), message
        if isinstance(message, wire.AddRegion):
            regions.append((message.index, message.size))
        if hs.done and not was_done:
            TALLY.handshakes_done += 1
            check_server_result(hs, setup, regions)


def check_server_result(
    hs: ServerHandshake, setup: ServerSetup, regions: list[tuple[int, int]]
) -> None:
    """What a completed server handshake holds, with the regions it accepted as
    ``(index, size)``, must obey every announced limit."""
    result = hs.result
    target, limits = setup.target, setup.limits
    assert result.interface_id == target.id and not target.busy
    assert [index for index, _ in regions] == list(range(len(regions)))
    assert 1 <= len(regions) <= limits.max_regions
    assert all(0 < size <= MAX_REGION_SIZE for _, size in regions)
    max_log2 = limits.max_log2_ring_size
    for rings, cap in (
        (result.s2m_rings, limits.max_s2m_rings),
        (result.m2s_rings, limits.max_m2s_rings),
    ):
        assert 1 <= len(rings) <= cap
        assert [r.index for r in rings] == list(range(len(rings)))
        for ring in rings:
            assert ring.region < len(regions)
            assert ring.end <= regions[ring.region][1]
            assert ring.log2_ring_size <= max_log2


# -- client -------------------------------------------------------------------------------------


def client_arguments(config: bytes) -> Arguments:
    """Client arguments from six fuzz bytes (every byte string gives valid ones)."""
    return Arguments(
        id=config[5],
        role="client",
        name="fuzz-client",
        mode=_MODES[config[3] % 3],
        secret=_SECRETS[config[4] % 3],
        memory=MemoryConfig(
            num_queue_pairs=1 + config[0] % 4,
            log2_ring_size=1 + config[1] % 12,
            packet_buffer_size=_BUFFER_SIZES[config[2] % 4],
        ),
    )


def client_memory(hs: ClientHandshake, fds: FakeFds) -> tuple[list[RegionInfo], list[RingInfo]]:
    """Region and ring announcements for the negotiated geometry (fds are stand-ins)."""
    neg = hs.negotiated
    layout = Layout(
        num_s2m=neg.num_s2m_rings,
        num_m2s=neg.num_m2s_rings,
        log2_ring_size=neg.log2_ring_size,
        buffer_size=neg.packet_buffer_size,
        separate_buffers=neg.max_regions >= 2,
    )
    regions = [RegionInfo(i, size, fds.memfd) for i, size in enumerate(layout.region_sizes())]
    rings = [
        RingInfo(p.s2m, p.index, p.region, p.offset, layout.log2_ring_size, fds.eventfd)
        for p in layout.placements()
    ]
    return regions, rings


def _offer(
    hs: ClientHandshake, args: Arguments, how: int, fds: FakeFds
) -> tuple[list[Send], tuple[RegionInfo, ...]]:
    neg = hs.negotiated
    mem = args.memory
    assert 1 <= neg.num_s2m_rings <= mem.num_queue_pairs
    assert 1 <= neg.num_m2s_rings <= mem.num_queue_pairs
    assert neg.log2_ring_size <= mem.log2_ring_size and neg.max_regions >= 1
    regions, rings = client_memory(hs, fds)
    if how == MEM_NONE:
        regions = []
    elif how == MEM_TOO_MANY:
        regions = [RegionInfo(i, 4096, fds.memfd) for i in range(neg.max_regions + 1)]
    try:
        sends = hs.provide_memory(regions, rings)
    except LocalProtocolError:
        TALLY.typed_errors += 1
        assert how in (MEM_NONE, MEM_TOO_MANY), "good memory refused"
        assert hs.needs_memory, "a refused offer changed the state"
        return [], ()
    assert how == MEM_GOOD, "a bad memory offer was accepted"
    assert [type(s.message) for s in sends] == [wire.Init]
    return sends, tuple(regions)


def fuzz_client(config: bytes, records: list[tuple[int, bytes]]) -> None:
    """Feed records to a client handshake, offering memory when it asks."""
    args = client_arguments(config)
    hs = ClientHandshake(args, "fuzz")
    fds = _fds()
    failed = False
    offered: tuple[RegionInfo, ...] = ()
    sent: list[wire.Message] = []
    for selector, raw in records:
        message = _decode(raw)
        if message is None:
            continue
        was_done = hs.done
        replies, failed = _feed(hs, message, fds.pick(selector), failed)
        if replies is None:
            continue
        how = (selector >> 2) & 3
        if hs.needs_memory and how != MEM_WITHHELD:
            more, regions = _offer(hs, args, how, fds)
            replies = replies + more
            offered = regions or offered
        _check_sends(replies)
        for item in replies:
            carries_fd = isinstance(item.message, wire.AddRegion | wire.AddRing)
            assert (item.fd is not None) == carries_fd, f"fd mismatch on {item.message!r}"
        sent += [item.message for item in replies]
        if hs.done and not was_done:
            TALLY.handshakes_done += 1
            check_client_result(hs, args, offered, sent)


def check_client_result(
    hs: ClientHandshake, args: Arguments, offered: tuple[RegionInfo, ...], sent: list[wire.Message]
) -> None:
    """A completed client handshake sent INIT, every region and ring, then CONNECT."""
    result = hs.result
    assert result.interface_id == args.id
    assert [m for m in sent if isinstance(m, wire.AddRegion)] == [
        wire.AddRegion(r.index, r.size) for r in offered
    ]
    kinds = [type(m) for m in sent]
    regions = len(offered)
    rings = len(result.s2m_rings) + len(result.m2s_rings)
    assert kinds == [wire.Init] + [wire.AddRegion] * regions + [wire.AddRing] * rings + [
        wire.Connect
    ], kinds


# -- seeds --------------------------------------------------------------------------------------


def record(message: wire.Message, fd: int = FD_NONE, memory: int = MEM_GOOD) -> bytes:
    """One record: selector byte plus the encoded message."""
    return bytes([fd | memory << 2]) + wire.encode(message)


def seeds() -> list[bytes]:
    """Well-formed inputs for every target, so mutation starts deep in each machine."""
    out = [bytes([0]) + wire.encode(m) for m in _sample_messages()]
    ring = 128 + 16 * 16
    server_ok = bytes([1]) + bytes([0, 0, 1, 9, 0, 63])
    server_ok += record(wire.Init(VERSION, 0, 0, b"", b"fuzz-client"))
    server_ok += record(wire.AddRegion(0, 2 * ring + 4096), FD_MEMFD)
    server_ok += record(wire.AddRing(1, 0, 0, 0, 4), FD_EVENTFD)
    server_ok += record(wire.AddRing(0, 0, 0, ring, 4), FD_EVENTFD)
    server_ok += record(wire.Connect(b"fuzz-client"))
    out.append(server_ok)
    out.append(server_ok + record(wire.Disconnect(1, b"bye")))
    two = bytes([1]) + bytes([1, 1, 1, 9, 2, 63])
    two += record(wire.Init(VERSION, 1, 1, b"s3cret", b"fuzz-client"))
    two += record(wire.AddRegion(0, 4096), FD_MEMFD)
    two += record(wire.AddRegion(1, 2 * ring), FD_MEMFD)
    two += record(wire.AddRing(1, 0, 1, 0, 4), FD_EVENTFD)
    two += record(wire.AddRing(0, 0, 1, ring, 4), FD_EVENTFD)
    two += record(wire.Connect(b"c"))
    out.append(two)
    hello = wire.Hello(b"srv", VERSION, VERSION, 3, 3, 3, 14)
    for regions in (1, 2):
        max_region = regions - 1
        client = bytes([2]) + bytes([0, 3, 2, 0, 0, 0])
        client += record(wire.Hello(b"srv", VERSION, VERSION, max_region, 3, 3, 14))
        client += record(wire.Ack()) * (regions + 3)  # INIT, regions, two rings
        client += record(wire.Connected(b"srv"))
        out.append(client)
    out.append(bytes([2]) + bytes(6) + record(hello, memory=MEM_NONE) + record(wire.Ack()))
    return out


def _sample_messages() -> list[wire.Message]:
    return [
        wire.NoneMsg(),
        wire.Ack(),
        wire.Hello(b"server", VERSION, VERSION, 255, 255, 255, 14),
        wire.Init(VERSION, 7, 0, b"secret", b"app"),
        wire.AddRegion(0, 1 << 20),
        wire.AddRing(1, 0, 0, 0, 10),
        wire.Connect(b"if"),
        wire.Connected(b"if"),
        wire.Disconnect(3, b"reason"),
    ]
