"""A hostile peer against our server and our client.

Every attack must end in a disconnect with a reason (the DISCONNECT the hostile
peer reads, and ``disconnect_reason`` where an interface was involved) or in
counted drops, with the process alive and every fd it received closed again.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import memif
import pytest
from memif import MemoryConfig, State

from tests.conftest import open_fds
from tests.memif import hostile_peer as hp
from tests.memif.conftest import describe, settled_fds, wait_until

TIMEOUT = 0.3  # handshake timeout of the sockets under attack
LOG2 = 4
RING = 1 << LOG2
RING_BYTES = 128 + 16 * RING
REGION = 2 * RING_BYTES + 2 * RING * 2048  # the hostile client's one region


def still_serves(path: str, id: int = 0) -> None:
    """A well-behaved Python client can still connect and exchange a packet."""
    with memif.Socket(path, reconnect_interval=0.05) as sock:
        client = sock.create_interface(
            id=id, role="client", memory=MemoryConfig(log2_ring_size=LOG2)
        )
        sock.start()
        assert client.wait_connected(5), client.disconnect_reason
        assert client.tx_queue(0).send(b"still alive")


@dataclass
class Victim:
    """Our Socket under attack and the interfaces on it."""

    sock: memif.Socket
    iface: memif.Interface
    path: str
    baseline: set[int]
    peers: list[hp.Peer]

    def peer(self) -> hp.Peer:
        """A hostile client connected to our server."""
        made = hp.dial(self.path)
        self.peers.append(made)
        return made

    def settled(self) -> None:
        """Close every hostile peer, then our fds must be as before the attack."""
        for p in self.peers:
            p.close()
        self.peers.clear()
        after = settled_fds(self.baseline)
        assert after == self.baseline, f"leaked {describe(after - self.baseline)}"
        loop = f"memif {self.path}"
        assert any(t.name == loop for t in threading.enumerate()), "the event loop died"


@pytest.fixture
def server(sock_dir: Path, no_fd_leak: None) -> Iterator[Victim]:
    """Our server: id 0 plain, id 1 with a secret and accepting unsealed memory."""
    path = str(sock_dir / "victim.sock")
    sock = memif.Socket(path, handshake_timeout=TIMEOUT, app_name="victim")
    iface = sock.create_interface(
        id=0, role="server", name="victim", memory=MemoryConfig(log2_ring_size=LOG2)
    )
    sock.create_interface(
        id=1,
        role="server",
        name="open",
        secret="pw",
        accept_unsealed_regions=True,
        memory=MemoryConfig(log2_ring_size=LOG2),
    )
    sock.start()
    victim = Victim(sock, iface, path, open_fds(), [])
    yield victim
    for p in victim.peers:
        p.close()
    sock.close()


@dataclass
class ClientVictim(Victim):
    """Our client and the hostile server it connects to."""

    listener: hp.Listener | None = None

    def accept(self) -> hp.Peer:
        assert self.listener is not None
        made = self.listener.accept()
        self.peers.append(made)
        return made

    def retry_now(self) -> None:
        """Make our client reconnect at once instead of after its long retry interval."""
        self.iface.set_admin_up(False)
        self.iface.set_admin_up(True)


@pytest.fixture
def client(sock_dir: Path, no_fd_leak: None) -> Iterator[ClientVictim]:
    """Our client (2 queue pairs wanted) in front of a hostile listener."""
    path = str(sock_dir / "hostile.sock")
    listener = hp.Listener(path)
    sock = memif.Socket(path, handshake_timeout=TIMEOUT, reconnect_interval=60)
    iface = sock.create_interface(
        id=0,
        role="client",
        name="victim",
        memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=LOG2),
    )
    victim = ClientVictim(sock, iface, path, open_fds(), [], listener)
    sock.start()
    yield victim
    for p in victim.peers:
        p.close()
    sock.close()
    listener.close()


# -- hostile client: the handshake ---------------------------------------------------------------

Script = Callable[[hp.Peer, hp.ClientMemory], None]


def init_ok(peer: hp.Peer, mem: hp.ClientMemory) -> None:
    peer.expect(hp.HELLO)
    peer.send(hp.init())
    peer.expect(hp.ACK)


def region_ok(peer: hp.Peer, mem: hp.ClientMemory) -> None:
    init_ok(peer, mem)
    peer.send(hp.add_region(0, mem.size), [mem.fd])
    peer.expect(hp.ACK)


def rings_ok(peer: hp.Peer, mem: hp.ClientMemory) -> None:
    region_ok(peer, mem)
    for ring in mem.rings:
        peer.send(hp.add_ring(ring.s2m, ring.index, 0, ring.offset, LOG2), [ring.eventfd])
        peer.expect(hp.ACK)


def after_hello(data: bytes, fds: int = 0) -> Script:
    def script(peer: hp.Peer, mem: hp.ClientMemory) -> None:
        peer.expect(hp.HELLO)
        peer.send(data, [r.eventfd for r in mem.rings][:fds])

    return script


def then(
    step: Script,
    data: Callable[[hp.ClientMemory], bytes],
    fds: Callable[[hp.ClientMemory], list[int]] = lambda m: [],
) -> Script:
    def script(peer: hp.Peer, mem: hp.ClientMemory) -> None:
        step(peer, mem)
        peer.send(data(mem), fds(mem))

    return script


def pipe_fd(mem: hp.ClientMemory) -> list[int]:
    """A pipe's read end, kept open by the memory object for the test's duration."""
    return mem.adopt(*os.pipe())[:1]


def other_memfd(mem: hp.ClientMemory) -> list[int]:
    return mem.adopt(os.memfd_create("not an eventfd"))


def many_fds(count: int) -> Callable[[hp.ClientMemory], list[int]]:
    def fds(mem: hp.ClientMemory) -> list[int]:
        return mem.adopt(*(os.eventfd(0) for _ in range(count)))

    return fds


def region_fd(mem: hp.ClientMemory) -> list[int]:
    return [mem.fd]


def ring_fd(mem: hp.ClientMemory) -> list[int]:
    return [mem.rings[0].eventfd]


def s2m_only(peer: hp.Peer, mem: hp.ClientMemory) -> None:
    region_ok(peer, mem)
    peer.send(hp.add_ring(True, 0, 0, 0, LOG2), ring_fd(mem))
    peer.expect(hp.ACK)


def s2m_rings(count: int) -> Script:
    """INIT, a region and ``count`` S2M rings (all on one eventfd), each ACKed."""

    def script(peer: hp.Peer, mem: hp.ClientMemory) -> None:
        region_ok(peer, mem)
        for index in range(count):
            peer.send(hp.add_ring(True, index, 0, 0, LOG2), ring_fd(mem))
            peer.expect(hp.ACK)

    return script


def s2m_ring(
    offset: int = 0, *, region: int = 0, log2: int = LOG2, index: int = 0
) -> Callable[[hp.ClientMemory], bytes]:
    return lambda mem: hp.add_ring(True, index, region, offset, log2)


def names_interface(script: Script) -> bool:
    """True for attacks made with :func:`then`: INIT got through, so the interface is
    known and learns the reason too (before INIT nobody is blamed)."""
    return script.__qualname__.startswith("then.")


HANDSHAKE_ATTACKS: list[tuple[str, Script, str]] = [
    ("short message", after_hello(hp.init()[:64]), "control message of 64 bytes, expected 128"),
    ("long message", after_hello(hp.init() + bytes(72)), "control message of 200 bytes"),
    ("huge message", after_hello(bytes(4096)), "control message of 256 bytes"),
    ("unknown type", after_hello(hp.message(42)), "unknown message type 42"),
    ("NONE", after_hello(hp.message(hp.NONE)), "unexpected NONE while waiting for INIT"),
    ("HELLO from a client", after_hello(hp.hello()), "unexpected HELLO while waiting for INIT"),
    (
        "ring before INIT",
        after_hello(hp.add_ring(True, 0, 0, 0, LOG2), fds=1),
        "unexpected ADD_RING while waiting for INIT",
    ),
    ("CONNECT before INIT", after_hello(hp.connect()), "unexpected CONNECT while waiting for INIT"),
    ("INIT with an fd", after_hello(hp.init(), fds=1), "unexpected file descriptor with INIT"),
    ("old version", after_hello(hp.init(version=0x0100)), "unsupported version 1.0"),
    ("unknown id", after_hello(hp.init(id=9)), "no server interface with id 9"),
    ("wrong secret", after_hello(hp.init(id=1, secret=b"guess")), "secret mismatch"),
    ("missing secret", after_hello(hp.init(id=1)), "secret mismatch"),
    ("unknown mode", after_hello(hp.init(mode=7)), "unknown mode 7"),
    (
        "second INIT",
        then(init_ok, lambda m: hp.init()),
        "unexpected INIT while waiting for ADD_REGION",
    ),
    (
        "CONNECT before memory",
        then(init_ok, lambda m: hp.connect()),
        "unexpected CONNECT while waiting for ADD_REGION",
    ),
    (
        "region without fd",
        then(init_ok, lambda m: hp.add_region(0, m.size)),
        "ADD_REGION without its file descriptor",
    ),
    (
        "region with two fds",
        then(init_ok, lambda m: hp.add_region(0, m.size), many_fds(2)),
        "2 file descriptors in one message",
    ),
    (
        "region with 20 fds",
        then(init_ok, lambda m: hp.add_region(0, m.size), many_fds(20)),
        "ancillary data truncated",
    ),
    (
        "region index 1 first",
        then(init_ok, lambda m: hp.add_region(1, m.size), region_fd),
        "region index 1 out of order, expected 0",
    ),
    (
        "region of size 0",
        then(init_ok, lambda m: hp.add_region(0, 0), region_fd),
        "region 0 size 0 outside 1..4294967296",
    ),
    (
        "region larger than its memfd",
        then(init_ok, lambda m: hp.add_region(0, m.size + 1), region_fd),
        f"is {REGION} bytes, announced {REGION + 1}",
    ),
    (
        "region of 2^64-1 bytes",
        then(init_ok, lambda m: hp.add_region(0, (1 << 64) - 1), region_fd),
        "outside 1..4294967296",
    ),
    (
        "region is a pipe",
        then(init_ok, lambda m: hp.add_region(0, 4096), pipe_fd),
        "region 0 is 0 bytes, announced 4096",
    ),
    ("ring without fd", then(region_ok, s2m_ring()), "ADD_RING without its file descriptor"),
    (
        "ring fd is a memfd",
        then(region_ok, s2m_ring(), other_memfd),
        "S2M ring 0: file descriptor is not an eventfd (/memfd:not an eventfd",
    ),
    ("ring fd is a pipe", then(region_ok, s2m_ring(), pipe_fd), "not an eventfd"),
    (
        "ring past the region end",
        then(region_ok, lambda m: hp.add_ring(True, 0, 0, m.size - 8, LOG2), ring_fd),
        f"S2M ring 0 at offset {REGION - 8} runs past the end of region 0 ({REGION} bytes)",
    ),
    (
        "ring at offset 2^32-1",
        then(region_ok, s2m_ring(0xFFFFFFFF), ring_fd),
        "runs past the end of region 0",
    ),
    ("ring in region 1", then(region_ok, s2m_ring(region=1), ring_fd), "ring in unknown region 1"),
    (
        "ring over 2^14",
        then(region_ok, s2m_ring(log2=15), ring_fd),
        "log2 ring size 15 over the limit 14",
    ),
    (
        "ring index 1 first",
        then(region_ok, s2m_ring(index=1), ring_fd),
        "S2M ring index 1 out of order, expected 0",
    ),
    (
        "257th S2M ring",
        then(s2m_rings(256), lambda m: hp.add_ring(True, 256, 0, 0, LOG2), ring_fd),
        "S2M ring 256 over the limit of 256 rings",
    ),
    (
        "region after rings",
        then(rings_ok, lambda m: hp.add_region(1, 4096), region_fd),
        "ADD_REGION after ADD_RING",
    ),
    (
        "CONNECT without M2S ring",
        then(s2m_only, lambda m: hp.connect()),
        "CONNECT without any M2S ring",
    ),
    (
        "CONNECTED from a client",
        then(rings_ok, lambda m: hp.connected()),
        "unexpected CONNECTED while waiting for ADD_REGION, ADD_RING or CONNECT",
    ),
    ("ACK from a client", then(region_ok, lambda m: hp.ack()), "unexpected ACK"),
]


@pytest.mark.parametrize(
    ("script", "reason"), [a[1:] for a in HANDSHAKE_ATTACKS], ids=[a[0] for a in HANDSHAKE_ATTACKS]
)
def test_server_refuses_bad_handshake(server: Victim, script: Script, reason: str) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        script(peer, mem)
        got = peer.disconnect_reason()
        assert reason in got
        peer.wait_closed()
    finally:
        mem.close()
    assert not server.iface.is_connected
    server.settled()
    if names_interface(script):
        assert wait_until(lambda: server.iface.disconnect_reason.startswith(got))
    else:
        assert server.iface.disconnect_reason == ""
    still_serves(server.path)


def test_interface_learns_why_its_handshake_failed(server: Victim) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2, sealed=False)
    try:
        init_ok(peer, mem)
        peer.send(hp.add_region(0, mem.size), [mem.fd])
        reason = peer.disconnect_reason()
    finally:
        mem.close()
    assert "region 0 is not sealed against shrinking (F_SEAL_SHRINK)" in reason
    assert wait_until(lambda: server.iface.disconnect_reason.startswith(reason))
    server.settled()


@pytest.mark.parametrize(
    ("memory", "reason"),
    [
        ({"cookie": 0}, "S2M ring 0: wrong cookie 0x0"),
        ({"cookie": 0xDEADBEEF}, "S2M ring 0: wrong cookie 0xdeadbeef"),
    ],
)
def test_server_checks_the_ring_cookie(server: Victim, memory: dict[str, Any], reason: str) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2, **memory)
    try:
        rings_ok(peer, mem)
        peer.send(hp.connect())
        assert peer.disconnect_reason() == reason
    finally:
        mem.close()
    assert wait_until(lambda: server.iface.disconnect_reason == reason)
    server.settled()


def test_server_refuses_unaligned_ring(server: Victim) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        region_ok(peer, mem)
        peer.send(hp.add_ring(True, 0, 0, 4, LOG2), [mem.rings[0].eventfd])
        peer.expect(hp.ACK)
        m2s = mem.ring(False)
        peer.send(hp.add_ring(False, 0, 0, m2s.offset, LOG2), [m2s.eventfd])
        peer.expect(hp.ACK)
        peer.send(hp.connect())
        assert "ring at offset 4" in peer.disconnect_reason()
    finally:
        mem.close()
    server.settled()


def test_unsealed_memory_is_accepted_where_allowed(server: Victim) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2, sealed=False)
    try:
        mem.offer(peer, id=1, secret=b"pw")
        open_iface = server.sock.interfaces[1]
        assert open_iface.wait_connected(5)
        peer.close()
        assert open_iface.wait_disconnected(5)
        assert open_iface.disconnect_reason == "peer closed"
    finally:
        mem.close()
    server.settled()


@pytest.mark.parametrize("stall_after", ["accept", "HELLO", "INIT", "region", "rings"])
def test_handshake_that_never_finishes_times_out(server: Victim, stall_after: str) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        if stall_after == "HELLO":
            peer.expect(hp.HELLO)
        elif stall_after == "INIT":
            init_ok(peer, mem)
        elif stall_after == "region":
            region_ok(peer, mem)
        elif stall_after == "rings":
            rings_ok(peer, mem)
        assert peer.disconnect_reason() == "handshake timed out"
    finally:
        mem.close()
    if stall_after in ("region", "rings", "INIT"):
        assert wait_until(lambda: server.iface.disconnect_reason == "handshake timed out")
    server.settled()
    still_serves(server.path)


@pytest.mark.parametrize("stage", ["INIT", "region", "rings"])
def test_peer_that_vanishes_mid_handshake(server: Victim, stage: str) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        {"INIT": init_ok, "region": region_ok, "rings": rings_ok}[stage](peer, mem)
        peer.close()
    finally:
        mem.close()
    assert wait_until(lambda: server.iface.disconnect_reason == "peer closed")
    server.settled()


def test_peer_that_says_goodbye_mid_handshake(server: Victim) -> None:
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        region_ok(peer, mem)
        peer.send(hp.disconnect(77, b"changed my mind"))
        peer.wait_closed()
    finally:
        mem.close()
    assert wait_until(lambda: "changed my mind (code 77)" in server.iface.disconnect_reason)
    server.settled()


def test_zero_length_message_drops_the_peer(server: Victim) -> None:
    peer = server.peer()
    peer.expect(hp.HELLO)
    peer.send(b"")
    peer.wait_closed()
    server.settled()
    still_serves(server.path)


def test_peer_that_connects_and_leaves_at_once(server: Victim) -> None:
    for _ in range(20):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        raw.connect(server.path)
        raw.close()
    server.settled()
    still_serves(server.path)


def test_peer_that_leaves_before_hello_does_not_break_poll(
    sock_dir: Path, no_fd_leak: None
) -> None:
    """Driven by the caller's poll(), a peer gone before HELLO must not raise out of it."""
    path = str(sock_dir / "poll.sock")
    with memif.Socket(path) as sock:
        sock.create_interface(role="server")
        for _ in range(3):
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            raw.connect(path)
            raw.close()
        while sock.poll(0.05):
            pass


