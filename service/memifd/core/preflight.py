"""The checks creating a memif socket makes, run without creating anything (dry runs).

:func:`check_socket` raises :class:`memif.LocalProtocolError` with the message the
library would raise when the manager opens the socket for real: a bad path, a file
that is not a socket (or a socket that is not replaced), a live listener, or a
directory it cannot create or write.
"""

from __future__ import annotations

import errno
import os
import socket

import memif
from memif import sockfile
from memif.sockfile import DirectoryOpener, StalePolicy


def check_socket(path: str, listen: bool, directory: DirectoryOpener, stale: StalePolicy) -> None:
    """Raise what ``memif.Socket(path)`` and, when ``listen``, its first server interface
    would raise; nothing is created, bound or removed. ``directory`` and ``stale`` are
    what the real socket would be opened with."""
    memif.Socket(path).close()  # the path rules: length, NUL bytes, "@" alone
    if not listen:
        return  # a client only connects, and retries until something listens
    if path.startswith("@"):
        _check_abstract(path)
    else:
        try:
            sockfile.check_free(path, directory, stale)
        except OSError as exc:  # the directory: worded as memif.Socket words it
            raise memif.LocalProtocolError(f"cannot listen on {path}: {exc.strerror}") from None
        _check_directory(path, os.path.dirname(path) or ".")


def _check_abstract(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect("\0" + path[1:])
    except OSError as exc:
        if exc.errno != errno.EPROTOTYPE:
            return  # nobody listens: binding will work
    finally:
        probe.close()
    raise memif.PathInUse(f"cannot listen on {path}: {os.strerror(errno.EADDRINUSE)}")


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
