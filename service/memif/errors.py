"""One exception hierarchy for the memif library.

Two branches say whose fault an error is, as in h11: :class:`LocalProtocolError`
for a caller that misused the API, :class:`RemoteProtocolError` for a peer that
broke the protocol.
"""

from __future__ import annotations


class MemifError(Exception):
    """Base class of every error raised by this library."""


class LocalProtocolError(MemifError, ValueError):
    """The caller misused the API (bad argument, wrong state)."""


class PathInUse(LocalProtocolError):
    """A socket path holds something memif does not replace: a live socket, another
    user's stale socket, or a file that is not a socket. The message says which."""


class RemoteProtocolError(MemifError):
    """The peer broke the protocol; the connection is dropped with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WireError(RemoteProtocolError):
    """A control message could not be decoded."""


class RegionError(RemoteProtocolError):
    """A shared memory region received from the peer is unusable."""


class PeerDisconnected(MemifError):
    """The peer sent DISCONNECT or closed the control socket."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotConnectedError(MemifError):
    """The operation needs a connected interface."""
