"""memifd's budgets, tested by trying to exhaust them on ``memifd serve``.

* Capture streams that never read, on an interface receiving 9,000-byte
  packets: each holds at most ``stream_buffer`` bytes (not 65,536 packets of
  any size) and drops the oldest, counted.
* ``max_interfaces`` and ``max_shared_memory``: the next create is a 507
  (RESOURCE_EXHAUSTED over gRPC) naming the limit, before any memory is made;
  with the defaults, large self-connected pairs stop at 1 GiB of shared memory.
* File descriptors: with a low RLIMIT_NOFILE, interfaces are refused with a
  507 naming the limit once their fds would not fit beside the API's reserve;
  every interface accepted really connects. memifd raises its soft limit to
  the hard one when it starts.
* A control socket whose accept fails (memifd out of fds) pauses and logs once
  per interval instead of spinning, and accepts again when fds are back.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import memif
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import memif_stub
from tests.memifd.rest_support import Daemon, memif_clients, wait_for
from tests.reliability.attack_support import AUTH, TOKEN, anon_mib, guarded_daemon
from tests.reliability.service_support import fd_count, proc_status, start_daemon

JUMBO = 9000
STREAM_BUFFER_MIB = 16  # memifd's default stream_buffer
MIB = 1 << 20


def _pid(daemon: Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


@pytest.fixture
def api_of() -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(daemon: Daemon) -> httpx.Client:
        client = httpx.Client(base_url=daemon.url, headers=AUTH, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- streams -----------------------------------------------------------------------------------


class _AnonPeak(threading.Thread):
    """The peak of a process's RssAnon while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = anon_mib(pid)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            self.peak = max(self.peak, anon_mib(self.pid))


def test_streams_that_never_read_hold_a_bounded_number_of_bytes(
    sock_dir: Path, tmp_path: Path, api_of: Any
) -> None:
    daemon = guarded_daemon(sock_dir, tmp_path)
    try:
        pid = _pid(daemon)
        api = api_of(daemon)
        assert (
            api.post("/v1/interfaces", json={"name": "cap", "socket": "cap.sock"}).status_code
            == 201
        )
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        with (
            grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel,
            socket.create_connection(("127.0.0.1", daemon.http_port)) as rest,
            memif_clients(str(sock_dir / "cap.sock"), [0]) as (client,),
        ):
            assert client.wait_connected(5)
            # a gRPC capture nobody reads, and a REST one whose socket is never read
            stalled = memif_stub(channel).Capture(
                pb.CaptureRequest(interface="cap", buffer=65536), metadata=metadata
            )
            rest.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            rest.sendall(
                f"GET /v1/interfaces/cap/capture HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
            )
            assert wait_for(lambda: _subscriptions(api) == 2, timeout=5)
            before = anon_mib(pid)
            peak = _AnonPeak(pid)
            peak.start()
            sent = _send_jumbo(client, seconds=3.0)
            assert wait_for(lambda: _rx_packets(api) == sent, timeout=10)  # all taken in
            peak.halt.set()
            peak.join()
            stats = api.get("/v1/interfaces/cap/stats").json()
            stalled.cancel()
        print(
            f"\n{sent} packets of {JUMBO} B ({sent * JUMBO / MIB:.0f} MiB) into 2 stalled "
            f"captures: memifd RssAnon {before:.1f} -> peak {peak.peak:.1f} MiB, "
            f"subscriber drops {stats['subscriber_drops']}"
        )
        assert stats["rx"]["packets"] == sent
        assert sent * JUMBO > 10 * 2 * STREAM_BUFFER_MIB * MIB  # far more than the budgets
        assert stats["subscriber_drops"] > 0
        assert peak.peak - before < 2 * STREAM_BUFFER_MIB + 32
    finally:
        daemon.kill()


def _rx_packets(api: httpx.Client) -> int:
    packets: int = api.get("/v1/interfaces/cap/stats").json()["rx"]["packets"]
    return packets


def _subscriptions(api: httpx.Client) -> int:
    text = api.get("/metrics").text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith('memifd_subscriptions{kind="capture"}')
    )


def _send_jumbo(client: memif.Interface, seconds: float) -> int:
    """Send 9,000-byte frames as fast as the ring takes them; how many it took."""
    frame = bytes.fromhex("02000000000a02000000000b0800").ljust(JUMBO, b"\xab")
    burst = [frame] * 32
    txq = client.tx_queue(0)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        taken = txq.send_burst(burst)
        sent += taken
        if taken < len(burst):
            time.sleep(0.0005)  # the ring is full: memifd reads it meanwhile
    return sent


# -- interfaces and shared memory ----------------------------------------------------------------


def _memory(pairs: int, log2: int, buffer: int) -> dict[str, int]:
    return {"num_queue_pairs": pairs, "log2_ring_size": log2, "packet_buffer_size": buffer}


