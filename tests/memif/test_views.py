"""Zero-copy receive: read-only views that hold their slots until the next receive call."""

from __future__ import annotations

import os

import pytest
from memif import Interface, MemoryConfig

from tests.memif.conftest import Pair, PairFactory, wait_until

DIRECTIONS = ["client-to-server", "server-to-client"]


def ends(p: Pair, direction: str) -> tuple[Interface, Interface]:
    return (p.client, p.server) if direction == DIRECTIONS[0] else (p.server, p.client)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_views_show_the_packets_and_are_read_only(pair: PairFactory, direction: str) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=5))
    sender, receiver = ends(p, direction)
    sent = [os.urandom(n) for n in (1, 60, 1500, 2048)]
    assert sender.tx_queue(0).send_burst(sent) == 4
    views = receiver.rx_queue(0).recv_views(16)
    assert all(isinstance(v, memoryview) and v.readonly for v in views)
    assert [bytes(v) for v in views] == sent
    with pytest.raises(TypeError):
        views[0][0] = 1


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_slots_go_back_only_at_the_next_call(pair: PairFactory, direction: str) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=3))
    sender, receiver = ends(p, direction)
    tx, rx = sender.tx_queue(0), receiver.rx_queue(0)
    assert tx.send_burst([b"a" * 60] * 8) == 8
    views = rx.recv_views(5)
    assert len(views) == 5
    assert tx.send_burst([b"b" * 60] * 8) == 0  # the 5 slots are still held
    rest = rx.recv_burst(8)  # ends the views: their slots go back
    assert rest == [b"a" * 60] * 3
    with pytest.raises(ValueError):
        bytes(views[0])
    assert wait_until(lambda: tx.free() == 8)
    assert tx.send_burst([b"c" * 60] * 8) == 8
    assert [bytes(v) for v in rx.recv_views(8)] == [b"c" * 60] * 8


def test_a_slice_of_a_view_stays_readable(pair: PairFactory) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=3))
    assert p.client.tx_queue(0).send(b"keep me")
    rx = p.server.rx_queue(0)
    (view,) = rx.recv_views(4)
    kept = view[5:]
    assert rx.recv_views(4) == []
    assert bytes(kept) == b"me"  # still inside the mapping; the peer may reuse the buffer


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_chained_packets_arrive_as_views_of_a_copy(pair: PairFactory, direction: str) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=4, packet_buffer_size=128))
    sender, receiver = ends(p, direction)
    sent = [os.urandom(1000), os.urandom(50)]
    assert sender.tx_queue(0).send_burst(sent) == 2
    views = receiver.rx_queue(0).recv_views(16)
    assert [bytes(v) for v in views] == sent


def test_a_disconnect_ends_the_views(pair: PairFactory) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=3))
    assert p.client.tx_queue(0).send_burst([b"x" * 100] * 3) == 3
    views = p.server.rx_queue(0).recv_views(8)
    assert len(views) == 3
    p.client.disconnect()
    assert p.server.wait_disconnected(5)
    with pytest.raises(ValueError):
        bytes(views[0])
    assert p.server.rx_queue(0).recv_views(8) == []


def test_views_after_views_continue_where_the_last_ended(pair: PairFactory) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=4))
    sent = [n.to_bytes(2, "little") * 30 for n in range(12)]
    assert p.client.tx_queue(0).send_burst(sent) == 12
    rx = p.server.rx_queue(0)
    first = [bytes(v) for v in rx.recv_views(5)]
    second = [bytes(v) for v in rx.recv_views(5)]
    third = [bytes(v) for v in rx.recv_views(5)]
    assert first + second + third == sent
