"""memifd's worker thread never waits, and health says so when it stops turning anyway.

Each test runs ``memifd serve`` (real uvicorn, real grpcio) with an echo
interface and a Python memif client that sends a packet every millisecond
through it (by way of dpdk-testpmd where big interfaces come and go) and notes
the longest gap between echoes. The attacks: a listener
whose backlog is full (a blocking ``connect()`` to it would never return),
interfaces of 255 queue pairs × 2^14 descriptors created, connected and
deleted, hostile peers at SIGTERM, and the worker thread itself frozen with
``ptrace`` as a stuck system call would freeze it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import memif
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.memif import hostile_peer as hp
from tests.memifd.rest_support import Daemon, frame, wait_for
from tests.reliability.freeze import WALL, FrozenThread, thread_id
from tests.reliability.service_support import start_daemon, write_config
from tests.testpmd import TestPmd
from tests.waiting import wait_until

BIG = {"num_queue_pairs": 255, "log2_ring_size": 14, "packet_buffer_size": 512}
NO_STALL = 0.5  # seconds: the "does not stop for seconds" bound of the echo probe
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class EchoProbe(threading.Thread):
    """Sends one frame every ``interval`` seconds to an echo interface and times the echoes."""

    def __init__(self, path: str, interval: float = 0.001) -> None:
        super().__init__(name="echo-probe", daemon=True)
        self.interval = interval
        self.sock = memif.Socket(path, reconnect_interval=0.05)
        self.iface = self.sock.create_interface(role="client", name="probe")
        self.sock.start()
        self.echoed = 0
        self.max_gap = 0.0
        self._last: float | None = None
        self._halt = threading.Event()

    def __enter__(self) -> EchoProbe:
        assert self.iface.wait_connected(10), self.iface.disconnect_reason
        self.start()
        assert wait_for(lambda: self.echoed > 10, timeout=10), "no echo"
        self.reset()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sock.close()

    def reset(self) -> None:
        """Start a new measurement window."""
        self.max_gap = 0.0
        self._last = None

    def run(self) -> None:
        txq, rxq = self.iface.tx_queue(0), self.iface.rx_queue(0)
        seq = 0
        next_send = time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            if now >= next_send:
                seq += 1
                txq.send(frame(seq))
                next_send = max(next_send + self.interval, now - self.interval)
            got = rxq.recv_burst(64)
            if got:
                now = time.monotonic()
                if self._last is not None:
                    self.max_gap = max(self.max_gap, now - self._last)
                self._last = now
                self.echoed += len(got)
            rxq.wait(max(0.0, next_send - time.monotonic()))


def echo_daemon(sock_dir: Path, tmp_path: Path, **settings: Any) -> Daemon:
    settings.setdefault("max_shared_memory", "16GiB")  # a BIG interface counts 4.4 GB
    config = write_config(
        tmp_path / "memifd.yaml",
        [{"name": "echo0", "socket": "echo.sock", "role": "server", "action": "echo"}],
        **settings,
    )
    return start_daemon(sock_dir, config)


@pytest.fixture
def trap(sock_dir: Path) -> Iterator[str]:
    """A socket file whose listener never accepts and whose backlog is full."""
    path = str(sock_dir / "trap.sock")
    listener, pending = hp.full_backlog_listener(path)
    yield path
    for sock in (*pending, listener):
        sock.close()


def metric(api: httpx.Client, name: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise LookupError(name)


def grpc_health(daemon: Daemon) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        return status


def all_green(api: httpx.Client, daemon: Daemon) -> bool:
    return (
        api.get("/readyz").status_code == 200
        and api.get("/healthz").status_code == 200
        and grpc_health(daemon) == SERVING
        and metric(api, "memifd_ready") == 1
    )


def worker(daemon: Daemon) -> FrozenThread:
    assert daemon.proc is not None
    return FrozenThread(daemon.proc.pid, thread_id(daemon.proc.pid, "memifd-worker"))


def test_a_listener_that_never_accepts_holds_up_nothing(
    sock_dir: Path, tmp_path: Path, trap: str
) -> None:
    daemon = echo_daemon(sock_dir, tmp_path)
    try:
        with daemon.client() as api, EchoProbe(str(sock_dir / "echo.sock")) as probe:
            start = time.monotonic()
            taken = api.post("/v1/interfaces", json={"name": "s", "socket": trap, "role": "server"})
            assert taken.status_code == 409, taken.text
            assert "in use by another listener" in taken.json()["detail"]
            made = api.post("/v1/interfaces", json={"name": "c", "socket": trap, "role": "client"})
            assert made.status_code == 201, made.text
            assert time.monotonic() - start < 2.0
            busy = os.strerror(11)  # EAGAIN: what a full backlog answers a non-blocking connect
            assert wait_for(
                lambda: busy in api.get("/v1/interfaces/c").json()["disconnect_reason"], 5
            )
            time.sleep(2.5)  # memifd retries every 2 s
            assert all_green(api, daemon)
            assert metric(api, "memifd_worker_stall_seconds") < 2.0
            echoed = probe.echoed
            assert wait_for(lambda: probe.echoed > echoed + 100, 5)
            assert probe.max_gap < NO_STALL, probe.max_gap
        code, took = daemon.terminate(timeout=10)
        assert (code, took < 5.0) == (0, True)
    finally:
        daemon.kill()


def test_watchdog_turns_health_red_while_the_worker_is_frozen(
    sock_dir: Path, tmp_path: Path
) -> None:
    daemon = echo_daemon(sock_dir, tmp_path, worker_stall_unready=1.5, worker_stall_unhealthy=4.0)
    try:
        with daemon.client() as api:
            assert all_green(api, daemon)
            with worker(daemon):
                frozen = time.monotonic()
                assert wait_for(lambda: api.get("/readyz").status_code == 503, 5)
                assert api.get("/healthz").status_code == 200  # not dead yet
                assert wait_for(lambda: grpc_health(daemon) == NOT_SERVING, 3)
                assert metric(api, "memifd_ready") == 0
                assert metric(api, "memifd_worker_stall_seconds") >= 1.5
                refused = time.monotonic()
                answer = api.post("/v1/interfaces", json={"name": "late", "socket": "late.sock"})
                assert answer.status_code == 503
                assert "stalled" in answer.json()["detail"]
                assert time.monotonic() - refused < 1.0  # refused at once, not queued
                assert wait_for(lambda: api.get("/healthz").status_code == 503, 8)
                assert time.monotonic() - frozen >= 3.0
                assert "stalled" in api.get("/healthz").json()["status"]
            assert wait_for(lambda: all_green(api, daemon), 5)
            assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["echo0"]
    finally:
        daemon.kill()


def test_a_change_that_timed_out_is_never_applied(sock_dir: Path, tmp_path: Path) -> None:
    daemon = echo_daemon(sock_dir, tmp_path, command_timeout=1.0)
    try:
        with daemon.client() as api:
            with worker(daemon):
                start = time.monotonic()
                create = api.post(
                    "/v1/interfaces", json={"name": "phantom", "socket": "phantom.sock"}
                )
                delete = api.delete("/v1/interfaces/echo0")
                assert (create.status_code, delete.status_code) == (503, 503)
                assert "nothing was changed" in create.json()["detail"]
                assert time.monotonic() - start < 4.0
            assert wait_for(lambda: all_green(api, daemon), 5)
            # the worker runs commands in order: once a later one is done, a queued one has run
            later = {"name": "later", "socket": "later.sock"}
            assert api.post("/v1/interfaces", json=later).status_code == 201
            assert api.delete("/v1/interfaces/later").status_code == 204
            assert api.get("/v1/interfaces/phantom").status_code == 404
            assert not (sock_dir / "phantom.sock").exists()
            assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["echo0"]
    finally:
        daemon.kill()


def test_sigterm_with_hostile_peers_is_quick_and_clean(
    sock_dir: Path, tmp_path: Path, trap: str
) -> None:
    mute = hp.Listener(str(sock_dir / "mute.sock"))  # accepts, then says nothing at all
    daemon = echo_daemon(sock_dir, tmp_path)
    silent = None
    try:
        with daemon.client() as api, EchoProbe(str(sock_dir / "echo.sock")):
            for spec in (
                {"name": "stuck", "socket": trap, "role": "client"},
                {"name": "big", "socket": mute.path, "role": "client", "memory": BIG},
            ):
                assert api.post("/v1/interfaces", json=spec).status_code == 201
            mute_peer = mute.accept()
            mute_peer.send(hp.hello())  # our big client builds memory, then waits for ACK
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            silent.connect(str(sock_dir / "echo.sock"))  # never answers HELLO, never reads
            # both handshakes under way: memifd's HELLO waits on one, its INIT on the other
            handshaking = (silent, mute_peer.sock)
            wait_until(lambda: all(map(readable, handshaking)), 10, 0.01, "a HELLO and an INIT")
            code, took = daemon.terminate(timeout=15)
        assert code == 0, daemon.stop_output()
        assert took < 4.0
        assert not (sock_dir / "echo.sock").exists()
        assert "shutting down" in mute_peer.disconnect_reason()  # told why, even mid-handshake
        mute_peer.close()
    finally:
        daemon.kill()
        mute.close()
        if silent is not None:
            silent.close()


def test_sigterm_with_a_frozen_worker_ends_within_shutdown_timeout(
    sock_dir: Path, tmp_path: Path
) -> None:
    daemon = echo_daemon(sock_dir, tmp_path, shutdown_timeout=2.0)
    assert daemon.proc is not None
    try:
        assert (sock_dir / "echo.sock").exists()
        frozen = worker(daemon).__enter__()
        start = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)

        def ended() -> bool:
            # the traced thread's end is ours to collect before the process can end
            if frozen.attached and os.waitpid(frozen.tid, os.WNOHANG | WALL)[0]:
                frozen.attached = False
            return daemon.proc is not None and daemon.proc.poll() is not None

        wait_until(ended, 15, 0.01, "memifd to exit")
        took = time.monotonic() - start
        assert daemon.proc.returncode == 1, daemon.stop_output()
        assert took < 2.0 + 1.5
        assert not (sock_dir / "echo.sock").exists()
        assert "did not stop in time" in daemon.log()
    finally:
        daemon.kill()


def readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (nothing is read)."""
    return bool(select.select([sock], [], [], 0)[0])


