"""tests/waiting.py: wait_until returns the predicate's first true value, or fails in time."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.waiting import WaitTimeout, wait_until


def test_returns_the_first_true_value() -> None:
    answers = iter([0, "", None, [7]])
    assert wait_until(lambda: next(answers), timeout=5, interval=0) == [7]


def test_fails_after_the_timeout_naming_what_it_waited_for() -> None:
    asked = itertools.count()
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"after 0\.2 s waiting for the moon"):
        wait_until(lambda: next(asked) < 0, timeout=0.2, interval=0.01, message="the moon")
    assert 0.2 <= time.monotonic() - start < 5
    assert next(asked) > 2  # asked again and again, not once


def test_a_callable_message_describes_the_end_state() -> None:
    state = {"seen": 0}

    def check() -> bool:
        state["seen"] += 1
        return False

    with pytest.raises(WaitTimeout) as failure:
        wait_until(check, timeout=0.05, interval=0.01, message=lambda: f"seen {state['seen']}")
    assert f"seen {state['seen']}" in str(failure.value)
    assert isinstance(failure.value, AssertionError)  # pytest reports it as a failed check
