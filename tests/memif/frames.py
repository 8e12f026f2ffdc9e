"""Frames built and checked by hand for the responder tests, independent of ``memif.packet``.

Checksums are verified with a plain byte loop (RFC 1071: the 16-bit ones'
complement sum over a block that includes its checksum is 0xFFFF), not with
the library's implementation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RESPONDER_IP = bytes([192, 168, 1, 1])
RESPONDER_MAC = bytes([0x02, 0xFE, 0xC0, 0xA8, 0x01, 0x01])  # the default for 192.168.1.1
PEER_IP = bytes([192, 168, 1, 2])
PEER_MAC = bytes([0x02, 0xFE, 0x00, 0x00, 0x00, 0x02])
BROADCAST = b"\xff" * 6


def ones_complement_sum(data: bytes) -> int:
    """16-bit ones' complement sum, one byte pair at a time."""
    total = 0
    for i in range(0, len(data), 2):
        high = data[i]
        low = data[i + 1] if i + 1 < len(data) else 0
        total += (high << 8) | low
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum_ok(block: bytes) -> bool:
    """True when ``block`` (checksum field included) sums to 0xFFFF."""
    return ones_complement_sum(block) == 0xFFFF


def fill_checksum(block: bytearray, at: int) -> None:
    """Write the checksum of ``block`` (field zeroed first) at byte offset ``at``."""
    block[at : at + 2] = b"\x00\x00"
    value = ~ones_complement_sum(bytes(block)) & 0xFFFF
    block[at : at + 2] = value.to_bytes(2, "big")


def arp_request(target_ip: bytes = RESPONDER_IP, *, dst: bytes = BROADCAST, op: int = 1) -> bytes:
    """An Ethernet ARP request from the peer asking who has ``target_ip``."""
    eth = dst + PEER_MAC + b"\x08\x06"
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + PEER_MAC + PEER_IP + b"\x00" * 6 + target_ip
    return eth + arp


def icmp_echo(ident: int, seq: int, data: bytes, *, icmp_type: int = 8) -> bytes:
    """An ICMP echo message with a correct checksum."""
    message = bytearray(struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq) + data)
    fill_checksum(message, 2)
    return bytes(message)


def ipv4(
    payload: bytes,
    *,
    src: bytes = PEER_IP,
    dst: bytes = RESPONDER_IP,
    proto: int = 1,
    ident: int = 0x1234,
    frag: int = 0x4000,
    ttl: int = 61,
) -> bytes:
    """An IPv4 packet (20-byte header, DF set by default) with a correct header checksum."""
    header = bytearray(
        struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0) + src + dst
    )
    fill_checksum(header, 10)
    return bytes(header) + payload


def ethernet(payload: bytes, *, dst: bytes = RESPONDER_MAC, ethertype: int = 0x0800) -> bytes:
    """An Ethernet II frame from the peer."""
    return dst + PEER_MAC + ethertype.to_bytes(2, "big") + payload


def ping(ident: int = 7, seq: int = 1, data: bytes = b"memif ping payload") -> bytes:
    """An Ethernet ICMP echo request from the peer to the responder."""
    return ethernet(ipv4(icmp_echo(ident, seq, data)))


@dataclass(frozen=True)
class EchoReply:
    """The fields of an IPv4 ICMP echo reply, checked on the way."""

    src: bytes
    dst: bytes
    ttl: int
    ident: int
    seq: int
    data: bytes


def check_ipv4_echo_reply(packet: bytes) -> EchoReply:
    """Parse a bare IPv4 echo reply, asserting every header field and both checksums."""
    assert packet[0] == 0x45, f"version/IHL {packet[0]:#x}"
    total = int.from_bytes(packet[2:4], "big")
    assert total == len(packet), f"total length {total}, packet {len(packet)}"
    assert int.from_bytes(packet[6:8], "big") & 0x3FFF == 0, "reply is a fragment"
    assert packet[9] == 1, "protocol is not ICMP"
    assert checksum_ok(packet[:20]), "bad IPv4 header checksum"
    icmp = packet[20:]
    assert icmp[0] == 0 and icmp[1] == 0, f"ICMP type/code {icmp[0]}/{icmp[1]}"
    assert checksum_ok(icmp), "bad ICMP checksum"
    ident, seq = struct.unpack("!HH", icmp[4:8])
    return EchoReply(packet[12:16], packet[16:20], packet[8], ident, seq, icmp[8:])


def check_ethernet_echo_reply(frame: bytes) -> EchoReply:
    """As :func:`check_ipv4_echo_reply`, for a frame from the responder to the peer."""
    assert frame[:6] == PEER_MAC and frame[6:12] == RESPONDER_MAC, frame[:12].hex()
    assert frame[12:14] == b"\x08\x00"
    return check_ipv4_echo_reply(frame[14:])


def check_arp_reply(frame: bytes, *, mac: bytes = RESPONDER_MAC, ip: bytes = RESPONDER_IP) -> None:
    """Assert an Ethernet ARP reply from ``mac``/``ip`` to the peer."""
    assert frame[:6] == PEER_MAC, "not sent to the requester"
    assert frame[6:12] == mac, "not sent from the responder's MAC"
    assert frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2)
    assert frame[22:28] == mac and frame[28:32] == ip, "sender is not the responder"
    assert frame[32:38] == PEER_MAC and frame[38:42] == PEER_IP, "target is not the requester"
