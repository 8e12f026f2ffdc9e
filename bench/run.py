"""Run the benchmark cases side by side with DPDK and print a table and a JSON line.

Every ratio comes from interleaved rounds (see :mod:`bench.rounds`): DPDK ⇄
DPDK and the case under test take turns in short windows, so a switch of the
anchor's speed shows up in the round it happens in. One core per side: testpmd
forwards on core 0 and the Python side is pinned to core 1 (or the reverse).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import growth, stall, turns  # noqa: E402
from bench.pmd import Pmd, PmdSizing  # noqa: E402
from bench.rounds import Anchor, Case, Series, run_rounds  # noqa: E402
from bench.service import (  # noqa: E402
    Memifd,
    bare_fastapi,
    grpc_capture,
    grpc_inject,
    idle_clients,
    rest_capture,
    wrk,
)
from tests.testpmd import TestPmd, exclusive  # noqa: E402

PY_CORE = 1
PMD_CORE = 0


@dataclass
class Row:
    """One line of the results table."""

    case: str
    size: int | str
    figure: str
    value: float
    ratio: float | None = None
    note: str = ""


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    seconds: float
    workdir: Path
    rounds: int = 5
    window: float = 1.0
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    anchor: Anchor | None = None
    series: list[Series] = field(default_factory=list)

    def socket(self, name: str) -> str:
        return str(self.workdir / f"{name}.sock")

    def add(self, row: Row, key: str | None = None) -> None:
        self.rows.append(row)
        if key:
            self.figures[key] = round(row.value, 3)
        print(
            f"  {row.case:<10} {row.size!s:>6} {row.figure:<14} {row.value:>14,.2f}"
            + (f"  ratio {row.ratio:.2f}" if row.ratio is not None else "")
            + (f"  {row.note}" if row.note else ""),
            flush=True,
        )


def _pmd(socket: str, role: str, mode: str, core: int) -> TestPmd:
    """A testpmd forwarding on ``core`` (its main lcore sits on the other core)."""
    other = 1 - core
    return TestPmd(socket=socket, role=role, forward_mode=mode, cores="0,1", main_lcore=other)


def _worker(
    case: str,
    socket: str,
    role: str,
    seconds: float,
    core: int,
    serve: bool = False,
    **options: object,
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "bench.worker",
        case,
        "--socket",
        socket,
        "--role",
        role,
        "--seconds",
        str(seconds),
        "--core",
        str(core),
    ]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    if serve:
        cmd.append("--serve")
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, stdin=subprocess.PIPE if serve else None
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, float]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {out}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _wait_file(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def _median_rate(pmd: TestPmd, seconds: float, column: int = 0, least: int = 3) -> float:
    """Median of testpmd's per-second rate samples over ``seconds`` (after warm-up).

    At least ``least`` samples are taken (waiting up to 4 s more for them): a
    single late stats line can report a rate far off, and the median drops it.
    """
    time.sleep(1.5)
    before = len(pmd.rates())
    time.sleep(seconds + 0.2)
    deadline = time.monotonic() + 4.0
    while len(pmd.rates()) - before < least and time.monotonic() < deadline:
        time.sleep(0.2)
    samples = [r[column] for r in pmd.rates()[before:]]
    samples = [s for s in samples if s > 0] or [0]
    return float(statistics.median(samples))


# -- cases ------------------------------------------------------------------------


def _pmd_kw(size: int) -> PmdSizing:
    """testpmd sends one mbuf per packet; 9000 B packets get 9216-byte memif buffers.

    (Its multi-segment txonly publishes head beyond the ring in DPDK 22.11,
    which memif rightly refuses; chained 9000 B packets are measured in tx.)
    """
    return {"mbuf_size": 9216 + 128, "bsize": 9216} if size > 2048 else {}


def _anchor(b: Bench, size: int) -> Anchor:
    """The DPDK ⇄ DPDK pair for packets of ``size`` bytes (started once per size)."""
    if b.anchor is not None and b.anchor.size == size:
        return b.anchor
    if b.anchor is not None:
        b.anchor.close()
        b.anchor = None
    b.anchor = Anchor(
        b.workdir, size, rx_core=PY_CORE, tx_core=PMD_CORE, pmd_kw=_pmd_kw(size)
    ).__enter__()
    return b.anchor


def _series_rx(b: Bench, size: int, api: str, series: Series) -> None:
    """testpmd ``txonly`` client → Python server receiving."""
    anchor = _anchor(b, size)
    sock = b.socket(f"rx{size}{api}")
    worker = _worker(
        "rx", sock, "server", 0, PY_CORE, serve=True, api=api, size=size, buffer_size=2048
    )
    try:
        _wait_file(sock)
        with Pmd(
            socket=sock,
            role="client",
            forward_mode="txonly",
            cores="0,1",
            main_lcore=PY_CORE,
            txpkts=str(size),
            **_pmd_kw(size),
        ) as pmd:
            case = Case(worker, pmd, "rx")
            case.read()
            pmd.pause()
            run_rounds(series, anchor, case, b.rounds, b.window)
            case.quit()
    finally:
        _stop(worker)


def _series_tx(b: Bench, size: int, api: str, series: Series) -> None:
    """Python client sending → testpmd ``rxonly`` server."""
    anchor = _anchor(b, size)
    sock = b.socket(f"tx{size}{api}")
    with Pmd(
        socket=sock,
        role="server",
        forward_mode="rxonly",
        cores="0,1",
        main_lcore=PY_CORE,
        **_pmd_kw(size),
    ) as pmd:
        pmd.wait_listening()
        worker = _worker("tx", sock, "client", 0, PY_CORE, serve=True, api=api, size=size)
        try:
            case = Case(worker, pmd, "tx")
            case.read()
            pmd.pause()
            run_rounds(series, anchor, case, b.rounds, b.window)
            case.quit()
        finally:
            _stop(worker)


def _stop(worker: subprocess.Popen[str]) -> None:
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


FAULTS_LIMIT = 0.01  # minor page faults per packet a case may take

KINDS = {
    "rx": ("py_rx", "list", _series_rx),
    "tx": ("py_tx", "list", _series_tx),
    "rx-batch": ("batch_rx", "batch", _series_rx),
    "tx-batch": ("batch_tx", "batch", _series_tx),
    "rx-views": ("views_rx", "views", _series_rx),
}


def interleaved(b: Bench, kind: str, size: int) -> Series:
    """Measure one case in rounds against DPDK ⇄ DPDK; adds its row and figures."""
    prefix, api, measure = KINDS[kind]
    series = Series(f"{prefix}_{size}", size)
    print(f"  {kind} {size} B, {b.rounds} rounds of {b.window:g} s", flush=True)
    measure(b, size, api, series)
    b.series.append(series)
    b.figures.update(series.figures())
    short = prefix.removeprefix("py_")
    b.figures[f"ratio_{short}_{size}"] = round(series.median_ratio, 3)
    b.figures[f"ratio_{short}_{size}_best"] = round(series.best_ratio, 3)
    peers = [r.peer_pps for r in series.rounds if r.peer_pps is not None]
    if peers:
        b.figures[f"pmd_rx_of_{api}_tx_{size}_pps"] = statistics.median(peers)
    flagged = series.flagged()
    b.add(
        Row(
            kind,
            size,
            "Mpps",
            series.median_pps / 1e6,
            series.median_ratio,
            note=f"best {series.best_pps / 1e6:.2f} (best/best {series.best_ratio:.2f}); "
            f"{series.faults_per_packet:.3f} faults/packet"
            + (
                " (too many: the heap is faulted in again)"
                if series.faults_per_packet > FAULTS_LIMIT
                else ""
            )
            + f"; lost {series.lost}"
            + (f"; moved in round {flagged}" if flagged else ""),
        )
    )
    return series


def case_rx_tx(b: Bench, sizes: list[int]) -> None:
    for size in sizes:
        interleaved(b, "rx", size)
        interleaved(b, "tx", size)


def case_batch(b: Bench, sizes: list[int]) -> None:
    for size in sizes:
        interleaved(b, "rx-batch", size)
        interleaved(b, "tx-batch", size)


def case_views(b: Bench, sizes: list[int]) -> None:
    for size in sizes:
        interleaved(b, "rx-views", size)


def anchor_figures(b: Bench) -> None:
    """DPDK ⇄ DPDK per size: the median of every anchor window, first and last window."""
    sizes = sorted({s.size for s in b.series})
    for index, size in enumerate(sizes):
        windows = [r.anchor.pps for s in b.series if s.size == size for r in s.rounds]
        median = float(statistics.median(windows))
        b.figures[f"dpdk_dpdk_{size}_pps"] = median
        b.figures[f"dpdk_dpdk_{size}_gbps"] = round(median * size * 8 / 1e9, 3)
        b.rows.insert(
            index,
            Row(
                "anchor",
                size,
                "Mpps",
                median / 1e6,
                note=(
                    f"testpmd txonly → testpmd rxonly, {len(windows)} windows "
                    f"{min(windows) / 1e6:.2f}–{max(windows) / 1e6:.2f}"
                ),
            ),
        )
        if size == 64:
            b.figures["anchor_64_pps"] = round(windows[0] / 1e6, 3)
            b.figures["anchor_end_64_pps"] = round(windows[-1] / 1e6, 3)


def case_echo(b: Bench) -> None:
    sock = b.socket("echo")
    worker = _worker("echo", sock, "server", b.seconds + 1.5, PY_CORE)
    _wait_file(sock)
    with _pmd(sock, "client", "flowgen", PMD_CORE) as pmd:
        returned = _median_rate(pmd, b.seconds - 0.5)
        result = _result(worker, b.seconds + 60)
    b.add(
        Row(
            "echo",
            64,
            "Mpps",
            result["pps"] / 1e6,
            note=f"testpmd flowgen saw {returned / 1e6:.2f} Mpps back",
        ),
        "echo_64_pps",
    )
    b.figures["echo_64_pps"] = result["pps"]
    b.figures["echo_64_returned_pps"] = returned


def case_pypy(b: Bench) -> None:
    sock = b.socket("pypy")
    server = _worker("rx", sock, "server", b.seconds, PY_CORE)
    _wait_file(sock)
    client = _worker("tx", sock, "client", b.seconds + 1.0, PMD_CORE)
    rx = _result(server, b.seconds + 60)
    _result(client, b.seconds + 60)
    b.add(
        Row("py-py", 64, "Mpps", rx["pps"] / 1e6, note="Python client → Python server"),
        "py_py_64_pps",
    )
    b.figures["py_py_64_pps"] = rx["pps"]


def case_latency(b: Bench) -> None:
    for mode in ("polling", "interrupt"):
        sock = b.socket(f"lat{mode}")
        with _pmd(sock, "server", "macswap", PMD_CORE) as pmd:
            pmd.wait_listening()
            worker = _worker("pingpong", sock, "client", b.seconds, PY_CORE, rx_mode=mode)
            result = _result(worker, b.seconds + 60)
        short = "poll" if mode == "polling" else "intr"
        b.add(Row("latency", 64, f"{short} p50 µs", result["p50_us"]), f"latency_{short}_p50_us")
        b.add(Row("latency", 64, f"{short} p99 µs", result["p99_us"]), f"latency_{short}_p99_us")


def case_capture(b: Bench) -> None:
    """testpmd txonly → memifd server interface → gRPC Capture client."""
    spec = {"name": "cap0", "socket": "cap0.sock", "role": "server", "action": "drop"}
    with Memifd(b.workdir / "capture", [spec], PY_CORE) as daemon:
        sock = str(daemon.socket_dir / "cap0.sock")
        with _pmd(sock, "client", "txonly", PMD_CORE):
            pps, packets, dropped = grpc_capture(daemon.grpc, "cap0", b.seconds)
    b.add(
        Row(
            "capture",
            64,
            "Mpps",
            pps / 1e6,
            note=f"{packets:,} packets, {dropped:,} dropped by the stream",
        ),
        "capture_64_pps",
    )
    b.figures["capture_64_pps"] = pps
    b.figures["capture_64_dropped"] = dropped


def case_capture_rest(b: Bench) -> None:
    """testpmd txonly → memifd server interface → REST capture stream, pcap and pcapng."""
    spec = {"name": "cap0", "socket": "cap0.sock", "role": "server", "action": "drop"}
    for fmt in ("pcap", "pcapng"):
        with Memifd(b.workdir / f"capture-{fmt}", [spec], PY_CORE) as daemon:
            sock = str(daemon.socket_dir / "cap0.sock")
            with _pmd(sock, "client", "txonly", PMD_CORE):
                time.sleep(1.0)  # connected and settled
                pps, packets = rest_capture(daemon.http, "cap0", b.seconds, fmt)
                stats = json.loads(daemon.get("/v1/interfaces/cap0/stats"))
        b.add(
            Row(
                "rest-cap",
                fmt,
                "Mpps",
                pps / 1e6,
                note=f"{packets:,} packets; {stats['subscriber_drops']:,} dropped by the stream",
            ),
            f"capture_rest_{fmt}_pps",
        )
        b.figures[f"capture_rest_{fmt}_dropped"] = stats["subscriber_drops"]


def case_inject(b: Bench) -> None:
    """gRPC Inject client → memifd client interface → testpmd rxonly server."""
    sock = b.socket("inject")
    with _pmd(sock, "server", "rxonly", PMD_CORE) as pmd:
        pmd.wait_listening()
        spec = {"name": "inj0", "socket": sock, "role": "client", "action": "drop"}
        with Memifd(b.workdir / "inject", [spec], PY_CORE) as daemon:
            time.sleep(1.0)  # connected and settled
            pps, ring_full = grpc_inject(daemon.grpc, "inj0", b.seconds)
            seen = pmd.rx_stats()[0]
    b.add(
        Row(
            "inject",
            64,
            "Mpps",
            pps / 1e6,
            note=f"ring_full {ring_full:,}; testpmd counted {seen:,}",
        ),
        "inject_64_pps",
    )
    b.figures["inject_64_pps"] = pps


def case_rest(b: Bench) -> None:
    """wrk on GET /v1/interfaces with 64 interfaces, and a bare FastAPI app beside it."""
    specs = [
        {"name": f"if{i}", "socket": f"s{i % 4}.sock", "id": i, "role": "server"} for i in range(64)
    ]
    with Memifd(b.workdir / "rest", specs, PY_CORE) as daemon:
        payload = daemon.get("/v1/interfaces")
        rps, p99 = wrk(f"http://{daemon.http}/v1/interfaces", b.seconds)
    with bare_fastapi(payload, PY_CORE) as url:
        bare_rps, bare_p99 = wrk(url, b.seconds)
    ratio = rps / bare_rps if bare_rps else 0.0
    b.add(
        Row(
            "rest",
            "64 if",
            "req/s",
            rps,
            ratio,
            note=f"p99 {p99:.1f} ms; bare FastAPI {bare_rps:,.0f} req/s, p99 {bare_p99:.1f} ms",
        ),
        "rest_rps",
    )
    b.figures.update(
        rest_rps=rps, rest_p99_ms=p99, rest_bare_rps=bare_rps, rest_ratio=round(ratio, 3)
    )


def case_idle(b: Bench) -> None:
    """64 connected, idle interfaces in interrupt mode: CPU memifd uses."""
    specs = [
        {
            "name": f"idle{i}",
            "socket": f"idle{i % 4}.sock",
            "id": i,
            "role": "server",
            "rx_mode": "interrupt",
        }
        for i in range(64)
    ]
    with Memifd(b.workdir / "idle", specs, PY_CORE) as daemon:
        clients = idle_clients(daemon.socket_dir, 64, b.seconds + 6)
        assert clients.stdout is not None
        state = clients.stdout.readline().strip()
        if state != "connected":
            raise RuntimeError("idle clients did not connect")
        time.sleep(1.0)
        before, start = daemon.cpu_seconds(), time.monotonic()
        time.sleep(max(b.seconds, 3.0))
        used = (daemon.cpu_seconds() - before) / (time.monotonic() - start)
        clients.wait(timeout=b.seconds + 30)
    b.add(Row("idle", "64 if", "CPU %", used * 100), "idle_cpu_pct")
    b.figures["idle_cpu_pct"] = round(used * 100, 3)


def case_growth(b: Bench, counts: list[int], pairs: list[int]) -> None:
    """memifd's memory, idle CPU and create latency as interfaces and queue pairs grow."""
    idle = min(b.seconds / 2, 3.0)
    by_count = growth.by_interfaces(b.workdir / "growth", PY_CORE, PMD_CORE, counts, idle)
    by_pairs = growth.by_queue_pairs(b.workdir / "pairs", PY_CORE, PMD_CORE, pairs, idle)
    for line in growth.table("interfaces (one queue pair each)", "ifaces", by_count) + growth.table(
        "one more interface with this many queue pairs", "pairs", by_pairs
    ):
        print(line, flush=True)
    for name, points in (("interfaces", by_count), ("queue_pairs", by_pairs)):
        b.figures[f"growth_{name}"] = [p.count for p in points]
        b.figures[f"growth_{name}_kib_each"] = [round(p.per()[0], 1) for p in points]
        b.figures[f"growth_{name}_cpu_pct_each"] = [round(p.per()[1], 4) for p in points]
        b.figures[f"growth_{name}_create_ms"] = [round(p.create_ms, 2) for p in points]
    last = by_count[-1]
    b.add(
        Row(
            "growth",
            f"{last.count} if",
            "KiB each",
            last.per()[0],
            note=f"idle {last.cpu_pct:.2f} % of a core, create {last.create_ms:.1f} ms",
        )
    )


