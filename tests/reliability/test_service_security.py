"""Who may connect.

* Control socket files: 0660 by default (memifd's too), the library's ``mode``
  changes it, and the kernel enforces it against a peer running as a second,
  non-root user (a forked child that dropped its uid, gid and groups):
  ``connect()`` fails with EACCES.
* ``allowed_uids`` refuses a peer of another uid even when the file lets it in,
  telling it why; listing its uid lets the same peer in. An interface's own
  allow-list is checked before its secret, so a refused peer learns nothing of it.
* A wrong secret is refused; the right one connects.
* The API needs a token off loopback: memifd will not listen on 0.0.0.0 without
  one unless ``--insecure``; with one, requests without it get 401 (REST) and
  UNAUTHENTICATED (gRPC) - while clients reach it through 127.0.0.1.
"""

from __future__ import annotations

import grp
import pwd
import stat
from collections.abc import Collection, Iterator
from functools import partial
from pathlib import Path

import grpc
import httpx
import memif
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, free_port, memif_clients, wait_for
from tests.reliability.service_support import (
    as_user,
    start_daemon,
    try_connect,
    unused_id,
    write_config,
)

TOKEN = "tok-5d1f0b7e93c24a6f"
SECRET = "s3cr3t-a81c"


@pytest.fixture(scope="module")
def other_user() -> tuple[int, int]:
    """A non-root uid and a gid that name nobody on this machine."""
    return unused_id(pwd.getpwuid), unused_id(grp.getgrgid)


@pytest.fixture
def open_dir(sock_dir: Path) -> Path:
    """``sock_dir``, searchable by every user: only the socket file's mode decides."""
    sock_dir.chmod(0o711)
    return sock_dir


def server(
    path: Path, mode: int | None = None, allowed_uids: Collection[int] | None = None
) -> memif.Socket:
    """A started library socket with one server interface (id 0) at ``path``."""
    options: dict[str, object] = {}
    if mode is not None:
        options["mode"] = mode
    sock = memif.Socket(str(path), allowed_uids=allowed_uids, **options)  # type: ignore[arg-type]
    sock.create_interface(memif.Arguments(id=0, role="server", name="guarded"))
    sock.start()
    return sock


def file_mode(path: Path) -> int:
    st = path.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    return stat.S_IMODE(st.st_mode)


# -- file permissions ------------------------------------------------------------------------


def test_socket_file_mode_default_and_configured(open_dir: Path) -> None:
    with server(open_dir / "default.sock"), server(open_dir / "private.sock", mode=0o600):
        assert file_mode(open_dir / "default.sock") == 0o660
        assert file_mode(open_dir / "private.sock") == 0o600


def test_other_user_gets_eacces_from_0600_and_from_0660_outside_the_group(
    open_dir: Path, other_user: tuple[int, int]
) -> None:
    uid, gid = other_user
    with server(open_dir / "private.sock", mode=0o600), server(open_dir / "group.sock"):
        for name in ("private.sock", "group.sock"):
            seen = as_user(uid, gid, partial(try_connect, str(open_dir / name)))
            assert seen["uid"] == uid
            assert seen["errno"] == "EACCES", seen
            assert not seen["connected"]
            assert "Permission denied" in seen["reason"], seen
        # a member of the file's group (root's group 0 here) gets in through 0660
        member = as_user(uid, 0, lambda: try_connect(str(open_dir / "group.sock")))
        assert member["errno"] == "" and member["connected"], member


def test_memifd_socket_is_0660_and_closed_to_other_users(
    open_dir: Path, tmp_path: Path, other_user: tuple[int, int]
) -> None:
    config = write_config(tmp_path / "memifd.yaml", [{"name": "vnf", "socket": "vnf.sock"}])
    daemon = start_daemon(open_dir, config)
    try:
        assert file_mode(open_dir / "vnf.sock") == 0o660
        seen = as_user(*other_user, lambda: try_connect(str(open_dir / "vnf.sock")))
        assert seen["errno"] == "EACCES" and not seen["connected"], seen
        with daemon.client() as api:
            assert api.get("/v1/interfaces/vnf").json()["state"] == "disconnected"
    finally:
        daemon.kill()


# -- uid allow-list ----------------------------------------------------------------------------


def test_allowed_uids_refuse_another_uid_with_a_reason(
    open_dir: Path, other_user: tuple[int, int]
) -> None:
    uid, gid = other_user
    path = open_dir / "guarded.sock"
    with server(path, mode=0o666, allowed_uids={0}) as sock:
        seen = as_user(uid, gid, lambda: try_connect(str(path)))
        assert seen["errno"] == "", seen  # the file let it in; the allow-list did not
        assert not seen["connected"]
        assert f"uid {uid} is not allowed" in seen["reason"], seen
        # refused twice: try_connect's raw connect() and then its memif client
        assert wait_for(lambda: sock.refused_peers == 2)
        assert sock.last_refused_reason == f"uid {uid} is not allowed on this socket"
        assert not sock.interfaces[0].is_connected
    with server(path, mode=0o666, allowed_uids={0, uid}) as sock:
        seen = as_user(uid, gid, lambda: try_connect(str(path)))
        assert seen["connected"], seen
        assert sock.refused_peers == 0


