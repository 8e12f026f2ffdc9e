"""``kill -9`` of a memif peer in the middle of traffic, over and over, with leak accounting.

One *cycle*: a fresh peer comes up, our interface connects (a client of ours
reconnects on its own timer), echo traffic is checked end to end, then more
traffic starts and the peer is killed with SIGKILL at a random moment in it;
our side must see the link go down and carry on. Before the first counted cycle
and after the last, :func:`snapshot` takes this process's open fds, memory
mappings (all, and the memfd ones), and threads; the deltas are reported.

Peers: Python echo peers forked by :mod:`tests.reliability.peer_zygote`, and
dpdk-testpmd (``macswap``) through :class:`tests.testpmd.TestPmd`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import memif

from tests.testpmd import TestPmd

ROOT = Path(__file__).resolve().parents[2]
LINK_TIMEOUT = 20.0
ECHO_TIMEOUT = 10.0
ECHO_PACKETS = 32
RESEND = 0.05


@dataclass(frozen=True)
class Resources:
    """What this process holds at one moment."""

    fds: int
    maps: int
    memfd_maps: int
    threads: int

    def minus(self, other: Resources) -> Resources:
        """Field-wise difference."""
        return Resources(
            self.fds - other.fds,
            self.maps - other.maps,
            self.memfd_maps - other.memfd_maps,
            self.threads - other.threads,
        )


def snapshot() -> Resources:
    """Open fds, mappings, memfd mappings and threads of this process (no GC pass first)."""
    with open("/proc/self/maps") as maps:
        lines = maps.readlines()
    return Resources(
        fds=len(os.listdir("/proc/self/fd")),
        maps=len(lines),
        memfd_maps=sum("/memfd:" in line for line in lines),
        threads=threading.active_count(),
    )


@dataclass
class CycleReport:
    """Figures of one series of kill cycles."""

    peer: str
    ours: str
    cycles: int
    seconds: float
    packets: int
    before: Resources
    after: Resources

    @property
    def delta(self) -> Resources:
        """Resources held after the series minus before it."""
        return self.after.minus(self.before)

    def line(self) -> str:
        """A one-line human summary."""
        d = self.delta
        return (
            f"kill -9 {self.peer} peer (ours: {self.ours}): {self.cycles} cycles in "
            f"{self.seconds:.1f} s, {self.packets} packets echoed; leaks: fds {d.fds:+d}, "
            f"mappings {d.maps:+d} (memfd {d.memfd_maps:+d}), threads {d.threads:+d}"
        )


def frame(tag: int, seq: int) -> bytes:
    """An Ethernet frame whose bytes after the MACs identify it (macswap keeps them)."""
    body = tag.to_bytes(4, "little") + seq.to_bytes(4, "little")
    return bytes(6) + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + body + bytes(46)


def echo_check(iface: memif.Interface, tag: int) -> int:
    """Send ECHO_PACKETS frames until each has come back; returns how many did.

    Frames still unanswered are sent again every RESEND seconds: a testpmd
    client drops what reaches it in the first moments after it connects.
    """
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    frames = {frame(tag, seq)[12:]: frame(tag, seq) for seq in range(ECHO_PACKETS)}
    got: set[bytes] = set()
    deadline = time.monotonic() + ECHO_TIMEOUT
    resend = 0.0
    while len(got) < len(frames) and time.monotonic() < deadline:
        if time.monotonic() >= resend:
            txq.send_burst([f for key, f in frames.items() if key not in got])
            resend = time.monotonic() + RESEND
        for packet in rxq.recv_burst(256):
            if packet[12:] in frames:
                got.add(packet[12:])
        rxq.wait(0.01)
    assert len(got) == len(frames), (
        f"{len(got)} of {len(frames)} echoes came back ({iface.disconnect_reason})"
    )
    return len(got)


def traffic_until_down(
    iface: memif.Interface, kill: Callable[[], None], rng: random.Random
) -> None:
    """Run traffic, kill the peer after a random number of bursts, run on until the link drops."""
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    burst = [frame(0xFFFF, seq) for seq in range(32)]
    kill_after = rng.randint(1, 50)
    bursts = 0
    killed_at: float | None = None
    while iface.is_connected:
        txq.send_burst(burst)
        rxq.recv_burst(256)
        bursts += 1
        if bursts == kill_after:
            kill()
            killed_at = time.monotonic()
        if killed_at is not None:
            assert time.monotonic() - killed_at < LINK_TIMEOUT, "link still up after the kill"
            rxq.wait(0.001)


@contextlib.contextmanager
def zygote() -> Iterator[Callable[[str, str], int]]:
    """A :mod:`peer_zygote` process; yields ``spawn(role, path) -> pid``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.peer_zygote"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def spawn(role: str, path: str) -> int:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{role} {path}\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())

    try:
        yield spawn
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _our_interface(path: str, role: str) -> tuple[memif.Socket, memif.Interface]:
    sock = memif.Socket(path, reconnect_interval=0.05, app_name="kill-survivor")
    iface = sock.create_interface(id=0, role=role, name=f"ours-{role}", rx_mode="interrupt")
    sock.start()
    return sock, iface


