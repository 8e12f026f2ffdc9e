"""The fd table is grown once at start, and leaves nothing open behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from memifd.core.limits import FD_TABLE_RESERVE, reserve_fd_table


def _fd_table_size(pid: int) -> int:
    """The kernel's fd table size of ``pid`` (``FDSize`` in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("FDSize:"):
                return int(line.split()[1])
    raise AssertionError("no FDSize line")


def test_reserve_grows_the_table_and_closes_its_fd() -> None:
    script = textwrap.dedent(
        """
        import os, resource
        from memifd.core.limits import reserve_fd_table
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        before = set(os.listdir("/proc/self/fd"))
        print(reserve_fd_table(4096))
        print(set(os.listdir("/proc/self/fd")) == before)
        print(open("/proc/self/status").read().split("FDSize:")[1].split()[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    reserved, nothing_left, size = done.stdout.split()
    assert reserved == "4096"
    assert nothing_left == "True"
    assert int(size) >= 4096


def test_reserve_is_capped_and_skips_a_table_already_that_large() -> None:
    assert FD_TABLE_RESERVE == 65536
    assert reserve_fd_table(2) == 0  # nothing to reserve below the standard streams
    top = os.dup2(2, 999, inheritable=False)  # fd 999 in use: the table is that large
    try:
        assert reserve_fd_table(1000) == 0
        assert os.get_inheritable(top) is False  # and it was left alone
        assert _fd_table_size(os.getpid()) >= 1000
    finally:
        os.close(top)
