"""Rings and queues between two Python interfaces over a real Socket and real shared memory."""

from __future__ import annotations

import os
import select

import pytest
from memif import Interface, LocalProtocolError, MemoryConfig, RxMode

from tests.memif.conftest import Pair, PairFactory, start, wait_until


def packets(count: int, size: int = 60, seed: int = 0) -> list[bytes]:
    """Distinct packets: each starts with its number, the rest is random."""
    return [i.to_bytes(4, "little") + os.urandom(size - 4) for i in range(seed, seed + count)]


def readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def small(log2: int = 4, **memory: int) -> MemoryConfig:
    return MemoryConfig(log2_ring_size=log2, **memory)


DIRECTIONS = ["client-to-server", "server-to-client"]


def ends(p: Pair, direction: str) -> tuple[Interface, Interface]:
    """(sender, receiver) for a direction."""
    sender, receiver = (p.client, p.server) if direction == DIRECTIONS[0] else (p.server, p.client)
    return sender, receiver


# -- bursts and single packets -----------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_burst_arrives_intact_and_in_order(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(6))
    sender, receiver = ends(p, direction)
    sent = [os.urandom(n) for n in range(1, 65)]
    assert sender.tx_queue(0).send_burst(sent) == 64
    assert receiver.rx_queue(0).recv_burst(256) == sent
    assert receiver.rx_queue(0).recv_burst(256) == []


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_burst_limit_returns_the_rest_later(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(5))
    sender, receiver = ends(p, direction)
    sent = packets(20)
    assert sender.tx_queue(0).send_burst(sent) == 20
    rx = receiver.rx_queue(0)
    assert rx.pending() == 20
    assert rx.recv_burst(7) == sent[:7]
    assert rx.recv_burst(7) == sent[7:14]
    assert rx.recv_burst(256) == sent[14:]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_single_packet_api(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small())
    sender, receiver = ends(p, direction)
    assert receiver.rx_queue(0).recv() is None
    assert sender.tx_queue(0).send(b"one")
    assert sender.tx_queue(0).send(bytearray(b"two"))
    assert sender.tx_queue(0).send(memoryview(b"-three-")[1:-1])
    rx = receiver.rx_queue(0)
    assert [rx.recv(), rx.recv(), rx.recv(), rx.recv()] == [b"one", b"two", b"three", None]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_counters_wrap_past_65535(pair: PairFactory, direction: str) -> None:
    """Free-running 16-bit head and tail keep working across their wrap."""
    p = pair(memory=small(8))
    sender, receiver = ends(p, direction)
    tx, rx = sender.tx_queue(0), receiver.rx_queue(0)
    total = 0
    for round_ in range(260):  # 260 * 256 slots > 2^16
        burst = [round_.to_bytes(2, "little") + i.to_bytes(2, "little") for i in range(256)]
        assert tx.send_burst(burst) == 256
        assert rx.recv_burst(256) == burst
        total += 256
    assert total > 1 << 16
    assert rx.stats.packets == total and tx.stats.packets == total


# -- chained packets ---------------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_chained_packets_up_to_65535_bytes(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(10, packet_buffer_size=2048))
    sender, receiver = ends(p, direction)
    sizes = [2049, 1, 4096, 65535, 2048, 6000, 65535]
    sent = [os.urandom(n) for n in sizes]
    assert sender.tx_queue(0).send_burst(sent) == len(sent)
    got = receiver.rx_queue(0).recv_burst(256)
    assert [len(g) for g in got] == sizes
    assert got == sent
    stats = receiver.stats()["rx"]
    assert stats["packets"] == len(sizes) and stats["bytes"] == sum(sizes)
    assert stats["bad_descriptors"] == 0 and stats["drops"] == 0


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_largest_packet_fills_a_whole_ring_of_small_buffers(
    pair: PairFactory, direction: str
) -> None:
    """65535 bytes over 64-byte buffers takes all 1024 slots of the ring."""
    p = pair(memory=small(10, packet_buffer_size=64))
    sender, receiver = ends(p, direction)
    big = os.urandom(65535)
    tx = sender.tx_queue(0)
    assert tx.free() == 1024
    assert tx.send(big)
    assert tx.free() == 0
    assert not tx.send(b"x")  # no slot left
    assert receiver.rx_queue(0).recv_burst(4) == [big]
    assert tx.free() == 1024


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_chain_that_does_not_fit_is_not_sent(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(4, packet_buffer_size=1024))
    sender, receiver = ends(p, direction)
    tx = sender.tx_queue(0)
    six_slots = [os.urandom(6 * 1024) for _ in range(3)]
    assert tx.send_burst(six_slots) == 2  # 12 of 16 slots used, 4 left
    assert tx.stats.ring_full == 1
    assert tx.free() == 4
    assert receiver.rx_queue(0).recv_burst(8) == six_slots[:2]
    assert tx.send_burst(six_slots[2:]) == 1
    assert receiver.rx_queue(0).recv_burst(8) == six_slots[2:]


