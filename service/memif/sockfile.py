"""Control socket files, created, probed and removed through directory fds.

A socket file often lives in a directory other users may write (a shared
socket directory, ``/tmp``). Everything here works on an open fd of that
directory, never on a path walked again later, so a directory (or one of
its parents) swapped for a symbolic link after it was opened changes
nothing this module does:

* **bind** happens in a fresh private directory (``0700``, ours) inside the
  target directory. The socket gets its final mode there, where nobody else
  can reach it, and is hard-linked under its final name; ``link()`` fails when
  that name exists, so nothing is ever replaced by it. The alternatives are
  worse: a ``chmod()`` by path after ``bind()`` follows whatever the path is
  by then; ``umask`` is per process and other threads create files too; and
  ``fchmod()`` on a socket fd changes the socket's own inode, not the file.
* A **name in the way** is replaced only when it is a socket nothing accepts
  on and, by default, owned by this process's effective uid (one it left).
* **unlink** happens only while the name still is the inode that was bound
  (``st_dev``, ``st_ino``).
* **connect** opens the file ``O_PATH | O_NOFOLLOW`` in the directory and
  connects through ``/proc/self/fd/N``, so it reaches that inode and no other.

One window stays: between the last identity check and ``unlink()``, a user
who may write the directory can put another entry under the name. Such a
user may unlink that entry anyway, so they gain nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket as _socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import LocalProtocolError, PathInUse

log = logging.getLogger("memif")

#: Which stale socket files (sockets nothing accepts on) bind() may replace:
#: ``own`` those of this process's effective uid, ``any`` all, ``never`` none.
StalePolicy = Literal["own", "any", "never"]
STALE_POLICIES: tuple[StalePolicy, ...] = ("own", "any", "never")

#: Opens the directory a socket file lives in and returns the fd (the caller closes it).
#: Called with ``create=True`` to listen (missing directories may be made), False to connect.
DirectoryOpener = Callable[[bool], int]

# O_PATH: a directory fd needs search permission only, as a path through it would.
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_PRIVATE_NAME = "s"


def parent_opener(path: str) -> DirectoryOpener:
    """The default opener: ``dirname(path)`` as the caller named it (made when
    ``create``). It follows symbolic links in ``path``: the caller chose the path."""
    parent = os.path.dirname(path) or "."

    def open_parent(create: bool) -> int:
        if create:
            os.makedirs(parent, mode=0o750, exist_ok=True)
        return os.open(parent, DIR_FLAGS)

    return open_parent


@dataclass
class SocketFile:
    """A socket file this process bound: its directory (held open), name and inode."""

    path: str
    dir_fd: int
    name: str
    dev: int
    ino: int

    def remove(self) -> bool:
        """Unlink the file if the name still is our inode; close the directory fd.

        Returns True when the file was removed (or already gone)."""
        try:
            try:
                st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return True
            if (st.st_dev, st.st_ino) != (self.dev, self.ino):
                log.warning(
                    "socket file was replaced by someone else; left in place",
                    extra={"socket": self.path},
                )
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)
            return True
        except OSError as exc:
            log.warning("cannot remove socket file: %s", exc.strerror, extra={"socket": self.path})
            return False
        finally:
            os.close(self.dir_fd)


def bind(
    sock: _socket.socket, path: str, directory: DirectoryOpener, mode: int, stale: StalePolicy
) -> SocketFile:
    """Bind ``sock`` at ``path`` with ``mode`` (see the module docstring for how).

    Raises :class:`PathInUse` when the name holds something that is not replaced,
    ``OSError`` when the directory cannot be used.
    """
    name = os.path.basename(path)
    dir_fd = directory(True)
    try:
        _clear_name(dir_fd, name, path, stale)
        dev, ino = _bind_privately(sock, dir_fd, name, path, mode)
    except BaseException:
        os.close(dir_fd)
        raise
    return SocketFile(path, dir_fd, name, dev, ino)


def connect(sock: _socket.socket, path: str, directory: DirectoryOpener) -> None:
    """Connect ``sock`` to the socket file ``path`` found in ``directory(False)``.

    Raises ``OSError`` (``ENOTSOCK`` when the name is not a socket)."""
    dir_fd = directory(False)
    try:
        file_fd = os.open(
            os.path.basename(path), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISSOCK(os.fstat(file_fd).st_mode):
            raise OSError(errno.ENOTSOCK, f"{path} is not a socket")
        sock.connect(f"/proc/self/fd/{file_fd}")
    finally:
        os.close(file_fd)


def describe(mode: int) -> str:
    """What kind of file ``st_mode`` is, for messages."""
    kinds = [
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((text for test, text in kinds if test(mode)), "a file of unknown type")


# -- the steps ------------------------------------------------------------------------------


def check_free(path: str, directory: DirectoryOpener, stale: StalePolicy) -> None:
    """Raise what :func:`bind` would raise for what lies at ``path`` now, changing nothing
    (a missing directory is fine: :func:`bind` creates it)."""
    try:
        dir_fd = directory(False)
    except FileNotFoundError:
        return
    try:
        _clear_name(dir_fd, os.path.basename(path), path, stale, remove=False)
    finally:
        os.close(dir_fd)


def _clear_name(dir_fd: int, name: str, path: str, stale: StalePolicy, remove: bool = True) -> None:
    """Make sure ``name`` is free, removing it only if it is a replaceable stale socket
    (and only when ``remove``: otherwise just say whether it could be)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise PathInUse(
            f"{path} exists and is {describe(st.st_mode)} of uid {st.st_uid}, not a socket; "
            "it is left in place"
        )
    _check_stale(dir_fd, name, path, st)
    euid = os.geteuid()
    if stale == "never":
        raise PathInUse(
            f"{path} is a stale socket of uid {st.st_uid}; replacing stale sockets is off"
        )
    if stale == "own" and st.st_uid != euid:
        raise PathInUse(
            f"{path} is a stale socket of uid {st.st_uid}; only stale sockets of uid {euid} "
            "(this process) are replaced"
        )
    if not remove:
        return
    again = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
        raise PathInUse(f"{path} changed while it was checked; it is left in place")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
    log.info("removed stale socket file", extra={"socket": path})


