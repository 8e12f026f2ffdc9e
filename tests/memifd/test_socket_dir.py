"""``memifd serve`` with a socket directory it cannot use: clear errors naming the setting,
and probes that say "not ready" (a read-only tmpfs as root, a mode 0500 directory otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.memifd.rest_support import Daemon, wait_for

HINT = "set socket_dir (--socket-dir, MEMIFD_SOCKET_DIR) to a writable directory"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory nobody here can write to, and the error writing to it gives."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield path, os.strerror(13)  # EACCES
        path.chmod(0o700)
        return
    try:
        _mount("-t", "tmpfs", "-o", "ro,size=64k", "memifd-test", str(path))
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"root cannot mount a read-only tmpfs here: {exc.stderr.strip()}")
    try:
        yield path, os.strerror(30)  # EROFS
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_a_socket_dir_that_cannot_be_created_stops_memifd_naming_the_setting(
    read_only_dir: tuple[Path, str],
) -> None:
    directory, error = read_only_dir
    wanted = directory / "memifd"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memifd",
            "serve",
            "--socket-dir",
            str(wanted),
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(
        f" memifd: cannot start: socket_dir {wanted} cannot be created: {error}; {HINT}"
    )
    assert "[Errno" not in result.stderr


def test_an_unwritable_socket_dir_is_not_ready_and_named(
    read_only_dir: tuple[Path, str],
) -> None:
    directory, error = read_only_dir
    problem = f"socket_dir {directory} is not writable: {error}; {HINT}"
    daemon = Daemon(directory).start()
    try:
        with daemon.client() as api:
            ready = api.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": f"not ready: {problem}"})
            assert api.get("/healthz").status_code == 200  # alive, only not ready
            assert "memifd_ready 0.0" in api.get("/metrics").text
            created = api.post("/v1/interfaces", json={"name": "vnf0", "socket": "vnf0.sock"})
            assert created.status_code == 422
            assert created.json()["errors"][0]["msg"] == problem
            tried = api.post("/v1/interfaces?dry_run=true", json={"name": "vnf0"})
            assert tried.json() == created.json()
            with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            if os.geteuid() == 0:
                _mount("-o", "remount,rw", str(directory))
            else:
                directory.chmod(0o700)
            assert wait_for(lambda: api.get("/readyz").status_code == 200, timeout=5)
        assert problem in daemon.log()
    finally:
        daemon.kill()
