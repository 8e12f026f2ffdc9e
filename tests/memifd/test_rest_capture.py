"""REST captures as pcapng, read back by tshark: one interface block per memif interface,
direction and nanosecond time of every packet, drops of a slow reader in the file.

Real uvicorn on an ephemeral port, a real httpx client and Python memif peers.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import memif
import pytest
from memifd.core import pcap, pcapng
from memifd.core.settings import Settings

from tests.memifd.rest_support import RestServer, frame, memif_clients, receive, wait_for
from tests.memifd.test_pcapng import IP_PACKET, blocks, isb_counts, tshark_fields

FIELDS = [
    "frame.interface_name",
    "frame.packet_flags_direction",
    "frame.time_epoch",
    "frame.drop_count",
    "frame.comment",
    "frame.interface_queue",
]


@pytest.fixture
def rest(sock_dir: Path) -> Iterator[RestServer]:
    with RestServer(Settings(socket_dir=sock_dir)) as server:
        yield server


@pytest.fixture
def api(rest: RestServer) -> httpx.Client:
    return rest.client


def create(api: httpx.Client, name: str, **fields: Any) -> None:
    body = {"name": name, "socket": "c.sock", **fields}
    response = api.post("/v1/interfaces", json=body)
    assert response.status_code == 201, response.text


def nanoseconds(epoch: str) -> int:
    seconds, _, fraction = epoch.partition(".")
    assert len(fraction) == 9, epoch
    return int(seconds) * 1_000_000_000 + int(fraction)


def closing_statistics(data: bytes) -> dict[str, dict[int, int]]:
    """Counters of the closing ISB of each interface, by interface name."""
    names: list[str] = []
    closing: dict[str, dict[int, int]] = {}
    for kind, body in blocks(data):
        if kind == pcapng.BLOCK_IDB:
            length = struct.unpack_from("<H", body, 10)[0]  # if_name is the first option
            names.append(body[12 : 12 + length].decode())
        elif kind == pcapng.BLOCK_ISB:
            closing[names[struct.unpack_from("<I", body)[0]]] = isb_counts(body)
    return closing


def test_pcapng_capture_of_an_echo_interface(
    api: httpx.Client, sock_dir: Path, tmp_path: Path
) -> None:
    create(api, "a", action="echo")
    with memif_clients(str(sock_dir / "c.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        sent = [frame(i, 80) for i in range(30)]
        url = "/v1/interfaces/a/capture?count=60&format=pcapng"
        with api.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == pcapng.MEDIA_TYPE
            assert response.headers["content-disposition"] == 'attachment; filename="a.pcapng"'
            assert response.headers["vary"] == "Accept"
            for packet in sent:  # one at a time: each echo follows its packet
                assert client.tx_queue(0).send(packet)
                assert receive(client, 1) == [packet]
            body = response.read()
    path = tmp_path / "a.pcapng"
    path.write_bytes(body)
    rows = tshark_fields(path, FIELDS)
    assert len(rows) == 60
    assert {row[0] for row in rows} == {"a"}
    assert [int(row[1], 16) for row in rows] == [1, 2] * 30  # inbound, then its echo outbound
    stamps = [nanoseconds(row[2]) for row in rows]
    assert all(a < b for a, b in itertools.pairwise(stamps))  # distinct, increasing
    assert abs(stamps[0] - time.time_ns()) < 60 * 1_000_000_000
    assert {row[3] for row in rows} == {""} and {row[5] for row in rows} == {"0"}
    assert pcapng.read(body).packets == [p for p in sent for _ in (0, 1)]
    stats = closing_statistics(body)
    assert stats == {"a": {pcapng.ISB_IFDROP: 0, pcapng.ISB_USRDELIV: 60}}
    assert b"capture ended: count reached" in body


@pytest.mark.parametrize(
    ("query", "accept", "media_type"),
    [
        ("", None, pcap.MEDIA_TYPE),
        ("", "*/*", pcap.MEDIA_TYPE),
        ("", "application/x-pcapng", pcapng.MEDIA_TYPE),
        ("", "application/vnd.tcpdump.pcap, application/x-pcapng;q=0.5", pcap.MEDIA_TYPE),
        ("&format=pcap", "application/x-pcapng", pcap.MEDIA_TYPE),
        ("&format=pcapng", "application/vnd.tcpdump.pcap", pcapng.MEDIA_TYPE),
    ],
)
def test_format_from_query_or_accept(
    api: httpx.Client, query: str, accept: str | None, media_type: str
) -> None:
    create(api, "a")
    headers = {"Accept": accept} if accept else {}
    response = api.get(f"/v1/interfaces/a/capture?duration=0.1{query}", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    if media_type == pcapng.MEDIA_TYPE:
        assert pcapng.read(response.content).packets == []
        assert b"capture ended: duration reached" in response.content
    else:
        assert response.content[:4] == struct.pack("<I", pcap.MAGIC_NANO)
        assert pcap.read(response.content).packets == []


def test_capture_of_several_interfaces(api: httpx.Client, sock_dir: Path, tmp_path: Path) -> None:
    create(api, "eth0", id=0, action="drop")
    create(api, "ip0", id=1, mode="ip", action="drop")
    create(api, "quiet", id=2, action="drop")
    with (
        memif_clients(str(sock_dir / "c.sock"), [0]) as (eth,),
        memif_clients(str(sock_dir / "c.sock"), [1], mode="ip") as (ip,),
        memif_clients(str(sock_dir / "c.sock"), [2]) as (quiet,),
    ):
        assert eth.wait_connected(5) and ip.wait_connected(5) and quiet.wait_connected(5)
        url = "/v1/capture?interface=ip0&interface=eth0&interface=ip0&count=6"
        with api.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == pcapng.MEDIA_TYPE
            assert response.headers["content-disposition"] == 'attachment; filename="memifd.pcapng"'
            assert quiet.tx_queue(0).send_burst([frame(100)] * 3) == 3
            assert eth.tx_queue(0).send_burst([frame(i) for i in range(3)]) == 3
            assert wait_for(
                lambda: api.get("/v1/interfaces/eth0/stats").json()["rx"]["packets"] == 3
            )
            assert ip.tx_queue(0).send_burst([IP_PACKET] * 3) == 3
            body = response.read()
    path = tmp_path / "several.pcapng"
    path.write_bytes(body)
    assert [row[0] for row in tshark_fields(path, ["frame.interface_name"])] == ["eth0"] * 3 + [
        "ip0"
    ] * 3
    decoded = tshark_fields(path, ["frame.protocols"])
    assert [row[0] for row in decoded] == ["eth:ethertype:ip"] * 3 + ["raw:ip"] * 3
    assert set(closing_statistics(body)) == {"ip0", "eth0"}  # one interface block each
    assert b"memifd capture of interfaces eth0, ip0; direction both; count 6" in body


def test_capture_of_every_interface_takes_new_ones(api: httpx.Client, sock_dir: Path) -> None:
    create(api, "old", id=0, action="drop")
    with api.stream("GET", "/v1/capture?count=2&direction=rx") as response:
        create(api, "new", id=1, action="drop")
        with memif_clients(str(sock_dir / "c.sock"), [0, 1]) as (old, new):
            assert old.wait_connected(5) and new.wait_connected(5)
            assert new.tx_queue(0).send(frame(1))
            assert wait_for(lambda: api.get("/v1/interfaces/new/stats").json()["rx"]["packets"])
            assert old.tx_queue(0).send(frame(2))
            body = response.read()
    parsed = [(kind, body) for kind, body in blocks(body)]
    idbs = [b for kind, b in parsed if kind == pcapng.BLOCK_IDB]
    assert len(idbs) == 2  # "old" from the start, "new" before its first packet
    assert pcapng.read(body).packets == [frame(1), frame(2)]
    assert set(closing_statistics(body)) == {"old", "new"}


def test_capture_errors(api: httpx.Client) -> None:
    create(api, "a")
    missing = api.get("/v1/capture?interface=a&interface=zz&count=1")
    assert missing.status_code == 404 and "'zz'" in missing.json()["detail"]
    too_many = api.get("/v1/capture?" + "&".join(["interface=a"] * 257))
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["loc"] == ["query", "interface"]
    bad_format = api.get("/v1/interfaces/a/capture?format=pcap-ng")
    assert bad_format.status_code == 422
    assert bad_format.json()["errors"][0]["loc"] == ["query", "format"]
    assert api.get("/v1/capture?interface=a&count=0").status_code == 422


def test_slow_reader_learns_where_packets_were_dropped(
    api: httpx.Client, sock_dir: Path, tmp_path: Path
) -> None:
    """The reader stalls while 200,000 packets pass: the file says how many were lost
    and exactly where (each frame carries its sequence number)."""
    total = 200_000
    create(api, "a", action="drop")
    with memif_clients(str(sock_dir / "c.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        with api.stream("GET", f"/v1/interfaces/a/capture?count={total}&format=pcapng") as resp:
            sender = threading.Thread(target=send_numbered, args=(client, total))
            sender.start()
            sender.join(timeout=120)
            assert not sender.is_alive()
            body = resp.read()
    stats = api.get("/v1/interfaces/a/stats").json()
    assert stats["rx"]["packets"] == total
    dropped = stats["subscriber_drops"]
    assert dropped > 0, "the stalled reader lost nothing: the test proves nothing"
    path = tmp_path / "slow.pcapng"
    path.write_bytes(body)
    rows = tshark_fields(path, ["frame.drop_count", "frame.comment"])
    packets = pcapng.read(body).packets
    assert len(rows) == len(packets) == total - dropped
    seqs = [int.from_bytes(p[14:18], "big") for p in packets]
    previous = -1
    reported = 0
    for seq, (drop_count, comment) in zip(seqs, rows, strict=True):
        gap = seq - previous - 1
        assert gap == int(drop_count or 0), (seq, previous, drop_count)
        if gap:
            assert (
                comment == f"{gap} packets of a dropped before this one: "
                "the capture reader was too slow"
            )
        reported += gap
        previous = seq
    assert reported + (total - 1 - previous) == dropped  # the rest were lost after the last
    closing = closing_statistics(body)["a"]
    assert closing == {pcapng.ISB_IFDROP: dropped, pcapng.ISB_USRDELIV: total - dropped}


def send_numbered(client: memif.Interface, total: int) -> None:
    """Send frames 0..total-1 in order, each once, retrying when the ring is full."""
    txq = client.tx_queue(0)
    seq = 0
    while seq < total:
        burst = [frame(i) for i in range(seq, min(seq + 256, total))]
        seq += txq.send_burst(burst)
