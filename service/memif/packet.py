"""Just enough Ethernet, ARP, IPv4 and ICMP to answer ARP requests and pings.

Pure functions over bytes, used by the responder tool (``python -m memif
responder``). Everything received is untrusted: a frame that is truncated,
malformed, fragmented, carries a bad checksum or is not addressed to us gives
``None``, never an exception. In interface mode ``ethernet`` a packet is an
Ethernet II frame; in mode ``ip`` it is a bare IPv4 packet (there is no ARP).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

ETH_HEADER_LEN: Final = 14
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
BROADCAST_MAC: Final = b"\xff" * 6

ARP_LEN: Final = 28  # Ethernet/IPv4 ARP body (RFC 826 with 6-byte and 4-byte addresses)
ARP_REQUEST: Final = 1
ARP_REPLY: Final = 2
ARP_HTYPE_ETHERNET: Final = 1

IPV4_MIN_HEADER_LEN: Final = 20
IPPROTO_ICMP: Final = 1
DEFAULT_TTL: Final = 64
_IP_FLAG_MF: Final = 0x2000
_IP_FRAG_OFFSET: Final = 0x1FFF

ICMP_HEADER_LEN: Final = 8
ICMP_ECHO_REPLY: Final = 0
ICMP_ECHO_REQUEST: Final = 8

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ICMP_TYPE_CODE_SUM = struct.Struct("!BBH")


class ReplyKind(enum.StrEnum):
    """What a reply answers."""

    ARP = "arp"
    ICMP = "icmp"


@dataclass(frozen=True, slots=True)
class Identity:
    """The addresses a responder answers for."""

    ip: bytes  # 4 bytes, network order
    mac: bytes  # 6 bytes

    def __post_init__(self) -> None:
        if len(self.ip) != 4:
            raise ValueError(f"ip must be 4 bytes, got {len(self.ip)}")
        if len(self.mac) != 6:
            raise ValueError(f"mac must be 6 bytes, got {len(self.mac)}")

    @classmethod
    def parse(cls, ip: str, mac: str | None = None) -> Identity:
        """From dotted IPv4 text and ``aa:bb:cc:dd:ee:ff`` (default: 02:fe + the IPv4 bytes)."""
        raw_ip = ipaddress.IPv4Address(ip).packed
        return cls(raw_ip, parse_mac(mac) if mac is not None else b"\x02\xfe" + raw_ip)


@dataclass(frozen=True, slots=True)
class Reply:
    """A packet to send back and what it answers."""

    kind: ReplyKind
    data: bytes


@dataclass(frozen=True, slots=True)
class Arp:
    """The fields of an Ethernet/IPv4 ARP message."""

    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


@dataclass(frozen=True, slots=True)
class IPv4:
    """A parsed IPv4 packet; ``payload`` excludes link-layer padding."""

    header_len: int
    tos: int
    ident: int
    ttl: int
    protocol: int
    src: bytes
    dst: bytes
    payload: bytes


def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` (or with ``-``) to 6 bytes; raises ValueError naming the input."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        raise ValueError(f"MAC address {text!r} must be six hex bytes like 02:fe:00:00:00:01")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"MAC address {text!r} has a byte that is not hex") from None


def format_mac(mac: bytes) -> str:
    """6 bytes as ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{b:02x}" for b in mac)


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum: ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data = data + b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# -- parsing ---------------------------------------------------------------------


def parse_arp(body: bytes) -> Arp | None:
    """An Ethernet/IPv4 ARP message, or None (trailing padding is allowed)."""
    if len(body) < ARP_LEN:
        return None
    htype, ptype, hlen, plen, op, smac, sip, tmac, tip = _ARP.unpack_from(body)
    if (htype, ptype, hlen, plen) != (ARP_HTYPE_ETHERNET, ETHERTYPE_IPV4, 6, 4):
        return None
    return Arp(op, smac, sip, tmac, tip)


