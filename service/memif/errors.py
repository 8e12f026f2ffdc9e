"""One exception hierarchy for the memif library.

Two branches say whose fault an error is, as in h11: :class:`LocalProtocolError`
for a caller that misused the API, :class:`RemoteProtocolError` for a peer that
broke the protocol.
"""

from __future__ import annotations

import enum


class FailureKind(enum.StrEnum):
    """Why a handshake failed, as a small fixed set (fit for metric labels).

    The free-text reason says the details; this says which rule it was.
    """

    VERSION = "version"  # no protocol version in common
    UNKNOWN_ID = "unknown_id"  # no server interface with the id INIT named
    BUSY = "busy"  # that interface is already connected
    MODE = "mode"  # ethernet/ip/punt-inject differ, or an unknown mode
    SECRET = "secret"  # the server interface has a secret and INIT did not match it
    NOT_ALLOWED = "not_allowed"  # the peer's uid is not in allowed_uids
    MEMORY = "memory"  # a region or ring was refused (size, seals, bounds, cookie, eventfd)
    PROTOCOL = "protocol"  # malformed or out-of-order messages, missing or extra fds
    TIMEOUT = "timeout"  # the handshake did not finish in time
    PEER_DISCONNECT = "peer_disconnect"  # the peer sent DISCONNECT during the handshake
    PEER_CLOSED = "peer_closed"  # the peer closed the socket during the handshake
    SOCKET_ERROR = "socket_error"  # the control socket failed (send or receive error)
    INTERNAL = "internal"  # a bug on our side


class MemifError(Exception):
    """Base class of every error raised by this library."""


class LocalProtocolError(MemifError, ValueError):
    """The caller misused the API (bad argument, wrong state)."""


class PathInUse(LocalProtocolError):
    """A socket path holds something memif does not replace: a live socket, another
    user's stale socket, or a file that is not a socket. The message says which."""


class RemoteProtocolError(MemifError):
    """The peer broke the protocol; the connection is dropped with this reason.

    ``kind`` says which rule it broke (see :class:`FailureKind`).
    """

    default_kind = FailureKind.PROTOCOL

    def __init__(self, reason: str, kind: FailureKind | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or self.default_kind


class WireError(RemoteProtocolError):
    """A control message could not be decoded."""


class RegionError(RemoteProtocolError):
    """A shared memory region received from the peer is unusable."""

    default_kind = FailureKind.MEMORY


class PeerDisconnected(MemifError):
    """The peer sent DISCONNECT or closed the control socket."""

    def __init__(self, reason: str, kind: FailureKind = FailureKind.PEER_CLOSED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class NotConnectedError(MemifError):
    """The operation needs a connected interface."""