# -- hostile client: after CONNECTED ---------------------------------------------------------------


@dataclass
class Connected:
    peer: hp.Peer
    mem: hp.ClientMemory
    iface: memif.Interface

    @property
    def s2m(self) -> hp.Ring:
        return self.mem.ring(True)

    @property
    def m2s(self) -> hp.Ring:
        return self.mem.ring(False)


@pytest.fixture
def attacker(server: Victim) -> Iterator[Connected]:
    """A hostile client that completed a correct handshake with our server."""
    peer = server.peer()
    mem = hp.ClientMemory(log2=LOG2)
    try:
        mem.offer(peer)
        assert server.iface.wait_connected(5)
        yield Connected(peer, mem, server.iface)
    finally:
        mem.close()
    server.settled()


def publish(c: Connected, descriptors: list[dict[str, int] | bytes]) -> None:
    """Write descriptors from the current head on (bytes: a good packet) and move head."""
    _, _, head, _ = c.mem.header(c.s2m)
    for n, item in enumerate(descriptors):
        slot = head + n
        if isinstance(item, bytes):
            c.mem.put_packet(c.s2m, slot, item)
        else:
            c.mem.write_descriptor(c.s2m, slot, **item)
    c.mem.set_head(c.s2m, head + len(descriptors))


def test_well_behaved_hostile_peer_is_understood(attacker: Connected) -> None:
    """The control case: what the hostile peer writes correctly does arrive."""
    publish(attacker, [b"first", b"second" * 100])
    rx = attacker.iface.rx_queue(0)
    assert rx.recv_burst() == [b"first", b"second" * 100]
    _, _, head, tail = attacker.mem.header(attacker.s2m)
    assert head == tail == 2
    # And our server fills buffers the hostile client posts.
    attacker.mem.set_head(attacker.m2s, RING)
    assert attacker.iface.tx_queue(0).send_burst([b"reply", b"x" * 3000]) == 2
    _, _, head, tail = attacker.mem.header(attacker.m2s)
    assert tail == 3  # the 3000-byte packet took two 2048-byte buffers
    flags, region, length, offset = attacker.mem.descriptor(attacker.m2s, 0)
    assert (flags, region, length) == (0, 0, 5)
    assert attacker.mem.read(region, offset, length) == b"reply"
    assert attacker.mem.descriptor(attacker.m2s, 1)[0] == hp.NEXT