def run_cycles(
    ours: str,
    cycles: int,
    start_peer: Callable[[], object],
    kill_peer: Callable[[object], None],
    finish_peer: Callable[[object], None],
    path: str,
    label: str,
    seed: int = 1,
) -> CycleReport:
    """The kill loop over any peer: ``start_peer`` makes one, ``kill_peer`` SIGKILLs it."""
    rng = random.Random(seed)
    sock, iface = _our_interface(path, ours)
    packets = 0
    try:
        before = None
        started = time.monotonic()
        for cycle in range(cycles + 1):  # cycle 0 warms up: the baseline is taken after it
            peer = start_peer()
            assert iface.wait_connected(LINK_TIMEOUT), f"cycle {cycle}: {iface.disconnect_reason}"
            if cycle == 0:  # the counter must see the peer's memory while the link is up
                assert snapshot().memfd_maps > 0, "no memfd mapping seen while connected"
            packets += echo_check(iface, cycle)
            traffic_until_down(iface, functools.partial(kill_peer, peer), rng)
            assert iface.wait_disconnected(LINK_TIMEOUT)
            finish_peer(peer)
            if cycle == 0:
                before = snapshot()
                started = time.monotonic()
                packets = 0
        seconds = time.monotonic() - started
        after = snapshot()
        assert before is not None
        assert iface.connect_count == cycles + 1
        return CycleReport(label, ours, cycles, seconds, packets, before, after)
    finally:
        sock.close()


def python_kill_cycles(workdir: Path, ours: str, cycles: int) -> CycleReport:
    """Kill Python echo peers (the other role) ``cycles`` times."""
    path = str(workdir / f"py-{ours}.sock")
    peer_role = "client" if ours == "server" else "server"
    with zygote() as spawn:

        def kill(pid: object) -> None:
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]

        return run_cycles(
            ours, cycles, lambda: spawn(peer_role, path), kill, lambda _pid: None, path, "python"
        )


def pmd_kill_cycles(
    workdir: Path, ours: str, cycles: int, make: Callable[..., TestPmd]
) -> CycleReport:
    """Kill dpdk-testpmd (the other role) ``cycles`` times; ``make`` starts one."""
    path = str(workdir / f"pmd-{ours}.sock")
    peer_role = "client" if ours == "server" else "server"

    def start() -> TestPmd:
        pmd = make(socket=path, role=peer_role, forward_mode="macswap")
        if peer_role == "server":
            pmd.wait_listening()
        return pmd

    def kill(pmd: object) -> None:
        assert isinstance(pmd, TestPmd) and pmd.proc is not None
        os.killpg(pmd.proc.pid, signal.SIGKILL)

    def finish(pmd: object) -> None:
        assert isinstance(pmd, TestPmd)
        pmd.kill()  # reaps it and removes its runtime files

    return run_cycles(ours, cycles, start, kill, finish, path, "dpdk-testpmd")
