"""Runs on the worker thread: the registry of capture, event and exchange subscriptions.

A capture is listed once in :attr:`EngineState.captures` and on every entry it
watches (``entry.captures``, replaced whole so the data path iterates a stable
list); an exchange sits on its entry; event subscribers get every LinkEvent.
"""

from __future__ import annotations

import time

from memifd.core.engine.state import Capture, EngineState, Entry, Exchange
from memifd.core.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from memifd.core.models import LinkEvent
from memifd.core.subscription import Subscription


class Streams:
    """Adds, ends and times out the subscriptions the worker feeds."""

    def __init__(self, state: EngineState) -> None:
        self._state = state

    # -- captures ---------------------------------------------------------------------------------

    def add_capture(self, cap: Capture) -> None:
        """Start feeding ``cap``; its interfaces must exist and have the queue it filters on."""
        state = self._state
        names = cap.names
        missing = sorted(names - state.entries.keys()) if names is not None else []
        if missing:
            raise NotFoundError(f"interface {missing[0]!r} not found")
        for name in sorted(names or ()):
            _check_queue(state.entries[name], cap.flt.queue)
        state.captures.append(cap)
        for entry in state.entries.values():
            if names is None or entry.name in names:
                entry.captures = [*entry.captures, cap]

    def drop_capture(self, cap: Capture) -> None:
        """Stop feeding ``cap`` (its reader closed it)."""
        state = self._state
        if cap in state.captures:
            state.captures.remove(cap)
        for entry in state.entries.values():
            if cap in entry.captures:
                entry.captures = [c for c in entry.captures if c is not cap]

    def end_capture(self, cap: Capture, reason: str) -> None:
        """Stop feeding ``cap`` and end its stream with ``reason``."""
        self.drop_capture(cap)
        cap.sub.end(reason)

    def for_new_entry(self, entry: Entry) -> None:
        """Give a new entry the captures of every interface."""
        entry.captures = [c for c in self._state.captures if c.names is None]

    def entry_deleted(self, entry: Entry, reason: str) -> None:
        """End the captures whose last interface ``entry`` was, and its exchange."""
        state = self._state
        name = entry.name
        for cap in list(state.captures):
            if (
                cap.names is not None
                and name in cap.names
                and not any(other in state.entries for other in cap.names)
            ):
                self.end_capture(cap, reason)
        if entry.exchange is not None:
            entry.exchange.rx.end(reason)
            entry.exchange = None

    def next_deadline(self) -> float:
        """When the next capture's duration ends (``inf``: none)."""
        return min(
            (cap.deadline for cap in self._state.captures if cap.deadline is not None),
            default=float("inf"),
        )

    def end_expired(self, now: float) -> None:
        """End the captures whose duration has passed."""
        for cap in list(self._state.captures):
            if cap.deadline is not None and cap.deadline <= now:
                self.end_capture(cap, "duration reached")

    # -- events -----------------------------------------------------------------------------------

    def add_event_sub(self, sub: Subscription[LinkEvent], interface: str | None) -> None:
        """Send LinkEvents to ``sub``; ``interface``, when given, must exist."""
        if interface is not None:
            self._state.entry(interface)  # NotFoundError rather than a stream that stays silent
        self._state.event_subs.append(sub)

    def drop_event_sub(self, sub: Subscription[LinkEvent]) -> None:
        """Stop sending LinkEvents to ``sub``."""
        if sub in self._state.event_subs:
            self._state.event_subs.remove(sub)

    # -- exchanges --------------------------------------------------------------------------------

    def attach_exchange(self, session: Exchange) -> None:
        """Make ``session`` the packet endpoint of its interface (one per interface)."""
        entry = self._state.entries.get(session.interface)
        if entry is None:
            raise NotFoundError(f"interface {session.interface!r} not found")
        if entry.exchange is not None:
            raise AlreadyExistsError(f"interface {session.interface!r} already has an exchange")
        entry.exchange = session

    def detach_exchange(self, session: Exchange) -> None:
        """Give the interface's packets back to its action."""
        entry = self._state.entries.get(session.interface)
        if entry is not None and entry.exchange is session:
            entry.exchange = None

    # -- shutdown ---------------------------------------------------------------------------------

    def end_all(self, reason: str) -> None:
        """End every stream with ``reason``."""
        state = self._state
        for entry in state.entries.values():
            if entry.exchange is not None:
                entry.exchange.rx.end(reason)
        for cap in list(state.captures):
            self.end_capture(cap, reason)
        for sub in state.event_subs:
            sub.end(reason)
        state.event_subs = []


def capture_deadline(duration: float | None) -> float | None:
    """The monotonic time a capture of ``duration`` seconds started now ends."""
    return None if duration is None else time.monotonic() + duration


def _check_queue(entry: Entry, index: int | None) -> None:
    """Refuse a queue filter the interface cannot match: it would wait forever."""
    queues = len(entry.rx)
    if index is not None and not 0 <= index < queues:
        raise InvalidArgumentError(
            "queue", f"queue {index} is outside 0..{queues - 1} (interface {entry.name!r})"
        )