BAD_DESCRIPTORS: list[tuple[str, list[dict[str, int]], int]] = [
    ("offset past the region", [{"length": 10, "offset": 1 << 20}], 1),
    ("offset crossing the end", [{"length": 64, "offset": REGION - 32}], 1),
    ("unknown region", [{"length": 10, "offset": 0, "region": 1}], 1),
    ("region 65535", [{"length": 10, "offset": 0, "region": 0xFFFF}], 1),
    ("zero length", [{"length": 0, "offset": 4096}], 1),
    ("length 2^32-1", [{"length": 0xFFFFFFFF, "offset": 0}], 1),
    ("offset 2^32-1", [{"length": 1, "offset": 0xFFFFFFFF}], 1),
    ("length over 65535", [{"length": 65536, "offset": 0}], 1),
    (
        "chain over 65535 bytes",
        [{"length": 65535, "offset": 0, "flags": hp.NEXT}, {"length": 1, "offset": 0}],
        1,
    ),
    (
        "bad link in a chain",
        [
            {"length": 100, "offset": 0, "flags": hp.NEXT},
            {"length": 100, "offset": 1 << 30, "flags": hp.NEXT},
            {"length": 100, "offset": 0},
        ],
        1,
    ),
]


@pytest.mark.parametrize(
    ("descriptors", "bad"), [b[1:] for b in BAD_DESCRIPTORS], ids=[b[0] for b in BAD_DESCRIPTORS]
)
def test_bad_descriptors_are_dropped_and_counted(
    attacker: Connected, descriptors: list[dict[str, int]], bad: int
) -> None:
    assert attacker.mem.size == REGION  # the offsets above are chosen for this region
    publish(attacker, [b"before", *descriptors, b"after"])
    rx = attacker.iface.rx_queue(0)
    assert rx.recv_burst() == [b"before", b"after"]
    stats = attacker.iface.stats()["rx"]
    assert stats["drops"] == 1 and stats["bad_descriptors"] >= bad
    assert stats["packets"] == 2
    _, _, head, tail = attacker.mem.header(attacker.s2m)
    assert tail == head  # the bad slots were handed back too
    assert attacker.iface.is_connected
    publish(attacker, [b"later"])
    assert rx.recv_burst() == [b"later"]