# -- ring full and bad packets -----------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_ring_full(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(4))
    sender, receiver = ends(p, direction)
    tx, rx = sender.tx_queue(0), receiver.rx_queue(0)
    sent = packets(20)
    assert tx.send_burst(sent) == 16
    assert tx.stats.ring_full == 4
    assert tx.free() == 0
    assert tx.send_burst(sent[16:]) == 0
    assert not tx.send(sent[16])
    assert tx.stats.ring_full == 9
    assert rx.recv_burst(5) == sent[:5]
    assert tx.send_burst(sent[16:]) == 4  # five slots came back
    assert rx.recv_burst(256) == sent[5:16] + sent[16:]
    assert tx.stats.packets == 20 and rx.stats.packets == 20


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [(b"", "packet 1 is empty"), (bytes(65536), "packet 1 is 65536 bytes, the limit is 65535")],
    ids=["empty", "oversize"],
)
def test_bad_packet_refuses_the_whole_burst(
    pair: PairFactory, direction: str, bad: bytes, message: str
) -> None:
    p = pair(memory=small())
    sender, receiver = ends(p, direction)
    tx = sender.tx_queue(0)
    with pytest.raises(LocalProtocolError, match=message):
        tx.send_burst([b"good", bad, b"good too"])
    assert receiver.rx_queue(0).recv_burst(16) == []
    assert tx.stats.packets == 0 and tx.free() == 16
    assert tx.send(b"still works")
    assert receiver.rx_queue(0).recv() == b"still works"


def test_empty_burst_sends_nothing(pair: PairFactory) -> None:
    p = pair(memory=small())
    assert p.client.tx_queue(0).send_burst([]) == 0
    assert p.server.tx_queue(0).send_burst([]) == 0
    assert p.client.stats()["tx"]["ring_full"] == 0


@pytest.mark.parametrize("count", [0, -1, 1 << 20])
def test_recv_burst_size_is_checked(pair: PairFactory, count: int) -> None:
    p = pair(memory=small())
    p.client.tx_queue(0).send(b"waiting")
    with pytest.raises(LocalProtocolError, match="burst size"):
        p.server.rx_queue(0).recv_burst(count)
    assert p.server.rx_queue(0).recv_burst(1) == [b"waiting"]


def test_unknown_queue_index(pair: PairFactory) -> None:
    p = pair(memory=small())
    with pytest.raises(LocalProtocolError, match=r"rx queue 1 does not exist \(0..0\)"):
        p.server.rx_queue(1)
    with pytest.raises(LocalProtocolError, match="tx queue -1 does not exist"):
        p.client.tx_queue(-1)


