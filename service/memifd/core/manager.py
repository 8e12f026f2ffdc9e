"""Runs on API threads: the manager, the facade API handlers (REST, gRPC) call.

Handlers never touch library objects. Changes go to the engine's worker thread
(:mod:`memifd.core.engine.worker`) as commands and the caller blocks for the
result; a command whose caller gave up waiting is cancelled, never applied
later. Reads (list, get, stats) do not wait for the worker: they read what it
published (:mod:`memifd.core.engine.views`).

:attr:`Manager.worker_stall` (seconds since the worker's loop last turned) is a
watchdog: past ``worker_stall_unready`` memifd reports not ready, past
``worker_stall_unhealthy`` not alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from memif.constants import MAX_PACKET_SIZE

from memifd.core.capture import CaptureSubscription
from memifd.core.engine import views
from memifd.core.engine.engine import Engine
from memifd.core.engine.state import Capture, Entry
from memifd.core.engine.streams import capture_deadline
from memifd.core.errors import InvalidArgumentError, UnavailableError
from memifd.core.limits import open_fds
from memifd.core.models import (
    CapturedPacket,
    CaptureFilter,
    Direction,
    InjectResult,
    InterfacePatch,
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
)
from memifd.core.settings import Settings, fallback_socket_dir
from memifd.core.socketdirs import prepare_socket_dir, socket_dir_problem
from memifd.core.subscription import BytePool, Subscription

log = logging.getLogger("memifd.manager")

PACKET_OVERHEAD = 192  # bytes a queued CapturedPacket costs beyond its data

R = TypeVar("R")


class ExchangeSession:
    """An API client acting as the packet endpoint of one interface.

    While attached, packets the interface receives go to :attr:`rx` instead of
    its action; :meth:`send` transmits. :meth:`close` detaches.
    """

    def __init__(self, manager: Manager, name: str, maxsize: int) -> None:
        self._manager = manager
        self.interface = name
        self.rx: Subscription[CapturedPacket] = manager._packet_subscription(maxsize)
        self.rx._on_close = lambda: manager._worker.post(manager._streams.detach_exchange, self)

    def send(self, packets: Sequence[bytes], queue: int = 0) -> InjectResult:
        """Transmit ``packets`` on queue ``queue`` of the interface."""
        _check_packets(packets)
        manager = self._manager
        return manager._call(manager._dataplane.inject, self.interface, packets, queue, self)

    def close(self) -> None:
        """Detach: the interface's action takes its packets again."""
        self.rx.close("exchange closed")


