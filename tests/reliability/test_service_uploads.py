"""Many pcap uploads of the largest size at once: their bodies share ``http_body_memory``.

Against ``memifd serve`` with the defaults (64 MiB per pcap body, 128 MiB of
bodies in flight), :data:`UPLOADS` clients post a 63.5 MB pcap to an inject
route at the same moment, twice over. Bodies that do not fit are answered 503
with ``Retry-After`` and a problem detail naming the setting, before they are
read; the others are injected; memifd's resident memory grows by less than
:data:`RSS_BOUND_MIB` (each body held is also parsed into packets).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
from memifd.core import pcap

from tests.memifd.rest_support import memif_clients
from tests.reliability.service_support import RssSampler, rss_mib, start_daemon, write_config

UPLOADS = 8
ROUNDS = 2
PACKETS = 65_536  # the most one pcap may hold
PACKET_BYTES = 1000  # 65,536 x (1000 + 16) bytes and the file header: 66,584,600 bytes
# Measured: about 260 MiB (the 128 MiB of bodies, their packets, the copies uvicorn and
# the pcap reader make). Without the budget all eight were read at once: 548 MiB, growing
# with every further upload (up to http_max_connections of them).
RSS_BOUND_MIB = 400


def pcap_file() -> bytes:
    frame = bytes.fromhex("02000000000a02000000000b0800").ljust(PACKET_BYTES, b"\xab")
    records = pcap.records((i * 1000, PACKET_BYTES, frame) for i in range(PACKETS))
    return pcap.global_header(pcap.LINKTYPE_ETHERNET, 65535) + records


def test_concurrent_maximal_uploads_share_the_body_budget(sock_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "memifd.yaml", [{"name": "inj", "socket": "inj.sock"}])
    daemon = start_daemon(sock_dir, config)
    assert daemon.proc is not None
    pid = daemon.proc.pid
    body = pcap_file()
    assert len(body) <= 64 << 20
    statuses: Counter[int] = Counter()
    refusals: list[httpx.Response] = []
    lock = threading.Lock()

    def upload(start: threading.Barrier) -> None:
        with httpx.Client(base_url=daemon.url, timeout=60) as client:
            start.wait()
            response = client.post(
                "/v1/interfaces/inj/packets",
                content=body,
                headers={"Content-Type": pcap.MEDIA_TYPE},
            )
        with lock:
            statuses[response.status_code] += 1
            if response.status_code != 200:
                refusals.append(response)

    try:
        with memif_clients(str(sock_dir / "inj.sock"), [0]) as (peer,):
            assert peer.wait_connected(5)
            before = rss_mib(pid)
            with RssSampler(pid) as rss:
                for _ in range(ROUNDS):
                    start = threading.Barrier(UPLOADS)
                    threads = [
                        threading.Thread(target=upload, args=(start,), daemon=True)
                        for _ in range(UPLOADS)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join(120)
        print(
            f"\n{UPLOADS} x {ROUNDS} uploads of {len(body)} bytes: {dict(statuses)}; "
            f"memifd RSS {before:.1f} -> peak {rss.peak:.1f} MiB"
        )
        assert statuses[200] >= ROUNDS and set(statuses) <= {200, 503}, statuses
        for response in refusals:
            assert response.headers["retry-after"] == "1"
            assert response.json()["detail"].startswith("http_body_memory: a request body of")
        assert rss.peak - before < RSS_BOUND_MIB
        assert daemon.terminate(timeout=10)[0] == 0
    finally:
        daemon.kill()
