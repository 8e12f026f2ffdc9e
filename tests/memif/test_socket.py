"""The control Socket: paths, permissions, ids, loops, reconnects, credentials, cleanup."""

from __future__ import annotations

import os
import select
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import memif
import pydantic
import pytest
from memif import Arguments, LocalProtocolError, MemoryConfig, State
from memif.socket import MESSAGES_PER_TURN

from tests.conftest import open_fds
from tests.memif import hostile_peer as hp
from tests.memif.conftest import PairFactory, settled_fds, wait_until

SMALL = MemoryConfig(log2_ring_size=4)


@pytest.fixture
def sockets(no_fd_leak: None) -> Iterator[list[memif.Socket]]:
    """Sockets a test appends here are closed after it, and nothing may leak."""
    made: list[memif.Socket] = []
    yield made
    for sock in made:
        sock.close()


def new_socket(made: list[memif.Socket], path: str, **kwargs: object) -> memif.Socket:
    kwargs.setdefault("reconnect_interval", 0.05)
    sock = memif.Socket(path, **kwargs)  # type: ignore[arg-type]
    made.append(sock)
    return sock


def exchange(server: memif.Interface, client: memif.Interface, payload: bytes) -> None:
    """Prove the link carries packets both ways."""
    assert server.wait_connected(5) and client.wait_connected(5)
    assert client.tx_queue(0).send(payload)
    assert server.rx_queue(0).recv_burst() == [payload]
    assert server.tx_queue(0).send(payload[::-1])
    assert client.rx_queue(0).recv_burst() == [payload[::-1]]


# -- link events -----------------------------------------------------------------------------------


def collect_events(
    sock: memif.Socket, done: Callable[[list[memif.LinkEvent]], bool], timeout: float = 5.0
) -> list[memif.LinkEvent]:
    """Events of ``sock`` (driving its loop unless its thread runs) until ``done`` says so."""
    seen: list[memif.LinkEvent] = []
    deadline = time.monotonic() + timeout
    while not done(seen) and time.monotonic() < deadline:
        seen += sock.poll_events(0.05)
    return seen


def count(kind: type, events: list[memif.LinkEvent]) -> int:
    return sum(isinstance(e, kind) for e in events)


