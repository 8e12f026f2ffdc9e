"""memifd keeps serving when nobody reads its log: stderr is a pipe whose buffer is full.

``memifd serve`` runs with the access log on and its stderr on a pipe the test
never reads. Requests with long paths (each logged with its path) fill the pipe
and then memifd's log queue; the API must keep answering, an echo interface
must keep echoing (its worker logs the link coming up), the drops show in
``memifd_log_records_dropped_total``, and SIGTERM still ends memifd in time.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import memif

from tests.memifd.rest_support import Daemon, frame, receive, wait_for
from tests.reliability.service_support import write_config

LONG_PATH = "/v1/interfaces/" + "x" * 4000  # a 404 whose access-log line is about 8 KB
REQUESTS = 600  # about 5 MB of log lines: past the pipe (64 KiB) and the queue (2 MiB)
SLOW_ANSWER = 2.0  # seconds: no request may take this long


def dropped(api: httpx.Client) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("memifd_log_records_dropped_total "):
            return float(line.split()[1])
    raise AssertionError("memifd_log_records_dropped_total missing from /metrics")


def echoes(path: Path, count: int = 32) -> int:
    """Packets echoed back of ``count`` sent by a fresh client (the worker logs its link)."""
    with memif.Socket(str(path)) as sock:
        iface = sock.create_interface(role="client", name="probe")
        sock.start()
        assert iface.wait_connected(10), iface.disconnect_reason
        sent = iface.tx_queue(0).send_burst([frame(i) for i in range(count)])
        return len(receive(iface, sent, timeout=10))


def test_a_stderr_nobody_reads_blocks_neither_the_api_nor_the_data_path(
    sock_dir: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "memifd.yaml",
        [{"name": "echo0", "socket": "echo.sock", "role": "server", "action": "echo"}],
    )
    daemon = Daemon(
        sock_dir,
        args=["--config", str(config), "--access-log", "--log-format", "json"],
        unread_stderr=True,
    ).start()
    try:
        with daemon.client() as api:
            assert echoes(sock_dir / "echo.sock") == 32
            slowest = 0.0
            for _ in range(REQUESTS):
                started = time.monotonic()
                assert api.get(LONG_PATH).status_code == 404
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < SLOW_ANSWER, f"a request took {slowest:.2f} s"
            assert wait_for(lambda: dropped(api) > 0, timeout=10), "no log record was dropped"

            # The queue is full and the pipe stalled: the worker logs a new link and echoes.
            assert echoes(sock_dir / "echo.sock") == 32
            started = time.monotonic()
            listed = api.get("/v1/interfaces")
            assert listed.status_code == 200 and listed.json()[0]["name"] == "echo0"
            assert time.monotonic() - started < SLOW_ANSWER
            assert api.get("/readyz").status_code == 200

        code, seconds = daemon.terminate(timeout=10)
        assert code == 0 and seconds < 5, (code, seconds)
    finally:
        daemon.kill()
