"""The gRPC server of memifd: ``memif.v1.Memif`` plus the standard health and reflection services.

A synchronous ``grpc.server``: every call holds one pool thread for its
lifetime, so the pool is larger than :data:`MAX_CONCURRENT_RPCS` and calls
beyond that limit fail at once with RESOURCE_EXHAUSTED instead of queueing.
With a token configured, every call but health checks needs the metadata
``authorization: Bearer <token>`` (see :mod:`memifd.api.grpc.auth`).
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from memifd.api.grpc import reflection
from memifd.api.grpc import servicer as grpc_api
from memifd.api.grpc.auth import TokenAuth
from memifd.api.grpc.batch_budget import MAX_BATCH_MESSAGE, BatchBudget
from memifd.api.grpc.call_log import CallLog
from memifd.core.limits import GRPC_MAX_CONNECTIONS

if TYPE_CHECKING:
    from memifd.core.manager import Manager
    from memifd.core.settings import Settings

log = logging.getLogger("memifd.grpc_server")

MAX_CONCURRENT_RPCS = 64
EXTRA_WORKERS = 8  # beyond the RPC limit: health watches and brief unary calls never starve
MAX_SEND_BYTES = 64 * 1024 * 1024  # responses: capture batches are about 1 MiB
STREAM_WINDOW = 256 * 1024  # HTTP/2 bytes a stream may have in flight beyond what it reads
HANDSHAKE_TIMEOUT_MS = 10_000  # a connection that has not spoken HTTP/2 by then is closed
IDLE_TIMEOUT_MS = 300_000  # a connection without calls for this long is closed
HEALTH_INTERVAL = 0.5  # seconds between readiness checks
HEALTH_SERVICE = "grpc.health.v1.Health"
SERVED = (grpc_api.SERVICE_NAME, HEALTH_SERVICE)  # and both reflection services


@dataclass
class GrpcServerHandle:
    """A running gRPC server; :meth:`stop` ends it."""

    server: grpc.Server
    address: str  # host:port as bound (the real port when 0 was asked for)
    port: int
    health: health.HealthServicer
    _watcher: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, then end every call (streams after ``grace`` seconds)."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._watcher is not None:
            self._watcher.join()


def _report_readiness(manager: Manager, servicer: health.HealthServicer, last: bool | None) -> bool:
    """Set the health status from ``manager.ready`` if it changed; returns it."""
    ready = bool(manager.ready)
    if ready != last:
        serving = health_pb2.HealthCheckResponse
        status = serving.SERVING if ready else serving.NOT_SERVING
        for name in ("", grpc_api.SERVICE_NAME):
            servicer.set(name, status)
    return ready


def _watch_readiness(
    manager: Manager, servicer: health.HealthServicer, stop: threading.Event
) -> None:
    """Keep the health status in step with ``manager.ready``."""
    last = _report_readiness(manager, servicer, None)
    while not stop.wait(HEALTH_INTERVAL):
        last = _report_readiness(manager, servicer, last)


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        cert = settings.tls_cert.read_bytes()
        key = settings.tls_key.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"TLS: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)])


def serve_grpc(
    manager: Manager, settings: Settings, *, max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS
) -> GrpcServerHandle:
    """Start the gRPC server on ``settings.grpc_addr``; raises RuntimeError if it cannot bind."""
    token = settings.token_value
    auth = [TokenAuth(token, exempt=[HEALTH_SERVICE])] if token else []
    # outermost first: the call log sees denials too, and denials cost no budget
    interceptors = [CallLog(), *auth, BatchBudget(settings.grpc_batch_memory)]
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=max_concurrent_rpcs + EXTRA_WORKERS, thread_name_prefix="memifd-grpc"
        ),
        interceptors=interceptors,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        compression=grpc.Compression.NoCompression,
        options=[
            ("grpc.max_receive_message_length", MAX_BATCH_MESSAGE),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.http2.bdp_probe", 0),  # windows do not grow with the bandwidth
            ("grpc.http2.lookahead_bytes", STREAM_WINDOW),
            ("grpc.so_reuseport", 0),  # a second memifd on the same port must fail, not share
            ("grpc.max_allowed_incoming_connections", GRPC_MAX_CONNECTIONS),
            ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
            ("grpc.max_connection_idle_ms", IDLE_TIMEOUT_MS),
        ],
    )
    grpc_api.add_to_server(manager, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(SERVED, server)  # v1 and v1alpha

    credentials = _credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.grpc_addr)
        else:
            port = server.add_secure_port(settings.grpc_addr, credentials)
    except RuntimeError:
        server.stop(None)
        raise RuntimeError(
            f"gRPC: cannot listen on {settings.grpc_addr}: the address is in use or not "
            "available on this host"
        ) from None
    host = settings.grpc_addr.rpartition(":")[0]
    handle = GrpcServerHandle(server, f"{host}:{port}", port, health_servicer)
    _report_readiness(manager, health_servicer, None)
    server.start()
    handle._watcher = threading.Thread(
        target=_watch_readiness,
        args=(manager, health_servicer, handle._stopping),
        name="memifd-grpc-health",
        daemon=True,
    )
    handle._watcher.start()
    log.info(
        "gRPC API listening on %s (%s%s)",
        handle.address,
        "TLS" if credentials else "plaintext",
        ", token required" if token else "",
    )
    return handle
