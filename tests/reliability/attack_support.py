"""Raw clients for the attacks of the resource and browser tests: HTTP requests written
byte by byte on a TCP socket, and memifd's figures while they run."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.memifd.rest_support import Daemon
from tests.reliability.service_support import proc_status, start_daemon, write_config

TOKEN = "attack-token-5c0e9d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def anon_mib(pid: int) -> float:
    """memifd's own memory (RssAnon: heap and stacks, not the shared packet memory)."""
    return int(proc_status(pid)["RssAnon"].split()[0]) / 1024


def guarded_daemon(
    sock_dir: Path, tmp: Path, interfaces: list[dict[str, Any]] | None = None, **settings: object
) -> Daemon:
    """memifd with a token, and ``interfaces`` and ``settings`` in its config file."""
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    config = write_config(tmp / "memifd.yaml", interfaces or [], **settings)
    return start_daemon(sock_dir, config, args=["--token-file", str(token_file)])


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to memifd's REST port."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def request_head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    """The request line and headers of an HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(
    sock: socket.socket, timeout: float = 10.0, close_wait: float = 0.3
) -> tuple[int, str, bool]:
    """Status, body text and whether the server closed the connection after it.

    A server that closes does so right after the response: ``close_wait`` is how
    long to wait for that end of stream once the response is complete.
    """
    sock.settimeout(timeout)
    data = b""
    closed = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                break
    if not data:
        raise ConnectionError("no response")
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if not closed:
        sock.settimeout(close_wait)
        try:
            closed = sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed = True  # closed with our unread bytes in its buffer: a reset
        except OSError:
            closed = False  # still open when close_wait ran out
    return status, body.decode(errors="replace"), closed


def send_until_refused(sock: socket.socket, total: int, chunk: int = 1 << 20) -> int:
    """Send up to ``total`` bytes of body; stops when the server closes. Bytes sent."""
    block = b"x" * chunk
    sent = 0
    sock.settimeout(5.0)
    with contextlib.suppress(OSError):
        while sent < total:
            sent += sock.send(block[: min(chunk, total - sent)])
    return sent


@contextlib.contextmanager
def open_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` idle TCP connections to memifd's REST port, closed on the way out."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(connect(port))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def read_by_server(sock: socket.socket) -> bool:
    """True when the server has read all that was sent on the loopback TCP connection ``sock``:
    nothing unacknowledged on this side, nothing unread on the server's (``/proc/net/tcp``)."""
    ours, theirs = _tcp_address(sock.getsockname()), _tcp_address(sock.getpeername())
    queues: dict[tuple[str, str], tuple[int, int]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        sending, unread = (int(count, 16) for count in fields[4].split(":"))
        queues[fields[1], fields[2]] = (sending, unread)
    client, server = queues.get((ours, theirs)), queues.get((theirs, ours))
    return client is not None and server is not None and client[0] == 0 and server[1] == 0


def _tcp_address(address: tuple[str, int]) -> str:
    """An IPv4 address as ``/proc/net/tcp`` spells it: the address in host order, then the port."""
    host, port = address[:2]
    return f"{int.from_bytes(socket.inet_aton(host), sys.byteorder):08X}:{port:04X}"


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed ``sock`` (whatever it wrote before)."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