def test_chain_that_never_ends(attacker: Connected) -> None:
    publish(attacker, [b"ok"] + [{"length": 8, "offset": 0, "flags": hp.NEXT}] * 5)
    rx = attacker.iface.rx_queue(0)
    assert rx.recv_burst() == [b"ok"]
    stats = attacker.iface.stats()["rx"]
    assert stats["drops"] == 1 and stats["bad_descriptors"] >= 1
    _, _, head, tail = attacker.mem.header(attacker.s2m)
    assert tail == head
    assert attacker.iface.is_connected


@pytest.mark.parametrize("ahead", [RING + 1, 1000, 0xFFFF])
def test_head_far_ahead_of_tail_disconnects(attacker: Connected, ahead: int) -> None:
    attacker.mem.set_head(attacker.s2m, ahead)
    assert attacker.iface.rx_queue(0).recv_burst() == []
    reason = attacker.peer.disconnect_reason()
    assert f"S2M head is {ahead} slots ahead of tail, ring has {RING}" in reason
    assert wait_until(lambda: not attacker.iface.is_connected)
    assert f"{ahead} slots ahead" in attacker.iface.disconnect_reason
    assert attacker.iface.stats()["rx"]["bad_descriptors"] >= 1


@pytest.mark.parametrize(
    ("descriptor", "reason"),
    [
        ({"length": 2048, "offset": 1 << 20}, "points outside region"),
        ({"length": 2048, "offset": 0, "region": 3}, "points outside region"),
        ({"length": 0, "offset": 0}, "points outside region"),
        ({"length": 0xFFFFFFFF, "offset": 0}, "points outside region"),
    ],
    ids=["offset", "region", "zero-capacity", "huge-capacity"],
)
def test_bad_posted_buffer_disconnects(
    attacker: Connected, descriptor: dict[str, int], reason: str
) -> None:
    attacker.mem.write_descriptor(attacker.m2s, 0, **descriptor)
    attacker.mem.set_head(attacker.m2s, 1)
    assert attacker.iface.tx_queue(0).send_burst([b"into the void"]) == 0
    assert reason in attacker.peer.disconnect_reason()
    assert wait_until(lambda: reason in attacker.iface.disconnect_reason)
    assert attacker.iface.stats()["tx"]["bad_descriptors"] >= 1


