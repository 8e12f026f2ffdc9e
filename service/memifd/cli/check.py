"""``python -m memifd.cli.check``: does memifd answer, with this token? ``helm test`` runs it.

It reads the environment an application container next to memifd gets:
``MEMIFD_URL`` (REST, default ``http://127.0.0.1:8080``), ``MEMIFD_GRPC_ADDR``
(default ``127.0.0.1:50051``), ``MEMIFD_TOKEN`` and ``MEMIFD_TLS_CA`` (the CA of
memifd's certificate, for https and TLS gRPC). It checks ``GET /readyz``,
``GET /v1/interfaces`` with the token, the gRPC health service and
``ListInterfaces`` with the token, prints one line per check and exits 1 when
one failed.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

TIMEOUT = 10.0  # seconds per check


class CheckFailed(Exception):
    """A check's answer was not the expected one; the message says what came back."""


def _get(url: str, token: str | None, ca: Path | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"{exc.code} {exc.read()[:200].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CheckFailed(str(getattr(exc, "reason", exc))) from None


def _channel(address: str, ca: Path | None) -> grpc.Channel:
    if ca is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.read_bytes()))


def checks() -> list[tuple[str, Callable[[], str]]]:
    """The checks, each a name and a function returning what it saw (or raising)."""
    url = os.environ.get("MEMIFD_URL", "http://127.0.0.1:8080").rstrip("/")
    address = os.environ.get("MEMIFD_GRPC_ADDR", "127.0.0.1:50051")
    token = os.environ.get("MEMIFD_TOKEN") or None
    ca = Path(os.environ["MEMIFD_TLS_CA"]) if os.environ.get("MEMIFD_TLS_CA") else None
    metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def ready() -> str:
        status, body = _get(f"{url}/readyz", None, ca)
        return f"{status} {json.loads(body)['status']}"

    def interfaces() -> str:
        status, body = _get(f"{url}/v1/interfaces", token, ca)
        return f"{status}, {len(json.loads(body))} interfaces"

    def grpc_call(call: Callable[[grpc.Channel], str]) -> Callable[[], str]:
        def run() -> str:
            with _channel(address, ca) as channel:
                try:
                    return call(channel)
                except grpc.RpcError as exc:
                    raise CheckFailed(f"{exc.code().name}: {exc.details()}") from None

        return run

    def health(channel: grpc.Channel) -> str:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        name = str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise CheckFailed(name)
        return name

    def listed(channel: grpc.Channel) -> str:
        stub = pb_grpc.MemifStub(channel)
        answer = stub.ListInterfaces(pb.ListInterfacesRequest(), timeout=TIMEOUT, metadata=metadata)
        return f"OK, {len(answer.interfaces)} interfaces"

    return [
        (f"REST {url}/readyz", ready),
        (f"REST {url}/v1/interfaces", interfaces),
        (f"gRPC {address} health", grpc_call(health)),
        (f"gRPC {address} ListInterfaces", grpc_call(listed)),
    ]


def main() -> int:
    """Run every check; 0 when all passed."""
    failed = 0
    for name, check in checks():
        try:
            print(f"ok    {name}: {check()}", flush=True)
        except (CheckFailed, OSError, ValueError, KeyError) as exc:
            failed += 1
            print(f"FAIL  {name}: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
