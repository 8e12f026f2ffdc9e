"""Hundreds of connections made and broken: fds and memory mappings come back.

Both every mapping in ``/proc/self/maps`` and those of memfd regions (what the
library maps, named in the assertion message) are counted.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import memif
from memif import MemoryConfig

from tests.conftest import open_fds
from tests.memif import hostile_peer as hp
from tests.memif.conftest import describe, mappings, settled_fds, wait_until

CYCLES = 200
SMALL = MemoryConfig(log2_ring_size=3, packet_buffer_size=256)


def memfd_mappings() -> int:
    """Mappings of memfd regions in this process."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if "/memfd:" in line)


Snapshot = tuple[set[int], int, int]


def snapshot() -> Snapshot:
    """Open fds, all mappings and memfd mappings, after a garbage collection."""
    gc.collect()
    return open_fds(), mappings(), memfd_mappings()


def assert_back_to(baseline: Snapshot) -> None:
    fds, total, regions = baseline
    after = settled_fds(fds)
    assert after == fds, f"leaked {describe(after - fds)}, closed {sorted(fds - after)}"

    def mapped() -> tuple[int, int]:
        gc.collect()
        return mappings(), memfd_mappings()

    assert wait_until(lambda: mapped() == (total, regions)), (mapped(), (total, regions))


def test_reconnect_cycles(sock_dir: Path) -> None:
    path = str(sock_dir / "cycles.sock")
    with (
        memif.Socket(path, reconnect_interval=0.001) as a,
        memif.Socket(path, reconnect_interval=0.001) as b,
    ):
        server = a.create_interface(role="server", memory=SMALL)
        client = b.create_interface(role="client", memory=SMALL)
        a.start()
        b.start()
        assert client.wait_connected(5) and server.wait_connected(5)
        baseline = snapshot()
        assert baseline[2] >= 4  # both ends map both regions while connected
        for cycle in range(2, CYCLES + 2):
            side = client if cycle % 2 else server
            side.disconnect("cycle")

            def reconnected(c: int = cycle) -> bool:
                return (
                    client.connect_count == c
                    and server.connect_count == c
                    and client.is_connected
                    and server.is_connected
                )

            assert wait_until(reconnected), (
                cycle,
                client.disconnect_reason,
                server.disconnect_reason,
            )
            assert client.tx_queue(0).send(b"%d" % cycle)
            assert server.rx_queue(0).recv_burst() == [b"%d" % cycle]
        assert_back_to(baseline)


def test_create_and_delete_cycles(sock_dir: Path) -> None:
    path = str(sock_dir / "create.sock")
    with memif.Socket(path, reconnect_interval=0.01) as sock:
        sock.start()
        baseline = snapshot()
        for cycle in range(CYCLES):
            server = sock.create_interface(id=cycle, role="server", memory=SMALL)
            client = sock.create_interface(id=cycle, role="client", memory=SMALL)
            assert client.wait_connected(5), client.disconnect_reason
            (client if cycle % 2 else server).delete()
            (server if cycle % 2 else client).delete()
        assert not sock.listening
        assert_back_to(baseline)


Attack = Callable[[hp.Peer], None]


def test_failed_handshakes_from_a_hostile_client(sock_dir: Path) -> None:
    path = str(sock_dir / "hostile.sock")
    unsealed = hp.ClientMemory(log2=3, sealed=False)
    no_cookie = hp.ClientMemory(log2=3, cookie=0)
    good = hp.ClientMemory(log2=3)

    def init(peer: hp.Peer) -> None:
        peer.expect(hp.HELLO)
        peer.send(hp.init())
        peer.expect(hp.ACK)

    def offer_unsealed(peer: hp.Peer) -> None:
        init(peer)
        peer.send(hp.add_region(0, unsealed.size), [unsealed.fd])

    def offer_too_little(peer: hp.Peer) -> None:
        init(peer)
        peer.send(hp.add_region(0, good.size + 4096), [good.fd])

    def offer_bad_rings(peer: hp.Peer) -> None:
        init(peer)
        peer.send(hp.add_region(0, no_cookie.size), [no_cookie.fd])
        peer.expect(hp.ACK)
        for ring in no_cookie.rings:
            peer.send(hp.add_ring(ring.s2m, ring.index, 0, ring.offset, 3), [ring.eventfd])
            peer.expect(hp.ACK)
        peer.send(hp.connect())

    def offer_extra_fds(peer: hp.Peer) -> None:
        init(peer)
        peer.send(hp.add_region(0, good.size), [good.fd, *[r.eventfd for r in good.rings]])

    attacks: list[Attack] = [offer_unsealed, offer_too_little, offer_bad_rings, offer_extra_fds]
    try:
        with memif.Socket(path) as sock:
            server = sock.create_interface(role="server", memory=SMALL)
            sock.start()
            baseline = snapshot()
            for cycle in range(CYCLES):
                peer = hp.dial(path)
                try:
                    attacks[cycle % len(attacks)](peer)
                    assert peer.disconnect_reason()
                    peer.wait_closed()
                finally:
                    peer.close()
            assert_back_to(baseline)
            assert not server.is_connected
    finally:
        for mem in (unsealed, no_cookie, good):
            mem.close()


def test_failed_handshakes_against_a_hostile_server(sock_dir: Path) -> None:
    path = str(sock_dir / "hostile-server.sock")
    listener = hp.Listener(path)
    try:
        with memif.Socket(path, reconnect_interval=60) as sock:
            sock.start()
            baseline = snapshot()  # with the loop thread: its stack is a mapping too
            client = sock.create_interface(role="client", memory=SMALL)
            for cycle in range(CYCLES):
                peer = listener.accept()
                try:
                    peer.send(hp.hello())
                    peer.expect(hp.INIT)  # our client has built its memory by now
                    if cycle % 2:
                        peer.send(hp.ack())
                        peer.expect(hp.ADD_REGION)
                    peer.send(hp.message(0x77))
                    assert "unknown message type 119" in peer.disconnect_reason()
                    peer.wait_closed()
                finally:
                    peer.close()
                client.set_admin_up(False)  # retry now rather than after a minute
                client.set_admin_up(True)
            client.delete()
            assert_back_to(baseline)
    finally:
        listener.close()
