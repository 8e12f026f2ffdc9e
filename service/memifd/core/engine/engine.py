"""Runs on the worker thread: the engine's parts wired together, and the worker's hooks.

:class:`Engine` builds the shared state and the modules that work on it, and
answers what the worker's loop asks each turn (:class:`~.worker.Hooks`).
"""

from __future__ import annotations

import logging
import time

from memifd.core.engine.dataplane import DataPlane
from memifd.core.engine.links import Links
from memifd.core.engine.registry import Registry
from memifd.core.engine.state import EngineState
from memifd.core.engine.streams import Streams
from memifd.core.engine.worker import Worker
from memifd.core.settings import Settings

log = logging.getLogger("memifd.manager")


class Engine:
    """The worker with the state it owns and the modules that change it."""

    def __init__(self, settings: Settings) -> None:
        self.state = state = EngineState()
        self.worker = Worker(self)
        self.streams = Streams(state)
        self.links = Links(state)
        self.dataplane = DataPlane(state, self.worker, self.streams)
        self.registry = Registry(
            state, settings, self.worker, self.dataplane, self.links, self.streams
        )

    def wait_limit(self) -> float | None:
        """See :meth:`Hooks.wait_limit`: the data path decides."""
        return self.dataplane.wait_limit()

    def turn(self) -> None:
        """See :meth:`Hooks.turn`: read the rx queues."""
        self.dataplane.turn()

    def next_due(self) -> float:
        """See :meth:`Hooks.next_due`: socket deadlines and capture durations."""
        now = time.monotonic()
        return min(self.registry.next_deadline(now), self.streams.next_deadline())

    def on_due(self, now: float) -> None:
        """See :meth:`Hooks.on_due`."""
        self.registry.poll_due()
        self.streams.end_expired(now)

    def on_change(self) -> None:
        """See :meth:`Hooks.on_change`."""
        self.state.generation += 1

    def shutdown(self, reason: str) -> None:
        """Close every socket, end every stream, forget every interface; the loop ends."""
        self.worker.stopping = True
        self.registry.close_all(reason)
        self.streams.end_all(reason)
        self.state.entries = {}
        self.dataplane.forget_all()
        log.info("stopped", extra={"reason": reason})
