"""The stall case: how long an echo interface stops while big interfaces come and go.

dpdk-testpmd forwards (``io``) between two memif ports: port 0 is the client of
memifd's echo interface, port 1 the server a probe process connects to. The
probe sends one stamped packet every 500 µs and records the longest gap
between echoes. That is measured twice: with memifd otherwise idle, then while
a REST client creates a server and a client interface of 255 queue pairs ×
2^14 descriptors on one socket, waits until they are connected to each other
and deletes them, over and over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.service import Memifd
from tests.testpmd import TestPmd

ROOT = Path(__file__).resolve().parent.parent
BIG = {"num_queue_pairs": 255, "log2_ring_size": 14, "packet_buffer_size": 512}
CONNECT_TIMEOUT = 120.0


@dataclass
class ChurnCycle:
    """One create, connect, delete round and how long its steps took (seconds)."""

    create: float
    connect: float
    delete: float


def _request(daemon: Memifd, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{daemon.http}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def churn_once(daemon: Memifd) -> ChurnCycle:
    """Create a big server and a big client on one socket, wait for the link, delete both."""
    start = time.monotonic()
    for role in ("server", "client"):
        spec = {
            "name": f"big-{role}",
            "socket": "big.sock",
            "role": role,
            "id": 0,
            "action": "drop",
            "memory": BIG,
        }
        status, body = _request(daemon, "POST", "/v1/interfaces", spec)
        if status != 201:
            raise RuntimeError(f"create big-{role}: {status} {body}")
    created = time.monotonic()
    deadline = created + CONNECT_TIMEOUT
    while True:
        status, body = _request(daemon, "GET", "/v1/interfaces/big-client")
        if status == 200 and body["state"] == "connected":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"big-client did not connect: {body}")
        time.sleep(0.05)
    connected = time.monotonic()
    for role in ("client", "server"):
        status, body = _request(daemon, "DELETE", f"/v1/interfaces/big-{role}")
        if status != 204:
            raise RuntimeError(f"delete big-{role}: {status} {body}")
    return ChurnCycle(created - start, connected - created, time.monotonic() - connected)


def _probe(socket: str, core: int, interval_us: int) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "bench.worker",
        "probe",
        "--socket",
        socket,
        "--role",
        "client",
        "--rx-mode",
        "interrupt",
        "--seconds",
        "86400",
        "--core",
        str(core),
        "--interval-us",
        str(interval_us),
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _window(probe: subprocess.Popen[str]) -> dict[str, float]:
    assert probe.stdout is not None
    probe.send_signal(signal.SIGUSR1)
    line = probe.stdout.readline()
    if not line:
        raise RuntimeError("the probe exited")
    return dict(json.loads(line))


def measure(
    workdir: Path, seconds: float, py_core: int, pmd_core: int, interval_us: int = 500
) -> dict[str, Any]:
    """Quiet window, then churn for at least ``seconds`` (and one whole cycle)."""
    spec = {"name": "echo0", "socket": "echo.sock", "role": "server", "action": "echo"}
    # Each big interface counts 4.4 GB against max_shared_memory (mostly untouched buffers).
    with Memifd(workdir, [spec], py_core, max_shared_memory="16GiB") as daemon:
        probe_sock = str(workdir / "probe.sock")
        pmd = TestPmd(
            socket=str(daemon.socket_dir / "echo.sock"),
            role="client",
            forward_mode="io",
            cores="0,1",
            main_lcore=1 - pmd_core,
            extra_ports=(f"net_memif1,role=server,socket={probe_sock},id=0,socket-abstract=no",),
        )
        with pmd:
            pmd.wait_listening()
            deadline = time.monotonic() + 15
            while not os.path.exists(probe_sock):
                if time.monotonic() > deadline:
                    raise TimeoutError(probe_sock)
                time.sleep(0.05)
            probe = _probe(probe_sock, py_core, interval_us)
            try:
                assert probe.stdout is not None
                if probe.stdout.readline().strip() != "ready":
                    raise RuntimeError("the probe got no echo:\n" + daemon.log())
                time.sleep(seconds)
                quiet = _window(probe)
                cycles: list[ChurnCycle] = []
                end = time.monotonic() + seconds
                while not cycles or time.monotonic() < end:
                    cycles.append(churn_once(daemon))
                time.sleep(0.5)
                churn = _window(probe)
            finally:
                probe.kill()
                probe.wait()
    return {
        "quiet": quiet,
        "churn": churn,
        "cycles": len(cycles),
        "slowest_create_s": max(c.create for c in cycles),
        "slowest_connect_s": max(c.connect for c in cycles),
        "slowest_delete_s": max(c.delete for c in cycles),
    }
