"""Cost as work grows: memifd's memory, idle CPU and create latency per interface and queue.

One ``memifd serve`` pinned to one core gets interfaces through ``POST
/v1/interfaces`` in steps (1, 16, 64, 256 in all); after each step a client
process connects to the new ones in interrupt mode and every link stays up
and idle while memifd's resident memory (over what it used before the first
interface) and CPU are read. A second memifd gets one interface with 1, 2, 4,
8 and 16 queue pairs in turn, and what each added is divided by its pairs.
A flat line per interface or per queue pair is the goal.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.service import ROOT, Memifd

SOCKETS = 4  # interfaces share this many socket files


@dataclass
class Point:
    """``count`` interfaces (or queue pairs) and what they cost memifd."""

    count: int
    rss_kib: float  # resident memory over memifd's own before them
    cpu_pct: float  # % of one core with every link up and idle
    create_ms: float  # median POST /v1/interfaces latency of the last step

    def per(self) -> tuple[float, float]:
        """Memory (KiB) and idle CPU (% of a core) per unit."""
        return self.rss_kib / self.count, self.cpu_pct / self.count


CLIENTS = """
import sys, memif
socket_dir = sys.argv[1]
socks = {}
for line in sys.stdin:
    first, count, pairs = (int(v) for v in line.split())
    added = []
    for i in range(first, first + count):
        path = f"{socket_dir}/g{i % SOCKETS}.sock"
        sock = socks.get(path)
        if sock is None:
            sock = socks[path] = memif.Socket(path)
            sock.start()
        added.append(sock.create_interface(
            id=i, role="client", name=f"c{i}", rx_mode="interrupt",
            memory=memif.MemoryConfig(num_queue_pairs=pairs)))
    ok = all(iface.wait_connected(60) for iface in added)
    print("connected" if ok else "failed", flush=True)
for s in socks.values():
    s.close()
""".replace("SOCKETS", str(SOCKETS))


class Grower:
    """A memifd and a client process, grown step by step."""

    def __init__(self, workdir: Path, core: int, client_core: int) -> None:
        # 256 default interfaces take 1 GiB of shared memory, memifd's default ceiling
        self.daemon = Memifd(workdir, [], core, max_shared_memory="4GiB")
        self.client_core = client_core
        self.created = 0
        self.clients: subprocess.Popen[str] | None = None

    def __enter__(self) -> Grower:
        self.daemon.__enter__()
        self.clients = subprocess.Popen(
            [sys.executable, "-c", CLIENTS, str(self.daemon.socket_dir)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {self.client_core}),
        )
        self._post({"name": "warm", "socket": "warm.sock"}, dry_run=True)  # first request
        time.sleep(0.5)
        self.base = self.rss_kib()
        return self

    def rss_kib(self) -> int:
        assert self.daemon.proc is not None
        for line in Path(f"/proc/{self.daemon.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def _post(self, spec: dict[str, object], dry_run: bool = False) -> float:
        query = "?dry_run=true" if dry_run else ""
        request = urllib.request.Request(
            f"http://{self.daemon.http}/v1/interfaces{query}",
            data=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()
        return (time.perf_counter() - start) * 1000

    def add(self, count: int, pairs: int) -> float:
        """Create and connect ``count`` more interfaces; the median create latency in ms."""
        first = self.created
        latencies = [
            self._post(
                {
                    "name": f"g{i}",
                    "socket": f"g{i % SOCKETS}.sock",
                    "id": i,
                    "role": "server",
                    "rx_mode": "interrupt",
                    "memory": {"num_queue_pairs": pairs},
                }
            )
            for i in range(first, first + count)
        ]
        self.created += count
        assert self.clients is not None and self.clients.stdin and self.clients.stdout
        self.clients.stdin.write(f"{first} {count} {pairs}\n")
        self.clients.stdin.flush()
        if self.clients.stdout.readline().strip() != "connected":
            raise RuntimeError(f"clients {first}..{first + count - 1} did not connect")
        return float(statistics.median(latencies))

    def idle_cpu_pct(self, seconds: float) -> float:
        time.sleep(0.5)
        before, start = self.daemon.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return (self.daemon.cpu_seconds() - before) / (time.monotonic() - start) * 100

    def __exit__(self, *exc: object) -> None:
        if self.clients is not None:
            if self.clients.stdin:
                self.clients.stdin.close()
            try:
                self.clients.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.clients.kill()
                self.clients.wait()
        self.daemon.__exit__(*exc)


def by_interfaces(
    workdir: Path, core: int, client_core: int, counts: list[int], idle: float
) -> list[Point]:
    """Grow to each of ``counts`` interfaces (one queue pair each) and measure."""
    points = []
    with Grower(workdir, core, client_core) as grower:
        for count in counts:
            create = grower.add(count - grower.created, 1)
            cpu = grower.idle_cpu_pct(idle)
            points.append(Point(count, float(grower.rss_kib() - grower.base), cpu, create))
    return points


def by_queue_pairs(
    workdir: Path, core: int, client_core: int, pairs: list[int], idle: float
) -> list[Point]:
    """Add one interface of each of ``pairs`` queue pairs; what each added, per pair."""
    points = []
    with Grower(workdir, core, client_core) as grower:
        cpu_before = grower.idle_cpu_pct(idle)
        for count in pairs:
            before = grower.rss_kib()
            create = grower.add(1, count)
            cpu = grower.idle_cpu_pct(idle)
            points.append(Point(count, float(grower.rss_kib() - before), cpu - cpu_before, create))
            cpu_before = cpu
    return points


def table(title: str, unit: str, points: list[Point]) -> list[str]:
    """Lines of a table: totals and the cost per unit."""
    lines = [
        f"  {title}",
        f"    {unit:>6} {'memory':>10} {'per ' + unit:>12} {'idle CPU':>9} "
        f"{'per ' + unit:>12} {'create':>9}",
    ]
    for p in points:
        mem, cpu = p.per()
        lines.append(
            f"    {p.count:>6} {p.rss_kib:>7,.0f} KiB {mem:>8,.1f} KiB "
            f"{p.cpu_pct:>7.2f} % {cpu:>10.3f} % {p.create_ms:>6.1f} ms"
        )
    return lines
