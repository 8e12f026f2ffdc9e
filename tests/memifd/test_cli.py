"""``memifd serve`` as a subprocess: banner, config file, logs, clean SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import memifd
import pytest
from memifd.core import logs
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, memif_clients, wait_for

CONFIG = """
log_format: json
interfaces:
  - name: vnf0
    socket: cli.sock
    action: echo
"""


@pytest.fixture
def daemon(sock_dir: Path, tmp_path: Path) -> Iterator[Daemon]:
    config = tmp_path / "memifd.yaml"
    config.write_text(CONFIG)
    proc = Daemon(sock_dir, args=["--config", str(config)])
    yield proc.start()
    proc.kill()


def test_serve_prints_addresses_and_stops_cleanly_on_sigterm(
    daemon: Daemon, sock_dir: Path
) -> None:
    started = daemon.started  # log_format: json, so the banner is one JSON record
    assert started["message"] == f"memifd {memifd.__version__}"
    assert started["socket_dir"] == str(sock_dir)
    assert started["status_page"] == f"{daemon.url}/"
    assert started["rest_api"] == f"{daemon.url}/v1/interfaces"
    assert started["api_docs"] == f"{daemon.url}/docs"
    assert started["grpc"] == f"127.0.0.1:{daemon.grpc_port}"
    assert (started["interfaces"], started["tls"]) == (1, False)
    assert "listen" not in started  # loopback: the URLs are where it listens
    with daemon.client() as api:
        assert api.get("/readyz").json() == {"status": "ready"}
        assert api.get("/docs").status_code == 200
        assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["vnf0"]
        assert (sock_dir / "cli.sock").exists()
        with memif_clients(str(sock_dir / "cli.sock"), [0], reconnect_interval=30) as (client,):
            assert client.wait_connected(5)
            assert wait_for(lambda: api.get("/v1/interfaces/vnf0").json()["state"] == "connected")
            with api.stream("GET", "/v1/events") as events:
                ended: list[str] = []
                reader = threading.Thread(
                    target=lambda: ended.extend(events.iter_lines()), daemon=True
                )
                reader.start()
                code, took = daemon.terminate()
                reader.join(5)
            assert code == 0 and took < 5
            assert client.wait_disconnected(5)
            assert "memifd shutting down" in client.disconnect_reason
    assert any("memifd shutting down" in line for line in ended)  # the stream ended with a reason
    assert list(sock_dir.iterdir()) == []
    assert daemon.proc is not None and daemon.proc.stdout is not None
    stdout = daemon.proc.stdout.read().splitlines()
    records = [json.loads(line) for line in daemon.log().splitlines() + stdout]  # all JSON
    assert any(r["logger"] == "uvicorn.error" for r in records)
    link_up = [r for r in records if r["message"] == "link up"]
    assert link_up and link_up[0]["interface"] == "vnf0" and link_up[0]["peer"] == "py0"
    link_down = [r for r in records if r["message"] == "link down"]
    assert link_down and link_down[0]["reason"] == "memifd shutting down"


def test_sigint_also_exits_zero(daemon: Daemon, sock_dir: Path) -> None:
    import signal

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=5) == 0
    assert list(sock_dir.iterdir()) == []


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memifd", "serve", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_bad_settings_exit_2_naming_the_field(tmp_path: Path) -> None:
    exposed = run_serve("--http-addr", "0.0.0.0:0", "--socket-dir", str(tmp_path))
    assert exposed.returncode == 2
    assert "not a loopback address" in exposed.stderr and "--insecure" in exposed.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("interfaces:\n  - name: a\n    secret: 0123456789012345678901234567\n")
    bad = run_serve("--config", str(config))
    assert bad.returncode == 2
    assert "interfaces.0.secret" in bad.stderr and "24" in bad.stderr
    assert "0123456789012345678901234567" not in bad.stderr


def test_interfaces_on_one_socket_role_and_id_are_refused_naming_both(tmp_path: Path) -> None:
    config = tmp_path / "clash.yaml"
    config.write_text("interfaces:\n  - name: vnf0\n  - name: vnf1\n    role: master\n")
    result = run_serve(
        "--config", str(config), "--socket-dir", str(tmp_path), "--log-format", "text"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "memifd: invalid settings: "
        f"interfaces[0] (vnf0) and interfaces[1] (vnf1) both use socket {tmp_path}/memif.sock, "
        "role server and id 0; give one of them another socket or id\n"
    )


def test_port_in_use_is_reported(sock_dir: Path, daemon: Daemon) -> None:
    second = run_serve(
        "--socket-dir",
        str(sock_dir / "other"),
        "--http-addr",
        f"127.0.0.1:{daemon.http_port}",
        "--grpc-addr",
        "127.0.0.1:0",
    )
    assert second.returncode == 1 and "cannot listen on" in second.stderr
    with httpx.Client(base_url=daemon.url) as api:  # the first one is unharmed
        assert api.get("/healthz").status_code == 200


def test_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memifd", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    for flag in (
        "--config",
        "--socket-dir",
        "--http-addr",
        "--grpc-addr",
        "--token-file",
        "--insecure",
        "--tls-cert",
        "--tls-key",
        "--root-path",
        "--log-format",
        "--log-level",
    ):
        assert flag in out


def test_tls_serves_https(sock_dir: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    daemon = Daemon(sock_dir, args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        url = f"https://127.0.0.1:{daemon.http_port}"
        assert daemon.started["rest_api"] == f"{url}/v1/interfaces"
        assert daemon.started["tls"] is True
        with httpx.Client(base_url=url, verify=str(cert)) as api:
            assert api.get("/healthz").json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError), httpx.Client(base_url=url) as untrusting:
            untrusting.get("/healthz")
        assert daemon.terminate()[0] == 0
    finally:
        daemon.kill()


def test_root_path_prefixes_the_docs(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--root-path", "/memifd/"]).start()
    try:
        assert daemon.started["api_docs"] == f"{daemon.url}/memifd/docs"
        with daemon.client() as api:  # a proxy strips the prefix before memifd sees it
            assert api.get("/v1/interfaces").json() == []
            assert api.get("/openapi.json").json()["servers"] == [{"url": "/memifd"}]
            assert "/memifd/openapi.json" in api.get("/docs").text
    finally:
        daemon.kill()


def test_text_banner_for_a_terminal(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--log-format", "text"]).start()
    try:
        assert daemon.banner[0] == f"memifd {memifd.__version__}"
        assert f"  socket dir : {sock_dir}" in daemon.banner
        assert f"  REST API   : {daemon.url}/v1/interfaces" in daemon.banner
        assert f"  gRPC       : 127.0.0.1:{daemon.grpc_port}" in daemon.banner
        assert "  interfaces : 0 from the config" in daemon.banner
        assert daemon.terminate()[0] == 0
        assert not daemon.log().lstrip().startswith("{")
    finally:
        daemon.kill()


def test_bound_to_every_address_the_banner_shows_a_reachable_url(sock_dir: Path) -> None:
    daemon = Daemon(
        sock_dir,
        args=[
            "--http-addr",
            f"0.0.0.0:{daemon_port()}",
            "--grpc-addr",
            f"0.0.0.0:{daemon_port()}",
            "--insecure",
        ],
    )
    http_port, grpc_port = (int(a.rsplit(":", 1)[1]) for a in daemon.args[1:4:2])
    daemon.start()
    try:
        started = daemon.started
        assert started["listen"] == [f"0.0.0.0:{http_port}", f"0.0.0.0:{grpc_port}"]
        page = httpx.URL(started["status_page"])
        assert page.host not in ("0.0.0.0", "") and page.port == http_port
        assert httpx.get(f"{started['status_page']}healthz", timeout=5).status_code == 200
        host, port = started["grpc"].rsplit(":", 1)
        assert host == page.host and int(port) == grpc_port
        with grpc.insecure_channel(started["grpc"]) as channel:
            assert (
                memif_stub(channel).ListInterfaces(pb.ListInterfacesRequest(), timeout=5).interfaces
                == []
            )
    finally:
        daemon.kill()


def daemon_port() -> int:
    from tests.memifd.rest_support import free_port

    return free_port()


def test_settings_errors_are_json_lines_too(tmp_path: Path) -> None:
    bad = run_serve("--http-addr", "nowhere", "--log-format", "json")
    assert bad.returncode == 2
    (line,) = bad.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "http_addr" in record["message"]
    config = tmp_path / "bad.yaml"
    config.write_text("interfaces: [1, 2\n")
    broken = run_serve("--config", str(config))  # stderr is no terminal: JSON by default
    assert broken.returncode == 2
    (line,) = broken.stderr.splitlines()
    assert json.loads(line)["message"].startswith(f"invalid settings: config: {config}")


def test_access_log_has_method_path_status_duration_and_request_id(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--access-log", "--log-format", "json"]).start()
    try:
        with daemon.client() as api:
            given = api.get("/v1/interfaces/nope", headers={"X-Request-ID": "lb-42.a"})
            made = api.get("/v1/interfaces")
            forged = api.get("/v1/interfaces", headers={"X-Request-ID": "x\tinjected line"})
            api.get("/healthz")  # probes only at debug level
            api.get("/v1/interfaces/a%0Ab")  # a newline cannot start a forged log line
        assert given.status_code == 404 and given.headers["x-request-id"] == "lb-42.a"
        made_id = made.headers["x-request-id"]
        assert len(made_id) == 16 and int(made_id, 16) >= 0
        assert forged.headers["x-request-id"] not in ("x\tinjected line", made_id)
        assert daemon.terminate()[0] == 0
        records = [json.loads(line) for line in daemon.log().splitlines()]
        access = [r for r in records if r["logger"] == "memifd.access"]
        assert [(r["method"], r["path"], r["status"]) for r in access] == [
            ("GET", "/v1/interfaces/nope", 404),
            ("GET", "/v1/interfaces", 200),
            ("GET", "/v1/interfaces", 200),
            ("GET", "/v1/interfaces/a\\x0ab", 404),
        ]
        assert [r["request_id"] for r in access[:3]] == [
            "lb-42.a",
            made_id,
            forged.headers["x-request-id"],
        ]
        assert all(0 < r["duration_ms"] < 5000 and r["level"] == "info" for r in access)
        assert access[0]["message"] == "GET /v1/interfaces/nope 404"
        assert not any(r["logger"] == "uvicorn.access" for r in records)
    finally:
        daemon.kill()


def test_grpc_calls_are_logged_at_debug(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--log-level", "debug", "--log-format", "json"]).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
            stub = memif_stub(channel)
            stub.ListInterfaces(pb.ListInterfacesRequest(), timeout=5)
            with pytest.raises(grpc.RpcError):
                stub.GetInterface(pb.GetInterfaceRequest(name="nope"), timeout=5)
            events = stub.WatchEvents(pb.WatchEventsRequest(), timeout=0.5)
            with pytest.raises(grpc.RpcError):
                list(events)
        assert daemon.terminate()[0] == 0
        calls = [json.loads(line) for line in daemon.log().splitlines() if '"memifd.grpc"' in line]
        by_method = {c["method"].rsplit("/", 1)[1]: c for c in calls}
        assert by_method["ListInterfaces"]["status"] == "OK"
        assert by_method["GetInterface"]["status"] == "NOT_FOUND"
        assert "nope" in by_method["GetInterface"]["details"]
        assert by_method["WatchEvents"]["status"] in ("CANCELLED", "DEADLINE_EXCEEDED")
        assert {c["level"] for c in calls} == {"debug"}
        assert all(c["peer"].startswith("ipv4:127.0.0.1:") for c in calls), calls
    finally:
        daemon.kill()


def test_grpc_calls_are_not_logged_at_info(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--log-format", "json"]).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
            memif_stub(channel).ListInterfaces(pb.ListInterfacesRequest(), timeout=5)
        assert daemon.terminate()[0] == 0
        assert '"memifd.grpc"' not in daemon.log()
    finally:
        daemon.kill()


# -- log formats ----------------------------------------------------------------------------------


def emit(fmt: str, stream: io.StringIO) -> None:
    logs.configure(fmt, "info", stream)
    try:
        logging.getLogger("memif").info(
            "link down",
            extra={
                "interface": "vnf0",
                "peer": "py0",
                "reason": "peer closed",
                "secret": "do-not-print",
            },
        )
    finally:
        root = logging.getLogger()
        for handler in root.handlers:
            handler.close()  # writes what is queued
        root.handlers.clear()


def test_json_logs_carry_the_extra_fields() -> None:
    stream = io.StringIO()
    emit("json", stream)
    record = json.loads(stream.getvalue())
    assert record["message"] == "link down" and record["logger"] == "memif"
    assert (record["interface"], record["peer"], record["reason"]) == ("vnf0", "py0", "peer closed")
    assert record["secret"] == logs.REDACTED and record["level"] == "info"


def test_text_logs_for_people() -> None:
    stream = io.StringIO()
    emit("text", stream)
    line = stream.getvalue().strip()
    assert 'memif: link down interface=vnf0 peer=py0 reason="peer closed"' in line
    assert "do-not-print" not in line


def test_auto_format_follows_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.choose_format("auto", Tty()) == "text"
    assert logs.choose_format("auto", io.StringIO()) == "json"
    assert logs.choose_format("text", io.StringIO()) == "text"
