"""Control messages: 128-byte encoding, round trips, NUL-padded strings, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memif import LocalProtocolError, RemoteProtocolError, WireError, wire
from memif.constants import MSG_SIZE

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)


def cstring(size: int) -> st.SearchStrategy[bytes]:
    """Wire strings as they survive a round trip: no NUL inside, at most ``size`` bytes."""
    return st.binary(max_size=size).map(lambda b: b.replace(b"\x00", b"x"))


MESSAGES: st.SearchStrategy[wire.Message] = st.one_of(
    st.just(wire.NoneMsg()),
    st.just(wire.Ack()),
    st.builds(wire.Hello, cstring(32), U16, U16, U16, U16, U16, U8),
    st.builds(wire.Init, U16, U32, U8, cstring(24), cstring(32)),
    st.builds(wire.AddRegion, U16, U64),
    st.builds(wire.AddRing, U16, U16, U16, U32, U8, U16),
    st.builds(wire.Connect, cstring(32)),
    st.builds(wire.Connected, cstring(32)),
    st.builds(wire.Disconnect, U32, cstring(96)),
)

SAMPLES: list[wire.Message] = [
    wire.NoneMsg(),
    wire.Ack(),
    wire.Hello(b"vpp", 0x200, 0x200, 255, 254, 253, 14),
    wire.Init(0x200, 7, 1, b"s3cret", b"app"),
    wire.AddRegion(3, 1 << 33),
    wire.AddRing(1, 2, 3, 0x1000, 10, 0),
    wire.Connect(b"memif0/0"),
    wire.Connected(b"memif1/7"),
    wire.Disconnect(5, b"bye"),
]


def test_nine_message_types() -> None:
    assert {type(m) for m in SAMPLES} == set(wire.MESSAGE_CLASSES.values())
    assert len(wire.MESSAGE_CLASSES) == 9


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_encode_is_128_bytes_and_round_trips(message: wire.Message) -> None:
    data = wire.encode(message)
    assert len(data) == MSG_SIZE
    assert struct.unpack_from("<H", data)[0] == message.TYPE
    assert wire.decode(data) == message


def test_layout_of_fields_is_packed_little_endian() -> None:
    """Field offsets as the protocol defines them (no padding anywhere)."""
    hello = wire.encode(wire.Hello(b"ab", 0x0200, 0x0201, 1, 2, 3, 14))
    assert hello[2:4] == b"ab" and hello[4:34] == bytes(30)
    assert struct.unpack_from("<HHHHHB", hello, 34) == (0x0200, 0x0201, 1, 2, 3, 14)
    init = wire.encode(wire.Init(0x0200, 0x01020304, 2, b"pw", b"nm"))
    assert struct.unpack_from("<HIB", init, 2) == (0x0200, 0x01020304, 2)
    assert init[9:11] == b"pw" and init[33:35] == b"nm"
    ring = wire.encode(wire.AddRing(1, 2, 3, 0xAABBCCDD, 12, 0))
    assert struct.unpack_from("<HHHHIBH", ring) == (5, 1, 2, 3, 0xAABBCCDD, 12, 0)
    region = wire.encode(wire.AddRegion(9, 0x1122334455))
    assert struct.unpack_from("<HHQ", region) == (4, 9, 0x1122334455)
    bye = wire.encode(wire.Disconnect(0xDEADBEEF, b"why"))
    assert struct.unpack_from("<HI", bye) == (8, 0xDEADBEEF) and bye[6:9] == b"why"
    assert all(b == 0 for b in bye[9:])


def test_strings_decode_up_to_the_first_nul() -> None:
    raw = bytearray(MSG_SIZE)
    struct.pack_into("<H", raw, 0, wire.MsgType.CONNECT)
    raw[2:34] = b"eth0\x00garbage-after-nul".ljust(32, b"\xff")
    assert wire.decode(raw) == wire.Connect(b"eth0")


def test_unterminated_string_uses_the_whole_field() -> None:
    raw = bytearray(MSG_SIZE)
    struct.pack_into("<H", raw, 0, wire.MsgType.CONNECTED)
    raw[2:34] = b"N" * 32
    raw[34:] = b"\xff" * (MSG_SIZE - 34)  # bytes past the field are not part of the name
    assert wire.decode(raw) == wire.Connected(b"N" * 32)


def test_decode_accepts_memoryview_and_bytearray() -> None:
    data = wire.encode(SAMPLES[3])
    assert wire.decode(memoryview(data)) == wire.decode(bytearray(data)) == SAMPLES[3]


@pytest.mark.parametrize("size", [0, 1, 2, 64, 127, 129, 256])
def test_wrong_length_is_a_wire_error(size: int) -> None:
    with pytest.raises(WireError, match=f"{size} bytes, expected 128"):
        wire.decode(b"\x01" * size)


@pytest.mark.parametrize("type_value", [9, 100, 0xFFFF])
def test_unknown_type_is_a_wire_error(type_value: int) -> None:
    data = struct.pack("<H", type_value).ljust(MSG_SIZE, b"\x00")
    with pytest.raises(WireError, match=f"unknown message type {type_value}"):
        wire.decode(data)


def test_wire_error_is_a_remote_protocol_error_with_reason() -> None:
    with pytest.raises(WireError) as info:
        wire.decode(b"")
    assert isinstance(info.value, RemoteProtocolError)
    assert "expected 128" in info.value.reason


@pytest.mark.parametrize(
    "message",
    [
        wire.Hello(name=b"x" * 33),
        wire.Init(secret=b"s" * 25),
        wire.Init(name=b"n" * 33),
        wire.Connect(b"c" * 33),
        wire.Connected(b"c" * 33),
    ],
    ids=["hello-name", "init-secret", "init-name", "connect", "connected"],
)
def test_encode_refuses_strings_that_do_not_fit(message: wire.Message) -> None:
    with pytest.raises(LocalProtocolError, match="the limit is"):
        wire.encode(message)


@pytest.mark.parametrize(
    "message",
    [wire.AddRegion(0x10000, 1), wire.AddRing(offset=1 << 32), wire.Hello(max_region=-1)],
    ids=["u16", "u32", "negative"],
)
def test_encode_refuses_numbers_that_do_not_fit(message: wire.Message) -> None:
    with pytest.raises(LocalProtocolError, match=type(message).__name__):
        wire.encode(message)


def test_disconnect_reason_is_cut_to_its_field() -> None:
    data = wire.encode(wire.Disconnect(1, b"r" * 200))
    assert len(data) == MSG_SIZE
    assert wire.decode(data) == wire.Disconnect(1, b"r" * 96)


def test_text_replaces_invalid_utf8() -> None:
    assert wire.text(b"ok\xff") == "ok\ufffd"


@given(MESSAGES)
def test_round_trip_property(message: wire.Message) -> None:
    data = wire.encode(message)
    assert len(data) == MSG_SIZE
    assert wire.decode(data) == message
    assert wire.encode(wire.decode(data)) == data


@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        message = wire.decode(data)
    except WireError:
        return
    assert len(data) == MSG_SIZE
    assert isinstance(message, wire.Message)


@given(st.integers(0, 8), st.binary(min_size=126, max_size=126))
def test_any_payload_of_a_known_type_decodes(type_value: int, payload: bytes) -> None:
    message = wire.decode(struct.pack("<H", type_value) + payload)
    assert type_value == message.TYPE
    # Re-encoding keeps every field the message carries (strings up to their NUL).
    assert wire.decode(wire.encode(message)) == message
