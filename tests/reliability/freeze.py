"""Stop one thread of another process, as a system call that never returns would.

``ptrace`` stops exactly the thread it is given while the rest of the process
runs on; detaching lets it continue. The thread is only ever stopped while it
waits in ``epoll_wait`` (it holds no lock and not the GIL there), so the other
threads of a Python process keep serving.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

from tests.waiting import wait_until

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for threads too
EPOLL_WAITS = {"232", "281"}  # epoll_wait, epoll_pwait on x86_64

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _ptrace(request: int, tid: int) -> None:
    if _libc.ptrace(request, tid, None, None) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


def thread_id(pid: int, name: str, timeout: float = 10.0) -> int:
    """The id of the thread of ``pid`` called ``name`` (as in ``/proc/<pid>/task/*/comm``)."""

    def named() -> int:  # 0: no such thread yet
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                if (task / "comm").read_text().strip() == name:
                    return int(task.name)
        return 0

    return wait_until(named, timeout, 0.05, f"a thread {name!r} in process {pid}")


class FrozenThread:
    """``with FrozenThread(pid, tid):`` keeps thread ``tid`` stopped inside ``epoll_wait``."""

    def __init__(self, pid: int, tid: int) -> None:
        self.pid = pid
        self.tid = tid
        self.attached = False

    def __enter__(self) -> FrozenThread:
        def caught() -> bool:
            _ptrace(PTRACE_SEIZE, self.tid)
            self.attached = True
            _ptrace(PTRACE_INTERRUPT, self.tid)
            os.waitpid(self.tid, WALL)
            if self._in_epoll_wait():
                return True
            self.thaw()  # caught outside epoll_wait (maybe holding the GIL): try again
            return False

        wait_until(caught, 10, 0.01, f"thread {self.tid} stopped inside epoll_wait")
        return self

    def _in_epoll_wait(self) -> bool:
        syscall = Path(f"/proc/{self.pid}/task/{self.tid}/syscall").read_text().split()
        return bool(syscall) and syscall[0] in EPOLL_WAITS

    def thaw(self) -> None:
        """Let the thread run on (idempotent)."""
        if self.attached:
            self.attached = False
            with contextlib.suppress(ProcessLookupError):
                _ptrace(PTRACE_DETACH, self.tid)

    def reap(self) -> None:
        """After the process was told to exit: collect the stopped thread's end."""
        if self.attached:
            self.attached = False
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.tid, WALL)

    def __exit__(self, *exc: object) -> None:
        self.thaw()
