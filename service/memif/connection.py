"""One control connection as a sans-I/O state machine: messages and time in, events out.

A :class:`Connection` wraps the handshake of one role (:mod:`memif.handshake`)
and adds what a link needs beyond it: the handshake deadline, the end of the
connection (a peer that breaks a rule, says goodbye, hangs up or times out; a
local close) and the link events of :mod:`memif.events`. It never touches a
socket, a file descriptor or the clock: the caller passes received messages
with their fds, the time (``now``, from ``time.monotonic()``) and what it
learned from the transport, then sends :meth:`data_to_send` and handles
:meth:`next_event` in a loop, as :class:`memif.Socket` does.

Replies wait in :meth:`data_to_send` until the caller has handled the events
of the same step, so a region the caller refuses (:meth:`fail`) is never
acknowledged, and a server's CONNECTED goes out only after
:meth:`established`, once the caller has attached the queues.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from . import wire
from .config import Arguments
from .errors import FailureKind, LocalProtocolError, PeerDisconnected, RemoteProtocolError
from .events import (
    Connecting,
    Event,
    HandshakeCompleted,
    HandshakeFailed,
    LinkDown,
    LinkUp,
    MemoryNeeded,
    RegionReceived,
    RingReceived,
    Role,
)
from .handshake import (
    ClientHandshake,
    RegionInfo,
    RingInfo,
    Send,
    ServerHandshake,
    ServerTarget,
)

__all__ = ["Connection", "ConnectionState", "PeerCheck"]

DISCONNECT_CODE = 1  # the code every implementation sends with a reason
REASON_LIMIT = 96  # bytes of a reason we put into DISCONNECT (the field holds 96)

PeerCheck = Callable[[int], str | None]
"""Whether the peer may use the interface id INIT names: None, or why not."""


class ConnectionState(enum.Enum):
    """Where a connection is."""

    HANDSHAKE = "handshake"  # messages go back and forth under a deadline
    NEED_MEMORY = "waiting for memory"  # a client: the caller is building it (no deadline)
    ESTABLISHING = "establishing"  # the caller attaches the rings
    UP = "up"
    CLOSED = "closed"


class Connection:
    """A memif control connection in the server or client role, without I/O."""

    def __init__(
        self,
        role: Role,
        handshake: ServerHandshake | ClientHandshake,
        *,
        now: float,
        timeout: float,
        interface_id: int | None = None,
        check_peer: PeerCheck | None = None,
    ) -> None:
        self.role: Role = role
        self._handshake = handshake
        self._timeout = timeout
        self._check_peer = check_peer
        self._state = ConnectionState.HANDSHAKE
        self.deadline: float | None = now + timeout
        self.interface_id = interface_id  # ours, once known (a server: after INIT)
        self.requested_id: int | None = None  # the id INIT named, even when refused
        self._attached = False  # Connecting reported: a LinkDown is owed
        self._events: deque[Event] = deque()
        self._outgoing: list[Send] = []
        self._held: list[Send] = []  # a server's CONNECTED, until established()

    @classmethod
    def server(
        cls,
        app_name: str,
        lookup: Callable[[int], ServerTarget | None],
        *,
        now: float,
        timeout: float,
        check_peer: PeerCheck | None = None,
    ) -> Connection:
        """A connection a server accepted; HELLO is the first thing to send."""
        handshake = ServerHandshake(app_name, lookup)
        conn = cls("server", handshake, now=now, timeout=timeout, check_peer=check_peer)
        conn._outgoing.append(handshake.hello())
        return conn

    @classmethod
    def client(cls, args: Arguments, app_name: str, *, now: float, timeout: float) -> Connection:
        """A client's connection to a server; it waits for HELLO."""
        handshake = ClientHandshake(args, app_name)
        conn = cls("client", handshake, now=now, timeout=timeout, interface_id=args.id)
        conn._attach()
        return conn

    # -- what the caller reads ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the connection is."""
        return self._state

    @property
    def handshake_state(self) -> str:
        """The handshake's own state, in words (for reasons and logs)."""
        return self._handshake.state

    @property
    def closed(self) -> bool:
        """True once the connection ended; the caller closes the transport."""
        return self._state is ConnectionState.CLOSED

    @property
    def is_up(self) -> bool:
        """True between :class:`LinkUp` and the end."""
        return self._state is ConnectionState.UP

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> list[Send]:
        """Messages (with their fds) to send now, oldest first."""
        sends, self._outgoing = self._outgoing, []
        return sends

    # -- what the caller feeds ------------------------------------------------------------

    def receive(self, message: wire.Message, fd: int | None, now: float) -> None:
        """Feed one received message and the fd that came with it.

        The fd stays the caller's: it is named in a :class:`RegionReceived` or
        :class:`RingReceived` event when the handshake took it, and the caller
        closes it otherwise.
        """
        if self.closed:
            return
        try:
            if self._state is ConnectionState.UP:
                self._handshake.after_connected(message, fd)
            elif isinstance(self._handshake, ServerHandshake):
                self._receive_server(self._handshake, message, fd)
            else:
                self._receive_client(self._handshake, message, fd, now)
        except PeerDisconnected as exc:
            self._end(exc.reason, exc.kind, notify_peer=False)
        except RemoteProtocolError as exc:
            self._end(exc.reason, exc.kind, notify_peer=True, refused=True)
        except LocalProtocolError as exc:  # e.g. a message after the handshake failed
            self._end(str(exc), FailureKind.PROTOCOL, notify_peer=True, refused=True)

    def provide_memory(self, regions: list[RegionInfo], rings: list[RingInfo], now: float) -> None:
        """A client: offer the memory built for :class:`MemoryNeeded`; the deadline restarts."""
        if self._state is not ConnectionState.NEED_MEMORY:
            raise LocalProtocolError(f"provide_memory() while {self._state.value}")
        assert isinstance(self._handshake, ClientHandshake)
        self._state = ConnectionState.HANDSHAKE
        # The handshake clock runs for the peer, not for the time we spent building.
        self.deadline = now + self._timeout
        self._outgoing += self._handshake.provide_memory(regions, rings)

    def established(self) -> None:
        """The caller attached the rings of :class:`HandshakeCompleted`: the link is up."""
        if self._state is not ConnectionState.ESTABLISHING:
            raise LocalProtocolError(f"established() while {self._state.value}")
        result = self._handshake.result
        self._state = ConnectionState.UP
        self._outgoing += self._held
        self._held = []
        self._events.append(
            LinkUp(self.role, self.interface_id, result.peer_if_name, result.peer_app_name)
        )

    def tick(self, now: float) -> None:
        """Let time pass: a handshake past its deadline is refused."""
        if self.deadline is not None and now >= self.deadline and not self.closed:
            self._end("handshake timed out", FailureKind.TIMEOUT, notify_peer=True, refused=True)

    def fail(self, reason: str, kind: FailureKind = FailureKind.PROTOCOL) -> None:
        """The caller found the peer at fault (a region, ring or memory it offered)."""
        self._end(reason, kind, notify_peer=True, refused=True)

    def connection_lost(self, reason: str, kind: FailureKind = FailureKind.PEER_CLOSED) -> None:
        """The transport ended (the peer closed, or a socket error)."""
        self._end(reason, kind, notify_peer=False)

    def abort(self, reason: str, kind: FailureKind) -> None:
        """We cannot go on (no memory, an internal error): tell the peer, report a failure."""
        self._end(reason, kind, notify_peer=True)

    def close(self, reason: str, *, notify_peer: bool = True) -> None:
        """End the connection on our side (disconnect, admin down, delete, a ring fault)."""
        if self.closed:
            return
        self._outgoing.clear()
        if notify_peer:
            self._outgoing.append(_disconnect(reason))
        self._finish(reason)

    # -- the steps ---------------------------------------------------------------------------

    def _receive_server(self, hs: ServerHandshake, message: wire.Message, fd: int | None) -> None:
        if isinstance(message, wire.Init) and self.requested_id is None:
            self.requested_id = message.id
            if self._check_peer is not None:  # before the secret is compared
                refusal = self._check_peer(message.id)
                if refusal is not None:
                    raise RemoteProtocolError(refusal, FailureKind.NOT_ALLOWED)
        replies = hs.receive(message, fd)
        if hs.done:  # CONNECTED waits for established(): the queues attach first
            self._held = replies
            self._complete()
            return
        self._outgoing += replies
        if isinstance(message, wire.Init):
            assert hs.target is not None
            self.interface_id = hs.target.id
            self._attach()
        elif isinstance(message, wire.AddRegion):
            assert fd is not None
            self._events.append(RegionReceived(self.role, message.index, message.size, fd))
        elif isinstance(message, wire.AddRing):
            self._events.append(RingReceived(self.role, hs.last_ring))

    def _receive_client(
        self, hs: ClientHandshake, message: wire.Message, fd: int | None, now: float
    ) -> None:
        self._outgoing += hs.receive(message, fd)
        if hs.needs_memory:
            self._state = ConnectionState.NEED_MEMORY
            self.deadline = None
            self._events.append(MemoryNeeded(self.role, hs.negotiated))
        elif hs.done:
            self._complete()

    def _complete(self) -> None:
        self._state = ConnectionState.ESTABLISHING
        self.deadline = None
        self._events.append(HandshakeCompleted(self.role, self._handshake.result))

    def _attach(self) -> None:
        self._attached = True
        self._events.append(Connecting(self.role, self.interface_id))

    def _end(
        self, reason: str, kind: FailureKind, *, notify_peer: bool, refused: bool = False
    ) -> None:
        """End because of the peer (or of what it asked for); a handshake is a failure."""
        if self.closed:
            return
        if self._state is not ConnectionState.UP:
            detail = reason
            if kind is FailureKind.PEER_CLOSED:  # say how far it got
                detail = f"{reason} while {self._handshake.state}"
            named = self.requested_id if self.role == "server" else self.interface_id
            self._events.append(
                HandshakeFailed(self.role, named, detail, kind, refused and self.role == "server")
            )
        self._outgoing.clear()
        if notify_peer:
            self._outgoing.append(_disconnect(reason))
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        was_up = self._state is ConnectionState.UP
        self._state = ConnectionState.CLOSED
        self._held = []
        self.deadline = None
        if self._attached:
            self._events.append(LinkDown(self.role, self.interface_id, reason, was_up))


def _disconnect(reason: str) -> Send:
    return Send(wire.Disconnect(DISCONNECT_CODE, reason.encode()[:REASON_LIMIT]))
