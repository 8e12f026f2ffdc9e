"""``memifctl`` against a real memifd core and gRPC server."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import memifd
import pytest
import typer
import yaml
from memifd.cli.ctl import app, parse_addr
from memifd.proto.memif.v1 import memif_pb2 as pb
from typer.testing import CliRunner, Result

from tests import testpmd as testpmd_mod
from tests.memifd.grpc_support import GrpcEnv, grpc_env, start_env, tls_files, wait_connected
from tests.memifd.rest_support import Daemon, memif_clients, wait_for
from tests.readme import block_after

__all__ = ["grpc_env", "tls_files"]

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "ctl-test-token"


def run(env: GrpcEnv | None, *args: str, **environment: str) -> Result:
    """``memifctl --addr <env> args...`` in this process."""
    prefix = ["--addr", env.address] if env is not None else []
    variables = {"MEMIFD_TOKEN": None, "MEMIFD_GRPC_ADDR": None, **environment}
    return CliRunner().invoke(app, [*prefix, *args], env=variables)


def test_create_list_get_update_stats_delete(grpc_env: GrpcEnv) -> None:
    result = run(
        grpc_env,
        "create",
        "m0",
        "--socket",
        "ctl.sock",
        "--id",
        "4",
        "--queues",
        "2",
        "--action",
        "echo",
        "--secret",
        "pssst",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"created m0 (server id 4 on {grpc_env.socket_path('ctl.sock')})"
    )
    status = grpc_env.manager.get_interface("m0")
    assert (status.id, status.memory.num_queue_pairs, status.action, status.has_secret) == (
        4,
        2,
        "echo",
        True,
    )

    result = run(grpc_env, "list")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "ROLE",
        "ID",
        "STATE",
        "ADMIN",
        "MODE",
        "QUEUES",
        "RX",
        "TX",
        "REASON",
    ]
    assert row.split() == [
        "m0",
        "server",
        "4",
        "disconnected",
        "up",
        "ethernet",
        "2",
        "0",
        "0",
        "-",
    ]

    listed = json.loads(run(grpc_env, "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["m0"]
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
    result = run(
        grpc_env,
        "create",
        "g0",
        "--socket",
        "@ctl-peers",
        "--allow-uid",
        "1000",
        "--allow-uid",
        "1001",
        "--allow-gid",
        "2000",
    )
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
    spec.write_text("name: f0\nsocket: file.sock\nrole: master\nmemory:\n  log2_ring_size: 8\n")
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


def test_create_from_file_is_all_or_nothing_and_names_the_entry(
    grpc_env: GrpcEnv, tmp_path: Path
) -> None:
    grpc_env.create("taken", socket="other.sock")
    spec = tmp_path / "three.yaml"
    cases = {
        "- name: f1\n- name: f2\n  memory: {log2_ring_size: 15}\n- name: f3\n": (
            f"error: {spec} entry 2 (f2): invalid spec: memory.log2_ring_size: "
            "Input should be less than or equal to 14"
        ),
        "- name: f1\n- name: f2\n  id: 1\n- name: taken\n  id: 2\n": (
            f"error: {spec} entry 3 (taken): ALREADY_EXISTS: interface 'taken' already exists"
        ),
        "- name: f1\n- name: f2\n  id: 1\n  action: xconnect\n  xconnect_to: ghost\n": (
            f"error: {spec} entry 2 (f2): INVALID_ARGUMENT: spec.xconnect_to: "
            "interface 'ghost' does not exist"
        ),
        "- name: f1\n- name: f2\n  socket: memif.sock\n": (
            f"error: {spec} entry 2 (f2): socket 'memif.sock', role server and id 0 already "
            f"used by {spec} entry 1 (f1)"
        ),
        "- name: f1\n- name: f1\n  id: 1\n": (
            f"error: {spec} entry 2 (f1): name 'f1' already used by {spec} entry 1 (f1)"
        ),
    }
    for text, message in cases.items():
        spec.write_text(text)
        result = run(grpc_env, "create", "-f", str(spec))
        assert (result.exit_code, result.stderr.strip()) == (1, message), text
        assert [s.name for s in grpc_env.manager.list_interfaces()] == ["taken"], text

    # one socket spelt two ways: each entry passes its dry run alone, the second create fails
    spec.write_text("- {name: f1, socket: a.sock}\n- {name: f2, socket: ./a.sock}\n")
    result = run(grpc_env, "create", "-f", str(spec))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {spec} entry 2 (f2): ALREADY_EXISTS: a server interface with id 0 already "
        f"exists on {grpc_env.socket_path('a.sock')} ('f1')",
        "error: nothing created: deleted f1 again",
    ]
    assert [s.name for s in grpc_env.manager.list_interfaces()] == ["taken"]


def test_create_from_file_cross_connects_entries_of_the_file(
    grpc_env: GrpcEnv, tmp_path: Path
) -> None:
    spec = tmp_path / "pair.yaml"
    spec.write_text(
        "interfaces:\n"
        "  - {name: west, action: xconnect, xconnect_to: east}\n"
        "  - {name: east, id: 1, action: xconnect, xconnect_to: west}\n"
    )
    result = run(grpc_env, "create", "-f", str(spec))
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["created", "west"],
        ["created", "east"],
    ]
    targets = {s.name: (s.action, s.xconnect_to) for s in grpc_env.manager.list_interfaces()}
    assert targets == {"west": ("xconnect", "east"), "east": ("xconnect", "west")}


@pytest.mark.parametrize(
    "given, role",
    [
        ("master", "server"),
        ("slave", "client"),
        ("Client", "client"),
        ("server", "server"),
    ],
)
def test_create_takes_every_role_name_rest_and_yaml_take(
    grpc_env: GrpcEnv, given: str, role: str
) -> None:
    result = run(grpc_env, "create", "r0", "--role", given, "--socket", "roles.sock")
    assert result.exit_code == 0, result.output
    assert grpc_env.manager.get_interface("r0").role == role


@pytest.mark.parametrize(
    "args, message",
    [
        (["delete", "ghost"], "error: NOT_FOUND: interface 'ghost' not found"),
        (["stats", "ghost"], "error: NOT_FOUND: interface 'ghost' not found"),
        (
            ["create", "x", "--log2-ring-size", "15"],
            "error: invalid spec: memory.log2_ring_size: Input should be less than or equal to 14",
        ),
        (["create"], "error: give the interface NAME (or a name in --file)"),
        (
            ["create", "x", "--file", "/nonexistent.yaml"],
            "error: --file: cannot read /nonexistent.yaml: No such file or directory",
        ),
        (
            ["create", "x", "--action", "xconnect", "--xconnect-to", "ghost"],
            "error: INVALID_ARGUMENT: spec.xconnect_to: interface 'ghost' does not exist",
        ),
        (
            ["capture", "ghost", "-w", "/tmp/never.pcap"],
            "error: NOT_FOUND: interface 'ghost' not found",
        ),
    ],
)
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
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.splitlines()


def _memifctl(
    env: GrpcEnv, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed ``memifctl`` entry point, as a user runs it."""
    command = shutil.which("memifctl") or f"{sys.executable} -m memifd.cli.ctl"
    return subprocess.run(
        [*shlex.split(command), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
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
    result = _memifctl(
        grpc_env,
        "capture",
        "srv",
        "-w",
        str(out),
        "--count",
        "1000",
        "--direction",
        "rx",
        "--snaplen",
        "60",
    )
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


def test_capture_of_a_queue_the_interface_lacks_fails_before_writing(
    grpc_env: GrpcEnv, tmp_path: Path
) -> None:
    grpc_env.create("q")
    out = tmp_path / "q.pcap"
    result = run(grpc_env, "capture", "q", "-w", str(out), "--queue", "3", "--duration", "1")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: INVALID_ARGUMENT: queue 3 is outside 0..0 (interface 'q')"
    )
    assert not out.exists()


def test_events_of_an_unknown_interface_fail_at_once(grpc_env: GrpcEnv) -> None:
    result = _memifctl(grpc_env, "events", "ghost", timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: NOT_FOUND: interface 'ghost' not found"


def test_json_is_the_rest_apis_and_events_are_too(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir).start()
    addr = f"127.0.0.1:{daemon.grpc_port}"
    try:
        peers = memif_clients(str(sock_dir / "j.sock"), [0], secret="s")
        with daemon.client() as api, peers as (peer,):
            for body in (
                {"name": "zeta", "socket": "j.sock", "action": "echo", "secret": "s"},
                {
                    "name": "alpha",
                    "socket": "@json-test",
                    "role": "client",
                    "id": 7,
                    "memory": {"num_queue_pairs": 2},
                    "admin_up": False,
                },
                {
                    "name": "mid",
                    "socket": "j.sock",
                    "id": 1,
                    "action": "xconnect",
                    "xconnect_to": "zeta",
                    "rx_mode": "polling",
                },
            ):
                assert api.post("/v1/interfaces", json=body).status_code == 201
            assert peer.wait_connected(5)
            peer.tx_queue(0).send_burst([b"\x02" * 60] * 5)
            assert wait_for(lambda: api.get("/v1/interfaces/zeta/stats").json()["forwarded"] == 5)
            rest = api.get("/v1/interfaces").json()
            assert json.loads(run(None, "--addr", addr, "list", "--json").stdout) == rest
            for name in ("zeta", "alpha", "mid"):
                got = json.loads(run(None, "--addr", addr, "get", name).stdout)
                assert got == api.get(f"/v1/interfaces/{name}").json()
                stats = json.loads(run(None, "--addr", addr, "stats", name, "--json").stdout)
                assert stats == api.get(f"/v1/interfaces/{name}/stats").json()
            table = run(None, "--addr", addr, "list").stdout.splitlines()
            assert [line.split()[3] for line in table[1:]] == [s["state"] for s in rest]
            assert [line.split()[4:7] for line in table[1:]] == [
                ["up", "ethernet", "1"],
                ["down", "ethernet", "2"],
                ["up", "ethernet", "1"],
            ]

            with api.stream("GET", "/v1/events?interface=zeta") as stream:
                watcher = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "memifd.cli.ctl",
                        "--addr",
                        addr,
                        "events",
                        "zeta",
                        "--count",
                        "1",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert wait_for(
                    lambda: 'memifd_subscriptions{kind="events"} 2.0' in api.get("/metrics").text
                )
                peer.socket.close()
                line = next(line for line in stream.iter_lines() if line.startswith("data: "))
            printed, _ = watcher.communicate(timeout=20)
        event = json.loads(line[6:])
        assert event["state"] == "disconnected" and event["peer"]["pid"] == os.getpid()
        assert [json.loads(printed)] == [event]
    finally:
        daemon.kill()


def test_version_of_memifctl_and_memifd() -> None:
    assert run(None, "--version").stdout == f"memifctl {memifd.__version__}\n"
    served = subprocess.run(
        [sys.executable, "-m", "memifd", "--version"], capture_output=True, text=True, timeout=30
    )
    assert served.stdout == f"memifd {memifd.__version__}\n"


def test_output_formats_and_describe(grpc_env: GrpcEnv) -> None:
    grpc_env.create("o1", socket="out.sock", secret="s", memory=pb.MemoryConfig(num_queue_pairs=2))
    with memif_clients(grpc_env.socket_path("out.sock"), [0], secret="s") as (peer,):
        assert peer.wait_connected(5)
        wait_connected(grpc_env, "o1")
        as_json = json.loads(run(grpc_env, "list", "-o", "json").stdout)
        assert yaml.safe_load(run(grpc_env, "list", "-o", "yaml").stdout) == as_json
        assert json.loads(run(grpc_env, "list", "--json").stdout) == as_json
        header, row = run(grpc_env, "list", "-o", "wide").stdout.splitlines()
        assert header.split() == [
            "NAME",
            "ROLE",
            "ID",
            "STATE",
            "ADMIN",
            "MODE",
            "QUEUES",
            "RX",
            "TX",
            "SOCKET",
            "PEER",
            "RX_MODE",
            "ACTION",
            "XCONNECT_TO",
            "SECRET",
            "REASON",
        ]
        assert row.split() == [
            "o1",
            "server",
            "0",
            "connected",
            "up",
            "ethernet",
            "2",
            "0",
            "0",
            grpc_env.socket_path("out.sock"),
            "memif-python/py0",
            "pid",
            str(os.getpid()),
            "interrupt",
            "drop",
            "-",
            "yes",
            "-",
        ]
        assert yaml.safe_load(run(grpc_env, "get", "o1", "-o", "yaml").stdout) == as_json[0]
        stats = json.loads(run(grpc_env, "stats", "o1", "-o", "json").stdout)
        assert yaml.safe_load(run(grpc_env, "stats", "o1", "-o", "yaml").stdout) == stats
        described = run(grpc_env, "describe", "o1").stdout.splitlines()
    assert wait_for(lambda: grpc_env.manager.get_interface("o1").disconnect_reason != "")
    reason = grpc_env.manager.get_interface("o1").disconnect_reason
    header, row = run(grpc_env, "list").stdout.splitlines()
    assert row.split()[:4] == ["o1", "server", "0", "disconnected"]
    assert row[header.index("REASON") :] == reason  # the last column, spaces and all
    assert described[:8] == [
        "Name:            o1",
        "Role:            server, id 0, mode ethernet",
        f"Socket:          {grpc_env.socket_path('out.sock')} (given as out.sock)",
        "State:           connected",
        "Reason:          -",
        "Peer:            interface 'py0' of 'memif-python'",
        f"Peer process:    pid {os.getpid()}, uid {os.getuid()}, gid {os.getgid()}",
        "Memory:          2 queue pair(s), 1024 descriptors per ring, 2048-byte buffers",
    ]
    # the peer asked for one queue pair: that is what was negotiated
    assert described[8] == (
        "Negotiated:      1 queue pair(s), 1024 descriptors per ring, 2048-byte buffers"
    )
    assert re.fullmatch(r"Regions: +0: \d+ bytes, 1: 4194304 bytes", described[9])
    assert described[10] == "  RING  QUEUE  SIZE  HEAD  TAIL  REGION  OFFSET"
    rings = [line.split() for line in described[11:13]]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rings] == [
        ("rx", "0", "1024", "0", "0"),
        ("tx", "0", "1024", "1024", "0"),
    ]
    assert "rx 1" in "\n".join(described) and "Secret:          set" in described
    contradiction = run(grpc_env, "list", "--json", "-o", "yaml")
    assert (contradiction.exit_code, contradiction.stderr.strip()) == (
        1,
        "error: --json and -o yaml contradict each other",
    )


def test_update_with_nothing_to_change_is_an_error(grpc_env: GrpcEnv) -> None:
    grpc_env.create("u1")
    result = run(grpc_env, "update", "u1")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: nothing to change: give --rx-mode, --action, --xconnect-to or "
        "--admin-up/--admin-down"
    )


