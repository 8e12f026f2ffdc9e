"""Conversions between ``memif.v1`` messages and memifd's models (no server involved)."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memif.config import MemoryConfig, Mode, Role, RxMode
from memifd.api.grpc import convert
from memifd.core.errors import InvalidArgumentError
from memifd.core.models import (
    Action,
    Direction,
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
    LinkRegion,
    LinkRing,
    LinkState,
    PeerInfo,
    QueueCounters,
)
from memifd.proto.memif.v1 import memif_pb2 as pb

specs = st.builds(
    InterfaceSpec,
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", fullmatch=True),
    socket=st.sampled_from(["memif.sock", "/run/x/y.sock", "@abstract"]),
    id=st.integers(0, 2**32 - 1),
    role=st.sampled_from(list(Role)),
    secret=st.none() | st.text("abc123", min_size=1, max_size=24),
    mode=st.sampled_from(list(Mode)),
    memory=st.tuples(st.integers(1, 8), st.integers(1, 14), st.integers(64, 65535))
    .filter(lambda m: 2 * m[0] * (1 << m[1]) * m[2] <= 2**32)  # the 32-bit offset limit
    .map(
        lambda m: MemoryConfig(num_queue_pairs=m[0], log2_ring_size=m[1], packet_buffer_size=m[2])
    ),
    rx_mode=st.sampled_from(list(RxMode)),
    action=st.sampled_from([Action.DROP, Action.ECHO]),
    admin_up=st.booleans(),
    accept_unsealed_regions=st.booleans(),
    allowed_uids=st.lists(st.integers(0, 2**32 - 2), max_size=4),
    allowed_gids=st.lists(st.integers(0, 2**32 - 2), max_size=4),
)


@given(specs)
def test_spec_survives_the_round_trip(spec: InterfaceSpec) -> None:
    wire = pb.InterfaceSpec.FromString(convert.spec_to_proto(spec).SerializeToString())
    assert convert.spec_from_proto(wire) == spec


def test_zero_values_mean_the_defaults() -> None:
    spec = convert.spec_from_proto(pb.InterfaceSpec(name="x", memory=pb.MemoryConfig()))
    assert spec == InterfaceSpec(name="x")
    assert spec.admin_up is True  # unset
    down = convert.spec_from_proto(pb.InterfaceSpec(name="x", admin_up=False))
    assert down.admin_up is False


def test_xconnect_round_trip() -> None:
    spec = InterfaceSpec(name="a", action=Action.XCONNECT, xconnect_to="b")
    assert convert.spec_from_proto(convert.spec_to_proto(spec)) == spec


@pytest.mark.parametrize(
    "msg, field, words",
    [
        (
            pb.InterfaceSpec(name="x", memory=pb.MemoryConfig(log2_ring_size=15)),
            "spec.memory.log2_ring_size",
            "less than or equal to 14",
        ),
        (
            pb.InterfaceSpec(
                name="x",
                memory=pb.MemoryConfig(
                    num_queue_pairs=255, log2_ring_size=14, packet_buffer_size=65535
                ),
            ),
            "spec.memory",
            "exceeds the limit of 4294967296",
        ),
        (pb.InterfaceSpec(name="x", action=pb.ACTION_XCONNECT), "spec.xconnect_to", "required"),
        (
            pb.InterfaceSpec(name="x", mode=cast(pb.Mode, 7)),
            "spec.mode",
            "MODE_ETHERNET, MODE_IP, MODE_PUNT_INJECT",
        ),
        (pb.InterfaceSpec(name="x", secret="é" * 13), "spec.secret", "at most 24 bytes"),
        (pb.InterfaceSpec(name="-x"), "spec.name", "pattern"),
        (
            pb.InterfaceSpec(name="x", allowed_uids=[2**32 - 1]),
            "spec.allowed_uids.0",
            "less than or equal to 4294967294",
        ),
        (
            pb.InterfaceSpec(name="x", allowed_gids=list(range(65))),
            "spec.allowed_gids",
            "at most 64 items",
        ),
        (pb.InterfaceSpec(name="x", socket="a/../b.sock"), "spec.socket", "'..' is not allowed"),
    ],
)
def test_invalid_spec_names_the_field(msg: pb.InterfaceSpec, field: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        convert.spec_from_proto(msg)
    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}: ")
    assert words in str(excinfo.value)


def test_every_error_is_reported() -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        convert.spec_from_proto(
            pb.InterfaceSpec(name="", memory=pb.MemoryConfig(log2_ring_size=99))
        )
    assert excinfo.value.field == "spec.name"
    assert "spec.memory.log2_ring_size: " in str(excinfo.value)


def test_patch_keeps_unset_fields_unset() -> None:
    patch = convert.patch_from_proto(pb.InterfacePatch(admin_up=False))
    assert patch.model_dump(exclude_unset=True) == {"admin_up": False}
    clear = convert.patch_from_proto(pb.InterfacePatch(xconnect_to=""))
    assert clear.model_dump(exclude_unset=True) == {"xconnect_to": ""}
    full = convert.patch_from_proto(
        pb.InterfacePatch(rx_mode=pb.RX_MODE_POLLING, action=pb.ACTION_ECHO)
    )
    assert (full.rx_mode, full.action) == (RxMode.POLLING, Action.ECHO)


def test_capture_filter_defaults_and_limits() -> None:
    flt = convert.filter_from_proto(pb.CaptureRequest())
    assert (flt.interface, flt.queue, flt.direction, flt.count, flt.duration, flt.snaplen) == (
        None,
        None,
        Direction.BOTH,
        None,
        None,
        65535,
    )
    flt = convert.filter_from_proto(
        pb.CaptureRequest(
            interface="a", queue=0, direction=pb.DIRECTION_TX, count=5, duration=1.5, snaplen=96
        )
    )
    assert (flt.interface, flt.queue, flt.direction, flt.count, flt.duration, flt.snaplen) == (
        "a",
        0,
        Direction.TX,
        5,
        1.5,
        96,
    )
    with pytest.raises(InvalidArgumentError, match=r"^duration: .*less than or equal to 86400"):
        convert.filter_from_proto(pb.CaptureRequest(duration=float("inf")))
    assert convert.count_from_proto(0, "max_batch", convert.BATCH) == 256
    assert convert.count_from_proto(0, "buffer", convert.BUFFER) == 65536
    assert convert.count_from_proto(1024, "max_batch", convert.BATCH) == 1024
    with pytest.raises(InvalidArgumentError, match=r"^max_batch: 2000 exceeds the limit of 1024$"):
        convert.count_from_proto(2000, "max_batch", convert.BATCH)
    with pytest.raises(
        InvalidArgumentError, match=r"^open\.buffer: 65537 exceeds the limit of 65536$"
    ):
        convert.count_from_proto(65537, "open.buffer", convert.BUFFER)


def test_packets_to_send_are_checked() -> None:
    assert convert.packets_from_proto([b"a", b"b" * 65535]) == [b"a", b"b" * 65535]
    with pytest.raises(InvalidArgumentError, match=r"^packets\[1\]: 65536 bytes; .* 1 to 65535"):
        convert.packets_from_proto([b"a", b"b" * 65536])
    with pytest.raises(InvalidArgumentError, match=r"^send\.packets: 0 packets"):
        convert.packets_from_proto([], "send.packets")


def _status() -> InterfaceStatus:
    row = QueueCounters(packets=3, bytes=180, drops=1, bad_descriptors=2, ring_full=4)
    return InterfaceStatus(
        name="a",
        socket="memif.sock",
        id=3,
        role=Role.CLIENT,
        mode=Mode.IP,
        memory=MemoryConfig(),
        rx_mode=RxMode.POLLING,
        action=Action.ECHO,
        admin_up=True,
        accept_unsealed_regions=False,
        has_secret=True,
        socket_path="/run/memifd/memif.sock",
        state=LinkState.CONNECTED,
        peer=PeerInfo(name="vpp0", app_name="VPP", pid=42, uid=0, gid=None),
        stats=InterfaceStats(rx=row, tx=row, rx_queues=[row], tx_queues=[row], injected=9),
    )


def test_status_to_proto() -> None:
    msg = convert.status_to_proto(_status())
    assert (msg.role, msg.mode, msg.rx_mode, msg.action, msg.state) == (
        pb.ROLE_CLIENT,
        pb.MODE_IP,
        pb.RX_MODE_POLLING,
        pb.ACTION_ECHO,
        pb.LINK_STATE_CONNECTED,
    )
    assert (msg.peer.name, msg.peer.app_name, msg.peer.pid, msg.peer.uid) == ("vpp0", "VPP", 42, 0)
    assert msg.peer.HasField("uid") and not msg.peer.HasField("gid")
    assert msg.stats.rx_queues[0] == pb.QueueStats(
        packets=3, bytes=180, drops=1, bad_descriptors=2, ring_full=4
    )
    assert msg.stats.injected == 9 and msg.has_secret


def test_event_to_proto() -> None:
    event = LinkEvent(interface="a", state="deleted", reason="gone", timestamp=12.5)
    assert convert.event_to_proto(event) == pb.LinkEvent(
        interface="a", state=pb.LINK_STATE_DELETED, reason="gone", timestamp=12.5
    )


def test_status_and_event_come_back_as_the_models_rest_serves() -> None:
    status = _status()
    back = convert.status_from_proto(convert.status_to_proto(status))
    assert back.model_dump(mode="json") == status.model_dump(mode="json")
    bare = status.model_copy(update={"peer": None, "xconnect_to": None})
    assert convert.status_from_proto(convert.status_to_proto(bare)) == bare
    for event in (
        LinkEvent(interface="a", state="deleted", reason="gone", timestamp=12.5),
        LinkEvent(
            interface="b",
            state="connected",
            peer=PeerInfo(name="p", app_name="x", pid=3),
            timestamp=1.25,
        ),
    ):
        assert convert.event_from_proto(convert.event_to_proto(event)) == event


def test_link_details_come_back_as_they_went() -> None:
    details = LinkDetails(
        name="a",
        state=LinkState.CONNECTED,
        memory=MemoryConfig(num_queue_pairs=2, log2_ring_size=6, packet_buffer_size=2048),
        regions=[
            LinkRegion(index=0, size=4608, sealed=True),
            LinkRegion(index=1, size=2**20, sealed=False),
        ],
        rings=[
            LinkRing(
                direction=Direction.RX, queue=1, size=64, head=65535, tail=3, region=0, offset=1152
            )
        ],
    )
    assert convert.link_from_proto(convert.link_to_proto(details)) == details
    down = LinkDetails(name="b", state=LinkState.DISCONNECTED)
    assert convert.link_from_proto(convert.link_to_proto(down)) == down
