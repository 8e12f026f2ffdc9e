"""Run the benchmark cases side by side with DPDK and print a table and a JSON line.

Every figure is measured in the same run as the DPDK ⇄ DPDK anchor, so ratios
stay meaningful on a noisy machine. One core per side: testpmd forwards on
core 0 and the Python side is pinned to core 1 (or the reverse).
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

from bench import stall  # noqa: E402
from bench.service import Memifd, bare_fastapi, grpc_capture, grpc_inject, idle_clients, wrk  # noqa: E402
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
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    anchor_pps: float = 0.0

    def socket(self, name: str) -> str:
        return str(self.workdir / f"{name}.sock")

    def add(self, row: Row, key: str | None = None) -> None:
        self.rows.append(row)
        if key:
            self.figures[key] = round(row.value, 3)
        print(f"  {row.case:<10} {row.size!s:>6} {row.figure:<14} {row.value:>14,.2f}"
              + (f"  ratio {row.ratio:.2f}" if row.ratio is not None else "")
              + (f"  {row.note}" if row.note else ""), flush=True)


def _pmd(socket: str, role: str, mode: str, core: int, **kw: object) -> TestPmd:
    """A testpmd forwarding on ``core`` (its main lcore sits on the other core)."""
    other = 1 - core
    return TestPmd(socket=socket, role=role, forward_mode=mode, cores="0,1",
                   main_lcore=other, **kw)  # type: ignore[arg-type]


def _worker(case: str, socket: str, role: str, seconds: float, core: int,
            **options: object) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "bench.worker", case, "--socket", socket, "--role", role,
           "--seconds", str(seconds), "--core", str(core)]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


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


def case_anchor(b: Bench, name: str = "anchor") -> None:
    sock = b.socket(name)
    with _pmd(sock, "server", "rxonly", PY_CORE) as server:
        server.wait_listening()
        with _pmd(sock, "client", "txonly", PMD_CORE):
            pps = _median_rate(server, b.seconds, least=5)
    b.anchor_pps = pps
    b.add(Row(name, 64, "Mpps", pps / 1e6, note="testpmd txonly → testpmd rxonly"),
          f"{name.replace('-', '_')}_64_pps")
    b.figures["dpdk_dpdk_64_pps"] = pps
    b.figures["dpdk_dpdk_64_gbps"] = round(pps * 64 * 8 / 1e9, 3)


def _rx(b: Bench, size: int, api: str) -> float:
    sock = b.socket(f"rx{size}{api}")
    worker = _worker("rx", sock, "server", b.seconds, PY_CORE, api=api, size=size,
                     buffer_size=2048)
    _wait_file(sock)
    # testpmd's txonly sends one mbuf per packet; for 9000 B it gets 9216-byte memif
    # buffers (its multi-segment txonly publishes head beyond the ring in DPDK 22.11,
    # which memif rightly refuses). Chained 9000 B packets are measured in the tx case.
    pmd_kw: dict[str, object] = {"txpkts": str(size)}
    if size > 2048:
        pmd_kw.update(mbuf_size=9216 + 128, bsize=9216)
    with _pmd(sock, "client", "txonly", PMD_CORE, **pmd_kw):
        result = _result(worker, b.seconds + 60)
    return result["pps"]


def _tx(b: Bench, size: int, api: str) -> float:
    """Python client sends; the rate testpmd itself counted is kept as a cross-check."""
    sock = b.socket(f"tx{size}{api}")
    with _pmd(sock, "server", "rxonly", PMD_CORE) as pmd:
        pmd.wait_listening()
        worker = _worker("tx", sock, "client", b.seconds + 1.5, PY_CORE, api=api, size=size)
        seen = _median_rate(pmd, b.seconds - 0.5)
        result = _result(worker, b.seconds + 60)
    b.figures[f"pmd_rx_of_{api}_tx_{size}_pps"] = seen
    return result["pps"]


def case_rx_tx(b: Bench, sizes: list[int]) -> None:
    for size in sizes:
        pps = _rx(b, size, "list")
        ratio = pps / b.anchor_pps if b.anchor_pps and size == 64 else None
        b.add(Row("rx", size, "Mpps", pps / 1e6, ratio), f"py_rx_{size}_pps")
        b.figures[f"py_rx_{size}_pps"] = pps
        b.figures[f"py_rx_{size}_gbps"] = round(pps * size * 8 / 1e9, 3)
    for size in sizes:
        pps = _tx(b, size, "list")
        ratio = pps / b.anchor_pps if b.anchor_pps and size == 64 else None
        b.add(Row("tx", size, "Mpps", pps / 1e6, ratio), f"py_tx_{size}_pps")
        b.figures[f"py_tx_{size}_pps"] = pps
        b.figures[f"py_tx_{size}_gbps"] = round(pps * size * 8 / 1e9, 3)
    _ratios(b)


def _ratios(b: Bench) -> None:
    """Every ratio to the anchor, from the figures measured so far."""
    for key, figure in (("ratio_rx_64", "py_rx_64_pps"), ("ratio_tx_64", "py_tx_64_pps"),
                        ("ratio_batch_rx_64", "batch_rx_64_pps"),
                        ("ratio_batch_tx_64", "batch_tx_64_pps")):
        if figure in b.figures and b.anchor_pps:
            b.figures[key] = round(b.figures[figure] / b.anchor_pps, 3)
    for row in b.rows:
        if row.case in ("rx", "tx", "rx-batch", "tx-batch") and row.size == 64:
            row.ratio = row.value * 1e6 / b.anchor_pps if b.anchor_pps else None


def case_batch(b: Bench) -> None:
    rx = _rx(b, 64, "batch")
    b.add(Row("rx-batch", 64, "Mpps", rx / 1e6, rx / b.anchor_pps), "batch_rx_64_pps")
    tx = _tx(b, 64, "batch")
    b.add(Row("tx-batch", 64, "Mpps", tx / 1e6, tx / b.anchor_pps), "batch_tx_64_pps")
    b.figures["batch_rx_64_pps"] = rx
    b.figures["batch_tx_64_pps"] = tx
    _ratios(b)


def case_echo(b: Bench) -> None:
    sock = b.socket("echo")
    worker = _worker("echo", sock, "server", b.seconds + 1.5, PY_CORE)
    _wait_file(sock)
    with _pmd(sock, "client", "flowgen", PMD_CORE) as pmd:
        returned = _median_rate(pmd, b.seconds - 0.5)
        result = _result(worker, b.seconds + 60)
    b.add(Row("echo", 64, "Mpps", result["pps"] / 1e6,
              note=f"testpmd flowgen saw {returned / 1e6:.2f} Mpps back"), "echo_64_pps")
    b.figures["echo_64_pps"] = result["pps"]
    b.figures["echo_64_returned_pps"] = returned


def case_pypy(b: Bench) -> None:
    sock = b.socket("pypy")
    server = _worker("rx", sock, "server", b.seconds, PY_CORE)
    _wait_file(sock)
    client = _worker("tx", sock, "client", b.seconds + 1.0, PMD_CORE)
    rx = _result(server, b.seconds + 60)
    _result(client, b.seconds + 60)
    b.add(Row("py-py", 64, "Mpps", rx["pps"] / 1e6, note="Python client → Python server"),
          "py_py_64_pps")
    b.figures["py_py_64_pps"] = rx["pps"]


def case_latency(b: Bench) -> None:
    for mode in ("polling", "interrupt"):
        sock = b.socket(f"lat{mode}")
        with _pmd(sock, "server", "macswap", PMD_CORE) as pmd:
            pmd.wait_listening()
            worker = _worker("pingpong", sock, "client", b.seconds, PY_CORE, rx_mode=mode)
            result = _result(worker, b.seconds + 60)
        short = "poll" if mode == "polling" else "intr"
        b.add(Row("latency", 64, f"{short} p50 µs", result["p50_us"]),
              f"latency_{short}_p50_us")
        b.add(Row("latency", 64, f"{short} p99 µs", result["p99_us"]),
              f"latency_{short}_p99_us")


def case_capture(b: Bench) -> None:
    """testpmd txonly → memifd server interface → gRPC Capture client."""
    spec = {"name": "cap0", "socket": "cap0.sock", "role": "server", "action": "drop"}
    with Memifd(b.workdir / "capture", [spec], PY_CORE) as daemon:
        sock = str(daemon.socket_dir / "cap0.sock")
        with _pmd(sock, "client", "txonly", PMD_CORE):
            pps, packets, dropped = grpc_capture(daemon.grpc, "cap0", b.seconds)
    b.add(Row("capture", 64, "Mpps", pps / 1e6,
              note=f"{packets:,} packets, {dropped:,} dropped by the stream"), "capture_64_pps")
    b.figures["capture_64_pps"] = pps
    b.figures["capture_64_dropped"] = dropped


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
    b.add(Row("inject", 64, "Mpps", pps / 1e6,
              note=f"ring_full {ring_full:,}; testpmd counted {seen:,}"), "inject_64_pps")
    b.figures["inject_64_pps"] = pps


def case_rest(b: Bench) -> None:
    """wrk on GET /v1/interfaces with 64 interfaces, and a bare FastAPI app beside it."""
    specs = [{"name": f"if{i}", "socket": f"s{i % 4}.sock", "id": i, "role": "server"}
             for i in range(64)]
    with Memifd(b.workdir / "rest", specs, PY_CORE) as daemon:
        payload = daemon.get("/v1/interfaces")
        rps, p99 = wrk(f"http://{daemon.http}/v1/interfaces", b.seconds)
    with bare_fastapi(payload, PY_CORE) as url:
        bare_rps, bare_p99 = wrk(url, b.seconds)
    ratio = rps / bare_rps if bare_rps else 0.0
    b.add(Row("rest", "64 if", "req/s", rps, ratio,
              note=f"p99 {p99:.1f} ms; bare FastAPI {bare_rps:,.0f} req/s, p99 {bare_p99:.1f} ms"),
          "rest_rps")
    b.figures.update(rest_rps=rps, rest_p99_ms=p99, rest_bare_rps=bare_rps,
                     rest_ratio=round(ratio, 3))


def case_idle(b: Bench) -> None:
    """64 connected, idle interfaces in interrupt mode: CPU memifd uses."""
    specs = [{"name": f"idle{i}", "socket": f"idle{i % 4}.sock", "id": i, "role": "server",
              "rx_mode": "interrupt"} for i in range(64)]
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


def case_stall(b: Bench) -> None:
    """Longest echo gap (testpmd ⇄ memifd) while big interfaces are created and deleted."""
    result = stall.measure(b.workdir / "stall", b.seconds, PY_CORE, PMD_CORE)
    quiet, churn = result["quiet"], result["churn"]
    b.add(Row("stall", 64, "quiet gap ms", quiet["max_gap_ms"],
              note=f"rtt p99.9 {quiet['rtt_p999_ms']:.2f} ms, {quiet['received']:,} echoes"),
          "stall_quiet_max_gap_ms")
    b.add(Row("stall", 64, "churn gap ms", churn["max_gap_ms"],
              note=f"rtt max {churn['rtt_max_ms']:.1f} ms, probe's own longest pause "
                   f"{churn['max_send_gap_ms']:.1f} ms, {result['cycles']} cycles of "
                   f"255 qp × 2^14; slowest connect {result['slowest_connect_s']:.2f} s, "
                   f"create {result['slowest_create_s']:.2f} s, "
                   f"delete {result['slowest_delete_s']:.2f} s, lost {churn['lost']:,}"),
          "stall_churn_max_gap_ms")
    b.figures.update(
        stall_churn_rtt_max_ms=round(churn["rtt_max_ms"], 3), stall_cycles=result["cycles"],
        stall_slowest_connect_s=round(result["slowest_connect_s"], 3),
    )


CASES: dict[str, Callable[[Bench, argparse.Namespace], None]] = {
    "anchor": lambda b, a: case_anchor(b),
    "rxtx": lambda b, a: case_rx_tx(b, [64, 1500] if a.quick else [64, 512, 1500, 9000]),
    "batch": lambda b, a: case_batch(b),
    "echo": lambda b, a: case_echo(b),
    "pypy": lambda b, a: case_pypy(b),
    "latency": lambda b, a: case_latency(b),
    "capture": lambda b, a: case_capture(b),
    "inject": lambda b, a: case_inject(b),
    "rest": lambda b, a: case_rest(b),
    "idle": lambda b, a: case_idle(b),
    "stall": lambda b, a: case_stall(b),
}


def plot(rows: list[Row], path: str) -> None:
    """Draw the rates of the table as bars, Mpps and ratio to DPDK."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in rows if r.figure == "Mpps"]
    labels = [f"{r.case}\n{r.size} B" for r in rates]
    fig, ax = plt.subplots(figsize=(max(8, len(rates) * 0.9), 4.5))
    bars = ax.bar(labels, [r.value for r in rates],
                  color=["#555" if r.case.startswith("anchor") else "#2a7ab0" for r in rates])
    for bar, row in zip(bars, rates, strict=True):
        text = f"{row.value:.1f}" + (f"\n×{row.ratio:.2f}" if row.ratio is not None else "")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max((r.value for r in rates), default=1.0) * 1.18)
    ax.set_ylabel("million packets per second")
    ax.set_title("memif in pure Python vs DPDK testpmd (one core per side)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per case")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per case")
    parser.add_argument("--only", help=f"comma-separated cases of {','.join(CASES)}")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the table into a PNG")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    selected = args.only.split(",") if args.only else list(CASES)
    unknown = set(selected) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        parser.error("needs at least 2 cores")
    with tempfile.TemporaryDirectory(prefix="memif-bench-", dir="/tmp") as tmp, exclusive():
        bench = Bench(seconds=seconds, workdir=Path(tmp))
        print(f"memif benchmark, {seconds:g} s per case; testpmd on core {PMD_CORE}, "
              f"Python on core {PY_CORE}", flush=True)
        if "anchor" not in selected:
            selected.insert(0, "anchor")
        for name in selected:
            CASES[name](bench, args)
        if len(selected) > 2:
            # DPDK again at the end: the anchor is the better of the two runs, so a
            # noisy moment at the start cannot flatter the Python ratios.
            first = bench.anchor_pps
            case_anchor(bench, "anchor-end")
            bench.anchor_pps = max(first, bench.anchor_pps)
            bench.figures["dpdk_dpdk_64_pps"] = bench.anchor_pps
            bench.figures["dpdk_dpdk_64_gbps"] = round(bench.anchor_pps * 64 * 8 / 1e9, 3)
            _ratios(bench)
        print(f"\nsummary (ratios to DPDK ⇄ DPDK at {bench.anchor_pps / 1e6:.2f} Mpps)")
        print(f"  {'case':<10} {'size':>6} {'figure':<14} {'value':>14}  ratio")
        for row in bench.rows:
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
            print(f"  {row.case:<10} {row.size!s:>6} {row.figure:<14} {row.value:>14,.2f}  {ratio}")
        if args.plot:
            plot(bench.rows, args.plot)
        print(json.dumps(bench.figures, sort_keys=True))
    return 0