def test_interface_allow_list_is_checked_before_the_secret(
    open_dir: Path, other_user: tuple[int, int]
) -> None:
    uid, gid = other_user
    path = open_dir / "per-interface.sock"
    with memif.Socket(str(path), mode=0o666) as sock:
        sock.create_interface(memif.Arguments(id=0, role="server", name="open"))
        sock.create_interface(
            memif.Arguments(id=1, role="server", name="closed", secret=SECRET, allowed_uids={0})
        )
        sock.start()
        for secret in ("a guess", SECRET):  # no answer tells a wrong secret from a right one
            seen = as_user(uid, gid, partial(try_connect, str(path), 1, secret))
            assert not seen["connected"], seen
            assert f"uid {uid} is not allowed on interface id 1" in seen["reason"], seen
        assert as_user(uid, gid, lambda: try_connect(str(path), 0))["connected"]
        assert not sock.interfaces[1].is_connected


# -- secrets -----------------------------------------------------------------------------------


def test_wrong_secret_is_refused_right_secret_connects(sock_dir: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "memifd.yaml",
        [
            {"name": "locked", "socket": "locked.sock", "secret": SECRET, "action": "echo"},
        ],
    )
    daemon = start_daemon(sock_dir, config)
    try:
        path = str(sock_dir / "locked.sock")
        for wrong in ("not-the-secret", None):
            seen = try_connect(path, secret=wrong)
            assert not seen["connected"]
            assert "secret mismatch" in seen["reason"], seen
        with daemon.client() as api:
            status = api.get("/v1/interfaces/locked").json()
            assert status["state"] == "disconnected" and status["has_secret"] is True
            with memif_clients(path, [0], secret=SECRET) as (client,):
                assert client.wait_connected(10)
                assert wait_for(
                    lambda: api.get("/v1/interfaces/locked").json()["state"] == "connected"
                )
    finally:
        daemon.kill()


# -- the API off loopback ----------------------------------------------------------------------


def wildcard_daemon(sock_dir: Path, *args: str) -> Daemon:
    """memifd told to listen on 0.0.0.0 (the later flags win over Daemon's loopback ones)."""
    http, grpc_port = free_port(), free_port()
    return Daemon(
        sock_dir,
        http_port=http,
        grpc_port=grpc_port,
        args=[
            "--log-level",
            "warning",
            "--http-addr",
            f"0.0.0.0:{http}",
            "--grpc-addr",
            f"0.0.0.0:{grpc_port}",
            *args,
        ],
    )


def test_wildcard_address_without_token_is_refused(sock_dir: Path) -> None:
    daemon = wildcard_daemon(sock_dir)
    try:
        daemon.start(wait=False)
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) == 2
        output = daemon.stop_output()
        assert "http_addr 0.0.0.0" in output and "not a loopback address" in output, output
        assert "--insecure" in output
    finally:
        daemon.kill()


def test_wildcard_address_with_insecure_starts(sock_dir: Path) -> None:
    daemon = wildcard_daemon(sock_dir, "--insecure").start()
    try:
        assert "no token (--insecure)" in "\n".join(daemon.banner)
        with daemon.client() as api:
            assert api.get("/v1/interfaces").status_code == 200
    finally:
        daemon.kill()


@pytest.fixture
def guarded(sock_dir: Path, tmp_path: Path) -> Iterator[Daemon]:
    """memifd on 0.0.0.0 with a token (read from a file)."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    daemon = wildcard_daemon(sock_dir, "--token-file", str(token_file)).start()
    yield daemon
    daemon.kill()


def test_token_is_required_on_every_api_route(guarded: Daemon) -> None:
    assert "bearer token required" in "\n".join(guarded.banner)
    routes = [
        ("GET", "/v1/interfaces"),
        ("POST", "/v1/interfaces"),
        ("GET", "/v1/interfaces/x"),
        ("PATCH", "/v1/interfaces/x"),
        ("DELETE", "/v1/interfaces/x"),
        ("GET", "/v1/interfaces/x/stats"),
        ("GET", "/v1/interfaces/x/capture"),
        ("POST", "/v1/interfaces/x/packets"),
        ("GET", "/v1/capture"),
        ("GET", "/v1/events"),
        ("GET", "/metrics"),
    ]
    with guarded.client() as anonymous, guarded.client("wrong-" + TOKEN) as wrong:
        for method, path in routes:
            for client in (anonymous, wrong):
                response = client.request(method, path, json={"name": "x"})
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
        assert anonymous.get("/healthz").status_code == 200
    with guarded.client(TOKEN) as authorized:
        assert authorized.post("/v1/interfaces", json={"name": "x"}).status_code == 201
        assert authorized.get("/v1/interfaces/x/stats").status_code == 200
        assert authorized.get("/metrics").status_code == 200
    with httpx.Client(base_url=guarded.url, timeout=10) as raw:  # not "Bearer"
        response = raw.get("/v1/interfaces", headers={"Authorization": f"Basic {TOKEN}"})
        assert response.status_code == 401


def test_grpc_token_is_required(guarded: Daemon) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as channel:
        stub = memif_stub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.ListInterfaces(pb.ListInterfacesRequest(), metadata=metadata, timeout=10)
            assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = stub.ListInterfaces(
            pb.ListInterfacesRequest(),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
            timeout=10,
        )
        assert list(listed.interfaces) == []
