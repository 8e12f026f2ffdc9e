"""Fixtures of the memif library tests: connected interface pairs and resource accounting."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import memif
import pytest

from tests.conftest import open_fds


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last truth."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


def mappings() -> int:
    """Number of memory mappings of this process."""
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


SETTLE_WINDOW = 0.2  # seconds the fds must stay at the baseline


def settled_fds(baseline: set[int], timeout: float = 5.0) -> set[int]:
    """Open fds once they are back to ``baseline`` (or whatever they are at the deadline)."""

    def back() -> bool:
        gc.collect()
        return open_fds() == baseline

    def back_for_a_while() -> bool:
        # and still so a moment later: a peer's connection may wait in the accept queue
        # and take an fd for an instant after the last one was closed
        if not back():
            return False
        time.sleep(SETTLE_WINDOW)
        return back()

    wait_until(back_for_a_while, timeout)
    return open_fds()


def describe(fds: set[int]) -> dict[int, str]:
    """What each fd points at, for assertion messages."""
    out = {}
    for fd in sorted(fds):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            out[fd] = "?"
    return out


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves fds open once everything it made is closed."""
    gc.collect()
    before = open_fds()
    yield
    after = settled_fds(before)
    assert after == before, f"leaked {describe(after - before)}, closed {sorted(before - after)}"


@dataclass
class Pair:
    """A server and a client interface connected through one or two Sockets."""

    server_sock: memif.Socket
    client_sock: memif.Socket
    server: memif.Interface
    client: memif.Interface


PairFactory = Callable[..., Pair]


def start(pair: Pair) -> None:
    """Start the pair's event loops and wait until both ends are connected."""
    for sock in {pair.server_sock, pair.client_sock}:
        sock.start()
    assert pair.client.wait_connected(5), pair.client.disconnect_reason
    assert pair.server.wait_connected(5), pair.server.disconnect_reason


@pytest.fixture
def pair(sock_dir: Path, no_fd_leak: None) -> Iterator[PairFactory]:
    """Factory: ``pair(**arguments)`` gives a connected server/client pair on one socket.

    Keywords apply to both interfaces; ``server=dict(...)`` and ``client=dict(...)``
    apply to one side. ``two_sockets=True`` puts the roles on separate Sockets;
    ``connect=False`` leaves the loops stopped (see :func:`start`).
    """
    sockets: list[memif.Socket] = []

    def make(
        *,
        server: dict[str, object] | None = None,
        client: dict[str, object] | None = None,
        two_sockets: bool = False,
        connect: bool = True,
        **common: object,
    ) -> Pair:
        path = str(sock_dir / f"p{len(sockets)}.sock")
        server_sock = memif.Socket(path, reconnect_interval=0.05, app_name="server-app")
        sockets.append(server_sock)
        client_sock = server_sock
        if two_sockets:
            client_sock = memif.Socket(path, reconnect_interval=0.05, app_name="client-app")
            sockets.append(client_sock)
        srv = server_sock.create_interface(
            **{"role": "server", "name": "srv", **common, **(server or {})}  # type: ignore[arg-type]
        )
        cli = client_sock.create_interface(
            **{"role": "client", "name": "cli", **common, **(client or {})}  # type: ignore[arg-type]
        )
        made = Pair(server_sock, client_sock, srv, cli)
        if connect:
            start(made)
        return made

    yield make
    for sock in sockets:
        sock.close()
