"""Why regions are sealed: a region shrunk under the mapping is SIGBUS, not an exception.

With ``accept_unsealed_regions=True`` a client can ``ftruncate`` its region
after the server mapped it; the server's next read of a vanished page raises
SIGBUS and the process dies. No check in Python can catch it, which is why the
library refuses unsealed regions by default. The crash is shown in a child
process (:mod:`tests.reliability.sigbus_victim`); a sealed region cannot be
shrunk at all.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import memif
import pytest

from tests.memif import hostile_peer as hp

ROOT = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")


def start_victim(path: str, accept_unsealed: bool) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.reliability.sigbus_victim", path]
    if accept_unsealed:
        cmd.append("--accept-unsealed")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_unsealed_region_shrunk_after_mapping_kills_the_server_with_sigbus(
    sock_dir: Path,
) -> None:
    path = str(sock_dir / "victim.sock")
    proc = start_victim(path, accept_unsealed=True)
    peer = hp.dial(path)
    mem = hp.ClientMemory(log2=4, sealed=False)
    try:
        mem.offer(peer)
        ring = mem.ring(True)
        beyond = 2 * PAGE
        assert mem.buffer(ring, 0) < PAGE < beyond < mem.size
        os.ftruncate(mem.fd, PAGE)  # the rings stay, every page of buffers past it is gone
        mem.write_descriptor(ring, 0, length=64, offset=beyond)
        mem.set_head(ring, 1)
        mem.kick(ring)
        proc.wait(timeout=20)
    finally:
        mem.close()
        peer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGBUS, (proc.returncode, proc.communicate())


def test_sealed_region_cannot_be_shrunk_and_unsealed_is_refused(sock_dir: Path) -> None:
    path = str(sock_dir / "victim.sock")
    with memif.Socket(path) as sock:
        iface = sock.create_interface(
            id=0, role="server", rx_mode="polling", memory=memif.MemoryConfig(log2_ring_size=4)
        )
        sock.start()
        unsealed = hp.ClientMemory(log2=4, sealed=False)
        peer = hp.dial(path)
        with hp.closing(peer, unsealed):
            peer.expect(hp.HELLO)
            peer.send(hp.init())
            peer.expect(hp.ACK)
            peer.send(hp.add_region(0, unsealed.size), [unsealed.fd])
            assert "F_SEAL_SHRINK" in peer.disconnect_reason()
        sealed = hp.ClientMemory(log2=4, sealed=True)
        peer = hp.dial(path)
        with hp.closing(peer, sealed):
            sealed.offer(peer)
            assert iface.wait_connected(5)
            with pytest.raises(PermissionError) as info:
                os.ftruncate(sealed.fd, PAGE)
            assert info.value.errno == errno.EPERM
            ring = sealed.ring(True)
            sealed.put_packet(ring, 0, b"still here")
            sealed.set_head(ring, 1)
            assert iface.rx_queue(0).recv_burst(8) == [b"still here"]