@pytest.mark.parametrize(
    "given, target, tls",
    [
        ("127.0.0.1:50051", "127.0.0.1:50051", False),
        ("memifd.example", "memifd.example:50051", False),
        ("http://127.0.0.1:9000/", "127.0.0.1:9000", False),
        ("https://memifd.example", "memifd.example:50051", True),
        ("[::1]", "[::1]:50051", False),
        ("::1", "[::1]:50051", False),
        ("https://[fe80::1]:443", "[fe80::1]:443", True),
    ],
)
def test_addr_takes_urls_and_defaults_the_port(given: str, target: str, tls: bool) -> None:
    assert parse_addr(given) == (target, tls)


@pytest.mark.parametrize(
    "given, problem",
    [
        ("ftp://host", "the scheme must be http:// or https://, not ftp://"),
        ("http://host/v1", "nothing but host[:port] may follow the scheme"),
        ("host:http", "port 'http' is not a number in 1..65535"),
    ],
)
def test_addr_refuses_what_it_cannot_use(given: str, problem: str) -> None:
    result = run(None, "--addr", given, "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: --addr: {given!r}: {problem}"


def test_addr_as_url_reaches_memifd(grpc_env: GrpcEnv) -> None:
    grpc_env.create("url0")
    result = run(None, "--addr", f"http://{grpc_env.address}/", "list")
    assert result.exit_code == 0 and "url0" in result.stdout


def test_https_addr_uses_tls(sock_dir: Path, tls_files: tuple[Path, Path]) -> None:
    env = start_env(sock_dir, tls=tls_files)
    try:
        addr = f"https://localhost:{env.handle.port}"
        result = run(None, "--addr", addr, "--tls-ca", str(tls_files[0]), "create", "s0")
        assert result.exit_code == 0, result.output
        # without --tls-ca the system's CAs do not know the test's self-signed certificate
        refused = run(None, "--addr", addr, "--timeout", "3", "list")
        assert refused.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    finally:
        env.close()


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


def _completions(env: GrpcEnv, tmp_path: Path, line: str, **environment: str) -> list[str]:
    """What bash offers after ``line`` (the words typed so far, the last maybe partial),
    through the script ``memifctl --show-completion`` prints."""
    wrapper = tmp_path / "bin" / "memifctl"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m memifd.cli.ctl "$@"\n')
    wrapper.chmod(0o755)
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = (
        "source <(memifctl --show-completion) || exit 9\n"
        f"COMP_WORDS=({shlex.join(words)}); COMP_CWORD={len(words) - 1}\n"
        '_memifctl_completion memifctl; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": f"{wrapper.parent}:{os.environ['PATH']}",
            "MEMIFD_GRPC_ADDR": env.address,
            **environment,
        },
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [word for word in done.stdout.splitlines() if word]


def test_shell_completion_of_commands_and_interface_names(
    grpc_env: GrpcEnv, tmp_path: Path
) -> None:
    for name in ("alpha", "beta", "alps"):
        grpc_env.create(name, socket=f"{name}.sock")
    assert _completions(grpc_env, tmp_path, "memifctl de") == ["describe", "delete"]
    assert _completions(grpc_env, tmp_path, "memifctl get ") == ["alpha", "beta", "alps"]
    assert _completions(grpc_env, tmp_path, "memifctl describe al") == ["alpha", "alps"]
    assert _completions(grpc_env, tmp_path, "memifctl update beta --xconnect-to a") == [
        "alpha",
        "alps",
    ]
    assert _completions(grpc_env, tmp_path, "memifctl create ") == []  # a new name
    # --addr on the line wins over the environment; no memifd there: nothing, silently
    assert _completions(grpc_env, tmp_path, "memifctl --addr 127.0.0.1:1 get ") == []
    assert _completions(
        grpc_env, tmp_path, f"memifctl --addr {grpc_env.address} stats b", MEMIFD_GRPC_ADDR="x:1"
    ) == ["beta"]


def test_shell_completion_with_a_token(secured: GrpcEnv, tmp_path: Path) -> None:
    secured.create("t0")
    assert _completions(secured, tmp_path, "memifctl delete ") == []  # refused: nothing
    assert _completions(secured, tmp_path, "memifctl delete ", MEMIFD_TOKEN=TOKEN) == ["t0"]
    assert _completions(secured, tmp_path, f"memifctl --token {TOKEN} delete ") == ["t0"]


def test_help_shows_names_not_types() -> None:
    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"list", "get", "describe", "create", "update", "delete", "events"} <= set(commands)
    for args in ([], *([command] for command in commands)):
        result = run(None, *args, "--help", COLUMNS="200")
        assert result.exit_code == 0, (args, result.output)
        text = result.stdout
        for odd in ("<bool>", "<int>", "<float", "<path>", "<list", "default: None"):
            assert odd not in text, (args, odd)
        lines = text.splitlines()
        assert all("NAME" in line for line in lines if "<str>" in line), args
    create = run(None, "create", "--help", COLUMNS="200").stdout
    for option, metavar in (
        ("--file", "FILE"),
        ("--socket", "PATH"),
        ("--queues", "N"),
        ("--buffer-size", "BYTES"),
        ("--allow-uid", "UID"),
        ("--xconnect-to", "NAME"),
    ):
        assert re.search(rf"{option}\b.*\s{metavar}\s", create), option
    assert re.search(r"--timeout\s+SECONDS\b", run(None, "--help", COLUMNS="200").stdout)
    assert "Usage: memifctl describe [OPTIONS] {NAME}" in run(None, "describe", "--help").stdout


