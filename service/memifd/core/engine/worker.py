"""Runs the worker thread and is the only module that knows it: loop, commands, timers, fds.

Other threads hand the worker work with :meth:`Worker.call` (wait for the
result) or :meth:`Worker.post` (do not wait) over a queue plus an eventfd it
waits on; a command whose caller gave up waiting before it started is
cancelled, never applied later. The rest of the engine reaches the loop
through :class:`Hooks`.

The worker sleeps in ``epoll`` on the command eventfd and every fd it was told
to watch, so an idle daemon costs nothing and does not hold the GIL. It turns
at least every :data:`HEARTBEAT` seconds, so :attr:`Worker.stall` (seconds
since the last turn) is a watchdog. One turn runs commands for at most
:data:`COMMAND_BUDGET` seconds; the rest waits for the next turn.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from memifd.core.errors import UnavailableError

log = logging.getLogger("memifd.manager")

HEARTBEAT = 0.5  # the worker's loop turns at least this often (seconds)
COMMAND_BUDGET = 0.005  # seconds of commands per turn; the rest waits for the next turn
_MAX_EVENTS = 256
_KICK = (1).to_bytes(8, "little")

R = TypeVar("R")

_Command = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any] | None"]


class Hooks(Protocol):
    """What the worker's loop asks of the engine each turn."""

    def wait_limit(self) -> float | None:
        """The longest the loop may sleep for the data path (0: work is waiting), or None."""

    def turn(self) -> None:
        """Run the data path once, after the turn's fd events were dispatched."""

    def next_due(self) -> float:
        """The monotonic time the next timer is due (``inf``: none)."""

    def on_due(self, now: float) -> None:
        """Run the timers due at ``now``."""

    def on_change(self) -> None:
        """A command ran (or failed): what readers see may have changed."""


class Worker:
    """The worker thread with its epoll, command channel and timers."""

    def __init__(self, hooks: Hooks, name: str = "memifd-worker") -> None:
        self._hooks = hooks
        self._name = name
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._cmd_fd = -1
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self._watched: dict[int, tuple[Callable[[], None], bool]] = {}
        self._timer_due = float("inf")
        self._last_turn = time.monotonic()
        #: True once the loop was told to end (it finishes its turn first).
        self.stopping = False
        #: Loop turns so far (how often it woke up).
        self.turns = 0
        #: False once the owner stopped waiting for the worker: posts are dropped.
        self.accepting = True

    # -- lifecycle, any thread ----------------------------------------------------------------

    def start(self) -> None:
        """Open the eventfd and epoll and start the thread."""
        self._cmd_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._cmd_fd, select.EPOLLIN)
        self._last_turn = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True when it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout=timeout)
        return not thread.is_alive()

    def close(self) -> None:
        """Close the epoll and eventfd (only once the thread has ended)."""
        if self._epoll is not None:
            self._epoll.close()
        os.close(self._cmd_fd)

    @property
    def started(self) -> bool:
        """True once :meth:`start` ran."""
        return self._thread is not None

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def stall(self) -> float:
        """Seconds since the loop last turned (below :data:`HEARTBEAT` when well)."""
        return max(0.0, time.monotonic() - self._last_turn)

    # -- the command channel, any thread ------------------------------------------------------

    def call(
        self,
        fn: Callable[..., R],
        *args: Any,
        timeout: float,
        stall_limit: float = float("inf"),
    ) -> R:
        """Run ``fn(*args)`` on the worker and return its result (or raise its error).

        Waits at most ``timeout`` seconds. A command the worker has not started by
        then is cancelled: it never runs. Refused at once when the loop has not
        turned for ``stall_limit`` seconds.
        """
        thread = self._thread
        if thread is threading.current_thread():
            return fn(*args)
        if thread is None or self.stopping or not thread.is_alive():
            raise UnavailableError("memifd is not running")
        stall = self.stall
        if stall >= stall_limit:
            raise UnavailableError(
                f"the worker has been stalled for {stall:.1f} s; nothing was changed"
            )
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._commands.put((fn, args, future))
        self._kick()
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise UnavailableError(
                    f"the worker did not answer within {timeout:g} s; nothing was changed"
                ) from None
        try:  # it started just now: nothing it runs blocks, so it ends soon
            return future.result(timeout=1.0)
        except concurrent.futures.TimeoutError:
            raise UnavailableError(
                f"the worker did not finish within {timeout + 1.0:g} s; the change may still "
                "be applied"
            ) from None

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` for the worker without waiting (dropped once stopped)."""
        thread = self._thread
        if thread is threading.current_thread():
            fn(*args)
            return
        if not self.accepting:
            return
        self._commands.put((fn, args, None))
        self._kick()

    def _kick(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._cmd_fd, _KICK)

    # -- fd watching, worker thread -------------------------------------------------------------

    def watch(self, fd: int, on_ready: Callable[[], None], *, reschedule: bool = False) -> None:
        """Call ``on_ready()`` on the turn ``fd`` is readable; with ``reschedule`` the
        timers are looked at again afterwards."""
        assert self._epoll is not None
        self._epoll.register(fd, select.EPOLLIN)
        self._watched[fd] = (on_ready, reschedule)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed)."""
        self._watched.pop(fd, None)
        assert self._epoll is not None
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)

    def reschedule(self) -> None:
        """Look at the timers again (after something changed their deadlines)."""
        self._timer_due = self._hooks.next_due()

    # -- the loop, worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        assert self._epoll is not None
        epoll = self._epoll
        _name_native_thread(self._name)
        while not self.stopping:
            try:
                self._turn(epoll)
            except Exception:  # a bug must not end the worker silently
                log.exception("worker error")
                time.sleep(0.05)
        self._fail_pending()

    def _turn(self, epoll: select.epoll) -> None:
        hooks = self._hooks
        events = epoll.poll(self._timeout(), _MAX_EVENTS)
        self._last_turn = time.monotonic()
        self.turns += 1
        watched = self._watched
        for fd, _mask in events:
            if fd == self._cmd_fd:
                self._run_commands()
                continue
            found = watched.get(fd)
            if found is not None:
                on_ready, reschedule = found
                on_ready()
                if reschedule:
                    self.reschedule()
        hooks.turn()
        now = time.monotonic()
        if now >= self._timer_due:
            hooks.on_due(now)
            self.reschedule()

    def _timeout(self) -> float:
        limit = self._hooks.wait_limit()
        if limit == 0.0:
            return 0.0
        wait = self._timer_due - time.monotonic()
        if limit is not None:
            wait = min(wait, limit)
        return min(max(wait, 0.0), HEARTBEAT)

    def _run_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._cmd_fd, 8)
        started = time.monotonic()
        on_change = self._hooks.on_change
        while True:
            if time.monotonic() - started > COMMAND_BUDGET and not self._commands.empty():
                self._kick()  # the rest next turn, after the data path had its turn
                break
            try:
                fn, args, future = self._commands.get_nowait()
            except queue.Empty:
                break
            if future is not None and not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                on_change()
                if future is None:
                    log.exception("worker command failed")
                else:
                    future.set_exception(exc)
            else:
                on_change()
                if future is not None:
                    future.set_result(result)
        self.reschedule()

    def _fail_pending(self) -> None:
        while True:
            try:
                _fn, _args, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if future is not None and future.set_running_or_notify_cancel():
                future.set_exception(UnavailableError("memifd is shutting down"))


def _name_native_thread(name: str) -> None:
    """Give the calling thread a name ``ps -L``, ``top -H`` and /proc show (Linux)."""
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    with contextlib.suppress(OSError), open(path, "w") as comm:
        comm.write(name[:15])
