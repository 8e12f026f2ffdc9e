"""``memifd serve`` killed with SIGKILL mid-traffic and restarted with the same config.

memifd declares two echo server interfaces and a client interface (its peer is
a Python server here). Python memif clients with a short reconnect interval
pass traffic through the echo interfaces, and the Python server through the
client one, when memifd dies by ``kill -9``: no goodbye, socket files left
behind. memifd comes back with the same config and the same ports, replaces
the stale socket files, and without anybody's help every link comes back and
traffic flows again - for several cycles in a row.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import memif
import pytest

from tests.memifd.rest_support import Daemon, frame, free_port, memif_clients, receive, wait_for
from tests.reliability.service_support import all_connected, start_daemon, write_config

CYCLES = 5
BURST = 32
DECLARED = {"e0", "e1", "up"}


@pytest.fixture
def upstream(sock_dir: Path) -> Iterator[memif.Interface]:
    """A Python memif server that memifd's client interface ``up`` connects to."""
    with memif.Socket(str(sock_dir / "upstream.sock")) as sock:
        iface = sock.create_interface(memif.Arguments(id=5, role="server", name="upstream"))
        sock.start()
        yield iface


def echoed(iface: memif.Interface, cycle: int) -> list[bytes]:
    """Send a burst to an echo interface and read it back."""
    packets = [frame(cycle * 1000 + i) for i in range(BURST)]
    assert iface.tx_queue(0).send_burst(packets) == BURST
    return receive(iface, BURST, timeout=5)


def test_kill_9_and_restart_brings_every_link_back(
    sock_dir: Path, tmp_path: Path, upstream: memif.Interface
) -> None:
    config = write_config(
        tmp_path / "memifd.yaml",
        [
            {"name": "e0", "socket": "svc.sock", "id": 0, "action": "echo"},
            {"name": "e1", "socket": "svc.sock", "id": 1, "action": "echo"},
            {
                "name": "up",
                "socket": str(sock_dir / "upstream.sock"),
                "id": 5,
                "role": "client",
                "action": "echo",
            },
        ],
    )
    http_port, grpc_port = free_port(), free_port()
    svc_sock = sock_dir / "svc.sock"
    daemon: Daemon | None = None
    pids: list[int] = []
    try:
        with memif_clients(str(svc_sock), [0, 1], reconnect_interval=0.05) as clients:
            for cycle in range(CYCLES):
                daemon = start_daemon(sock_dir, config, http_port=http_port, grpc_port=grpc_port)
                assert daemon.proc is not None
                pids.append(daemon.proc.pid)
                with daemon.client() as api:
                    assert wait_for(lambda: all_connected(api, DECLARED), timeout=15), api.get(
                        "/v1/interfaces"
                    ).text
                    listed = {i["name"]: i for i in api.get("/v1/interfaces").json()}
                    assert set(listed) == DECLARED
                    assert listed["e0"]["peer"]["pid"] == os.getpid()
                    assert listed["up"]["peer"]["name"] == "upstream"
                for client in clients:
                    assert client.wait_connected(10)
                    assert echoed(client, cycle) == [frame(cycle * 1000 + i) for i in range(BURST)]
                assert upstream.wait_connected(10)
                assert len(echoed(upstream, cycle)) == BURST
                # traffic in flight when the axe falls
                for client in clients:
                    client.tx_queue(0).send_burst([frame(i) for i in range(BURST)])
                daemon.proc.kill()
                daemon.proc.wait(timeout=10)
                assert all(c.wait_disconnected(10) for c in clients)
                assert upstream.wait_disconnected(10)
                # SIGKILL leaves the socket file behind: nobody listens on it
                assert stat.S_ISSOCK(os.lstat(svc_sock).st_mode)
                daemon.kill()
                daemon = None
                time.sleep(0.2)  # the clients retry against the stale file meanwhile
                assert all(c.state is memif.State.DISCONNECTED for c in clients)
    finally:
        if daemon is not None:
            daemon.kill()
    assert len(set(pids)) == CYCLES
    print(f"\nkill -9 / restart cycles: {CYCLES}, every link back each time")


def test_restart_after_kill_while_clients_hammer_the_stale_socket(
    sock_dir: Path, tmp_path: Path
) -> None:
    """Clients retrying every 10 ms against the dead file do not keep memifd from binding it."""
    config = write_config(
        tmp_path / "memifd.yaml",
        [{"name": f"h{i}", "socket": "hammer.sock", "id": i, "action": "echo"} for i in range(8)],
    )
    daemon = start_daemon(sock_dir, config)
    try:
        with memif_clients(
            str(sock_dir / "hammer.sock"), list(range(8)), reconnect_interval=0.01
        ) as clients:
            assert all(c.wait_connected(10) for c in clients)
            assert daemon.proc is not None
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
            assert all(c.wait_disconnected(10) for c in clients)
            restarted = start_daemon(
                sock_dir, config, http_port=daemon.http_port, grpc_port=daemon.grpc_port
            )
            daemon.kill()
            daemon = restarted
            assert all(c.wait_connected(10) for c in clients)
            with daemon.client() as api:
                assert wait_for(lambda: all_connected(api, {f"h{i}" for i in range(8)}), 10)
            assert [len(echoed(c, 1)) for c in clients] == [BURST] * 8
    finally:
        daemon.kill()
