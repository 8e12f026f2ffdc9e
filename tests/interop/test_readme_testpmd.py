"""The README's examples that need dpdk-testpmd, run as written.

Only ``/run/memif`` and ``/tmp/memif`` are moved to a directory that does not
exist yet, as on a fresh machine; the commands are the README's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import testpmd as testpmd_mod
from tests.memif.responder_process import ResponderProcess
from tests.readme import block_after
from tests.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.interop

RX_PACKETS = re.compile(r"RX-packets:\s*(\d+)")


def shell(script: str, log: Path) -> subprocess.Popen[bytes]:
    """``script`` in bash, in a session of its own (to kill testpmd with it)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], prefix: str) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)


def wait_rx(log: Path, packets: int, alive: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """testpmd's latest RX-packets once it reaches ``packets`` (or the last seen)."""
    seen = 0

    def done() -> bool:
        nonlocal seen
        found = RX_PACKETS.findall(log.read_text(errors="replace"))
        seen = int(found[-1]) if found else 0
        return seen >= packets or alive.poll() is not None

    with contextlib.suppress(WaitTimeout):
        wait_until(done, timeout, 0.2)
    return seen


def test_library_example_echoes_testpmd_traffic_on_a_fresh_machine(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    fresh = sock_dir / "fresh"  # the README's /run/memif, not created yet
    echo = block_after("## The library in 15 lines", "python").replace("/run/memif", str(fresh))
    pmd = block_after("Try it against DPDK", "sh").replace("/run/memif", str(fresh))
    assert not fresh.exists()
    python = subprocess.Popen([sys.executable, "-c", echo], stderr=subprocess.PIPE, text=True)
    log = sock_dir / "testpmd.log"
    dpdk = shell(pmd, log)
    try:
        received = wait_rx(log, 10_000, dpdk)
        assert received >= 10_000, log.read_text()[-3000:]  # the Python side echoed them
        assert python.poll() is None
    finally:
        stop(dpdk, "echo")
        python.kill()
        python.communicate()


def test_responder_example_with_testpmd(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    fresh = str(sock_dir / "fresh")
    lines = block_after("### With DPDK testpmd", "sh").replace("/tmp/memif", fresh).splitlines()
    responder_line = lines[0]
    assert responder_line.startswith("python -m memif responder ")
    pmd = "\n".join(line for line in lines[1:] if not line.startswith("#"))
    responder = ResponderProcess(*responder_line.split()[4:])
    log = sock_dir / "testpmd.log"
    dpdk = None
    try:
        responder.wait_for("listening on")
        dpdk = shell(pmd, log)
        assert "(app 'DPDK" in responder.wait_for("link up: peer 'net_memif0'", timeout=20)
        time.sleep(1)  # txonly traffic flows
        stop(dpdk, "responder")
        assert "peer closed" in responder.wait_for("link down:")
        assert responder.stop(signal.SIGINT) == 0
        summary = responder.wait_for("stopped:")
    finally:
        if dpdk is not None:
            stop(dpdk, "responder")
        responder.kill()
    found = re.search(r"received (\d+) packets, answered 0 ARP .* ignored (\d+)", summary)
    assert found is not None and int(found[1]) > 0 and found[1] == found[2], summary
