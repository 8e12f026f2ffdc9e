"""What a connection reports: link events for applications, protocol steps for the socket.

Events are small immutable records, produced by :class:`memif.connection.Connection`
and yielded by :meth:`memif.Socket.poll_events`. Every connection that reported
:class:`Connecting` ends with exactly one :class:`LinkDown` (``was_up`` tells
whether :class:`LinkUp` came in between); a handshake that the peer broke, or
that timed out, is reported as :class:`HandshakeFailed` first.

The protocol steps (:class:`MemoryNeeded`, :class:`RegionReceived`,
:class:`RingReceived`, :class:`HandshakeCompleted`) ask the I/O side for
what the connection cannot do itself: build, map and check shared memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import FailureKind
from .handshake import HandshakeResult, NegotiatedConfig, RingInfo

Role = Literal["server", "client"]

__all__ = [
    "Connecting",
    "Event",
    "HandshakeCompleted",
    "HandshakeFailed",
    "LinkDown",
    "LinkEvent",
    "LinkUp",
    "MemoryNeeded",
    "RegionReceived",
    "RingReceived",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: the role of our side of the connection."""

    role: Role


# -- link events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkEvent(Event):
    """Base of the events an application sees; ``interface_id`` is our interface's id."""

    interface_id: int | None


@dataclass(frozen=True, slots=True)
class Connecting(LinkEvent):
    """A handshake started for the interface (a client connected, or INIT named it)."""


@dataclass(frozen=True, slots=True)
class LinkUp(LinkEvent):
    """The link is up: queues carry packets from now on."""

    peer_name: str = ""
    peer_app: str = ""


@dataclass(frozen=True, slots=True)
class LinkDown(LinkEvent):
    """The connection of the interface ended (``was_up``: after :class:`LinkUp`)."""

    reason: str = ""
    was_up: bool = False


@dataclass(frozen=True, slots=True)
class HandshakeFailed(LinkEvent):
    """The peer broke the handshake, left it, or let it time out.

    ``interface_id`` is the id the peer named (a server: INIT's, even when it was
    refused; None before INIT). ``refused`` is True when we refused the peer and
    told it why with DISCONNECT.
    """

    reason: str = ""
    kind: FailureKind = FailureKind.PROTOCOL
    refused: bool = False


# -- protocol steps for the I/O side -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryNeeded(Event):
    """A client: HELLO fixed the geometry; call :meth:`Connection.provide_memory`."""

    negotiated: NegotiatedConfig


@dataclass(frozen=True, slots=True)
class RegionReceived(Event):
    """A server: ADD_REGION was accepted; ``fd`` is the region's memfd, to map and check."""

    index: int
    size: int
    fd: int


@dataclass(frozen=True, slots=True)
class RingReceived(Event):
    """A server: ADD_RING was accepted; ``ring.eventfd`` is to check."""

    ring: RingInfo


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(Event):
    """The handshake is through; attach the rings, then :meth:`Connection.established`."""

    result: HandshakeResult