class _Watcher:
    """``memifctl ARGS`` running in a subprocess, its output read line by line."""

    def __init__(self, env: GrpcEnv, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memifd.cli.ctl", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MEMIFD_GRPC_ADDR": env.address},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._last: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 15.0) -> list[str]:
        """The next line printed, split into its cells."""
        line = self._lines.get(timeout=timeout)
        assert line is not None, "memifctl ended"
        return line.split()

    def row(self, timeout: float = 15.0) -> list[str]:
        """The next row that tells something new: the handshake (``connecting``) may or may
        not be seen, and a row may repeat when a reason arrives after its state (NAME to ADMIN
        the same)."""
        while True:
            cells = self.line(timeout)
            if cells[3] != "connecting" and cells[:5] != self._last[:5]:
                self._last = cells
                return cells

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit status and stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_list_watch_prints_a_row_per_change_until_ctrl_c(grpc_env: GrpcEnv) -> None:
    grpc_env.create("w0", socket="watch.sock")
    watcher = _Watcher(grpc_env, "list", "--watch")
    try:
        assert watcher.line()[:5] == ["NAME", "ROLE", "ID", "STATE", "ADMIN"]
        assert watcher.row()[:4] == ["w0", "server", "0", "disconnected"]
        grpc_env.create("w1", socket="watch.sock", id=1)  # no link event: seen by a re-read
        assert watcher.row()[:4] == ["w1", "server", "1", "disconnected"]
        with memif_clients(grpc_env.socket_path("watch.sock"), [0]) as (peer,):
            assert peer.wait_connected(5)
            assert watcher.row()[:4] == ["w0", "server", "0", "connected"]
        assert watcher.row()[:4] == ["w0", "server", "0", "disconnected"]
        grpc_env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="w1"))
        assert watcher.row()[:4] == ["w1", "server", "1", "deleted"]
        code, stderr = watcher.stop()
    finally:
        watcher.kill()
    assert code in (0, 130) and "Traceback" not in stderr, stderr
    assert stderr == ""


