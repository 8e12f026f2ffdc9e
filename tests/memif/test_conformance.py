"""Handshake conformance: libmemif and gomemif clients, VPP/DPDK/gomemif HELLOs, failures.

The clients (:mod:`tests.memif.peer_clients`) send, on a raw socket, exactly
the messages those libraries send, build their memory layouts, and move
packets through shared memory both ways; the server is the library's.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import memif
import pytest
from memif import FailureKind, HandshakeFailure, MemoryConfig, failures

from tests.memif import hostile_peer as hp
from tests.memif.conftest import wait_until
from tests.memif.peer_clients import (
    Flavour,
    Hello,
    PeerMemory,
    gomemif_geometry,
    init_message,
    libmemif_geometry,
    offer,
)

Serve = Callable[..., tuple[memif.Socket, memif.Interface]]


@pytest.fixture(autouse=True)
def fresh_log_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Earlier tests in this process may have used up the process-wide log budget."""
    monkeypatch.setattr(failures, "_LIMITER", failures._Limiter())


@pytest.fixture
def rng() -> random.Random:
    return random.Random(11)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Serve]:
    """Factory: our server Socket (loop running) with one server interface."""
    sockets: list[memif.Socket] = []

    def make(
        *, on_failure: Callable[[HandshakeFailure], object] | None = None, **args: object
    ) -> tuple[memif.Socket, memif.Interface]:
        sock = memif.Socket(
            str(sock_dir / f"c{len(sockets)}.sock"),
            app_name="ours",
            handshake_timeout=2.0,
            on_handshake_failure=on_failure,
        )
        sockets.append(sock)
        iface = sock.create_interface(**{"role": "server", "name": "srv", **args})  # type: ignore[arg-type]
        sock.start()
        return sock, iface

    yield make
    for sock in sockets:
        sock.close()


def collect(iface: memif.Interface, count: int) -> dict[int, list[bytes]]:
    """Packets per receive queue, until ``count`` arrived (or 5 s passed)."""
    got: dict[int, list[bytes]] = {}
    total = 0
    deadline = time.monotonic() + 5
    while total < count and time.monotonic() < deadline:
        for queue in iface.rx_queues:
            burst = queue.recv_burst(256)
            if burst:
                got.setdefault(queue.index, []).extend(burst)
                total += len(burst)
    return got


def server_to_client(iface: memif.Interface, mem: PeerMemory, queues: list[int]) -> None:
    """The server sends one packet on each of ``queues``; the client must find it there."""
    for q in queues:
        ring = mem.ring(False, q)
        mem.post(ring, 4)
        payload = f"to client ring {q}".encode() * 3
        deadline = time.monotonic() + 5
        while not iface.tx_queue(q).send(payload):
            assert time.monotonic() < deadline, f"no room on tx queue {q}"
            time.sleep(0.002)
        assert wait_until(lambda ring=ring: mem.header(ring)[3] == 1)  # type: ignore[misc]
        assert mem.receive(ring) == [payload]


def client_to_server(iface: memif.Interface, mem: PeerMemory, rings: list[int]) -> None:
    """One packet on each S2M ring in ``rings``; each must reach the queue that reads it."""
    sent = {}
    for r in rings:
        payload = f"from client ring {r}".encode() * 4
        mem.send(mem.ring(True, r), [payload])
        sent[r] = payload
    got = collect(iface, len(rings))
    queues = len(iface.rx_queues)
    want: dict[int, list[bytes]] = {}
    for r, payload in sent.items():
        want.setdefault(r % queues, []).append(payload)
    assert {q: sorted(p) for q, p in got.items()} == {q: sorted(p) for q, p in want.items()}


# -- HELLO -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "memory",
    [MemoryConfig(), MemoryConfig(num_queue_pairs=4, log2_ring_size=12, packet_buffer_size=64)],
    ids=["default", "4-pairs"],
)
def test_hello_announces_the_protocol_maxima(serve: Serve, memory: MemoryConfig) -> None:
    sock, _ = serve(memory=memory)
    peer = hp.dial(sock.path)
    try:
        hello = Hello.parse(peer.expect(hp.HELLO))
    finally:
        peer.close()
    assert (hello.name, hello.min_version, hello.max_version) == (b"ours", 0x0200, 0x0200)
    assert (hello.max_region, hello.max_m2s, hello.max_s2m, hello.max_log2) == (255, 255, 255, 14)


# -- gomemif and libmemif clients ------------------------------------------------------------------