def test_poll_events_reports_the_link_of_both_roles(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    sock = new_socket(sockets, str(sock_dir / "events.sock"))
    server = sock.create_interface(id=3, role="server", name="s", memory=SMALL)
    client = sock.create_interface(id=3, role="client", name="c", memory=SMALL)
    seen = collect_events(sock, lambda events: count(memif.LinkUp, events) == 2)
    ups = [e for e in seen if isinstance(e, memif.LinkUp)]
    assert sorted(e.role for e in ups) == ["client", "server"]
    assert {sock.interface_for(e) for e in ups} == {server, client}
    assert any(isinstance(e, memif.Connecting) and e.role == "client" for e in seen)
    client.disconnect("bye")
    after = collect_events(sock, lambda events: count(memif.LinkDown, events) == 2)
    downs = [e for e in after if isinstance(e, memif.LinkDown)]
    assert sorted(e.role for e in downs) == ["client", "server"]
    assert all(e.was_up for e in downs)
    assert {e.reason for e in downs} == {"bye", "peer disconnected: bye (code 1)"}


def test_poll_events_waits_for_the_loop_thread(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    sock = new_socket(sockets, str(sock_dir / "threaded.sock"))
    sock.create_interface(id=1, role="server", memory=SMALL)
    sock.create_interface(id=1, role="client", memory=SMALL)
    sock.start()
    seen = collect_events(sock, lambda events: count(memif.LinkUp, events) == 2)
    assert count(memif.LinkUp, seen) == 2


def test_a_refused_peer_is_a_handshake_failed_event(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    sock = new_socket(sockets, str(sock_dir / "refused.sock"))
    sock.create_interface(id=1, role="server", secret="right", memory=SMALL)
    sock.create_interface(id=1, role="client", secret="wrong", memory=SMALL)
    seen = collect_events(sock, lambda events: count(memif.HandshakeFailed, events) > 0)
    failed = [e for e in seen if isinstance(e, memif.HandshakeFailed) and e.role == "server"]
    assert failed and failed[0].kind is memif.FailureKind.SECRET and failed[0].refused
    assert sock.refused_peers >= 1


# -- paths and files -----------------------------------------------------------------------------


def test_filesystem_socket_creates_parent_and_removes_file_on_close(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    path = sock_dir / "a" / "b" / "memif.sock"
    sock = new_socket(sockets, str(path))
    server = sock.create_interface(role="server", memory=SMALL)
    assert sock.listening
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    client = sock.create_interface(role="client", memory=SMALL)
    sock.start()
    assert client.wait_connected(5)
    exchange(server, client, b"fs")
    sock.close()
    assert not path.exists()
    assert server.state is State.DELETED and client.state is State.DELETED


@pytest.mark.parametrize("mode", [0o600, 0o666, 0o640])
def test_socket_file_mode_is_configurable(
    sock_dir: Path, sockets: list[memif.Socket], mode: int
) -> None:
    path = sock_dir / "m.sock"
    sock = new_socket(sockets, str(path), mode=mode)
    sock.create_interface(role="server")
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_abstract_socket(sockets: list[memif.Socket]) -> None:
    name = f"@memif-test-{uuid.uuid4().hex}"
    sock = new_socket(sockets, name)
    server = sock.create_interface(role="server", memory=SMALL)
    other = new_socket(sockets, name)
    client = other.create_interface(role="client", memory=SMALL)
    sock.start()
    other.start()
    assert client.wait_connected(5), client.disconnect_reason
    exchange(server, client, b"abstract")
    assert not Path(name).exists() and not Path(name[1:]).exists()
    # It really is in the abstract namespace: a raw connect to "\0name" reaches it.
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect("\0" + name[1:])
    finally:
        probe.close()


def test_stale_socket_file_is_replaced(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = str(sock_dir / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dead.bind(path)
    dead.close()  # the file stays, nothing listens
    assert os.path.exists(path)
    sock = new_socket(sockets, path)
    server = sock.create_interface(role="server", memory=SMALL)
    client = sock.create_interface(role="client", memory=SMALL)
    sock.start()
    assert client.wait_connected(5) and server.is_connected


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (socket.SOCK_SEQPACKET, "is in use by another listener"),
        (socket.SOCK_STREAM, "is in use by a listener of another socket type"),
    ],
    ids=["seqpacket", "stream"],
)
def test_live_socket_is_not_taken_over(
    sock_dir: Path, sockets: list[memif.Socket], kind: int, message: str
) -> None:
    path = str(sock_dir / "live.sock")
    live = socket.socket(socket.AF_UNIX, kind)
    try:
        live.bind(path)
        live.listen(1)
        sock = new_socket(sockets, path)
        before = open_fds()
        with pytest.raises(LocalProtocolError, match=message):
            sock.create_interface(role="server")
        assert not sock.listening and sock.interfaces == []
        assert open_fds() == before
        # The other program's socket still works.
        probe = socket.socket(socket.AF_UNIX, kind)
        probe.connect(path)
        probe.close()
    finally:
        live.close()


def test_path_that_is_not_a_socket_is_refused(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = sock_dir / "file"
    path.write_text("keep me")
    sock = new_socket(sockets, str(path))
    with pytest.raises(
        memif.PathInUse, match="exists and is a regular file of uid 0, not a socket"
    ):
        sock.create_interface(role="server")
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": ""}, "must be 1..107 bytes"),
        ({"path": "@"}, "must be 1..107 bytes"),
        ({"path": "/tmp/" + "x" * 120}, "must be 1..107 bytes"),
        ({"path": "/tmp/x.sock", "reconnect_interval": 0}, "reconnect_interval must be positive"),
        ({"path": "/tmp/x.sock", "app_name": "a" * 33}, "app_name must be at most 32 bytes"),
    ],
)
def test_bad_socket_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        memif.Socket(**kwargs)  # type: ignore[arg-type]


# -- interfaces on a socket ----------------------------------------------------------------------


def test_many_ids_on_one_socket(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    server_sock = new_socket(sockets, str(sock_dir / "many.sock"))
    client_sock = new_socket(sockets, str(sock_dir / "many.sock"))
    ids = [0, 1, 7, 0xFFFFFFFF]
    servers = {
        i: server_sock.create_interface(id=i, role="server", name=f"s{i}", memory=SMALL)
        for i in ids
    }
    clients = {
        i: client_sock.create_interface(id=i, role="client", name=f"c{i}", memory=SMALL)
        for i in ids
    }
    server_sock.start()
    client_sock.start()
    for i in ids:
        assert clients[i].wait_connected(5) and servers[i].wait_connected(5)
        assert servers[i].peer_name == f"c{i}" and clients[i].peer_name == f"s{i}"
    for i in ids:
        clients[i].tx_queue(0).send(f"to {i}".encode())
    for i in ids:
        assert servers[i].rx_queue(0).recv_burst() == [f"to {i}".encode()]
    assert len(server_sock.interfaces) == len(ids)


def test_same_id_twice_in_one_role_is_refused(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    sock = new_socket(sockets, str(sock_dir / "dup.sock"))
    sock.create_interface(id=3, role="server")
    sock.create_interface(id=3, role="client")  # the other role may use it
    with pytest.raises(LocalProtocolError, match="a server interface with id 3 already exists"):
        sock.create_interface(id=3, role="master")
    with pytest.raises(LocalProtocolError, match="a client interface with id 3 already exists"):
        sock.create_interface(Arguments(id=3))


def test_keywords_override_arguments_with_validation(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    sock = new_socket(sockets, str(sock_dir / "kw.sock"))
    iface = sock.create_interface(Arguments(id=4, secret="pw"), role="master", name="over")
    assert iface.is_server and iface.name == "over" and iface.args.secret == "pw"
    with pytest.raises(pydantic.ValidationError, match="name must be at most 32 bytes"):
        sock.create_interface(Arguments(id=5), name="n" * 33)


@pytest.mark.parametrize("two_sockets", [False, True], ids=["one-socket", "two-sockets"])
def test_both_roles(pair: PairFactory, two_sockets: bool) -> None:
    p = pair(memory=SMALL, two_sockets=two_sockets)
    exchange(p.server, p.client, b"roles")
    assert p.server.is_server and not p.client.is_server
    assert p.server.peer_name == "cli" and p.client.peer_name == "srv"
    if two_sockets:
        assert p.server.remote_app_name == "client-app"
        assert p.client.remote_app_name == "server-app"


def test_peer_credentials_are_recorded(pair: PairFactory) -> None:
    p = pair(memory=SMALL, two_sockets=True)
    me = memif.PeerCredentials(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
    assert p.server.peer_credentials == me
    assert p.client.peer_credentials == me


def test_link_facts_while_connected(pair: PairFactory) -> None:
    p = pair(memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=5, packet_buffer_size=1024))
    for iface in (p.server, p.client):
        assert iface.state is State.CONNECTED and iface.connect_count == 1
        assert iface.connected_since is not None and iface.disconnect_reason == ""
        assert iface.memory == MemoryConfig(
            num_queue_pairs=2, log2_ring_size=5, packet_buffer_size=1024
        )


def test_link_details_show_regions_and_rings_with_their_counters(pair: PairFactory) -> None:
    memory = MemoryConfig(num_queue_pairs=2, log2_ring_size=5, packet_buffer_size=1024)
    p = pair(memory=memory)
    assert p.client.tx_queue(1).send_burst([b"x" * 60] * 3) == 3
    server, client = p.server.link_details(), p.client.link_details()
    assert server is not None and client is not None
    assert server.memory == client.memory == memory
    # libmemif's layout, made by the client: rings in region 0, buffers in region 1
    assert [(r.index, r.sealed) for r in client.regions] == [(0, True), (1, True)]
    assert server.regions == client.regions
    assert client.regions[1].size == 2 * 2 * 32 * 1024
    rings = {(r.direction, r.queue): r for r in client.rings}
    assert sorted(rings) == [("rx", 0), ("rx", 1), ("tx", 0), ("tx", 1)]
    assert {r.size for r in client.rings} == {32} and {r.region for r in client.rings} == {0}
    assert (rings["tx", 1].head, rings["tx", 1].tail) == (3, 0)  # sent, not yet taken back
    assert (rings["rx", 0].head, rings["rx", 0].tail) == (32, 0)  # every buffer posted
    seen = {(r.direction, r.queue): r for r in server.rings}
    assert seen["rx", 1].offset == rings["tx", 1].offset  # one ring, both ends
    assert (seen["rx", 1].head, seen["rx", 1].tail) == (3, 0)
    assert p.server.rx_queue(1).recv_burst() == [b"x" * 60] * 3
    after = p.server.link_details()
    assert after is not None
    assert {(r.direction, r.queue): r for r in after.rings}["rx", 1].tail == 3
    p.client.set_admin_up(False)  # down, and it stays down
    assert wait_until(lambda: p.server.link_details() is None)
    assert wait_until(lambda: p.client.link_details() is None)


# -- loops ---------------------------------------------------------------------------------------


def test_poll_driven_without_threads(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = str(sock_dir / "poll.sock")
    a = new_socket(sockets, path)
    b = new_socket(sockets, path)
    server = a.create_interface(role="server", memory=SMALL)
    client = b.create_interface(role="client", memory=SMALL)
    rounds = 0
    while not (server.is_connected and client.is_connected):
        rounds += 1
        assert rounds < 1000, (server.disconnect_reason, client.disconnect_reason)
        select.select([a.fileno(), b.fileno()], [], [], 1.0)
        for sock in (a, b):
            sock.poll(0)
    exchange(server, client, b"polled")
    client.delete()
    while server.is_connected:
        select.select([a.fileno()], [], [], 1.0)
        a.poll(0)
    assert server.disconnect_reason.startswith("peer disconnected: interface deleted")


def test_poll_refused_while_the_thread_runs(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    sock = new_socket(sockets, str(sock_dir / "t.sock"))
    sock.start()
    sock.start()  # a second start is harmless
    with pytest.raises(LocalProtocolError, match="own thread"):
        sock.poll(0)
    sock.stop()
    assert sock.poll(0) == 0
    sock.stop()  # and so is a second stop


def test_stop_then_poll_then_start_again(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = str(sock_dir / "ssp.sock")
    a = new_socket(sockets, path)
    b = new_socket(sockets, path)
    server = a.create_interface(role="server", memory=SMALL)
    a.start()
    a.stop()  # nothing serves the listener now
    client = b.create_interface(role="client", memory=SMALL)
    b.start()
    assert not client.wait_connected(0.2)
    assert wait_until(lambda: a.poll(0.05) >= 0 and server.is_connected)
    a.start()
    assert client.wait_connected(5)
    client.disconnect("again")
    assert wait_until(lambda: client.connect_count == 2 and server.connect_count == 2)


def test_client_retries_until_the_server_appears(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    path = str(sock_dir / "late" / "memif.sock")
    b = new_socket(sockets, path)
    client = b.create_interface(role="client", memory=SMALL)
    b.start()
    assert wait_until(lambda: client.disconnect_reason.startswith(f"connect to {path} failed"))
    assert client.state is State.DISCONNECTED
    a = new_socket(sockets, path)
    server = a.create_interface(role="server", memory=SMALL)
    a.start()
    assert client.wait_connected(5), client.disconnect_reason
    exchange(server, client, b"late")


def test_client_reconnects_after_server_restart(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    path = str(sock_dir / "restart.sock")
    b = new_socket(sockets, path)
    client = b.create_interface(role="client", memory=SMALL)
    b.start()
    for round_ in range(3):
        a = memif.Socket(path)
        server = a.create_interface(role="server", memory=SMALL)
        a.start()
        assert client.wait_connected(5) and server.wait_connected(5)
        exchange(server, client, f"round {round_}".encode())
        a.close()
        assert client.wait_disconnected(5)
    assert "socket closed" in client.disconnect_reason
    assert client.connect_count == 3


def test_callbacks(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    events: list[tuple[str, str]] = []
    path = str(sock_dir / "cb.sock")
    sock = new_socket(sockets, path)
    sock.create_interface(
        role="server",
        memory=SMALL,
        on_connected=lambda i: events.append(("up", i.name)),
        on_disconnected=lambda i: events.append(("down", i.name)),
    )

    def explode(_: memif.Interface) -> None:
        raise RuntimeError("callback bug")

    client = sock.create_interface(role="client", name="c", memory=SMALL, on_connected=explode)
    sock.start()
    assert client.wait_connected(5)
    assert wait_until(lambda: ("up", "memif0") in events)
    client.set_admin_up(False)
    assert wait_until(lambda: ("down", "memif0") in events)
    assert client.disconnect_reason == "administratively down"
    assert events == [("up", "memif0"), ("down", "memif0")]
    client.set_admin_up(True)
    assert client.wait_connected(5)  # the loop survived the failing callback


# -- who may connect -----------------------------------------------------------------------------


def test_allowed_uids_refuses_others(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = str(sock_dir / "uid.sock")
    other_uid = os.getuid() + 1
    a = new_socket(sockets, path, allowed_uids={other_uid})
    server = a.create_interface(role="server", memory=SMALL)
    b = new_socket(sockets, path)
    client = b.create_interface(role="client", memory=SMALL)
    a.start()
    b.start()
    assert wait_until(lambda: "is not allowed on this socket" in client.disconnect_reason)
    assert f"uid {os.getuid()}" in client.disconnect_reason
    assert a.refused_peers >= 1
    assert not server.is_connected and not client.is_connected


def test_allowed_uids_admits_listed(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = str(sock_dir / "uid-ok.sock")
    a = new_socket(sockets, path, allowed_uids=[os.getuid()])
    server = a.create_interface(role="server", memory=SMALL)
    b = new_socket(sockets, path, allowed_uids=[os.getuid()])
    client = b.create_interface(role="client", memory=SMALL)
    a.start()
    b.start()
    assert client.wait_connected(5) and server.wait_connected(5)
    assert a.refused_peers == 0 and b.refused_peers == 0


def test_client_refuses_a_server_of_another_uid(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    path = str(sock_dir / "uid-c.sock")
    a = new_socket(sockets, path)
    a.create_interface(role="server", memory=SMALL)
    b = new_socket(sockets, path, allowed_uids=[os.getuid() + 1])
    client = b.create_interface(role="client", memory=SMALL)
    a.start()
    b.start()
    assert wait_until(
        lambda: client.disconnect_reason == f"server uid {os.getuid()} is not allowed"
    )
    assert b.refused_peers >= 1 and not client.is_connected


@pytest.mark.parametrize(
    ("server", "client", "reason"),
    [
        ({"secret": "a"}, {"secret": "b"}, "secret mismatch"),
        ({"secret": "a"}, {}, "secret mismatch"),
        ({"mode": "ip"}, {}, "mode mismatch: peer ethernet, ours ip"),
        ({"id": 1}, {"id": 2}, "no server interface with id 2"),
    ],
)
def test_refused_handshakes_tell_the_client_why(
    pair: PairFactory, server: dict[str, object], client: dict[str, object], reason: str
) -> None:
    p = pair(memory=SMALL, server=server, client=client, connect=False)
    p.server_sock.start()
    assert wait_until(lambda: reason in p.client.disconnect_reason), p.client.disconnect_reason
    assert not p.server.is_connected


def test_a_server_without_a_secret_ignores_the_clients(pair: PairFactory) -> None:
    p = pair(memory=SMALL, client={"secret": "b"})
    exchange(p.server, p.client, b"no secret to check")
    assert p.server_sock.refused_peers == 0


def test_second_client_for_a_busy_id_is_refused(pair: PairFactory) -> None:
    p = pair(memory=SMALL)
    intruder_sock = memif.Socket(p.server_sock.path, reconnect_interval=60)
    try:
        intruder = intruder_sock.create_interface(role="client", memory=SMALL)
        intruder_sock.start()
        assert wait_until(
            lambda: "interface id 0 is already connected" in intruder.disconnect_reason
        )
        assert p.server.is_connected and p.client.is_connected
        exchange(p.server, p.client, b"undisturbed")
    finally:
        intruder_sock.close()


def test_admin_down_server_is_not_found(pair: PairFactory) -> None:
    p = pair(memory=SMALL)
    p.server.set_admin_up(False)
    assert p.client.wait_disconnected(5)
    assert wait_until(lambda: "no server interface with id 0" in p.client.disconnect_reason)
    p.server.set_admin_up(True)
    assert p.client.wait_connected(5)


# -- releasing resources -------------------------------------------------------------------------


def test_delete_releases_everything(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    path = sock_dir / "del.sock"
    sock = new_socket(sockets, str(path))
    baseline = open_fds()
    server = sock.create_interface(role="server", memory=MemoryConfig(num_queue_pairs=2))
    client = sock.create_interface(role="client", memory=MemoryConfig(num_queue_pairs=2))
    sock.start()
    assert client.wait_connected(5)
    exchange(server, client, b"x")
    client.delete()
    assert client.state is State.DELETED
    assert server.wait_disconnected(5)
    assert not client.wait_connected(0.1)
    with pytest.raises(LocalProtocolError, match="deleted"):
        client.set_admin_up(True)
    assert not client.tx_queue(0).send(b"gone")
    server.delete()
    assert not path.exists() and not sock.listening
    assert sock.interfaces == []
    assert settled_fds(baseline) == baseline
    client.delete()  # deleting twice is harmless


def test_close_is_idempotent_and_final(sock_dir: Path, sockets: list[memif.Socket]) -> None:
    sock = new_socket(sockets, str(sock_dir / "c.sock"))
    sock.create_interface(role="server")
    sock.close()
    sock.close()
    with pytest.raises(LocalProtocolError, match="is closed"):
        sock.create_interface(role="client")
    with pytest.raises(LocalProtocolError, match="is closed"):
        sock.start()
    assert sock.poll(0) == 0


def test_context_manager_closes(sock_dir: Path, no_fd_leak: None) -> None:
    path = sock_dir / "cm.sock"
    with memif.Socket(str(path)) as sock:
        server = sock.create_interface(role="server", memory=SMALL)
        client = sock.create_interface(role="client", memory=SMALL)
        sock.start()
        assert client.wait_connected(5)
        assert path.exists()
    assert not path.exists()
    assert server.state is State.DELETED


def test_established_links_leave_no_timer_due(sock_dir: Path) -> None:
    """Once links are up nothing is due: an idle loop sleeps instead of spinning."""
    path = str(sock_dir / "idle.sock")
    with memif.Socket(path, handshake_timeout=0.2) as sock:
        srv = sock.create_interface(id=0, role="server", name="srv")
        cli = sock.create_interface(id=0, role="client", name="cli")
        sock.start()
        assert srv.wait_connected(5) and cli.wait_connected(5)
        assert wait_until(lambda: sock.next_timeout() is None, timeout=5.0)
        sock.stop()
        # past the handshake deadline of both connections, still nothing is due
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            assert sock.next_timeout() is None
            time.sleep(0.05)
        assert srv.is_connected and cli.is_connected


def test_a_link_of_more_rings_than_one_turn_attaches_carries_and_drops(
    pair: PairFactory,
) -> None:
    """40 queue pairs: the server attaches the 80 rings over several loop turns."""
    p = pair(memory=MemoryConfig(num_queue_pairs=40, log2_ring_size=4), two_sockets=True)
    for queue in (0, 39):
        assert p.client.tx_queue(queue).send(b"q%d" % queue)
        assert p.server.rx_queue(queue).recv_burst() == [b"q%d" % queue]
        assert p.server.tx_queue(queue).send(b"r%d" % queue)
        assert p.client.rx_queue(queue).recv_burst() == [b"r%d" % queue]
    p.client.disconnect("again")
    assert wait_until(lambda: p.server.connect_count == 2 and p.server.is_connected)
    assert p.server.num_rx_connected == 40 and p.server.num_tx_connected == 40


def test_a_sliced_link_build_keeps_a_callers_loop_turning(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    """Driven from the caller's own loop, which sleeps until fileno() is readable."""
    path = str(sock_dir / "own-loop.sock")
    server_sock = new_socket(sockets, path)
    client_sock = new_socket(sockets, path)
    memory = MemoryConfig(num_queue_pairs=40, log2_ring_size=4)
    server = server_sock.create_interface(role="server", memory=memory)
    client = client_sock.create_interface(role="client", memory=memory)
    client_sock.start()
    deadline = time.monotonic() + 5
    while not server.is_connected and time.monotonic() < deadline:
        select.select([server_sock], [], [], 10.0)  # no timer due: only readiness wakes us
        server_sock.poll(0)
    assert server.is_connected and server.num_rx_connected == 40
    assert client.wait_connected(5)


def test_one_loop_turn_reads_a_bounded_number_of_messages_per_connection(
    sock_dir: Path, sockets: list[memif.Socket]
) -> None:
    """A peer that announces its rings without waiting for the ACKs gets them a turn at a time."""
    path = str(sock_dir / "bounded.sock")
    sock = new_socket(sockets, path)
    sock.create_interface(role="server", memory=SMALL)
    mem = hp.ClientMemory(pairs=20)
    peer = hp.dial(path)
    try:
        peer.send(hp.init())
        peer.send(hp.add_region(0, mem.size), [mem.fd])
        for ring in mem.rings:
            peer.send(hp.add_ring(ring.s2m, ring.index, 0, ring.offset, ring.log2), [ring.eventfd])
        sock.poll(0)  # accepts and sends HELLO
        peer.expect(hp.HELLO)
        answers = []
        for _ in range(3):
            sock.poll(0)
            answers.append(_waiting_acks(peer))
        assert answers == [MESSAGES_PER_TURN, 2 + len(mem.rings) - MESSAGES_PER_TURN, 0]
    finally:
        peer.close()
        mem.close()


def _waiting_acks(peer: hp.Peer) -> int:
    """ACKs that can be read without waiting."""
    peer.sock.setblocking(False)
    count = 0
    try:
        while True:
            try:
                got = peer.recv()
            except BlockingIOError:
                return count
            assert got is not None and got.kind == hp.ACK
            count += 1
    finally:
        peer.sock.settimeout(hp.TIMEOUT)