def test_interface_and_shared_memory_limits(sock_dir: Path, tmp_path: Path, api_of: Any) -> None:
    daemon = guarded_daemon(sock_dir, tmp_path, max_interfaces=4, max_shared_memory="64MiB")
    try:
        api = api_of(daemon)
        for i in range(4):
            assert api.post("/v1/interfaces", json={"name": f"a{i}", "id": i}).status_code == 201
        fifth = api.post("/v1/interfaces", json={"name": "a4", "id": 4})
        assert fifth.status_code == 507
        assert fifth.json()["detail"] == "max_interfaces: 4 interfaces exist, the limit is 4"
        assert api.delete("/v1/interfaces/a3").status_code == 204
        big = {"name": "big", "id": 9, "memory": _memory(4, 12, 4096)}  # 128 MiB of buffers
        for path in ("/v1/interfaces", "/v1/interfaces?dry_run=true"):
            refused = api.post(path, json=big)
            assert refused.status_code == 507 and "max_shared_memory" in refused.text
            assert "of 67108864 are taken" in refused.text
        with (
            grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel,
            pytest.raises(grpc.RpcError) as excinfo,
        ):
            memif_stub(channel).CreateInterface(
                pb.CreateInterfaceRequest(
                    spec=pb.InterfaceSpec(
                        name="big",
                        id=9,
                        memory=pb.MemoryConfig(
                            num_queue_pairs=4, log2_ring_size=12, packet_buffer_size=4096
                        ),
                    )
                ),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=10,
            )
        assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_shared_memory" in (excinfo.value.details() or "")
        assert api.post("/v1/interfaces", json={"name": "a3", "id": 3}).status_code == 201
    finally:
        daemon.kill()


def test_default_shared_memory_limit_stops_large_self_connected_pairs(
    sock_dir: Path, tmp_path: Path, api_of: Any
) -> None:
    daemon = guarded_daemon(sock_dir, tmp_path)
    try:
        api = api_of(daemon)
        memory = _memory(2, 14, 4096)  # 256 MiB of packet buffers per interface
        answers = []
        for pair in range(4):
            for role in ("server", "client"):
                answers.append(
                    api.post(
                        "/v1/interfaces",
                        json={
                            "name": f"{role}{pair}",
                            "socket": f"pair{pair}.sock",
                            "role": role,
                            "memory": memory,
                            "action": "echo",
                        },
                    ).status_code
                )
        assert answers == [201, 201, 201, 507, 507, 507, 507, 507]
        assert wait_for(lambda: api.get("/v1/interfaces/server0").json()["state"] == "connected")
        assert api.get("/readyz").status_code == 200
    finally:
        daemon.kill()


# -- file descriptors ----------------------------------------------------------------------------


def test_fd_budget_refuses_what_would_not_fit(sock_dir: Path, tmp_path: Path, api_of: Any) -> None:
    daemon = guarded_daemon(sock_dir, tmp_path, http_max_connections=32)
    try:
        pid = _pid(daemon)
        limit = 600
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        api = api_of(daemon)
        wide = api.post("/v1/interfaces", json={"name": "wide", "memory": _memory(255, 6, 2048)})
        assert wide.status_code == 507
        assert "file descriptors: the interface needs 768" in wide.text
        assert f"RLIMIT_NOFILE {limit}" in wide.text
        created = []
        for i in range(40):
            response = api.post(
                "/v1/interfaces",
                json={"name": f"q{i}", "socket": f"q{i}.sock", "memory": _memory(8, 6, 2048)},
            )
            if response.status_code != 201:
                assert response.status_code == 507 and "file descriptors" in response.text
                break
            created.append(i)
        assert 2 <= len(created) < 40
        clients = [memif_clients(str(sock_dir / f"q{i}.sock"), [0]) for i in created]
        try:
            peers = [client.__enter__()[0] for client in clients]
            assert all(peer.wait_connected(10) for peer in peers)  # the fds were really there
            assert fd_count(pid) < limit
            assert api.get("/healthz").status_code == 200
            states = {i["name"]: i["state"] for i in api.get("/v1/interfaces").json()}
            assert set(states.values()) == {"connected"}
        finally:
            for client in clients:
                client.__exit__(None, None, None)
    finally:
        daemon.kill()


def test_open_file_limit_is_raised_at_start(sock_dir: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.fail(f"the hard RLIMIT_NOFILE of this machine is {hard}: nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        daemon = start_daemon(sock_dir)  # inherits the soft limit of 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = Path(f"/proc/{_pid(daemon)}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == [str(hard), str(hard)]
    finally:
        daemon.kill()


# -- accept failures ---------------------------------------------------------------------------


def test_accept_failures_back_off_and_recover(sock_dir: Path, tmp_path: Path, api_of: Any) -> None:
    daemon = guarded_daemon(
        sock_dir,
        tmp_path,
        http_max_connections=5000,
        http_header_timeout=120,
        interfaces=[{"name": "srv", "socket": "srv.sock"}],
    )
    held: list[socket.socket] = []
    try:
        pid = _pid(daemon)
        assert proc_status(pid)["State"][0] in "SR"
        limit = fd_count(pid) + 30
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        base = fd_count(pid)
        while fd_count(pid) < limit and len(held) < 200:  # memifd's fds, taken by idle clients
            held.append(socket.create_connection(("127.0.0.1", daemon.http_port), timeout=5))
            wait_for(lambda: fd_count(pid) >= base + len(held), timeout=1)  # accepted, or cannot be
        assert wait_for(lambda: fd_count(pid) >= limit - 1, timeout=5), fd_count(pid)
        logged_before = daemon.log().count("accept failed")
        with memif_clients(str(sock_dir / "srv.sock"), [0], reconnect_interval=0.05) as (peer,):
            time.sleep(3.0)  # the client knocks 20 times a second, memifd cannot accept
            assert not peer.is_connected
            failures = daemon.log().count("accept failed") - logged_before
            lines = len(daemon.log().splitlines())
            for sock in held:
                sock.close()
            held.clear()
            assert peer.wait_connected(10)  # accepting again
        print(f"\naccept failing for 3 s: {failures} warning(s), {lines} log lines in all")
        assert 1 <= failures <= 2
        assert lines < 50
    finally:
        for sock in held:
            sock.close()
        daemon.kill()