@pytest.mark.parametrize("pairs", [1, 3])
def test_gomemif_client_connects_and_moves_packets(
    serve: Serve, rng: random.Random, pairs: int
) -> None:
    _, iface = serve()  # defaults: one queue pair, rings of 2^10
    peer = hp.dial(iface.socket.path)
    hello = Hello.parse(peer.expect(hp.HELLO))
    geometry = gomemif_geometry(hello, pairs=pairs, log2=10)
    assert (geometry.s2m, geometry.m2s) == (pairs, pairs)  # read as counts: never 0
    mem = PeerMemory("gomemif", geometry)
    with hp.closing(peer, mem):
        connected = offer(peer, "gomemif", mem, rng)
        assert connected.data[2:8] == b"srv\0\0\0"
        assert iface.wait_connected(5), iface.disconnect_reason
        assert iface.peer_name == "gomemif-if" and iface.remote_app_name == "gomemif"
        assert iface.rx_queue(0).rings == pairs
        client_to_server(iface, mem, list(range(pairs)))
        server_to_client(iface, mem, [0])
    assert iface.wait_disconnected(5)


@pytest.mark.parametrize(
    ("server_secret", "client_secret"),
    [(None, b""), (None, b"unexpected"), ("pw", b"pw")],
    ids=["no-secrets", "client-only", "both"],
)
def test_libmemif_client_with_stale_secret_bytes_connects(
    serve: Serve, rng: random.Random, server_secret: str | None, client_secret: bytes
) -> None:
    _, iface = serve(secret=server_secret)
    secret_field = init_message("libmemif", random.Random(11), id=0, secret=client_secret)[9:33]
    assert secret_field.startswith(client_secret) and secret_field[len(client_secret) + 1 :]
    assert secret_field.count(0) == (1 if client_secret else 0)  # stale bytes after it
    peer = hp.dial(iface.socket.path)
    hello = Hello.parse(peer.expect(hp.HELLO))
    mem = PeerMemory("libmemif", libmemif_geometry(hello, s2m=2, m2s=1, log2=12))
    with hp.closing(peer, mem):
        offer(peer, "libmemif", mem, rng, secret=client_secret)
        assert iface.wait_connected(5), iface.disconnect_reason
        assert iface.memory is not None and iface.memory.log2_ring_size == 12
        client_to_server(iface, mem, [0, 1])
        server_to_client(iface, mem, [0])
    assert iface.socket.refused_peers == 0
    assert sum(iface.socket.handshake_failures.values()) == 0


