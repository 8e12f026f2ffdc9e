"""``python -m memif responder`` with dpdk-testpmd as its peer.

testpmd cannot send ARP requests or pings, so its ``txonly`` mode (UDP) checks
what the responder is for: the link comes up, traffic is read and counted, and
the responder leaves cleanly.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import testpmd as testpmd_mod
from tests.memif.responder_process import ResponderProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_responder_server_reads_testpmd_traffic(
    zero_copy: bool, sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "resp.sock")
    unsealed = ["--accept-unsealed-regions"] if zero_copy else []
    responder = ResponderProcess("--socket", path, "--role", "server", *unsealed)
    try:
        responder.wait_for("listening on")
        pmd = testpmd(socket=path, role="client", forward_mode="txonly", zero_copy=zero_copy)
        assert "(app 'DPDK" in responder.wait_for("link up:", timeout=15.0), pmd.log()[-2000:]
        wait_until(
            lambda: pmd.tx_stats()[0] >= 1000,
            15.0,
            0.1,
            lambda: f"1000 packets sent; testpmd log:\n{pmd.log()[-2000:]}",
        )
        pmd.kill()
        assert "peer closed" in responder.wait_for("link down:")
        assert responder.stop(signal.SIGTERM) == 0
        summary = responder.wait_for("stopped:")
    finally:
        responder.kill()
    found = re.search(r"received (\d+) packets, .* ignored (\d+)", summary)
    assert found is not None, summary
    received, ignored = int(found[1]), int(found[2])
    assert received >= 1000 and ignored == received, summary  # UDP is not for the responder
    assert not Path(path).exists()


def test_responder_refuses_zero_copy_testpmd_by_default(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd]
) -> None:
    path = str(sock_dir / "resp.sock")
    responder = ResponderProcess("--socket", path, "--role", "server")
    try:
        responder.wait_for("listening on")
        testpmd(socket=path, role="client", forward_mode="txonly", zero_copy=True)
        assert "F_SEAL_SHRINK" in responder.wait_for("peer refused:", timeout=15.0)
        assert responder.stop(signal.SIGTERM) == 0
        assert "received 0 packets" in responder.wait_for("stopped:")
    finally:
        responder.kill()