def _check_stale(dir_fd: int, name: str, path: str, st: os.stat_result) -> None:
    """Raise :class:`PathInUse` unless nothing accepts on the socket file ``name``."""
    file_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    probe = _socket.socket(
        _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
    )
    try:
        seen = os.fstat(file_fd)
        if (seen.st_dev, seen.st_ino) != (st.st_dev, st.st_ino):
            raise PathInUse(f"{path} changed while it was checked; it is left in place")
        probe.connect(f"/proc/self/fd/{file_fd}")
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return  # stale: bound once, nothing listens
        if exc.errno == errno.EPROTOTYPE:
            raise PathInUse(
                f"{path} is in use by a listener of another socket type (uid {st.st_uid})"
            ) from None
        if exc.errno in (errno.EAGAIN, errno.EINPROGRESS):
            raise PathInUse(f"{path} is in use by another listener (uid {st.st_uid})") from None
        raise PathInUse(
            f"{path} is a socket of uid {st.st_uid} that cannot be probed "
            f"({exc.strerror}); it is left in place"
        ) from None
    finally:
        probe.close()
        os.close(file_fd)
    raise PathInUse(f"{path} is in use by another listener (uid {st.st_uid})")


def _bind_privately(
    sock: _socket.socket, dir_fd: int, name: str, path: str, mode: int
) -> tuple[int, int]:
    """Bind in a private subdirectory, set ``mode``, link as ``name``; the inode's (dev, ino)."""
    private = f".memif-{os.getpid()}-{secrets.token_hex(6)}"
    os.mkdir(private, 0o700, dir_fd=dir_fd)
    try:
        private_fd = os.open(private, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(private, dir_fd=dir_fd)
        raise
    bound = False
    try:
        own = os.fstat(private_fd)
        if own.st_uid != os.geteuid() or stat.S_IMODE(own.st_mode) & 0o077:
            raise LocalProtocolError(f"cannot listen on {path}: its private directory was replaced")
        sock.bind(f"/proc/self/fd/{private_fd}/{_PRIVATE_NAME}")
        bound = True
        st = os.stat(_PRIVATE_NAME, dir_fd=private_fd, follow_symlinks=False)
        os.chmod(_PRIVATE_NAME, mode, dir_fd=private_fd)  # nobody else can reach it here
        try:
            os.link(
                _PRIVATE_NAME,
                name,
                src_dir_fd=private_fd,
                dst_dir_fd=dir_fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            raise PathInUse(f"{path} appeared while binding; it is left in place") from None
        return st.st_dev, st.st_ino
    finally:
        if bound:
            with contextlib.suppress(OSError):
                os.unlink(_PRIVATE_NAME, dir_fd=private_fd)
        _remove_private(dir_fd, private, private_fd)


def _remove_private(dir_fd: int, private: str, private_fd: int) -> None:
    """Remove the private directory if its name still is ours; close its fd."""
    try:
        mine = os.fstat(private_fd)
        st = os.stat(private, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            os.rmdir(private, dir_fd=dir_fd)
    except OSError:
        pass  # renamed away by a user who may write the directory: theirs to tidy
    finally:
        os.close(private_fd)
