"""The ``memif.v1.Memif`` service through a real gRPC channel, on a real manager.

Packet tests connect two memifd interfaces to each other (a server and a
client on one socket), so real memif rings carry the packets.
"""

from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import cast

import grpc
import pytest
from memifd.api.grpc import exchange, handlers
from memifd.api.grpc import servicer as grpc_api
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import (
    GrpcEnv,
    frame,
    frame_seq,
    grpc_env,
    start_env,
    wait_connected,
    wait_for,
)

__all__ = ["grpc_env"]


def _code(excinfo: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return excinfo.value.code()


def _details(excinfo: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    return excinfo.value.details() or ""


@pytest.fixture
def pair(grpc_env: GrpcEnv) -> GrpcEnv:
    """Interfaces ``a`` (server) and ``b`` (client) connected to each other."""
    grpc_env.create("a", socket="pair.sock")
    grpc_env.create("b", socket="pair.sock", role=pb.ROLE_CLIENT)
    wait_connected(grpc_env, "a")
    wait_connected(grpc_env, "b")
    return grpc_env


# -- management ------------------------------------------------------------------------


def test_every_management_call(grpc_env: GrpcEnv) -> None:
    stub = grpc_env.stub
    created = grpc_env.create(
        "m0",
        socket="m.sock",
        id=7,
        secret="s3cret",
        memory=pb.MemoryConfig(num_queue_pairs=2, log2_ring_size=9),
        rx_mode=pb.RX_MODE_POLLING,
        action=pb.ACTION_ECHO,
    )
    assert (created.name, created.id, created.role) == ("m0", 7, pb.ROLE_SERVER)
    assert created.socket_path == grpc_env.socket_path("m.sock")
    assert (created.memory.num_queue_pairs, created.memory.log2_ring_size) == (2, 9)
    assert created.memory.packet_buffer_size == 2048  # 0 meant the default
    assert created.has_secret and created.admin_up
    assert (created.rx_mode, created.action) == (pb.RX_MODE_POLLING, pb.ACTION_ECHO)
    assert len(created.stats.rx_queues) == 2

    grpc_env.create("m1", socket="m.sock", id=8)
    listed = stub.ListInterfaces(pb.ListInterfacesRequest())
    assert [s.name for s in listed.interfaces] == ["m0", "m1"]

    got = stub.GetInterface(pb.GetInterfaceRequest(name="m0"))
    assert got.state == pb.LINK_STATE_DISCONNECTED and not got.HasField("peer")

    patch = pb.InterfacePatch(action=pb.ACTION_XCONNECT, xconnect_to="m1", admin_up=False)
    updated = stub.UpdateInterface(pb.UpdateInterfaceRequest(name="m0", patch=patch))
    assert (updated.action, updated.xconnect_to, updated.admin_up) == (
        pb.ACTION_XCONNECT,
        "m1",
        False,
    )
    assert updated.rx_mode == pb.RX_MODE_POLLING  # unset fields stay as they were

    stats = stub.GetStats(pb.GetStatsRequest(name="m0"))
    assert len(stats.rx_queues) == len(stats.tx_queues) == 2
    assert stats.rx.packets == 0

    stub.DeleteInterface(pb.DeleteInterfaceRequest(name="m0"))
    listed = stub.ListInterfaces(pb.ListInterfacesRequest())
    assert [s.name for s in listed.interfaces] == ["m1"]


def test_dry_run_creates_nothing(grpc_env: GrpcEnv) -> None:
    request = pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name="dry"), dry_run=True)
    status = grpc_env.stub.CreateInterface(request)
    assert status.name == "dry" and status.socket_path == grpc_env.socket_path()
    assert not grpc_env.stub.ListInterfaces(pb.ListInterfacesRequest()).interfaces


