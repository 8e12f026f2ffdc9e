"""Classic libpcap files: writing captures, reading packets to inject.

The format: a 24-byte global header (magic, version 2.4, snaplen, link type)
followed by records of a 16-byte header (seconds, sub-second part, captured
length, original length) and the captured bytes. The magic tells the byte
order and whether the sub-second part is micro- or nanoseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from memif import Mode
from memif.constants import MAX_PACKET_SIZE

from memifd.core.errors import InvalidArgumentError, MalformedError

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link-layer header

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
VERSION = (2, 4)
MEDIA_TYPE = "application/vnd.tcpdump.pcap"

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
GLOBAL_HEADER_SIZE = _GLOBAL.size
RECORD_HEADER_SIZE = _RECORD.size


def linktype_for(mode: Mode) -> int:
    """The link type of an interface mode: Ethernet frames, or raw IP packets."""
    return LINKTYPE_RAW if mode is Mode.IP else LINKTYPE_ETHERNET


# -- writing --------------------------------------------------------------------------


def global_header(linktype: int, snaplen: int = MAX_PACKET_SIZE) -> bytes:
    """The file header (nanosecond timestamps, little-endian)."""
    return _GLOBAL.pack(MAGIC_NANO, *VERSION, 0, 0, snaplen, linktype)


def records(packets: Iterable[tuple[int, int, bytes]]) -> bytes:
    """Records for ``(timestamp_ns, original_length, data)`` tuples, as one bytes object."""
    parts: list[bytes] = []
    pack = _RECORD.pack
    for stamp, orig_len, data in packets:
        seconds, nanos = divmod(stamp, 1_000_000_000)
        parts.append(pack(seconds & 0xFFFFFFFF, nanos, len(data), orig_len))
        parts.append(data)
    return b"".join(parts)


def write(packets: Iterable[bytes], linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """A whole pcap file holding ``packets`` (timestamps zero); handy for tests and clients."""
    return global_header(linktype) + records((0, len(p), p) for p in packets)


# -- reading --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PcapFile:
    """The parsed content of a pcap file."""

    linktype: int
    snaplen: int
    packets: list[bytes]


def read(data: bytes, max_packets: int | None = None, allow_truncated: bool = False) -> PcapFile:
    """Parse a pcap file; raises :class:`MalformedError` naming what is wrong and where
    (:class:`InvalidArgumentError` for packets that parse but cannot be sent).

    Packets cut short by the capture's snaplen are refused unless ``allow_truncated``.
    """
    if len(data) < GLOBAL_HEADER_SIZE:
        raise MalformedError(
            f"not a pcap file: {len(data)} bytes, the global header alone is {GLOBAL_HEADER_SIZE}"
        )
    (magic,) = struct.unpack_from("<I", data)
    if magic in (MAGIC_MICRO, MAGIC_NANO):
        order = "<"
    elif magic in (_swap32(MAGIC_MICRO), _swap32(MAGIC_NANO)):
        order = ">"
    else:
        raise MalformedError(
            f"not a pcap file: magic 0x{magic:08x} (expected 0xa1b2c3d4 or 0xa1b23c4d)"
        )
    _m, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
        order + "IHHiIII", data
    )
    if major != 2:
        raise MalformedError(f"pcap version {major}.{minor} is not supported (expected 2.4)")
    linktype &= 0xFFFF  # the upper bits may carry FCS information
    record = struct.Struct(order + "IIII")
    packets: list[bytes] = []
    offset = GLOBAL_HEADER_SIZE
    end = len(data)
    while offset < end:
        number = len(packets)
        if end - offset < RECORD_HEADER_SIZE:
            raise MalformedError(
                f"packet {number}: record header truncated at byte {offset} "
                f"({end - offset} of {RECORD_HEADER_SIZE} bytes)"
            )
        _sec, _frac, caplen, orig_len = record.unpack_from(data, offset)
        offset += RECORD_HEADER_SIZE
        if caplen == 0 or caplen > MAX_PACKET_SIZE:
            raise InvalidArgumentError(
                "", f"packet {number}: captured length {caplen} outside 1..{MAX_PACKET_SIZE}"
            )
        if caplen > end - offset:
            raise MalformedError(
                f"packet {number}: data truncated at byte {offset} "
                f"({end - offset} of {caplen} bytes)"
            )
        if orig_len > caplen and not allow_truncated:
            raise InvalidArgumentError(
                "",
                f"packet {number}: was cut to {caplen} of {orig_len} bytes when captured; "
                "only whole packets can be sent",
            )
        packets.append(data[offset : offset + caplen])
        offset += caplen
        if max_packets is not None and len(packets) > max_packets:
            raise InvalidArgumentError("", f"more than {max_packets} packets in one request")
    return PcapFile(linktype=linktype, snaplen=snaplen, packets=packets)


def _swap32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little"), "big")
