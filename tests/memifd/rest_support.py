"""Helpers for the REST tests: memifd in-process (real uvicorn) or as a subprocess,
Python memif peers, and test packets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import memif
import uvicorn
from memifd.api.rest.app import create_app
from memifd.api.rest.server import uvicorn_config
from memifd.cli.serve import bind_http
from memifd.core.manager import Manager
from memifd.core.models import InterfaceSpec
from memifd.core.settings import Settings

from tests.waiting import WaitTimeout, wait_until


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def frame(index: int, size: int = 64) -> bytes:
    """An Ethernet frame: distinct MACs, IPv4 ethertype, ``index`` in the payload."""
    header = bytes.fromhex("02000000000a02000000000b0800")
    body = index.to_bytes(4, "big")
    return (header + body).ljust(size, b"\xab")


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until true; returns whether it came true within ``timeout``."""
    try:
        return bool(wait_until(predicate, timeout, interval))
    except WaitTimeout:
        return False


class RestServer:
    """A started manager behind real uvicorn on an ephemeral loopback port (in a thread).

    ``wrap`` puts an ASGI layer (say, a proxy stand-in) in front of the app, and
    ``prefix`` is the path under which that layer serves it.
    """

    def __init__(
        self, settings: Settings, prefix: str = "", wrap: Callable[[Any], Any] | None = None
    ) -> None:
        self.settings = settings
        self.manager = Manager(settings)
        self.manager.start()
        self._sock = bind_http("127.0.0.1:0")
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{prefix}"
        app = create_app(self.manager, settings)
        config = uvicorn_config(wrap(app) if wrap else app, settings, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        if not wait_for(lambda: self.server.started, timeout=10):
            raise RuntimeError("uvicorn did not start")
        headers = {}
        if settings.token_value:
            headers["Authorization"] = f"Bearer {settings.token_value}"
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def close(self) -> None:
        self.client.close()
        self.manager.stop()
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> RestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def memif_clients(
    path: str, ids: list[int], reconnect_interval: float = 0.2, **kwargs: Any
) -> Iterator[list[memif.Interface]]:
    """Python memif client interfaces on ``path`` (one socket, its own loop thread)."""
    sock = memif.Socket(path, reconnect_interval=reconnect_interval)
    try:
        ifaces = [
            sock.create_interface(memif.Arguments(id=i, role="client", name=f"py{i}", **kwargs))
            for i in ids
        ]
        sock.start()
        yield ifaces
    finally:
        sock.close()


def receive(
    iface: memif.Interface, count: int, timeout: float = 5.0, queue: int = 0
) -> list[bytes]:
    """Packets read from ``iface`` until ``count`` arrived or ``timeout`` passed."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    rxq = iface.rx_queue(queue)
    while len(got) < count and time.monotonic() < deadline:
        burst = rxq.recv_burst(256)
        if burst:
            got.extend(burst)
        else:
            rxq.wait(0.05)
    return got


@dataclass
class Daemon:
    """``memifd serve`` as a subprocess with its own socket dir and free ports."""

    socket_dir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    banner: list[str] = field(default_factory=list)
    started: dict[str, Any] = field(default_factory=dict)  # the banner's fields (JSON logs)
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="memifd-", suffix=".log")[1])
    )
    unread_stderr: bool = False  # stderr to a pipe nobody reads (until stop_output)

    def log(self) -> str:
        """What memifd wrote to stderr so far."""
        return self.log_path.read_text()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait: bool = True) -> Daemon:
        cmd = [
            sys.executable,
            "-m",
            "memifd",
            "serve",
            "--socket-dir",
            str(self.socket_dir),
            "--http-addr",
            f"127.0.0.1:{self.http_port}",
            "--grpc-addr",
            f"127.0.0.1:{self.grpc_port}",
            *self.args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
        env.update(self.env)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if self.unread_stderr else log,
                text=True,
                env=env,
            )
        if wait:
            self._read_banner()
        return self

    def _read_banner(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"memifd exited early:\n{self.stop_output()}")
            self.banner.append(line.rstrip("\n"))
            if line.startswith("{"):  # JSON logs: the banner is one record
                self.started = json.loads(line)
                return
            if line.strip().startswith("interfaces"):
                return

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; returns the exit status and how long it took."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - start

    def stop_output(self) -> str:
        """Kill if still running; stdout and stderr."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out + self.log()

    def kill(self) -> None:
        """Kill if still running and remove the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
        self.log_path.unlink(missing_ok=True)


def spec(name: str, **kwargs: object) -> InterfaceSpec:
    """An interface spec on the socket ``m.sock`` of the test's socket directory."""
    return InterfaceSpec.model_validate({"name": name, "socket": "m.sock", **kwargs})