def test_the_secret_is_never_returned(grpc_env: GrpcEnv) -> None:
    assert "secret" not in pb.InterfaceStatus.DESCRIPTOR.fields_by_name
    status = grpc_env.create("s", secret="hush-hush")
    assert status.has_secret
    assert b"hush-hush" not in status.SerializeToString()


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, request_",
    [
        ("GetInterface", pb.GetInterfaceRequest(name="nope")),
        ("DeleteInterface", pb.DeleteInterfaceRequest(name="nope")),
        ("GetStats", pb.GetStatsRequest(name="nope")),
        ("UpdateInterface", pb.UpdateInterfaceRequest(name="nope", patch=pb.InterfacePatch())),
    ],
)
def test_unknown_interface_is_not_found(grpc_env: GrpcEnv, method: str, request_: object) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        getattr(grpc_env.stub, method)(request_)
    assert _code(excinfo) == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in _details(excinfo)


def test_duplicate_name_already_exists(grpc_env: GrpcEnv) -> None:
    grpc_env.create("dup")
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.create("dup", id=1)
    assert _code(excinfo) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    "spec, field, limit",
    [
        (
            pb.InterfaceSpec(name="x", memory=pb.MemoryConfig(log2_ring_size=15)),
            "spec.memory.log2_ring_size",
            "14",
        ),
        (
            pb.InterfaceSpec(name="x", memory=pb.MemoryConfig(num_queue_pairs=256)),
            "spec.memory.num_queue_pairs",
            "255",
        ),
        (
            pb.InterfaceSpec(name="x", memory=pb.MemoryConfig(packet_buffer_size=70000)),
            "spec.memory.packet_buffer_size",
            "65535",
        ),
        (pb.InterfaceSpec(name="x" * 33), "spec.name", "32"),
        (pb.InterfaceSpec(name="x", secret="s" * 25), "spec.secret", "24"),
        (pb.InterfaceSpec(name="x", role=cast(pb.Role, 9)), "spec.role", "ROLE_CLIENT"),
        (pb.InterfaceSpec(name="x", action=pb.ACTION_XCONNECT), "spec.xconnect_to", "required"),
        (pb.InterfaceSpec(name="x", socket="s" * 200), "spec.socket", "107"),
    ],
)
def test_invalid_spec_names_field_and_limit(
    grpc_env: GrpcEnv, spec: pb.InterfaceSpec, field: str, limit: str
) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.stub.CreateInterface(pb.CreateInterfaceRequest(spec=spec))
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith(f"{field}: ")
    assert limit in _details(excinfo)


def test_missing_spec_is_invalid(grpc_env: GrpcEnv) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.stub.CreateInterface(pb.CreateInterfaceRequest())
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo) == "spec: required"


@pytest.mark.parametrize(
    "request_, field, limit",
    [
        (pb.CaptureRequest(count=10_000_001), "count", "10000000"),
        (pb.CaptureRequest(duration=86_401), "duration", "86400"),
        (pb.CaptureRequest(duration=-1), "duration", "greater than 0"),
        (pb.CaptureRequest(snaplen=65_536), "snaplen", "65535"),
        (pb.CaptureRequest(queue=255), "queue", "254"),
        (pb.CaptureRequest(max_batch=1025), "max_batch", "1024"),
        (pb.CaptureRequest(buffer=70_000), "buffer", "65536"),
        (pb.CaptureRequest(direction=cast(pb.Direction, 9)), "direction", "DIRECTION_BOTH"),
    ],
)
def test_invalid_capture_names_field_and_limit(
    grpc_env: GrpcEnv, request_: pb.CaptureRequest, field: str, limit: str
) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        list(grpc_env.stub.Capture(request_, timeout=10))
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith(f"{field}: ")
    assert limit in _details(excinfo)


def test_capture_of_unknown_interface_is_not_found(grpc_env: GrpcEnv) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        list(grpc_env.stub.Capture(pb.CaptureRequest(interface="nope"), timeout=10))
    assert _code(excinfo) == grpc.StatusCode.NOT_FOUND


