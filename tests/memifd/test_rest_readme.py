"""The curl examples of the README's "REST API" section, run against `memifd serve`.

The commands here are the README's, character for character; only the address
(and the token file's path) are replaced by the test daemon's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from memifd.core import pcap

from tests.memifd.rest_support import Daemon, frame, memif_clients, receive, wait_for
from tests.readme import block_after

ADDRESS = "127.0.0.1:8080"

CREATE = """curl -s -X POST http://127.0.0.1:8080/v1/interfaces \\
  -H 'Content-Type: application/json' \\
  -d '{"name": "vnf0", "socket": "vnf0.sock", "action": "echo"}'"""
LIST = "curl -s http://127.0.0.1:8080/v1/interfaces"
STATS = "curl -s http://127.0.0.1:8080/v1/interfaces/vnf0/stats"
DRY_RUN = """curl -s -X POST 'http://127.0.0.1:8080/v1/interfaces?dry_run=true' \\
  -H 'Content-Type: application/json' \\
  -d '{"name": "vnf1", "memory": {"log2_ring_size": 15}}'"""
EVENTS = "curl -sN http://127.0.0.1:8080/v1/events"
CAPTURE = (
    "curl -s -o vnf0.pcap 'http://127.0.0.1:8080/v1/interfaces/vnf0/capture?count=100&duration=30'"
)
TSHARK = "tshark -r vnf0.pcap"
INJECT = """curl -s -X POST http://127.0.0.1:8080/v1/interfaces/vnf0/packets \\
  -H 'Content-Type: application/vnd.tcpdump.pcap' --data-binary @vnf0.pcap"""
PATCH = """curl -s -X PATCH http://127.0.0.1:8080/v1/interfaces/vnf0 \\
  -H 'Content-Type: application/json' -d '{"action": "drop"}'"""
METRICS = "curl -s http://127.0.0.1:8080/metrics | grep 'memifd_interface_packets_total{'"
DELETE = (
    "curl -s -o /dev/null -w '%{http_code}\\n' -X DELETE http://127.0.0.1:8080/v1/interfaces/vnf0"
)
WITH_TOKEN = """curl -s -H "Authorization: Bearer $(cat /etc/memifd/token)" \\
  http://127.0.0.1:8080/v1/interfaces"""


def sh(command: str, cwd: Path, daemon: Daemon, **replace: str) -> str:
    command = command.replace(ADDRESS, f"127.0.0.1:{daemon.http_port}")
    for old, new in replace.items():
        command = command.replace(old, new)
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def background(command: str, cwd: Path, daemon: Daemon) -> subprocess.Popen[str]:
    command = command.replace(ADDRESS, f"127.0.0.1:{daemon.http_port}")
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=cwd, stdout=subprocess.PIPE, text=True
    )


def open_streams(daemon: Daemon, kind: str) -> int:
    """Streams of ``kind`` (events, capture) memifd has open, from its metrics."""
    with daemon.client() as api:
        text = api.get("/metrics").text
    gauge = f'memifd_subscriptions{{kind="{kind}"}} '
    return sum(
        int(float(line[len(gauge) :])) for line in text.splitlines() if line.startswith(gauge)
    )


def test_readme_examples(sock_dir: Path, tmp_path: Path) -> None:
    daemon = Daemon(sock_dir).start()
    try:
        created = json.loads(sh(CREATE, tmp_path, daemon))
        assert created["name"] == "vnf0" and created["socket_path"] == str(sock_dir / "vnf0.sock")
        events = background(EVENTS, tmp_path, daemon)
        assert wait_for(lambda: open_streams(daemon, "events") == 1)
        with memif_clients(str(sock_dir / "vnf0.sock"), [0]) as (client,):
            assert client.wait_connected(5)
            assert wait_for(
                lambda: json.loads(sh(LIST, tmp_path, daemon))[0]["state"] == "connected"
            )
            capture = background(CAPTURE, tmp_path, daemon)
            assert wait_for(lambda: open_streams(daemon, "capture") == 1)
            client.tx_queue(0).send_burst([frame(i) for i in range(60)])  # echoed: 120 seen
            assert len(receive(client, 60)) == 60
            assert capture.wait(timeout=10) == 0
            assert len(pcap.read((tmp_path / "vnf0.pcap").read_bytes()).packets) == 100
            assert len(sh(TSHARK, tmp_path, daemon).splitlines()) == 100
            injected = json.loads(sh(INJECT, tmp_path, daemon))
            assert injected == {"accepted": 100, "ring_full": 0}
            assert len(receive(client, 100)) == 100
            assert json.loads(sh(PATCH, tmp_path, daemon))["action"] == "drop"
            stats = json.loads(sh(STATS, tmp_path, daemon))
            assert stats["rx"]["packets"] == 60 and stats["injected"] == 100
            invalid = json.loads(sh(DRY_RUN, tmp_path, daemon))
            assert invalid["errors"][0]["loc"] == ["body", "memory", "log2_ring_size"]
            assert invalid == json.loads(block_after("Every error has one shape", "json"))
            metrics = sh(METRICS, tmp_path, daemon)
            rx = 'memifd_interface_packets_total{direction="rx",interface="vnf0"} 60.0'
            assert rx in metrics
            assert sh(DELETE, tmp_path, daemon).strip() == "204"
        assert daemon.terminate()[0] == 0
        out, _ = events.communicate(timeout=10)
        states = [
            json.loads(line[6:])["state"] for line in out.splitlines() if line.startswith("data: {")
        ]
        assert [s for s in states if s != "connecting"] == ["connected", "deleted"]
    finally:
        daemon.kill()


def test_readme_token_example(sock_dir: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("readme-token\n")
    daemon = Daemon(sock_dir, args=["--token-file", str(token)]).start()
    try:
        refused = json.loads(sh(LIST, tmp_path, daemon))
        assert refused["detail"].startswith("missing or invalid bearer")
        listed = sh(WITH_TOKEN, tmp_path, daemon, **{"/etc/memifd/token": str(token)})
        assert json.loads(listed) == []
    finally:
        daemon.kill()


def test_commands_are_the_readmes() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### REST API", 1)[1].split("\n### ", 1)[0]
    for command in (
        CREATE,
        LIST,
        STATS,
        DRY_RUN,
        EVENTS,
        CAPTURE,
        TSHARK,
        INJECT,
        PATCH,
        METRICS,
        DELETE,
        WITH_TOKEN,
    ):
        assert command in section, f"README's REST API section lacks:\n{command}"
