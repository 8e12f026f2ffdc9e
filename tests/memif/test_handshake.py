"""The sans-I/O handshake machines: order, limits, ids, modes, secrets, fds, disconnects.

File descriptors are plain numbers here: the machines only carry them along.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memif import (
    Arguments,
    FailureKind,
    LocalProtocolError,
    MemoryConfig,
    Mode,
    PeerDisconnected,
    RemoteProtocolError,
    wire,
)
from memif.constants import VERSION
from memif.handshake import (
    ClientHandshake,
    RegionInfo,
    RingInfo,
    Send,
    ServerHandshake,
    ServerLimits,
    ServerTarget,
)

RING_BYTES_LOG2_4 = 128 + 16 * 16
_fd_numbers = itertools.count(1000)


def target(**changes: object) -> ServerTarget:
    values: dict[str, object] = {
        "id": 0,
        "name": "srv",
        "mode": Mode.ETHERNET,
        "secret": None,
    }
    values.update(changes)
    return ServerTarget(**values)  # type: ignore[arg-type]


def server(
    *targets: ServerTarget, limits: ServerLimits | None = None
) -> tuple[ServerHandshake, wire.Hello]:
    table = {t.id: t for t in (targets or (target(),))}
    hs = ServerHandshake("server-app", table.get, limits)
    hello = hs.hello().message
    assert isinstance(hello, wire.Hello)
    return hs, hello


def client(**kwargs: object) -> ClientHandshake:
    return ClientHandshake(Arguments(role="client", name="cli", **kwargs), "client-app")


def memory_for(
    hs: ClientHandshake, log2: int | None = None
) -> tuple[list[RegionInfo], list[RingInfo]]:
    """Fake memory: one region with every ring, sized as the client negotiated."""
    neg = hs.negotiated
    log2 = neg.log2_ring_size if log2 is None else log2
    ring_bytes = 128 + 16 * (1 << log2)
    rings = []
    offset = 0
    for s2m, count in ((True, neg.num_s2m_rings), (False, neg.num_m2s_rings)):
        for index in range(count):
            rings.append(RingInfo(s2m, index, 0, offset, log2, next(_fd_numbers)))
            offset += ring_bytes
    return [RegionInfo(0, offset + 4096, next(_fd_numbers))], rings


def exchange(cli: ClientHandshake, srv: ServerHandshake, first: list[Send]) -> None:
    """Pass messages both ways until neither side has anything to say."""
    to_server = first
    while to_server:
        to_client: list[Send] = []
        for item in to_server:
            to_client += srv.receive(item.message, item.fd)
        to_server = []
        for item in to_client:
            to_server += cli.receive(item.message, item.fd)


def connect(cli: ClientHandshake, srv: ServerHandshake, hello: wire.Hello) -> None:
    assert cli.receive(hello) == []
    assert cli.needs_memory
    exchange(cli, srv, cli.provide_memory(*memory_for(cli)))


# -- the happy path --------------------------------------------------------------------------


def test_full_handshake_in_strict_order() -> None:
    srv, hello = server(target(id=7, name="srv7"))
    cli = client(id=7, memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=4))
    assert cli.receive(hello) == []
    regions, rings = memory_for(cli)
    sent: list[wire.Message] = []
    to_server = cli.provide_memory(regions, rings)
    while to_server:
        (item,) = to_server
        sent.append(item.message)
        replies = srv.receive(item.message, item.fd)
        assert len(replies) == 1
        to_server = cli.receive(replies[0].message)
    kinds = [type(m).__name__ for m in sent]
    assert kinds == ["Init", "AddRegion", "AddRing", "AddRing", "AddRing", "AddRing", "Connect"]
    assert srv.done and cli.done
    assert srv.result.interface_id == 7 and cli.result.interface_id == 7
    assert srv.result.peer_if_name == "cli" and srv.result.peer_app_name == "client-app"
    assert cli.result.peer_if_name == "srv7" and cli.result.peer_app_name == "server-app"
    assert [r.eventfd for r in srv.result.s2m_rings] == [r.eventfd for r in rings if r.s2m]
    assert [r.eventfd for r in srv.result.m2s_rings] == [r.eventfd for r in rings if not r.s2m]
    assert cli.result.s2m_rings == tuple(r for r in rings if r.s2m)


def test_init_carries_id_mode_secret_and_names() -> None:
    srv, hello = server(target(id=3, mode=Mode.IP, secret="pw"))
    cli = client(id=3, mode="ip", secret="pw")
    cli.receive(hello)
    (init,) = cli.provide_memory(*memory_for(cli))
    assert init.message == wire.Init(VERSION, 3, 1, b"pw", b"client-app")
    assert init.fd is None
    assert srv.receive(init.message) == [Send(wire.Ack())]
    assert srv.target is not None and srv.target.id == 3


def test_hello_announces_limits_as_count_minus_one() -> None:
    _, hello = server(
        limits=ServerLimits(max_regions=1, max_m2s_rings=2, max_s2m_rings=3, max_log2_ring_size=12)
    )
    assert hello == wire.Hello(b"server-app", VERSION, VERSION, 0, 1, 2, 12)


def test_hello_announces_the_protocol_maxima_by_default() -> None:
    _, hello = server()
    assert hello == wire.Hello(b"server-app", VERSION, VERSION, 255, 255, 255, 14)


# -- version ------------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high"), [(0x0100, 0x0100), (0x0201, 0x0300), (0x0300, 0x0200)])
def test_client_refuses_version_range_without_2_0(low: int, high: int) -> None:
    cli = client()
    with pytest.raises(RemoteProtocolError, match="versions"):
        cli.receive(wire.Hello(b"s", low, high, 0, 0, 0, 10))


def test_client_accepts_a_range_containing_2_0() -> None:
    cli = client()
    cli.receive(wire.Hello(b"s", 0x0100, 0x0300, 0, 0, 0, 10))
    assert cli.needs_memory


@pytest.mark.parametrize("version", [0x0100, 0x0201, 0x0300, 0])
def test_server_refuses_other_versions(version: int) -> None:
    srv, _ = server()
    with pytest.raises(RemoteProtocolError, match="unsupported version"):
        srv.receive(wire.Init(version, 0, 0, b"", b""))


# -- interface lookup, mode, secret ---------------------------------------------------------


def test_unknown_id() -> None:
    srv, _ = server(target(id=1))
    with pytest.raises(RemoteProtocolError, match="no server interface with id 2"):
        srv.receive(wire.Init(VERSION, 2, 0, b"", b""))


def test_busy_id() -> None:
    srv, _ = server(target(id=1, busy=True))
    with pytest.raises(RemoteProtocolError, match="id 1 is already connected"):
        srv.receive(wire.Init(VERSION, 1, 0, b"", b""))


def test_mode_mismatch() -> None:
    srv, _ = server(target(mode=Mode.ETHERNET))
    with pytest.raises(RemoteProtocolError, match="mode mismatch: peer ip, ours ethernet"):
        srv.receive(wire.Init(VERSION, 0, 1, b"", b""))


def test_unknown_mode() -> None:
    srv, _ = server()
    with pytest.raises(RemoteProtocolError, match="unknown mode 9"):
        srv.receive(wire.Init(VERSION, 0, 9, b"", b""))


@pytest.mark.parametrize(
    ("ours", "theirs", "ok"),
    [
        (None, b"", True),
        ("pw", b"pw", True),
        ("pw", b"pX", False),
        ("pw", b"", False),  # server has a secret, client none
        (None, b"pw", True),  # client has a secret, server none: not checked
        (None, bytes(range(1, 25)), True),  # stale bytes from a client without a secret
        ("pw", b"pw-longer", False),
    ],
)
def test_secret_is_checked_when_the_server_has_one(
    ours: str | None, theirs: bytes, ok: bool
) -> None:
    srv, _ = server(target(secret=ours))
    init = wire.Init(VERSION, 0, 0, theirs, b"")
    if ok:
        assert srv.receive(init) == [Send(wire.Ack())]
    else:
        with pytest.raises(RemoteProtocolError, match="secret mismatch") as info:
            srv.receive(init)
        assert info.value.kind is FailureKind.SECRET


@pytest.mark.parametrize(("srv_secret", "cli_secret"), [("pw", None), ("a", "b")])
def test_secret_mismatch_end_to_end(srv_secret: str | None, cli_secret: str | None) -> None:
    srv, hello = server(target(secret=srv_secret))
    cli = client(secret=cli_secret)
    cli.receive(hello)
    (init,) = cli.provide_memory(*memory_for(cli))
    with pytest.raises(RemoteProtocolError, match="secret"):
        srv.receive(init.message)


def test_client_secret_is_ignored_by_a_server_without_one() -> None:
    srv, hello = server(target(secret=None))
    cli = client(secret="pw")
    connect(cli, srv, hello)
    assert srv.done and cli.done


# -- HELLO limits clamp the client --------------------------------------------------------------


def test_client_clamps_to_hello_limits() -> None:
    cli = client(memory=MemoryConfig(num_queue_pairs=4, log2_ring_size=12, packet_buffer_size=4096))
    cli.receive(wire.Hello(b"s", VERSION, VERSION, 0, 1, 2, 10))
    neg = cli.negotiated
    assert neg.num_m2s_rings == 2  # max_m2s_ring 1 means two rings
    assert neg.num_s2m_rings == 3
    assert neg.log2_ring_size == 10
    assert neg.packet_buffer_size == 4096
    assert neg.max_regions == 1  # max_region 0: one region only


def test_client_keeps_its_wishes_under_generous_limits() -> None:
    cli = client(memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=6))
    cli.receive(wire.Hello(b"s", VERSION, VERSION, 255, 255, 255, 14))
    neg = cli.negotiated
    assert (neg.num_s2m_rings, neg.num_m2s_rings, neg.log2_ring_size) == (2, 2, 6)
    assert neg.max_regions == 256


def test_client_refuses_to_offer_more_regions_than_allowed() -> None:
    cli = client()
    cli.receive(wire.Hello(b"s", VERSION, VERSION, 0, 0, 0, 10))
    regions, rings = memory_for(cli)
    two = [*regions, RegionInfo(1, 4096, 99)]
    with pytest.raises(LocalProtocolError, match=r"2 regions offered, the server allows 1\.\.1"):
        cli.provide_memory(two, rings)
    with pytest.raises(LocalProtocolError, match="0 regions"):
        cli.provide_memory([], rings)


# -- server limits on regions and rings ----------------------------------------------------------


def after_init(srv: ServerHandshake, **init: object) -> ServerHandshake:
    fields: dict[str, object] = {"version": VERSION, "id": 0, "mode": 0, "secret": b"", "name": b""}
    fields.update(init)
    srv.receive(wire.Init(**fields))  # type: ignore[arg-type]
    return srv


def test_region_index_must_start_at_zero_and_grow() -> None:
    srv = after_init(server()[0])
    with pytest.raises(RemoteProtocolError, match="region index 1 out of order, expected 0"):
        srv.receive(wire.AddRegion(1, 4096), 5)


def test_region_over_the_hello_limit() -> None:
    srv = after_init(server(limits=ServerLimits(max_regions=1))[0])
    srv.receive(wire.AddRegion(0, 4096), 5)
    with pytest.raises(RemoteProtocolError, match="over the limit 1"):
        srv.receive(wire.AddRegion(1, 4096), 6)


@pytest.mark.parametrize("size", [0, (1 << 32) + 1, (1 << 64) - 1])
def test_region_size_limits(size: int) -> None:
    srv = after_init(server()[0])
    with pytest.raises(RemoteProtocolError, match=r"outside 1\.\.4294967296"):
        srv.receive(wire.AddRegion(0, size), 5)


def with_region(size: int = 1 << 20, **kwargs: object) -> ServerHandshake:
    srv = after_init(server(**kwargs)[0])  # type: ignore[arg-type]
    srv.receive(wire.AddRegion(0, size), 5)
    return srv


def test_ring_index_order_per_direction() -> None:
    srv = with_region()
    srv.receive(wire.AddRing(1, 0, 0, 0, 4), 10)  # S2M 0
    srv.receive(wire.AddRing(0, 0, 0, 1024, 4), 11)  # M2S 0
    with pytest.raises(RemoteProtocolError, match="S2M ring index 2 out of order, expected 1"):
        srv.receive(wire.AddRing(1, 2, 0, 2048, 4), 12)


def test_ring_over_the_hello_limit() -> None:
    srv = with_region(limits=ServerLimits(max_m2s_rings=2))
    srv.receive(wire.AddRing(0, 0, 0, 0, 4), 10)
    srv.receive(wire.AddRing(0, 1, 0, 1024, 4), 11)
    with pytest.raises(RemoteProtocolError, match="M2S ring 2 over the limit of 2 rings"):
        srv.receive(wire.AddRing(0, 2, 0, 2048, 4), 12)


@pytest.mark.parametrize("s2m", [True, False], ids=["S2M", "M2S"])
def test_up_to_256_rings_each_way_whatever_the_interface(s2m: bool) -> None:
    srv = with_region(size=1 << 24)
    for index in range(256):
        assert srv.receive(wire.AddRing(int(s2m), index, 0, 0, 4), 100 + index) == [
            Send(wire.Ack())
        ]
    direction = "S2M" if s2m else "M2S"
    with pytest.raises(RemoteProtocolError, match=f"{direction} ring 256 over the limit of 256"):
        srv.receive(wire.AddRing(int(s2m), 256, 0, 0, 4), 99)


def test_ring_up_to_2_14_whatever_the_interface() -> None:
    srv = with_region(size=1 << 20)
    assert srv.receive(wire.AddRing(1, 0, 0, 0, 14), 10) == [Send(wire.Ack())]
    with pytest.raises(RemoteProtocolError, match="log2 ring size 15 over the limit 14") as info:
        srv.receive(wire.AddRing(0, 0, 0, 0, 15), 11)
    assert info.value.kind is FailureKind.MEMORY


def test_ring_with_a_private_header_is_refused() -> None:
    srv = with_region()
    with pytest.raises(RemoteProtocolError, match=r"private headers \(8 bytes\) are not supported"):
        srv.receive(wire.AddRing(1, 0, 0, 0, 4, private_hdr_size=8), 10)


def test_ring_in_unknown_region() -> None:
    srv = with_region()
    with pytest.raises(RemoteProtocolError, match="unknown region 1"):
        srv.receive(wire.AddRing(1, 0, 1, 0, 4), 10)


@pytest.mark.parametrize("offset", [4096 - RING_BYTES_LOG2_4 + 8, 0xFFFFFFFF])
def test_ring_past_the_end_of_its_region(offset: int) -> None:
    srv = with_region(size=4096)
    with pytest.raises(RemoteProtocolError, match="runs past the end of region 0"):
        srv.receive(wire.AddRing(1, 0, 0, offset, 4), 10)


def test_ring_exactly_at_the_end_fits() -> None:
    srv = with_region(size=4096)
    assert srv.receive(wire.AddRing(1, 0, 0, 4096 - RING_BYTES_LOG2_4, 4), 10) == [Send(wire.Ack())]


def test_region_after_ring_is_out_of_order() -> None:
    srv = with_region()
    srv.receive(wire.AddRing(1, 0, 0, 0, 4), 10)
    with pytest.raises(RemoteProtocolError, match="ADD_REGION after ADD_RING"):
        srv.receive(wire.AddRegion(1, 4096), 11)


@pytest.mark.parametrize("missing", ["S2M", "M2S"])
def test_connect_needs_a_ring_each_way(missing: str) -> None:
    srv = with_region()
    srv.receive(wire.AddRing(0 if missing == "S2M" else 1, 0, 0, 0, 4), 10)
    with pytest.raises(RemoteProtocolError, match=f"CONNECT without any {missing} ring"):
        srv.receive(wire.Connect(b"c"))


# -- strict order --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "fd"),
    [
        (wire.Ack(), None),
        (wire.Hello(), None),
        (wire.AddRegion(0, 4096), 5),
        (wire.AddRing(1, 0, 0, 0, 4), 5),
        (wire.Connect(b"x"), None),
        (wire.Connected(b"x"), None),
        (wire.NoneMsg(), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, wire.Message) else str(v),
)
def test_server_wants_init_first(message: wire.Message, fd: int | None) -> None:
    srv, _ = server()
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        srv.receive(message, fd)


def test_server_refuses_connect_before_any_region() -> None:
    srv = after_init(server()[0])
    with pytest.raises(
        RemoteProtocolError, match="unexpected CONNECT while waiting for ADD_REGION"
    ):
        srv.receive(wire.Connect(b"x"))


def test_server_refuses_ring_before_region() -> None:
    srv = after_init(server()[0])
    with pytest.raises(RemoteProtocolError, match="unexpected ADD_RING"):
        srv.receive(wire.AddRing(1, 0, 0, 0, 4), 5)


def test_server_refuses_second_init() -> None:
    srv = after_init(server()[0])
    with pytest.raises(RemoteProtocolError, match="unexpected INIT"):
        srv.receive(wire.Init(VERSION, 0, 0, b"", b""))


@pytest.mark.parametrize(
    "message",
    [wire.Ack(), wire.Init(), wire.Connected(b"x"), wire.Connect(b"x"), wire.NoneMsg()],
    ids=lambda m: type(m).__name__,
)
def test_client_wants_hello_first(message: wire.Message) -> None:
    cli = client()
    with pytest.raises(RemoteProtocolError, match=r"unexpected \w+ while waiting for HELLO"):
        cli.receive(message)


def test_client_refuses_messages_while_it_builds_memory() -> None:
    cli = client()
    cli.receive(wire.Hello(b"s", VERSION, VERSION, 1, 0, 0, 10))
    with pytest.raises(RemoteProtocolError, match="unexpected ACK while waiting for memory"):
        cli.receive(wire.Ack())


def test_client_refuses_connected_before_its_connect() -> None:
    _, hello = server()
    cli = client()
    cli.receive(hello)
    cli.provide_memory(*memory_for(cli))
    with pytest.raises(RemoteProtocolError, match="unexpected CONNECTED while waiting for ACK"):
        cli.receive(wire.Connected(b"s"))


def test_client_refuses_a_second_hello() -> None:
    _, hello = server()
    cli = client()
    cli.receive(hello)
    cli.provide_memory(*memory_for(cli))
    with pytest.raises(RemoteProtocolError, match="unexpected HELLO"):
        cli.receive(hello)


@pytest.mark.parametrize("side", ["server", "client"])
def test_anything_but_disconnect_after_connected(side: str) -> None:
    srv, hello = server()
    cli = client()
    connect(cli, srv, hello)
    machine = srv if side == "server" else cli
    with pytest.raises(RemoteProtocolError, match="unexpected ACK while connected"):
        machine.after_connected(wire.Ack())


# -- file descriptors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [wire.Init(VERSION, 0, 0, b"", b""), wire.Connect(b"x"), wire.Ack()],
    ids=lambda m: type(m).__name__,
)
def test_server_refuses_unexpected_fd(message: wire.Message) -> None:
    srv, _ = server()
    with pytest.raises(
        RemoteProtocolError, match=f"unexpected file descriptor with {message.TYPE.name}"
    ):
        srv.receive(message, 42)


def test_client_refuses_fd_with_hello() -> None:
    _, hello = server()
    with pytest.raises(RemoteProtocolError, match="unexpected file descriptor with HELLO"):
        client().receive(hello, 42)


@pytest.mark.parametrize(
    "message",
    [wire.AddRegion(0, 4096), wire.AddRing(1, 0, 0, 0, 4)],
    ids=lambda m: type(m).__name__,
)
def test_server_refuses_missing_fd(message: wire.Message) -> None:
    srv = after_init(server()[0])
    if isinstance(message, wire.AddRing):
        srv.receive(wire.AddRegion(0, 4096), 5)
    with pytest.raises(RemoteProtocolError, match="without its file descriptor"):
        srv.receive(message)


# -- DISCONNECT and misuse -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["start", "after-init", "after-region", "connected"])
def test_server_disconnect_at_any_stage(stage: str) -> None:
    srv, _ = server()
    if stage != "start":
        after_init(srv)
    if stage in ("after-region", "connected"):
        srv.receive(wire.AddRegion(0, 1 << 20), 5)
    if stage == "connected":
        srv.receive(wire.AddRing(1, 0, 0, 0, 4), 6)
        srv.receive(wire.AddRing(0, 0, 0, 1024, 4), 7)
        srv.receive(wire.Connect(b"c"))
        assert srv.done
    bye = wire.Disconnect(3, b"going away")
    feed: Callable[..., object] = srv.after_connected if stage == "connected" else srv.receive
    with pytest.raises(PeerDisconnected, match=r"going away \(code 3\)") as info:
        feed(bye)
    assert "going away" in info.value.reason


@pytest.mark.parametrize("stage", ["hello", "memory", "ack", "connected"])
def test_client_disconnect_at_any_stage(stage: str) -> None:
    srv, hello = server()
    cli = client()
    if stage in ("memory", "ack"):
        cli.receive(hello)
    if stage == "ack":
        cli.provide_memory(*memory_for(cli))
    if stage == "connected":
        connect(cli, srv, hello)
    feed = cli.after_connected if stage == "connected" else cli.receive
    with pytest.raises(PeerDisconnected, match="no reason given"):
        feed(wire.Disconnect(0, b""))


def test_receive_after_failure_is_local_misuse() -> None:
    srv, _ = server()
    with pytest.raises(RemoteProtocolError):
        srv.receive(wire.Ack())
    with pytest.raises(LocalProtocolError, match="already failed"):
        srv.receive(wire.Init(VERSION, 0, 0, b"", b""))
    cli = client()
    with pytest.raises(PeerDisconnected):
        cli.receive(wire.Disconnect(1, b"x"))
    with pytest.raises(LocalProtocolError, match="already failed"):
        cli.receive(wire.Hello())


def test_server_misuse() -> None:
    hs = ServerHandshake("a", lambda _id: None)
    with pytest.raises(LocalProtocolError, match="hello"):
        hs.receive(wire.Init())
    with pytest.raises(LocalProtocolError, match="not complete"):
        _ = hs.result
    hs.hello()
    with pytest.raises(LocalProtocolError, match="already called"):
        hs.hello()


def test_client_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="client role"):
        ClientHandshake(Arguments(role="server"), "a")
    cli = client()
    with pytest.raises(LocalProtocolError, match="no HELLO yet"):
        _ = cli.negotiated
    with pytest.raises(LocalProtocolError, match="provide_memory"):
        cli.provide_memory([RegionInfo(0, 4096, 5)], [])
    with pytest.raises(LocalProtocolError, match="not complete"):
        _ = cli.result


# -- arbitrary message sequences -------------------------------------------------------------------

ANY_MESSAGE = st.one_of(
    st.builds(wire.NoneMsg),
    st.builds(wire.Ack),
    st.builds(
        wire.Hello,
        st.binary(max_size=32),
        st.sampled_from([0, VERSION, 0xFFFF]),
        st.sampled_from([0, VERSION, 0xFFFF]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFF),
    ),
    st.builds(
        wire.Init,
        st.sampled_from([VERSION, 0, 0xFFFF]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from([b"", b"pw", b"x" * 24]),
        st.binary(max_size=32),
    ),
    st.builds(wire.AddRegion, st.integers(0, 3), st.sampled_from([0, 1, 4096, 1 << 20, 1 << 40])),
    st.builds(
        wire.AddRing,
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(0, 2),
        st.sampled_from([0, 8, 1024, 4096, 0xFFFFFFFF]),
        st.integers(0, 16),
        st.just(0),
    ),
    st.builds(wire.Connect, st.binary(max_size=32)),
    st.builds(wire.Connected, st.binary(max_size=32)),
    st.builds(wire.Disconnect, st.integers(0, 5), st.binary(max_size=96)),
)
Step = tuple[wire.Message, bool]
STEPS = st.lists(st.tuples(ANY_MESSAGE, st.booleans()), max_size=12)
TYPED = (RemoteProtocolError, PeerDisconnected, LocalProtocolError)
# Valid openings, so that random messages also reach the later states.
SERVER_OPENINGS: list[list[Step]] = [
    [],
    [(wire.Init(VERSION, 0, 0, b"", b"c"), False)],
    [(wire.Init(VERSION, 0, 0, b"", b"c"), False), (wire.AddRegion(0, 1 << 20), True)],
    [
        (wire.Init(VERSION, 0, 0, b"", b"c"), False),
        (wire.AddRegion(0, 1 << 20), True),
        (wire.AddRing(1, 0, 0, 0, 4), True),
        (wire.AddRing(0, 0, 0, 1024, 4), True),
    ],
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SERVER_OPENINGS), STEPS)
def test_server_survives_any_message_sequence(opening: list[Step], steps: list[Step]) -> None:
    srv, _ = server(target(id=0), target(id=1, secret="pw", mode=Mode.IP, busy=False))
    for message, with_fd in opening + steps:
        try:
            replies = srv.receive(message, 7 if with_fd else None)
        except TYPED:
            continue
        assert all(isinstance(r.message, wire.Message) for r in replies)
        for reply in replies:
            assert len(wire.encode(reply.message)) == 128
    if srv.done:
        assert srv.result.s2m_rings and srv.result.m2s_rings


CLIENT_OPENINGS: list[list[Step]] = [
    [],
    [(wire.Hello(b"s", VERSION, VERSION, 1, 1, 1, 10), False)],
    [(wire.Hello(b"s", VERSION, VERSION, 1, 1, 1, 10), False)] + [(wire.Ack(), False)] * 3,
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CLIENT_OPENINGS), STEPS, st.booleans())
def test_client_survives_any_message_sequence(
    opening: list[Step], steps: list[Step], auto_memory: bool
) -> None:
    cli = client(memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=4))
    for message, with_fd in opening + steps:
        try:
            replies = cli.receive(message, 7 if with_fd else None)
            if auto_memory and cli.needs_memory:
                replies = cli.provide_memory(*memory_for(cli))
        except TYPED:
            continue
        for reply in replies:
            assert len(wire.encode(reply.message)) == 128
