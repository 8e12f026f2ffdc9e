"""The control socket: listener and connector, fd passing, epoll loop, timers, reconnect.

This is the I/O adapter of the sans-I/O connections in :mod:`memif.connection`
and the only module that touches the Unix control socket. It feeds each
connection the messages and fds it receives and the time, sends what the
connection queues, answers its protocol steps (maps and checks the peer's
memory, builds ours through :mod:`memif.link`) and hands its link events to
the interfaces, to the callbacks and to :meth:`Socket.poll_events`.

The loop runs in its own thread (:meth:`Socket.start`) or is driven by the
caller (:meth:`Socket.poll`, with :meth:`Socket.fileno` for the caller's own
selector). One turn reads at most :data:`MESSAGES_PER_TURN` messages of each
connection, so a peer announcing hundreds of rings never holds the loop up for
long: the rest waits for the next turn.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import logging
import os
import select
import socket as _socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal

from . import sockfile, wire
from .channel import Channel, close_fds
from .config import Arguments
from .connection import Connection
from .constants import (
    DEFAULT_APP_NAME,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_SOCKET_PATH,
    MAX_SOCKET_PATH,
)
from .errors import (
    FailureKind,
    LocalProtocolError,
    PathInUse,
    PeerDisconnected,
    RemoteProtocolError,
)
from .events import (
    Connecting,
    Event,
    HandshakeCompleted,
    HandshakeFailed,
    LinkDown,
    LinkEvent,
    LinkUp,
    MemoryNeeded,
    RegionReceived,
    RingReceived,
)
from .failures import FailureBook, FailureCallback, HandshakeFailure
from .handshake import ServerTarget
from .interface import Callback, Interface, PeerCredentials, State
from .link import (
    MemoryBuild,
    ServerLinkBuild,
    check_eventfd,
    is_big,
)
from .memory import map_peer_region
from .peers import admits, peer_credentials
from .ring import ClientRxRing
from .sockfile import STALE_POLICIES, DirectoryOpener, SocketFile, StalePolicy

log = logging.getLogger("memif")

HANDSHAKE_TIMEOUT = 5.0  # seconds a peer gets to complete the handshake
ACCEPT_BACKOFF = (0.05, 1.0)  # seconds accepts pause after a failure: first, at most
ACCEPT_LOG_INTERVAL = 10.0  # seconds between two warnings about failing accepts
_EPOLL_CONN = select.EPOLLIN | select.EPOLLRDHUP
MESSAGES_PER_TURN = 32  # control messages read from one connection in one loop turn
RINGS_PER_TURN = 32  # ring endpoints a server attaches to a link in one loop turn
EVENT_BACKLOG = 4096  # link events kept for poll_events(); the oldest go first


class _AcceptPause:
    """Backoff after failed accepts, with one warning per :data:`ACCEPT_LOG_INTERVAL`."""

    def __init__(self) -> None:
        self.until: float | None = None
        self.delay = ACCEPT_BACKOFF[0]
        self.next_report = 0.0
        self.failures = 0

    def due(self) -> list[float]:
        return [] if self.until is None else [self.until]

    def start(self, exc: OSError, path: str) -> None:
        now = time.monotonic()
        self.until = now + self.delay
        self.delay = min(self.delay * 2, ACCEPT_BACKOFF[1])
        self.failures += 1
        if now >= self.next_report:
            log.warning(
                "accept failed %d time(s): %s; retrying in up to %g s",
                self.failures,
                exc.strerror or exc,
                ACCEPT_BACKOFF[1],
                extra={"socket": path},
            )
            self.failures = 0
            self.next_report = now + ACCEPT_LOG_INTERVAL

    def ends(self, now: float) -> bool:
        """True once when the pause is over."""
        if self.until is None or now < self.until:
            return False
        self.until = None
        return True

    def succeeded(self) -> None:
        self.delay = ACCEPT_BACKOFF[0]


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path


class Socket:
    """A memif control socket carrying any number of interfaces in both roles.

    ``path`` is a filesystem path or, with a leading ``@``, an abstract name.
    Server interfaces make the socket listen; client interfaces connect to it
    and retry every ``reconnect_interval`` seconds until deleted.

    A socket file is created with ``mode`` already set and removed only while it
    still is the file bound (see :mod:`memif.sockfile`). ``directory(create)``
    opens the directory it lives in (``create`` is True to listen, False to
    connect); by default that is ``dirname(path)``, made if missing to listen.
    A stale file in the way is replaced only if it is a socket nothing accepts
    on and ``replace_stale`` allows it: ``own`` (default: this process's
    effective uid owns it), ``any`` or ``never``; otherwise :class:`PathInUse`.

    ``allowed_uids`` / ``allowed_gids``, when given, refuse peers whose uid (from
    ``SO_PEERCRED``) is not listed and none of whose groups is; an interface's
    own ``Arguments.allowed_uids`` / ``allowed_gids`` narrow that further.
    ``refused_peers`` counts peers refused before their link came up (uid, id,
    secret, mode, memory or a timed-out handshake) and ``last_refused_reason``
    says why the latest one was.

    Every handshake that fails, in either role and for any reason (a peer
    refused, a peer that closes or disconnects mid-handshake, a timeout), is
    logged at WARNING with the peer's pid and uid, counted by kind in
    :attr:`handshake_failures`, kept in :attr:`last_handshake_failure` and
    passed to ``on_handshake_failure`` (called on the loop thread).

    Link events (:mod:`memif.events`) come out of :meth:`poll_events`; the
    interfaces' ``on_connected`` / ``on_disconnected`` callbacks are called for
    the same :class:`~memif.LinkUp` and :class:`~memif.LinkDown` events.
    """

    def __init__(
        self,
        path: str = DEFAULT_SOCKET_PATH,
        *,
        mode: int = 0o660,
        app_name: str = DEFAULT_APP_NAME,
        reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL,
        allowed_uids: Collection[int] | None = None,
        allowed_gids: Collection[int] | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        on_handshake_failure: FailureCallback | None = None,
        directory: DirectoryOpener | None = None,
        replace_stale: StalePolicy = "own",
    ) -> None:
        if not path or path == "@" or len(_address(path).encode()) > MAX_SOCKET_PATH:
            raise LocalProtocolError(f"socket path {path!r} must be 1..{MAX_SOCKET_PATH} bytes")
        if "\0" in path and not path.startswith("@"):
            raise LocalProtocolError(f"socket path {path!r} contains a NUL byte")
        if reconnect_interval <= 0:
            raise LocalProtocolError("reconnect_interval must be positive")
        if len(app_name.encode()) > 32:
            raise LocalProtocolError("app_name must be at most 32 bytes")
        if replace_stale not in STALE_POLICIES:
            raise LocalProtocolError(f"replace_stale must be one of {', '.join(STALE_POLICIES)}")
        self.path = path
        self.mode = mode
        self.app_name = app_name
        self.reconnect_interval = reconnect_interval
        self.allowed_uids = frozenset(allowed_uids) if allowed_uids is not None else None
        self.allowed_gids = frozenset(allowed_gids) if allowed_gids is not None else None
        self.replace_stale: StalePolicy = replace_stale
        self._directory = directory
        self.handshake_timeout = handshake_timeout
        self._lock = threading.RLock()
        self._epoll = select.epoll()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._listener: _socket.socket | None = None
        self._file: SocketFile | None = None
        self._servers: dict[int, Interface] = {}
        self._clients: dict[int, Interface] = {}
        self._channels: dict[int, Channel] = {}
        self._iface_channel: dict[Interface, Channel] = {}
        self._retry: dict[Interface, float] = {}
        self._builds: dict[Interface, MemoryBuild] = {}  # client memory, built or building
        self._building: set[Channel] = set()  # server links whose rings still attach
        self._faults: collections.deque[tuple[Interface, str]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self.refused_peers = 0
        self.last_refused_reason = ""
        self._failures = FailureBook(on_handshake_failure)
        self._accept_pause = _AcceptPause()
        self._events: collections.deque[LinkEvent] = collections.deque(maxlen=EVENT_BACKLOG)
        self._events_ready = threading.Condition()

    def __repr__(self) -> str:
        return f"<memif.Socket {self.path!r} {len(self.interfaces)} interfaces>"

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API --------------------------------------------------------------

    @property
    def interfaces(self) -> list[Interface]:
        """Every interface on this socket, servers first."""
        with self._lock:
            return [*self._servers.values(), *self._clients.values()]

    @property
    def handshake_failures(self) -> dict[str, int]:
        """Failed handshakes so far by :class:`~memif.FailureKind` value (all kinds present)."""
        return self._failures.counts

    @property
    def last_handshake_failure(self) -> HandshakeFailure | None:
        """The latest failed handshake, or None."""
        return self._failures.last

    @property
    def listening(self) -> bool:
        """True while the socket listens for clients."""
        return self._listener is not None

    def create_interface(
        self,
        args: Arguments | None = None,
        *,
        on_connected: Callback | None = None,
        on_disconnected: Callback | None = None,
        **kwargs: Any,
    ) -> Interface:
        """Create an interface; a server starts listening, a client starts connecting.

        ``args`` may be omitted and given as keywords (``id=1, role="server"``).
        Raises :class:`LocalProtocolError` when the id is taken for that role here.
        """
        if args is None:
            args = Arguments(**kwargs)
        elif kwargs:  # validated like the rest (model_copy would skip validation)
            args = Arguments.model_validate({**args.model_dump(), **kwargs})
        with self._lock:
            self._check_open()
            table = self._servers if args.is_server else self._clients
            if args.id in table:
                raise LocalProtocolError(
                    f"a {args.role.value} interface with id {args.id} already exists on {self.path}"
                )
            if args.is_server and self._listener is None:
                self._listen()  # before the interface exists: a failure leaves nothing open
            iface = Interface(self, args, on_connected, on_disconnected)
            table[args.id] = iface
            if not args.is_server:
                self._retry[iface] = 0.0
                self._wakeup()
            return iface

    def fileno(self) -> int:
        """An fd readable when :meth:`poll` has work (for the caller's own loop)."""
        return self._epoll.fileno()

    def poll(self, timeout: float | None = 0.0) -> int:
        """Run the event loop once; returns the number of events handled."""
        if self._thread is not None and threading.current_thread() is not self._thread:
            raise LocalProtocolError("poll() while the socket's own thread runs it")
        return self._poll_once(timeout)

    def poll_events(self, timeout: float | None = 0.0) -> list[LinkEvent]:
        """Link events since the last call, oldest first (see :mod:`memif.events`).

        Without a loop thread this runs the loop once first (as :meth:`poll`);
        with one (:meth:`start`) it waits up to ``timeout`` seconds for an event.
        At most :data:`EVENT_BACKLOG` events wait here; older ones are dropped.
        """
        if self._thread is None:
            self._poll_once(timeout)
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._events_ready:
                while not self._events:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._events_ready.wait(remaining)
        with self._events_ready:
            events = list(self._events)
            self._events.clear()
        return events

    def interface_for(self, event: LinkEvent) -> Interface | None:
        """The interface an event is about, while it exists on this socket."""
        if event.interface_id is None:
            return None
        table = self._servers if event.role == "server" else self._clients
        with self._lock:
            return table.get(event.interface_id)

    def start(self) -> None:
        """Run the event loop in a daemon thread until :meth:`stop` or :meth:`close`."""
        with self._lock:
            self._check_open()
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name=f"memif {self.path}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the loop thread (interfaces stay; :meth:`poll` may drive them again)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wakeup()
        if thread is not threading.current_thread():
            thread.join()
        self._thread = None

    def close(self, reason: str = "socket closed") -> None:
        """Delete every interface (peers get DISCONNECT), stop, remove the socket file."""
        if self._closed:
            return
        self.stop()
        with self._lock:
            for iface in self.interfaces:
                self._delete_locked(iface, reason)
            for channel in list(self._channels.values()):
                self._end(channel, reason)
            for build in self._builds.values():
                build.cancel()
            self._builds.clear()
            self._close_listener()
            self._closed = True
            self._epoll.close()
            os.close(self._wake)

    # -- loop ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._poll_once(1.0)
            except Exception:  # a bug must not kill the loop silently
                log.exception("memif socket loop error", extra={"socket": self.path})
                time.sleep(0.1)

    def _poll_once(self, timeout: float | None) -> int:
        with self._lock:
            if self._closed:
                return 0
            wait = self._next_timeout(timeout)
        try:
            events = self._epoll.poll(-1 if wait is None else wait)
        except InterruptedError:
            events = []
        except ValueError:  # closed concurrently
            return 0
        with self._lock:
            if self._closed:
                return 0
            for fd, mask in events:
                self._dispatch(fd, mask)
            self._resume_waiting()
            self._continue_links()
            self._run_timers()
            self._run_faults()
        return len(events)

    def next_timeout(self) -> float | None:
        """Seconds until a reconnect or handshake deadline is due (None: nothing due).

        A caller driving :meth:`poll` from its own loop waits at most this long.
        """
        with self._lock:
            return self._next_timeout(None)

    def _next_timeout(self, timeout: float | None) -> float | None:
        due = [
            *self._retry.values(),
            *(c.conn.deadline for c in self._channels.values() if c.conn.deadline is not None),
            *self._accept_pause.due(),
        ]
        if self._faults or self._building:
            return 0.0
        if not due:
            return timeout
        until = max(0.0, min(due) - time.monotonic())
        return until if timeout is None else min(until, timeout)

    def _dispatch(self, fd: int, mask: int) -> None:
        if fd == self._wake:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake, 8)
            return
        if self._listener is not None and fd == self._listener.fileno():
            self._accept()
            return
        channel = self._channels.get(fd)
        if channel is not None:
            self._on_readable(channel, mask)

    def _run_timers(self) -> None:
        now = time.monotonic()
        if self._accept_pause.ends(now) and self._listener is not None:
            self._epoll.modify(self._listener.fileno(), select.EPOLLIN)
        for channel in list(self._channels.values()):
            channel.conn.tick(now)
            self._pump(channel)
        for iface, due in list(self._retry.items()):
            if due <= now:
                del self._retry[iface]
                self._connect(iface)

    def _run_faults(self) -> None:
        while self._faults:
            iface, reason = self._faults.popleft()
            channel = self._iface_channel.get(iface)
            if channel is not None:
                self._end(channel, reason)

    def _wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake, (1).to_bytes(8, "little"))

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError(f"socket {self.path} is closed")

    # -- listening (server role) -------------------------------------------------------

    def _listen(self) -> None:
        sock = _socket.socket(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
        )
        try:
            if self.path.startswith("@"):
                sock.bind(_address(self.path))
            else:
                self._file = sockfile.bind(
                    sock, self.path, self._opener(), self.mode, self.replace_stale
                )
            sock.listen(64)
        except OSError as exc:
            sock.close()
            self._remove_file()
            error = PathInUse if exc.errno == errno.EADDRINUSE else LocalProtocolError
            raise error(f"cannot listen on {self.path}: {exc.strerror}") from None
        except BaseException:  # e.g. the path is in use: do not leave the socket open
            sock.close()
            self._remove_file()
            raise
        self._listener = sock
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        log.info("listening", extra={"socket": self.path})

    def _opener(self) -> DirectoryOpener:
        if self._directory is not None:
            return self._directory
        return sockfile.parent_opener(self.path)

    def _remove_file(self) -> None:
        if self._file is not None:
            self._file.remove()
            self._file = None

    def _close_listener(self) -> None:
        if self._listener is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(self._listener.fileno())
        self._listener.close()
        self._listener = None
        self._remove_file()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of fds or memory: the listener stays readable, so stop watching it
                # for a while instead of failing (and logging) in a tight loop.
                self._epoll.modify(self._listener.fileno(), 0)
                self._accept_pause.start(exc, self.path)
                return
            self._accept_pause.succeeded()
            sock.setblocking(False)
            creds = peer_credentials(sock)
            if not self._socket_admits(creds, sock) or not self._some_server_admits(creds, sock):
                continue
            conn = Connection.server(
                self.app_name,
                self._lookup,
                now=time.monotonic(),
                timeout=self.handshake_timeout,
                check_peer=functools.partial(self._peer_refusal, creds, sock),
            )
            channel = Channel(sock, conn, creds)
            self._register(channel)
            self._pump(channel)  # HELLO; a peer that hung up already is a failed handshake

    def _socket_admits(self, creds: PeerCredentials | None, sock: _socket.socket) -> bool:
        if admits(self.allowed_uids, self.allowed_gids, creds, sock):
            return True
        reason = f"uid {creds.uid if creds else '?'} is not allowed on this socket"
        self._refuse_early(sock, reason, "server", creds)
        return False

    def _some_server_admits(self, creds: PeerCredentials | None, sock: _socket.socket) -> bool:
        """Refuse at once a peer no server interface here would accept (before any memory)."""
        servers = list(self._servers.values())
        if not servers or any(
            admits(i.args.allowed_uids, i.args.allowed_gids, creds, sock) for i in servers
        ):
            return True
        uid = creds.uid if creds else "?"
        reason = f"uid {uid} is not allowed on any interface of this socket"
        self._refuse_early(sock, reason, "server", creds)
        return False

    def _refuse_early(
        self,
        sock: _socket.socket,
        reason: str,
        role: Literal["server", "client"],
        creds: PeerCredentials | None,
        iface: Interface | None = None,
    ) -> None:
        """Refuse a peer before its handshake starts: DISCONNECT, close, count, log."""
        self.refused_peers += 1
        self.last_refused_reason = reason
        with contextlib.suppress(OSError):
            sock.send(wire.encode(wire.Disconnect(1, reason.encode()[:96])))
        sock.close()
        self._record_failure(
            FailureKind.NOT_ALLOWED,
            reason,
            role,
            creds,
            iface.id if iface else None,
            iface.name if iface else "",
        )

    def _lookup(self, interface_id: int) -> ServerTarget | None:
        iface = self._servers.get(interface_id)
        if iface is None or not iface.admin_up:
            return None
        args = iface.args
        return ServerTarget(
            id=args.id,
            name=args.name,
            mode=args.mode,
            secret=args.secret,
            busy=iface in self._iface_channel,
        )

    # -- connecting (client role) --------------------------------------------------------

    def _connect(self, iface: Interface) -> None:
        if iface.state is State.DELETED or not iface.admin_up or iface in self._iface_channel:
            return
        sock = _socket.socket(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
        )
        try:
            if self.path.startswith("@"):
                sock.connect(_address(self.path))
            else:
                sockfile.connect(sock, self.path, self._opener())
        except OSError as exc:
            sock.close()
            reason = f"connect to {self.path} failed: {exc.strerror or exc}"
            if iface.disconnect_reason != reason:
                log.debug(reason, extra={"interface": iface.name})
            iface.disconnect_reason = reason
            self._retry[iface] = time.monotonic() + self.reconnect_interval
            return
        creds = peer_credentials(sock)
        if not admits(self.allowed_uids, self.allowed_gids, creds, sock) or not admits(
            iface.args.allowed_uids, iface.args.allowed_gids, creds, sock
        ):
            reason = f"server uid {creds.uid if creds else '?'} is not allowed"
            self._refuse_early(sock, reason, "client", creds, iface)
            iface.disconnect_reason = reason
            self._retry[iface] = time.monotonic() + self.reconnect_interval
            return
        conn = Connection.client(
            iface.args, self.app_name, now=time.monotonic(), timeout=self.handshake_timeout
        )
        channel = Channel(sock, conn, creds, iface)
        self._iface_channel[iface] = channel
        self._register(channel)
        self._pump(channel)

    # -- channels: the I/O of one connection ------------------------------------------------

    def _register(self, channel: Channel) -> None:
        self._channels[channel.fileno] = channel
        self._epoll.register(channel.fileno, _EPOLL_CONN)

    def _on_readable(self, channel: Channel, mask: int) -> None:
        """Feed the connection what arrived, at most :data:`MESSAGES_PER_TURN` messages."""
        for _ in range(MESSAGES_PER_TURN):
            if channel.conn.closed:
                return
            with self._guarded(channel):
                received = channel.receive()
                if received is None:
                    if mask & (select.EPOLLHUP | select.EPOLLERR):
                        raise PeerDisconnected("peer closed")
                    return
                message, fd = received
                channel.incoming_fd = fd
                try:
                    channel.conn.receive(message, fd, time.monotonic())
                    self._pump(channel)
                finally:
                    if channel.incoming_fd is not None:  # the connection did not take it
                        close_fds([channel.incoming_fd])
                        channel.incoming_fd = None
            self._pump(channel)

    @contextlib.contextmanager
    def _guarded(self, channel: Channel) -> Iterator[None]:
        """Turn what goes wrong on a channel into the end of its connection, with a reason."""
        conn = channel.conn
        try:
            yield
        except PeerDisconnected as exc:
            conn.connection_lost(exc.reason, exc.kind)
        except RemoteProtocolError as exc:
            conn.fail(exc.reason, exc.kind)
        except LocalProtocolError as exc:  # e.g. a handshake used after failing
            conn.fail(str(exc), FailureKind.PROTOCOL)
        except OSError as exc:
            conn.connection_lost(
                f"control socket error: {exc.strerror or exc}", FailureKind.SOCKET_ERROR
            )
        except Exception:  # a bug here must cost this connection, not the loop
            log.exception("internal error on a control connection", extra={"socket": self.path})
            conn.abort("internal error", FailureKind.INTERNAL)

    def _pump(self, channel: Channel) -> None:
        """Act on the connection's events, send what it queued, close the channel at its end."""
        conn = channel.conn
        while True:
            event = conn.next_event()
            if event is not None:
                with self._guarded(channel):
                    self._on_event(channel, event)
                continue
            if conn.closed:
                self._close_channel(channel)
                return
            with self._guarded(channel):
                channel.send(conn.data_to_send())
            if not conn.closed:
                return

    def _on_event(self, channel: Channel, event: Event) -> None:
        if isinstance(event, Connecting):
            self._on_connecting(channel, event)
        elif isinstance(event, MemoryNeeded):
            channel.negotiated = event.negotiated
            self._offer_memory(channel)
        elif isinstance(event, RegionReceived):
            self._on_region(channel, event)
        elif isinstance(event, RingReceived):
            channel.take_incoming()
            direction = "S2M" if event.ring.s2m else "M2S"
            check_eventfd(event.ring.eventfd, f"{direction} ring {event.ring.index}")
        elif isinstance(event, HandshakeCompleted):
            self._on_completed(channel, event)
        elif isinstance(event, LinkUp):
            self._on_link_up(channel, event)
        elif isinstance(event, HandshakeFailed):
            self._on_failed(channel, event)
        elif isinstance(event, LinkDown):
            self._on_link_down(channel, event)

    def _on_connecting(self, channel: Channel, event: Connecting) -> None:
        if channel.role == "server":
            assert event.interface_id is not None
            iface = self._servers[event.interface_id]
            channel.iface = iface
            self._iface_channel[iface] = channel
        assert channel.iface is not None
        channel.iface.mark_connecting()
        self._emit(event)

    def _on_region(self, channel: Channel, event: RegionReceived) -> None:
        channel.take_incoming()
        assert channel.iface is not None
        accept_unsealed = channel.iface.args.accept_unsealed_regions
        region = map_peer_region(event.index, event.fd, event.size, accept_unsealed)
        channel.fds.remove(event.fd)
        channel.regions.append(region)

    def _on_completed(self, channel: Channel, event: HandshakeCompleted) -> None:
        result = event.result
        if channel.role == "server":
            regions, channel.regions = channel.regions, []
            channel.fds.clear()  # the eventfds now belong to the link
            build = ServerLinkBuild(regions, result.s2m_rings, result.m2s_rings)
            channel.link = build.link
            if not build.step(RINGS_PER_TURN):  # the rest in later turns
                channel.link_build = build
                self._building.add(channel)
                self._wakeup()  # readable fileno(): a caller's own loop comes back at once
                return
        else:
            assert channel.memory is not None
            channel.link, channel.memory = channel.memory.link, None
            for ring in channel.link.rx:
                assert isinstance(ring, ClientRxRing)
                ring.post_all()
        # Queues attach (on LinkUp) before a server's CONNECTED goes out: then we can read.
        channel.conn.established()

    def _continue_links(self) -> None:
        """Attach the next slice of rings of every server link being built."""
        for channel in list(self._building):
            build = channel.link_build
            assert build is not None
            with self._guarded(channel):
                if build.step(RINGS_PER_TURN):
                    self._building.discard(channel)
                    channel.link_build = None
                    channel.conn.established()
            self._pump(channel)
        if self._building:
            self._wakeup()

    def _on_link_up(self, channel: Channel, event: LinkUp) -> None:
        iface, link = channel.iface, channel.link
        assert iface is not None and link is not None
        iface.attach_link(link, event.peer_name, event.peer_app, channel.creds)
        log.info(
            "link up",
            extra={
                "interface": iface.name,
                "socket": self.path,
                "peer": event.peer_name,
                "peer_app": event.peer_app,
                "rx_queues": len(link.rx),
                "tx_queues": len(link.tx),
            },
        )
        self._emit(event)
        self._callback(iface, iface.on_connected)

    def _on_failed(self, channel: Channel, event: HandshakeFailed) -> None:
        """Record a failed handshake; a server counts the peers it refused.

        A server interface learns nothing of a peer refused before INIT named it
        (wrong id, secret or mode), so the reason is kept on the socket.
        """
        if event.refused:
            self.refused_peers += 1
            self.last_refused_reason = event.reason
        iface = channel.iface
        if channel.role == "server":  # INIT may have named one it then refused
            iface = (
                self._servers.get(event.interface_id) if event.interface_id is not None else None
            )
        self._record_failure(
            event.kind,
            event.reason,
            channel.role,
            channel.creds,
            event.interface_id,
            iface.name if iface is not None else "",
        )
        channel.end_reason = event.reason
        self._emit(event)

    def _on_link_down(self, channel: Channel, event: LinkDown) -> None:
        """Tear the link down, tell the interface, schedule a client's retry."""
        self._close_channel(channel)
        iface = channel.iface
        if iface is None or self._iface_channel.get(iface) is not channel:
            return
        del self._iface_channel[iface]
        reason = event.reason
        iface.detach_link(reason)
        if channel.link is not None:
            channel.link.close()
            channel.link = None
        log.info(
            "link down" if event.was_up else "connection failed",
            extra={
                "interface": iface.name,
                "socket": self.path,
                "peer": iface.peer_name if event.was_up else "",
                "reason": reason,
            },
        )
        if not iface.is_server and iface.admin_up and iface.state is not State.DELETED:
            self._retry[iface] = time.monotonic() + self.reconnect_interval
            self._wakeup()  # the loop may be asleep with a longer timeout (a user's disconnect)
        self._emit(event)
        if event.was_up:
            self._callback(iface, iface.on_disconnected)

    def _close_channel(self, channel: Channel) -> None:
        """Send the connection's last words, close the socket and what no link took over."""
        if self._channels.pop(channel.fileno, None) is None:
            return
        self._building.discard(channel)
        channel.link_build = None
        with contextlib.suppress(OSError):
            channel.send(channel.conn.data_to_send())
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(channel.fileno)
        channel.sock.close()
        self._keep_memory(channel)
        channel.release()
        iface = channel.iface
        if iface is None or self._iface_channel.get(iface) is not channel:
            if channel.link is not None:
                channel.link.close()
                channel.link = None
            log.info("peer dropped: %s", channel.end_reason, extra={"socket": self.path})

    def _end(self, channel: Channel, reason: str) -> None:
        """End a connection on our side (the peer gets DISCONNECT with ``reason``)."""
        channel.conn.close(reason)
        self._pump(channel)

    def _offer_memory(self, channel: Channel) -> None:
        """Offer the interface's memory, or wait for it while it is being built.

        Memory is built once per geometry and kept until a peer has seen it: a
        server that hangs up before the regions went out (or while they are
        still being built) costs no second build.
        """
        iface, negotiated = channel.iface, channel.negotiated
        assert iface is not None and negotiated is not None
        build = self._builds.get(iface)
        if build is not None and build.negotiated != negotiated:
            build.cancel()
            build = None
        if build is None:
            build = MemoryBuild(negotiated, iface.name, self._wakeup)
            self._builds[iface] = build
            build.start()
        if not build.finished:
            channel.waiting = True  # _resume_waiting() comes back when it is done
            return
        del self._builds[iface]
        channel.waiting = False
        channel.memory = build.take()
        if channel.memory is None:  # out of fds or memory (the reason says which)
            channel.conn.abort(build.error or "memory build failed", FailureKind.MEMORY)
            return
        memory = channel.memory
        channel.conn.provide_memory(memory.region_infos, memory.ring_infos, time.monotonic())

    def _resume_waiting(self) -> None:
        for channel in [c for c in self._channels.values() if c.waiting]:
            build = self._builds.get(channel.iface) if channel.iface is not None else None
            if build is None or build.finished:
                with self._guarded(channel):
                    self._offer_memory(channel)
                self._pump(channel)

    def _keep_memory(self, channel: Channel) -> None:
        """Keep a dropped connection's big memory for the next one if no peer has seen it."""
        iface, negotiated = channel.iface, channel.negotiated
        if (
            channel.memory is None
            or channel.memory_shared
            or iface is None
            or iface.state is State.DELETED
            or iface in self._builds
            or negotiated is None
            or not is_big(negotiated)
        ):
            return
        self._builds[iface] = MemoryBuild.kept(negotiated, channel.memory)
        channel.memory = None

    def _peer_refusal(
        self, creds: PeerCredentials | None, sock: _socket.socket, interface_id: int
    ) -> str | None:
        """Why the interface INIT names does not allow this peer (an unknown id is the
        handshake's to refuse), or None."""
        iface = self._servers.get(interface_id)
        if iface is None or admits(iface.args.allowed_uids, iface.args.allowed_gids, creds, sock):
            return None
        uid = creds.uid if creds else "?"
        return f"uid {uid} is not allowed on interface id {interface_id}"

    def _record_failure(
        self,
        kind: FailureKind,
        reason: str,
        role: Literal["server", "client"],
        creds: PeerCredentials | None,
        interface_id: int | None,
        interface: str,
    ) -> None:
        failure = HandshakeFailure(
            kind=kind,
            reason=reason,
            role=role,
            socket=self.path,
            interface_id=interface_id,
            interface=interface,
            peer=creds,
        )
        self._failures.record(failure)

    def _callback(self, iface: Interface, callback: Callable[[Interface], Any] | None) -> None:
        if callback is None:
            return
        try:
            callback(iface)
        except Exception:
            log.exception("interface callback failed", extra={"interface": iface.name})

    def _emit(self, event: LinkEvent) -> None:
        with self._events_ready:
            self._events.append(event)
            self._events_ready.notify_all()

    # -- requests from interfaces (see memif.interface.InterfaceHost) ------------------------

    def report_fault(self, iface: Interface, reason: str) -> None:
        """A queue of ``iface`` found its ring broken: the loop drops the link soon."""
        self._faults.append((iface, reason))
        self._wakeup()

    def disconnect_interface(self, iface: Interface, reason: str) -> None:
        """Drop the link (or handshake) of ``iface``, telling the peer ``reason``."""
        with self._lock:
            channel = self._iface_channel.get(iface)
            if channel is not None:
                self._end(channel, reason)

    def set_interface_admin(self, iface: Interface, up: bool) -> None:
        """Enable or disable ``iface``; a disabled interface has no connection."""
        with self._lock:
            if iface.state is State.DELETED:
                raise LocalProtocolError(f"interface {iface.name} is deleted")
            iface.mark_admin(up)
            if not up:
                self._retry.pop(iface, None)
                channel = self._iface_channel.get(iface)
                if channel is not None:
                    self._end(channel, "administratively down")
                self._forget_memory(iface)
                iface.disconnect_reason = "administratively down"
            elif not iface.is_server and iface not in self._iface_channel:
                self._retry[iface] = 0.0
                self._wakeup()

    def delete_interface(self, iface: Interface) -> None:
        """Disconnect ``iface``, release everything it holds and forget it."""
        with self._lock:
            self._delete_locked(iface, "interface deleted")

    def _delete_locked(self, iface: Interface, reason: str) -> None:
        if iface.state is State.DELETED:
            return
        self._retry.pop(iface, None)
        channel = self._iface_channel.get(iface)
        if channel is not None:
            self._end(channel, reason)
        self._forget_memory(iface)
        iface.detach_link(reason)
        table = self._servers if iface.is_server else self._clients
        if table.get(iface.id) is iface:
            del table[iface.id]
        iface.mark_deleted()
        if not self._servers:
            self._close_listener()

    def _forget_memory(self, iface: Interface) -> None:
        build = self._builds.pop(iface, None)
        if build is not None:
            build.cancel()