def case_stall(b: Bench) -> None:
    """Longest echo gap (testpmd ⇄ memifd) while big interfaces are created and deleted."""
    result = stall.measure(b.workdir / "stall", b.seconds, PY_CORE, PMD_CORE)
    quiet, churn = result["quiet"], result["churn"]
    b.add(
        Row(
            "stall",
            64,
            "quiet gap ms",
            quiet["max_gap_ms"],
            note=f"rtt p99.9 {quiet['rtt_p999_ms']:.2f} ms, {quiet['received']:,} echoes",
        ),
        "stall_quiet_max_gap_ms",
    )
    b.add(
        Row(
            "stall",
            64,
            "churn gap ms",
            churn["max_gap_ms"],
            note=f"rtt max {churn['rtt_max_ms']:.1f} ms, probe's own longest pause "
            f"{churn['max_send_gap_ms']:.1f} ms, {result['cycles']} cycles of "
            f"255 qp × 2^14; slowest connect {result['slowest_connect_s']:.2f} s, "
            f"create {result['slowest_create_s']:.2f} s, "
            f"delete {result['slowest_delete_s']:.2f} s, lost {churn['lost']:,}",
        ),
        "stall_churn_max_gap_ms",
    )
    b.figures.update(
        stall_churn_rtt_max_ms=round(churn["rtt_max_ms"], 3),
        stall_cycles=result["cycles"],
        stall_slowest_connect_s=round(result["slowest_connect_s"], 3),
    )