def test_capture_of_a_queue_the_interface_lacks_is_invalid(grpc_env: GrpcEnv) -> None:
    grpc_env.create("a")
    request = pb.CaptureRequest(interface="a", queue=9, duration=2)
    with pytest.raises(grpc.RpcError) as excinfo:
        list(grpc_env.stub.Capture(request, timeout=10))
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo) == "queue 9 is outside 0..0 (interface 'a')"
    assert grpc_env.manager.subscription_counts()["capture"] == 0


@pytest.mark.parametrize(
    "requests, field, limit",
    [
        ([pb.InjectRequest(packets=[b"x" * 60])], "interface", "required"),
        ([pb.InjectRequest(interface="a", packets=[b"x" * 70_000])], "packets[0]", "65535"),
        ([pb.InjectRequest(interface="a", packets=[b"x", b""])], "packets[1]", "1 to"),
        ([pb.InjectRequest(interface="a", packets=[b"x"] * 4097)], "packets", "4096"),
        ([pb.InjectRequest(interface="a")], "packets", "1 to 4096"),
    ],
)
def test_invalid_inject_names_field_and_limit(
    pair: GrpcEnv, requests: list[pb.InjectRequest], field: str, limit: str
) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        pair.stub.Inject(iter(requests), timeout=10)
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith(f"{field}: ")
    assert limit in _details(excinfo)


def test_manager_errors_name_the_request_field(pair: GrpcEnv) -> None:
    patch = pb.InterfacePatch(action=pb.ACTION_XCONNECT, xconnect_to="ghost")
    with pytest.raises(grpc.RpcError) as excinfo:
        pair.stub.UpdateInterface(pb.UpdateInterfaceRequest(name="a", patch=patch))
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo) == "patch.xconnect_to: interface 'ghost' does not exist"
    with pytest.raises(grpc.RpcError) as excinfo:
        pair.stub.Inject(iter([pb.InjectRequest(interface="b", queue=3, packets=[frame(0)])]))
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith("queue 3 is outside 0..0")


def test_inject_on_a_disconnected_interface_fails_precondition(grpc_env: GrpcEnv) -> None:
    grpc_env.create("lonely")
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.stub.Inject(iter([pb.InjectRequest(interface="lonely", packets=[frame(0)])]))
    assert _code(excinfo) == grpc.StatusCode.FAILED_PRECONDITION
    assert "not connected" in _details(excinfo)


def test_malformed_request_is_invalid_argument(grpc_env: GrpcEnv) -> None:
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes]
    raw = grpc_env.channel.unary_unary("/memif.v1.Memif/CreateInterface")
    with pytest.raises(grpc.RpcError) as excinfo:
        raw(b"\x0a\xff\xff\xff\x0f", timeout=10)  # a field claiming 4 GiB of data
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith("malformed memif.v1.CreateInterfaceRequest")


def test_malformed_message_in_a_stream_is_invalid_argument(pair: GrpcEnv) -> None:
    raw: grpc.StreamUnaryMultiCallable[bytes, bytes]
    raw = pair.channel.stream_unary("/memif.v1.Memif/Inject")
    good = pb.InjectRequest(interface="b", packets=[frame(0)]).SerializeToString()
    with pytest.raises(grpc.RpcError) as excinfo:
        raw(iter([good, b"\x1a\x05ab"]), timeout=10)  # packets field cut short
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed memif.v1.InjectRequest" in _details(excinfo)


def test_oversized_message_is_refused(grpc_env: GrpcEnv) -> None:
    huge = pb.InjectRequest(interface="a", packets=[b"x" * 65535] * 1100)  # about 72 MB
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.stub.Inject(iter([huge]), timeout=30)
    assert _code(excinfo) == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- packets between two memifd interfaces ----------------------------------------------------