def test_posted_head_far_ahead_disconnects(attacker: Connected) -> None:
    attacker.mem.set_head(attacker.m2s, 1000)
    assert attacker.iface.tx_queue(0).send_burst([b"x"]) == 0
    assert "M2S head is 1000 slots ahead of tail" in attacker.peer.disconnect_reason()


def test_message_after_connected_disconnects(attacker: Connected) -> None:
    attacker.peer.send(hp.ack())
    assert attacker.peer.disconnect_reason() == "unexpected ACK while connected"
    assert wait_until(lambda: attacker.iface.disconnect_reason == "unexpected ACK while connected")


def test_fd_after_connected_disconnects(attacker: Connected) -> None:
    attacker.peer.send(hp.ack(), [attacker.s2m.eventfd])
    assert attacker.peer.disconnect_reason() == "unexpected file descriptor with ACK"
    assert wait_until(lambda: not attacker.iface.is_connected)


def test_goodbye_with_an_fd_after_connected(attacker: Connected) -> None:
    attacker.peer.send(hp.disconnect(0, b"bye"), [attacker.s2m.eventfd])
    assert wait_until(lambda: "bye (code 0)" in attacker.iface.disconnect_reason)


# -- hostile server: the handshake -----------------------------------------------------------------

ServerScript = Callable[[hp.Peer], None]


