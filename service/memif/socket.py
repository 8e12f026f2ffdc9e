"""The control socket: listener and connector, fd passing, epoll loop, reconnect.

This is the only module that touches the Unix control socket. It feeds
received messages to the sans-I/O handshakes in :mod:`memif.handshake`, sends
what they answer, maps and creates memory through :mod:`memif.link`, and tells
interfaces when their link goes up or down.

The loop runs in its own thread (:meth:`Socket.start`) or is driven by the
caller (:meth:`Socket.poll`, with :meth:`Socket.fileno` for the caller's own
selector).
"""

from __future__ import annotations

import array
import collections
import contextlib
import errno
import logging
import os
import select
import socket as _socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from . import sockfile, wire
from .config import Arguments
from .constants import (
    DEFAULT_APP_NAME,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_SOCKET_PATH,
    MSG_SIZE,
)
from .errors import (
    FailureKind,
    LocalProtocolError,
    MemifError,
    PathInUse,
    PeerDisconnected,
    RemoteProtocolError,
)
from .failures import FailureBook, FailureCallback, HandshakeFailure
from .handshake import (
    ClientHandshake,
    Send,
    ServerHandshake,
    ServerTarget,
)
from .interface import Callback, Interface, PeerCredentials, State
from .link import (
    ClientMemory,
    Link,
    MemoryBuild,
    build_server_link,
    check_eventfd,
    is_big,
)
from .memory import Region, map_peer_region
from .ring import ClientRxRing
from .sockfile import STALE_POLICIES, DirectoryOpener, SocketFile, StalePolicy

log = logging.getLogger("memif")

HANDSHAKE_TIMEOUT = 5.0  # seconds a peer gets to complete the handshake
ACCEPT_BACKOFF = (0.05, 1.0)  # seconds accepts pause after a failure: first, at most
ACCEPT_LOG_INTERVAL = 10.0  # seconds between two warnings about failing accepts
_PEERCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(_socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13
_PEERGROUPS_SPACE = 1024  # 256 groups, the most Python's getsockopt() reads
_ANCILLARY_SPACE = _socket.CMSG_SPACE(4 * 8)  # room to see (and refuse) extra fds
_RECV_SIZE = MSG_SIZE * 2  # larger than a message, so oversized ones are noticed
_EPOLL_CONN = select.EPOLLIN | select.EPOLLRDHUP


@dataclass(eq=False)
class _Conn:
    """One control connection and what its handshake has gathered so far."""

    sock: _socket.socket
    role: Literal["server", "client"]
    handshake: ServerHandshake | ClientHandshake
    deadline: float
    creds: PeerCredentials | None
    iface: Interface | None = None
    requested_id: int | None = None  # the id INIT named, even when it was refused
    fds: list[int] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    memory: ClientMemory | None = None
    memory_shared: bool = False  # a region went to the peer: the memory is theirs too
    waiting: bool = False  # for the interface's memory, being built
    link: Link | None = None

    @property
    def fileno(self) -> int:
        return self.sock.fileno()

    def release(self) -> None:
        """Close everything gathered that no link took over."""
        for region in self.regions:
            region.close()
        self.regions.clear()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        if self.memory is not None:
            self.memory.link.close()
            self.memory = None


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


def _peer_credentials(sock: _socket.socket) -> PeerCredentials | None:
    try:
        pid, uid, gid = _PEERCRED.unpack(
            sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED.size)
        )
    except OSError:
        return None
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


def _peer_groups(sock: _socket.socket, creds: PeerCredentials) -> set[int]:
    """The peer's primary and supplementary groups (as far as the kernel tells)."""
    groups = {creds.gid}
    try:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERGROUPS, _PEERGROUPS_SPACE)
    except OSError:  # ERANGE: more than 256 groups; only the primary group counts then
        return groups
    groups.update(array.array("I", raw[: len(raw) - len(raw) % 4]))
    return groups


def _admits(
    uids: Collection[int] | None,
    gids: Collection[int] | None,
    creds: PeerCredentials | None,
    sock: _socket.socket,
) -> bool:
    """True when the peer may use a socket or interface allowing ``uids`` and ``gids``.

    Both None: no restriction. Otherwise the peer's uid must be in ``uids`` or one
    of its groups (primary or supplementary) in ``gids``.
    """
    if uids is None and gids is None:
        return True
    if creds is None:
        return False
    if uids and creds.uid in uids:
        return True
    return gids is not None and not _peer_groups(sock, creds).isdisjoint(gids)


