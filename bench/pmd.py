"""testpmd under remote control: paused between measuring windows, counters on demand.

A :class:`Pmd` runs testpmd interactively with its commands on a pipe. It is
paused with SIGSTOP whenever it is not being measured, so the two cores stay
free for whatever is measured next, and ``show port stats`` gives counters and
testpmd's own rate since the previous call at any moment.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TypedDict

from tests.testpmd import TestPmd

_BLOCK = re.compile(
    r"RX-packets:\s*(\d+).*?TX-packets:\s*(\d+).*?Throughput \(since last show\)\s*"
    r"Rx-pps:\s*(\d+).*?Tx-pps:\s*(\d+)",
    re.S,
)
_SHOW = "show port stats 0"


class PmdSizing(TypedDict, total=False):
    """Buffer sizes testpmd needs for packets larger than its defaults."""

    mbuf_size: int
    bsize: int


@dataclass(frozen=True)
class PortStats:
    """Counters of port 0 and the rates since the previous :meth:`Pmd.stats`."""

    rx_packets: int
    tx_packets: int
    rx_pps: int
    tx_pps: int


class Pmd(TestPmd):
    """An interactive testpmd; see the module docstring."""

    __test__ = False

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--stats-period")
        # stdout is a file: line buffering makes each answer readable at once
        return ["stdbuf", "-oL", *cmd[:at], "-i", *cmd[at + 2 :]]

    def start(self) -> Pmd:
        if self.role == "server" and os.path.exists(self.socket):
            os.unlink(self.socket)
        self.final_log = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running = True
        return self

    def __enter__(self) -> Pmd:
        return self.start()

    def send(self, line: str) -> None:
        """Type one command line."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stats(self, timeout: float = 10.0) -> PortStats:
        """Ask for port 0's statistics and wait for the answer."""
        seen = self.log().count("since last show")
        self.send(_SHOW)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count("since last show") > seen:
                found = _BLOCK.findall(text)
                if found:
                    rx, tx, rx_pps, tx_pps = (int(v) for v in found[-1])
                    return PortStats(rx, tx, rx_pps, tx_pps)
            if time.monotonic() > deadline:
                self.check_alive()
                raise TimeoutError(f"testpmd did not answer {_SHOW!r}:\n{text[-2000:]}")
            time.sleep(0.005)

    def wait_connected(self, timeout: float = 20.0) -> None:
        """Wait until the memif link is up (the driver logs it)."""
        deadline = time.monotonic() + timeout
        while "Connected" not in self.log():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"testpmd did not connect:\n{self.log()[-2000:]}")
            time.sleep(0.02)

    def pause(self) -> None:
        """Stop every thread of testpmd (SIGSTOP) so it takes no CPU."""
        if self.proc is not None and self.running:
            os.killpg(self.proc.pid, signal.SIGSTOP)
            self.running = False

    def resume(self) -> None:
        """Let testpmd run again."""
        if self.proc is not None and not self.running:
            os.killpg(self.proc.pid, signal.SIGCONT)
            self.running = True

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
        super().kill(sig)
