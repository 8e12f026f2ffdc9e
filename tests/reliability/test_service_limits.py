"""Attacks on memifd's APIs that try to make it spend memory or file descriptors before it
knows who is asking, run against ``memifd serve`` (real uvicorn, real grpcio).

* A body that claims 1.6 GB (a few tens of MB of it really sent, on several
  connections at once) to a route that needs the token: 401 before a byte of
  it is read, the connection closed, memifd's memory flat. Bad JSON without the
  token is a 401 too, never a 422 that describes the body.
* With the token: Content-Length past a route's limit is a 413 naming the
  limit; a chunked body is counted as it comes and cut at the limit; the wrong
  media type is a 415; a body that trickles in is a 408.
* Idle and trickling connections are closed after the header timeout, the
  connection cap answers 503 at once, so memif handshakes and /healthz keep
  working; request heads larger than 64 KiB are a 431.
* gRPC: calls without the token carrying 60 MiB messages are refused before
  grpcio reads them (memory flat); a management call with the token but a
  1 MiB request is refused by size before it is parsed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, memif_clients, wait_for
from tests.reliability.attack_support import (
    AUTH,
    TOKEN,
    anon_mib,
    closed_by_server,
    connect,
    guarded_daemon,
    open_connections,
    read_by_server,
    read_response,
    request_head,
    send_until_refused,
)
from tests.reliability.service_support import RssSampler, fd_count, rss_mib
from tests.waiting import wait_until

CLAIMED = 1_600_000_000  # what the attacker's Content-Length says
SENT_PER_CONNECTION = 48 << 20  # what it really tries to send, per connection
ATTACKERS = 4
MEMORY_SLACK_MIB = 32.0
HEADER_TIMEOUT = 1.5
MAX_CONNECTIONS = 40


@pytest.fixture
def daemon(sock_dir: Path, tmp_path: Path) -> Iterator[Daemon]:
    proc = guarded_daemon(
        sock_dir,
        tmp_path,
        http_header_timeout=HEADER_TIMEOUT,
        http_body_timeout=1.0,
        http_idle_timeout=1.0,
        http_max_connections=MAX_CONNECTIONS,
    )
    yield proc
    proc.kill()


def _pid(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


# -- bodies --------------------------------------------------------------------------------------


def _huge_body(
    port: int, path: str, headers: dict[str, str], out: list[tuple[int, str, bool, int]]
) -> None:
    sock = connect(port)
    try:
        head = {"Content-Type": "application/json", "Content-Length": str(CLAIMED), **headers}
        sock.sendall(request_head("POST", path, port, head))
        sent = send_until_refused(sock, SENT_PER_CONNECTION)
        status, body, closed = read_response(sock, close_wait=5.0)
        out.append((status, body, closed, sent))
    finally:
        sock.close()


def test_unauthenticated_body_is_refused_before_it_is_read(daemon: Daemon) -> None:
    pid = _pid(daemon)
    before, before_rss = anon_mib(pid), rss_mib(pid)
    answers: list[tuple[int, str, bool, int]] = []
    threads = [
        threading.Thread(target=_huge_body, args=(daemon.http_port, path, {}, answers))
        for path in (
            "/v1/interfaces",
            "/v1/interfaces/x",
            "/v1/interfaces/x/packets",
            "/v1/interfaces",
        )
    ]
    with RssSampler(pid) as rss:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(answers) == ATTACKERS
    for status, body, closed, _sent in answers:
        assert status == 401 and "bearer token" in body and closed, (status, body, closed)
    sent_mib = sum(sent for *_, sent in answers) / (1 << 20)
    print(
        f"\n{ATTACKERS} bodies claiming {CLAIMED} bytes without a token: {sent_mib:.0f} MiB "
        f"pushed at memifd, VmRSS {before_rss:.1f} MiB -> peak {rss.peak:.1f} MiB, "
        f"anon {before:.1f} -> {anon_mib(pid):.1f} MiB"
    )
    assert anon_mib(pid) - before < MEMORY_SLACK_MIB
    assert max(rss.peak, rss_mib(pid)) - before_rss < MEMORY_SLACK_MIB


def test_anonymous_client_gets_401_before_any_validation(daemon: Daemon) -> None:
    with httpx.Client(base_url=daemon.url, timeout=10) as anonymous:
        for content_type, body in (
            ("application/json", b"{not json"),
            ("text/plain", b"anything"),
            ("application/json", json.dumps({"name": "\n"}).encode()),
        ):
            response = anonymous.post(
                "/v1/interfaces", content=body, headers={"Content-Type": content_type}
            )
            assert response.status_code == 401, response.text
            problem = response.json()
            assert problem["detail"] == (
                "missing or invalid bearer token (Authorization: Bearer <token>)"
            )
            assert (problem["status"], problem["errors"]) == (401, [])


def test_bodies_are_held_to_each_routes_limit_and_media_type(daemon: Daemon) -> None:
    port = daemon.http_port
    answers: list[tuple[int, str, bool, int]] = []
    _huge_body(port, "/v1/interfaces", AUTH, answers)
    _huge_body(
        port,
        "/v1/interfaces/x/packets",
        {**AUTH, "Content-Type": "application/vnd.tcpdump.pcap"},
        answers,
    )
    (create, create_text, create_closed, _), (inject, inject_text, inject_closed, _) = answers
    assert (create, create_closed) == (413, True) and "65536 bytes" in create_text
    assert (inject, inject_closed) == (413, True) and "67108864 bytes" in inject_text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "big", "socket": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    with httpx.Client(base_url=daemon.url, headers=AUTH, timeout=10) as api:
        chunked = api.post(
            "/v1/interfaces", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413 and "65536 bytes" in chunked.text
        wrong = api.post(
            "/v1/interfaces", content=b'{"name": "a"}', headers={"Content-Type": "text/plain"}
        )
        assert wrong.status_code == 415 and "application/json" in wrong.text
        form = api.post(
            "/v1/interfaces/a/packets",
            content=b"a=b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415 and "application/vnd.tcpdump.pcap" in form.text
        assert api.get("/v1/interfaces").json() == []
        good = api.post("/v1/interfaces", json={"name": "a"})
        assert good.status_code == 201


def test_a_trickling_body_times_out(daemon: Daemon) -> None:
    port = daemon.http_port
    with connect(port) as sock:
        head = {**AUTH, "Content-Type": "application/json", "Content-Length": "100"}
        sock.sendall(request_head("POST", "/v1/interfaces", port, head) + b'{"name": ')
        started = time.monotonic()
        status, body, closed = read_response(sock, close_wait=5.0)
    assert (status, closed) == (408, True) and "1 s" in body
    assert time.monotonic() - started < 5


# -- connections ---------------------------------------------------------------------------------


def test_idle_and_trickling_connections_are_closed(daemon: Daemon, sock_dir: Path) -> None:
    pid = _pid(daemon)
    port = daemon.http_port
    with httpx.Client(base_url=daemon.url, headers=AUTH, timeout=10) as api:
        assert (
            api.post("/v1/interfaces", json={"name": "m0", "socket": "m.sock"}).status_code == 201
        )
    baseline_fds = fd_count(pid)
    with open_connections(port, 200) as idle, open_connections(port, 10) as tricklers:
        for sock in tricklers:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        # the connection cap: everything past it is refused at once, its fd freed
        assert wait_for(
            lambda: sum(closed_by_server(s) for s in idle) >= 200 - MAX_CONNECTIONS, timeout=5
        )
        assert fd_count(pid) <= baseline_fds + MAX_CONNECTIONS + 8
        with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
            assert client.wait_connected(5)  # memif handshakes go on

        def all_closed() -> bool:
            for sock in tricklers:
                if not closed_by_server(sock):
                    sock.sendall(b"x")  # a byte at a time never completes the head
            return all(closed_by_server(s) for s in [*idle, *tricklers])

        # a byte every 0.2 s from each trickler, until memifd has closed every connection
        wait_until(all_closed, HEADER_TIMEOUT + 3, 0.2, "memifd to close every connection")
    assert wait_for(lambda: fd_count(pid) <= baseline_fds + 2, timeout=5)
    assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    refused = daemon.log().count("HTTP connection refused")
    assert 1 <= refused <= 3, daemon.log()[-2000:]  # reported once per interval, with counts


def test_keepalive_connection_is_closed_when_idle(daemon: Daemon) -> None:
    port = daemon.http_port
    with connect(port) as sock:
        sock.sendall(request_head("GET", "/healthz", port, {}))
        status, _, closed = read_response(sock, timeout=0.5)
        assert (status, closed) == (200, False)
        assert wait_for(lambda: closed_by_server(sock), timeout=3)


def test_request_head_is_limited(daemon: Daemon) -> None:
    port = daemon.http_port
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        assert wait_for(lambda: read_by_server(sock), timeout=5)  # the start of the head
        send_until_refused(sock, 100 << 10, 4096)
        status, _, closed = read_response(sock, close_wait=5.0)
    assert (status, closed) == (431, True)


# -- gRPC ----------------------------------------------------------------------------------------

GRPC_MESSAGE = 60 << 20
GRPC_ATTACKERS = 3
GRPC_ROUNDS = 2


def test_grpc_calls_without_token_are_refused_before_their_message_is_read(
    daemon: Daemon,
) -> None:
    pid = _pid(daemon)
    before = rss_mib(pid)
    big = pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name="x" * GRPC_MESSAGE))
    codes: list[grpc.StatusCode] = []
    options = [("grpc.max_send_message_length", 2 * GRPC_MESSAGE)]
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}", options=options) as channel:
        stub = memif_stub(channel)

        def call() -> None:
            try:
                stub.CreateInterface(big, timeout=30)
            except grpc.RpcError as exc:
                codes.append(exc.code())

        with RssSampler(pid) as rss:
            for _ in range(GRPC_ROUNDS):
                threads = [threading.Thread(target=call) for _ in range(GRPC_ATTACKERS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=60)
    print(
        f"\n{GRPC_ROUNDS}x{GRPC_ATTACKERS} gRPC calls of 60 MiB without a token: VmRSS "
        f"{before:.1f} MiB, peak {rss.peak:.1f} MiB"
    )
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * (GRPC_ROUNDS * GRPC_ATTACKERS)
    assert rss.peak - before < MEMORY_SLACK_MIB


def test_grpc_management_requests_are_limited_in_size(daemon: Daemon) -> None:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        stub = memif_stub(channel)
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.CreateInterface(
                pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name="x" * (1 << 20))),
                metadata=metadata,
                timeout=10,
            )
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "65536 bytes" in (excinfo.value.details() or "")
        created = stub.CreateInterface(
            pb.CreateInterfaceRequest(spec=pb.InterfaceSpec(name="ok")),
            metadata=metadata,
            timeout=10,
        )
        assert created.name == "ok"
