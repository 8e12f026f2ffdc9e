"""The checks creating a memif socket makes, run without creating anything (dry runs).

:func:`check_socket` raises :class:`memif.LocalProtocolError` with the message the
library would raise when the manager opens the socket for real: a bad path, a file
that is not a socket, a live listener, or a directory it cannot create or write.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

import memif


def check_socket(path: str, listen: bool) -> None:
    """Raise what ``memif.Socket(path)`` and, when ``listen``, its first server interface
    would raise; nothing is created, bound or removed."""
    memif.Socket(path).close()  # the path rules: length, NUL bytes, "@" alone
    if not listen:
        return  # a client only connects, and retries until something listens
    if path.startswith("@"):
        _check_abstract(path)
    else:
        _check_file(path)


def _check_abstract(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect("\0" + path[1:])
    except OSError as exc:
        if exc.errno != errno.EPROTOTYPE:
            return  # nobody listens: binding will work
    finally:
        probe.close()
    raise memif.LocalProtocolError(f"cannot listen on {path}: {os.strerror(errno.EADDRINUSE)}")


def _check_file(path: str) -> None:
    _check_directory(path, os.path.dirname(path) or ".")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise memif.LocalProtocolError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno == errno.EPROTOTYPE:
            raise memif.LocalProtocolError(
                f"{path} is in use by a listener of another socket type"
            ) from None
        return  # stale: the real create replaces it
    finally:
        probe.close()
    raise memif.LocalProtocolError(f"{path} is in use by another listener")


def _check_directory(path: str, directory: str) -> None:
    """The directory must exist and be writable, or be creatable under one that is."""
    existing = directory
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing) or "."
    problem = None
    if not os.path.isdir(existing):  # as os.makedirs reports it
        problem = errno.EEXIST if existing == directory else errno.ENOTDIR
    elif not os.access(existing, os.W_OK | os.X_OK):
        readonly = os.statvfs(existing).f_flag & os.ST_RDONLY
        problem = errno.EROFS if readonly else errno.EACCES
    if problem is not None:
        raise memif.LocalProtocolError(f"cannot listen on {path}: {os.strerror(problem)}")
