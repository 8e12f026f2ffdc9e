"""Where memifd keeps control sockets: the allowed directories, and walks inside them.

A spec's ``socket`` must resolve below one of the allowed directories
(``socket_dir`` and those in ``socket_dirs``). memifd opens that directory by
its configured path (the operator chose it, links included) and goes down from
there one component at a time with ``O_NOFOLLOW``: a symbolic link or a file
where a directory should be stops the walk. Listening may create missing
directories (``0750``, umask may make them stricter); memifd remembers them and
removes each again once it is empty and no socket of memifd lies below it.
Everything past the walk (bind, chmod, unlink, connect) happens on the fd it
returns, see :mod:`memif.sockfile`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from memif.sockfile import DIR_FLAGS, DirectoryOpener

from memifd.core.errors import InvalidArgumentError, MemifdError

DIR_MODE = 0o750


def confine(socket: str, socket_dir: Path, roots: Sequence[str]) -> str:
    """The path of a spec's ``socket``: ``@name`` as is, relative names under
    ``socket_dir``; raises :class:`InvalidArgumentError` (field ``socket``) unless it lies
    below one of ``roots``."""
    if socket.startswith("@"):
        return socket
    if ".." in socket.split("/"):
        raise InvalidArgumentError(
            "socket", f"{socket!r} contains '..'; name a file in an allowed directory"
        )
    path = os.path.normpath(os.path.join(socket_dir, socket))
    if root_of(path, roots) is None:
        raise InvalidArgumentError(
            "socket",
            f"{path} is outside the socket directories memifd may use ({', '.join(roots)}); "
            "add its directory to the socket_dirs setting to allow it",
        )
    return path


def root_of(path: str, roots: Sequence[str]) -> str | None:
    """The deepest of ``roots`` that ``path`` lies strictly below."""
    below = [root for root in roots if path.startswith(root.rstrip("/") + "/")]
    return max(below, key=len, default=None)


def prepare_fallback(path: Path) -> None:
    """Create ``path`` (``/tmp/memifd-<uid>``) 0700, or check that the one there is
    memifd's own and that nobody else may write it; raises :class:`InvalidArgumentError`
    (field ``socket_dir``)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    euid = os.geteuid()
    problem = ""
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != euid:
        problem = f"belongs to uid {st.st_uid}, not to memifd's uid {euid}"
    elif stat.S_IMODE(st.st_mode) & 0o022:
        problem = f"has mode {stat.S_IMODE(st.st_mode):04o}: others may write to it"
    if problem:
        raise InvalidArgumentError(
            "socket_dir",
            f"socket_dir: the fallback socket directory {path} {problem}; memifd will not use "
            "it. Set socket_dir (--socket-dir, MEMIFD_SOCKET_DIR) to a directory memifd owns",
        )


class SocketDirs:
    """The allowed socket directories and the directories memifd made in them."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = list(roots)
        self._made: dict[str, tuple[int, int]] = {}  # path -> (st_dev, st_ino)

    def opener(self, path: str) -> DirectoryOpener:
        """Opens the directory of ``path`` for :class:`memif.Socket` (``create`` to listen)."""

        def open_directory(create: bool) -> int:
            return self.open_parent(path, create=create)

        return open_directory

    def open_parent(self, path: str, *, create: bool) -> int:
        """An fd of ``path``'s directory, reached without following links below its root."""
        root = root_of(path, self.roots)
        if root is None:
            raise OSError(errno.EACCES, f"{path} is outside the socket directories")
        parts = os.path.relpath(path, root).split("/")[:-1]
        fd = os.open(root, DIR_FLAGS)
        where = root
        try:
            for part in parts:
                where = os.path.join(where, part)
                child = self._step(fd, part, where, create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, name: str, where: str, create: bool) -> int:
        """Open (or make, then open) the directory ``name`` in ``fd`` without following links."""
        try:
            return _open_child(fd, name, where)
        except FileNotFoundError:
            if not create:
                raise
        try:
            os.mkdir(name, DIR_MODE, dir_fd=fd)
        except FileExistsError:  # made by someone else meanwhile: use it, never remove it
            return _open_child(fd, name, where)
        child = _open_child(fd, name, where)
        st = os.fstat(child)
        self._made.setdefault(where, (st.st_dev, st.st_ino))
        return child

    def prune(self, in_use: Iterable[str]) -> None:
        """Remove the directories memifd made that are empty and hold none of ``in_use``."""
        used = list(in_use)
        for where in sorted(self._made, key=len, reverse=True):
            if any(path.startswith(where + "/") for path in used):
                continue
            if self._remove(where, self._made[where]):
                del self._made[where]

    def _remove(self, where: str, identity: tuple[int, int]) -> bool:
        """rmdir ``where`` if it still is the directory made; False to try again later."""
        try:
            fd = self.open_parent(where, create=False)
        except OSError:
            return True  # its parent is gone or replaced: nothing of ours to remove
        name = os.path.basename(where)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != identity:
                return True
            os.rmdir(name, dir_fd=fd)
            return True
        except FileNotFoundError:
            return True
        except OSError:  # not empty: a peer's files are there; try again later
            return False
        finally:
            os.close(fd)


def _open_child(fd: int, name: str, where: str) -> int:
    try:
        return os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(
                exc.errno, f"{where} is not a directory (a symbolic link or a file)"
            ) from None
        raise


SOCKET_DIR_HINT = "set socket_dir (--socket-dir, MEMIFD_SOCKET_DIR) to a writable directory"


def prepare_socket_dir(path: Path, fallback: bool) -> None:
    """Create socket_dir (0750); the ``fallback`` one in /tmp only if it is memifd's alone
    (see :func:`prepare_fallback`). Raises :class:`MemifdError` for people."""
    try:
        if fallback:
            prepare_fallback(path)
        else:
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    except OSError as exc:
        raise MemifdError(
            f"socket_dir {path} cannot be created: {exc.strerror}; {SOCKET_DIR_HINT}"
        ) from None


def socket_dir_problem(directory: os.PathLike[str] | str) -> str | None:
    """What keeps memifd from making sockets in ``directory``, or None."""
    if not os.path.isdir(directory):
        return f"socket_dir {directory} does not exist or is not a directory; {SOCKET_DIR_HINT}"
    if not os.access(directory, os.W_OK | os.X_OK):
        readonly = os.statvfs(directory).f_flag & os.ST_RDONLY
        why = os.strerror(errno.EROFS if readonly else errno.EACCES)
        return f"socket_dir {directory} is not writable: {why}; {SOCKET_DIR_HINT}"
    return None
