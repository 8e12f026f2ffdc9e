"""REST end to end: `memifd serve` as a process, dpdk-testpmd and Python memif peers,
tshark reading what the capture endpoint streams."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from memifd.core import pcap

from tests.memifd.rest_support import Daemon, frame, memif_clients, wait_for
from tests.testpmd import TestPmd

RING = 12  # 4096 slots: room for testpmd's bursts while Python drains them
TOKEN = "e2e-secret-token-91b2"
PCAP = {"Content-Type": pcap.MEDIA_TYPE}


@pytest.fixture
def daemon(sock_dir: Path) -> Iterator[Daemon]:
    proc = Daemon(sock_dir, args=["--log-level", "warning"])
    yield proc.start()
    proc.kill()


@pytest.fixture
def api(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


def create(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/interfaces", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def connected(api: httpx.Client, name: str, timeout: float = 20) -> bool:
    return wait_for(
        lambda: api.get(f"/v1/interfaces/{name}").json()["state"] == "connected", timeout, 0.1
    )


def pmd_peer(
    api: httpx.Client,
    testpmd: Callable[..., TestPmd],
    sock_dir: Path,
    mode: str,
    action: str = "drop",
) -> TestPmd:
    create(api, "pmd", socket="pmd.sock", action=action, memory={"log2_ring_size": RING})
    pmd = testpmd(socket=str(sock_dir / "pmd.sock"), role="client", forward_mode=mode, rsize=RING)
    assert connected(api, "pmd"), pmd.log()
    return pmd


@pytest.mark.interop
def test_capture_from_testpmd_txonly_reads_back_in_tshark(
    api: httpx.Client, testpmd: Callable[..., TestPmd], sock_dir: Path, tmp_path: Path
) -> None:
    pmd_peer(api, testpmd, sock_dir, "txonly")
    response = api.get("/v1/interfaces/pmd/capture?count=10000&direction=rx", timeout=60)
    assert response.status_code == 200
    path = tmp_path / "pmd.pcap"
    path.write_bytes(response.content)
    assert shutil.which("tshark"), "tshark is not installed (Debian package tshark)"
    listing = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.len"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert len(listing) == 10000
    assert set(listing) == {"64"}  # testpmd's default txonly frame
    assert len(pcap.read(path.read_bytes()).packets) == 10000


def probe_until_posted(api: httpx.Client) -> None:
    """Inject one packet until it is taken: a client posts its rx buffers shortly
    after the link comes up, and until then a server has no room to send."""
    probe = pcap.write([frame(0)])
    assert wait_for(
        lambda: (
            api.post("/v1/interfaces/pmd/packets", content=probe, headers=PCAP).json()["accepted"]
            == 1
        ),
        timeout=5,
        interval=0.05,
    )


@pytest.mark.interop
def test_injected_pcap_reaches_testpmd_rxonly(
    api: httpx.Client, testpmd: Callable[..., TestPmd], sock_dir: Path
) -> None:
    pmd = pmd_peer(api, testpmd, sock_dir, "rxonly")
    probe_until_posted(api)
    packets = [frame(i, 64 + i % 200) for i in range(1000)]
    response = api.post(
        "/v1/interfaces/pmd/packets",
        content=pcap.write(packets),
        headers={"Content-Type": pcap.MEDIA_TYPE},
    )
    assert response.json() == {"accepted": 1000, "ring_full": 0}
    assert pmd.wait_rx(1001) == 1001
    assert api.get("/v1/interfaces/pmd/stats").json()["tx"]["packets"] == 1001


@pytest.mark.interop
def test_echo_against_testpmd_macswap(
    api: httpx.Client, testpmd: Callable[..., TestPmd], sock_dir: Path
) -> None:
    pmd_peer(api, testpmd, sock_dir, "macswap", action="echo")
    probe_until_posted(api)
    capture = api.build_request("GET", "/v1/interfaces/pmd/capture?count=50&direction=rx")
    with api.stream(capture.method, capture.url) as stream:
        sent = pcap.write([frame(i) for i in range(32)])
        assert (
            api.post("/v1/interfaces/pmd/packets", content=sent, headers=PCAP).json()["accepted"]
            == 32
        )
        returned = pcap.read(stream.read()).packets
    # testpmd swaps the MAC addresses of what memifd echoes to it: every other trip
    # brings the frames back in their original order
    original = frame(0)[:12]
    swapped = original[6:] + original[:6]
    assert {p[:12] for p in returned} == {original, swapped}
    assert {int.from_bytes(p[14:18], "big") for p in returned} <= set(range(32))
    assert wait_for(lambda: api.get("/v1/interfaces/pmd/stats").json()["rx"]["packets"] > 200)
    assert api.patch("/v1/interfaces/pmd", json={"action": "drop"}).status_code == 200

    def settled() -> bool:
        before = api.get("/v1/interfaces/pmd/stats").json()
        time.sleep(0.2)  # unchanged over this window: nothing is in flight any more
        return bool(api.get("/v1/interfaces/pmd/stats").json() == before)

    assert wait_for(settled, timeout=10)  # the ping-pong stopped
    stats = api.get("/v1/interfaces/pmd/stats").json()
    accounted = (
        stats["action_drops"] + stats["forwarded"] + stats["forward_drops"] + stats["exchanged"]
    )
    assert accounted == stats["rx"]["packets"]
    assert stats["tx"]["packets"] == stats["forwarded"] + 33


def test_64_interfaces_on_4_sockets(api: httpx.Client, sock_dir: Path) -> None:
    for i in range(64):
        create(api, f"if{i}", socket=f"s{i % 4}.sock", id=i // 4)
    assert sorted(p.name for p in sock_dir.iterdir()) == [f"s{k}.sock" for k in range(4)]
    with (
        memif_clients(str(sock_dir / "s0.sock"), list(range(16))) as c0,
        memif_clients(str(sock_dir / "s1.sock"), list(range(16))) as c1,
        memif_clients(str(sock_dir / "s2.sock"), list(range(16))) as c2,
        memif_clients(str(sock_dir / "s3.sock"), list(range(16))) as c3,
    ):
        clients = c0 + c1 + c2 + c3
        assert all(c.wait_connected(10) for c in clients)

        def all_connected() -> bool:
            listed = api.get("/v1/interfaces").json()
            return len(listed) == 64 and {i["state"] for i in listed} == {"connected"}

        assert wait_for(all_connected, timeout=10, interval=0.1)
        for i in range(64):
            assert api.delete(f"/v1/interfaces/if{i}").status_code == 204
        assert all(c.wait_disconnected(5) for c in clients)
    assert api.get("/v1/interfaces").json() == []
    assert list(sock_dir.iterdir()) == []


def test_token_is_required_and_enforced(sock_dir: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    daemon = Daemon(sock_dir, args=["--token-file", str(token_file)]).start()
    try:
        assert "bearer token required" in "\n".join(daemon.banner)
        with (
            daemon.client() as anonymous,
            daemon.client("wrong") as wrong,
            daemon.client(TOKEN) as authorized,
        ):
            assert anonymous.get("/v1/interfaces").status_code == 401
            assert wrong.post("/v1/interfaces", json={"name": "a"}).status_code == 401
            assert anonymous.get("/healthz").status_code == 200
            assert authorized.post("/v1/interfaces", json={"name": "a"}).status_code == 201
            assert authorized.get("/v1/interfaces").json()[0]["name"] == "a"
        assert daemon.terminate()[0] == 0
        assert TOKEN not in daemon.stop_output()
    finally:
        daemon.kill()


INVALID: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/v1/interfaces", {"name": "a", "memory": {"log2_ring_size": 20}}, 422, "14"),
    ("POST", "/v1/interfaces", {"name": "a", "memory": {"num_queue_pairs": 256}}, 422, "255"),
    ("POST", "/v1/interfaces", {"name": "", "socket": "x"}, 422, "at least 1"),
    ("POST", "/v1/interfaces", {"name": "a", "secret": "x" * 30}, 422, "24"),
    ("POST", "/v1/interfaces", {"name": "a", "role": "boss"}, 422, "role"),
    ("POST", "/v1/interfaces", {"name": "a", "xconnect_to": "a"}, 422, "itself"),
    (
        "POST",
        "/v1/interfaces",
        {"name": "b", "id": 7, "action": "xconnect", "xconnect_to": "q"},
        422,
        "does not exist",
    ),
    ("POST", "/v1/interfaces", {"name": "a", "extra": 1}, 422, "extra"),
    ("POST", "/v1/interfaces", "not an object", 422, "object"),
    ("POST", "/v1/interfaces", {"name": "dup"}, 409, "already exists"),
    ("POST", "/v1/interfaces", {"name": "dup2"}, 409, "id 0 already exists"),
    ("GET", "/v1/interfaces/nope", None, 404, "not found"),
    ("PATCH", "/v1/interfaces/nope", {"admin_up": False}, 404, "not found"),
    ("PATCH", "/v1/interfaces/dup", {"mode": "ip"}, 422, "extra"),
    ("PATCH", "/v1/interfaces/dup", {"action": "xconnect"}, 422, "xconnect_to"),
    ("DELETE", "/v1/interfaces/nope", None, 404, "not found"),
    ("GET", "/v1/interfaces/dup/capture?count=0", None, 422, "greater than or equal to 1"),
    ("GET", "/v1/interfaces/dup/capture?snaplen=65536", None, 422, "65535"),
    ("GET", "/v1/interfaces/dup/capture?duration=-1", None, 422, "greater than 0"),
    ("POST", "/v1/interfaces/dup/packets", b"", 400, "global header"),
    ("POST", "/v1/interfaces/dup/packets", b"GIF89a" + bytes(40), 400, "not a pcap file"),
    ("POST", "/v1/interfaces/dup/packets?queue=300", b"", 422, "254"),
    ("POST", "/v1/interfaces/dup/packets", pcap.write([frame(0)]), 409, "not connected"),
    ("GET", "/v1/nothing-here", None, 404, "Not Found"),
]


def test_invalid_requests_get_clear_errors(api: httpx.Client) -> None:
    create(api, "dup")
    for method, path, body, status, text in INVALID:
        if isinstance(body, bytes):
            response = api.request(method, path, content=body, headers=PCAP)
        else:
            response = api.request(method, path, json=body)
        assert (response.status_code, text in response.text) == (status, True), (
            method,
            path,
            body,
            response.text,
        )