def maps_memfd(pid: int, name: str) -> bool:
    """Whether process ``pid`` still maps a memory region of an interface whose name starts
    with ``name``."""
    return f"/memfd:memif {name}" in Path(f"/proc/{pid}/maps").read_text()


def memfds(pid: int, name: str) -> set[int]:
    """Inodes of the memfds process ``pid`` holds for interface ``name``."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if os.readlink(path).startswith(f"/memfd:memif {name} region"):
                found.add(os.stat(path).st_ino)
        except OSError:
            continue
    return found


def test_a_server_that_hangs_up_on_a_big_client_stalls_nothing(
    sock_dir: Path, tmp_path: Path
) -> None:
    dropper = hp.Listener(str(sock_dir / "dropper.sock"))
    halt = threading.Event()
    hangups = 0

    def hang_up_after_hello() -> None:
        nonlocal hangups
        dropper.sock.settimeout(0.2)
        while not halt.is_set():
            try:
                peer = dropper.accept()
            except TimeoutError:
                continue
            peer.send(hp.hello())
            peer.close()
            hangups += 1

    thread = threading.Thread(target=hang_up_after_hello, daemon=True)
    thread.start()
    daemon = echo_daemon(sock_dir, tmp_path)
    assert daemon.proc is not None
    try:
        with daemon.client() as api, EchoProbe(str(sock_dir / "echo.sock")) as probe:
            spec = {"name": "big", "socket": dropper.path, "role": "client", "memory": BIG}
            assert api.post("/v1/interfaces", json=spec).status_code == 201
            seen: set[int] = set()
            end = time.monotonic() + 7.0  # memifd retries every 2 s: three or four hang-ups
            while time.monotonic() < end:
                seen |= memfds(daemon.proc.pid, "big")
                time.sleep(0.05)  # sampled through the whole window
            assert hangups >= 3
            assert len(seen) == 2  # one region of rings, one of buffers: built once, kept
            assert probe.max_gap < NO_STALL, probe.max_gap
            assert all_green(api, daemon)
    finally:
        halt.set()
        thread.join(timeout=5)
        daemon.kill()
        dropper.close()


def test_big_interfaces_come_and_go_without_stopping_an_echo_interface(
    sock_dir: Path, tmp_path: Path, testpmd: Callable[..., TestPmd]
) -> None:
    """The probe's packets reach memifd's echo interface through dpdk-testpmd (``io``)."""
    daemon = echo_daemon(sock_dir, tmp_path)
    probe_sock = sock_dir / "probe.sock"
    try:
        testpmd(
            socket=str(sock_dir / "echo.sock"),
            role="client",
            forward_mode="io",
            extra_ports=(f"net_memif1,role=server,socket={probe_sock},id=0,socket-abstract=no",),
        )
        assert wait_for(probe_sock.exists, 15)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        with daemon.client() as api, EchoProbe(str(probe_sock)) as probe:
            for _ in range(2):
                for role in ("server", "client"):
                    spec = {
                        "name": f"big-{role}",
                        "socket": "big.sock",
                        "role": role,
                        "memory": BIG,
                    }
                    start = time.monotonic()
                    assert api.post("/v1/interfaces", json=spec).status_code == 201
                    assert time.monotonic() - start < 2.0
                assert wait_for(
                    lambda: api.get("/v1/interfaces/big-client").json()["state"] == "connected",
                    30,
                    0.05,
                ), api.get("/v1/interfaces/big-client").text
                assert api.get("/v1/interfaces/big-server").json()["state"] == "connected"
                for role in ("client", "server"):
                    assert api.delete(f"/v1/interfaces/big-{role}").status_code == 204
            # the memory is freed in the background meanwhile
            assert wait_for(lambda: not maps_memfd(pid, "big-"), 10)
            assert probe.max_gap < NO_STALL, probe.max_gap
            assert all_green(api, daemon)
    finally:
        daemon.kill()
