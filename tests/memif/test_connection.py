"""The link as a sans-I/O state machine: wire messages and time in, events out, no sockets."""

from __future__ import annotations

import pytest
from memif import wire
from memif.config import Arguments, Mode
from memif.connection import Connection, ConnectionState, PeerCheck
from memif.constants import VERSION
from memif.errors import FailureKind, LocalProtocolError
from memif.events import (
    Connecting,
    Event,
    HandshakeCompleted,
    HandshakeFailed,
    LinkDown,
    LinkUp,
    MemoryNeeded,
    RegionReceived,
    RingReceived,
)
from memif.handshake import RegionInfo, RingInfo, ServerTarget

TIMEOUT = 5.0
REGION_FD, S2M_FD, M2S_FD = 100, 101, 102  # stand-ins: the connection never touches an fd


def lookup(secret: str | None = None) -> ServerTarget | None:
    return ServerTarget(id=7, name="srv", mode=Mode.ETHERNET, secret=secret)


def server(secret: str | None = None, check_peer: PeerCheck | None = None) -> Connection:
    return Connection.server(
        "server-app",
        lambda id_: lookup(secret) if id_ == 7 else None,
        now=0.0,
        timeout=TIMEOUT,
        check_peer=check_peer,
    )


def client(secret: str | None = None, id_: int = 7) -> Connection:
    args = Arguments(id=id_, role="client", name="cli", secret=secret)
    return Connection.client(args, "client-app", now=0.0, timeout=TIMEOUT)


