"""Fixtures shared by every test: short socket directories, fd accounting, testpmd."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests import testpmd as testpmd_mod

# Property tests judge behaviour, not speed: no per-example deadline (a loaded
# 2-core machine would trip it), and in CI the same examples every run.
settings.register_profile("memifd", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("memifd")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for socket files (sun_path holds at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="memif-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def open_fds() -> set[int]:
    """The fds this process has open right now (not the one used to list them)."""
    listed = {int(name) for name in os.listdir("/proc/self/fd")}
    alive = set()
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue  # the directory fd of the listing itself, closed by now
        alive.add(fd)
    return alive


@pytest.fixture
def testpmd() -> Iterator[Callable[..., testpmd_mod.TestPmd]]:
    """Factory for dpdk-testpmd peers; holds the machine-wide lock, kills them after."""
    if not testpmd_mod.available():
        pytest.fail("dpdk-testpmd is not installed (Debian package dpdk-dev); run `make test`")
    started: list[testpmd_mod.TestPmd] = []
    with testpmd_mod.exclusive():

        def make(**kwargs: object) -> testpmd_mod.TestPmd:
            pmd = testpmd_mod.TestPmd(**kwargs).start()  # type: ignore[arg-type]
            started.append(pmd)
            return pmd

        try:
            yield make
        finally:
            for pmd in started:
                pmd.kill()