def test_inject_and_capture(pair: GrpcEnv) -> None:
    capture = pair.stub.Capture(
        pb.CaptureRequest(interface="a", direction=pb.DIRECTION_RX, count=300, snaplen=22),
        timeout=30,
    )
    wait_for(lambda: pair.manager.subscription_counts()["capture"] == 1, what="capture")
    reply = pair.stub.Inject(
        iter(
            [
                pb.InjectRequest(interface="b", packets=[frame(i, 100) for i in range(150)]),
                pb.InjectRequest(packets=[frame(i, 100) for i in range(150, 300)]),
            ]
        ),
        timeout=30,
    )
    assert (reply.accepted, reply.ring_full, reply.batches) == (300, 0, 2)
    packets = [p for batch in capture for p in batch.packets]
    assert capture.code() == grpc.StatusCode.OK  # ended by itself at count
    assert [frame_seq(p.data) for p in packets] == list(range(300))
    assert {(p.interface, p.direction, p.orig_len, len(p.data)) for p in packets} == {
        ("a", pb.DIRECTION_RX, 100, 22)
    }


def test_capture_sends_nothing_until_packets_arrive_and_ends_at_duration(pair: GrpcEnv) -> None:
    batches = list(pair.stub.Capture(pb.CaptureRequest(interface="a", duration=0.3), timeout=10))
    assert batches == []


def test_watch_events_reports_link_changes(grpc_env: GrpcEnv) -> None:
    grpc_env.create("a", socket="ev.sock")
    stream = grpc_env.stub.WatchEvents(pb.WatchEventsRequest(include_current=True), timeout=30)
    first = next(stream)
    assert (first.interface, first.state) == ("a", pb.LINK_STATE_DISCONNECTED)  # current
    grpc_env.create("b", socket="ev.sock", role=pb.ROLE_CLIENT)
    seen: dict[str, pb.LinkEvent] = {}
    for event in stream:
        if event.state == pb.LINK_STATE_CONNECTED:
            seen[event.interface] = event
        if len(seen) == 2:
            break
    assert seen["a"].peer.name == "b" and seen["b"].peer.name == "a"
    assert seen["a"].peer.HasField("pid") and seen["a"].timestamp > 0
    grpc_env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="b"))
    states = set()
    for event in stream:
        states.add((event.interface, event.state))
        if ("b", pb.LINK_STATE_DELETED) in states and ("a", pb.LINK_STATE_DISCONNECTED) in states:
            break
    stream.cancel()


def test_watch_events_filters_by_interface(pair: GrpcEnv) -> None:
    stream = pair.stub.WatchEvents(
        pb.WatchEventsRequest(interface="b", include_current=True), timeout=30
    )
    assert next(stream).interface == "b"
    pair.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="a"))
    event = next(stream)
    assert (event.interface, event.state) == ("b", pb.LINK_STATE_DISCONNECTED)
    stream.cancel()


def test_link_details(pair: GrpcEnv) -> None:
    details = pair.stub.GetLinkDetails(pb.GetLinkDetailsRequest(name="a"), timeout=10)
    assert details.name == "a" and details.state == pb.LINK_STATE_CONNECTED
    assert details.HasField("memory") and len(details.regions) == 2
    assert {(r.direction, r.queue) for r in details.rings} == {
        (pb.DIRECTION_RX, 0),
        (pb.DIRECTION_TX, 0),
    }
    with pytest.raises(grpc.RpcError) as excinfo:
        pair.stub.GetLinkDetails(pb.GetLinkDetailsRequest(name="nope"), timeout=10)
    assert _code(excinfo) == grpc.StatusCode.NOT_FOUND


def test_delete_of_an_xconnect_target_fails_precondition(grpc_env: GrpcEnv) -> None:
    grpc_env.create("target")
    grpc_env.create("user", id=1, action=pb.ACTION_XCONNECT, xconnect_to="target")
    with pytest.raises(grpc.RpcError) as excinfo:
        grpc_env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="target"), timeout=10)
    assert _code(excinfo) == grpc.StatusCode.FAILED_PRECONDITION
    assert "xconnect target of 'user'" in _details(excinfo)
    assert {s.name for s in grpc_env.manager.list_interfaces()} == {"target", "user"}