def greet(data: bytes, fds: int = 0) -> ServerScript:
    def script(peer: hp.Peer) -> None:
        made = [os.eventfd(0) for _ in range(fds)]
        try:
            peer.send(data, made)
        finally:
            for fd in made:
                os.close(fd)

    return script


def after_init(data: bytes) -> ServerScript:
    def script(peer: hp.Peer) -> None:
        peer.send(hp.hello())
        peer.expect(hp.INIT)
        peer.send(data)

    return script


def after_region(data: bytes) -> ServerScript:
    def script(peer: hp.Peer) -> None:
        after_init(hp.ack())(peer)
        peer.expect(hp.ADD_REGION)
        peer.send(data)

    return script


SERVER_ATTACKS: list[tuple[str, ServerScript, str]] = [
    ("short HELLO", greet(hp.hello()[:100]), "control message of 100 bytes, expected 128"),
    ("huge HELLO", greet(hp.hello() * 8), "control message of 256 bytes"),
    ("unknown type", greet(hp.message(0x1234)), "unknown message type 4660"),
    ("HELLO with an fd", greet(hp.hello(), fds=1), "unexpected file descriptor with HELLO"),
    ("HELLO with 3 fds", greet(hp.hello(), fds=3), "3 file descriptors in one message"),
    ("HELLO with 30 fds", greet(hp.hello(), fds=30), "ancillary data truncated"),
    ("ACK first", greet(hp.ack()), "unexpected ACK while waiting for HELLO"),
    ("CONNECTED first", greet(hp.connected()), "unexpected CONNECTED while waiting for HELLO"),
    ("INIT from a server", greet(hp.init()), "unexpected INIT while waiting for HELLO"),
    (
        "version 3 only",
        greet(hp.hello(min_version=0x0300, max_version=0x0300)),
        "server speaks versions 0x0300..0x0300, we need 0x0200",
    ),
    ("version 1 only", greet(hp.hello(min_version=0x0100, max_version=0x0100)), "versions"),
    (
        "CONNECTED instead of ACK",
        after_init(hp.connected()),
        "unexpected CONNECTED while waiting for ACK",
    ),
    ("second HELLO", after_init(hp.hello()), "unexpected HELLO while waiting for ACK"),
    (
        "ADD_REGION from a server",
        after_region(hp.add_region(0, 4096)),
        "ADD_REGION without its file descriptor",
    ),
    ("ACK with an fd", greet(hp.ack(), fds=1), "unexpected file descriptor with ACK"),
    ("garbage after region", after_region(bytes(128)), "unexpected NONE while waiting for ACK"),
]


