"""``python -m memif responder`` as a real subprocess, with a Python memif peer on the other end."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import memif
import pytest
from memif.__main__ import main

from tests.memif import frames
from tests.memif import hostile_peer as hp
from tests.memif.responder_process import WAIT, ResponderProcess


@pytest.fixture
def responder() -> Iterator[Callable[..., ResponderProcess]]:
    started: list[ResponderProcess] = []

    def start(*args: str) -> ResponderProcess:
        process = ResponderProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def collect(queue: memif.RxQueue, count: int, timeout: float = WAIT) -> list[bytes]:
    """Receive until ``count`` packets arrived or ``timeout`` passed."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += queue.recv_burst(64)
        if len(got) < count:
            queue.wait(0.1)
    return got


def send_all(queue: memif.TxQueue, packets: list[bytes], timeout: float = WAIT) -> None:
    """Send every packet, waiting for room.

    A server's link is up once CONNECT arrives, a moment before the client posts
    the buffers the server transmits into; until then its queue has no room.
    """
    deadline = time.monotonic() + timeout
    while packets:
        packets = packets[queue.send_burst(packets) :]
        if packets:
            assert time.monotonic() < deadline, f"no room for {len(packets)} packets"
            time.sleep(0.005)


@contextlib.contextmanager
def peer(path: str, role: str, **kwargs: Any) -> Iterator[memif.Interface]:
    """A Python memif interface on its own socket, its loop running."""
    with memif.Socket(path, reconnect_interval=0.2) as sock:
        iface = sock.create_interface(role=role, name="python-peer", **kwargs)
        sock.start()
        yield iface


def exchange_arp_and_ping(iface: memif.Interface) -> None:
    """ARP for the responder, then ping it (once with a chained jumbo frame); check replies."""
    assert iface.wait_connected(WAIT), iface.disconnect_reason
    tx, rx = iface.tx_queue(0), iface.rx_queue(0)
    send_all(tx, [frames.arp_request()])
    [arp] = collect(rx, 1)
    frames.check_arp_reply(arp)
    payloads = [b"first ping", bytes(range(256)) * 4 + b"odd", bytes(range(251)) * 32]
    send_all(tx, [frames.ping(ident=77, seq=i, data=p) for i, p in enumerate(payloads)])
    replies = collect(rx, len(payloads))
    assert len(replies) == len(payloads)
    for seq, (reply, payload) in enumerate(zip(replies, payloads, strict=True)):
        echo = frames.check_ethernet_echo_reply(reply)
        assert (echo.src, echo.dst) == (frames.RESPONDER_IP, frames.PEER_IP)
        assert (echo.ident, echo.seq, echo.data) == (77, seq, payload)