def test_watch_events_of_an_unknown_interface_is_not_found(grpc_env: GrpcEnv) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        next(grpc_env.stub.WatchEvents(pb.WatchEventsRequest(interface="ghost"), timeout=5))
    assert _code(excinfo) == grpc.StatusCode.NOT_FOUND
    assert _details(excinfo) == "interface 'ghost' not found"
    assert grpc_env.manager.subscription_counts()["events"] == 0


# -- exchange ---------------------------------------------------------------------------------


class _Exchange:
    """A bidirectional Exchange call fed from a queue."""

    def __init__(self, env: GrpcEnv, first: pb.ExchangeRequest) -> None:
        self.requests: queue.Queue[pb.ExchangeRequest | None] = queue.Queue()
        self.requests.put(first)
        self.call = env.stub.Exchange(iter(self.requests.get, None), timeout=30)

    def send(self, seq: int, packets: list[bytes]) -> None:
        self.requests.put(pb.ExchangeRequest(send=pb.ExchangeSend(seq=seq, packets=packets)))


def _open(name: str) -> pb.ExchangeRequest:
    return pb.ExchangeRequest(open=pb.ExchangeOpen(interface=name))


def test_exchange_sends_and_receives(pair: GrpcEnv) -> None:
    ex_a = _Exchange(pair, _open("a"))
    ex_b = _Exchange(pair, _open("b"))
    wait_for(lambda: pair.manager.subscription_counts()["exchange"] == 2, what="exchanges")
    ex_b.send(1, [frame(i) for i in range(10)])
    sent = next(ex_b.call)
    assert sent.sent == pb.SendResult(seq=1, accepted=10, ring_full=0)
    received = next(ex_a.call)
    assert [frame_seq(p.data) for p in received.rx.packets] == list(range(10))
    assert received.rx.packets[0].interface == "a"
    ex_a.send(2, [p.data for p in received.rx.packets])  # and back
    assert next(ex_a.call).sent.accepted == 10
    back = next(ex_b.call)
    assert [frame_seq(p.data) for p in back.rx.packets] == list(range(10))
    stats = pair.stub.GetStats(pb.GetStatsRequest(name="a"))
    assert (stats.exchanged, stats.injected, stats.action_drops) == (10, 10, 0)
    for ex in (ex_a, ex_b):
        ex.requests.put(None)  # half-close ends the exchange
        assert list(ex.call) == []
        assert ex.call.code() == grpc.StatusCode.OK
    wait_for(lambda: pair.manager.subscription_counts()["exchange"] == 0, what="detach")


def test_exchange_must_open_first(pair: GrpcEnv) -> None:
    ex = _Exchange(pair, pb.ExchangeRequest(send=pb.ExchangeSend(packets=[frame(0)])))
    with pytest.raises(grpc.RpcError) as excinfo:
        next(ex.call)
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith("open: ")


def test_second_exchange_on_an_interface_already_exists(pair: GrpcEnv) -> None:
    first = _Exchange(pair, _open("a"))
    wait_for(lambda: pair.manager.subscription_counts()["exchange"] == 1, what="exchange")
    second = _Exchange(pair, _open("a"))
    with pytest.raises(grpc.RpcError) as excinfo:
        next(second.call)
    assert _code(excinfo) == grpc.StatusCode.ALREADY_EXISTS
    first.call.cancel()


def test_exchange_bad_queue_names_the_field(pair: GrpcEnv) -> None:
    ex = _Exchange(pair, _open("a"))
    ex.requests.put(pb.ExchangeRequest(send=pb.ExchangeSend(queue=2, packets=[frame(0)])))
    with pytest.raises(grpc.RpcError) as excinfo:
        next(ex.call)
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith("send.queue: queue 2 is outside 0..0")


