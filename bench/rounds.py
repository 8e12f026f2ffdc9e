"""Interleaved rounds: DPDK ⇄ DPDK and the case under test take turns, window by window.

The DPDK anchor on a virtual machine switches between speeds (here about 6,
18 and 53 Mpps at 64 B), sometimes in the middle of a case, so an anchor taken
once per run cannot protect a ratio. Here every case gets its own rounds: a
short window of the anchor (testpmd ``txonly`` → testpmd ``rxonly``, packets of
the case's size), then a window of the case, the other side paused each time.
A ratio is the case's rate over the anchor's in the same round; the summary is
the median of those ratios and the best round of each against the other. A
window whose 0.1 s rates moved by more than :data:`MOVED` from its own median
is flagged.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pmd import Pmd, PmdSizing, PortStats

MOVED = 0.25
SETTLE = 0.2  # seconds a resumed peer runs before a window starts
SLICE = 0.1


@dataclass
class Window:
    """One measured stretch of one side: its rate and its 0.1 s rates."""

    pps: float
    slices: list[float] = field(default_factory=list)
    packets: int = 0
    faults: int = 0

    @property
    def moved(self) -> bool:
        """True when a 0.1 s rate strayed more than :data:`MOVED` from the median."""
        if len(self.slices) < 2:
            return False
        middle = statistics.median(self.slices)
        return any(abs(s - middle) > MOVED * middle for s in self.slices)


@dataclass
class Round:
    """An anchor window followed by a case window."""

    anchor: Window
    case: Window
    peer_pps: float | None = None  # what testpmd counted on its side, where it can

    @property
    def ratio(self) -> float:
        return self.case.pps / self.anchor.pps if self.anchor.pps else 0.0


@dataclass
class Series:
    """All rounds of one case, with the summary figures."""

    name: str
    size: int
    rounds: list[Round] = field(default_factory=list)
    lost: int | None = None

    @property
    def median_pps(self) -> float:
        return float(statistics.median(r.case.pps for r in self.rounds))

    @property
    def best_pps(self) -> float:
        return max(r.case.pps for r in self.rounds)

    @property
    def median_ratio(self) -> float:
        return float(statistics.median(r.ratio for r in self.rounds))

    @property
    def best_ratio(self) -> float:
        """Best case round against best anchor round."""
        best_anchor = max(r.anchor.pps for r in self.rounds)
        return self.best_pps / best_anchor if best_anchor else 0.0

    @property
    def faults_per_packet(self) -> float:
        packets = sum(r.case.packets for r in self.rounds)
        return sum(r.case.faults for r in self.rounds) / packets if packets else 0.0

    def flagged(self) -> list[int]:
        """Rounds (from 1) with a window that moved."""
        return [i for i, r in enumerate(self.rounds, 1) if r.anchor.moved or r.case.moved]

    def figures(self) -> dict[str, object]:
        """The JSON figures of this series, per-round lists included."""
        n = self.name
        out: dict[str, object] = {
            f"{n}_pps": self.median_pps,
            f"{n}_gbps": round(self.median_pps * self.size * 8 / 1e9, 3),
            f"{n}_best_pps": self.best_pps,
            f"{n}_faults_per_packet": round(self.faults_per_packet, 4),
            f"{n}_pps_rounds": [round(r.case.pps) for r in self.rounds],
            f"{n}_anchor_pps_rounds": [round(r.anchor.pps) for r in self.rounds],
            f"{n}_ratio_rounds": [round(r.ratio, 3) for r in self.rounds],
            f"{n}_flagged_rounds": self.flagged(),
        }
        if self.lost is not None:
            out[f"{n}_lost"] = self.lost
        return out

    def describe_round(self, index: int) -> str:
        r = self.rounds[index]
        marks = [m for m, w in (("anchor moved", r.anchor), ("case moved", r.case)) if w.moved]
        faults = r.case.faults / r.case.packets if r.case.packets else 0.0
        peer = f", testpmd {r.peer_pps / 1e6:6.2f}" if r.peer_pps is not None else ""
        return (
            f"    round {index + 1}: DPDK {r.anchor.pps / 1e6:6.2f}  case "
            f"{r.case.pps / 1e6:6.2f} Mpps{peer}  ratio {r.ratio:.2f}  "
            f"{faults:.3f} faults/packet" + (f"  [{', '.join(marks)}]" if marks else "")
        )


class Anchor:
    """testpmd ``txonly`` client → testpmd ``rxonly`` server, measured in windows."""

    def __init__(
        self, workdir: Path, size: int, rx_core: int, tx_core: int, pmd_kw: PmdSizing
    ) -> None:
        socket = str(workdir / f"anchor{size}.sock")
        self.size = size
        self.server = Pmd(
            socket=socket,
            role="server",
            forward_mode="rxonly",
            cores="0,1",
            main_lcore=1 - rx_core,
            **pmd_kw,
        )
        self.client = Pmd(
            socket=socket,
            role="client",
            forward_mode="txonly",
            cores="0,1",
            main_lcore=1 - tx_core,
            txpkts=str(size),
            **pmd_kw,
        )

    def __enter__(self) -> Anchor:
        self.server.start()
        try:
            self.server.wait_listening()
            self.client.start()
            self.client.wait_connected()
            self.server.wait_connected()
        except BaseException:
            self.close()
            raise
        self.pause()
        return self

    def pause(self) -> None:
        self.client.pause()
        self.server.pause()

    def measure(self, seconds: float) -> Window:
        """One window: both resumed, the receiver's rate sampled every 0.1 s."""
        self.server.resume()
        self.client.resume()
        try:
            time.sleep(SETTLE)
            first = self.server.stats()
            start = time.perf_counter()
            slices: list[float] = []
            last = first
            while time.perf_counter() - start < seconds:
                time.sleep(SLICE)
                last = self.server.stats()
                slices.append(float(last.rx_pps))
            elapsed = time.perf_counter() - start
        finally:
            self.pause()
        packets = last.rx_packets - first.rx_packets
        return Window(packets / elapsed, slices, packets)

    def close(self) -> None:
        self.client.kill()
        self.server.kill()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Case:
    """A Python worker (``bench.worker --serve``) and its testpmd peer, measured in windows."""

    def __init__(self, worker: subprocess.Popen[str], pmd: Pmd, direction: str) -> None:
        self.worker = worker
        self.pmd = pmd
        self.direction = direction  # "rx": testpmd sends; "tx": Python sends

    def ask(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        """Send a command to the worker and read its JSON answer."""
        assert self.worker.stdin is not None and self.worker.stdout is not None
        self.worker.stdin.write(line + "\n")
        self.worker.stdin.flush()
        return self.read(timeout)

    def read(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.worker.stdout is not None
        answer = self.worker.stdout.readline()
        if not answer:
            self.worker.wait(timeout)
            raise RuntimeError(f"worker exited with {self.worker.returncode}")
        return dict(json.loads(answer))

    def quit(self, timeout: float = 10.0) -> None:
        """Let the worker close its socket and exit."""
        assert self.worker.stdin is not None
        self.worker.stdin.write("quit\n")
        self.worker.stdin.close()
        self.worker.wait(timeout)

    def measure(self, seconds: float) -> tuple[Window, float | None]:
        """One window of the case; for tx also the rate testpmd counted meanwhile."""
        self.pmd.resume()
        try:
            time.sleep(SETTLE / 4)
            before: PortStats | None = self.pmd.stats() if self.direction == "tx" else None
            answer = self.ask(f"run {seconds}")
            peer = float(self.pmd.stats().rx_pps) if before is not None else None
        finally:
            self.pmd.pause()
        packets = int(answer["packets"])
        window = Window(
            packets / float(answer["seconds"]),
            list(answer["slices"]),
            packets,
            int(answer["faults"]),
        )
        return window, peer

    def lost(self) -> int:
        """Packets one side put on the ring that the other never took."""
        self.pmd.resume()
        if self.direction == "rx":
            self.pmd.send("stop")
            time.sleep(0.3)
            sent = self.pmd.stats().tx_packets
            received = int(self.ask("drain")["total"])
            return sent - received
        sent = int(self.ask("drain")["total"])
        received = self.pmd.stats().rx_packets
        for _ in range(20):  # testpmd empties the ring within a few polls
            time.sleep(0.05)
            newer = self.pmd.stats().rx_packets
            if newer == received:
                break
            received = newer
        return sent - received


def run_rounds(series: Series, anchor: Anchor, case: Case, rounds: int, seconds: float) -> None:
    """Alternate anchor and case windows ``rounds`` times, printing each round."""
    for index in range(rounds):
        anchor_window = anchor.measure(seconds)
        case_window, peer = case.measure(seconds)
        series.rounds.append(Round(anchor_window, case_window, peer))
        print(series.describe_round(index), flush=True)
    series.lost = case.lost()
