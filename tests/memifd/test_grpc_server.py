"""The gRPC server around the service: health, reflection, auth, TLS, limits."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memifd.api.grpc.server import serve_grpc
from memifd.core.manager import Manager
from memifd.core.settings import Settings
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import GrpcEnv, grpc_env, memif_stub, start_env, tls_files, wait_for

__all__ = ["grpc_env", "tls_files"]

TOKEN = "t0k3n-for-tests"


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
    return status


def _reflect(
    channel: grpc.Channel,
    request: reflection_pb2.ServerReflectionRequest,
    metadata: tuple[tuple[str, str], ...] = (),
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(stub.ServerReflectionInfo(iter([request]), timeout=10, metadata=metadata))


def _reflect_v1(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """As a v1 client asks: v1's messages are v1alpha's, field for field."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return next(call(iter([request]), timeout=10))


def test_health_serves_while_the_manager_is_ready(grpc_env: GrpcEnv) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    assert _health(grpc_env.channel) == serving
    assert _health(grpc_env.channel, "memif.v1.Memif") == serving
    grpc_env.manager.stop()
    wait_for(
        lambda: _health(grpc_env.channel) == health_pb2.HealthCheckResponse.NOT_SERVING,
        what="NOT_SERVING",
    )


@pytest.mark.parametrize("reflect", [_reflect, _reflect_v1], ids=["v1alpha", "v1"])
def test_reflection_lists_the_services(grpc_env: GrpcEnv, reflect: Any) -> None:
    reply = reflect(grpc_env.channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in reply.list_services_response.service}
    assert names == {
        "memif.v1.Memif",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
    for symbol, file in [
        ("memif.v1.Memif", b"memif/v1/memif.proto"),
        ("grpc.reflection.v1.ServerReflection", b"grpc/reflection/v1/reflection.proto"),
    ]:
        reply = reflect(
            grpc_env.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
        )
        files = reply.file_descriptor_response.file_descriptor_proto
        assert files and file in files[0], symbol


@pytest.fixture
def secured(sock_dir: Path) -> Iterator[GrpcEnv]:
    env = start_env(sock_dir, token=TOKEN)
    try:
        yield env
    finally:
        env.close()


@pytest.mark.parametrize(
    "metadata, problem",
    [
        ((), "missing metadata 'authorization: Bearer <token>'"),
        ((("authorization", "Bearer wrong"),), "invalid token"),
        ((("authorization", f"Basic {TOKEN}"),), "must be 'Bearer <token>'"),
    ],
)
def test_token_is_required(
    secured: GrpcEnv, metadata: tuple[tuple[str, str], ...], problem: str
) -> None:
    stub = secured.stub
    calls: list[Callable[[], object]] = [
        lambda: stub.ListInterfaces(pb.ListInterfacesRequest(), metadata=metadata, timeout=10),
        lambda: list(stub.WatchEvents(pb.WatchEventsRequest(), metadata=metadata, timeout=10)),
        lambda: stub.Inject(iter([pb.InjectRequest()]), metadata=metadata, timeout=10),
        lambda: list(stub.Exchange(iter([pb.ExchangeRequest()]), metadata=metadata, timeout=10)),
        lambda: _reflect(
            secured.channel, reflection_pb2.ServerReflectionRequest(list_services=""), metadata
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as excinfo:
            call()
        assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert problem in (excinfo.value.details() or "")
    assert not secured.manager.list_interfaces()


def test_right_token_is_accepted_and_health_needs_none(secured: GrpcEnv) -> None:
    secured.create("a")  # sends the token
    reply = secured.stub.ListInterfaces(
        pb.ListInterfacesRequest(), metadata=(("authorization", f"bearer {TOKEN}"),)
    )
    assert [s.name for s in reply.interfaces] == ["a"]
    assert _health(secured.channel) == health_pb2.HealthCheckResponse.SERVING


def test_tls(sock_dir: Path, tls_files: tuple[Path, Path]) -> None:
    env = start_env(sock_dir, tls=tls_files)  # its client trusts the certificate
    try:
        env.create("a")
        assert [s.name for s in env.stub.ListInterfaces(pb.ListInterfacesRequest()).interfaces] == [
            "a"
        ]
        with grpc.insecure_channel(env.address) as plain:
            with pytest.raises(grpc.RpcError) as excinfo:
                memif_stub(plain).ListInterfaces(pb.ListInterfacesRequest(), timeout=5)
            assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        env.close()


def test_calls_beyond_the_limit_fail_fast(sock_dir: Path) -> None:
    env = start_env(sock_dir, max_concurrent_rpcs=2)
    try:
        env.create("a")
        held = [
            env.stub.WatchEvents(pb.WatchEventsRequest(include_current=True), timeout=30)
            for _ in range(2)
        ]
        for stream in held:
            next(stream)  # both streams are running
        with pytest.raises(grpc.RpcError) as excinfo:
            env.stub.ListInterfaces(pb.ListInterfacesRequest(), timeout=10)
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        held[0].cancel()
        wait_for(lambda: env.manager.subscription_counts()["events"] == 1, what="a free slot")
        wait_for(lambda: _lists(env), what="calls to be accepted again")
        held[1].cancel()
    finally:
        env.close()


def _lists(env: GrpcEnv) -> bool:
    try:
        env.stub.ListInterfaces(pb.ListInterfacesRequest(), timeout=10)
    except grpc.RpcError:
        return False
    return True


def test_busy_port_is_a_clear_error(grpc_env: GrpcEnv, sock_dir: Path) -> None:
    settings = Settings(socket_dir=sock_dir / "other", grpc_addr=grpc_env.address)
    manager = Manager(settings)
    with pytest.raises(RuntimeError, match=f"cannot listen on {grpc_env.address}"):
        serve_grpc(manager, settings)


def test_stop_ends_open_streams(grpc_env: GrpcEnv) -> None:
    grpc_env.create("a")
    stream = grpc_env.stub.WatchEvents(pb.WatchEventsRequest(include_current=True), timeout=30)
    next(stream)
    requests: queue.Queue[pb.InjectRequest | None] = queue.Queue()
    inject = grpc_env.stub.Inject.future(iter(requests.get, None), timeout=30)
    grpc_env.handle.stop(0.2)
    with pytest.raises(grpc.RpcError):
        next(stream)
    with pytest.raises(grpc.RpcError):
        inject.result()
    requests.put(None)
    wait_for(lambda: grpc_env.manager.subscription_counts()["events"] == 0, what="closing")
