"""What the gRPC tests share: a real manager behind a real gRPC server, and a client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from memifd.api.grpc.server import MAX_CONCURRENT_RPCS, GrpcServerHandle, serve_grpc
from memifd.core.manager import Manager
from memifd.core.settings import Settings
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

from tests.waiting import wait_until


@dataclass
class GrpcEnv:
    """A running memifd core (manager + gRPC server) and a connected client."""

    settings: Settings
    manager: Manager
    handle: GrpcServerHandle
    channel: grpc.Channel
    stub: pb_grpc.MemifStub
    metadata: tuple[tuple[str, str], ...] = ()
    _closed: list[bool] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.handle.address

    def socket_path(self, name: str = "memif.sock") -> str:
        return str(Path(self.settings.socket_dir) / name)

    def create(self, name: str, **spec: Any) -> pb.InterfaceStatus:
        request = pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name=name, **spec))
        status: pb.InterfaceStatus = self.stub.CreateInterface(request, metadata=self.metadata)
        return status

    def close(self) -> None:
        if self._closed:
            return
        self._closed.append(True)
        self.channel.close()
        self.handle.stop(0)
        self.manager.stop()


def start_env(
    sock_dir: Path,
    *,
    token: str | None = None,
    max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
    tls: tuple[Path, Path] | None = None,
) -> GrpcEnv:
    """Start a manager and a gRPC server on a free loopback port."""
    options: dict[str, Any] = {
        "socket_dir": sock_dir,
        "grpc_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
    }
    if token is not None:
        options["token"] = token
    if tls is not None:
        options["tls_cert"], options["tls_key"] = tls
    settings = Settings(**options)
    manager = Manager(settings)
    manager.start()
    try:
        handle = serve_grpc(manager, settings, max_concurrent_rpcs=max_concurrent_rpcs)
    except BaseException:
        manager.stop()
        raise
    channel = (
        grpc.insecure_channel(handle.address)
        if tls is None
        else grpc.secure_channel(
            f"localhost:{handle.port}", grpc.ssl_channel_credentials(tls[0].read_bytes())
        )
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return GrpcEnv(settings, manager, handle, channel, memif_stub(channel), metadata)


def memif_stub(channel: grpc.Channel) -> pb_grpc.MemifStub:
    """A client of memifd's gRPC service on ``channel``."""
    # the generated constructor has no annotations: this names its type
    make: Callable[[grpc.Channel], pb_grpc.MemifStub] = pb_grpc.MemifStub
    return make(channel)


@pytest.fixture
def grpc_env(sock_dir: Path) -> Iterator[GrpcEnv]:
    """memifd's core and gRPC server, with a client stub."""
    env = start_env(sock_dir)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    wait_until(predicate, timeout, message=what)


def wait_connected(env: GrpcEnv, name: str, timeout: float = 15.0) -> None:
    """Wait until interface ``name`` reports a connected link."""

    def connected() -> bool:
        request = pb.GetInterfaceRequest(name=name)
        status: pb.InterfaceStatus = env.stub.GetInterface(request, metadata=env.metadata)
        return status.state == pb.LINK_STATE_CONNECTED

    wait_for(connected, timeout, f"{name} to connect")


def frame(seq: int, size: int = 64) -> bytes:
    """An Ethernet frame carrying ``seq`` (to recognise it after a MAC swap)."""
    header = bytes.fromhex("02000000000202000000000188b5")
    body = seq.to_bytes(8, "big")
    return (header + body).ljust(size, b"\x00")


def frame_seq(data: bytes) -> int:
    """The sequence number :func:`frame` put in."""
    return int.from_bytes(data[14:22], "big")
