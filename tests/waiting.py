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
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate()`` every ``interval`` seconds until it returns a true value; return it.

    After ``timeout`` seconds without one, raise :class:`WaitTimeout` naming ``message``
    (or the predicate); a callable message is built then, to show the state at the end.
    The predicate is asked once more after the deadline, so a slow check gets its last
    chance.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)
