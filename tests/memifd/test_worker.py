"""The engine's worker thread on its own: commands, cancellation, fd watching and timers,
with hooks standing in for the rest of the engine."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from memifd.core.engine.worker import Worker
from memifd.core.errors import NotFoundError, UnavailableError

from tests.memifd.rest_support import wait_for


class Hooks:
    """Records what the loop asks; a timer is due at ``due``."""

    def __init__(self) -> None:
        self.turns = 0
        self.changes = 0
        self.due = float("inf")
        self.fired: list[float] = []

    def wait_limit(self) -> float | None:
        return None

    def turn(self) -> None:
        self.turns += 1

    def next_due(self) -> float:
        return self.due

    def on_due(self, now: float) -> None:
        self.fired.append(now)
        self.due = float("inf")

    def on_change(self) -> None:
        self.changes += 1


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def worker(hooks: Hooks) -> Iterator[Worker]:
    worker = Worker(hooks, name="test-worker")
    worker.start()
    yield worker
    worker.stopping = True
    worker.post(lambda: None)  # wakes the loop so it sees stopping
    assert worker.join(5)
    worker.close()


def test_call_runs_on_the_worker_and_returns_or_raises(worker: Worker, hooks: Hooks) -> None:
    assert worker.call(threading.current_thread, timeout=5).name == "test-worker"
    with pytest.raises(NotFoundError, match="nothing here"):
        worker.call(_raise, NotFoundError("nothing here"), timeout=5)
    assert hooks.changes == 2  # a failed command may have changed something too


def test_a_command_not_started_when_its_caller_gives_up_never_runs(worker: Worker) -> None:
    release = threading.Event()
    worker.post(release.wait, 10)  # holds the worker
    ran: list[str] = []
    with pytest.raises(
        UnavailableError, match=r"did not answer within 0\.2 s; nothing was changed"
    ):
        worker.call(ran.append, "late", timeout=0.2)
    release.set()
    worker.call(ran.append, "next", timeout=5)  # commands run in order: the late one was skipped
    assert ran == ["next"]


def test_a_stalled_worker_refuses_at_once(worker: Worker) -> None:
    release = threading.Event()
    worker.post(release.wait, 10)
    assert wait_for(lambda: worker.stall >= 0.2, timeout=5)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="stalled for"):
        worker.call(lambda: None, timeout=5, stall_limit=0.2)
    assert time.monotonic() - started < 1
    release.set()


def test_a_stopped_worker_is_unavailable(hooks: Hooks) -> None:
    idle = Worker(hooks)
    with pytest.raises(UnavailableError, match="not running"):
        idle.call(lambda: None, timeout=1)


def test_a_watched_fd_calls_back_on_the_worker(worker: Worker) -> None:
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    seen: list[str] = []

    def ready() -> None:
        os.eventfd_read(fd)
        seen.append(threading.current_thread().name)

    try:
        worker.call(worker.watch, fd, ready, timeout=5)
        os.eventfd_write(fd, 1)
        assert wait_for(lambda: seen == ["test-worker"], timeout=5)
        worker.call(worker.unwatch, fd, timeout=5)
        os.eventfd_write(fd, 1)
        worker.call(lambda: None, timeout=5)  # a turn after the write
        assert seen == ["test-worker"]
    finally:
        os.close(fd)


def test_timers_fire_when_due_and_the_loop_turns_without_them(worker: Worker, hooks: Hooks) -> None:
    due = time.monotonic() + 0.1

    def arm() -> None:
        hooks.due = due

    worker.call(arm, timeout=5)  # the worker looks at the timers after every command
    assert wait_for(lambda: len(hooks.fired) == 1, timeout=5)
    assert hooks.fired[0] >= due
    turns = worker.turns
    assert wait_for(lambda: worker.turns > turns, timeout=5)  # the heartbeat, with nothing to do


def _raise(exc: Exception) -> None:
    raise exc