def case_turns(b: Bench, cycles: int) -> None:
    """Longest event-loop turn of each side while a 255 qp × 2^14 interface reconnects."""
    results = turns.measure(b.workdir / "turns", cycles)
    for role in ("server", "client"):
        result = results[role]
        b.add(
            Row(
                "turns",
                role,
                "turn cpu ms",
                result["longest_turn_cpu_ms"],
                note=f"longest wall {result['longest_turn_ms']:.1f} ms over {result['turns']:,} "
                f"turns, {result['cycles']} connects of 255 qp × 2^14, slowest "
                f"{result['slowest_connect_s']:.2f} s",
            ),
            f"turns_{role}_cpu_ms",
        )
        b.figures[f"turns_{role}_wall_ms"] = round(result["longest_turn_ms"], 3)


CASES: dict[str, Callable[[Bench, argparse.Namespace], None]] = {
    "rxtx": lambda b, a: case_rx_tx(b, [64, 1500] if a.quick else [64, 512, 1500, 9000]),
    "batch": lambda b, a: case_batch(b, [64] if a.quick else [64, 1500]),
    "views": lambda b, a: case_views(b, [1500] if a.quick else [64, 1500]),
    "echo": lambda b, a: case_echo(b),
    "pypy": lambda b, a: case_pypy(b),
    "latency": lambda b, a: case_latency(b),
    "capture": lambda b, a: case_capture(b),
    "capture-rest": lambda b, a: case_capture_rest(b),
    "inject": lambda b, a: case_inject(b),
    "rest": lambda b, a: case_rest(b),
    "idle": lambda b, a: case_idle(b),
    "growth": lambda b, a: case_growth(
        b, [1, 16] if a.quick else [1, 16, 64, 256], [1, 4] if a.quick else [1, 2, 4, 8, 16]
    ),
    "stall": lambda b, a: case_stall(b),
    "turns": lambda b, a: case_turns(b, 2 if a.quick else 5),
}


