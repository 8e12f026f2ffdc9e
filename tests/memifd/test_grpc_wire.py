"""The hand-written PacketBatch encoder against the generated protobuf code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from memifd.api.grpc import convert, wire
from memifd.core.models import CapturedPacket
from memifd.proto.memif.v1 import memif_pb2 as pb

captured = st.builds(
    CapturedPacket,
    interface=st.sampled_from(["", "a", "x" * 32, "ünï"]),
    queue=st.integers(0, 254),
    direction=st.sampled_from(["rx", "tx"]),
    timestamp_ns=st.integers(0, 2**64 - 1),
    orig_len=st.integers(0, 70_000),
    data=st.binary(max_size=300),
)


@given(st.lists(captured, max_size=20), st.integers(0, 2**64 - 1))
def test_hand_encoded_batch_equals_the_protobuf_one(
    packets: list[CapturedPacket], dropped: int
) -> None:
    expected = convert.packet_batch(packets, dropped)
    assert pb.PacketBatch.FromString(wire.encode_packet_batch(packets, dropped)) == expected
    assert convert.packets_from_batch(expected) == packets


def test_hand_encoded_batch_is_byte_identical_for_ordinary_packets() -> None:
    packets = [
        CapturedPacket("memif0", i % 2, "rx", 10**18 + i // 4, 60 + i, bytes(60 + i))
        for i in range(256)
    ]
    assert wire.encode_packet_batch(packets, 7) == (
        convert.packet_batch(packets, 7).SerializeToString()
    )


def test_hand_encoded_batch_is_byte_identical_for_stamps_counting_up() -> None:
    # a burst's stamps count up by one and cross several 128-ns boundaries
    packets = [
        CapturedPacket("memif0", 0, "tx", 1_796_404_689_929_629_600 + i, 64, bytes(64))
        for i in range(300)
    ]
    assert wire.encode_packet_batch(packets, 0) == (
        convert.packet_batch(packets, 0).SerializeToString()
    )


@given(st.integers(1, 2**64 - 1))
def test_varint_is_protobufs(value: int) -> None:
    expected = pb.InjectResponse(accepted=value).SerializeToString()
    assert b"\x08" + wire.varint(value) == expected


def test_exchange_rx_wraps_a_batch_as_an_exchange_response() -> None:
    packets = [CapturedPacket("a", 0, "rx", 10**18 + i, 64, bytes(64)) for i in range(3)]
    batch = wire.encode_packet_batch(packets, 2)
    response = pb.ExchangeResponse.FromString(wire.exchange_rx(batch))
    assert response.WhichOneof("kind") == "rx"
    assert response.rx == convert.packet_batch(packets, 2)
