"""Who the peer of a control socket is (``SO_PEERCRED``, ``SO_PEERGROUPS``) and whether
an allow-list of uids and gids admits it."""

from __future__ import annotations

import array
import socket as _socket
import struct
from collections.abc import Collection

from .interface import PeerCredentials

_PEERCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(_socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13
_PEERGROUPS_SPACE = 1024  # 256 groups, the most Python's getsockopt() reads


def peer_credentials(sock: _socket.socket) -> PeerCredentials | None:
    """The peer process of a connected socket, or None when the kernel does not say."""
    try:
        pid, uid, gid = _PEERCRED.unpack(
            sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED.size)
        )
    except OSError:
        return None
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


def peer_groups(sock: _socket.socket, creds: PeerCredentials) -> set[int]:
    """The peer's primary and supplementary groups (as far as the kernel tells)."""
    groups = {creds.gid}
    try:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERGROUPS, _PEERGROUPS_SPACE)
    except OSError:  # ERANGE: more than 256 groups; only the primary group counts then
        return groups
    groups.update(array.array("I", raw[: len(raw) - len(raw) % 4]))
    return groups


def admits(
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
    return gids is not None and not peer_groups(sock, creds).isdisjoint(gids)