def test_get_watch_follows_one_interface_until_it_is_deleted(grpc_env: GrpcEnv) -> None:
    grpc_env.create("g0", socket="gw.sock")
    grpc_env.create("other", socket="gw.sock", id=1)
    watcher = _Watcher(grpc_env, "get", "g0", "--watch", "-o", "wide")
    try:
        assert "SOCKET" in watcher.line()
        assert watcher.row()[:4] == ["g0", "server", "0", "disconnected"]
        grpc_env.stub.UpdateInterface(
            pb.UpdateInterfaceRequest(name="other", patch=pb.InterfacePatch(admin_up=False))
        )
        grpc_env.stub.UpdateInterface(
            pb.UpdateInterfaceRequest(name="g0", patch=pb.InterfacePatch(admin_up=False))
        )
        assert watcher.row()[:5] == ["g0", "server", "0", "disconnected", "down"]  # not other
        grpc_env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="g0"))
        assert watcher.row()[:4] == ["g0", "server", "0", "deleted"]
        assert watcher.process.wait(timeout=15) == 0
    finally:
        watcher.kill()


@pytest.mark.parametrize(
    "args, message",
    [
        (["get", "ghost", "--watch"], "error: NOT_FOUND: interface 'ghost' not found"),
        (
            ["list", "--watch", "-o", "json"],
            "error: --watch prints a table (-o table or wide), not json; 'memifctl events' prints "
            "link events as JSON",
        ),
    ],
)
def test_watch_refusals(grpc_env: GrpcEnv, args: list[str], message: str) -> None:
    result = run(grpc_env, *args)
    assert (result.exit_code, result.stderr.strip(), result.stdout) == (1, message, "")


