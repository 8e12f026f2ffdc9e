"""Soak: ``memifd serve`` with 64 echo interfaces carrying traffic for N minutes.

``python -m bench.soak_service [--minutes 10] [--interfaces 64] [--rate 200]``
starts memifd with the interfaces declared in its config file (16 per control
socket), connects a Python memif client to each and sends ``--rate`` packets
per second on every one, reading the echoes. Every ``--interval`` seconds it
samples memifd's resident memory (VmRSS), open fds and threads from ``/proc``
and prints a row; at the end a JSON line with the start, end and peak figures.
It exits 1 if fds or threads grew, a link went down, or echoes went missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import memif  # noqa: E402

from tests.memifd.rest_support import frame  # noqa: E402
from tests.reliability.service_support import (  # noqa: E402
    fd_count,
    rss_mib,
    rss_split_mib,
    start_daemon,
    thread_count,
    write_config,
)

PER_SOCKET = 16
TICK = 0.01  # seconds between send rounds
WARM_UP = 5.0  # seconds of traffic before the first sample
LOSS_ALLOWED = 0.001  # echoes that may miss at the very end (still in flight)


@dataclass
class Sample:
    """memifd seen from /proc at one moment."""

    seconds: float
    rss_mib: float
    anon_mib: float
    shmem_mib: float
    fds: int
    threads: int
    connected: int
    sent: int
    received: int


@dataclass
class Traffic:
    """Sends ``rate`` packets per second on each interface and reads the echoes."""

    ifaces: list[memif.Interface]
    rate: int
    sent: int = 0
    received: int = 0
    ring_full: int = 0
    _halt: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        credit = 0.0
        started = time.monotonic()
        rounds = 0
        while not self._halt.is_set():
            rounds += 1
            credit += self.rate * TICK
            burst = int(credit)
            credit -= burst
            for iface in self.ifaces:
                if burst:
                    packets = [frame(self.sent + i) for i in range(burst)]
                    taken = iface.tx_queue(0).send_burst(packets)
                    self.sent += taken
                    self.ring_full += burst - taken
                self.received += len(iface.rx_queue(0).recv_burst(256))
            delay = started + rounds * TICK - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)

    def drain(self, seconds: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for iface in self.ifaces:
                self.received += len(iface.rx_queue(0).recv_burst(256))
            time.sleep(TICK)

    def stop(self) -> None:
        self._halt.set()


def _config(path: Path, interfaces: int) -> Path:
    return write_config(
        path,
        [
            {
                "name": f"soak{i}",
                "socket": f"soak{i // PER_SOCKET}.sock",
                "id": i % PER_SOCKET,
                "action": "echo",
            }
            for i in range(interfaces)
        ],
    )


def _row(sample: Sample) -> str:
    return (
        f"{sample.seconds:8.0f} {sample.rss_mib:9.1f} {sample.anon_mib:9.1f} "
        f"{sample.shmem_mib:9.1f} {sample.fds:6d} {sample.threads:8d} "
        f"{sample.connected:10d} {sample.sent:12d} {sample.received:12d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--interfaces", type=int, default=64, help="echo interfaces")
    parser.add_argument("--rate", type=int, default=200, help="packets/s on each interface")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    opts = parser.parse_args(argv)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="memif-soak-", dir="/tmp") as tmp, ExitStack() as stack:
        work = Path(tmp)
        sock_dir = work / "sockets"
        daemon = start_daemon(sock_dir, _config(work / "memifd.yaml", opts.interfaces))
        stack.callback(daemon.kill)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        ifaces: list[memif.Interface] = []
        for index in range(0, opts.interfaces, PER_SOCKET):
            path = sock_dir / f"soak{index // PER_SOCKET}.sock"
            sock = stack.enter_context(memif.Socket(str(path)))
            ifaces += [
                sock.create_interface(memif.Arguments(id=i, role="client", name=f"c{index + i}"))
                for i in range(min(PER_SOCKET, opts.interfaces - index))
            ]
            sock.start()
        if not all(iface.wait_connected(30) for iface in ifaces):
            print("soak_service: not every interface connected", file=sys.stderr)
            return 1
        traffic = Traffic(ifaces, opts.rate)
        sender = threading.Thread(target=traffic.run, name="soak-traffic", daemon=True)
        sender.start()
        stack.callback(traffic.stop)
        print(
            f"memifd pid {pid}: {opts.interfaces} echo interfaces, {opts.rate} packets/s "
            f"each, {opts.minutes:g} min",
            flush=True,
        )
        time.sleep(WARM_UP)  # the first packets touch every buffer of the shared memory
        print(
            f"{'seconds':>8} {'rss_mib':>9} {'anon_mib':>9} {'shm_mib':>9} {'fds':>6} "
            f"{'threads':>8} {'connected':>10} {'sent':>12} {'received':>12}",
            flush=True,
        )
        started = time.monotonic()
        end = started + opts.minutes * 60
        while True:
            now = time.monotonic()
            split = rss_split_mib(pid)
            sample = Sample(
                seconds=now - started,
                rss_mib=rss_mib(pid),
                anon_mib=split["anon"],
                shmem_mib=split["shmem"],
                fds=fd_count(pid),
                threads=thread_count(pid),
                connected=sum(i.is_connected for i in ifaces),
                sent=traffic.sent,
                received=traffic.received,
            )
            samples.append(sample)
            print(_row(sample), flush=True)
            if now >= end or daemon.proc.poll() is not None:
                break
            time.sleep(min(opts.interval, max(end - time.monotonic(), 0.0)))
        traffic.stop()
        sender.join(timeout=10)
        traffic.drain()
    first, last = samples[0], samples[-1]
    figures = {
        "minutes": opts.minutes,
        "interfaces": opts.interfaces,
        "rate_per_interface": opts.rate,
        "samples": len(samples),
        "rss_mib": {
            "start": round(first.rss_mib, 1),
            "end": round(last.rss_mib, 1),
            "max": round(max(s.rss_mib for s in samples), 1),
        },
        "anon_mib": {
            "start": round(first.anon_mib, 1),
            "end": round(last.anon_mib, 1),
            "max": round(max(s.anon_mib for s in samples), 1),
        },
        "shmem_mib": {"start": round(first.shmem_mib, 1), "end": round(last.shmem_mib, 1)},
        "fds": {"start": first.fds, "end": last.fds, "max": max(s.fds for s in samples)},
        "threads": {
            "start": first.threads,
            "end": last.threads,
            "max": max(s.threads for s in samples),
        },
        "min_connected": min(s.connected for s in samples),
        "sent": traffic.sent,
        "received": traffic.received,
        "ring_full": traffic.ring_full,
    }
    print(json.dumps({"soak_service": figures}), flush=True)
    missing = traffic.sent - traffic.received
    healthy = (
        last.fds <= first.fds
        and last.threads <= first.threads
        and figures["min_connected"] == opts.interfaces
        and missing <= traffic.sent * LOSS_ALLOWED
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
