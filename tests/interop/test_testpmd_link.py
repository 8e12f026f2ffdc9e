"""Link set-up against dpdk-testpmd (net_memif): secrets, zero-copy, abstract sockets, restarts."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import memif
import pytest

from tests import testpmd as testpmd_mod
from tests.interop.traffic import CONNECT, echo, python_peer, wait_up, warm_up
from tests.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.interop

Factory = Callable[..., testpmd_mod.TestPmd]
COUNT = 2_000


def eventually(check: Callable[[], bool], timeout: float = CONNECT) -> bool:
    """Poll ``check`` until it holds or ``timeout`` passes; whether it held."""
    try:
        return wait_until(check, timeout, 0.05)
    except WaitTimeout:
        return False


def abstract_name() -> str:
    return f"@memif-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# -- secrets -----------------------------------------------------------------------------


def test_same_secret_python_client(sock_dir: Path, testpmd: Factory) -> None:
    path = str(sock_dir / "memif.sock")
    pmd = testpmd(socket=path, role="server", secret="sesame")
    pmd.wait_listening()
    with python_peer(path, "client", secret="sesame") as iface:
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, 64, pmd=pmd)


def test_same_secret_python_server(sock_dir: Path, testpmd: Factory) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server", secret="sesame") as iface:
        pmd = testpmd(socket=path, role="client", secret="sesame")
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, 64, pmd=pmd)


@pytest.mark.parametrize("pmd_secret", ["wrong", None], ids=["different", "missing"])
def test_secret_mismatch_python_server_reports_why(
    pmd_secret: str | None, sock_dir: Path, testpmd: Factory
) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server", secret="sesame") as iface:
        sock = iface.socket
        pmd = testpmd(socket=path, role="client", secret=pmd_secret)
        assert eventually(lambda: sock.refused_peers > 0), pmd.log()[-2000:]
        assert sock.last_refused_reason == "secret mismatch"
        assert not iface.is_connected


def test_secret_mismatch_python_client_is_refused(sock_dir: Path, testpmd: Factory) -> None:
    path = str(sock_dir / "memif.sock")
    pmd = testpmd(socket=path, role="server", secret="sesame")
    pmd.wait_listening()
    with python_peer(path, "client", secret="wrong") as iface:
        assert eventually(lambda: "secret" in iface.disconnect_reason.lower()), (
            iface.disconnect_reason
        )
        assert not iface.wait_connected(1.0)


# -- zero-copy client ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 9000])
def test_zero_copy_client_with_unsealed_regions_accepted(
    size: int, sock_dir: Path, testpmd: Factory
) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server", accept_unsealed_regions=True) as iface:
        pmd = testpmd(socket=path, role="client", zero_copy=True)
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, size, pmd=pmd)


def test_zero_copy_client_refused_by_default_naming_the_seal(
    sock_dir: Path, testpmd: Factory
) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server") as iface:
        sock = iface.socket
        pmd = testpmd(socket=path, role="client", zero_copy=True)
        assert eventually(lambda: sock.refused_peers > 0), pmd.log()[-2000:]
        assert "F_SEAL_SHRINK" in sock.last_refused_reason
        assert "F_SEAL_SHRINK" in iface.disconnect_reason
        assert "accept_unsealed_regions" in iface.disconnect_reason
        assert not iface.is_connected


# -- abstract sockets ------------------------------------------------------------------------


def test_abstract_socket_python_server(testpmd: Factory) -> None:
    name = abstract_name()
    with python_peer(name, "server") as iface:
        pmd = testpmd(socket=name, role="client", abstract=True)
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=pmd)


def test_abstract_socket_python_client(testpmd: Factory) -> None:
    name = abstract_name()
    pmd = testpmd(socket=name, role="server", abstract=True)
    with python_peer(name, "client") as iface:  # retries until testpmd listens
        wait_up(iface, pmd)
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=pmd)


# -- testpmd killed and restarted ------------------------------------------------------------


def test_python_client_reconnects_to_a_restarted_testpmd(sock_dir: Path, testpmd: Factory) -> None:
    path = str(sock_dir / "memif.sock")
    first = testpmd(socket=path, role="server")
    first.wait_listening()
    with python_peer(path, "client") as iface:
        wait_up(iface, first)
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=first)
        first.kill()
        assert iface.wait_disconnected(CONNECT)
        assert iface.disconnect_reason == "peer closed"
        second = testpmd(socket=path, role="server")
        wait_up(iface, second)  # no call from the test: the client retries on its own
        assert iface.connect_count == 2
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=second)


def test_python_server_accepts_a_restarted_testpmd(sock_dir: Path, testpmd: Factory) -> None:
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server") as iface:
        first = testpmd(socket=path, role="client")
        wait_up(iface, first)
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=first)
        first.kill()
        assert iface.wait_disconnected(CONNECT)
        assert iface.disconnect_reason == "peer closed"
        assert iface.state is memif.State.DISCONNECTED
        second = testpmd(socket=path, role="client")
        wait_up(iface, second)
        assert iface.connect_count == 2
        warm_up(iface)
        echo(iface, COUNT, 1500, pmd=second)


# -- what a client builds from our HELLO ---------------------------------------------------------


def test_testpmd_client_keeps_its_queues_and_ring_size(sock_dir: Path, testpmd: Factory) -> None:
    """Our HELLO announces the protocol maxima, so DPDK builds what it was told to:
    two queue pairs of 2^14 slots against a server interface of one pair of 2^10.
    Our one receive queue reads both of its rings."""
    path = str(sock_dir / "memif.sock")
    with python_peer(path, "server") as iface:
        pmd = testpmd(socket=path, role="client", queues=2, rsize=14, forward_mode="txonly")
        wait_up(iface, pmd)
        assert iface.memory is not None
        assert (iface.memory.num_queue_pairs, iface.memory.log2_ring_size) == (2, 14)
        rx = iface.rx_queue(0)
        assert rx.rings == 2 and iface.num_rx_connected == 1
        received = 0
        deadline = time.monotonic() + CONNECT
        while received < 1000:
            assert time.monotonic() < deadline, f"{received} packets, testpmd: {pmd.log()[-2000:]}"
            received += len(rx.recv_burst(256))
            rx.wait(0.05)
        # each of testpmd's two transmit queues reached us (slot counters still small)
        assert all(ring.cur != 0 for ring in rx._folded), [r.cur for r in rx._folded]
        assert iface.stats()["rx"]["bad_descriptors"] == 0
    pmd.check_alive()