class Manager:
    """Owns the engine and answers management calls; every method is thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = engine = Engine(settings)
        self._state = engine.state
        self._worker = engine.worker
        self._streams = engine.streams
        self._dataplane = engine.dataplane
        self._registry = engine.registry
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        #: True when :meth:`stop` gave up waiting for the worker.
        self.left_behind = False
        #: Packet bytes all capture and exchange streams hold together, at most.
        self.stream_pool = BytePool(settings.stream_memory)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and create the interfaces the settings declare."""
        if self._worker.started:
            return
        path = self.settings.socket_dir
        prepare_socket_dir(path, fallback=path == fallback_socket_dir())
        problem = socket_dir_problem(self.settings.socket_dir)
        if problem is not None:  # not fatal: sockets elsewhere and abstract ones still work
            log.error("not ready: %s", problem, extra={"socket_dir": str(self.settings.socket_dir)})
        self._registry.fd_baseline = open_fds()
        self._worker.start()
        try:
            self._call(self._registry.create_declared, list(self.settings.interfaces))
        except BaseException:
            self.stop("start failed")
            raise

    def stop(self, reason: str = "memifd shutting down", timeout: float | None = None) -> None:
        """Disconnect peers with ``reason``, end every stream, remove socket files.

        Takes at most ``timeout`` seconds (default ``shutdown_timeout``): a worker
        that has not stopped by then is left behind and its socket files are
        removed from here.
        """
        budget = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        worker = self._worker
        with self._stop_lock:
            if not worker.started or self._stopped.is_set():
                return
            if worker.running:
                with contextlib.suppress(UnavailableError):
                    left = max(0.0, deadline - time.monotonic())
                    self._call(self._engine.shutdown, reason, timeout=left)
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.error(
                    "the worker did not stop in time; removing its socket files",
                    extra={"timeout": budget, "worker_stall": round(self.worker_stall, 3)},
                )
                worker.stopping = True
                worker.accepting = False
                self.left_behind = True
                self.remove_socket_files()
                self._stopped.set()  # its epoll and eventfd stay open: it may still use them
                return
            worker.accepting = False
            worker.close()
            self._stopped.set()

    def remove_socket_files(self) -> None:
        """Unlink the socket files the worker listens on (still the same files)."""
        for path, inode in self._state.socket_files:
            with contextlib.suppress(OSError):
                if os.lstat(path).st_ino == inode:
                    os.unlink(path)

    # -- health --------------------------------------------------------------------------------

    @property
    def worker_stall(self) -> float:
        """Seconds since the worker's loop last turned (below HEARTBEAT when well)."""
        return self._worker.stall

    @property
    def live(self) -> bool:
        """True while the worker runs and turned within ``worker_stall_unhealthy`` seconds."""
        return self.running and self.worker_stall < self.settings.worker_stall_unhealthy

    @property
    def ready(self) -> bool:
        """True while the worker runs, turned within ``worker_stall_unready`` seconds,
        every server socket is listening and the socket directory is writable."""
        return self.not_ready_reason is None

    @property
    def not_ready_reason(self) -> str | None:
        """Why :attr:`ready` is False, for people; None when ready."""
        if not self._worker.running:
            return "the worker is not running"
        if self._worker.stopping:
            return "shutting down"
        if not self._state.bound:
            return "a server socket is not listening"
        stall = self.worker_stall
        if stall >= self.settings.worker_stall_unready:
            return f"the worker has been stalled for {stall:.1f} s"
        return socket_dir_problem(self.settings.socket_dir)

    @property
    def running(self) -> bool:
        """True while the worker thread is alive."""
        return self._worker.running

    @property
    def generation(self) -> int:
        """Bumped by the worker after every change and every burst; lets readers cache."""
        return self._state.generation

    @property
    def turns(self) -> int:
        """Worker turns so far (how often it woke up)."""
        return self._worker.turns

    @property
    def subscription_drops(self) -> int:
        """Items all subscriptions (captures, events, exchanges) lost to slow readers."""
        return self._state.subscription_drops

    @property
    def handshake_failures(self) -> dict[str, int]:
        """Failed handshakes on every socket so far, by memif.FailureKind (fixed keys)."""
        return self._state.handshake_failures

    # -- management ----------------------------------------------------------------------------

    def create_interface(self, spec: InterfaceSpec, dry_run: bool = False) -> InterfaceStatus:
        """Create (or with ``dry_run`` only validate) an interface."""
        made = self._call(self._registry.create, spec, dry_run)
        # Built here, not on the worker: a status of 255 queue pairs takes milliseconds.
        return made if isinstance(made, InterfaceStatus) else views.status(made)

    def list_interfaces(self) -> list[InterfaceStatus]:
        """Every interface, in creation order."""
        return [views.view(entry)[0] for entry in list(self._state.entries.values())]

    def list_interfaces_json(self) -> bytes:
        """:meth:`list_interfaces` as a JSON array (each interface serialised once per change)."""
        entries = list(self._state.entries.values())
        return b"[" + b",".join([views.view(e)[1] for e in entries]) + b"]"

    def get_interface(self, name: str) -> InterfaceStatus:
        """One interface."""
        return views.view(self._entry(name))[0]

    def update_interface(self, name: str, patch: InterfacePatch) -> InterfaceStatus:
        """Change rx_mode, action, xconnect_to or admin_up of a live interface."""
        return views.status(self._call(self._registry.update, name, patch))

    def delete_interface(self, name: str, keep_references: bool = False) -> None:
        """Disconnect and delete an interface (its socket closes with its last interface).

        An interface other interfaces cross-connect to is refused unless
        ``keep_references`` (their packets count as forward drops until it is back).
        """
        self._call(self._registry.delete, name, "interface deleted", keep_references)

    def interface_stats(self, name: str) -> InterfaceStats:
        """Counters of one interface."""
        return views.stats(self._entry(name))

    def link_details(self, name: str) -> LinkDetails:
        """The shared memory of an interface's link, its ring counters read right now."""
        return self._call(self._registry.link_details, name)

    def socket_paths(self) -> list[str]:
        """The control sockets currently open."""
        return list(self._state.sockets)

    def subscription_counts(self) -> dict[str, int]:
        """Active subscriptions by kind."""
        state = self._state
        entries = list(state.entries.values())
        return {
            "capture": len(state.captures),
            "events": len(state.event_subs),
            "exchange": sum(e.exchange is not None for e in entries),
        }

    # -- streams -------------------------------------------------------------------------------

    def subscribe_events(
        self, maxsize: int = 1024, interface: str | None = None
    ) -> Subscription[LinkEvent]:
        """Link events from now on (see :class:`LinkEvent`); with ``interface``, that
        interface must exist (the caller filters the events)."""
        sub: Subscription[LinkEvent] = Subscription(maxsize)
        sub._on_close = lambda: self._worker.post(self._streams.drop_event_sub, sub)
        self._call(self._streams.add_event_sub, sub, interface)
        return sub

    def capture(self, flt: CaptureFilter, maxsize: int = 65536) -> CaptureSubscription:
        """Copies of packets matching ``flt``; ends after ``count`` or ``duration``."""
        sub = CaptureSubscription(
            maxsize,
            sizer=_packet_bytes,
            max_bytes=self.settings.stream_buffer,
            pool=self.stream_pool,
        )
        cap = Capture(
            sub=sub,
            flt=flt,
            names=flt.names(),
            remaining=flt.count,
            deadline=capture_deadline(flt.duration),
            rx=flt.direction is not Direction.TX,
            tx=flt.direction is not Direction.RX,
        )
        sub._on_close = lambda: self._worker.post(self._streams.drop_capture, cap)
        self._call(self._streams.add_capture, cap)
        return sub

    def inject(self, name: str, packets: list[bytes], queue: int = 0) -> InjectResult:
        """Transmit ``packets`` on an interface's tx queue ``queue``."""
        _check_packets(packets)
        return self._call(self._dataplane.inject, name, packets, queue, None)

    def exchange(self, name: str, maxsize: int = 65536) -> ExchangeSession:
        """Become the packet endpoint of an interface (one exchange per interface)."""
        session = ExchangeSession(self, name, maxsize)
        self._call(self._streams.attach_exchange, session)
        return session

    def _packet_subscription(self, maxsize: int) -> Subscription[CapturedPacket]:
        """A packet queue bounded by ``maxsize`` packets, ``stream_buffer`` bytes and the
        shared ``stream_memory`` pool."""
        return Subscription(
            maxsize,
            sizer=_packet_bytes,
            max_bytes=self.settings.stream_buffer,
            pool=self.stream_pool,
        )

    def _call(self, fn: Callable[..., R], *args: Any, timeout: float | None = None) -> R:
        """Run ``fn(*args)`` on the worker (see :meth:`Worker.call`); waits at most
        ``timeout`` seconds (default ``command_timeout``)."""
        settings = self.settings
        wait = settings.command_timeout if timeout is None else timeout
        return self._worker.call(fn, *args, timeout=wait, stall_limit=settings.worker_stall_unready)

    def _entry(self, name: str) -> Entry:
        return self._state.entry(name)


def _packet_bytes(packet: CapturedPacket) -> int:
    return len(packet.data) + PACKET_OVERHEAD


def _check_packets(packets: Sequence[bytes]) -> None:
    for number, packet in enumerate(packets):
        if not 1 <= len(packet) <= MAX_PACKET_SIZE:
            raise InvalidArgumentError(
                "packets",
                f"packet {number} is {len(packet)} bytes, allowed 1..{MAX_PACKET_SIZE}",
            )
