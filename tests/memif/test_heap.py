"""Receiving bursts of large packets reuses heap memory instead of faulting it in again.

Each received packet is a fresh bytes object; when a burst of them is dropped
the C allocator must keep that memory for the next burst rather than return it
to the kernel, or every burst pays a page fault per 4 KiB it copies.
"""

from __future__ import annotations

import platform
import resource

import pytest
from memif import MemoryConfig

from tests.memif.conftest import PairFactory

PACKET = 9000
BURST = 1024  # 9 MB a burst: above any threshold the allocator picks up by itself


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="page-fault pattern of glibc malloc")
@pytest.mark.parametrize("direction", ["client-to-server", "server-to-client"])
def test_large_bursts_take_no_page_faults(pair: PairFactory, direction: str) -> None:
    p = pair(memory=MemoryConfig(log2_ring_size=10, packet_buffer_size=PACKET))
    sender, receiver = (
        (p.client, p.server)
        if direction == "client-to-server"
        else (
            p.server,
            p.client,
        )
    )
    tx, rx = sender.tx_queue(0), receiver.rx_queue(0)
    burst = [n.to_bytes(2, "little") * (PACKET // 2) for n in range(BURST)]
    received = 0
    faults = 0
    for round_ in range(12):
        assert tx.send_burst(burst) == BURST
        before = minor_faults()
        got = rx.recv_burst(BURST)
        assert len(got) == BURST and got[7] == burst[7]
        received += len(got)
        del got
        if round_ >= 2:  # the first bursts grow the heap once
            faults += minor_faults() - before
    per_packet = faults / (received - 2 * BURST)
    assert per_packet < 0.02, f"{per_packet:.3f} page faults per received packet"
