"""The benchmark runs end to end in --quick mode (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REQUIRED = {
    "dpdk_dpdk_64_pps",
    "py_rx_64_pps",
    "py_tx_64_pps",
    "ratio_rx_64",
    "ratio_tx_64",
    "batch_rx_64_pps",
    "batch_tx_64_pps",
    "ratio_batch_rx_64",
    "ratio_batch_tx_64",
    "py_rx_1500_gbps",
    "py_tx_1500_gbps",
    "echo_64_pps",
    "latency_poll_p50_us",
    "latency_intr_p50_us",
    "idle_cpu_pct",
    "capture_64_pps",
    "inject_64_pps",
    "rest_rps",
    "rest_ratio",
    "stall_quiet_max_gap_ms",
    "stall_churn_max_gap_ms",
    "turns_server_cpu_ms",
    "turns_client_cpu_ms",
}


def test_quick_benchmark_prints_every_figure(tmp_path: Path) -> None:
    plot = tmp_path / "bench.png"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--plot", str(plot)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    missing = REQUIRED - figures.keys()
    assert not missing, f"figures missing: {sorted(missing)}"
    measured = {k: v for k, v in figures.items() if k.endswith("_pps")}
    assert all(v > 0 for v in measured.values()), measured  # every case moved packets
    for name in ("py_rx_64", "py_tx_64", "py_rx_1500", "py_tx_1500", "batch_rx_64", "batch_tx_64"):
        # interleaved: three rounds, each an anchor window and a case window
        rounds = figures[f"{name}_pps_rounds"]
        anchors = figures[f"{name}_anchor_pps_rounds"]
        ratios = figures[f"{name}_ratio_rounds"]
        assert len(rounds) == len(anchors) == len(ratios) == 3, name
        assert all(r > 0 for r in rounds + anchors), name
        assert figures[f"{name}_lost"] == 0, f"{name}: packets lost after the ring took them"
        assert figures[f"{name}_faults_per_packet"] < 0.05, f"{name}: page faults per packet"
    assert plot.stat().st_size > 10_000
