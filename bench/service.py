"""Benchmark cases that run memifd itself: capture, inject, REST and idle cost."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Memifd:
    """``memifd serve`` in a subprocess pinned to one core, with a config file."""

    def __init__(
        self,
        workdir: Path,
        interfaces: Sequence[Mapping[str, object]],
        core: int,
        **settings: object,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http = f"127.0.0.1:{free_port()}"
        self.grpc = f"127.0.0.1:{free_port()}"
        self.socket_dir = workdir / "sockets"
        config = {
            "socket_dir": str(self.socket_dir),
            "socket_dirs": [str(workdir.parent)],  # the cases' sockets sit beside workdir
            "http_addr": self.http,
            "grpc_addr": self.grpc,
            "log_level": "warning",
            **settings,
            "interfaces": [dict(spec) for spec in interfaces],
        }
        self.config = workdir / "memifd.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.core = core
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Memifd:
        core = self.core
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memifd", "serve", "--config", str(self.config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "memifd.log", "wb"),
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("memifd did not become ready:\n" + self.log())

    def log(self) -> str:
        return (self.workdir / "memifd.log").read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time the process's threads have used (scheduler nanoseconds, not clock ticks)."""
        assert self.proc is not None
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # thread ended
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://{self.http}{path}", timeout=10) as r:
            return bytes(r.read())

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _stubs() -> tuple[object, object]:
    from memifd.proto.memif.v1 import memif_pb2, memif_pb2_grpc

    return memif_pb2, memif_pb2_grpc


_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


def grpc_capture(addr: str, interface: str, seconds: float) -> tuple[float, int, int]:
    """Capture for ``seconds``; returns (pps, packets, dropped)."""
    import grpc

    pb, pb_grpc = _stubs()
    with grpc.insecure_channel(addr, options=_GRPC_OPTIONS) as channel:
        stub = pb_grpc.MemifStub(channel)  # type: ignore[attr-defined]
        request = pb.CaptureRequest(  # type: ignore[attr-defined]
            interface=interface, duration=seconds + 30, max_batch=256
        )
        stream = stub.Capture(request)
        packets = 0
        dropped = 0
        start = None
        for batch in stream:
            if start is None:
                start = time.perf_counter()
                continue  # the clock starts with the first batch
            packets += len(batch.packets)
            dropped = batch.dropped
            if time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - (start or time.perf_counter())
        stream.cancel()
    return packets / elapsed if elapsed else 0.0, packets, dropped


def rest_capture(address: str, interface: str, seconds: float, fmt: str) -> tuple[float, int]:
    """Stream a REST capture in ``fmt`` (pcap or pcapng) for ``seconds`` after its
    first bytes; returns (packets per second, packets)."""
    import http.client
    import struct

    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", f"/v1/interfaces/{interface}/capture?format={fmt}")
    response = conn.getresponse()
    buffer = bytearray(response.read1(65536))
    offset = 24 if fmt == "pcap" else 0  # past the pcap file header
    packets = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = response.read1(1 << 20)
        if not chunk:
            break
        buffer += chunk
        end = len(buffer)
        while True:  # walk whole records (pcap) or blocks (pcapng)
            if fmt == "pcap":
                if end - offset < 16:
                    break
                size = 16 + struct.unpack_from("<I", buffer, offset + 8)[0]
                counted = 1
            else:
                if end - offset < 8:
                    break
                kind, size = struct.unpack_from("<II", buffer, offset)
                counted = kind == 6
            if end - offset < size:
                break
            offset += size
            packets += counted
        del buffer[:offset]
        offset = 0
    elapsed = time.perf_counter() - start
    conn.close()
    return packets / elapsed if elapsed else 0.0, packets


def grpc_inject(addr: str, interface: str, seconds: float, size: int = 64) -> tuple[float, int]:
    """Stream 256-packet batches for ``seconds``; returns (accepted pps, ring_full)."""
    import grpc

    pb, pb_grpc = _stubs()
    frame = bytes.fromhex("02fe0000000102fe000000020800") + bytes(size - 14)
    deadline = time.perf_counter() + seconds

    def requests() -> Iterator[object]:
        batch = [frame] * 256
        first = True
        while time.perf_counter() < deadline:
            yield pb.InjectRequest(  # type: ignore[attr-defined]
                interface=interface if first else "", packets=batch
            )
            first = False

    with grpc.insecure_channel(addr, options=_GRPC_OPTIONS) as channel:
        stub = pb_grpc.MemifStub(channel)  # type: ignore[attr-defined]
        start = time.perf_counter()
        reply = stub.Inject(requests())
        elapsed = time.perf_counter() - start
    return reply.accepted / elapsed, int(reply.ring_full)


def wrk(url: str, seconds: float, connections: int = 32) -> tuple[float, float]:
    """Run wrk; returns (requests/s, p99 latency ms)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not installed (Debian package wrk)")
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, int(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else -1.0
    return rps, p99_ms


BARE_APP = """
import os
from pathlib import Path
from fastapi import FastAPI, Response

PAYLOAD = Path(os.environ["BARE_PAYLOAD"]).read_bytes()
app = FastAPI()


@app.get("/v1/interfaces")
def interfaces() -> Response:
    return Response(PAYLOAD, media_type="application/json")
"""


@contextlib.contextmanager
def bare_fastapi(payload: bytes, core: int) -> Iterator[str]:
    """A bare FastAPI app serving ``payload`` (already JSON) at the same path, same server."""
    tmp = Path(tempfile.mkdtemp(prefix="bare-"))
    (tmp / "payload.json").write_bytes(payload)
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--app-dir",
            str(tmp),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "BARE_PAYLOAD": str(tmp / "payload.json")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    url = f"http://127.0.0.1:{port}/v1/interfaces"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    r.read()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def idle_clients(socket_dir: Path, count: int, seconds: float) -> subprocess.Popen[str]:
    """A process holding ``count`` connected, idle memif clients for ``seconds``."""
    code = f"""
import memif, time, sys
socks = {{}}
ifaces = []
for i in range({count}):
    path = {str(socket_dir)!r} + f"/idle{{i % 4}}.sock"
    sock = socks.get(path)
    if sock is None:
        sock = socks[path] = memif.Socket(path)
    ifaces.append(sock.create_interface(id=i, role="client", name=f"c{{i}}"))
for s in socks.values():
    s.start()
ok = all(i.wait_connected(30) for i in ifaces)
print("connected" if ok else "failed", flush=True)
time.sleep({seconds})
for s in socks.values():
    s.close()
"""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
