"""memif.packet: ARP and ICMP echo replies, checked independently of the code under test."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memif import packet
from memif.packet import Identity, ReplyKind

from tests.memif import frames

ME = Identity(frames.RESPONDER_IP, frames.RESPONDER_MAC)


# -- checksum ------------------------------------------------------------------------


def test_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 section 3: these words sum to 0xddf2, so the checksum is its complement.
    assert packet.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_of_a_known_ipv4_header() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert packet.internet_checksum(header) == 0xB861


@given(st.binary(max_size=300))
def test_checksum_agrees_with_the_byte_loop(data: bytes) -> None:
    block = bytearray(data + b"\x00\x00")
    value = packet.internet_checksum(bytes(block))
    block[-2:] = value.to_bytes(2, "big")
    if len(data) % 2 == 0:  # the checksum word must be aligned to verify
        assert frames.checksum_ok(bytes(block))
    assert value == ~frames.ones_complement_sum(data + b"\x00\x00") & 0xFFFF


# -- addresses -----------------------------------------------------------------------


def test_identity_defaults_to_a_local_mac_from_the_ip() -> None:
    me = Identity.parse("192.168.1.1")
    assert me.ip == frames.RESPONDER_IP
    assert me.mac == frames.RESPONDER_MAC
    assert packet.format_mac(me.mac) == "02:fe:c0:a8:01:01"


def test_parse_mac_accepts_colons_and_dashes() -> None:
    assert packet.parse_mac("02:FE:0:0:0:2") == frames.PEER_MAC
    assert packet.parse_mac("02-fe-00-00-00-02") == frames.PEER_MAC


@pytest.mark.parametrize("text", ["", "02:fe:00:00:00", "02:fe:00:00:00:zz", "02:fe:000:0:0:1"])
def test_parse_mac_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="MAC address"):
        packet.parse_mac(text)


def test_identity_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="ip must be 4 bytes"):
        Identity(b"\x01\x02\x03", frames.RESPONDER_MAC)
    with pytest.raises(ValueError, match="mac must be 6 bytes"):
        Identity(frames.RESPONDER_IP, b"\x01")


# -- ARP -----------------------------------------------------------------------------


def test_arp_request_for_our_ip_gets_a_reply() -> None:
    reply = packet.answer_ethernet(frames.arp_request(), ME)
    assert reply is not None and reply.kind is ReplyKind.ARP
    frames.check_arp_reply(reply.data)
    assert len(reply.data) == 42


def test_arp_request_padded_to_minimum_frame_size_is_answered() -> None:
    reply = packet.answer_ethernet(frames.arp_request() + b"\x00" * 18, ME)
    assert reply is not None
    frames.check_arp_reply(reply.data)


def test_unicast_arp_request_to_our_mac_is_answered() -> None:
    reply = packet.answer_ethernet(frames.arp_request(dst=frames.RESPONDER_MAC), ME)
    assert reply is not None
    frames.check_arp_reply(reply.data)


def test_arp_reply_uses_a_configured_mac() -> None:
    me = Identity.parse("10.0.0.9", "02:aa:bb:cc:dd:ee")
    reply = packet.answer_ethernet(frames.arp_request(target_ip=bytes([10, 0, 0, 9])), me)
    assert reply is not None
    frames.check_arp_reply(reply.data, mac=me.mac, ip=me.ip)


@pytest.mark.parametrize(
    "frame",
    [
        frames.arp_request(target_ip=bytes([192, 168, 1, 3])),  # someone else's IP
        frames.arp_request(op=2),  # a reply, not a request
        frames.arp_request(dst=b"\x02\x00\x00\x00\x00\x99"),  # unicast to another MAC
        frames.arp_request()[:41],  # truncated
    ],
    ids=["other-ip", "not-a-request", "other-mac", "truncated"],
)
def test_arp_that_is_not_for_us_is_ignored(frame: bytes) -> None:
    assert packet.answer_ethernet(frame, ME) is None


def test_arp_for_another_protocol_is_ignored() -> None:
    frame = bytearray(frames.arp_request())
    frame[16:18] = b"\x86\xdd"  # protocol type IPv6
    assert packet.answer_ethernet(bytes(frame), ME) is None


# -- ICMP echo -----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", b"memif ping payload", bytes(range(256)) * 5])
def test_echo_request_gets_a_reply_with_valid_checksums(data: bytes) -> None:
    reply = packet.answer_ethernet(frames.ping(ident=0xBEEF, seq=513, data=data), ME)
    assert reply is not None and reply.kind is ReplyKind.ICMP
    echo = frames.check_ethernet_echo_reply(reply.data)
    assert (echo.src, echo.dst) == (frames.RESPONDER_IP, frames.PEER_IP)
    assert (echo.ident, echo.seq, echo.data) == (0xBEEF, 513, data)
    assert echo.ttl == packet.DEFAULT_TTL


def test_echo_request_with_ethernet_padding_is_answered_without_it() -> None:
    request = frames.ping(data=b"ab")
    reply = packet.answer_ethernet(request + b"\x00" * (60 - len(request)), ME)
    assert reply is not None
    assert frames.check_ethernet_echo_reply(reply.data).data == b"ab"
    assert len(reply.data) == len(request)


def test_echo_request_with_ip_options_is_answered() -> None:
    icmp = frames.icmp_echo(1, 2, b"opt")
    header = bytearray(
        struct.pack("!BBHHHBBH", 0x46, 0, 24 + len(icmp), 9, 0, 64, 1, 0)
        + frames.PEER_IP
        + frames.RESPONDER_IP
        + b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    )
    frames.fill_checksum(header, 10)
    reply = packet.answer_ethernet(frames.ethernet(bytes(header) + icmp), ME)
    assert reply is not None
    echo = frames.check_ethernet_echo_reply(reply.data)
    assert echo.data == b"opt"


def _corrupt(frame: bytes, at: int) -> bytes:
    raw = bytearray(frame)
    raw[at] ^= 0x40
    return bytes(raw)


@pytest.mark.parametrize(
    "frame",
    [
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x"), dst=bytes([192, 168, 1, 7]))),
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x")), dst=b"\x02\x00\x00\x00\x00\x99"),
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x")), dst=frames.BROADCAST),
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x", icmp_type=0))),
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x"), proto=17)),
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x"), frag=0x2000)),  # MF
        frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x"), frag=0x0001)),  # offset
        _corrupt(frames.ping(), 14 + 8),  # TTL changed: IPv4 header checksum now wrong
        _corrupt(frames.ping(), 14 + 20 + 9),  # payload changed: ICMP checksum now wrong
        frames.ping()[: 14 + 20 + 7],  # ICMP header cut short
        frames.ping()[:-1],  # shorter than the IPv4 total length
        frames.ethernet(frames.ipv4(b""), ethertype=0x86DD),  # not IPv4
        frames.ping()[:13],  # no whole Ethernet header
    ],
    ids=[
        "other-ip",
        "other-mac",
        "broadcast",
        "echo-reply",
        "udp",
        "more-fragments",
        "fragment-offset",
        "bad-ip-checksum",
        "bad-icmp-checksum",
        "short-icmp",
        "short-ip",
        "ipv6-ethertype",
        "short-ethernet",
    ],
)
def test_packets_not_to_answer_are_ignored(frame: bytes) -> None:
    assert packet.answer_ethernet(frame, ME) is None


def test_ip_mode_answers_bare_ipv4() -> None:
    request = frames.ipv4(frames.icmp_echo(3, 4, b"ip mode"))
    reply = packet.answer_ip(request, ME)
    assert reply is not None and reply.kind is ReplyKind.ICMP
    echo = frames.check_ipv4_echo_reply(reply.data)
    assert (echo.dst, echo.ident, echo.seq, echo.data) == (frames.PEER_IP, 3, 4, b"ip mode")


def test_ip_mode_ignores_ethernet_frames() -> None:
    assert packet.answer_ip(frames.ping(), ME) is None
    assert packet.answer_ip(frames.arp_request(), ME) is None


def test_tshark_agrees_the_checksums_are_good(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.fail("tshark is not installed (Debian package tshark); run `make test`")
    replies = []
    for size in (0, 1, 57, 1400):
        reply = packet.answer_ethernet(frames.ping(seq=size, data=bytes(size)), ME)
        assert reply is not None
        replies.append(reply.data)
    capture = tmp_path / "replies.pcap"
    with capture.open("wb") as out:  # classic pcap, link type Ethernet
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for data in replies:
            out.write(struct.pack("<IIII", 0, 0, len(data), len(data)) + data)
    fields = ["ip.checksum.status", "icmp.checksum.status", "icmp.type"]
    result = subprocess.run(
        [
            tshark,
            "-r",
            str(capture),
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            *(arg for f in fields for arg in ("-e", f)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [["1", "1", "0"]] * len(replies)  # 1 = good checksum; type 0 = echo reply


# -- hostile input -------------------------------------------------------------------


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for answer in (packet.answer_ethernet, packet.answer_ip):
        reply = answer(data, ME)
        assert reply is None or isinstance(reply.data, bytes)


@settings(max_examples=400)
@given(
    st.sampled_from(
        [frames.ping(), frames.arp_request(), frames.ipv4(frames.icmp_echo(1, 2, b"z"))]
    ),
    st.data(),
)
def test_mangled_requests_never_raise_and_replies_stay_valid(
    base: bytes, data: st.DataObject
) -> None:
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    for answer in (packet.answer_ethernet, packet.answer_ip):
        reply = answer(bytes(raw), ME)
        if reply is None:
            continue
        if reply.kind is ReplyKind.ARP:
            assert len(reply.data) == 42 and reply.data[6:12] == ME.mac
        else:
            body = reply.data[14:] if answer is packet.answer_ethernet else reply.data
            frames.check_ipv4_echo_reply(body)