@pytest.mark.parametrize(
    ("script", "reason"), [a[1:] for a in SERVER_ATTACKS], ids=[a[0] for a in SERVER_ATTACKS]
)
def test_client_refuses_bad_server(client: ClientVictim, script: ServerScript, reason: str) -> None:
    peer = client.accept()
    script(peer)
    got = peer.disconnect_reason()
    assert reason in got
    peer.wait_closed()
    assert wait_until(lambda: client.iface.disconnect_reason.startswith(got))
    assert client.iface.state is State.DISCONNECTED
    client.settled()


def test_client_recovers_after_a_bad_server(client: ClientVictim) -> None:
    peer = client.accept()
    greet(hp.message(99))(peer)
    assert "unknown message type 99" in peer.disconnect_reason()
    client.retry_now()
    peer = client.accept()
    memory, init = hp.serve(peer)
    try:
        assert client.iface.wait_connected(5)
        version, id_, mode, secret, name = init.unpack("HIB24s32s")
        assert (version, id_, mode, secret) == (hp.VERSION, 0, 0, bytes(24))
        assert name.rstrip(b"\0") == b"memif-python"
    finally:
        memory.close()
    client.settled()


@pytest.mark.parametrize("stall_after", ["accept", "HELLO", "ACK"])
def test_server_that_never_finishes_times_out(client: ClientVictim, stall_after: str) -> None:
    peer = client.accept()
    if stall_after in ("HELLO", "ACK"):
        peer.send(hp.hello())
        peer.expect(hp.INIT)
    if stall_after == "ACK":
        peer.send(hp.ack())
        peer.expect(hp.ADD_REGION)  # our client now holds its memory, waiting for ACK
    assert peer.disconnect_reason() == "handshake timed out"
    assert wait_until(lambda: client.iface.disconnect_reason == "handshake timed out")
    client.settled()


def test_server_that_vanishes_mid_handshake(client: ClientVictim) -> None:
    peer = client.accept()
    after_init(hp.ack())(peer)
    peer.expect(hp.ADD_REGION)
    peer.close()
    assert wait_until(lambda: client.iface.disconnect_reason == "peer closed")
    client.settled()


def test_server_goodbye(client: ClientVictim) -> None:
    peer = client.accept()
    peer.send(hp.disconnect(9, b"not today"))
    peer.wait_closed()
    assert wait_until(lambda: "not today (code 9)" in client.iface.disconnect_reason)
    client.settled()


@pytest.mark.parametrize(
    ("limits", "regions", "rings", "log2"),
    [
        ({"max_region": 0}, 1, 4, LOG2),
        ({"max_region": 1}, 2, 4, LOG2),
        ({"max_s2m": 0, "max_m2s": 0}, 2, 2, LOG2),
        ({"max_log2": 2}, 2, 4, 2),
        ({"max_log2": 0, "max_region": 0, "max_s2m": 0, "max_m2s": 0}, 1, 2, 0),
    ],
    ids=["one-region", "two-regions", "one-pair", "small-rings", "one-slot-rings"],
)
def test_client_follows_small_server_limits(
    client: ClientVictim, limits: dict[str, int], regions: int, rings: int, log2: int
) -> None:
    peer = client.accept()
    memory, _ = hp.serve(peer, hp.hello(**limits))
    try:
        assert len(memory.maps) == regions and len(memory.rings) == rings
        assert {r.log2 for r in memory.rings} == {log2}
        assert client.iface.wait_connected(5)
        assert client.iface.num_tx_connected == rings // 2
        ring_bytes = 128 + 16 * (1 << log2)
        buffers = rings * (1 << log2) * 2048
        sizes = [len(m) for m in memory.maps]
        assert sizes == (
            [rings * ring_bytes + buffers] if regions == 1 else [rings * ring_bytes, buffers]
        )
        # The tiny rings still carry packets.
        assert client.iface.tx_queue(0).send(b"tiny")
        s2m = memory.ring(True)
        _, _, head, _ = memory.header(s2m)
        assert head == 1
        _, region, length, offset = memory.descriptor(s2m, 0)
        assert memory.read(region, offset, length) == b"tiny"
    finally:
        memory.close()
    client.settled()


# -- hostile server: after CONNECTED ---------------------------------------------------------------


@dataclass
class Served:
    peer: hp.Peer
    memory: hp.OfferedMemory
    iface: memif.Interface

    @property
    def m2s(self) -> hp.Ring:
        return self.memory.ring(False)

    @property
    def s2m(self) -> hp.Ring:
        return self.memory.ring(True)

    def fill(self, items: list[bytes | dict[str, int]]) -> None:
        """As the server, fill posted M2S buffers (bytes) or rewrite descriptors, move tail."""
        _, _, _, tail = self.memory.header(self.m2s)
        for n, item in enumerate(items):
            slot = tail + n
            if isinstance(item, bytes):
                _, region, _, offset = self.memory.descriptor(self.m2s, slot)
                self.memory.write(region, offset, item)
                self.memory.write_descriptor(
                    self.m2s, slot, length=len(item), offset=offset, region=region
                )
            else:
                self.memory.write_descriptor(self.m2s, slot, **item)
        self.memory.set_tail(self.m2s, tail + len(items))