# -- interrupt and polling mode ----------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_interrupt_mode_makes_fileno_readable(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small())
    sender, receiver = ends(p, direction)
    rx = receiver.rx_queue(0)
    assert rx.mode is RxMode.INTERRUPT
    assert rx.recv_burst() == []  # drains and arms
    assert not readable(rx.fileno(), 0)
    assert not rx.wait(0)
    sender.tx_queue(0).send(b"ping")
    assert readable(rx.fileno(), 5)
    assert rx.wait(5)
    assert rx.recv_burst() == [b"ping"]
    assert rx.recv_burst() == []
    assert not readable(rx.fileno(), 0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_polling_mode_gets_no_interrupts(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(), rx_mode="polling")
    sender, receiver = ends(p, direction)
    rx = receiver.rx_queue(0)
    assert rx.mode is RxMode.POLLING
    assert not rx.wait(0)
    sender.tx_queue(0).send(b"quiet")
    assert not readable(rx.fileno(), 0)  # the producer saw MASK_INT and did not kick
    assert rx.wait(0) and rx.pending() == 1
    assert rx.recv_burst() == [b"quiet"]
    assert not rx.wait(0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_switch_mode_after_connect(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small())
    sender, receiver = ends(p, direction)
    tx, rx = sender.tx_queue(0), receiver.rx_queue(0)
    rx.set_mode("polling")
    tx.send(b"a")
    assert not readable(rx.fileno(), 0)
    assert rx.recv_burst() == [b"a"]
    rx.set_mode(RxMode.INTERRUPT)
    tx.send(b"b")
    assert readable(rx.fileno(), 5)
    assert rx.recv_burst() == [b"b"]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_switch_mode_before_connect(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(), connect=False)
    sender, receiver = ends(p, direction)
    rx = receiver.rx_queue(0)
    rx.set_mode("polling")
    fd = rx.fileno()
    start(p)
    sender.tx_queue(0).send(b"a")
    assert not readable(fd, 0)
    assert rx.recv_burst() == [b"a"]
    rx.set_mode("interrupt")
    sender.tx_queue(0).send(b"b")
    assert readable(fd, 5) and rx.fileno() == fd
    assert rx.recv_burst() == [b"b"]


def test_unknown_mode_is_refused(pair: PairFactory) -> None:
    p = pair(memory=small())
    with pytest.raises(ValueError, match="'sometimes' is not a valid RxMode"):
        p.server.rx_queue(0).set_mode("sometimes")


# -- several queue pairs, clamping, stats ------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_queue_pairs_are_separate(pair: PairFactory, direction: str) -> None:
    p = pair(memory=small(num_queue_pairs=3))
    sender, receiver = ends(p, direction)
    assert receiver.num_rx_connected == 3 and sender.num_tx_connected == 3
    sent = [packets(q + 1, seed=10 * q) for q in range(3)]
    for q in range(3):
        assert sender.tx_queue(q).send_burst(sent[q]) == q + 1
    for q in (2, 0, 1):
        assert receiver.rx_queue(q).recv_burst(16) == sent[q]
    stats = receiver.stats()["rx_queues"]
    assert [row["packets"] for row in stats] == [1, 2, 3]


def test_queue_pairs_carry_their_own_packets(pair: PairFactory) -> None:
    p = pair(memory=small(num_queue_pairs=2))
    a, b = packets(3, seed=0), packets(2, seed=100)
    p.client.tx_queue(0).send_burst(a)
    p.client.tx_queue(1).send_burst(b)
    p.server.tx_queue(1).send_burst(a)
    assert p.server.rx_queue(1).recv_burst() == b
    assert p.server.rx_queue(0).recv_burst() == a
    assert p.client.rx_queue(0).recv_burst() == []
    assert p.client.rx_queue(1).recv_burst() == a


def test_client_keeps_its_geometry_against_a_smaller_server(pair: PairFactory) -> None:
    """The server announces the protocol maxima, so the client builds what it wants."""
    p = pair(
        server={"memory": small(6, num_queue_pairs=1)},
        client={"memory": small(8, num_queue_pairs=3)},
    )
    assert p.client.memory is not None and p.server.memory is not None
    assert p.client.memory.num_queue_pairs == 3 and p.client.memory.log2_ring_size == 8
    assert p.server.memory.num_queue_pairs == 3 and p.server.memory.log2_ring_size == 8
    assert p.client.num_tx_connected == 3 and p.client.num_rx_connected == 3
    assert p.client.tx_queue(0).free() == 256
    assert p.server.num_rx_connected == 1 and p.server.rx_queue(0).rings == 3


def test_server_queue_reads_every_ring_folded_onto_it(pair: PairFactory) -> None:
    p = pair(
        server={"memory": small(4, num_queue_pairs=2)},
        client={"memory": small(4, num_queue_pairs=5)},
    )
    assert [q.rings for q in p.server.rx_queues] == [3, 2]  # rings 0, 2, 4 and 1, 3
    sent = {q: packets(2, seed=10 * q) for q in range(5)}
    for q in range(5):
        assert p.client.tx_queue(q).send_burst(sent[q]) == 2
    got0 = p.server.rx_queue(0).recv_burst(256)
    got1 = p.server.rx_queue(1).recv_burst(256)
    assert sorted(got0) == sorted(sent[0] + sent[2] + sent[4])
    assert sorted(got1) == sorted(sent[1] + sent[3])
    assert p.server.rx_queue(0).pending() == 0
    # the server sends on its own two queues; the client's other rx queues stay idle
    assert p.server.tx_queue(1).send(b"to queue 1")
    assert p.client.rx_queue(1).recv_burst() == [b"to queue 1"]
    assert p.client.rx_queue(4).recv_burst() == []


def test_folded_rings_share_a_burst_limit_and_take_turns(pair: PairFactory) -> None:
    p = pair(server={"memory": small(4)}, client={"memory": small(4, num_queue_pairs=2)})
    a, b = packets(8, seed=0), packets(8, seed=100)
    p.client.tx_queue(0).send_burst(a)
    p.client.tx_queue(1).send_burst(b)
    rx = p.server.rx_queue(0)
    assert rx.pending() == 16
    first = rx.recv_burst(5)
    second = rx.recv_burst(5)
    assert len(first) == len(second) == 5
    assert first == a[:5] and second == b[:5]  # each call starts with the next ring
    rest = rx.recv_burst(256)
    assert sorted(first + second + rest) == sorted(a + b)


def test_folded_rings_wake_the_queue_in_interrupt_mode(pair: PairFactory) -> None:
    p = pair(server={"memory": small(4)}, client={"memory": small(4, num_queue_pairs=3)})
    rx = p.server.rx_queue(0)
    assert rx.recv_burst() == []
    assert not readable(rx.fileno(), 0.05)
    p.client.tx_queue(2).send(b"from the last ring")
    assert readable(rx.fileno(), 2.0)
    assert rx.recv_burst() == [b"from the last ring"]


def test_folded_rings_in_polling_mode(pair: PairFactory) -> None:
    p = pair(
        server={"memory": small(4), "rx_mode": "polling"},
        client={"memory": small(4, num_queue_pairs=2)},
    )
    rx = p.server.rx_queue(0)
    p.client.tx_queue(1).send(b"polled")
    assert wait_until(rx.wait)
    assert rx.recv_burst() == [b"polled"]


def test_stats_count_packets_bytes_and_per_queue(pair: PairFactory) -> None:
    p = pair(memory=small(num_queue_pairs=2))
    p.client.tx_queue(0).send_burst([b"x" * 100] * 3)
    p.client.tx_queue(1).send_burst([b"y" * 10] * 2)
    p.server.rx_queue(0).recv_burst()
    p.server.rx_queue(1).recv_burst()
    tx, rx = p.client.stats(), p.server.stats()
    assert tx["tx"] == {
        "packets": 5,
        "bytes": 320,
        "drops": 0,
        "bad_descriptors": 0,
        "ring_full": 0,
    }
    assert rx["rx"]["packets"] == 5 and rx["rx"]["bytes"] == 320
    assert [q["bytes"] for q in tx["tx_queues"]] == [300, 20]
    assert [q["packets"] for q in rx["rx_queues"]] == [3, 2]
    assert rx["tx"]["packets"] == 0 and tx["rx"]["packets"] == 0


# -- across reconnects -------------------------------------------------------------------------


def test_queues_survive_a_reconnect(pair: PairFactory) -> None:
    p = pair(memory=small())
    rx = p.server.rx_queue(0)
    fd = rx.fileno()
    p.client.tx_queue(0).send(b"before")
    p.server.disconnect("test says so")
    assert rx.recv_burst() == []  # what was in flight went with the old link
    assert wait_reconnected(p)
    assert p.client.tx_queue(0).send(b"after")
    assert rx.recv_burst() == [b"after"] and rx.fileno() == fd


def wait_reconnected(p: Pair) -> bool:
    return wait_until(
        lambda: p.client.connect_count >= 2 and p.client.is_connected and p.server.is_connected
    )


def test_disconnected_queues_are_empty(pair: PairFactory) -> None:
    p = pair(memory=small())
    p.client.set_admin_up(False)
    assert p.server.wait_disconnected(5)
    tx = p.client.tx_queue(0)
    assert not tx.connected and tx.free() == 0
    assert tx.send_burst([b"a", b"b"]) == 0 and tx.stats.ring_full == 2
    assert p.server.rx_queue(0).recv_burst() == [] and p.server.rx_queue(0).pending() == 0
    assert not p.server.rx_queue(0).wait(0)
    p.client.set_admin_up(True)
    assert wait_reconnected(p)
    assert tx.send(b"back")
    assert p.server.rx_queue(0).recv() == b"back"


def test_folded_rings_through_the_batch_api(pair: PairFactory) -> None:
    pytest.importorskip("numpy")
    p = pair(server={"memory": small(4)}, client={"memory": small(4, num_queue_pairs=2)})
    a, b = packets(3, seed=0), packets(2, seed=50)
    p.client.tx_queue(0).send_burst(a)
    p.client.tx_queue(1).send_burst(b)
    got: list[bytes] = []
    while batch := p.server.rx_queue(0).recv_batch(256):
        got += batch.packets()
    assert sorted(got) == sorted(a + b)


def test_folded_rings_through_zero_copy_views(pair: PairFactory) -> None:
    p = pair(server={"memory": small(4)}, client={"memory": small(4, num_queue_pairs=2)})
    a, b = packets(3, seed=0), packets(2, seed=50)
    p.client.tx_queue(0).send_burst(a)
    p.client.tx_queue(1).send_burst(b)
    rx = p.server.rx_queue(0)
    got: list[bytes] = []
    while views := rx.recv_views(256):
        got += [bytes(view) for view in views]
    assert sorted(got) == sorted(a + b)
    assert rx.pending() == 0
