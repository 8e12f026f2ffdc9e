"""The turns case: the longest event-loop turn of a socket while a big interface comes and goes.

Two processes, one per role, each drive their own :class:`memif.Socket` from
their own loop (``fileno()`` in an epoll set, then ``poll(0)``), as memifd's
worker does, and time every ``poll(0)``: that is how long one turn keeps
everything else on the thread (other interfaces' data path, management calls)
waiting. The wall time of a turn includes the moments the host gave the core
to someone else (on a shared 2-core VM that is most of a long turn), so the
thread's CPU time per turn is reported beside it: that is the work a turn did.
The client interface has 255 queue pairs × 2^14 descriptors; it
connects, drops the link once it is up and connects again, ``cycles`` times.

Run one side alone with ``python -m bench.turns server|client PATH CYCLES``
(it prints one JSON line).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIG = {"num_queue_pairs": 255, "log2_ring_size": 14, "packet_buffer_size": 128}
DEADLINE = 300.0  # seconds both sides get for all cycles
WAIT = 0.05  # seconds the loop sleeps at most between two turns


def drive(role: str, path: str, cycles: int) -> dict[str, Any]:
    """Run one side; returns its longest turn and how long the links took to come up."""
    import memif

    with memif.Socket(path, reconnect_interval=0.2) as sock:
        iface = sock.create_interface(
            memif.Arguments(id=0, role=role, name=f"big-{role}", memory=BIG)
        )
        poller = select.epoll()
        poller.register(sock.fileno(), select.EPOLLIN)
        longest = 0.0
        longest_cpu = 0.0
        turns = 0
        seen = 0
        started = time.monotonic()
        connects: list[float] = []
        deadline = started + DEADLINE
        while seen < cycles and time.monotonic() < deadline:
            due = sock.next_timeout()
            poller.poll(WAIT if due is None else min(due, WAIT))
            begin, begin_cpu = time.perf_counter(), time.thread_time()
            sock.poll(0)
            longest = max(longest, time.perf_counter() - begin)
            longest_cpu = max(longest_cpu, time.thread_time() - begin_cpu)
            turns += 1
            if iface.connect_count > seen:
                seen = iface.connect_count
                connects.append(time.monotonic() - started)
                started = time.monotonic()
                if role == "client" and seen < cycles:
                    iface.disconnect("next cycle")
        poller.close()
    return {
        "role": role,
        "cycles": seen,
        "turns": turns,
        "longest_turn_ms": longest * 1000,
        "longest_turn_cpu_ms": longest_cpu * 1000,
        "slowest_connect_s": max(connects, default=0.0),
    }


def measure(workdir: Path, cycles: int) -> dict[str, dict[str, Any]]:
    """Both sides in their own processes on one socket path; their results by role."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = str(workdir / "turns.sock")
    env_path = [sys.executable, "-m", "bench.turns"]
    server = subprocess.Popen(
        [*env_path, "server", path, str(cycles)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 10
    while not Path(path).exists() and time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.01)  # waiting for the file, not for an event we could block on
    client = subprocess.Popen(
        [*env_path, "client", path, str(cycles)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    results: dict[str, dict[str, Any]] = {}
    for proc in (client, server):
        out, _ = proc.communicate(timeout=DEADLINE + 30)
        line = out.strip().splitlines()[-1] if out.strip() else "{}"
        result = json.loads(line)
        results[result.get("role", "?")] = result
    return results


def main(argv: list[str]) -> None:
    role, path, cycles = argv
    print(json.dumps(drive(role, path, int(cycles))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