def events(conn: Connection) -> list[Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def messages(conn: Connection) -> list[wire.Message]:
    return [send.message for send in conn.data_to_send()]


def deliver(src: Connection, dst: Connection, now: float = 0.0) -> list[wire.Message]:
    """Hand everything ``src`` queued to ``dst``; returns what went over."""
    sent = src.data_to_send()
    for item in sent:
        dst.receive(item.message, item.fd, now)
    return [item.message for item in sent]


def memory() -> tuple[list[RegionInfo], list[RingInfo]]:
    regions = [RegionInfo(0, 4096, REGION_FD)]
    rings = [RingInfo(True, 0, 0, 0, 4, S2M_FD), RingInfo(False, 0, 0, 1024, 4, M2S_FD)]
    return regions, rings


def handshake_until_connect(srv: Connection, cli: Connection) -> list[Event]:
    """Run both sides up to the server's HandshakeCompleted; returns the server's events."""
    assert events(cli) == [Connecting("client", 7)]
    deliver(srv, cli)  # HELLO
    (needed,) = events(cli)
    assert isinstance(needed, MemoryNeeded) and needed.negotiated.num_s2m_rings == 1
    cli.provide_memory(*memory(), now=0.0)
    seen: list[Event] = []
    while not any(isinstance(e, HandshakeCompleted) for e in seen):
        assert deliver(cli, srv)
        seen += events(srv)
        deliver(srv, cli)
    return seen


def test_handshake_in_both_roles_reports_the_link_up() -> None:
    srv, cli = server(), client()
    seen = handshake_until_connect(srv, cli)
    assert seen[0] == Connecting("server", 7)
    assert [type(e) for e in seen[1:]] == [
        RegionReceived,
        RingReceived,
        RingReceived,
        HandshakeCompleted,
    ]
    region, s2m, m2s, done = seen[1:]
    assert region == RegionReceived("server", 0, 4096, REGION_FD)
    assert isinstance(s2m, RingReceived) and s2m.ring.eventfd == S2M_FD and s2m.ring.s2m
    assert isinstance(m2s, RingReceived) and m2s.ring.eventfd == M2S_FD
    assert isinstance(done, HandshakeCompleted) and done.result.peer_if_name == "cli"
    assert srv.state is ConnectionState.ESTABLISHING
    assert srv.data_to_send() == []  # CONNECTED waits until the queues are attached
    assert events(cli) == []
    srv.established()
    assert events(srv) == [LinkUp("server", 7, "cli", "client-app")]
    assert deliver(srv, cli) == [wire.Connected(b"srv")]
    (completed,) = events(cli)
    assert isinstance(completed, HandshakeCompleted)
    cli.established()
    assert events(cli) == [LinkUp("client", 7, "srv", "server-app")]
    assert srv.is_up and cli.is_up
    assert srv.deadline is None and cli.deadline is None


def test_bad_secret_is_refused_with_a_reason() -> None:
    srv, cli = server(secret="right"), client(secret="wrong")
    events(cli)
    deliver(srv, cli)
    events(cli)
    cli.provide_memory(*memory(), now=0.0)
    deliver(cli, srv)  # INIT
    assert events(srv) == [
        HandshakeFailed("server", 7, "secret mismatch", FailureKind.SECRET, refused=True)
    ]
    assert srv.closed
    assert messages(srv) == [wire.Disconnect(1, b"secret mismatch")]


def test_peer_check_refuses_before_the_secret_is_compared() -> None:
    srv = server(secret="right", check_peer=lambda id_: f"uid 1000 may not use {id_}")
    messages(srv)
    srv.receive(wire.Init(VERSION, 7, 0, b"wrong", b"app"), None, 0.0)
    (failed,) = events(srv)
    assert isinstance(failed, HandshakeFailed)
    assert failed.kind is FailureKind.NOT_ALLOWED and failed.reason == "uid 1000 may not use 7"


def test_unknown_interface_id_is_refused_without_a_link_event() -> None:
    srv = server()
    messages(srv)
    srv.receive(wire.Init(VERSION, 8, 0, b"", b"app"), None, 0.0)
    (failed,) = events(srv)
    assert failed == HandshakeFailed(
        "server", 8, "no server interface with id 8", FailureKind.UNKNOWN_ID, refused=True
    )


def test_handshake_times_out_at_its_deadline() -> None:
    srv = server()
    messages(srv)
    srv.tick(TIMEOUT - 0.001)
    assert events(srv) == [] and not srv.closed
    srv.tick(TIMEOUT)
    assert events(srv) == [
        HandshakeFailed("server", None, "handshake timed out", FailureKind.TIMEOUT, refused=True)
    ]
    assert messages(srv) == [wire.Disconnect(1, b"handshake timed out")]


def test_client_building_memory_has_no_deadline_then_a_fresh_one() -> None:
    srv, cli = server(), client()
    events(cli)
    deliver(srv, cli, now=1.0)
    events(cli)
    assert cli.state is ConnectionState.NEED_MEMORY and cli.deadline is None
    cli.tick(100.0)
    assert not cli.closed
    cli.provide_memory(*memory(), now=100.0)
    assert cli.deadline == 100.0 + TIMEOUT
    cli.tick(100.0 + TIMEOUT)
    failed, down = events(cli)
    assert isinstance(failed, HandshakeFailed) and failed.kind is FailureKind.TIMEOUT
    assert not failed.refused  # only a server counts refused peers
    assert down == LinkDown("client", 7, "handshake timed out", was_up=False)


def test_peer_disconnect_after_link_up_is_a_link_down() -> None:
    srv, cli = server(), client()
    handshake_until_connect(srv, cli)
    srv.established()
    deliver(srv, cli)
    cli.established()
    events(srv), events(cli)
    cli.receive(wire.Disconnect(1, b"bye"), None, 9.0)
    assert events(cli) == [
        LinkDown("client", 7, "peer disconnected: bye (code 1)", was_up=True),
    ]
    assert cli.closed and messages(cli) == []


def test_peer_that_hangs_up_mid_handshake_says_how_far_it_got() -> None:
    srv, cli = server(), client()
    events(cli)
    deliver(srv, cli)
    events(cli)
    cli.provide_memory(*memory(), now=0.0)
    cli.connection_lost("peer closed")
    failed, down = events(cli)
    assert failed == HandshakeFailed(
        "client", 7, "peer closed while waiting for ACK", FailureKind.PEER_CLOSED
    )
    assert down == LinkDown("client", 7, "peer closed", was_up=False)
    assert messages(cli) == []


def test_memory_refused_by_the_caller_withholds_connected() -> None:
    srv, cli = server(), client()
    handshake_until_connect(srv, cli)
    srv.fail("S2M ring 0: wrong cookie 0x0", FailureKind.MEMORY)
    failed, down = events(srv)
    assert isinstance(failed, HandshakeFailed) and failed.kind is FailureKind.MEMORY
    assert down == LinkDown("server", 7, "S2M ring 0: wrong cookie 0x0", was_up=False)
    assert messages(srv) == [wire.Disconnect(1, b"S2M ring 0: wrong cookie 0x0")]
    with pytest.raises(LocalProtocolError):
        srv.established()


def test_a_ring_fault_closes_the_link_and_tells_the_peer() -> None:
    srv, cli = server(), client()
    handshake_until_connect(srv, cli)
    srv.established()
    events(srv), messages(srv)
    srv.close("rx queue 0: S2M head is 99 slots ahead of tail, ring has 16")
    assert events(srv) == [
        LinkDown("server", 7, "rx queue 0: S2M head is 99 slots ahead of tail, ring has 16", True)
    ]
    (disconnect,) = messages(srv)
    assert isinstance(disconnect, wire.Disconnect) and disconnect.reason.startswith(b"rx queue 0")
    srv.close("again")
    srv.receive(wire.Ack(), None, 0.0)
    assert events(srv) == [] and messages(srv) == []  # closed is final


def test_a_message_after_link_up_breaks_the_link() -> None:
    srv, cli = server(), client()
    handshake_until_connect(srv, cli)
    srv.established()
    events(srv), messages(srv)
    srv.receive(wire.Ack(), None, 0.0)
    assert events(srv) == [LinkDown("server", 7, "unexpected ACK while connected", True)]
    assert messages(srv) == [wire.Disconnect(1, b"unexpected ACK while connected")]


def test_an_fd_the_handshake_refused_is_not_reported() -> None:
    srv = server()
    messages(srv)
    srv.receive(wire.Ack(), 42, 0.0)
    (failed,) = events(srv)
    assert isinstance(failed, HandshakeFailed)
    assert failed.reason == "unexpected file descriptor with ACK"
