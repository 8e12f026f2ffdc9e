"""The I/O of one control connection: SCM_RIGHTS messages, and the fds and memory it gathered.

A :class:`Channel` pairs a connected Unix socket with its sans-I/O
:class:`~memif.connection.Connection`; :class:`memif.Socket` drives it.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket as _socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from . import wire
from .connection import Connection
from .constants import MSG_SIZE
from .errors import MemifError, PeerDisconnected, RemoteProtocolError
from .handshake import NegotiatedConfig, Send
from .interface import Interface, PeerCredentials
from .link import ClientMemory, Link, ServerLinkBuild
from .memory import Region

_ANCILLARY_SPACE = _socket.CMSG_SPACE(4 * 8)  # room to see (and refuse) extra fds
_RECV_SIZE = MSG_SIZE * 2  # larger than a message, so oversized ones are noticed


def close_fds(fds: Iterable[int]) -> None:
    """Close ``fds``, ignoring those already closed."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass(eq=False)
class Channel:
    """One control connection: its socket, its sans-I/O state and what it gathered."""

    sock: _socket.socket
    conn: Connection
    creds: PeerCredentials | None
    iface: Interface | None = None
    fds: list[int] = field(default_factory=list)  # received, not yet owned by a region or link
    regions: list[Region] = field(default_factory=list)
    negotiated: NegotiatedConfig | None = None  # a client: the geometry HELLO fixed
    memory: ClientMemory | None = None
    memory_shared: bool = False  # a region went to the peer: the memory is theirs too
    waiting: bool = False  # for the interface's memory, being built
    link: Link | None = None
    incoming_fd: int | None = None  # the fd of the message being handled, until taken
    link_build: ServerLinkBuild | None = None  # a server: the link, while rings attach
    end_reason: str = ""

    @property
    def role(self) -> Literal["server", "client"]:
        return self.conn.role

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

    def take_incoming(self) -> None:
        """The connection took the fd of the message at hand: the channel keeps it."""
        fd, self.incoming_fd = self.incoming_fd, None
        if fd is not None:
            self.fds.append(fd)

    def send(self, sends: list[Send]) -> None:
        """Send messages, each with its fd (SCM_RIGHTS) if it has one."""
        for item in sends:
            data = wire.encode(item.message)
            if item.fd is None:
                self.sock.send(data)
            else:
                if isinstance(item.message, wire.AddRegion):
                    self.memory_shared = True
                fds = array.array("i", [item.fd])
                self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])

    def receive(self) -> tuple[wire.Message, int | None] | None:
        """One message and its fd; None when nothing is waiting.

        Raises :class:`PeerDisconnected` at the end of the stream and
        :class:`RemoteProtocolError` for a message that is not one (its fds closed).
        """
        try:
            data, ancillary, flags, _ = self.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SPACE)
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
            close_fds(fds)
            raise
        return message, (fds[0] if fds else None)
