"""A local unprivileged user and an API client attack a root memifd (no token, loopback).

memifd runs as root (a subprocess: real uvicorn and gRPC); its socket_dir is root's,
and ``socket_dirs`` allows an application directory that the attacker, a second
unix user (a forked child that dropped to an unused uid), owns. The attacker drives
the API (anyone may, on loopback without a token) and plays with their directory.

* DELETE after the socket's directory was swapped for a symlink: a root-only
  file survives; memifd removes its own socket and nothing else.
* Swapping the directory back and forth while memifd creates hundreds of sockets
  in it: root-only files keep their mode and content (the exact bind/chmod
  window is hit deterministically in ``tests/memif/test_sockfile.py``).
* Paths outside the allowed directories and ``..``: 422 / INVALID_ARGUMENT naming
  the field and the directories; no directory is created.
* What is in the way: a file, a symlink, another uid's stale socket, a live
  socket: 409 saying what is there, left in place. memifd's own stale socket goes.
* A client interface steered through a symlink to a root-only server: never connects.
* memifd's directories: 0750, removed when empty again.
* Abstract server sockets: the attacker's uid is refused (and logged) unless the
  spec or the settings allow it; allowed_gids matches supplementary groups.
* The fallback socket directory in /tmp: another user's, or writable by others,
  and an unprivileged memifd refuses to start, naming the setting.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import socket
import stat
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import memif
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, wait_for
from tests.reliability.service_support import (
    AsUserLoop,
    as_user,
    start_daemon,
    try_connect,
    unused_id,
    write_config,
)

SECRET_TEXT = "root only\n"
RACE_ROUNDS = 200


@dataclass
class World:
    """The directories of one test: memifd's, the attacker's, and root-only ones."""

    base: Path
    sockets: Path  # memifd's socket_dir (root, 0755)
    app: Path  # allowed by socket_dirs, owned by the attacker
    victim: Path  # root's directory with a root-only file "secret"
    private: Path  # root-only (0700)
    uid: int
    gid: int

    def secret_intact(self) -> None:
        secret = self.victim / "secret"
        st = secret.lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert secret.read_text() == SECRET_TEXT

    def as_attacker(self, action: Any) -> None:
        """Run ``action()`` as the attacker; fail with its error if it raised."""

        def run() -> dict[str, Any]:
            action()
            return {}

        seen = as_user(self.uid, self.gid, run)
        assert "error" not in seen, seen


@pytest.fixture(scope="module")
def attacker() -> tuple[int, int]:
    if os.geteuid() != 0:
        pytest.fail(
            "these tests attack memifd as a second unix user; becoming one needs root "
            "(CI and the development machines run the tests as root)"
        )
    return unused_id(pwd.getpwuid, 62000), unused_id(grp.getgrgid, 62000)


@pytest.fixture
def world(attacker: tuple[int, int]) -> Iterator[World]:
    uid, gid = attacker
    base = Path(tempfile.mkdtemp(prefix="memifd-att-", dir="/tmp"))
    base.chmod(0o755)
    sockets, app, victim, private = (base / n for n in ("s", "app", "victim", "private"))
    sockets.mkdir(0o755)
    app.mkdir(0o755)
    os.chown(app, uid, gid)
    victim.mkdir(0o755)
    (victim / "secret").write_text(SECRET_TEXT)
    (victim / "secret").chmod(0o600)
    private.mkdir(0o700)
    yield World(base, sockets, app, victim, private, uid, gid)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(world: World, tmp_path: Path) -> Iterator[Daemon]:
    config = write_config(tmp_path / "memifd.yaml", [], socket_dirs=[str(world.app)])
    running = start_daemon(world.sockets, config)
    yield running
    running.kill()


def spec(name: str, socket: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "socket": socket, **fields}


# -- 1. files ------------------------------------------------------------------------------------


def test_delete_after_a_directory_swap_removes_only_memifds_socket(
    world: World, daemon: Daemon
) -> None:
    trap = world.app / "d"
    world.as_attacker(lambda: trap.mkdir())
    with daemon.client() as api:
        created = api.post("/v1/interfaces", json=spec("trap", str(trap / "secret")))
        assert created.status_code == 201, created.text

        def swap() -> None:
            trap.rename(world.app / "d.real")
            trap.symlink_to(world.victim)

        world.as_attacker(swap)
        assert api.delete("/v1/interfaces/trap").status_code == 204
    world.secret_intact()
    assert not (world.app / "d.real" / "secret").exists()  # memifd's own socket is gone


def test_swapping_the_directory_during_creates_never_touches_other_files(
    world: World, daemon: Daemon
) -> None:
    racing = world.app / "d"
    world.as_attacker(lambda: racing.mkdir())
    numbers = itertools.count()

    def aside() -> Path:
        return world.app / f"aside-{next(numbers)}"

    def step() -> None:  # d: a directory -> a symlink to the victim's -> a directory
        link = aside()
        link.symlink_to(world.victim)
        if racing.is_symlink() or not racing.exists():
            link.rename(racing)
        else:
            racing.rename(aside())
            link.rename(racing)
        fresh = aside()
        fresh.mkdir()
        racing.rename(aside())
        fresh.rename(racing)

    loop = AsUserLoop(world.uid, world.gid, step)
    outcomes: Counter[int] = Counter()
    try:
        with daemon.client() as api:
            for number in range(RACE_ROUNDS):
                name = f"race{number}"
                response = api.post("/v1/interfaces", json=spec(name, str(racing / "secret")))
                outcomes[response.status_code] += 1
                if response.status_code == 201:
                    assert api.delete(f"/v1/interfaces/{name}").status_code == 204
    finally:
        swaps = loop.stop()
    assert "fatal" not in swaps, swaps
    assert set(outcomes) <= {201, 409, 422}, outcomes
    assert outcomes[201] > 0 and swaps["steps"] > RACE_ROUNDS, (outcomes, swaps)
    world.secret_intact()


@pytest.mark.parametrize("role", ["server", "client"])
def test_a_path_outside_the_socket_directories_is_refused(
    world: World, daemon: Daemon, role: str
) -> None:
    outside = world.base / "elsewhere" / "x.sock"
    with daemon.client() as api:
        for path in (str(outside), "/etc/memifd.sock", str(world.victim / "secret")):
            response = api.post("/v1/interfaces", json=spec("out", path, role=role))
            assert response.status_code == 422, response.text
            (error,) = response.json()["errors"]
            assert error["loc"] == ["socket"]
            assert f"{path} is outside the socket directories memifd may use" in error["msg"]
            assert f"({world.sockets}, {world.app})" in error["msg"]
            assert "socket_dirs" in error["msg"]
        assert api.get("/v1/interfaces").json() == []
    assert not outside.parent.exists()
    world.secret_intact()
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        stub = memif_stub(channel)
        request = pb.CreateInterfaceRequest(
            spec=pb.InterfaceSpec(
                name="out",
                socket=str(outside),
                role=pb.ROLE_CLIENT if role == "client" else pb.ROLE_SERVER,
            )
        )
        with pytest.raises(grpc.RpcError) as failure:
            stub.CreateInterface(request, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = failure.value.details() or ""
        assert details.startswith(f"spec.socket: {outside} is outside the socket directories")


def test_dot_dot_is_refused(world: World, daemon: Daemon) -> None:
    escapes = ["../victim/secret", "a/../../victim/secret", f"{world.app}/../victim/secret"]
    with daemon.client() as api:
        for path in escapes:
            response = api.post("/v1/interfaces", json=spec("up", path))
            assert response.status_code == 422, response.text
            (error,) = response.json()["errors"]
            assert error["loc"] == ["body", "socket"]
            assert "'..' is not allowed" in error["msg"]
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        stub = memif_stub(channel)
        request = pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name="up", socket=escapes[1]))
        with pytest.raises(grpc.RpcError) as failure:
            stub.CreateInterface(request, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (failure.value.details() or "").startswith("spec.socket: '..' is not allowed")
    world.secret_intact()


def test_what_is_in_the_way_is_left_in_place_with_a_409(world: World, daemon: Daemon) -> None:
    app, uid = world.app, world.uid

    def plant() -> None:
        (app / "file.sock").write_text("the app's data\n")
        (app / "link.sock").symlink_to(world.victim / "secret")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        dead.bind(str(app / "stale.sock"))
        dead.close()

    world.as_attacker(plant)
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # another daemon's socket
    live.bind(str(app / "live.sock"))
    live.listen(4)
    try:
        expected = {
            "file.sock": f"exists and is a regular file of uid {uid}, not a socket; "
            "it is left in place",
            "link.sock": f"exists and is a symbolic link of uid {uid}, not a socket; "
            "it is left in place",
            "stale.sock": f"is a stale socket of uid {uid}; only stale sockets of uid 0 "
            "(this process) are replaced",
            "live.sock": "is in use by a listener of another socket type (uid 0)",
        }
        with daemon.client() as api:
            for name, message in expected.items():
                response = api.post("/v1/interfaces", json=spec("x", str(app / name)))
                assert response.status_code == 409, (name, response.text)
                assert response.json()["detail"] == f"{app / name} {message}"
            assert (app / "file.sock").read_text() == "the app's data\n"
            assert (app / "link.sock").is_symlink()
            assert (app / "stale.sock").lstat().st_uid == uid
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.connect(str(app / "live.sock"))  # still the other daemon's
            probe.close()
            # memifd's own stale socket (say, after kill -9) is replaced
            own = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            own.bind(str(world.sockets / "own.sock"))
            own.close()
            assert api.post("/v1/interfaces", json=spec("own", "own.sock")).status_code == 201
    finally:
        live.close()
    world.secret_intact()


def test_a_client_is_not_steered_through_a_symlink_to_a_root_only_server(
    world: World, daemon: Daemon
) -> None:
    with memif.Socket(str(world.private / "root.sock")) as hidden:
        served = hidden.create_interface(role="server", name="hidden")
        hidden.start()

        def plant() -> None:
            (world.app / "d").symlink_to(world.private)

        world.as_attacker(plant)
        with daemon.client() as api:
            body = spec("steered", str(world.app / "d" / "root.sock"), role="client")
            assert api.post("/v1/interfaces", json=body).status_code == 201
            assert wait_for(
                lambda: (
                    "is not a directory"
                    in api.get("/v1/interfaces/steered").json()["disconnect_reason"]
                ),
                timeout=10,
            )
            status = api.get("/v1/interfaces/steered").json()
            assert status["state"] == "disconnected", status
        assert not served.is_connected and hidden.refused_peers == 0


def test_directories_memifd_makes_are_0750_and_go_again(world: World, daemon: Daemon) -> None:
    with daemon.client() as api:
        body = spec("deep", "sub/deeper/x.sock")
        assert api.post("/v1/interfaces", json=body).status_code == 201
        for made in (world.sockets / "sub", world.sockets / "sub" / "deeper"):
            st = made.lstat()
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0
            assert stat.S_IMODE(st.st_mode) & ~0o750 == 0, oct(st.st_mode)
        assert api.post("/v1/interfaces", json=spec("kept", "keep/x.sock")).status_code == 201
        (world.sockets / "keep" / "peer-file").write_text("not memifd's")
        assert api.delete("/v1/interfaces/deep").status_code == 204
        assert api.delete("/v1/interfaces/kept").status_code == 204
    assert not (world.sockets / "sub").exists()
    assert (world.sockets / "keep" / "peer-file").exists()  # not empty: left alone


# -- 2. who may connect ----------------------------------------------------------------------


def abstract_name() -> str:
    return f"@memifd-att-{uuid.uuid4().hex[:16]}"


def test_abstract_server_refuses_other_uids_unless_allowed(world: World, daemon: Daemon) -> None:
    uid, gid = world.uid, world.gid
    shared, guarded, grouped = abstract_name(), abstract_name(), abstract_name()
    with daemon.client() as api:
        for body in (
            spec("by-default", guarded),
            spec("for-them", shared, id=0, allowed_uids=[uid]),
            spec("not-for-them", shared, id=1),
            spec("by-group", grouped, allowed_gids=[4242]),
        ):
            assert api.post("/v1/interfaces", json=body).status_code == 201
        refused = as_user(uid, gid, lambda: try_connect(guarded))
        assert refused["errno"] == "" and not refused["connected"], refused
        reason = f"uid {uid} is not allowed on any interface of this socket"
        assert refused["reason"].startswith(f"peer disconnected: {reason}"), refused
        assert wait_for(lambda: f"handshake failed (not_allowed): {reason}" in daemon.log())
        assert api.get("/v1/interfaces/by-default").json()["state"] == "disconnected"

        # On one socket: the interface that lists the uid lets it in, the other does not.
        wrong = as_user(uid, gid, lambda: try_connect(shared, interface_id=1))
        assert not wrong["connected"]
        assert f"uid {uid} is not allowed on interface id 1" in wrong["reason"], wrong
        right = as_user(uid, gid, lambda: try_connect(shared, interface_id=0))
        assert right["connected"], right

        # allowed_gids: a supplementary group counts, the primary group alone does not.
        outsider = as_user(uid, gid, lambda: try_connect(grouped))
        assert not outsider["connected"], outsider
        member = as_user(uid, gid, lambda: try_connect(grouped), groups=(4242,))
        assert member["connected"], member
        status = api.get("/v1/interfaces/by-group").json()
        assert status["allowed_gids"] == [4242] and status["allowed_uids"] == []


def test_default_allowed_uids_setting_admits_a_listed_uid(world: World, tmp_path: Path) -> None:
    name = abstract_name()
    config = write_config(
        tmp_path / "memifd.yaml", [spec("shared", name)], default_allowed_uids=[world.uid]
    )
    running = start_daemon(world.sockets, config)
    try:
        seen = as_user(world.uid, world.gid, lambda: try_connect(name))
        assert seen["connected"], seen
        other = as_user(world.uid + 1, world.gid, lambda: try_connect(name))
        assert not other["connected"] and "is not allowed" in other["reason"], other
    finally:
        running.kill()


# -- the fallback socket directory -------------------------------------------------------------


def sticky_tmp(world: World) -> Path:
    """A directory like /tmp: everyone may create in it, only owners remove."""
    tmp = world.base / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    return tmp


def serve_with_the_fallback(base: Path) -> dict[str, Any]:
    """``memifd serve`` in this (forked, unprivileged) process with /tmp moved to ``base``."""
    from memifd.cli.serve import app
    from typer.testing import CliRunner

    tempfile.tempdir = str(base)
    os.environ.pop("XDG_RUNTIME_DIR", None)
    env = {"MEMIFD_HTTP_ADDR": "127.0.0.1:0", "MEMIFD_GRPC_ADDR": "127.0.0.1:0"}
    result = CliRunner().invoke(app, ["serve"], env=env)
    return {"code": result.exit_code, "output": result.output}


@pytest.mark.parametrize("problem", ["other-owner", "group-writable", "symlink"])
def test_unsafe_fallback_socket_dir_stops_memifd(world: World, problem: str) -> None:
    victim_uid = world.uid + 1  # memifd's user; the attacker prepared the directory
    tmp = sticky_tmp(world)
    fallback = tmp / f"memifd-{victim_uid}"
    expected = {
        "other-owner": f"belongs to uid {world.uid}, not to memifd's uid {victim_uid}",
        "group-writable": "has mode 0770: others may write to it",
        "symlink": "is not a directory",
    }[problem]
    if problem == "symlink":
        fallback.symlink_to(world.app)
    else:
        fallback.mkdir()
        owner = world.uid if problem == "other-owner" else victim_uid
        os.chown(fallback, owner, world.gid)
        fallback.chmod(0o700 if problem == "other-owner" else 0o770)
    seen = as_user(victim_uid, world.gid, lambda: serve_with_the_fallback(tmp))
    assert seen.get("code") == 1, seen
    assert f"the fallback socket directory {fallback} {expected}" in seen["output"], seen
    assert "Set socket_dir (--socket-dir, MEMIFD_SOCKET_DIR)" in seen["output"], seen


def test_missing_fallback_socket_dir_is_made_0700(world: World) -> None:
    uid = world.uid + 1
    tmp = sticky_tmp(world)

    def start_and_stop() -> dict[str, Any]:
        from memifd.core.manager import Manager
        from memifd.core.settings import load_settings

        tempfile.tempdir = str(tmp)
        os.environ.pop("XDG_RUNTIME_DIR", None)
        manager = Manager(load_settings())
        manager.start()
        manager.stop()
        return {"socket_dir": str(manager.settings.socket_dir)}

    seen = as_user(uid, world.gid, start_and_stop)
    fallback = tmp / f"memifd-{uid}"
    assert seen == {"socket_dir": str(fallback)}
    st = fallback.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == uid and stat.S_IMODE(st.st_mode) == 0o700
