"""``memifctl`` against a real memifd core and gRPC server."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from memifd.ctl import app
from typer.testing import CliRunner, Result

from tests import testpmd as testpmd_mod
from tests.memifd.grpc_support import GrpcEnv, grpc_env, start_env, tls_files, wait_connected

__all__ = ["grpc_env", "tls_files"]

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "ctl-test-token"


def run(env: GrpcEnv | None, *args: str, **environment: str) -> Result:
    """``memifctl --addr <env> args...`` in this process."""
    prefix = ["--addr", env.address] if env is not None else []
    variables = {"MEMIFD_TOKEN": None, "MEMIFD_GRPC_ADDR": None, **environment}
    return CliRunner().invoke(app, [*prefix, *args], env=variables)  # type: ignore[arg-type]


def test_create_list_get_update_stats_delete(grpc_env: GrpcEnv) -> None:
    result = run(grpc_env, "create", "m0", "--socket", "ctl.sock", "--id", "4", "--queues", "2",
                 "--action", "echo", "--secret", "pssst")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"created m0 (server id 4 on {grpc_env.socket_path('ctl.sock')})"
    )
    status = grpc_env.manager.get_interface("m0")
    assert (status.id, status.memory.num_queue_pairs, status.action, status.has_secret) == (
        4, 2, "echo", True
    )

    result = run(grpc_env, "list")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ROLE", "ID", "SOCKET", "STATE", "PEER", "ACTION", "RX", "TX"]
    assert row.split() == [
        "m0", "server", "4", grpc_env.socket_path("ctl.sock"), "disconnected", "-", "echo", "0",
        "0",
    ]

    listed = json.loads(run(grpc_env, "list", "--json").stdout)
    assert [s["name"] for s in listed["interfaces"]] == ["m0"]
    got = json.loads(run(grpc_env, "get", "m0").stdout)
    assert got["memory"]["num_queue_pairs"] == 2 and "secret" not in got

    result = run(grpc_env, "update", "m0", "--admin-down", "--rx-mode", "polling")
    assert result.exit_code == 0 and result.stdout.strip() == "updated m0"
    status = grpc_env.manager.get_interface("m0")
    assert (status.admin_up, status.rx_mode) == (False, "polling")

    result = run(grpc_env, "stats", "m0")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:7]] == ["QUEUE", "rx", "rx", "rx", "tx", "tx", "tx"]
    assert "subscriber_drops: 0" in lines

    result = run(grpc_env, "delete", "m0")
    assert result.exit_code == 0 and result.stdout.strip() == "deleted m0"
    assert not grpc_env.manager.list_interfaces()


def test_create_with_allowed_peers(grpc_env: GrpcEnv) -> None:
    result = run(grpc_env, "create", "g0", "--socket", "@ctl-peers", "--allow-uid", "1000",
                 "--allow-uid", "1001", "--allow-gid", "2000")
    assert result.exit_code == 0, result.output
    status = grpc_env.manager.get_interface("g0")
    assert (status.allowed_uids, status.allowed_gids) == ([1000, 1001], [2000])
    got = json.loads(run(grpc_env, "get", "g0").stdout)
    assert (got["allowed_uids"], got["allowed_gids"]) == ([1000, 1001], [2000])
    result = run(grpc_env, "create", "g1", "--socket", "/etc/ctl.sock")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT: spec.socket: /etc/ctl.sock is outside the socket directories" in (
        result.output
    )


def test_create_from_file(grpc_env: GrpcEnv, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: f0\nsocket: file.sock\nrole: master\nmemory:\n  log2_ring_size: 8\n"
    )
    result = run(grpc_env, "create", "--file", str(spec), "--id", "9")  # flags win
    assert result.exit_code == 0, result.output
    status = grpc_env.manager.get_interface("f0")
    assert (status.role, status.id, status.memory.log2_ring_size) == ("server", 9, 8)

    several = tmp_path / "several.yaml"
    several.write_text("interfaces:\n  - name: f1\n  - name: f2\n    socket: other.sock\n")
    result = run(grpc_env, "create", "-f", str(several), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("would create f1 (server id 0 on")
    assert [s.name for s in grpc_env.manager.list_interfaces()] == ["f0"]


@pytest.mark.parametrize("args, message", [
    (["delete", "ghost"], "error: NOT_FOUND: interface 'ghost' not found"),
    (["stats", "ghost"], "error: NOT_FOUND: interface 'ghost' not found"),
    (["create", "x", "--log2-ring-size", "15"],
     "error: invalid spec: memory.log2_ring_size: Input should be less than or equal to 14"),
    (["create"], "error: give the interface NAME (or a name in --file)"),
    (["create", "x", "--file", "/nonexistent.yaml"],
     "error: --file: cannot read /nonexistent.yaml: No such file or directory"),
    (["create", "x", "--action", "xconnect", "--xconnect-to", "ghost"],
     "error: INVALID_ARGUMENT: spec.xconnect_to: interface 'ghost' does not exist"),
    (["capture", "ghost", "-w", "/tmp/never.pcap"],
     "error: NOT_FOUND: interface 'ghost' not found"),
])
def test_errors_exit_1_with_code_and_detail(
    grpc_env: GrpcEnv, args: list[str], message: str
) -> None:
    result = run(grpc_env, *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_unreachable_server(sock_dir: Path) -> None:
    result = run(None, "--addr", "127.0.0.1:1", "--timeout", "2", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAVAILABLE: ")


@pytest.fixture
def secured(sock_dir: Path) -> Iterator[GrpcEnv]:
    env = start_env(sock_dir, token=TOKEN)
    try:
        yield env
    finally:
        env.close()


def test_token_from_flag_or_environment(secured: GrpcEnv) -> None:
    result = run(secured, "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAUTHENTICATED: missing metadata")
    assert run(secured, "--token", TOKEN, "create", "t0").exit_code == 0
    result = run(secured, "list", MEMIFD_TOKEN=TOKEN)
    assert result.exit_code == 0 and "t0" in result.stdout
    assert run(secured, "--token", "nope", "list").stderr.strip() == (
        "error: UNAUTHENTICATED: invalid token"
    )


def test_tls_ca(sock_dir: Path, tls_files: tuple[Path, Path]) -> None:
    env = start_env(sock_dir, tls=tls_files)
    try:
        addr = f"localhost:{env.handle.port}"
        result = run(None, "--addr", addr, "--tls-ca", str(tls_files[0]), "create", "s0")
        assert result.exit_code == 0, result.output
        result = run(None, "--addr", addr, "--timeout", "3", "list")  # plaintext to a TLS port
        assert result.exit_code == 1 and result.stderr.startswith("error: UNAVAILABLE")
    finally:
        env.close()


def _tshark_frames(path: Path) -> list[str]:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is not installed (Debian package tshark)"
    result = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "eth.type"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout.splitlines()


def _memifctl(
    env: GrpcEnv, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``memifctl`` entry point, as a user runs it."""
    command = shutil.which("memifctl") or f"{sys.executable} -m memifd.ctl"
    return subprocess.run(
        [*shlex.split(command), *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={**os.environ, "MEMIFD_GRPC_ADDR": env.address},
    )


@pytest.mark.interop
def test_capture_writes_a_pcap_tshark_reads(
    grpc_env: GrpcEnv, testpmd: Callable[..., testpmd_mod.TestPmd], tmp_path: Path
) -> None:
    grpc_env.create("srv", socket="pmd.sock")
    testpmd(socket=grpc_env.socket_path("pmd.sock"), role="client", forward_mode="txonly")
    wait_connected(grpc_env, "srv")
    out = tmp_path / "srv.pcap"
    result = _memifctl(grpc_env, "capture", "srv", "-w", str(out), "--count", "1000",
                       "--direction", "rx", "--snaplen", "60")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"1000 packets captured, 0 dropped, written to {out}"
    frames = _tshark_frames(out)
    assert len(frames) == 1000
    assert set(frames) == {"64\t0x0800"}  # testpmd's UDP/IPv4 packets, whole length on the wire


def test_capture_with_duration_and_no_traffic(grpc_env: GrpcEnv, tmp_path: Path) -> None:
    grpc_env.create("quiet")
    out = tmp_path / "quiet.pcap"
    result = run(grpc_env, "capture", "quiet", "-w", str(out), "--duration", "0.3")
    assert result.exit_code == 0, result.output
    assert "0 packets captured, 0 dropped" in result.stderr
    assert _tshark_frames(out) == []


def readme_commands(text: str) -> list[list[str]]:
    """The ``memifctl`` command lines in the shell blocks of the "gRPC API" section."""
    commands: list[list[str]] = []
    level = 0  # of the section's heading; 0 until it is found
    fence: str | None = None  # language of the open code block
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        heading = re.match(r"(#+) (.*)", line) if fence is None else None
        if heading and level and len(heading.group(1)) <= level:
            break
        if heading and heading.group(2).strip() == "gRPC API":
            level = len(heading.group(1))
        elif level and fence in ("sh", "shell", "console", "bash"):
            command = line.strip().removeprefix("$ ")
            if command.startswith("memifctl "):
                commands.append(shlex.split(command)[1:])
    assert level, "README.md has no 'gRPC API' section"
    return commands


def check_readme_examples(env: GrpcEnv, text: str, cwd: Path) -> int:
    """Run every ``memifctl`` example against ``env``; returns how many ran."""
    commands = readme_commands(text)
    assert commands, "no memifctl examples in the gRPC API section"
    for args in commands:
        result = _memifctl(env, *args, cwd=cwd)
        assert result.returncode == 0, f"memifctl {shlex.join(args)}:\n{result.stderr}"
    return len(commands)


def test_readme_examples_run(grpc_env: GrpcEnv, tmp_path: Path) -> None:
    assert check_readme_examples(grpc_env, README.read_text(), tmp_path) >= 5