@pytest.mark.parametrize(
    ("flavour", "secret"),
    [("libmemif", b"wrong"), ("libmemif", b""), ("gomemif", b"pw")],
    ids=["libmemif-wrong", "libmemif-none", "gomemif-never-sends-it"],
)
def test_a_server_with_a_secret_still_refuses_a_mismatch(
    serve: Serve,
    rng: random.Random,
    caplog: pytest.LogCaptureFixture,
    flavour: Flavour,
    secret: bytes,
) -> None:
    caplog.set_level(logging.WARNING, logger="memif")
    seen: list[HandshakeFailure] = []
    sock, iface = serve(secret="pw", id=4, on_failure=seen.append)
    peer = hp.dial(sock.path)
    with hp.closing(peer):
        peer.expect(hp.HELLO)
        peer.send(init_message(flavour, rng, id=4, secret=secret))
        assert peer.disconnect_reason() == "secret mismatch"
        peer.wait_closed()
    assert wait_until(lambda: sock.handshake_failures["secret"] == 1)
    assert not iface.is_connected and sock.refused_peers == 1
    (failure,) = seen
    assert (failure.kind, failure.role, failure.interface_id) == (FailureKind.SECRET, "server", 4)
    assert failure.peer is not None and failure.peer.pid == os.getpid()
    (record,) = [r for r in caplog.records if "handshake failed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert text.startswith("handshake failed (secret): secret mismatch; server on ")
    assert f"interface id 4 (srv); peer pid {os.getpid()} uid {os.getuid()}" in text


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@pytest.mark.parametrize("server_pairs", [1, 255])
def test_largest_client_255_queue_pairs_of_2_14_slots(
    serve: Serve, rng: random.Random, server_pairs: int
) -> None:
    """The most any client may ask for, with buffers small enough for 32-bit offsets.

    510 rings of 2^14 slots of 512 bytes: region 1 holds 4,278,190,080 bytes of
    buffers, just under the 4 GiB that descriptor offsets can reach.
    """
    _raise_nofile(4096)  # 510 eventfds on each side
    _, iface = serve(memory=MemoryConfig(num_queue_pairs=server_pairs))
    peer = hp.dial(iface.socket.path)
    hello = Hello.parse(peer.expect(hp.HELLO))
    geometry = libmemif_geometry(hello, s2m=255, m2s=255, log2=14, buffer_size=512)
    assert (geometry.s2m, geometry.m2s, geometry.log2) == (255, 255, 14)
    mem = PeerMemory("libmemif", geometry)
    assert mem.sizes[1] == 4_278_190_080
    with hp.closing(peer, mem):
        offer(peer, "libmemif", mem, rng)
        assert iface.wait_connected(10), iface.disconnect_reason
        assert iface.memory is not None
        assert (iface.memory.num_queue_pairs, iface.memory.log2_ring_size) == (255, 14)
        assert iface.num_rx_connected == iface.num_tx_connected == server_pairs
        assert iface.rx_queue(0).rings == 255 // server_pairs
        client_to_server(iface, mem, [0, 1, 127, 254])
        server_to_client(iface, mem, [0] if server_pairs == 1 else [0, 200, 254])
    assert iface.wait_disconnected(5)


def test_buffers_past_4_gib_are_refused_with_the_limit(serve: Serve, rng: random.Random) -> None:
    """With 2048-byte buffers the same client needs 17 GB of buffers: beyond 32-bit offsets."""
    _, iface = serve()
    peer = hp.dial(iface.socket.path)
    hello = Hello.parse(peer.expect(hp.HELLO))
    mem = PeerMemory("libmemif", libmemif_geometry(hello, s2m=255, m2s=255, log2=14))
    with hp.closing(peer, mem):
        peer.send(init_message("libmemif", rng, id=0))
        peer.expect(hp.ACK)
        peer.send(hp.add_region(0, mem.sizes[0]), [mem.fds[0]])
        peer.expect(hp.ACK)
        peer.send(hp.add_region(1, mem.sizes[1]), [mem.fds[1]])
        reason = peer.disconnect_reason()
    assert reason == f"region 1 size {mem.sizes[1]} outside 1..4294967296"
    assert wait_until(lambda: iface.socket.handshake_failures["memory"] == 1)


# -- our client against other servers' HELLOs ------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "pairs", "log2", "regions"),
    [
        ((256, 256, 256, 14), 3, 12, 2),  # VPP: MEMIF_MAX_* = 256
        ((255, 255, 255, 14), 3, 12, 2),  # libmemif, DPDK and gomemif
        ((0, 1, 1, 10), 2, 10, 1),  # a server that asks for less: read as count − 1
    ],
    ids=["vpp", "libmemif-dpdk-gomemif", "small"],
)
def test_our_client_reads_hello_as_count_minus_one(
    sock_dir: Path, limits: tuple[int, int, int, int], pairs: int, log2: int, regions: int
) -> None:
    path = str(sock_dir / "their.sock")
    listener = hp.Listener(path)
    sock = memif.Socket(path, reconnect_interval=60)
    iface = sock.create_interface(
        role="client", memory=MemoryConfig(num_queue_pairs=3, log2_ring_size=12)
    )
    sock.start()
    peer = listener.accept()
    max_region, max_m2s, max_s2m, max_log2 = limits
    greeting = hp.hello(max_region=max_region, max_m2s=max_m2s, max_s2m=max_s2m, max_log2=max_log2)
    try:
        memory, _ = hp.serve(peer, greeting)
        try:
            assert iface.wait_connected(5), iface.disconnect_reason
            assert len(memory.maps) == regions
            assert sum(r.s2m for r in memory.rings) == pairs
            assert sum(not r.s2m for r in memory.rings) == pairs
            assert {r.log2 for r in memory.rings} == {log2}
        finally:
            memory.close()
    finally:
        peer.close()
        sock.close()
        listener.close()


# -- failures are logged and counted ---------------------------------------------------------------


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "handshake failed" in r.getMessage()]


