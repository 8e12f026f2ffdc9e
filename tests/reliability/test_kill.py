"""``kill -9`` of the peer in the middle of traffic, many times, in both roles.

Each cycle: the peer comes up, our interface connects (our client reconnects on
its timer), echo traffic goes through, the peer dies by SIGKILL mid-traffic, our
link goes down. After all cycles this process holds exactly the fds, memfd
mappings and threads it held after the first one (see
:mod:`tests.reliability.killcycle`). The testpmd series is shorter here; the
hundred-cycle run is ``python -m bench.soak_kill``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import testpmd as testpmd_mod
from tests.reliability.killcycle import (
    ECHO_PACKETS,
    CycleReport,
    pmd_kill_cycles,
    python_kill_cycles,
)

PYTHON_CYCLES = 100
TESTPMD_CYCLES = 15
MAPS_SLACK = 4  # the allocator may map or unmap an arena; a leak would be one per cycle


def check(report: CycleReport) -> None:
    print(f"\n{report.line()}")
    delta = report.delta
    assert delta.fds == 0, report
    assert delta.memfd_maps == 0, report
    assert delta.threads == 0, report
    assert abs(delta.maps) <= MAPS_SLACK, report
    assert report.packets == report.cycles * ECHO_PACKETS


@pytest.mark.parametrize("ours", ["server", "client"])
def test_kill_python_peer_mid_traffic(sock_dir: Path, ours: str) -> None:
    check(python_kill_cycles(sock_dir, ours, PYTHON_CYCLES))


@pytest.mark.interop
@pytest.mark.parametrize("ours", ["server", "client"])
def test_kill_testpmd_mid_traffic(
    sock_dir: Path, testpmd: Callable[..., testpmd_mod.TestPmd], ours: str
) -> None:
    check(pmd_kill_cycles(sock_dir, ours, TESTPMD_CYCLES, testpmd))
