"""pcapng files: writing capture streams, reading packets to inject.

The format (draft-ietf-opsawg-pcapng) is a sequence of blocks, each framed by
its type and total length (repeated at its end). A Section Header Block (SHB)
starts the file and tells the byte order; an Interface Description Block (IDB)
per capture interface gives its link type, name and timestamp resolution; an
Enhanced Packet Block (EPB) carries one packet with its interface, timestamp
and options (direction, queue, drops since the previous packet, a comment);
an Interface Statistics Block (ISB) carries counters such as packets dropped.

memifd writes little-endian files with nanosecond timestamps (``if_tsresol``
9) and marks every packet inbound (received by memifd's interface) or
outbound (sent by it) in the EPB flags.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from memif.constants import MAX_PACKET_SIZE

from memifd.core.errors import InvalidArgumentError, MalformedError
from memifd.core.pcap import PcapFile

MEDIA_TYPE = "application/x-pcapng"  # no registered type yet; Wireshark's own name for it

MAGIC = 0x0A0D0D0A  # block type of the SHB, the same in either byte order
BYTE_ORDER_MAGIC = 0x1A2B3C4D
VERSION = (1, 0)

BLOCK_IDB = 1
BLOCK_PB = 2  # obsolete Packet Block, still read
BLOCK_SPB = 3
BLOCK_ISB = 5
BLOCK_EPB = 6

OPT_END = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2
EPB_DROPCOUNT = 4
EPB_QUEUE = 6
ISB_STARTTIME = 2
ISB_ENDTIME = 3
ISB_IFDROP = 5
ISB_USRDELIV = 8

FLAG_INBOUND = 0b01  # EPB flags bits 0-1: the packet's direction
FLAG_OUTBOUND = 0b10

_BLOCK_HEAD = struct.Struct("<II")
_EPB_HEAD = struct.Struct("<IIIIIII")
_U32 = struct.Struct("<I")
_OPT_HEAD = struct.Struct("<HH")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_END_OF_OPTIONS = _OPT_HEAD.pack(OPT_END, 0)
SPARE_BLOCKS = 4096  # blocks other than packets a file to inject may hold
_MAX_TAILS = 4096  # cached EPB endings (one per direction, queue and length seen)


# -- encoding -------------------------------------------------------------------------------------


def _option(code: int, value: bytes) -> bytes:
    return _OPT_HEAD.pack(code, len(value)) + value + _PAD[len(value) & 3]


def _options(*pairs: tuple[int, bytes]) -> bytes:
    """Encoded options followed by opt_endofopt (nothing at all when there are none)."""
    if not pairs:
        return b""
    return b"".join(_option(code, value) for code, value in pairs) + _END_OF_OPTIONS


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _BLOCK_HEAD.pack(block_type, total) + body + _U32.pack(total)


def _timestamp(ns: int) -> bytes:
    return struct.pack("<II", (ns >> 32) & 0xFFFFFFFF, ns & 0xFFFFFFFF)


def section_header(application: str, comment: str = "") -> bytes:
    """An SHB of unknown section length, naming the writing application."""
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, *VERSION, -1)
    options = [(OPT_COMMENT, comment.encode())] if comment else []
    options.append((SHB_USERAPPL, application.encode()))
    return _block(MAGIC, body + _options(*options))


def interface_description(linktype: int, snaplen: int, name: str, description: str = "") -> bytes:
    """An IDB with nanosecond timestamps."""
    options = [(IF_NAME, name.encode())]
    if description:
        options.append((IF_DESCRIPTION, description.encode()))
    options.append((IF_TSRESOL, b"\x09"))
    body = struct.pack("<HHI", linktype, 0, snaplen) + _options(*options)
    return _block(BLOCK_IDB, body)


def enhanced_packet(
    interface_id: int, timestamp_ns: int, orig_len: int, data: bytes, options: bytes
) -> bytes:
    """An EPB; ``options`` come from :func:`packet_options`."""
    caplen = len(data)
    total = 32 + caplen + (-caplen & 3) + len(options)
    return b"".join(
        (
            _EPB_HEAD.pack(
                BLOCK_EPB,
                total,
                interface_id,
                (timestamp_ns >> 32) & 0xFFFFFFFF,
                timestamp_ns & 0xFFFFFFFF,
                caplen,
                orig_len,
            ),
            data,
            _PAD[caplen & 3],
            options,
            _U32.pack(total),
        )
    )


def packet_options(outbound: bool, queue: int, dropped_before: int = 0, comment: str = "") -> bytes:
    """EPB options: direction flags, the memif queue, and drops before this packet."""
    pairs = [
        (EPB_FLAGS, _U32.pack(FLAG_OUTBOUND if outbound else FLAG_INBOUND)),
        (EPB_QUEUE, _U32.pack(queue)),
    ]
    if dropped_before:
        pairs.append((EPB_DROPCOUNT, struct.pack("<Q", dropped_before)))
    if comment:
        pairs.append((OPT_COMMENT, comment.encode()))
    return _options(*pairs)


def interface_statistics(
    interface_id: int,
    timestamp_ns: int,
    *,
    dropped: int,
    delivered: int,
    started_ns: int | None = None,
    comment: str = "",
) -> bytes:
    """An ISB: packets dropped for a slow reader (``isb_ifdrop``) and delivered so far."""
    pairs = []
    if comment:
        pairs.append((OPT_COMMENT, comment.encode()))
    if started_ns is not None:
        pairs.append((ISB_STARTTIME, _timestamp(started_ns)))
        pairs.append((ISB_ENDTIME, _timestamp(timestamp_ns)))
    pairs.append((ISB_IFDROP, struct.pack("<Q", dropped)))
    pairs.append((ISB_USRDELIV, struct.pack("<Q", delivered)))
    body = struct.pack("<I", interface_id) + _timestamp(timestamp_ns) + _options(*pairs)
    return _block(BLOCK_ISB, body)


@dataclass(slots=True)
class _Interface:
    id: int
    dropped: int = 0  # reported so far
    pending: int = 0  # dropped, not yet attached to a packet
    delivered: int = 0


class StreamWriter:
    """Encodes one capture as a pcapng stream, block by block.

    Interfaces get an IDB when :meth:`header` is written or, for interfaces
    first seen later, just before their first packet (``linktype_of`` names
    their link type). Drops come in as running totals per interface; new
    drops go on the next packet of that interface (``epb_dropcount`` and a
    comment), and :meth:`statistics` writes the totals when the capture ends,
    one ISB per interface: Wireshark reads "dropped packets" from an
    interface's ISB only when there is exactly one.
    """

    def __init__(
        self, snaplen: int, application: str, linktype_of: Callable[[str], int], started_ns: int
    ) -> None:
        self.snaplen = snaplen
        self.application = application
        self._linktype_of = linktype_of
        self._started_ns = started_ns
        self._interfaces: dict[str, _Interface] = {}
        self._tails: dict[tuple[str, int, int], tuple[int, bytes]] = {}

    def header(self, interfaces: Iterable[tuple[str, int, str]], comment: str = "") -> bytes:
        """The SHB (with ``comment``) and an IDB per ``(name, linktype, description)``."""
        return section_header(self.application, comment) + b"".join(
            self._describe(name, linktype, description)
            for name, linktype, description in interfaces
        )

    def _describe(self, name: str, linktype: int, description: str = "") -> bytes:
        self._interfaces[name] = _Interface(len(self._interfaces))
        return interface_description(linktype, self.snaplen, name, description)

    def drops(self, totals: Mapping[str, int]) -> bytes:
        """Take the running drop totals per interface: what is new goes on the next
        packet of that interface. Returns the IDB of an interface not seen before."""
        blocks = []
        for name, total in totals.items():
            state = self._interfaces.get(name)
            if state is None:
                blocks.append(self._describe(name, self._linktype_of(name)))
                state = self._interfaces[name]
            if total > state.dropped:
                state.pending += total - state.dropped
                state.dropped = total
        return b"".join(blocks)

    def packets(self, batch: Iterable[tuple[str, int, str, int, int, bytes]]) -> bytes:
        """EPBs for ``(interface, queue, direction, timestamp_ns, orig_len, data)``
        tuples; ``direction`` is ``"rx"`` (inbound) or ``"tx"`` (outbound)."""
        # The hot loop of a capture stream: what follows the packet data (padding,
        # options, trailing length) depends only on direction, queue and length, so
        # it is built once per such triple and reused.
        parts: list[bytes] = []
        add = parts.append
        head = _EPB_HEAD.pack
        tails = self._tails
        state: _Interface | None = None
        current = ""
        for name, queue, direction, stamp, orig_len, data in batch:
            if state is None or name != current:
                state = self._interface(name, parts)
                current = name
            caplen = len(data)
            if state.pending:
                total, tail = self._tail_after_drops(state, name, direction, queue, caplen)
            else:
                cached = tails.get((direction, queue, caplen))
                total, tail = cached or self._tail(direction, queue, caplen)
            state.delivered += 1
            add(head(BLOCK_EPB, total, state.id, stamp >> 32, stamp & 0xFFFFFFFF, caplen, orig_len))
            add(data)
            add(tail)
        return b"".join(parts)

    def _interface(self, name: str, parts: list[bytes]) -> _Interface:
        state = self._interfaces.get(name)
        if state is None:
            parts.append(self._describe(name, self._linktype_of(name)))
            state = self._interfaces[name]
        return state

    def _tail(self, direction: str, queue: int, caplen: int) -> tuple[int, bytes]:
        options = packet_options(direction == "tx", queue)
        total = 32 + caplen + (-caplen & 3) + len(options)
        tail = _PAD[caplen & 3] + options + _U32.pack(total)
        if len(self._tails) >= _MAX_TAILS:  # many lengths: keep the cache bounded
            self._tails.clear()
        self._tails[(direction, queue, caplen)] = (total, tail)
        return total, tail

    def _tail_after_drops(
        self, state: _Interface, name: str, direction: str, queue: int, caplen: int
    ) -> tuple[int, bytes]:
        count = state.pending
        state.pending = 0
        comment = (
            f"{count} packets of {name} dropped before this one: the capture reader was too slow"
        )
        options = packet_options(direction == "tx", queue, count, comment)
        total = 32 + caplen + (-caplen & 3) + len(options)
        return total, _PAD[caplen & 3] + options + _U32.pack(total)

    def statistics(self, now_ns: int, comment: str = "") -> bytes:
        """A closing ISB per interface: start and end time, dropped and delivered."""
        return b"".join(
            interface_statistics(
                state.id,
                now_ns,
                dropped=state.dropped,
                delivered=state.delivered,
                started_ns=self._started_ns,
                comment=comment,
            )
            for state in self._interfaces.values()
        )


# -- reading ------------------------------------------------------------------------------------


def is_pcapng(data: bytes) -> bool:
    """True when ``data`` starts like a pcapng file."""
    return data[:4] == _U32.pack(MAGIC)


def read(data: bytes, max_packets: int | None = None, allow_truncated: bool = False) -> PcapFile:
    """Parse a pcapng file into its packets; raises :class:`MalformedError` naming the
    block (:class:`InvalidArgumentError` for packets that parse but cannot be sent).

    Every packet must come from an interface of one link type (they are sent
    out of one memif interface). Blocks other than SHB, IDB, EPB, SPB and PB
    are skipped, up to :data:`SPARE_BLOCKS` more blocks than ``max_packets``.
    """
    max_blocks = None if max_packets is None else max_packets + SPARE_BLOCKS
    order = "<"
    linktypes: list[tuple[int, int]] = []  # (linktype, snaplen) per IDB of the section
    used: set[int] = set()
    packets: list[bytes] = []
    offset = 0
    end = len(data)
    number = 0
    while offset < end:
        if max_blocks is not None and number >= max_blocks:
            raise InvalidArgumentError("", f"more than {max_blocks} blocks in one request")
        where = f"block {number} at byte {offset}"
        if end - offset < 12:
            raise MalformedError(
                f"{where}: truncated ({end - offset} bytes, a block has 12 or more)"
            )
        if data[offset : offset + 4] == _U32.pack(MAGIC):
            order = _section_order(data, offset, where)
            linktypes = []
        elif number == 0:
            raise MalformedError(
                f"not a pcapng file: it starts with 0x{data[:4].hex()}, "
                "not a section header block (0a0d0d0a)"
            )
        block_type, total = struct.unpack_from(order + "II", data, offset)
        if total < 12 or total % 4 or total > end - offset:
            raise MalformedError(
                f"{where}: length {total} is not a multiple of 4 between 12 and "
                f"the {end - offset} bytes left"
            )
        body = data[offset + 8 : offset + total - 4]
        if block_type == BLOCK_IDB:
            if len(body) < 8:
                raise MalformedError(f"{where}: interface description of {len(body)} bytes body")
            linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
            linktypes.append((linktype, snaplen))
        elif block_type in (BLOCK_EPB, BLOCK_SPB, BLOCK_PB):
            interface, packet = _packet(block_type, body, order, linktypes, where)
            _check_packet(packet, len(packets), allow_truncated)
            used.add(linktypes[interface][0])
            packets.append(packet[2])
            if max_packets is not None and len(packets) > max_packets:
                raise InvalidArgumentError("", f"more than {max_packets} packets in one request")
        offset += total
        number += 1
    if len(used) > 1:
        raise InvalidArgumentError(
            "",
            f"packets of link types {', '.join(map(str, sorted(used)))} in one file; "
            "send the packets of one link type",
        )
    linktype = used.pop() if used else (linktypes[0][0] if linktypes else 0)
    snaplen = max((s for _, s in linktypes), default=0)
    return PcapFile(linktype=linktype, snaplen=snaplen, packets=packets)


def _section_order(data: bytes, offset: int, where: str) -> str:
    if len(data) - offset < 16:
        raise MalformedError(f"{where}: section header truncated")
    bom = data[offset + 8 : offset + 12]
    if bom == struct.pack("<I", BYTE_ORDER_MAGIC):
        order = "<"
    elif bom == struct.pack(">I", BYTE_ORDER_MAGIC):
        order = ">"
    else:
        raise MalformedError(f"{where}: byte-order magic 0x{bom.hex()} is not 1a2b3c4d either way")
    (major,) = struct.unpack_from(order + "H", data, offset + 12)
    if major != VERSION[0]:
        raise MalformedError(f"{where}: pcapng version {major} is not supported (expected 1)")
    return order


def _packet(
    block_type: int, body: bytes, order: str, linktypes: list[tuple[int, int]], where: str
) -> tuple[int, tuple[int, int, bytes]]:
    """``(interface id, (captured length, original length, data))`` of a packet block."""
    if block_type == BLOCK_SPB:
        interface = 0
        if len(body) < 4:
            raise MalformedError(f"{where}: simple packet block of {len(body)} bytes body")
        (orig_len,) = struct.unpack_from(order + "I", body)
        if not linktypes:
            raise MalformedError(f"{where}: packet before any interface description block")
        snaplen = linktypes[0][1] or orig_len
        caplen = min(orig_len, snaplen, len(body) - 4)
        start = 4
    else:
        if len(body) < 20:
            raise MalformedError(f"{where}: packet block of {len(body)} bytes body")
        if block_type == BLOCK_EPB:
            interface, _hi, _lo, caplen, orig_len = struct.unpack_from(order + "IIIII", body)
        else:
            interface, _drops, _hi, _lo, caplen, orig_len = struct.unpack_from(
                order + "HHIIII", body
            )
        start = 20
        if interface >= len(linktypes):
            raise MalformedError(
                f"{where}: interface {interface} has no description block "
                f"({len(linktypes)} described)"
            )
    if caplen > len(body) - start:
        raise MalformedError(
            f"{where}: captured length {caplen} exceeds the {len(body) - start} bytes of the block"
        )
    return interface, (caplen, orig_len, body[start : start + caplen])


def _check_packet(packet: tuple[int, int, bytes], number: int, allow_truncated: bool) -> None:
    caplen, orig_len, _data = packet
    if caplen == 0 or caplen > MAX_PACKET_SIZE:
        raise InvalidArgumentError(
            "", f"packet {number}: captured length {caplen} outside 1..{MAX_PACKET_SIZE}"
        )
    if orig_len > caplen and not allow_truncated:
        raise InvalidArgumentError(
            "",
            f"packet {number}: was cut to {caplen} of {orig_len} bytes when captured; "
            "only whole packets can be sent",
        )
