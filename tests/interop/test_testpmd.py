"""Traffic against dpdk-testpmd (net_memif) in ``macswap`` mode, Python in both roles.

Each test starts its own testpmd (a testpmd may not survive its peer
disconnecting) and sends 10,000 frames per queue; every frame must come back
intact with its MACs swapped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import memif
import pytest

from tests import testpmd as testpmd_mod
from tests.interop.traffic import echo, python_peer, wait_up, warm_up

pytestmark = pytest.mark.interop

COUNT = 10_000
SIZES = [64, 1500, 9000]  # 9000 spans five 2048-byte buffers


@pytest.mark.parametrize("size", SIZES)
def test_python_client_testpmd_server_macswap(
    size: int, sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "memif.sock")
    pmd = testpmd(socket=path, role="server")
    pmd.wait_listening()
    with python_peer(path, "client") as iface:
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, size, pmd=pmd)
        stats = iface.stats()
    assert stats["rx"]["bad_descriptors"] == 0 and stats["rx"]["drops"] == 0
    pmd.check_alive()


@pytest.mark.parametrize("size", SIZES)
def test_python_server_testpmd_client_macswap(
    size: int, sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server") as iface:
        pmd = testpmd(socket=path, role="client")
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, size, pmd=pmd)
        stats = iface.stats()
    assert stats["rx"]["bad_descriptors"] == 0 and stats["rx"]["drops"] == 0
    pmd.check_alive()


def test_two_queue_pairs_python_client(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "memif.sock")
    pmd = testpmd(socket=path, role="server", queues=2)
    pmd.wait_listening()
    with python_peer(path, "client", memory=memif.MemoryConfig(num_queue_pairs=2)) as iface:
        wait_up(iface, pmd)
        assert (iface.num_rx_connected, iface.num_tx_connected) == (2, 2)
        warm_up(iface, queues=(0, 1))
        echo(iface, COUNT, 1500, queues=(0, 1), pmd=pmd)
        per_queue = [q["packets"] for q in iface.stats()["rx_queues"]]
    assert all(n >= COUNT for n in per_queue), per_queue


def test_two_queue_pairs_python_server(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server", memory=memif.MemoryConfig(num_queue_pairs=2)) as iface:
        pmd = testpmd(socket=path, role="client", queues=2)
        wait_up(iface, pmd)
        assert (iface.num_rx_connected, iface.num_tx_connected) == (2, 2)
        warm_up(iface, queues=(0, 1))
        echo(iface, COUNT, 1500, queues=(0, 1), pmd=pmd)
        per_queue = [q["packets"] for q in iface.stats()["rx_queues"]]
    assert all(n >= COUNT for n in per_queue), per_queue
