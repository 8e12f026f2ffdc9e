"""The pcapng writer and reader, checked with tshark, capinfos and editcap; the choice of
format from an Accept header; drops counted per interface at the right place."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from memifd.core import pcap, pcapng
from memifd.core.capture import CaptureSubscription
from memifd.core.capture_format import CaptureFormat, negotiate
from memifd.core.errors import InvalidArgumentError, MalformedError
from memifd.core.models import CapturedPacket

from tests.memifd.rest_support import frame

T0 = 1_700_000_000_123_456_789
IP_PACKET = bytes.fromhex("450000140000000040000000c0a80001c0a80002")
FIELDS = [
    "frame.interface_name",
    "frame.interface_description",
    "frame.packet_flags_direction",
    "frame.interface_queue",
    "frame.time_epoch",
    "frame.drop_count",
    "frame.comment",
    "frame.len",
    "frame.cap_len",
]


def tshark_fields(path: Path, fields: list[str] = FIELDS) -> list[list[str]]:
    """One row per packet, as tshark decodes the file."""
    assert shutil.which("tshark"), "tshark is not installed (Debian package tshark)"
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=f"]
    for name in fields:
        args += ["-e", name]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    return [line.split("\t") for line in done.stdout.splitlines()]


def blocks(data: bytes) -> list[tuple[int, bytes]]:
    """``(type, body)`` of every block of a little-endian pcapng file."""
    found = []
    offset = 0
    while offset < len(data):
        kind, total = struct.unpack_from("<II", data, offset)
        assert (
            total % 4 == 0
            and data[offset + total - 4 : offset + total] == data[offset + 4 : offset + 8]
        )
        found.append((kind, data[offset + 8 : offset + total - 4]))
        offset += total
    return found


def isb_counts(body: bytes) -> dict[int, int]:
    """Option code to value of the 64-bit counters of an ISB body."""
    counts = {}
    offset = 12
    while offset < len(body):
        code, length = struct.unpack_from("<HH", body, offset)
        if code == 0:
            break
        if length == 8 and code >= 4:
            counts[code] = struct.unpack_from("<Q", body, offset + 4)[0]
        offset += 4 + length + (-length & 3)
    return counts


def sample(tmp_path: Path) -> tuple[Path, bytes]:
    writer = pcapng.StreamWriter(
        65535, "memifd test", lambda name: pcap.LINKTYPE_RAW, started_ns=T0 - 1000
    )
    data = writer.header(
        [
            ("vnf0", pcap.LINKTYPE_ETHERNET, "memif vnf0: server id 0"),
            ("vnf1", pcap.LINKTYPE_ETHERNET, ""),
        ],
        comment="memifd capture of every interface",
    )
    data += writer.packets(
        [
            ("vnf0", 0, "rx", T0, 64, frame(1)),
            ("vnf0", 1, "tx", T0 + 37, 64, frame(2)),
        ]
    )
    data += writer.drops({"vnf1": 5})
    data += writer.packets(
        [
            ("vnf1", 0, "rx", T0 + 200, 100, frame(3, 100)[:50]),
            ("ip0", 2, "tx", T0 + 300, 20, IP_PACKET),  # first seen here: gets its IDB now
            ("vnf1", 0, "rx", T0 + 400, 64, frame(4)),
        ]
    )
    data += writer.statistics(T0 + 1000, comment="capture ended: count reached")
    path = tmp_path / "sample.pcapng"
    path.write_bytes(data)
    return path, data


def test_tshark_reads_interfaces_directions_queues_and_nanoseconds(tmp_path: Path) -> None:
    path, _ = sample(tmp_path)
    rows = tshark_fields(path)
    assert [row[0] for row in rows] == ["vnf0", "vnf0", "vnf1", "ip0", "vnf1"]
    assert rows[0][1] == "memif vnf0: server id 0"
    assert [int(row[2], 16) for row in rows] == [1, 2, 1, 2, 1]  # inbound 01, outbound 10
    assert [row[3] for row in rows] == ["0", "1", "0", "2", "0"]
    assert [row[4] for row in rows] == [
        "1700000000.123456789",
        "1700000000.123456826",
        "1700000000.123456989",
        "1700000000.123457089",
        "1700000000.123457189",
    ]
    assert rows[2][5] == "5"  # epb_dropcount on the first vnf1 packet after the drops
    assert (
        rows[2][6] == "5 packets of vnf1 dropped before this one: the capture reader was too slow"
    )
    assert [row[5] for row in rows[3:]] == ["", ""]
    assert (rows[2][7], rows[2][8]) == ("100", "50")  # cut by the snaplen
    decoded = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "ip", "-T", "fields", "-e", "ip.dst"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert decoded == ["192.168.0.2"]  # the raw IP interface is decoded as IP


def test_capinfos_sees_section_comment_interfaces_and_statistics(tmp_path: Path) -> None:
    path, data = sample(tmp_path)
    info = subprocess.run(
        ["capinfos", "-I", "-k", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "Capture comment:     memifd capture of every interface" in info
    assert "Number of interfaces in file: 3" in info
    assert info.count("Time precision = nanoseconds (9)") == 3
    assert "Encapsulation = Raw IP" in info
    # one closing ISB per interface: Wireshark shows its drops only when there is one
    assert [line.strip() for line in info.splitlines() if "stat entries" in line] == [
        "Number of stat entries = 1"
    ] * 3
    isbs = [body for kind, body in blocks(data) if kind == pcapng.BLOCK_ISB]
    closing = {struct.unpack_from("<I", body)[0]: isb_counts(body) for body in isbs}
    assert closing == {
        0: {pcapng.ISB_IFDROP: 0, pcapng.ISB_USRDELIV: 2},
        1: {pcapng.ISB_IFDROP: 5, pcapng.ISB_USRDELIV: 2},
        2: {pcapng.ISB_IFDROP: 0, pcapng.ISB_USRDELIV: 1},
    }


def test_reader_round_trip_and_tshark_written_files(tmp_path: Path) -> None:
    _, data = sample(tmp_path)
    with pytest.raises(InvalidArgumentError, match="link types 1, 101 in one file"):
        pcapng.read(data, allow_truncated=True)
    eth_only = pcap.write([frame(i, 60 + i) for i in range(5)])
    (tmp_path / "in.pcap").write_bytes(eth_only)
    subprocess.run(
        ["editcap", "-F", "pcapng", str(tmp_path / "in.pcap"), str(tmp_path / "out.pcapng")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    converted = (tmp_path / "out.pcapng").read_bytes()
    assert pcapng.is_pcapng(converted) and not pcapng.is_pcapng(eth_only)
    parsed = pcapng.read(converted)
    assert parsed.linktype == pcap.LINKTYPE_ETHERNET
    assert parsed.packets == [frame(i, 60 + i) for i in range(5)]
    with pytest.raises(InvalidArgumentError, match="more than 3 packets"):
        pcapng.read(converted, max_packets=3)
    # blocks that are not packets cannot make the parser spin: they are counted too
    filler = pcapng.interface_statistics(0, T0, dropped=0, delivered=0) * pcapng.SPARE_BLOCKS
    with pytest.raises(InvalidArgumentError, match=f"more than {pcapng.SPARE_BLOCKS + 5} blocks"):
        pcapng.read(converted + filler, max_packets=5)


def test_reader_big_endian_and_simple_packets() -> None:
    def block(kind: int, body: bytes) -> bytes:
        return struct.pack(">II", kind, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))

    shb = block(pcapng.MAGIC, struct.pack(">IHHq", pcapng.BYTE_ORDER_MAGIC, 1, 0, -1))
    idb = block(pcapng.BLOCK_IDB, struct.pack(">HHI", 101, 0, 0))
    spb = block(pcapng.BLOCK_SPB, struct.pack(">I", 20) + IP_PACKET)
    parsed = pcapng.read(shb + idb + spb)
    assert (parsed.linktype, parsed.packets) == (101, [IP_PACKET])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x0d\x0d\x0a" + bytes(20), r"block 0 at byte 0: byte-order magic 0x00000000"),
        (b"\x0a\x0d\x0d\x0a" + bytes(8), "block 0 at byte 0: section header truncated"),
        (b"\xd4\xc3\xb2\xa1" + bytes(20), "not a pcapng file: it starts with 0xd4c3b2a1"),
        (b"\x0a\x0d\x0d\x0a", "truncated"),
    ],
)
def test_reader_refuses_what_is_not_pcapng(data: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        pcapng.read(data)


def test_reader_names_the_broken_block() -> None:
    shb = pcapng.section_header("t")
    idb = pcapng.interface_description(pcap.LINKTYPE_ETHERNET, 65535, "a")
    good = pcapng.enhanced_packet(0, T0, 64, frame(1), pcapng.packet_options(False, 0))
    where = f"block 2 at byte {len(shb) + len(idb)}"
    with pytest.raises(MalformedError, match=f"{where}: length 70 is not a multiple of 4"):
        pcapng.read(shb + idb + good[:4] + struct.pack("<I", 70) + good[8:])
    with pytest.raises(MalformedError, match=r"block 1 at byte \d+: interface 0 has no desc"):
        pcapng.read(shb + good)
    with pytest.raises(InvalidArgumentError, match="was cut to 40 of 64 bytes"):
        pcapng.read(shb + idb + pcapng.enhanced_packet(0, T0, 64, frame(1)[:40], b""))
    cut = pcapng.read(
        shb + idb + pcapng.enhanced_packet(0, T0, 64, frame(1)[:40], b""), allow_truncated=True
    )
    assert cut.packets == [frame(1)[:40]]


# -- choosing a format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "default", "chosen"),
    [
        (None, CaptureFormat.PCAP, CaptureFormat.PCAP),
        ("*/*", CaptureFormat.PCAP, CaptureFormat.PCAP),  # curl, browsers: unchanged
        ("*/*", CaptureFormat.PCAPNG, CaptureFormat.PCAPNG),
        ("application/x-pcapng", CaptureFormat.PCAP, CaptureFormat.PCAPNG),
        ("application/x-pcapng, */*;q=0.5", CaptureFormat.PCAP, CaptureFormat.PCAPNG),
        ("application/x-pcapng, */*", CaptureFormat.PCAP, CaptureFormat.PCAPNG),  # named beats *
        ("application/vnd.tcpdump.pcap", CaptureFormat.PCAPNG, CaptureFormat.PCAP),
        (
            "application/vnd.tcpdump.pcap;q=0.9, application/pcapng",
            CaptureFormat.PCAP,
            CaptureFormat.PCAPNG,
        ),
        (
            "Application/X-PCAPNG;q=0.2, application/vnd.tcpdump.pcap;q=0.8",
            CaptureFormat.PCAP,
            CaptureFormat.PCAP,
        ),
        ("application/vnd.tcpdump.pcap;q=0, */*", CaptureFormat.PCAP, CaptureFormat.PCAPNG),
        ("application/json", CaptureFormat.PCAP, CaptureFormat.PCAP),
        ("application/x-pcapng;q=bogus", CaptureFormat.PCAP, CaptureFormat.PCAP),
    ],
)
def test_negotiate(accept: str | None, default: CaptureFormat, chosen: CaptureFormat) -> None:
    assert negotiate(accept, default) is chosen


# -- drops per interface ---------------------------------------------------------------------------


def packet(name: str, seq: int) -> CapturedPacket:
    return CapturedPacket(name, 0, "rx", T0 + seq, 64, frame(seq))


def test_drop_counts_match_the_batch_they_precede() -> None:
    sub = CaptureSubscription(4)
    sub.put_many([packet("a", 0), packet("b", 1)])
    assert sub.get_batch(10, 0) == [packet("a", 0), packet("b", 1)]
    assert sub.dropped_at_take == {} and sub.dropped_total() == 0
    # six more into a queue of four: the two oldest (a 2, b 3) are lost
    lost = sub.put_many(
        [
            packet("a", 2),
            packet("b", 3),
            packet("a", 4),
            packet("b", 5),
            packet("a", 6),
            packet("a", 7),
        ]
    )
    assert lost == [packet("a", 2), packet("b", 3)]
    assert [p.timestamp_ns - T0 for p in sub.get_batch(1, 0)] == [4]
    assert sub.dropped_at_take == {"a": 1, "b": 1} and sub.dropped_total() == 2
    # a batch larger than the queue loses its own head as well
    sub.put_many([packet("b", n) for n in range(8, 16)])
    batch = sub.get_batch(10, 0)
    assert [p.timestamp_ns - T0 for p in batch] == [12, 13, 14, 15]
    assert sub.dropped_at_take == {"a": 3, "b": 6} and sub.dropped == 9
    assert sub.get_batch(10, 0.01) == [] and sub.dropped_at_take == {"a": 3, "b": 6}
