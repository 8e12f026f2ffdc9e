"""No secret and no token ever leaves memifd.

memifd runs with an API token, debug logs and the access log, and interfaces
with secrets (from the config file, REST and gRPC). Every API is exercised,
including validation failures whose input is a secret, a wrong token, a memif
peer with the wrong secret, and a config file memifd refuses. Then every byte
memifd wrote (stdout, stderr) and every response it gave (REST bodies and
headers, gRPC messages, error details and trailers, /metrics, the OpenAPI
document, the status page) is searched for each secret and the token.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import frame, memif_clients, receive, wait_for
from tests.reliability.service_support import start_daemon, try_connect, write_config

TOKEN = "tok-7c0ffee-91d2e4"
SECRETS = {
    "config": "sec-cfg-4b1d",
    "rest": "sec-rest-8e2a",
    "grpc": "sec-grpc-33f0",
    "dry_run": "sec-dry-d00d",
    "duplicate": "sec-dup-5a5a",
    "too_long": "sec-long-" + "9" * 20,  # 29 bytes, over the 24-byte limit
    "grpc_too_long": "sec-glong-" + "7" * 20,
    "patch": "sec-patch-1c1c",
    "wrong_peer": "sec-wrong-6b6b",
    "bad_config": "sec-badcfg-" + "3" * 20,
}


class Seen:
    """Everything memifd said back, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def rest(self, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.texts.append(
            f"{response.request.method} {response.request.url}\n{headers}\n"
            f"{response.content.decode(errors='replace')}"
        )
        return response

    def grpc_message(self, message: object) -> None:
        self.texts.append(str(message))
        self.texts.append(message.SerializeToString().decode(errors="replace"))  # type: ignore[attr-defined]

    def grpc_error(self, error: grpc.RpcError) -> None:
        self.texts.append(f"{error.code()} {error.details()}")
        self.texts.append(str(error.trailing_metadata()))


def test_no_secret_or_token_in_logs_or_responses(sock_dir: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = write_config(
        tmp_path / "memifd.yaml",
        [
            {"name": "cfg", "socket": "cfg.sock", "secret": SECRETS["config"], "action": "echo"},
        ],
    )
    daemon = start_daemon(
        sock_dir,
        config,
        args=[
            "--log-level",
            "debug",
            "--access-log",
            "--log-format",
            "json",
            "--token-file",
            str(token_file),
        ],
    )
    seen = Seen()
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with daemon.client(TOKEN) as api, httpx.Client(base_url=daemon.url, timeout=10) as anon:
            _rest_calls(api, anon, seen, auth)
            _peers(sock_dir, api, seen)
            with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
                _grpc_calls(memif_stub(channel), seen, (("authorization", auth["Authorization"]),))
            seen.rest(api.get("/metrics"))
            assert "memifd" in seen.texts[-1]
        code, _ = daemon.terminate(timeout=15)
        assert code == 0
        output = daemon.stop_output()
    finally:
        daemon.kill()
    refused = _refused_config(sock_dir, tmp_path)
    everything = "\n".join([output, refused, *seen.texts])
    # the logs did record the work (so there was something to leak into)
    assert '"interface created"' in output and '"interface": "rest"' in output
    assert "secret mismatch" in output
    assert "GET /v1/interfaces" in output  # the access log
    assert '"has_secret":true' in everything
    for label, secret in [("token", TOKEN), *SECRETS.items()]:
        assert secret not in everything, f"the {label} secret leaked"
    print(f"\nsearched {len(everything)} bytes of logs and {len(seen.texts)} responses")


def _rest_calls(api: httpx.Client, anon: httpx.Client, seen: Seen, auth: dict[str, str]) -> None:
    def created(name: str, secret: str, **fields: object) -> httpx.Response:
        return seen.rest(
            api.post(
                "/v1/interfaces",
                json={
                    "name": name,
                    "socket": f"{name}.sock",
                    "secret": secret,
                    **fields,
                },
            )
        )

    assert created("rest", SECRETS["rest"], action="echo").status_code == 201
    assert (
        seen.rest(
            api.post(
                "/v1/interfaces?dry_run=true", json={"name": "dry", "secret": SECRETS["dry_run"]}
            )
        ).status_code
        == 200
    )
    assert created("rest", SECRETS["duplicate"]).status_code == 409
    too_long = created("long", SECRETS["too_long"])
    assert too_long.status_code == 422 and "secret" in too_long.text
    as_number = seen.rest(api.post("/v1/interfaces", json={"name": "num", "secret": 1234567890}))
    assert as_number.status_code == 422
    assert "1234567890" not in as_number.text  # the input is not echoed, whatever its type
    patched = seen.rest(api.patch("/v1/interfaces/rest", json={"secret": SECRETS["patch"]}))
    assert patched.status_code == 422 and "secret" in patched.text
    for path in (
        "/v1/interfaces",
        "/v1/interfaces/rest",
        "/v1/interfaces/cfg",
        "/v1/interfaces/cfg/stats",
        "/openapi.json",
        "/docs",
        "/",
        "/healthz",
        "/readyz",
    ):
        assert seen.rest(api.get(path)).status_code == 200, path
    for headers in (
        {},
        {"Authorization": "Bearer wrong-" + TOKEN},
        {"Authorization": auth["Authorization"] + "x"},
    ):
        denied = seen.rest(
            anon.post(
                "/v1/interfaces",
                headers=headers,
                json={"name": "sneaky", "secret": SECRETS["rest"]},
            )
        )
        assert denied.status_code == 401


def _peers(sock_dir: Path, api: httpx.Client, seen: Seen) -> None:
    refused = try_connect(str(sock_dir / "cfg.sock"), secret=SECRETS["wrong_peer"])
    assert "secret mismatch" in refused["reason"]
    with memif_clients(str(sock_dir / "cfg.sock"), [0], secret=SECRETS["config"]) as (client,):
        assert client.wait_connected(10)
        assert wait_for(lambda: api.get("/v1/interfaces/cfg").json()["state"] == "connected")
        with api.stream("GET", "/v1/interfaces/cfg/capture?count=2") as capture:
            client.tx_queue(0).send_burst([frame(1)])
            assert len(receive(client, 1)) == 1
            seen.texts.append(capture.read().decode(errors="replace"))
        seen.rest(api.get("/v1/interfaces/cfg"))
        seen.rest(api.delete("/v1/interfaces/rest"))


def _grpc_calls(stub: pb_grpc.MemifStub, seen: Seen, metadata: tuple[tuple[str, str], ...]) -> None:
    spec = pb.InterfaceSpec(
        name="viagrpc", socket="g.sock", secret=SECRETS["grpc"], action=pb.ACTION_ECHO
    )
    seen.grpc_message(
        stub.CreateInterface(pb.CreateInterfaceRequest(spec=spec), metadata=metadata, timeout=10)
    )
    seen.grpc_message(
        stub.ListInterfaces(pb.ListInterfacesRequest(), metadata=metadata, timeout=10)
    )
    seen.grpc_message(
        stub.GetInterface(pb.GetInterfaceRequest(name="viagrpc"), metadata=metadata, timeout=10)
    )
    events = stub.WatchEvents(
        pb.WatchEventsRequest(include_current=True), metadata=metadata, timeout=10
    )
    seen.grpc_message(next(events))
    events.cancel()
    failing = [
        (
            stub.CreateInterface,
            pb.CreateInterfaceRequest(
                spec=pb.InterfaceSpec(name="glong", secret=SECRETS["grpc_too_long"])
            ),
            metadata,
            "secret",
        ),
        (
            stub.CreateInterface,
            pb.CreateInterfaceRequest(
                spec=pb.InterfaceSpec(name="viagrpc", secret=SECRETS["duplicate"])
            ),
            metadata,
            "already exists",
        ),
        (
            stub.CreateInterface,
            pb.CreateInterfaceRequest(spec=spec),
            (("authorization", f"Bearer {TOKEN}x"),),
            "invalid token",
        ),
    ]
    for call, request, call_metadata, words in failing:
        with pytest.raises(grpc.RpcError) as excinfo:
            call(request, metadata=call_metadata, timeout=10)
        assert words in (excinfo.value.details() or "")
        seen.grpc_error(excinfo.value)


def _refused_config(sock_dir: Path, tmp_path: Path) -> str:
    """What ``memifd serve`` prints about a config with a secret over the limit."""
    config = write_config(
        tmp_path / "bad.yaml",
        [
            {"name": "bad", "secret": SECRETS["bad_config"]},
        ],
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memifd",
            "serve",
            "--config",
            str(config),
            "--socket-dir",
            str(sock_dir),
            "--log-level",
            "debug",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "interfaces.0.secret" in result.stderr, result.stderr
    return result.stdout + result.stderr
