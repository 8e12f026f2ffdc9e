"""The manager: one worker thread that owns every memif socket, interface and ring.

API handlers (REST, gRPC) never touch library objects. Changes go to the
worker as commands over a queue plus an eventfd it waits on, and the caller
blocks for the result. Reads (list, get, stats) do not wait for the worker:
they read what the worker published (immutable specs and link views) and the
plain integer counters the library keeps per queue.

The worker sleeps in ``epoll`` on the command eventfd, every socket's
``fileno()`` and every interrupt-mode rx queue's ``fileno()``, so an idle
daemon costs nothing and does not hold the GIL. Queues that returned packets
stay "hot" and are read again at once; polling-mode queues are read on every
turn and, when idle, every :data:`POLL_IDLE_INTERVAL` seconds.

Nothing the worker does blocks: sockets are non-blocking, big memory is built
and freed on the library's background thread, and one turn runs commands for
at most :data:`COMMAND_BUDGET` seconds. The loop turns at least every
:data:`HEARTBEAT` seconds, so :attr:`Manager.worker_stall` (seconds since the
last turn) is a watchdog: past ``worker_stall_unready`` memifd reports not
ready, past ``worker_stall_unhealthy`` not alive. A command whose caller gave
up waiting is cancelled, never applied later.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import memif
from memif.constants import MAX_PACKET_SIZE

from memifd.core import preflight
from memifd.core.capture import CaptureSubscription
from memifd.core.limits import (
    FDS_PER_SOCKET,
    api_fd_reserve,
    fd_limit,
    interface_fds,
    interface_memory,
    open_fds,
)
from memifd.core.models import (
    Action,
    CapturedPacket,
    CaptureFilter,
    Direction,
    InjectResult,
    InterfacePatch,
    InterfaceSpec,
    InterfaceState,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
    LinkRegion,
    LinkRing,
    PeerInfo,
    QueueCounters,
)
from memifd.core.settings import Settings, fallback_socket_dir
from memifd.core.socketdirs import SocketDirError, SocketDirs, prepare_fallback
from memifd.core.subscription import BytePool, Subscription

log = logging.getLogger("memifd.manager")

BURST = 256  # packets read per queue per turn
CLOCK_STEP_NS = 1_000_000_000  # a step back of the wall clock larger than this is followed
POLL_IDLE_INTERVAL = 0.002  # seconds between looks at idle polling-mode queues
HEARTBEAT = 0.5  # the worker's loop turns at least this often (seconds)
COMMAND_BUDGET = 0.005  # seconds of commands per turn; the rest waits for the next turn
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
APP_NAME = "memifd"
PACKET_OVERHEAD = 192  # bytes a queued CapturedPacket costs beyond its data
_MAX_EVENTS = 256

R = TypeVar("R")


# -- errors ------------------------------------------------------------------------------


class ManagerError(Exception):
    """Base of the errors management calls raise; ``message`` is meant for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ManagerError):
    """No interface of that name."""


class ConflictError(ManagerError):
    """The request clashes with the current state (name or socket/role/id taken, ...)."""


class InvalidArgumentError(ManagerError):
    """A request field is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UnavailableError(ManagerError):
    """The worker is not running (not started yet, or stopped)."""


class LimitExceededError(ManagerError):
    """Creating it would pass a resource limit (interfaces, shared memory, fds)."""


# -- published state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LinkView:
    """Link state as last published by the worker."""

    state: InterfaceState
    peer: PeerInfo | None
    reason: str


_DOWN = _LinkView(InterfaceState.DISCONNECTED, None, "")


@dataclass(slots=True)
class _Counters:
    """What the manager counts per interface on top of the library's queue counters."""

    action_drops: int = 0
    forwarded: int = 0
    forward_drops: int = 0
    exchanged: int = 0
    injected: int = 0
    subscriber_drops: int = 0


@dataclass(eq=False)
class _Capture:
    """One capture subscription as the worker tracks it."""

    sub: Subscription[CapturedPacket]
    flt: CaptureFilter
    names: frozenset[str] | None  # None: every interface, present and future
    remaining: int | None
    deadline: float | None
    rx: bool
    tx: bool