def test_exchange_bad_batch_is_invalid_argument(pair: GrpcEnv) -> None:
    ex = _Exchange(pair, _open("a"))
    ex.send(1, [b"x" * 70_000])
    with pytest.raises(grpc.RpcError) as excinfo:
        next(ex.call)
    assert _code(excinfo) == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(excinfo).startswith("send.packets[0]: ")
    wait_for(lambda: pair.manager.subscription_counts()["exchange"] == 0, what="detach")


# -- how streams end ---------------------------------------------------------------------------


def test_streams_end_unavailable_when_the_manager_stops(pair: GrpcEnv) -> None:
    events = pair.stub.WatchEvents(pb.WatchEventsRequest(include_current=True), timeout=30)
    next(events)
    capture = pair.stub.Capture(pb.CaptureRequest(interface="a"), timeout=30)
    exchange = _Exchange(pair, _open("b"))
    wait_for(
        lambda: pair.manager.subscription_counts() == {"capture": 1, "events": 1, "exchange": 1},
        what="three streams",
    )
    pair.manager.stop("maintenance window")
    for call in (events, capture, exchange.call):
        with pytest.raises(grpc.RpcError) as excinfo:
            for _ in call:
                pass
        assert _code(excinfo) == grpc.StatusCode.UNAVAILABLE
        assert "maintenance window" in _details(excinfo)
    exchange.requests.put(None)


def test_capture_of_a_deleted_interface_ends_aborted(pair: GrpcEnv) -> None:
    capture = pair.stub.Capture(pb.CaptureRequest(interface="a"), timeout=30)
    wait_for(lambda: pair.manager.subscription_counts()["capture"] == 1, what="capture")
    pair.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="a"))
    with pytest.raises(grpc.RpcError) as excinfo:
        list(capture)
    assert _code(excinfo) == grpc.StatusCode.ABORTED
    assert "deleted" in _details(excinfo)


def _exchange_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("memifd-exchange")]


HANDLER_FILES = {module.__file__ for module in (grpc_api, handlers, exchange)}


def _threads_in_handlers() -> int:
    """Threads currently running code of the gRPC servicer (handlers and exchange relays)."""
    busy = 0
    for top in sys._current_frames().values():
        current: FrameType | None = top
        while current is not None:
            if current.f_code.co_filename in HANDLER_FILES:
                busy += 1
                break
            current = current.f_back
    return busy


def test_abandoned_streams_leave_nothing_behind(sock_dir: Path) -> None:
    env = start_env(sock_dir, max_concurrent_rpcs=4)
    try:
        env.create("a", socket="pair.sock")
        env.create("b", socket="pair.sock", role=pb.ROLE_CLIENT)
        wait_connected(env, "a")
        for _ in range(4):  # more streams in all than the pool has threads
            events = env.stub.WatchEvents(pb.WatchEventsRequest(), timeout=30)
            capture = env.stub.Capture(pb.CaptureRequest(interface="a"), timeout=30)
            exchange = _Exchange(env, _open("b"))
            inject_requests: queue.Queue[pb.InjectRequest | None] = queue.Queue()
            inject = env.stub.Inject.future(iter(inject_requests.get, None), timeout=30)
            wait_for(
                lambda: (
                    env.manager.subscription_counts() == {"capture": 1, "events": 1, "exchange": 1}
                ),
                what="three streams",
            )
            wait_for(lambda: _threads_in_handlers() == 4 + 2, what="handlers and relays")
            for call in (events, capture, exchange.call, inject):
                call.cancel()
            wait_for(
                lambda: (
                    env.manager.subscription_counts() == {"capture": 0, "events": 0, "exchange": 0}
                ),
                what="subscriptions to close",
            )
            wait_for(lambda: _threads_in_handlers() == 0, what="handler threads to return")
            assert not _exchange_threads()
            inject_requests.put(None)
            exchange.requests.put(None)
    finally:
        env.close()