@pytest.fixture
def victim_client(client: ClientVictim) -> Iterator[Served]:
    """Our client connected to a hostile server that played the handshake straight."""
    peer = client.accept()
    memory, _ = hp.serve(peer)
    try:
        assert client.iface.wait_connected(5)
        assert wait_until(lambda: memory.header(memory.ring(False))[2] == RING)  # buffers posted
        yield Served(peer, memory, client.iface)
    finally:
        memory.close()
    client.settled()


def test_hostile_server_packets_arrive(victim_client: Served) -> None:
    victim_client.fill([b"hello", b"world" * 300])
    assert victim_client.iface.rx_queue(0).recv_burst() == [b"hello", b"world" * 300]
    _, _, head, tail = victim_client.memory.header(victim_client.m2s)
    assert (head, tail) == (RING + 2, 2)  # both buffers posted again


CLIENT_BAD_DESCRIPTORS: list[tuple[str, dict[str, int]]] = [
    ("longer than a buffer", {"length": 2049, "offset": 0}),
    ("length 2^32-1", {"length": 0xFFFFFFFF, "offset": 0}),
    ("zero length", {"length": 0, "offset": 0}),
    ("offset past the region", {"length": 10, "offset": 1 << 24}),
    ("offset 2^32-1", {"length": 10, "offset": 0xFFFFFFFF}),
    ("unknown region", {"length": 10, "offset": 0, "region": 9}),
]


@pytest.mark.parametrize(
    "descriptor", [b[1] for b in CLIENT_BAD_DESCRIPTORS], ids=[b[0] for b in CLIENT_BAD_DESCRIPTORS]
)
def test_client_drops_bad_descriptors(victim_client: Served, descriptor: dict[str, int]) -> None:
    victim_client.fill([b"before", descriptor, b"after"])
    rx = victim_client.iface.rx_queue(0)
    assert rx.recv_burst() == [b"before", b"after"]
    stats = victim_client.iface.stats()["rx"]
    assert stats["drops"] == 1 and stats["bad_descriptors"] == 1 and stats["packets"] == 2
    _, _, head, tail = victim_client.memory.header(victim_client.m2s)
    assert head == RING + 3 and tail == 3  # all three buffers were posted again
    # The reposted descriptor is pristine again: our own buffer, full length.
    _, region, length, _ = victim_client.memory.descriptor(victim_client.m2s, 1)
    assert (region, length) == (1, 2048)
    assert victim_client.iface.is_connected


def test_client_drops_a_chain_that_never_ends(victim_client: Served) -> None:
    victim_client.fill(
        [
            b"ok",
            {"length": 8, "offset": 0, "flags": hp.NEXT, "region": 1},
            {"length": 8, "offset": 0, "flags": hp.NEXT, "region": 1},
        ]
    )
    assert victim_client.iface.rx_queue(0).recv_burst() == [b"ok"]
    stats = victim_client.iface.stats()["rx"]
    assert stats["drops"] == 1 and stats["bad_descriptors"] >= 1


@pytest.mark.parametrize("tail", [RING + 1, 1000, 0xFFFF])
def test_client_disconnects_when_tail_runs_past_posted_buffers(
    victim_client: Served, tail: int
) -> None:
    victim_client.memory.set_tail(victim_client.m2s, tail)
    assert victim_client.iface.rx_queue(0).recv_burst() == []
    reason = victim_client.peer.disconnect_reason()
    assert f"M2S tail moved {tail} slots, past the {RING} posted buffers" in reason
    assert wait_until(lambda: reason in victim_client.iface.disconnect_reason)


def test_client_disconnects_when_s2m_tail_is_bogus(victim_client: Served) -> None:
    victim_client.memory.set_tail(victim_client.s2m, 100)
    assert victim_client.iface.tx_queue(0).send_burst([b"x"]) == 0
    reason = victim_client.peer.disconnect_reason()
    assert "S2M tail is" in reason and "behind head" in reason
    assert wait_until(lambda: not victim_client.iface.is_connected)


def test_client_refuses_messages_after_connected(victim_client: Served) -> None:
    victim_client.peer.send(hp.hello())
    assert victim_client.peer.disconnect_reason() == "unexpected HELLO while connected"
    assert wait_until(
        lambda: victim_client.iface.disconnect_reason == "unexpected HELLO while connected"
    )