def test_a_client_that_leaves_mid_handshake_is_logged_and_counted(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memif")
    sock, iface = serve(id=5)
    peer = hp.dial(sock.path)
    peer.expect(hp.HELLO)
    peer.send(hp.init(id=5))
    peer.expect(hp.ACK)
    peer.close()
    assert wait_until(lambda: sock.handshake_failures["peer_closed"] == 1)
    # the failure is counted as the handshake fails, the link's end follows in that turn
    assert wait_until(lambda: iface.disconnect_reason == "peer closed")
    assert sum(sock.handshake_failures.values()) == 1
    failure = sock.last_handshake_failure
    assert failure is not None and failure.reason == "peer closed while waiting for ADD_REGION"
    (line,) = failure_lines(caplog)
    assert line == (
        f"handshake failed (peer_closed): peer closed while waiting for ADD_REGION; "
        f"server on {sock.path}, interface id 5 (srv); "
        f"peer pid {os.getpid()} uid {os.getuid()} gid {os.getgid()}"
    )
    record = next(r for r in caplog.records if "handshake failed" in r.getMessage())
    assert (record.peer_pid, record.peer_uid, record.failure) == (  # type: ignore[attr-defined]
        os.getpid(),
        os.getuid(),
        "peer_closed",
    )


@pytest.mark.parametrize(
    ("script", "kind", "reason"),
    [
        ([], FailureKind.PEER_CLOSED, "peer closed while waiting for INIT"),
        ([hp.init(id=9)], FailureKind.UNKNOWN_ID, "no server interface with id 9"),
        ([hp.init(mode=1)], FailureKind.MODE, "mode mismatch: peer ip, ours ethernet"),
        ([hp.init(version=0x0100)], FailureKind.VERSION, "unsupported version 1.0"),
        ([hp.connect()], FailureKind.PROTOCOL, "unexpected CONNECT while waiting for INIT"),
        (
            [hp.disconnect(7, b"bye\nforged line")],
            FailureKind.PEER_DISCONNECT,
            "peer disconnected: bye\\nforged line (code 7)",
        ),
    ],
    ids=lambda v: v.value if isinstance(v, FailureKind) else None,
)
def test_every_failure_has_a_kind(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    script: list[bytes],
    kind: FailureKind,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="memif")
    sock, _ = serve()
    peer = hp.dial(sock.path)
    peer.expect(hp.HELLO)
    for data in script:
        peer.send(data)
    peer.close()
    assert wait_until(lambda: sock.handshake_failures[kind.value] == 1)
    assert sum(sock.handshake_failures.values()) == 1
    failure = sock.last_handshake_failure
    assert failure is not None and failure.reason.startswith(reason)
    (line,) = failure_lines(caplog)
    assert "\n" not in line  # the peer's own text cannot forge log lines
    if not script or script[0][:2] != hp.init()[:2]:
        assert "interface id" not in line  # INIT never named one


def test_our_client_counts_a_server_that_refuses_it(sock_dir: Path) -> None:
    path = str(sock_dir / "refuser.sock")
    listener = hp.Listener(path)
    seen: list[HandshakeFailure] = []
    sock = memif.Socket(path, reconnect_interval=60, on_handshake_failure=seen.append)
    sock.create_interface(id=2, role="client", name="cli")
    sock.start()
    peer = listener.accept()
    try:
        peer.send(hp.hello())
        peer.expect(hp.INIT)
        peer.send(hp.disconnect(3, b"Incorrect secret"))
        assert wait_until(lambda: len(seen) == 1)
    finally:
        peer.close()
        sock.close()
        listener.close()
    (failure,) = seen
    assert (failure.kind, failure.role, failure.interface_id, failure.interface) == (
        FailureKind.PEER_DISCONNECT,
        "client",
        2,
        "cli",
    )
    assert failure.reason == "peer disconnected: Incorrect secret (code 3)"
    assert failure.peer is not None and failure.peer.pid == os.getpid()


def test_identical_failures_are_logged_once_then_summarised(
    serve: Serve, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="memif")
    sock, _ = serve()

    def fail() -> None:
        before = sum(sock.handshake_failures.values())
        peer = hp.dial(sock.path)
        peer.expect(hp.HELLO)
        peer.send(hp.init(id=9))
        peer.wait_closed()
        peer.close()
        assert wait_until(lambda: sum(sock.handshake_failures.values()) == before + 1)

    fail()
    fail()
    fail()
    assert sock.handshake_failures["unknown_id"] == 3
    assert len(failure_lines(caplog)) == 1
    monkeypatch.setattr(failures, "REPEAT_INTERVAL", 0.0)
    fail()
    lines = failure_lines(caplog)
    assert len(lines) == 2 and lines[1].endswith("(2 more like it since last logged)")


def test_log_lines_are_rate_limited_but_every_failure_counts(
    serve: Serve, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="memif")
    monkeypatch.setattr(failures, "BURST", 2)
    monkeypatch.setattr(failures, "RATE", 1e-6)
    monkeypatch.setattr(failures, "_LIMITER", failures._Limiter())
    sock, _ = serve()
    for bad_id in range(10, 15):  # five different failures
        peer = hp.dial(sock.path)
        peer.expect(hp.HELLO)
        peer.send(hp.init(id=bad_id))
        peer.wait_closed()
        peer.close()
    assert wait_until(lambda: sock.handshake_failures["unknown_id"] == 5)
    assert len(failure_lines(caplog)) == 2
    monkeypatch.setattr(failures, "RATE", 1e6)
    peer = hp.dial(sock.path)
    peer.expect(hp.HELLO)
    peer.send(hp.init(id=99))
    peer.wait_closed()
    peer.close()
    assert wait_until(lambda: sock.handshake_failures["unknown_id"] == 6)
    lines = failure_lines(caplog)
    assert len(lines) == 3 and lines[2].endswith("(3 other failures not logged (rate limit))")
