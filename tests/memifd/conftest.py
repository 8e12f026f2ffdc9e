"""Fixtures of the memifd tests: a manager on a private socket directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from memifd.core.manager import Manager
from memifd.core.settings import Settings


@pytest.fixture
def manager(sock_dir: Path) -> Iterator[Manager]:
    mgr = Manager(Settings(socket_dir=sock_dir))
    mgr.start()
    yield mgr
    mgr.stop()