def test_server_answers_arp_and_ping(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server")
    assert "listening on " + path in proc.wait_for("listening on")
    with peer(path, "client") as iface:
        exchange_arp_and_ping(iface)
        proc.wait_for("link up: peer 'python-peer'")
    proc.wait_for("link down:")
    assert proc.stop() == 0
    assert "answered 1 ARP and 3 ICMP echo requests" in proc.wait_for("stopped:")


def test_client_answers_arp_and_ping(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    with peer(path, "server") as iface:
        proc = responder("--socket", path, "--role", "slave", "--reconnect-interval", "0.2")
        assert "connecting to " + path in proc.wait_for("connecting to")
        exchange_arp_and_ping(iface)
        assert iface.peer_name == "memif-responder"
    assert proc.stop(signal.SIGINT) == 0
    assert "answered 1 ARP and 3 ICMP echo requests" in proc.wait_for("stopped:")


def test_sigterm_exits_zero_and_removes_the_socket_file(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = sock_dir / "resp.sock"
    proc = responder("--socket", str(path), "--role", "master", "--id", "3")
    proc.wait_for("listening on")
    assert path.exists()
    with peer(str(path), "client", id=3) as iface:
        assert iface.wait_connected(WAIT), iface.disconnect_reason
        assert proc.stop(signal.SIGTERM) == 0
        assert iface.wait_disconnected(WAIT)
    assert not path.exists()
    proc.wait_for("SIGTERM, stopping")


# A responder whose idle wait is a minute: it must still stop at once on a signal.
_SLOW_IDLE = """
import sys
import memif.responder
from memif.__main__ import main
memif.responder.IDLE_WAIT = 60.0
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("role", ["server", "client"])
def test_a_signal_the_kernel_gives_another_thread_still_stops_it_at_once(
    sock_dir: Path, role: str
) -> None:
    path = sock_dir / "resp.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_IDLE, "responder", "--socket", str(path), "--role", role],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        tasks = Path(f"/proc/{proc.pid}/task")
        deadline = time.monotonic() + WAIT
        while len(list(tasks.iterdir())) < 2:  # the socket's loop thread runs
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        time.sleep(0.3)  # the main thread is asleep in its idle wait
        other = next(int(t.name) for t in tasks.iterdir() if int(t.name) != proc.pid)
        assert ctypes.CDLL(None, use_errno=True).tgkill(proc.pid, other, signal.SIGINT) == 0
        assert proc.wait(timeout=WAIT) == 0  # not after the minute of idle wait
        output = proc.communicate()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "SIGINT, stopping" in output and "stopped: received 0 packets" in output
    assert not path.exists()


def test_link_down_is_reported_with_the_reason(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server")
    proc.wait_for("listening on")
    with peer(path, "client") as iface:
        assert iface.wait_connected(WAIT)
        proc.wait_for("link up")
        iface.delete()
    assert "interface deleted" in proc.wait_for("link down:")
    assert proc.stop() == 0


def test_ip_mode_answers_bare_ipv4(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server", "--mode", "ip", "--ip", "10.1.2.3")
    proc.wait_for("listening on")
    with peer(path, "client", mode="ip") as iface:
        assert iface.wait_connected(WAIT), iface.disconnect_reason
        request = frames.ipv4(frames.icmp_echo(5, 6, b"bare ip"), dst=bytes([10, 1, 2, 3]))
        send_all(iface.tx_queue(0), [request])
        [reply] = collect(iface.rx_queue(0), 1)
    echo = frames.check_ipv4_echo_reply(reply)
    assert (echo.src, echo.dst, echo.seq, echo.data) == (
        bytes([10, 1, 2, 3]),
        frames.PEER_IP,
        6,
        b"bare ip",
    )
    assert proc.stop() == 0


def test_replies_leave_on_the_queue_the_request_came_in_on(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server", "--queues", "2")
    proc.wait_for("listening on")
    memory = memif.MemoryConfig(num_queue_pairs=2)
    with peer(path, "client", memory=memory) as iface:
        assert iface.wait_connected(WAIT), iface.disconnect_reason
        assert iface.num_tx_connected == 2
        for queue in (1, 0):
            send_all(iface.tx_queue(queue), [frames.ping(seq=queue, data=b"q%d" % queue)])
            [reply] = collect(iface.rx_queue(queue), 1)
            assert frames.check_ethernet_echo_reply(reply).seq == queue
        assert collect(iface.rx_queue(0), 1, timeout=0.2) == []
        assert collect(iface.rx_queue(1), 1, timeout=0.2) == []
    assert proc.stop() == 0


def test_traffic_not_for_the_responder_is_ignored(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server")
    proc.wait_for("listening on")
    other = frames.ethernet(frames.ipv4(frames.icmp_echo(1, 1, b"x"), dst=bytes([192, 168, 1, 9])))
    junk = [other, frames.arp_request(target_ip=bytes([192, 168, 1, 9])), b"\x00" * 20, b"\xff"]
    with peer(path, "client") as iface:
        assert iface.wait_connected(WAIT)
        send_all(iface.tx_queue(0), [*junk, frames.ping(seq=42)])
        replies = collect(iface.rx_queue(0), 2, timeout=1.0)
    assert [frames.check_ethernet_echo_reply(r).seq for r in replies] == [42]
    assert proc.stop() == 0
    assert "ignored 4" in proc.wait_for("stopped:")


def test_refused_peer_is_reported(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server", "--secret", "right")
    proc.wait_for("listening on")
    with peer(path, "client", secret="wrong") as iface:
        deadline = time.monotonic() + WAIT
        while "secret mismatch" not in iface.disconnect_reason:
            assert time.monotonic() < deadline, iface.disconnect_reason
            time.sleep(0.01)
        assert not iface.is_connected
    assert "secret mismatch" in proc.wait_for("peer refused:")
    assert proc.stop() == 0


def test_socket_in_use_is_an_error(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    with memif.Socket(path) as sock:
        sock.create_interface(role="server")
        proc = responder("--socket", path, "--role", "server")
        assert proc.proc.wait(timeout=WAIT) == 1
        proc.wait_for("in use")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "server"], "--socket"),
        (["--socket", "SOCK"], "--role"),
        (["--socket", "SOCK", "--role", "boss"], "invalid choice: 'boss'"),
        (["--socket", "/tmp/" + "x" * 110, "--role", "server"], "must be 1..107 bytes"),
        (["--socket", "@", "--role", "server"], "must be 1..107 bytes"),
        (
            ["--socket", "SOCK", "--role", "server", "--id", "4294967296"],
            "argument --id: 4294967296 is outside 0..4294967295",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--ip", "300.1.1.1"],
            "argument --ip: '300.1.1.1' is not an IPv4 address",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--mac", "02:fe"],
            "argument --mac: MAC address '02:fe' must be six hex bytes",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--mode", "punt"],
            "argument --mode: invalid choice",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--queues", "0"],
            "argument --queues: 0 is outside 1..255",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--secret", "s" * 25],
            "argument --secret: secret must be at most 24 bytes",
        ),
        (
            ["--socket", "SOCK", "--role", "server", "--name", "n" * 33],
            "argument --name: name must be at most 32 bytes",
        ),
        (
            ["--socket", "SOCK", "--role", "client", "--reconnect-interval", "0"],
            "argument --reconnect-interval: 0.0 must be greater than 0",
        ),
    ],
)
def test_invalid_arguments_exit_2_naming_the_field(
    argv: list[str], message: str, sock_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sock_dir / "x.sock"
    with pytest.raises(SystemExit) as exited:
        main(["responder", *(str(path) if arg == "SOCK" else arg for arg in argv)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not path.exists()


def test_peer_that_leaves_mid_handshake_is_reported_without_verbose(
    sock_dir: Path, responder: Callable[..., ResponderProcess]
) -> None:
    path = str(sock_dir / "resp.sock")
    proc = responder("--socket", path, "--role", "server", "--id", "3")
    proc.wait_for("listening on")
    client = hp.dial(path)
    try:
        client.expect(hp.HELLO)
        client.send(hp.init(id=3))
        client.expect(hp.ACK)
    finally:
        client.close()
    line = proc.wait_for("handshake failed:")
    assert "peer closed while waiting for ADD_REGION" in line
    assert f"server on {path}, interface id 3" in line and f"uid {os.getuid()}" in line
    warning = proc.wait_for("WARNING")  # the library's own log line, printed without -v
    assert "handshake failed (peer_closed)" in warning and f"pid {os.getpid()}" in warning
    assert proc.stop() == 0
