"""glibc malloc caps applied at start."""

from __future__ import annotations

import platform

import pytest
from memifd.core import malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_caps() -> None:
    assert malloc.tune() is True


def test_elsewhere_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert malloc.tune() is False