def test_readme_table_and_watch_output_is_memifctls(grpc_env: GrpcEnv) -> None:
    """The README's sample output, from the same steps (its socket path and pid aside)."""
    tables = block_after("`memifctl list -o wide` print", "text")
    watched = block_after("`memifctl list --watch`, left running", "text")
    grpc_env.create("memif0", socket="memif.sock", action=pb.ACTION_ECHO)
    watcher = _Watcher(grpc_env, "list", "--watch")
    try:
        printed = [watcher.line(), watcher.line()]
        with memif_clients(grpc_env.socket_path("memif.sock"), [0]) as (peer,):
            assert peer.wait_connected(5)
            printed.append(watcher.row())
            listed = "\n".join(run(grpc_env, "list", *wide).stdout for wide in ([], ["-o", "wide"]))
        printed.append(watcher.row())
        grpc_env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="memif0"))
        printed.append(watcher.row())
        assert watcher.stop()[0] == 0
    finally:
        watcher.kill()

    def cells(text: str) -> list[list[str]]:
        text = text.replace("/run/memif/memif.sock", grpc_env.socket_path("memif.sock"))
        return [
            line.split() for line in text.replace("pid 28334", f"pid {os.getpid()}").splitlines()
        ]

    assert cells(listed) == cells(tables)
    assert printed == cells(watched)
