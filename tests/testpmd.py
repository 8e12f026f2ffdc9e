"""Run ``dpdk-testpmd`` with the ``net_memif`` driver as a real peer in tests and benchmarks.

Each instance gets its own ``--file-prefix`` and log file; it is killed on exit.
A cross-process lock serialises instances: two busy-polling testpmds take both
cores of a small machine, so interop tests and benchmarks run one at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import WaitTimeout, wait_until

TESTPMD = shutil.which("dpdk-testpmd")
LOCK_PATH = Path(tempfile.gettempdir()) / "memif-testpmd.lock"
_counter = itertools.count()
_STATS = re.compile(r"RX-packets:\s*(\d+)\s+RX-missed:\s*(\d+)\s+RX-bytes:\s*(\d+)")
_TX_STATS = re.compile(r"TX-packets:\s*(\d+)\s+TX-errors:\s*(\d+)\s+TX-bytes:\s*(\d+)")
_PPS = re.compile(r"Rx-pps:\s*(\d+)\s+Rx-bps:\s*(\d+)")
_TX_PPS = re.compile(r"Tx-pps:\s*(\d+)\s+Tx-bps:\s*(\d+)")


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the machine-wide testpmd lock."""
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class TestPmd:
    """One dpdk-testpmd process with a single memif port."""

    __test__ = False  # not a pytest test class, despite its name

    socket: str
    role: str = "server"
    forward_mode: str = "macswap"
    id: int = 0
    secret: str | None = None
    abstract: bool = False
    zero_copy: bool = False
    rsize: int | None = None
    bsize: int | None = None
    queues: int = 1
    cores: str = "0,1"
    main_lcore: int | None = None
    txpkts: str | None = None
    mbuf_size: int | None = None
    burst: int | None = None
    extra_vdev: str = ""
    extra_ports: tuple[str, ...] = ()  # more --vdev arguments, one port each
    stats_period: int = 1
    log_dir: Path | None = None  # default: a private temporary folder, removed on kill
    proc: subprocess.Popen[bytes] | None = None
    final_log: str | None = None

    def __post_init__(self) -> None:
        self.prefix = f"memif{os.getpid()}x{next(_counter)}"
        self._own_log_dir = self.log_dir is None
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="testpmd-"))
        self.log_path = self.log_dir / f"{self.prefix}.log"

    def command(self) -> list[str]:
        """The full command line."""
        if TESTPMD is None:
            raise RuntimeError("dpdk-testpmd not found: install the Debian packages dpdk-dev")
        sock = self.socket[1:] if self.abstract and self.socket.startswith("@") else self.socket
        vdev = [
            f"net_memif0,role={self.role}",
            f"socket={sock}",
            f"id={self.id}",
            f"socket-abstract={'yes' if self.abstract else 'no'}",
        ]
        if self.secret is not None:
            vdev.append(f"secret={self.secret}")
        if self.zero_copy:
            vdev.append("zero-copy=yes")
        if self.rsize is not None:
            vdev.append(f"rsize={self.rsize}")
        if self.bsize is not None:
            vdev.append(f"bsize={self.bsize}")
        if self.extra_vdev:
            vdev.append(self.extra_vdev)
        eal = [
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "-l",
            self.cores,
            f"--file-prefix={self.prefix}",
            "--log-level=pmd.net.memif:info",
        ]
        if self.main_lcore is not None:
            eal.append(f"--main-lcore={self.main_lcore}")
        if self.zero_copy:
            eal.append("--single-file-segments")
        app = [
            f"--forward-mode={self.forward_mode}",
            "--auto-start",
            "--total-num-mbufs=16384",
            "--stats-period",
            str(self.stats_period),
        ]
        if self.queues > 1:
            app += [f"--rxq={self.queues}", f"--txq={self.queues}"]
            nb_cores = min(self.queues, len(self.cores.split(",")) - 1) or 1
            app.append(f"--nb-cores={nb_cores}")
        if self.mbuf_size is not None:
            app.append(f"--mbuf-size={self.mbuf_size}")
        if self.txpkts is not None:
            app.append(f"--txpkts={self.txpkts}")
        if self.burst is not None:
            app.append(f"--burst={self.burst}")
        ports = [f"--vdev={','.join(vdev)}", *(f"--vdev={port}" for port in self.extra_ports)]
        return [TESTPMD, *eal, *ports, "--", *app]

    def start(self) -> TestPmd:
        """Start the process (removing a stale socket file for a server)."""
        if self.role == "server" and not self.abstract:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket)
        self.final_log = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_listening(self, timeout: float = 15.0) -> None:
        """For a server: wait until it listens on its socket."""

        def ready() -> bool:
            if self.listening():
                return True
            self.check_alive()
            return False

        wait_until(ready, timeout, 0.05, lambda: f"testpmd on {self.socket}:\n{self.log()}")

    def listening(self) -> bool:
        """Whether the server's socket is there: its file, or its abstract name (which
        ``/proc/net/unix`` shows with a leading ``@``, padding NULs as more of them)."""
        if not self.abstract:
            return os.path.exists(self.socket)
        name = "@" + self.socket.removeprefix("@")
        with open("/proc/net/unix") as table:
            return any(line.split()[-1].rstrip("@") == name for line in table)

    def check_alive(self) -> None:
        """Raise with the log if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"testpmd exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        """The process output so far."""
        if self.final_log is not None:
            return self.final_log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def rx_stats(self) -> tuple[int, int]:
        """Latest cumulative (RX-packets, RX-bytes) printed by testpmd."""
        found = _STATS.findall(self.log())
        return (int(found[-1][0]), int(found[-1][2])) if found else (0, 0)

    def tx_stats(self) -> tuple[int, int]:
        """Latest cumulative (TX-packets, TX-bytes) printed by testpmd."""
        found = _TX_STATS.findall(self.log())
        return (int(found[-1][0]), int(found[-1][2])) if found else (0, 0)

    def rates(self) -> list[tuple[int, int, int, int]]:
        """Every (rx_pps, rx_bps, tx_pps, tx_bps) sample printed so far."""
        text = self.log()
        rx = _PPS.findall(text)
        tx = _TX_PPS.findall(text)
        return [(int(a), int(b), int(c), int(d)) for (a, b), (c, d) in zip(rx, tx, strict=False)]

    def wait_rx(self, packets: int, timeout: float = 20.0) -> int:
        """Wait until testpmd reports at least ``packets`` received; returns the count."""
        count = 0

        def arrived() -> bool:
            nonlocal count
            count = self.rx_stats()[0]
            if count >= packets:
                return True
            self.check_alive()
            return False

        with contextlib.suppress(WaitTimeout):
            wait_until(arrived, timeout, 0.2)
        return count

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process group and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        self.final_log = self.log()  # keep the output readable after the files go
        if self._own_log_dir:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
        else:
            self.log_path.unlink(missing_ok=True)
        if self.role == "server" and not self.abstract:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket)

    def __enter__(self) -> TestPmd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def available() -> bool:
    """True when dpdk-testpmd and the memif driver are installed."""
    return TESTPMD is not None