def parse_ipv4(packet: bytes) -> IPv4 | None:
    """A whole, unfragmented IPv4 packet with a valid header checksum, or None."""
    if len(packet) < IPV4_MIN_HEADER_LEN:
        return None
    ver_ihl, tos, total_len, ident, frag, ttl, proto, _, src, dst = _IPV4.unpack_from(packet)
    header_len = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header_len < IPV4_MIN_HEADER_LEN:
        return None
    if not header_len <= total_len <= len(packet):
        return None
    if frag & (_IP_FLAG_MF | _IP_FRAG_OFFSET):
        return None  # a fragment: answering needs reassembly
    if internet_checksum(packet[:header_len]) != 0:
        return None
    return IPv4(header_len, tos, ident, ttl, proto, src, dst, bytes(packet[header_len:total_len]))


# -- building --------------------------------------------------------------------


def build_ipv4(
    src: bytes,
    dst: bytes,
    protocol: int,
    payload: bytes,
    *,
    tos: int = 0,
    ident: int = 0,
    ttl: int = DEFAULT_TTL,
) -> bytes:
    """A 20-byte IPv4 header (no options, checksum filled in) followed by ``payload``."""
    total = IPV4_MIN_HEADER_LEN + len(payload)
    header = _IPV4.pack(0x45, tos, total, ident, 0, ttl, protocol, 0, src, dst)
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + payload


def build_ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    """An Ethernet II frame (no padding, no FCS: memif carries neither)."""
    return _ETH.pack(dst, src, ethertype) + payload


def build_arp(
    op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
) -> bytes:
    """An Ethernet/IPv4 ARP body."""
    return _ARP.pack(
        ARP_HTYPE_ETHERNET, ETHERTYPE_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip
    )


def build_icmp(icmp_type: int, code: int, rest: bytes) -> bytes:
    """An ICMP message: type, code, checksum, then ``rest`` (identifier, sequence, data)."""
    unsummed = _ICMP_TYPE_CODE_SUM.pack(icmp_type, code, 0) + rest
    checksum = internet_checksum(unsummed)
    return unsummed[:2] + checksum.to_bytes(2, "big") + unsummed[4:]


# -- answering -------------------------------------------------------------------


def answer_arp(body: bytes, me: Identity) -> bytes | None:
    """The ARP reply body for a request asking for our IPv4 address, or None."""
    arp = parse_arp(body)
    if arp is None or arp.op != ARP_REQUEST or arp.target_ip != me.ip:
        return None
    return build_arp(ARP_REPLY, me.mac, me.ip, arp.sender_mac, arp.sender_ip)


def answer_ipv4(packet: bytes, me: Identity) -> bytes | None:
    """The IPv4 echo reply to an ICMP echo request sent to our address, or None."""
    ip = parse_ipv4(packet)
    if ip is None or ip.protocol != IPPROTO_ICMP or ip.dst != me.ip:
        return None
    icmp = ip.payload
    if len(icmp) < ICMP_HEADER_LEN or icmp[0] != ICMP_ECHO_REQUEST or icmp[1] != 0:
        return None
    if internet_checksum(icmp) != 0:
        return None
    reply = build_icmp(ICMP_ECHO_REPLY, 0, icmp[4:])
    return build_ipv4(me.ip, ip.src, IPPROTO_ICMP, reply, tos=ip.tos, ident=ip.ident)


def answer_ethernet(frame: bytes, me: Identity) -> Reply | None:
    """The reply to an Ethernet frame (ARP request or ping for us), or None."""
    if len(frame) < ETH_HEADER_LEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    if dst not in (me.mac, BROADCAST_MAC):
        return None
    body = bytes(frame[ETH_HEADER_LEN:])
    if ethertype == ETHERTYPE_ARP:
        arp = answer_arp(body, me)
        if arp is None:
            return None
        return Reply(ReplyKind.ARP, build_ethernet(src, me.mac, ETHERTYPE_ARP, arp))
    if ethertype == ETHERTYPE_IPV4 and dst == me.mac:
        ip = answer_ipv4(body, me)
        if ip is None:
            return None
        return Reply(ReplyKind.ICMP, build_ethernet(src, me.mac, ETHERTYPE_IPV4, ip))
    return None


def answer_ip(packet: bytes, me: Identity) -> Reply | None:
    """The reply to a bare IPv4 packet (interface mode ``ip``), or None."""
    ip = answer_ipv4(bytes(packet), me)
    return Reply(ReplyKind.ICMP, ip) if ip is not None else None