@dataclass(eq=False)
class _Entry:
    """One managed interface. Only the worker changes it."""

    spec: InterfaceSpec
    socket_path: str
    iface: memif.Interface
    rx: list[memif.RxQueue]
    tx: list[memif.TxQueue]
    counters: _Counters = field(default_factory=_Counters)
    link: _LinkView = _DOWN
    captures: list[_Capture] = field(default_factory=list)
    exchange: ExchangeSession | None = None
    # Last status built for readers, with the fingerprint it was built from.
    view: tuple[tuple[object, ...], InterfaceStatus, bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.name


class ExchangeSession:
    """An API client acting as the packet endpoint of one interface.

    While attached, packets the interface receives go to :attr:`rx` instead of
    its action; :meth:`send` transmits. :meth:`close` detaches.
    """

    def __init__(self, manager: Manager, name: str, maxsize: int) -> None:
        self._manager = manager
        self.interface = name
        self.rx: Subscription[CapturedPacket] = manager._packet_subscription(maxsize)
        self.rx._on_close = lambda: manager._post(manager._detach_exchange, self)

    def send(self, packets: Sequence[bytes], queue: int = 0) -> InjectResult:
        """Transmit ``packets`` on queue ``queue`` of the interface."""
        _check_packets(packets)
        return self._manager._call(self._manager._do_inject, self.interface, packets, queue, self)

    def close(self) -> None:
        """Detach: the interface's action takes its packets again."""
        self.rx.close("exchange closed")


# -- the manager -------------------------------------------------------------------------


class Manager:
    """Owns the worker thread and answers management calls; every method is thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._commands: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any] | None]
        ] = queue.SimpleQueue()
        self._cmd_fd = -1
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        # Owned by the worker; readers only take a reference (replaced, never mutated).
        self._entries: dict[str, _Entry] = {}
        self._sockets: dict[str, memif.Socket] = {}
        self._socket_fds: dict[int, memif.Socket] = {}
        self._dirs = SocketDirs(settings.allowed_socket_dirs)
        self._rx_fds: dict[int, tuple[_Entry, int]] = {}
        self._polled: list[tuple[_Entry, int]] = []
        self._hot: dict[tuple[_Entry, int], None] = {}
        self._captures: list[_Capture] = []
        self._event_subs: list[Subscription[LinkEvent]] = []
        self._timer_due = float("inf")
        self._bound = True
        self._last_turn = time.monotonic()
        # Socket files the worker listens on, (path, inode), for a shutdown without it.
        self._socket_files: tuple[tuple[str, int], ...] = ()
        #: Bumped by the worker after every turn that did something; lets readers cache.
        self.generation = 0
        #: Worker turns so far (how often it woke up).
        self.turns = 0
        #: Items all subscriptions (captures, events, exchanges) lost to slow readers.
        self.subscription_drops = 0
        self._last_stamp = 0  # the latest packet stamp given out (see _burst_time)
        #: True when :meth:`stop` gave up waiting for the worker.
        self.left_behind = False
        #: Failed handshakes on every socket so far, by memif.FailureKind (fixed keys).
        self.handshake_failures = {kind.value: 0 for kind in memif.FailureKind}
        #: Packet bytes all capture and exchange streams hold together, at most.
        self.stream_pool = BytePool(settings.stream_memory)
        self._fd_baseline = 0  # fds open when the worker started

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and create the interfaces the settings declare."""
        if self._thread is not None:
            return
        self._prepare_socket_dir()
        problem = socket_dir_problem(self.settings.socket_dir)
        if problem is not None:  # not fatal: sockets elsewhere and abstract ones still work
            log.error("not ready: %s", problem, extra={"socket_dir": str(self.settings.socket_dir)})
        self._cmd_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._cmd_fd, select.EPOLLIN)
        self._last_turn = time.monotonic()
        self._fd_baseline = open_fds()
        self._thread = threading.Thread(target=self._run, name="memifd-worker", daemon=True)
        self._thread.start()
        try:
            self._call(self._create_declared, list(self.settings.interfaces))
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
        with self._stop_lock:
            thread = self._thread
            if thread is None or self._stopped.is_set():
                return
            if thread.is_alive():
                with contextlib.suppress(UnavailableError):
                    left = max(0.0, deadline - time.monotonic())
                    self._call(self._shutdown, reason, timeout=left)
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error(
                    "the worker did not stop in time; removing its socket files",
                    extra={"timeout": budget, "worker_stall": round(self.worker_stall, 3)},
                )
                self._stopping = True
                self.left_behind = True
                self.remove_socket_files()
                self._stopped.set()  # its epoll and eventfd stay open: it may still use them
                return
            if self._epoll is not None:
                self._epoll.close()
            os.close(self._cmd_fd)
            self._stopped.set()

    def remove_socket_files(self) -> None:
        """Unlink the socket files the worker listens on (still the same files)."""
        for path, inode in self._socket_files:
            with contextlib.suppress(OSError):
                if os.lstat(path).st_ino == inode:
                    os.unlink(path)

    @property
    def worker_stall(self) -> float:
        """Seconds since the worker's loop last turned (below :data:`HEARTBEAT` when well)."""
        return max(0.0, time.monotonic() - self._last_turn)

    @property
    def live(self) -> bool:
        """True while the worker runs and turned within ``worker_stall_unhealthy`` seconds."""
        return self.running and self.worker_stall < self.settings.worker_stall_unhealthy

    def _prepare_socket_dir(self) -> None:
        """Create socket_dir (0750); the fallback in /tmp only if it is memifd's alone."""
        path = self.settings.socket_dir
        try:
            if path == fallback_socket_dir():
                prepare_fallback(path)
            else:
                os.makedirs(path, mode=0o750, exist_ok=True)
        except SocketDirError as exc:
            raise ManagerError(str(exc)) from None
        except OSError as exc:
            raise ManagerError(
                f"socket_dir {path} cannot be created: {exc.strerror}; {_SOCKET_DIR_HINT}"
            ) from None

    @property
    def ready(self) -> bool:
        """True while the worker runs, turned within ``worker_stall_unready`` seconds,
        every server socket is listening and the socket directory is writable."""
        return self.not_ready_reason is None

    @property
    def not_ready_reason(self) -> str | None:
        """Why :attr:`ready` is False, for people; None when ready."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return "the worker is not running"
        if self._stopping:
            return "shutting down"
        if not self._bound:
            return "a server socket is not listening"
        stall = self.worker_stall
        if stall >= self.settings.worker_stall_unready:
            return f"the worker has been stalled for {stall:.1f} s"
        return socket_dir_problem(self.settings.socket_dir)

    @property
    def running(self) -> bool:
        """True while the worker thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- management --------------------------------------------------------------------------------

    def create_interface(self, spec: InterfaceSpec, dry_run: bool = False) -> InterfaceStatus:
        """Create (or with ``dry_run`` only validate) an interface."""
        made = self._call(self._do_create, spec, dry_run)
        # Built here, not on the worker: a status of 255 queue pairs takes milliseconds.
        return made if isinstance(made, InterfaceStatus) else _status(made)

    def list_interfaces(self) -> list[InterfaceStatus]:
        """Every interface, in creation order."""
        return [_view(entry)[0] for entry in list(self._entries.values())]

    def list_interfaces_json(self) -> bytes:
        """:meth:`list_interfaces` as a JSON array (each interface serialised once per change)."""
        return b"[" + b",".join([_view(e)[1] for e in list(self._entries.values())]) + b"]"

    def get_interface(self, name: str) -> InterfaceStatus:
        """One interface."""
        return _view(self._entry(name))[0]

    def update_interface(self, name: str, patch: InterfacePatch) -> InterfaceStatus:
        """Change rx_mode, action, xconnect_to or admin_up of a live interface."""
        return _status(self._call(self._do_update, name, patch))

    def delete_interface(self, name: str, keep_references: bool = False) -> None:
        """Disconnect and delete an interface (its socket closes with its last interface).

        An interface other interfaces cross-connect to is refused unless
        ``keep_references`` (their packets count as forward drops until it is back).
        """
        self._call(self._do_delete, name, "interface deleted", keep_references)

    def interface_stats(self, name: str) -> InterfaceStats:
        """Counters of one interface."""
        return _stats(self._entry(name))

    def link_details(self, name: str) -> LinkDetails:
        """The shared memory of an interface's link, its ring counters read right now."""
        return self._call(self._do_link_details, name)

    def link_states(self) -> dict[str, str]:
        """Interface name to link state, for metrics and probes."""
        return {name: e.link.state.value for name, e in list(self._entries.items())}

    def socket_paths(self) -> list[str]:
        """The control sockets currently open."""
        return list(self._sockets)

    def subscription_counts(self) -> dict[str, int]:
        """Active subscriptions by kind."""
        entries = list(self._entries.values())
        return {
            "capture": len(self._captures),
            "events": len(self._event_subs),
            "exchange": sum(e.exchange is not None for e in entries),
        }

    # -- streams -----------------------------------------------------------------------------------

    def subscribe_events(
        self, maxsize: int = 1024, interface: str | None = None
    ) -> Subscription[LinkEvent]:
        """Link events from now on (see :class:`LinkEvent`); with ``interface``, that
        interface must exist (the caller filters the events)."""
        sub: Subscription[LinkEvent] = Subscription(maxsize)
        sub._on_close = lambda: self._post(self._drop_event_sub, sub)
        self._call(self._add_event_sub, sub, interface)
        return sub

    def capture(self, flt: CaptureFilter, maxsize: int = 65536) -> CaptureSubscription:
        """Copies of packets matching ``flt``; ends after ``count`` or ``duration``."""
        sub = CaptureSubscription(
            maxsize,
            sizer=_packet_bytes,
            max_bytes=self.settings.stream_buffer,
            pool=self.stream_pool,
        )
        cap = _Capture(
            sub=sub,
            flt=flt,
            names=flt.names(),
            remaining=flt.count,
            deadline=None if flt.duration is None else time.monotonic() + flt.duration,
            rx=flt.direction is not Direction.TX,
            tx=flt.direction is not Direction.RX,
        )
        sub._on_close = lambda: self._post(self._drop_capture, cap)
        self._call(self._add_capture, cap)
        return sub

    def inject(self, name: str, packets: list[bytes], queue: int = 0) -> InjectResult:
        """Transmit ``packets`` on an interface's tx queue ``queue``."""
        _check_packets(packets)
        return self._call(self._do_inject, name, packets, queue, None)

    def exchange(self, name: str, maxsize: int = 65536) -> ExchangeSession:
        """Become the packet endpoint of an interface (one exchange per interface)."""
        session = ExchangeSession(self, name, maxsize)
        self._call(self._attach_exchange, session)
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

    # -- the command channel -----------------------------------------------------------------------

    def _call(self, fn: Callable[..., R], *args: Any, timeout: float | None = None) -> R:
        """Run ``fn(*args)`` on the worker and return its result (or raise its error).

        Waits at most ``timeout`` seconds (default ``command_timeout``). A command
        the worker has not started by then is cancelled: it never runs.
        """
        thread = self._thread
        if thread is threading.current_thread():
            return fn(*args)
        if thread is None or self._stopping or not thread.is_alive():
            raise UnavailableError("memifd is not running")
        stall = self.worker_stall
        if stall >= self.settings.worker_stall_unready:
            raise UnavailableError(
                f"the worker has been stalled for {stall:.1f} s; nothing was changed"
            )
        wait = self.settings.command_timeout if timeout is None else timeout
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._commands.put((fn, args, future))
        self._kick()
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise UnavailableError(
                    f"the worker did not answer within {wait:g} s; nothing was changed"
                ) from None
        try:  # it started just now: nothing it runs blocks, so it ends soon
            return future.result(timeout=1.0)
        except concurrent.futures.TimeoutError:
            raise UnavailableError(
                f"the worker did not finish within {wait + 1.0:g} s; the change may still "
                "be applied"
            ) from None

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` for the worker without waiting."""
        if self._thread is threading.current_thread():
            fn(*args)
            return
        if self._stopped.is_set():
            return
        self._commands.put((fn, args, None))
        self._kick()

    def _kick(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._cmd_fd, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFoundError(f"interface {name!r} not found")
        return entry

    # -- the worker loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._epoll is not None
        epoll = self._epoll
        _name_native_thread("memifd-worker")
        while not self._stopping:
            try:
                self._turn(epoll)
            except Exception:  # a bug must not end the worker silently
                log.exception("worker error")
                time.sleep(0.05)
        self._fail_pending()

    def _turn(self, epoll: select.epoll) -> None:
        timeout = self._timeout()
        events = epoll.poll(timeout, _MAX_EVENTS)
        self._last_turn = time.monotonic()
        self.turns += 1
        for fd, _mask in events:
            if fd == self._cmd_fd:
                self._run_commands()
            elif fd in self._socket_fds:
                self._poll_socket(self._socket_fds[fd])
            else:
                target = self._rx_fds.get(fd)
                if target is not None:
                    self._hot[target] = None
        if self._hot:
            for target in list(self._hot):
                if not self._service(*target):
                    del self._hot[target]
        for target in self._polled:
            if self._service(*target):
                self._hot[target] = None
        if time.monotonic() >= self._timer_due:
            self._run_timers()

    def _timeout(self) -> float:
        if self._hot:
            return 0.0
        wait = self._timer_due - time.monotonic()
        if self._polled:
            wait = min(wait, POLL_IDLE_INTERVAL)
        return min(max(wait, 0.0), HEARTBEAT)

    def _run_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._cmd_fd, 8)
        started = time.monotonic()
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
                self.generation += 1
                if future is None:
                    log.exception("worker command failed")
                else:
                    future.set_exception(exc)
            else:
                self.generation += 1
                if future is not None:
                    future.set_result(result)
        self._update_timers()

    def _fail_pending(self) -> None:
        while True:
            try:
                _fn, _args, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if future is not None and future.set_running_or_notify_cancel():
                future.set_exception(UnavailableError("memifd is shutting down"))

    def _poll_socket(self, sock: memif.Socket) -> None:
        sock.poll(0)
        self.generation += 1
        self._scan_links(sock)
        self._update_timers()

    def _run_timers(self) -> None:
        now = time.monotonic()
        for sock in list(self._sockets.values()):
            due = sock.next_timeout()  # reconnect and handshake deadlines
            if due is not None and due <= 0:
                self._poll_socket(sock)
        for cap in list(self._captures):
            if cap.deadline is not None and cap.deadline <= now:
                self._end_capture(cap, "duration reached")
        self._update_timers()

    def _update_timers(self) -> None:
        now = time.monotonic()
        due = float("inf")
        for sock in self._sockets.values():
            wait = sock.next_timeout()
            if wait is not None:
                due = min(due, now + wait)
        for cap in self._captures:
            if cap.deadline is not None:
                due = min(due, cap.deadline)
        self._timer_due = due

    # -- the data path -----------------------------------------------------------------------------

    def _service(self, entry: _Entry, index: int) -> bool:
        """Read one burst from rx queue ``index`` and dispatch it; False when it was empty."""
        packets = entry.rx[index].recv_burst(BURST)
        if not packets:
            return False
        self.generation += 1
        count = len(packets)
        if entry.captures:
            self._deliver(entry, index, "rx", packets)
        counters = entry.counters
        session = entry.exchange
        if session is not None:
            first = self._burst_time(count)
            items = _to_captured(entry.name, index, "rx", packets, 65535, first)
            lost = session.rx.put_many(items)
            counters.exchanged += count
            if lost:
                self._count_lost(lost)
            return True
        action = entry.spec.action
        if action is Action.DROP:
            counters.action_drops += count
            return True
        target = entry if action is Action.ECHO else self._entries.get(entry.spec.xconnect_to or "")
        sent = 0
        if target is not None:
            connected = target.iface.num_tx_connected
            if connected:
                tx_index = index % connected
                sent = target.tx[tx_index].send_burst(packets)
                if sent and target.captures:
                    sent_packets = packets if sent == count else packets[:sent]
                    self._deliver(target, tx_index, "tx", sent_packets)
        counters.forwarded += sent
        counters.forward_drops += count - sent
        return True

    def _deliver(self, entry: _Entry, index: int, direction: str, packets: list[bytes]) -> None:
        """Hand a burst to the captures of ``entry`` that want it (all with the same
        stamps, see :meth:`_burst_time`)."""
        built: dict[int, list[CapturedPacket]] = {}
        first = 0
        ended: list[_Capture] = []
        for cap in entry.captures:
            if not (cap.rx if direction == "rx" else cap.tx):
                continue
            if cap.flt.queue is not None and cap.flt.queue != index:
                continue
            snaplen = cap.flt.snaplen
            items = built.get(snaplen)
            if items is None:
                first = first or self._burst_time(len(packets))
                items = _to_captured(entry.name, index, direction, packets, snaplen, first)
                built[snaplen] = items
            if cap.remaining is not None:
                if len(items) >= cap.remaining:
                    items = items[: cap.remaining]
                    ended.append(cap)
                cap.remaining -= len(items)
            lost = cap.sub.put_many(items)
            if lost:
                self._count_lost(lost)
        for cap in ended:
            self._end_capture(cap, "count reached")

    def _burst_time(self, count: int) -> int:
        """The stamp of the first of ``count`` packets taken off (or put on) a ring now.

        A ring gives no time per packet: the worker takes a whole burst at once. So
        every packet carries the wall-clock time its burst was read (rx) or written
        (tx), in ns, plus its place in the burst: packets ``i`` ns apart shared a
        burst, and stamps never repeat or go back, so they keep the ring's order
        across bursts, queues and interfaces. One clock reading per burst: reading
        the clock per packet would cost the data path ~100 ns a packet and say no
        more about when the peer queued each one.
        """
        now = time.time_ns()
        last = self._last_stamp
        if last - CLOCK_STEP_NS < now <= last:  # same tick, or a small step back
            now = last + 1
        self._last_stamp = now + count - 1
        return now

    def _count_lost(self, lost: list[CapturedPacket]) -> None:
        self.subscription_drops += len(lost)
        entries = self._entries
        for item in lost:
            entry = entries.get(item.interface)
            if entry is not None:
                entry.counters.subscriber_drops += 1

    def _do_inject(
        self, name: str, packets: Sequence[bytes], index: int, session: ExchangeSession | None
    ) -> InjectResult:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFoundError(f"interface {name!r} not found")
        if session is not None and entry.exchange is not session:
            raise ConflictError(f"the exchange on interface {name!r} has ended")
        if entry.link.state is not InterfaceState.CONNECTED:
            raise ConflictError(f"interface {name!r} is not connected ({entry.link.state.value})")
        connected = entry.iface.num_tx_connected
        if not 0 <= index < connected:
            raise InvalidArgumentError(
                "queue", f"queue {index} is outside 0..{connected - 1} (queues connected)"
            )
        sent = entry.tx[index].send_burst(packets)
        entry.counters.injected += sent
        if sent and entry.captures:
            self._deliver(entry, index, "tx", list(packets[:sent]))
        return InjectResult(accepted=sent, ring_full=len(packets) - sent)

    # -- commands: interfaces ----------------------------------------------------------------------

    def _create_declared(self, specs: list[InterfaceSpec]) -> None:
        """Create the configured interfaces; xconnect targets may be declared later in the list."""
        names = {spec.name for spec in specs}
        for spec in specs:
            if spec.xconnect_to is not None and spec.xconnect_to not in names:
                raise InvalidArgumentError(
                    "xconnect_to",
                    f"interfaces: {spec.name}: xconnect_to {spec.xconnect_to!r} is not declared",
                )
        for spec in specs:
            first = spec.model_copy(update={"action": Action.DROP, "xconnect_to": None})
            self._do_create(first, False)
        for spec in specs:
            entry = self._entries[spec.name]
            entry.spec = spec

    def _do_create(self, spec: InterfaceSpec, dry_run: bool) -> _Entry | InterfaceStatus:
        """Create the interface (its entry), or with ``dry_run`` only check it (a preview)."""
        if spec.name in self._entries:
            raise ConflictError(f"interface {spec.name!r} already exists")
        try:
            path = self.settings.resolve_socket(spec.socket)
        except SocketDirError as exc:
            raise InvalidArgumentError("socket", str(exc)) from None
        size = len(path.encode())
        if size > MAX_SOCKET_PATH:
            raise InvalidArgumentError(
                "socket", f"socket path {path!r} is {size} bytes, the limit is {MAX_SOCKET_PATH}"
            )
        for other in self._entries.values():
            if (other.socket_path, other.spec.role, other.spec.id) == (path, spec.role, spec.id):
                raise ConflictError(
                    f"a {spec.role.value} interface with id {spec.id} already exists on {path} "
                    f"({other.name!r})"
                )
        self._check_xconnect(spec.name, spec.xconnect_to)
        self._check_limits(spec, path)
        if spec.role is memif.Role.SERVER and _in_socket_dir(spec.socket):
            problem = socket_dir_problem(self.settings.socket_dir)
            if problem is not None:
                raise InvalidArgumentError("socket", problem)
        if dry_run:
            self._preflight(path, spec)
            return _preview(spec, path)
        sock, created = self._socket(path)
        try:
            iface = sock.create_interface(
                self._arguments(spec),
                on_connected=self._on_connected,
                on_disconnected=self._on_disconnected,
            )
        except BaseException as exc:
            if created:
                self._close_socket(path, "socket unusable")
            if isinstance(exc, OSError):
                raise _os_error(exc) from None
            if not isinstance(exc, memif.LocalProtocolError):
                raise
            raise _socket_error(exc) from None
        entry = _Entry(spec, path, iface, iface.rx_queues, iface.tx_queues)
        entry.captures = [c for c in self._captures if c.names is None]
        self._entries = {**self._entries, spec.name: entry}
        if not spec.admin_up:
            iface.set_admin_up(False)
        self._watch_queues(entry)
        self._scan_links(sock)
        self._check_bound()
        log.info(
            "interface created",
            extra={
                "interface": spec.name,
                "socket": path,
                "role": spec.role.value,
                "id": spec.id,
                "action": spec.action.value,
            },
        )
        return entry

    def _check_limits(self, spec: InterfaceSpec, path: str) -> None:
        """Refuse an interface that would pass max_interfaces, max_shared_memory or the
        file descriptors left under RLIMIT_NOFILE."""
        settings = self.settings
        entries = list(self._entries.values())
        if len(entries) >= settings.max_interfaces:
            raise LimitExceededError(
                f"max_interfaces: {len(entries)} interfaces exist, the limit is "
                f"{settings.max_interfaces}"
            )
        memory = interface_memory(spec.memory)
        committed = sum(interface_memory(e.spec.memory) for e in entries)
        if committed + memory > settings.max_shared_memory:
            raise LimitExceededError(
                f"max_shared_memory: the interface needs {memory} bytes of shared memory and "
                f"{committed} of {int(settings.max_shared_memory)} are taken"
            )
        sockets = len(self._sockets) + (path not in self._sockets)
        fds = sum(interface_fds(e.spec.memory) for e in entries) + FDS_PER_SOCKET * sockets
        limit = fd_limit()
        reserve = api_fd_reserve(settings.http_max_connections)
        available = limit - self._fd_baseline - reserve
        if fds + interface_fds(spec.memory) > available:
            raise LimitExceededError(
                f"file descriptors: the interface needs {interface_fds(spec.memory)} and "
                f"{max(available - fds, 0)} are left (RLIMIT_NOFILE {limit}, "
                f"{self._fd_baseline} open at start, {reserve} kept for API connections)"
            )

    def _arguments(self, spec: InterfaceSpec) -> memif.Arguments:
        """The library's arguments, with the peers the spec (or the settings) allow.

        memifd's own uid is always allowed: a process of that uid controls memifd anyway.
        """
        uids, gids = spec.allowed_uids, spec.allowed_gids
        if not uids and not gids:
            if spec.role is not memif.Role.SERVER:
                return spec.to_arguments()  # a client with no list accepts any server
            uids, gids = self.settings.default_allowed_uids, self.settings.default_allowed_gids
        allowed = {
            "allowed_uids": frozenset({os.geteuid(), *uids}),
            "allowed_gids": frozenset(gids),
        }
        return spec.to_arguments().model_copy(update=allowed)

    def _preflight(self, path: str, spec: InterfaceSpec) -> None:
        """What opening the socket for ``spec`` would refuse, without opening it."""
        sock = self._sockets.get(path)
        listen = spec.role is memif.Role.SERVER and (sock is None or not sock.listening)
        if sock is None or listen:
            try:
                preflight.check_socket(
                    path, listen, self._dirs.opener(path), self.settings.replace_stale_sockets
                )
            except memif.LocalProtocolError as exc:
                raise _socket_error(exc) from None

    def _check_xconnect(self, name: str, target: str | None) -> None:
        if target is None:
            return
        if target == name:
            raise InvalidArgumentError(
                "xconnect_to", "an interface cannot be cross-connected to itself"
            )
        if target not in self._entries:
            raise InvalidArgumentError("xconnect_to", f"interface {target!r} does not exist")

    def _do_update(self, name: str, patch: InterfacePatch) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFoundError(f"interface {name!r} not found")
        # null means "unchanged", except for xconnect_to where it clears the target
        changes = {
            key: value
            for key, value in patch.model_dump(exclude_unset=True).items()
            if value is not None or key == "xconnect_to"
        }
        try:
            spec = InterfaceSpec.model_validate({**entry.spec.model_dump(), **changes})
        except ValueError as exc:
            message = _first_error(exc)
            raise InvalidArgumentError(message.partition(":")[0], message) from None
        if spec.action is Action.XCONNECT or "xconnect_to" in changes:
            self._check_xconnect(name, spec.xconnect_to)
        if spec.rx_mode is not entry.spec.rx_mode:
            self._unwatch_queues(entry)
            for rxq in entry.rx:
                rxq.set_mode(spec.rx_mode)
            entry.spec = spec
            self._watch_queues(entry)
        if spec.admin_up is not entry.spec.admin_up:
            entry.iface.set_admin_up(spec.admin_up)
        entry.spec = spec
        self._scan_links(entry.iface.socket)
        log.info("interface updated", extra={"interface": name, "changes": changes})
        return entry

    def _do_delete(self, name: str, reason: str, keep_references: bool = False) -> None:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFoundError(f"interface {name!r} not found")
        dependents = [e.name for e in self._entries.values() if e.spec.xconnect_to == name]
        if dependents and not keep_references:
            listed = ", ".join(repr(dependent) for dependent in dependents)
            raise ConflictError(
                f"interface {name!r} is the xconnect target of {listed}: change their "
                "xconnect_to or delete them first"
            )
        self._unwatch_queues(entry)
        entries = dict(self._entries)
        del entries[name]
        self._entries = entries
        entry.iface.delete()
        self._set_link(entry, _LinkView(InterfaceState.DISCONNECTED, None, reason), "deleted")
        for cap in list(self._captures):
            if (
                cap.names is not None
                and name in cap.names
                and not any(other in self._entries for other in cap.names)
            ):
                self._end_capture(cap, reason)
        if entry.exchange is not None:
            entry.exchange.rx.end(reason)
            entry.exchange = None
        sock = self._sockets.get(entry.socket_path)
        if sock is not None and not sock.interfaces:
            self._close_socket(entry.socket_path, reason)
        self._check_bound()
        log.info("interface deleted", extra={"interface": name, "reason": reason})

    def _do_link_details(self, name: str) -> LinkDetails:
        entry = self._entry(name)
        details = entry.iface.link_details()
        if details is None:
            return LinkDetails(name=name, state=entry.link.state)
        return LinkDetails(
            name=name,
            state=entry.link.state,
            memory=details.memory,
            regions=[
                LinkRegion(index=r.index, size=r.size, sealed=r.sealed) for r in details.regions
            ],
            rings=[LinkRing.model_validate(dataclasses.asdict(r)) for r in details.rings],
        )

    # -- commands: streams -------------------------------------------------------------------------

    def _add_capture(self, cap: _Capture) -> None:
        names = cap.names
        missing = sorted(names - self._entries.keys()) if names is not None else []
        if missing:
            raise NotFoundError(f"interface {missing[0]!r} not found")
        for name in sorted(names or ()):
            _check_queue(self._entries[name], cap.flt.queue)
        self._captures.append(cap)
        for entry in self._entries.values():
            if names is None or entry.name in names:
                entry.captures = [*entry.captures, cap]

    def _drop_capture(self, cap: _Capture) -> None:
        if cap in self._captures:
            self._captures.remove(cap)
        for entry in self._entries.values():
            if cap in entry.captures:
                entry.captures = [c for c in entry.captures if c is not cap]

    def _end_capture(self, cap: _Capture, reason: str) -> None:
        self._drop_capture(cap)
        cap.sub.end(reason)

    def _add_event_sub(self, sub: Subscription[LinkEvent], interface: str | None) -> None:
        if interface is not None:
            self._entry(interface)  # NotFoundError rather than a stream that stays silent
        self._event_subs.append(sub)

    def _drop_event_sub(self, sub: Subscription[LinkEvent]) -> None:
        if sub in self._event_subs:
            self._event_subs.remove(sub)

    def _attach_exchange(self, session: ExchangeSession) -> None:
        entry = self._entries.get(session.interface)
        if entry is None:
            raise NotFoundError(f"interface {session.interface!r} not found")
        if entry.exchange is not None:
            raise ConflictError(f"interface {session.interface!r} already has an exchange")
        entry.exchange = session

    def _detach_exchange(self, session: ExchangeSession) -> None:
        entry = self._entries.get(session.interface)
        if entry is not None and entry.exchange is session:
            entry.exchange = None

    def _shutdown(self, reason: str) -> None:
        self._stopping = True
        for path in list(self._sockets):
            self._close_socket(path, reason)
        for entry in self._entries.values():
            self._set_link(entry, _LinkView(InterfaceState.DISCONNECTED, None, reason), "deleted")
            if entry.exchange is not None:
                entry.exchange.rx.end(reason)
        self._entries = {}
        for cap in list(self._captures):
            self._end_capture(cap, reason)
        for sub in self._event_subs:
            sub.end(reason)
        self._event_subs = []
        self._rx_fds.clear()
        self._polled = []
        self._hot.clear()
        log.info("stopped", extra={"reason": reason})

    # -- sockets and queues ------------------------------------------------------------------------

    def _socket(self, path: str) -> tuple[memif.Socket, bool]:
        sock = self._sockets.get(path)
        if sock is not None:
            return sock, False
        try:
            sock = memif.Socket(
                path,
                app_name=APP_NAME,
                on_handshake_failure=self._count_handshake_failure,
                directory=self._dirs.opener(path),
                replace_stale=self.settings.replace_stale_sockets,
            )
        except memif.LocalProtocolError as exc:
            raise InvalidArgumentError("socket", str(exc)) from None
        except OSError as exc:
            raise _os_error(exc) from None
        self._sockets[path] = sock
        self._socket_fds[sock.fileno()] = sock
        assert self._epoll is not None
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        return sock, True

    def _count_handshake_failure(self, failure: memif.HandshakeFailure) -> None:
        self.handshake_failures[failure.kind.value] += 1  # the library already logged it

    def _close_socket(self, path: str, reason: str) -> None:
        sock = self._sockets.pop(path)
        fd = sock.fileno()
        self._socket_fds.pop(fd, None)
        assert self._epoll is not None
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)
        for iface in sock.interfaces:
            entry = self._entries.get(iface.name)
            if entry is not None:
                self._unwatch_queues(entry)
        sock.close(reason)
        self._dirs.prune(self._sockets)

    def _check_bound(self) -> None:
        self._bound = all(
            sock.listening
            for sock in self._sockets.values()
            if any(iface.is_server for iface in sock.interfaces)
        )
        files = []
        for path, sock in self._sockets.items():
            if sock.listening and not path.startswith("@"):
                with contextlib.suppress(OSError):
                    files.append((path, os.lstat(path).st_ino))
        self._socket_files = tuple(files)

    def _watch_queues(self, entry: _Entry) -> None:
        assert self._epoll is not None
        if entry.spec.rx_mode is memif.RxMode.POLLING:
            self._polled = [*self._polled, *((entry, i) for i in range(len(entry.rx)))]
            return
        for index, rxq in enumerate(entry.rx):
            fd = rxq.fileno()
            self._epoll.register(fd, select.EPOLLIN)
            self._rx_fds[fd] = (entry, index)
            self._hot[(entry, index)] = None  # drain what arrived before we watched

    def _unwatch_queues(self, entry: _Entry) -> None:
        assert self._epoll is not None
        for fd, (owner, index) in list(self._rx_fds.items()):
            if owner is entry:
                del self._rx_fds[fd]
                self._hot.pop((entry, index), None)
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
        self._polled = [t for t in self._polled if t[0] is not entry]
        for target in [t for t in self._hot if t[0] is entry]:
            del self._hot[target]

    # -- link events -------------------------------------------------------------------------------

    def _on_connected(self, iface: memif.Interface) -> None:
        entry = self._entries.get(iface.name)
        if entry is not None and entry.iface is iface:
            self._set_link(entry, _LinkView(InterfaceState.CONNECTED, _peer(iface), ""))

    def _on_disconnected(self, iface: memif.Interface) -> None:
        entry = self._entries.get(iface.name)
        if entry is not None and entry.iface is iface:
            peer = entry.link.peer
            self._set_link(
                entry,
                _LinkView(InterfaceState.DISCONNECTED, None, iface.disconnect_reason),
                peer=peer,
            )

    def _scan_links(self, sock: memif.Socket) -> None:
        """Publish state changes the callbacks do not report (connecting, failed handshakes)."""
        for iface in sock.interfaces:
            entry = self._entries.get(iface.name)
            if entry is None or entry.iface is not iface:
                continue
            state = iface.state
            if state is memif.State.DELETED:
                continue
            current = entry.link
            if state is memif.State.CONNECTED:
                if current.state is not InterfaceState.CONNECTED:
                    self._set_link(entry, _LinkView(InterfaceState.CONNECTED, _peer(iface), ""))
            elif state is memif.State.CONNECTING:
                if current.state is not InterfaceState.CONNECTING:
                    self._set_link(entry, _LinkView(InterfaceState.CONNECTING, None, ""))
            elif (
                current.state is not InterfaceState.DISCONNECTED
                or current.reason != iface.disconnect_reason
            ):
                view = _LinkView(InterfaceState.DISCONNECTED, None, iface.disconnect_reason)
                self._set_link(entry, view)

    def _set_link(
        self,
        entry: _Entry,
        view: _LinkView,
        state: str | None = None,
        peer: PeerInfo | None = None,
    ) -> None:
        entry.link = view
        self.generation += 1
        if not self._event_subs:
            return
        event = LinkEvent(
            interface=entry.name,
            state=state or view.state.value,
            peer=view.peer or peer,
            reason=view.reason,
            timestamp=time.time(),
        )
        for sub in self._event_subs:
            lost = sub.put(event)
            self.subscription_drops += len(lost)


# -- helpers ---------------------------------------------------------------------------------


def _name_native_thread(name: str) -> None:
    """Give the calling thread a name ``ps -L``, ``top -H`` and /proc show (Linux)."""
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    with contextlib.suppress(OSError), open(path, "w") as comm:
        comm.write(name[:15])


def _packet_bytes(packet: CapturedPacket) -> int:
    return len(packet.data) + PACKET_OVERHEAD


_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.ENOSPC}


def _os_error(exc: OSError) -> ManagerError:
    """A system call failure while creating an interface, as an answer for the client."""
    text = exc.strerror or str(exc)
    if exc.errno in _EXHAUSTED:
        return LimitExceededError(f"out of system resources: {text}")
    return InvalidArgumentError("socket", f"cannot use the socket: {text}")


def _check_packets(packets: Sequence[bytes]) -> None:
    for number, packet in enumerate(packets):
        if not 1 <= len(packet) <= MAX_PACKET_SIZE:
            raise InvalidArgumentError(
                "packets",
                f"packet {number} is {len(packet)} bytes, allowed 1..{MAX_PACKET_SIZE}",
            )


_SOCKET_DIR_HINT = "set socket_dir (--socket-dir, MEMIFD_SOCKET_DIR) to a writable directory"


def socket_dir_problem(directory: os.PathLike[str] | str) -> str | None:
    """What keeps memifd from making sockets in ``directory``, or None."""
    if not os.path.isdir(directory):
        return f"socket_dir {directory} does not exist or is not a directory; {_SOCKET_DIR_HINT}"
    if not os.access(directory, os.W_OK | os.X_OK):
        readonly = os.statvfs(directory).f_flag & os.ST_RDONLY
        why = os.strerror(errno.EROFS if readonly else errno.EACCES)
        return f"socket_dir {directory} is not writable: {why}; {_SOCKET_DIR_HINT}"
    return None


def _socket_error(exc: memif.LocalProtocolError) -> ManagerError:
    """The library's refusal to open a socket, as the API reports it."""
    if isinstance(exc, memif.PathInUse):
        return ConflictError(str(exc))
    return InvalidArgumentError("socket", str(exc))


def _in_socket_dir(socket: str) -> bool:
    return not socket.startswith("@") and not os.path.isabs(socket)


def _check_queue(entry: _Entry, index: int | None) -> None:
    """Refuse a queue filter the interface cannot match: it would wait forever."""
    queues = len(entry.rx)
    if index is not None and not 0 <= index < queues:
        raise InvalidArgumentError(
            "queue", f"queue {index} is outside 0..{queues - 1} (interface {entry.name!r})"
        )


def _to_captured(
    name: str,
    index: int,
    direction: str,
    packets: list[bytes],
    snaplen: int,
    first: int,
) -> list[CapturedPacket]:
    """Copies of a burst for subscribers, stamped ``first``, ``first + 1`` ... (ns)."""
    return [
        CapturedPacket(
            name, index, direction, stamp, len(p), p if len(p) <= snaplen else p[:snaplen]
        )
        for stamp, p in zip(range(first, first + len(packets)), packets, strict=False)
    ]


def _peer(iface: memif.Interface) -> PeerInfo:
    creds = iface.peer_credentials
    return PeerInfo(
        name=iface.peer_name,
        app_name=iface.remote_app_name,
        pid=creds.pid if creds else None,
        uid=creds.uid if creds else None,
        gid=creds.gid if creds else None,
    )


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)


def _counters(rows: list[memif.QueueStats]) -> tuple[QueueCounters, list[QueueCounters]]:
    per_queue = [
        QueueCounters.model_construct(
            packets=s.packets,
            bytes=s.bytes,
            drops=s.drops,
            bad_descriptors=s.bad_descriptors,
            ring_full=s.ring_full,
        )
        for s in rows
    ]
    total = QueueCounters.model_construct(
        packets=sum(s.packets for s in rows),
        bytes=sum(s.bytes for s in rows),
        drops=sum(s.drops for s in rows),
        bad_descriptors=sum(s.bad_descriptors for s in rows),
        ring_full=sum(s.ring_full for s in rows),
    )
    return total, per_queue


def _stats(entry: _Entry) -> InterfaceStats:
    rx, rx_queues = _counters([q.stats for q in entry.rx])
    tx, tx_queues = _counters([q.stats for q in entry.tx])
    c = entry.counters
    return InterfaceStats.model_construct(
        rx=rx,
        tx=tx,
        rx_queues=rx_queues,
        tx_queues=tx_queues,
        action_drops=c.action_drops,
        forwarded=c.forwarded,
        forward_drops=c.forward_drops,
        exchanged=c.exchanged,
        injected=c.injected,
        subscriber_drops=c.subscriber_drops,
    )


def _spec_fields(spec: InterfaceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "socket": spec.socket,
        "id": spec.id,
        "role": spec.role,
        "mode": spec.mode,
        "memory": spec.memory,
        "rx_mode": spec.rx_mode,
        "action": spec.action,
        "xconnect_to": spec.xconnect_to,
        "admin_up": spec.admin_up,
        "accept_unsealed_regions": spec.accept_unsealed_regions,
        "allowed_uids": spec.allowed_uids,
        "allowed_gids": spec.allowed_gids,
        "has_secret": bool(spec.secret),
    }


def _fingerprint(entry: _Entry) -> tuple[object, ...]:
    """Everything a status is built from; equal fingerprints give equal statuses."""
    c = entry.counters
    rows: list[object] = [
        entry.spec,
        entry.link,
        c.action_drops,
        c.forwarded,
        c.forward_drops,
        c.exchanged,
        c.injected,
        c.subscriber_drops,
    ]
    for rxq in entry.rx:
        s = rxq.stats
        rows += (s.packets, s.bytes, s.drops, s.bad_descriptors, s.ring_full)
    for txq in entry.tx:
        s = txq.stats
        rows += (s.packets, s.bytes, s.drops, s.bad_descriptors, s.ring_full)
    return tuple(rows)


def _view(entry: _Entry) -> tuple[InterfaceStatus, bytes]:
    """The entry's status and its JSON, rebuilt only when its fingerprint changed."""
    fingerprint = _fingerprint(entry)
    cached = entry.view
    if cached is not None and cached[0] == fingerprint:
        return cached[1], cached[2]
    status = _status(entry)
    body = status.model_dump_json().encode()
    entry.view = (fingerprint, status, body)
    return status, body


def _status(entry: _Entry) -> InterfaceStatus:
    link = entry.link
    return InterfaceStatus.model_construct(
        **_spec_fields(entry.spec),
        socket_path=entry.socket_path,
        state=link.state,
        peer=link.peer,
        disconnect_reason=link.reason,
        stats=_stats(entry),
    )


def _preview(spec: InterfaceSpec, path: str) -> InterfaceStatus:
    nq = spec.memory.num_queue_pairs
    zero = [QueueCounters() for _ in range(nq)]
    return InterfaceStatus.model_construct(
        **_spec_fields(spec),
        socket_path=path,
        state=InterfaceState.DISCONNECTED,
        peer=None,
        disconnect_reason="",
        stats=InterfaceStats(rx_queues=zero, tx_queues=list(zero)),
    )
