"""The event loop never waits: listeners that never accept, memory too big to build in place.

A listener whose backlog is full makes a blocking ``connect()`` wait forever;
both the client's connect and the server's stale-socket probe must see it as
"busy" at once. Big client memory is built on the background thread, once per
geometry: a server that hangs up before it has seen the memory does not get a
second build, and memory a server has seen is never offered to the next one.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import memif
import pytest
from memif import MemoryConfig, background

from tests.memif import hostile_peer as hp
from tests.memif.conftest import wait_until

# 4 queue pairs × 2^14: 131,072 descriptors, far past the background threshold.
BIG = MemoryConfig(num_queue_pairs=4, log2_ring_size=14, packet_buffer_size=128)


@pytest.fixture
def stuck_listener(sock_dir: Path) -> Iterator[str]:
    path = str(sock_dir / "stuck.sock")
    listener, pending = hp.full_backlog_listener(path)
    check = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
    with pytest.raises(BlockingIOError):  # the trap is set: one more connect would wait
        check.connect(path)
    check.close()
    yield path
    for sock in (*pending, listener):
        sock.close()


def test_client_facing_a_full_backlog_retries_without_waiting(stuck_listener: str) -> None:
    with memif.Socket(stuck_listener, reconnect_interval=0.05) as sock:
        iface = sock.create_interface(role="client", name="patient")
        slowest = 0.0
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # about ten connect attempts
            start = time.monotonic()
            sock.poll(0.01)
            slowest = max(slowest, time.monotonic() - start)
        assert slowest < 0.5
        assert os.strerror(errno.EAGAIN) in iface.disconnect_reason
        assert iface.state is memif.State.DISCONNECTED


def test_server_on_a_path_held_by_a_full_backlog_listener_is_refused(stuck_listener: str) -> None:
    with memif.Socket(stuck_listener) as sock:
        start = time.monotonic()
        with pytest.raises(memif.LocalProtocolError, match="in use by another listener"):
            sock.create_interface(role="server")
        assert time.monotonic() - start < 1.0
        assert os.path.exists(stuck_listener)  # the other listener's file stays


def memfd_inodes(name: str) -> set[int]:
    """Inodes of this process's memfds made for interface ``name``."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"/memfd:memif {name} region"):
                found.add(os.stat(f"/proc/self/fd/{fd}").st_ino)
        except OSError:
            continue
    return found


def offered_region_inode(peer: hp.Peer) -> int:
    """Play server up to the first ADD_REGION; the inode of the memfd it carries."""
    peer.send(hp.hello())
    peer.expect(hp.INIT)
    peer.send(hp.ack())
    region = peer.expect(hp.ADD_REGION)
    assert len(region.fds) == 1
    return os.fstat(region.fds[0]).st_ino


def test_big_memory_is_built_once_and_never_offered_twice(sock_dir: Path, no_fd_leak: None) -> None:
    path = str(sock_dir / "dropper.sock")
    listener = hp.Listener(path)
    sock = memif.Socket(path, reconnect_interval=0.02)
    try:
        sock.create_interface(role="client", name="big", memory=BIG)
        sock.start()
        kept: set[int] = set()
        for _ in range(4):  # servers that say HELLO and hang up
            peer = listener.accept()
            peer.send(hp.hello())
            peer.close()
            assert background.idle()
            assert wait_until(lambda: len(memfd_inodes("big")) == 2)  # rings and buffers
            kept = kept or memfd_inodes("big")
            assert memfd_inodes("big") == kept  # the same memory, not built again
        peer = listener.accept()
        first = offered_region_inode(peer)
        assert first in kept  # what was built while nobody waited is what is offered
        peer.close()  # this server has seen the memory: it must not be offered again
        peer = listener.accept()
        second = offered_region_inode(peer)
        assert second not in kept
        peer.close()
    finally:
        sock.close()
        listener.close()
    assert background.idle()
    assert wait_until(lambda: not memfd_inodes("big"))


def test_big_client_connects_and_its_memory_is_freed(sock_dir: Path, no_fd_leak: None) -> None:
    path = str(sock_dir / "big.sock")
    with memif.Socket(path) as server_sock, memif.Socket(path) as client_sock:
        server = server_sock.create_interface(role="server", name="bigs", memory=BIG)
        client = client_sock.create_interface(role="client", name="bigc", memory=BIG)
        server_sock.start()
        client_sock.start()
        assert client.wait_connected(20), client.disconnect_reason
        assert server.wait_connected(5), server.disconnect_reason
        assert client.num_tx_connected == 4
        assert client.tx_queue(3).send(b"over a big link")
        assert wait_until(lambda: server.rx_queue(3).pending())
        assert server.rx_queue(3).recv_burst() == [b"over a big link"]
        client.delete()
    assert background.idle()
    assert wait_until(lambda: not memfd_inodes("bigc"))


def test_deleting_an_interface_while_its_memory_is_built_frees_it(
    sock_dir: Path, no_fd_leak: None
) -> None:
    path = str(sock_dir / "slow.sock")
    listener = hp.Listener(path)
    try:
        with memif.Socket(path) as sock:
            iface = sock.create_interface(role="client", name="gone", memory=BIG)
            sock.start()
            peer = listener.accept()
            peer.send(hp.hello())
            iface.delete()  # the build may be queued, running or done: it is freed either way
            assert background.idle()
            peer.close()
    finally:
        listener.close()
    assert wait_until(lambda: not memfd_inodes("gone"))