def plot(rows: list[Row], path: str) -> None:
    """Draw the rates of the table as bars, Mpps and ratio to DPDK."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in rows if r.figure == "Mpps"]
    labels = [f"{r.case}\n{r.size} B" for r in rates]
    fig, ax = plt.subplots(figsize=(max(8, len(rates) * 0.9), 4.5))
    bars = ax.bar(
        labels,
        [r.value for r in rates],
        color=["#555" if r.case.startswith("anchor") else "#2a7ab0" for r in rates],
    )
    for bar, row in zip(bars, rates, strict=True):
        text = f"{row.value:.1f}" + (f"\n×{row.ratio:.2f}" if row.ratio is not None else "")
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylim(0, max((r.value for r in rates), default=1.0) * 1.18)
    ax.set_ylabel("million packets per second")
    ax.set_title("memif in pure Python vs DPDK testpmd (one core per side)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds of 0.5 s, 2 s per other case, fewer sizes"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="seconds per case that is not interleaved"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case (default 5)")
    parser.add_argument("--window", type=float, help="seconds per window (default 1)")
    parser.add_argument("--only", help=f"comma-separated cases of {','.join(CASES)}")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the table into a PNG")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    rounds = args.rounds or (3 if args.quick else 5)
    window = args.window or (0.5 if args.quick else 1.0)
    selected = args.only.split(",") if args.only else list(CASES)
    unknown = set(selected) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if rounds < 1 or window <= 0:
        parser.error("--rounds must be at least 1 and --window positive")
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        parser.error("needs at least 2 cores")
    with tempfile.TemporaryDirectory(prefix="memif-bench-", dir="/tmp") as tmp, exclusive():
        bench = Bench(seconds=seconds, workdir=Path(tmp), rounds=rounds, window=window)
        print(
            f"memif benchmark: {rounds} interleaved rounds of {window:g} s, {seconds:g} s "
            f"per other case; testpmd on core {PMD_CORE}, Python on core {PY_CORE}",
            flush=True,
        )
        try:
            for name in selected:
                CASES[name](bench, args)
        finally:
            if bench.anchor is not None:
                bench.anchor.close()
        if bench.series:
            anchor_figures(bench)
        print("\nsummary (ratio: median of per-round ratios to DPDK ⇄ DPDK at the same size)")
        print(f"  {'case':<10} {'size':>6} {'figure':<14} {'value':>14}  ratio  note")
        for row in bench.rows:
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
            print(
                f"  {row.case:<10} {row.size!s:>6} {row.figure:<14} {row.value:>14,.2f}"
                f"  {ratio:>5}  {row.note}"
            )
        if args.plot:
            plot(bench.rows, args.plot)
        print(json.dumps(bench.figures, sort_keys=True))
    return 0
