"""Soak: ``kill -9`` the memif peer mid-traffic, a hundred times per role and peer.

``python -m bench.soak_kill [--cycles 100] [--peers python,testpmd]`` runs the
cycles of :mod:`tests.reliability.killcycle` with our interface as server (the
killed peer is a client) and as client (the killed peer is a server that comes
back), for Python echo peers and for dpdk-testpmd (``macswap``, one instance at
a time under the machine-wide testpmd lock). It prints one line per series and
a JSON line; it exits 1 if any series leaked an fd, a memfd mapping or a thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.reliability.killcycle import (  # noqa: E402
    CycleReport,
    pmd_kill_cycles,
    python_kill_cycles,
)
from tests.testpmd import TestPmd, available, exclusive  # noqa: E402


def _testpmd_series(workdir: Path, ours: str, cycles: int) -> CycleReport:
    started: list[TestPmd] = []

    def make(**kwargs: object) -> TestPmd:
        pmd = TestPmd(**kwargs).start()  # type: ignore[arg-type]
        started.append(pmd)
        return pmd

    with exclusive():
        try:
            return pmd_kill_cycles(workdir, ours, cycles, make)
        finally:
            for pmd in started:
                pmd.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100, help="kills per series")
    parser.add_argument("--peers", default="python,testpmd", help="python, testpmd or both")
    opts = parser.parse_args(argv)
    peers = [p.strip() for p in opts.peers.split(",") if p.strip()]
    if "testpmd" in peers and not available():
        parser.error("dpdk-testpmd is not installed (Debian package dpdk-dev)")
    reports: list[CycleReport] = []
    with tempfile.TemporaryDirectory(prefix="memif-soak-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        for peer in peers:
            for ours in ("server", "client"):
                if peer == "python":
                    report = python_kill_cycles(workdir, ours, opts.cycles)
                elif peer == "testpmd":
                    report = _testpmd_series(workdir, ours, opts.cycles)
                else:
                    parser.error(f"unknown peer {peer!r}")
                print(report.line(), flush=True)
                reports.append(report)
    figures = [
        {
            "peer": r.peer,
            "ours": r.ours,
            "cycles": r.cycles,
            "seconds": round(r.seconds, 1),
            "packets": r.packets,
            "leaked": asdict(r.delta),
        }
        for r in reports
    ]
    print(json.dumps({"soak_kill": figures}))
    leaked = any(r.delta.fds or r.delta.memfd_maps or r.delta.threads for r in reports)
    return 1 if leaked else 0


if __name__ == "__main__":
    raise SystemExit(main())