def _close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


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
        if not path or path == "@" or len(_address(path).encode()) > 107:
            raise LocalProtocolError(f"socket path {path!r} must be 1..107 bytes")
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
        self._conns: dict[int, _Conn] = {}
        self._iface_conn: dict[Interface, _Conn] = {}
        self._retry: dict[Interface, float] = {}
        self._builds: dict[Interface, MemoryBuild] = {}  # client memory, built or building
        self._faults: collections.deque[tuple[Interface, str]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self.refused_peers = 0
        self.last_refused_reason = ""
        self._failures = FailureBook(on_handshake_failure)
        self._accept_pause = _AcceptPause()

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
            for conn in list(self._conns.values()):
                self._drop(conn, reason, notify_peer=True)
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
            *(c.deadline for c in self._conns.values() if c.link is None and not c.waiting),
            *self._accept_pause.due(),
        ]
        if self._faults:
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
        conn = self._conns.get(fd)
        if conn is not None:
            self._on_readable(conn, mask)

    def _run_timers(self) -> None:
        now = time.monotonic()
        if self._accept_pause.ends(now) and self._listener is not None:
            self._epoll.modify(self._listener.fileno(), select.EPOLLIN)
        for conn in list(self._conns.values()):
            if conn.link is None and not conn.waiting and conn.deadline <= now:
                self._refuse(conn, "handshake timed out", FailureKind.TIMEOUT)
        for iface, due in list(self._retry.items()):
            if due <= now:
                del self._retry[iface]
                self._connect(iface)

    def _run_faults(self) -> None:
        while self._faults:
            iface, reason = self._faults.popleft()
            conn = self._iface_conn.get(iface)
            if conn is not None:
                self._drop(conn, reason, notify_peer=True)

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
            creds = _peer_credentials(sock)
            if not self._socket_admits(creds, sock) or not self._some_server_admits(creds, sock):
                continue
            handshake = ServerHandshake(self.app_name, self._lookup)
            deadline = time.monotonic() + self.handshake_timeout
            conn = _Conn(sock, "server", handshake, deadline, creds)
            self._register(conn)
            try:
                self._send(conn, [handshake.hello()])
            except OSError as exc:  # the peer hung up before HELLO went out
                reason = f"control socket error: {exc.strerror or exc}"
                self._end(conn, reason, FailureKind.SOCKET_ERROR, notify_peer=False)

    def _socket_admits(self, creds: PeerCredentials | None, sock: _socket.socket) -> bool:
        if _admits(self.allowed_uids, self.allowed_gids, creds, sock):
            return True
        reason = f"uid {creds.uid if creds else '?'} is not allowed on this socket"
        self._refuse_early(sock, reason, "server", creds)
        return False

    def _some_server_admits(self, creds: PeerCredentials | None, sock: _socket.socket) -> bool:
        """Refuse at once a peer no server interface here would accept (before any memory)."""
        servers = list(self._servers.values())
        if not servers or any(
            _admits(i.args.allowed_uids, i.args.allowed_gids, creds, sock) for i in servers
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
            busy=iface in self._iface_conn,
        )

    # -- connecting (client role) --------------------------------------------------------

    def _connect(self, iface: Interface) -> None:
        if iface.state is State.DELETED or not iface.admin_up or iface in self._iface_conn:
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
        creds = _peer_credentials(sock)
        if not _admits(self.allowed_uids, self.allowed_gids, creds, sock) or not _admits(
            iface.args.allowed_uids, iface.args.allowed_gids, creds, sock
        ):
            reason = f"server uid {creds.uid if creds else '?'} is not allowed"
            self._refuse_early(sock, reason, "client", creds, iface)
            iface.disconnect_reason = reason
            self._retry[iface] = time.monotonic() + self.reconnect_interval
            return
        handshake = ClientHandshake(iface.args, self.app_name)
        conn = _Conn(sock, "client", handshake, time.monotonic() + self.handshake_timeout, creds)
        conn.iface = iface
        self._iface_conn[iface] = conn
        iface._set_state(State.CONNECTING)
        self._register(conn)

    # -- connections ---------------------------------------------------------------------

    def _register(self, conn: _Conn) -> None:
        self._conns[conn.fileno] = conn
        self._epoll.register(conn.fileno, _EPOLL_CONN)

    def _send(self, conn: _Conn, sends: list[Send]) -> None:
        for item in sends:
            data = wire.encode(item.message)
            if item.fd is None:
                conn.sock.send(data)
            else:
                if isinstance(item.message, wire.AddRegion):
                    conn.memory_shared = True
                fds = array.array("i", [item.fd])
                conn.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])

    def _receive(self, conn: _Conn) -> tuple[wire.Message, int | None] | None:
        """One message and its fd; None when nothing is waiting."""
        try:
            data, ancillary, flags, _ = conn.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(array.array("i", payload[:usable]))
        try:
            if flags & _socket.MSG_CTRUNC:
                raise RemoteProtocolError("ancillary data truncated (too many fds)")
            if not data and not fds:
                raise PeerDisconnected("peer closed")
            if len(fds) > 1:
                raise RemoteProtocolError(f"{len(fds)} file descriptors in one message")
            if flags & _socket.MSG_TRUNC or len(data) != MSG_SIZE:
                raise RemoteProtocolError(
                    f"control message of {len(data)} bytes, expected {MSG_SIZE}"
                )
            message = wire.decode(data)
        except MemifError:
            _close_fds(fds)
            raise
        return message, (fds[0] if fds else None)

    def _on_readable(self, conn: _Conn, mask: int) -> None:
        with self._guarded(conn):
            while conn.fileno in self._conns:
                received = self._receive(conn)
                if received is None:
                    if mask & (select.EPOLLHUP | select.EPOLLERR):
                        raise PeerDisconnected("peer closed")
                    return
                message, fd = received
                try:
                    self._handle(conn, message, fd)
                except BaseException:
                    if fd is not None and fd not in conn.fds:
                        _close_fds([fd])
                    raise

    @contextlib.contextmanager
    def _guarded(self, conn: _Conn) -> Iterator[None]:
        """Turn what goes wrong on a connection into its end, with a reason."""
        try:
            yield
        except PeerDisconnected as exc:
            self._end(conn, exc.reason, exc.kind, notify_peer=False)
        except RemoteProtocolError as exc:
            self._refuse(conn, exc.reason, exc.kind)
        except LocalProtocolError as exc:  # e.g. a handshake used after failing
            self._refuse(conn, str(exc), FailureKind.PROTOCOL)
        except OSError as exc:
            reason = f"control socket error: {exc.strerror or exc}"
            self._end(conn, reason, FailureKind.SOCKET_ERROR, notify_peer=False)
        except Exception:  # a bug here must cost this connection, not the loop
            log.exception("internal error on a control connection", extra={"socket": self.path})
            self._end(conn, "internal error", FailureKind.INTERNAL, notify_peer=True)

    def _handle(self, conn: _Conn, message: wire.Message, fd: int | None) -> None:
        if conn.link is not None:
            conn.handshake.after_connected(message, fd)
            return
        if isinstance(conn.handshake, ServerHandshake):
            self._handle_server(conn, conn.handshake, message, fd)
        else:
            self._handle_client(conn, conn.handshake, message, fd)

    def _handle_server(
        self, conn: _Conn, hs: ServerHandshake, message: wire.Message, fd: int | None
    ) -> None:
        if isinstance(message, wire.Init) and conn.requested_id is None:
            conn.requested_id = message.id
            self._check_peer_allowed(conn, message.id)  # before the secret is compared
        replies = hs.receive(message, fd)
        if fd is not None:
            conn.fds.append(fd)
        if isinstance(message, wire.Init):
            assert hs.target is not None
            iface = self._servers[hs.target.id]
            conn.iface = iface
            self._iface_conn[iface] = conn
            iface._set_state(State.CONNECTING)
        elif isinstance(message, wire.AddRegion):
            assert conn.iface is not None and fd is not None
            region = map_peer_region(
                message.index, fd, message.size, conn.iface.args.accept_unsealed_regions
            )
            conn.fds.remove(fd)
            conn.regions.append(region)
        elif isinstance(message, wire.AddRing):
            assert fd is not None
            direction = "S2M" if message.flags & 1 else "M2S"
            check_eventfd(fd, f"{direction} ring {message.index}")
        elif hs.done:
            result = hs.result
            regions, conn.regions = conn.regions, []
            conn.fds.clear()  # the eventfds now belong to the link
            link = build_server_link(regions, result.s2m_rings, result.m2s_rings)
            # Queues attach before CONNECTED goes out: once the client sees it, we can read.
            self._up(conn, link, result.peer_if_name, result.peer_app_name)
            self._send(conn, replies)
            return
        self._send(conn, replies)

    def _handle_client(
        self, conn: _Conn, hs: ClientHandshake, message: wire.Message, fd: int | None
    ) -> None:
        replies = hs.receive(message, fd)
        assert conn.iface is not None
        if hs.needs_memory:
            self._offer_memory(conn, hs)
            return
        if hs.done:
            assert conn.memory is not None
            link, conn.memory = conn.memory.link, None
            for ring in link.rx:
                assert isinstance(ring, ClientRxRing)
                ring.post_all()
            result = hs.result
            self._up(conn, link, result.peer_if_name, result.peer_app_name)
        self._send(conn, replies)

    def _offer_memory(self, conn: _Conn, hs: ClientHandshake) -> None:
        """Offer the interface's memory, or wait for it while it is being built.

        Memory is built once per geometry and kept until a peer has seen it: a
        server that hangs up before the regions went out (or while they are
        still being built) costs no second build.
        """
        iface = conn.iface
        assert iface is not None
        build = self._builds.get(iface)
        if build is not None and build.negotiated != hs.negotiated:
            build.cancel()
            build = None
        if build is None:
            build = MemoryBuild(hs.negotiated, iface.name, self._wakeup)
            self._builds[iface] = build
            build.start()
        if not build.finished:
            conn.waiting = True  # _resume_waiting() comes back when it is done
            return
        del self._builds[iface]
        conn.waiting = False
        conn.memory = build.take()
        if conn.memory is None:  # out of fds or memory (the reason says which)
            reason = build.error or "memory build failed"
            self._end(conn, reason, FailureKind.MEMORY, notify_peer=True)
            return
        # The handshake clock runs for the peer, not for the time we spent building.
        conn.deadline = time.monotonic() + self.handshake_timeout
        self._send(conn, hs.provide_memory(conn.memory.region_infos, conn.memory.ring_infos))

    def _resume_waiting(self) -> None:
        for conn in [c for c in self._conns.values() if c.waiting]:
            build = self._builds.get(conn.iface) if conn.iface is not None else None
            if build is None or build.finished:
                assert isinstance(conn.handshake, ClientHandshake)
                with self._guarded(conn):
                    self._offer_memory(conn, conn.handshake)

    def _keep_memory(self, conn: _Conn) -> None:
        """Keep a dropped connection's big memory for the next one if no peer has seen it."""
        iface = conn.iface
        if (
            conn.memory is None
            or conn.memory_shared
            or iface is None
            or iface.state is State.DELETED
            or iface in self._builds
            or not isinstance(conn.handshake, ClientHandshake)
            or not is_big(conn.handshake.negotiated)
        ):
            return
        self._builds[iface] = MemoryBuild.kept(conn.handshake.negotiated, conn.memory)
        conn.memory = None

    def _check_peer_allowed(self, conn: _Conn, interface_id: int) -> None:
        """Refuse a peer the interface it names does not allow (an unknown id is the
        handshake's to refuse)."""
        iface = self._servers.get(interface_id)
        if iface is None or _admits(
            iface.args.allowed_uids, iface.args.allowed_gids, conn.creds, conn.sock
        ):
            return
        uid = conn.creds.uid if conn.creds else "?"
        raise RemoteProtocolError(
            f"uid {uid} is not allowed on interface id {interface_id}", FailureKind.NOT_ALLOWED
        )

    def _up(self, conn: _Conn, link: Link, peer_name: str, peer_app: str) -> None:
        iface = conn.iface
        assert iface is not None
        conn.link = link
        iface._link_up(link, peer_name, peer_app, conn.creds)
        log.info(
            "link up",
            extra={
                "interface": iface.name,
                "socket": self.path,
                "peer": peer_name,
                "peer_app": peer_app,
                "rx_queues": len(link.rx),
                "tx_queues": len(link.tx),
            },
        )
        self._callback(iface, iface.on_connected)

    def _refuse(self, conn: _Conn, reason: str, kind: FailureKind) -> None:
        """Drop a connection whose peer broke a rule; a server counts a refused handshake.

        A server interface learns nothing of a peer refused before INIT named it
        (wrong id, secret or mode), so the reason is kept on the socket.
        """
        if conn.role == "server" and conn.link is None:
            self.refused_peers += 1
            self.last_refused_reason = reason
        self._end(conn, reason, kind, notify_peer=True)

    def _end(self, conn: _Conn, reason: str, kind: FailureKind, *, notify_peer: bool) -> None:
        """Drop a connection the peer (or the socket) ended; record a failed handshake."""
        if conn.link is None and conn.fileno in self._conns:
            iface = conn.iface
            interface_id = iface.id if iface is not None else None
            if conn.role == "server":  # INIT may have named one it then refused
                interface_id = conn.requested_id
                iface = self._servers.get(interface_id) if interface_id is not None else None
            detail = reason
            if kind is FailureKind.PEER_CLOSED:  # say how far it got
                detail = f"{reason} while {conn.handshake.state}"
            self._record_failure(
                kind,
                detail,
                conn.role,
                conn.creds,
                interface_id,
                iface.name if iface is not None else "",
            )
        self._drop(conn, reason, notify_peer=notify_peer)

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

    def _drop(self, conn: _Conn, reason: str, *, notify_peer: bool) -> None:
        """Close a connection, tear its link down and schedule a client's retry."""
        if self._conns.pop(conn.fileno, None) is None:
            return
        if notify_peer:
            with contextlib.suppress(OSError):
                conn.sock.send(wire.encode(wire.Disconnect(1, reason.encode()[:96])))
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(conn.fileno)
        conn.sock.close()
        self._keep_memory(conn)
        conn.release()
        iface = conn.iface
        if iface is None or self._iface_conn.get(iface) is not conn:
            if conn.link is not None:
                conn.link.close()
            log.info("peer dropped: %s", reason, extra={"socket": self.path})
            return
        del self._iface_conn[iface]
        was_up = iface.state is State.CONNECTED
        iface._link_down(reason)
        conn.link = None
        log.info(
            "link down" if was_up else "connection failed",
            extra={
                "interface": iface.name,
                "socket": self.path,
                "peer": iface.peer_name if was_up else "",
                "reason": reason,
            },
        )
        if not iface.is_server and iface.admin_up and iface.state is not State.DELETED:
            self._retry[iface] = time.monotonic() + self.reconnect_interval
            self._wakeup()  # the loop may be asleep with a longer timeout (a user's disconnect)
        if was_up:
            self._callback(iface, iface.on_disconnected)

    def _callback(self, iface: Interface, callback: Callable[[Interface], Any] | None) -> None:
        if callback is None:
            return
        try:
            callback(iface)
        except Exception:
            log.exception("interface callback failed", extra={"interface": iface.name})

    # -- requests from interfaces ----------------------------------------------------------

    def _report_fault(self, iface: Interface, reason: str) -> None:
        self._faults.append((iface, reason))
        self._wakeup()

    def _request_disconnect(self, iface: Interface, reason: str) -> None:
        with self._lock:
            conn = self._iface_conn.get(iface)
            if conn is not None:
                self._drop(conn, reason, notify_peer=True)

    def _set_admin(self, iface: Interface, up: bool) -> None:
        with self._lock:
            if iface.state is State.DELETED:
                raise LocalProtocolError(f"interface {iface.name} is deleted")
            iface._admin_up = up
            if not up:
                self._retry.pop(iface, None)
                conn = self._iface_conn.get(iface)
                if conn is not None:
                    self._drop(conn, "administratively down", notify_peer=True)
                self._forget_memory(iface)
                iface.disconnect_reason = "administratively down"
            elif not iface.is_server and iface not in self._iface_conn:
                self._retry[iface] = 0.0
                self._wakeup()

    def _delete_interface(self, iface: Interface) -> None:
        with self._lock:
            self._delete_locked(iface, "interface deleted")

    def _delete_locked(self, iface: Interface, reason: str) -> None:
        if iface.state is State.DELETED:
            return
        self._retry.pop(iface, None)
        conn = self._iface_conn.get(iface)
        if conn is not None:
            self._drop(conn, reason, notify_peer=True)
        self._forget_memory(iface)
        iface._link_down(reason)
        table = self._servers if iface.is_server else self._clients
        if table.get(iface.id) is iface:
            del table[iface.id]
        iface._set_state(State.DELETED)
        iface._close_queues()
        if not self._servers:
            self._close_listener()

    def _forget_memory(self, iface: Interface) -> None:
        build = self._builds.pop(iface, None)
        if build is not None:
            build.cancel()
