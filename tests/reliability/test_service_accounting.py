"""Packet accounting of memifd under sustained load, to the packet.

Python memif clients (and dpdk-testpmd) push traffic through ``memifd serve``
at full speed, so rings run full in both directions: the sender meets
back-pressure (``send_burst`` takes fewer than offered) and a deliberately slow
receiver makes memifd's own transmit fail. After the senders stop and the
rings drain, every packet a sender's ring accepted is either received by the
far end or counted in exactly one drop counter of memifd's REST stats:

* ``rx.drops`` of the interface it entered (bad descriptors, none here),
* ``action_drops`` (action ``drop``), ``forward_drops`` (echo or xconnect
  found no room on the outgoing ring), and nothing else is lost.

memifd's own invariant is checked too: for each interface
``rx.packets == action_drops + forwarded + forward_drops + exchanged`` and
``tx.packets == forwarded`` of whoever sends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from memifd.core.models import Action

from tests.memifd.rest_support import Daemon, memif_clients, wait_for
from tests.reliability.service_support import (
    Receiver,
    Sender,
    all_connected,
    run_for,
    settle,
    start_daemon,
    traffic,
    write_config,
)
from tests.testpmd import TestPmd
from tests.waiting import wait_until

SECONDS = 3.0  # of full-speed traffic per case
RING = 10  # 1024 slots: small enough to fill often


@pytest.fixture
def daemon(sock_dir: Path, tmp_path: Path) -> Iterator[Daemon]:
    """memifd with ``e0`` (echo) and ``xa``/``xb`` (cross-connected), small rings."""
    memory = {"log2_ring_size": RING}
    config = write_config(
        tmp_path / "memifd.yaml",
        [
            {"name": "e0", "socket": "load.sock", "id": 0, "action": "echo", "memory": memory},
            {
                "name": "xa",
                "socket": "load.sock",
                "id": 1,
                "action": "xconnect",
                "xconnect_to": "xb",
                "memory": memory,
            },
            {
                "name": "xb",
                "socket": "load.sock",
                "id": 2,
                "action": "xconnect",
                "xconnect_to": "xa",
                "memory": memory,
            },
        ],
    )
    proc = start_daemon(sock_dir, config)
    yield proc
    proc.kill()


@pytest.fixture
def api(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


def dispatched(row: dict[str, Any]) -> int:
    """What memifd did with the packets an interface received (must equal rx.packets)."""
    return int(row["action_drops"] + row["forwarded"] + row["forward_drops"] + row["exchanged"])


def lost_in(row: dict[str, Any]) -> int:
    """Every drop counter of a packet that entered memifd on this interface."""
    return int(row["rx"]["drops"] + row["action_drops"] + row["forward_drops"])


def report(case: str, **figures: int) -> None:
    print(f"\n{case}: " + " ".join(f"{key}={value}" for key, value in figures.items()))


def test_echo_accounts_for_every_packet(api: httpx.Client, sock_dir: Path) -> None:
    with memif_clients(str(sock_dir / "load.sock"), [0], memory={"log2_ring_size": RING}) as (
        client,
    ):
        assert client.wait_connected(10)
        assert wait_for(lambda: all_connected(api, {"e0"}), timeout=10)
        sender, receiver = Sender(client), Receiver(client, slow=True)
        with traffic(sender, receiver):
            run_for(SECONDS)
            sender.stop()
            receiver.slow = False
            final = settle(api, ["e0"], [receiver])
        mine = client.stats()
    e0 = final["e0"]
    assert mine["tx"]["packets"] == sender.accepted
    assert mine["rx"]["packets"] == receiver.received
    report(
        "echo",
        accepted=sender.accepted,
        received=receiver.received,
        forward_drops=e0["forward_drops"],
        sender_ring_full=mine["tx"]["ring_full"],
    )
    # both kinds of back-pressure happened, or the test proved nothing
    assert mine["tx"]["ring_full"] > 0
    assert e0["forward_drops"] > 0
    assert e0["rx"]["packets"] == sender.accepted == dispatched(e0)
    assert e0["tx"]["packets"] == e0["forwarded"] == receiver.received
    assert e0["tx"]["ring_full"] == e0["forward_drops"]
    assert sender.accepted == receiver.received + lost_in(e0)
    assert mine["rx"]["drops"] == mine["rx"]["bad_descriptors"] == 0


def test_xconnect_accounts_for_every_packet_both_ways(api: httpx.Client, sock_dir: Path) -> None:
    with memif_clients(str(sock_dir / "load.sock"), [1, 2], memory={"log2_ring_size": RING}) as (
        a,
        b,
    ):
        assert a.wait_connected(10) and b.wait_connected(10)
        assert wait_for(lambda: all_connected(api, {"xa", "xb"}), timeout=10)
        senders = [Sender(a), Sender(b)]
        receivers = [Receiver(a), Receiver(b, slow=True)]  # b reads slowly: xa must drop
        with traffic(*senders, *receivers):
            run_for(SECONDS)
            for sender in senders:
                sender.stop()
            receivers[1].slow = False
            final = settle(api, ["xa", "xb"], receivers)
    xa, xb = final["xa"], final["xb"]
    a_to_b, b_to_a = senders[0].accepted, senders[1].accepted
    report(
        "xconnect a->b",
        accepted=a_to_b,
        received=receivers[1].received,
        forward_drops=xa["forward_drops"],
    )
    report(
        "xconnect b->a",
        accepted=b_to_a,
        received=receivers[0].received,
        forward_drops=xb["forward_drops"],
    )
    assert xa["forward_drops"] > 0
    assert xa["rx"]["packets"] == a_to_b == dispatched(xa)
    assert xb["rx"]["packets"] == b_to_a == dispatched(xb)
    assert xb["tx"]["packets"] == xa["forwarded"] == receivers[1].received
    assert xa["tx"]["packets"] == xb["forwarded"] == receivers[0].received
    assert a_to_b == receivers[1].received + lost_in(xa)
    assert b_to_a == receivers[0].received + lost_in(xb)


@pytest.mark.interop
def test_xconnect_to_testpmd_accounts_for_every_packet(
    api: httpx.Client, sock_dir: Path, testpmd: Callable[..., TestPmd]
) -> None:
    """Python client -> xa -> (xconnect) -> pmd -> testpmd ``rxonly``, counted by testpmd."""
    created = api.post(
        "/v1/interfaces",
        json={
            "name": "pmd",
            "socket": "pmd.sock",
            "action": Action.DROP.value,
            "memory": {"log2_ring_size": RING},
        },
    )
    assert created.status_code == 201, created.text
    patched = api.patch("/v1/interfaces/xa", json={"xconnect_to": "pmd"})
    assert patched.status_code == 200, patched.text
    pmd = testpmd(
        socket=str(sock_dir / "pmd.sock"), role="client", forward_mode="rxonly", rsize=RING
    )
    with memif_clients(str(sock_dir / "load.sock"), [1], memory={"log2_ring_size": RING}) as (
        client,
    ):
        assert client.wait_connected(10)
        assert wait_for(lambda: all_connected(api, {"xa", "pmd"}), timeout=20), pmd.log()
        sender = Sender(client)
        with traffic(sender):
            run_for(SECONDS, check=pmd.check_alive)
            sender.stop()
        final = settle(api, ["xa", "pmd"], [])
        pmd_rx = _testpmd_settled(pmd)
        mine = client.stats()
    xa, pmd_row = final["xa"], final["pmd"]
    report(
        "xconnect to testpmd",
        accepted=sender.accepted,
        testpmd_rx=pmd_rx,
        forward_drops=xa["forward_drops"],
        sender_ring_full=mine["tx"]["ring_full"],
    )
    assert mine["tx"]["ring_full"] > 0
    assert xa["rx"]["packets"] == sender.accepted == dispatched(xa)
    assert pmd_row["tx"]["packets"] == xa["forwarded"] == pmd_rx
    assert sender.accepted == pmd_rx + lost_in(xa)


def _testpmd_settled(pmd: TestPmd, timeout: float = 15.0) -> int:
    """testpmd's RX-packets once two stats periods in a row agree."""
    seen: list[int] = []
    still = time.monotonic()

    def settled() -> bool:
        nonlocal still
        pmd.check_alive()
        count = pmd.rx_stats()[0]
        if not seen or seen[-1] != count:
            seen.append(count)
            still = time.monotonic()
            return False
        return time.monotonic() - still > 2.5 * pmd.stats_period

    wait_until(settled, timeout, 0.2, lambda: f"testpmd's counters to stop moving: {seen}")
    return seen[-1]
