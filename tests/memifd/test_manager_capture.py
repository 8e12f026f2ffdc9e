"""What the manager's worker puts into captures: stamps per packet, captures of several
interfaces. Real Python memif peers on real sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pydantic
import pytest
from memifd.core.engine.dataplane import CLOCK_STEP_NS, BurstClock
from memifd.core.errors import NotFoundError
from memifd.core.manager import Manager
from memifd.core.models import CapturedPacket, CaptureFilter

from tests.memifd.rest_support import frame, memif_clients, receive, spec, wait_for


def test_stamps_are_the_burst_time_plus_the_place_in_the_burst(
    manager: Manager,
    sock_dir: Path,
) -> None:
    manager.create_interface(spec("a", action="echo"))
    captured = manager.capture(CaptureFilter(interface="a", count=60))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        before = time.time_ns()
        for burst in range(3):
            assert client.tx_queue(0).send_burst([frame(burst * 10 + i) for i in range(10)]) == 10
            assert len(receive(client, 10)) == 10
        after = time.time_ns()
    packets: list[CapturedPacket] = []
    while len(packets) < 60:
        batch = captured.get_batch(100, 5)
        assert batch, "the capture ended early"
        packets += batch
    stamps = [p.timestamp_ns for p in packets]
    # (a tx burst is stamped just after it is on the ring: the peer may see it first)
    assert before <= stamps[0] and stamps[-1] - after < 1_000_000_000
    assert len(set(stamps)) == 60 and stamps == sorted(stamps)
    # six bursts (three read, three echoed): ten packets one nanosecond apart each
    for start in range(0, 60, 10):
        stamped = packets[start : start + 10]
        assert {p.direction for p in stamped} == {"rx" if start % 20 == 0 else "tx"}
        assert [p.timestamp_ns - stamped[0].timestamp_ns for p in stamped] == list(range(10))


def test_stamps_survive_a_coarse_or_stepped_clock() -> None:
    clock = BurstClock()
    now = time.time_ns()
    clock.last = now + CLOCK_STEP_NS // 2  # as if the clock stepped back 0.5 s
    first = clock.stamp(5)
    assert first == now + CLOCK_STEP_NS // 2 + 1 and clock.last == first + 4
    clock.last = now + 2 * CLOCK_STEP_NS  # a step back of 2 s is followed
    again = clock.stamp(1)
    assert now <= again < now + CLOCK_STEP_NS


def test_capture_of_several_interfaces_ends_with_the_last(
    manager: Manager,
    sock_dir: Path,
) -> None:
    for number, name in enumerate(["a", "b", "c"]):
        manager.create_interface(spec(name, id=number))
    with pytest.raises(NotFoundError, match="'zz'"):
        manager.capture(CaptureFilter(interfaces=["a", "zz"]))
    with pytest.raises(pydantic.ValidationError, match="interface or interfaces, not both"):
        CaptureFilter(interface="a", interfaces=["b"])
    both = manager.capture(CaptureFilter(interfaces=["a", "b"]))
    with memif_clients(str(sock_dir / "m.sock"), [0, 1, 2]) as (a, b, c):
        assert a.wait_connected(5) and b.wait_connected(5) and c.wait_connected(5)
        assert c.tx_queue(0).send(frame(3)) and a.tx_queue(0).send(frame(1))
        assert wait_for(lambda: manager.interface_stats("a").rx.packets == 1)
        manager.delete_interface("a")
        assert b.tx_queue(0).send(frame(2))
        assert wait_for(lambda: manager.interface_stats("b").rx.packets == 1)
        assert [(p.interface, p.data) for p in both.get_batch(10, 1)] == [
            ("a", frame(1)),
            ("b", frame(2)),
        ]
        assert not both.closed
        manager.delete_interface("b")
        assert both.get_batch(10, 5) == [] and both.close_reason == "interface deleted"
