"""Waiting for an event in tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "",
) -> T:
    """Poll ``predicate()`` every ``interval`` seconds until it returns a true value; return it.

    After ``timeout`` seconds without one, raise :class:`WaitTimeout` naming ``message``
    (or the predicate). The predicate is asked once more at the deadline, so a slow
    check still gets its last chance.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
