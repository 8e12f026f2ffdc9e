"""Echo peers for kill tests, forked from a process that has already imported ``memif``.

``python -m tests.reliability.peer_zygote`` reads commands on stdin, one a line:
``server PATH`` or ``client PATH`` forks a child that runs an echo interface in
that role on that socket and prints the child's pid; the caller kills it with
SIGKILL whenever it likes. Forking from a warm, single-threaded process makes a
fresh peer cost milliseconds instead of an interpreter start. Children exit when
the zygote goes; the zygote kills and reaps what is left when stdin closes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import memif


def echo(role: str, path: str, zygote: int) -> None:
    """Run an echo interface until the zygote goes away (or SIGKILL comes)."""
    sock = memif.Socket(path, reconnect_interval=0.05, app_name="kill-peer")
    deadline = time.monotonic() + 10
    while True:
        try:
            iface = sock.create_interface(id=0, role=role, name=f"echo-{role}", rx_mode="interrupt")
            break
        except memif.PathInUse:
            # The killed predecessor's listener may outlive its connection by a moment:
            # the kernel closes a dying process's fds one by one.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    sock.start()
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    while os.getppid() == zygote:
        packets = rxq.recv_burst(256)
        if not packets:
            rxq.wait(0.05)
            continue
        for _ in range(100):  # a full ring drains as the other side reads
            sent = txq.send_burst(packets)
            packets = packets[sent:]
            if not packets or not iface.is_connected:
                break
            rxq.wait(0.001)


def _reap(children: set[int]) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)


def main() -> None:
    zygote = os.getpid()
    children: set[int] = set()
    for line in sys.stdin:
        _reap(children)
        role, path = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                echo(role, path, zygote)
            except BaseException as exc:
                print(f"echo {role} on {path} failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        children.add(pid)
        print(pid, flush=True)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
