"""Socket files: created with their mode, never following a swapped path, removed only
while they are the file that was bound, stale files replaced only when they are ours.

The swaps happen at the exact moment the library is about to act: a Python audit
hook (``sys.addaudithook``) runs the swap when the library raises the audit event
of ``bind()``, ``chmod()``, ``link()`` or ``unlink()``, i.e. just before the call.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import memif
import pytest
from memif import MemoryConfig

from tests.memif.conftest import wait_until

SMALL = MemoryConfig(log2_ring_size=4)
VICTIM_TEXT = "root-only secret\n"

_armed: dict[str, Callable[[], None]] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    action = _armed.pop(event, None)
    if action is not None:
        action()


sys.addaudithook(_audit)  # permanent for the process; inert while nothing is armed


def arm(event: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, right before the next audited ``event``."""
    _armed[event] = action


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    _armed.clear()


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory holding root-only files under the names the library uses."""
    place = tmp_path / "victim"
    place.mkdir()
    for name in ("x.sock", "s"):
        target = place / name
        target.write_text(VICTIM_TEXT)
        target.chmod(0o600)
    return place


def assert_untouched(victim: Path) -> None:
    for name in ("x.sock", "s"):
        target = victim / name
        st = target.lstat()
        assert stat.S_ISREG(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
        assert target.read_text() == VICTIM_TEXT


def swap_for_link(directory: Path, target: Path) -> Callable[[], None]:
    """An action moving ``directory`` aside and putting a symlink to ``target`` there."""

    def swap() -> None:
        directory.rename(directory.with_name(directory.name + ".orig"))
        directory.symlink_to(target)

    return swap


def connects(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".memif-")]


# -- creating ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660])
def test_file_has_its_mode_and_nothing_is_left_behind(sock_dir: Path, mode: int) -> None:
    path = sock_dir / "x.sock"
    with memif.Socket(str(path), mode=mode) as sock:
        sock.create_interface(role="server")
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
        assert st.st_uid == os.geteuid()
        assert connects(path)
        assert leftovers(sock_dir) == []
    assert not path.exists() and leftovers(sock_dir) == []


@pytest.mark.parametrize("event", ["socket.bind", "os.chmod", "os.link"])
def test_directory_swapped_during_creation_changes_nothing_elsewhere(
    sock_dir: Path, victim: Path, event: str
) -> None:
    directory = sock_dir / "d"
    directory.mkdir()
    arm(event, swap_for_link(directory, victim))
    with memif.Socket(str(directory / "x.sock"), mode=0o666) as sock:
        sock.create_interface(role="server")
        assert event not in _armed  # the swap did happen
        assert_untouched(victim)
        real = sock_dir / "d.orig" / "x.sock"
        assert stat.S_ISSOCK(real.lstat().st_mode)
        assert stat.S_IMODE(real.lstat().st_mode) == 0o666
        assert connects(real)
    assert_untouched(victim)
    assert not (sock_dir / "d.orig" / "x.sock").exists()
    assert leftovers(sock_dir / "d.orig") == []


def test_directory_swapped_before_close_only_our_file_goes(sock_dir: Path, victim: Path) -> None:
    directory = sock_dir / "d"
    directory.mkdir()
    sock = memif.Socket(str(directory / "x.sock"))
    sock.create_interface(role="server")
    swap_for_link(directory, victim)()
    sock.close()
    assert_untouched(victim)
    assert not (sock_dir / "d.orig" / "x.sock").exists()


def test_swap_right_before_unlink_removes_nothing_else(sock_dir: Path, victim: Path) -> None:
    directory = sock_dir / "d"
    directory.mkdir()
    sock = memif.Socket(str(directory / "x.sock"))
    sock.create_interface(role="server")
    arm("os.remove", swap_for_link(directory, victim))
    sock.close()
    assert "os.remove" not in _armed
    assert_untouched(victim)
    assert not (sock_dir / "d.orig" / "x.sock").exists()


@pytest.mark.parametrize("kind", ["socket", "file"])
def test_a_replaced_file_is_not_removed(sock_dir: Path, kind: str) -> None:
    path = sock_dir / "x.sock"
    sock = memif.Socket(str(path))
    sock.create_interface(role="server")
    path.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        if kind == "socket":
            other.bind(str(path))
            other.listen(1)
        else:
            path.write_text("someone else's")
        sock.close()
        assert path.exists()
        if kind == "socket":
            assert connects(path)
    finally:
        other.close()


# -- what is in the way --------------------------------------------------------------------------


def test_symlink_in_the_way_is_refused_and_its_target_untouched(
    sock_dir: Path, victim: Path
) -> None:
    path = sock_dir / "x.sock"
    path.symlink_to(victim / "x.sock")
    with (
        memif.Socket(str(path)) as sock,
        pytest.raises(memif.PathInUse, match="is a symbolic link of uid 0, not a socket"),
    ):
        sock.create_interface(role="server")
    assert path.is_symlink()
    assert_untouched(victim)


def stale_socket(path: Path, owner: int | None = None) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dead.bind(str(path))
    dead.close()
    if owner is not None:
        os.chown(path, owner, owner, follow_symlinks=False)


def test_stale_socket_of_another_uid_is_left_in_place(sock_dir: Path) -> None:
    path = sock_dir / "x.sock"
    stale_socket(path, owner=61234)
    expected = rf"is a stale socket of uid 61234; only stale sockets of uid {os.geteuid()}"
    with memif.Socket(str(path)) as sock, pytest.raises(memif.PathInUse, match=expected):
        sock.create_interface(role="server")
    assert path.lstat().st_uid == 61234


def test_stale_policy_any_and_never(sock_dir: Path) -> None:
    path = sock_dir / "x.sock"
    stale_socket(path, owner=61234)
    with memif.Socket(str(path), replace_stale="any") as sock:
        sock.create_interface(role="server")
        assert path.lstat().st_uid == os.geteuid()
    stale_socket(path)
    with (
        memif.Socket(str(path), replace_stale="never") as sock,
        pytest.raises(memif.PathInUse, match="replacing stale sockets is off"),
    ):
        sock.create_interface(role="server")
    assert path.exists()
    with pytest.raises(memif.LocalProtocolError, match="replace_stale must be one of"):
        memif.Socket(str(path), replace_stale="sometimes")  # type: ignore[arg-type]


def test_a_full_backlog_counts_as_live_and_the_probe_does_not_block(sock_dir: Path) -> None:
    path = sock_dir / "x.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    live.bind(str(path))
    live.listen(0)
    fillers = []
    try:
        while True:  # fill the backlog until a non-blocking connect would wait
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
            fillers.append(filler)
            try:
                filler.connect(str(path))
            except BlockingIOError:
                break
        with (
            memif.Socket(str(path)) as sock,
            pytest.raises(memif.PathInUse, match="in use by another listener"),
        ):
            sock.create_interface(role="server")
    finally:
        for filler in fillers:
            filler.close()
        live.close()


# -- connecting ----------------------------------------------------------------------------------


def test_client_does_not_follow_a_symlink_to_a_socket_elsewhere(
    sock_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    with memif.Socket(str(elsewhere / "real.sock")) as server:
        served = server.create_interface(role="server", memory=SMALL)
        server.start()
        link = sock_dir / "x.sock"
        link.symlink_to(elsewhere / "real.sock")
        with memif.Socket(str(link), reconnect_interval=0.05) as client_sock:
            client = client_sock.create_interface(role="client", memory=SMALL)
            client_sock.start()
            assert wait_until(lambda: "is not a socket" in client.disconnect_reason)
            assert not client.is_connected and not served.is_connected
            assert server.refused_peers == 0


def test_client_connects_through_the_directory_it_was_given(sock_dir: Path) -> None:
    """The directory opener decides where the name is looked up."""
    (sock_dir / "a").mkdir()
    with memif.Socket(str(sock_dir / "a" / "x.sock")) as server:
        served = server.create_interface(role="server", memory=SMALL)
        server.start()

        def open_a(create: bool) -> int:
            return os.open(sock_dir / "a", os.O_PATH | os.O_DIRECTORY)

        with memif.Socket("elsewhere/x.sock", directory=open_a, reconnect_interval=0.05) as sock:
            client = sock.create_interface(role="client", memory=SMALL)
            sock.start()
            assert client.wait_connected(5), client.disconnect_reason
            assert served.wait_connected(5)
