"""The Wireshark extcap (`memifd-extcap`, `memifctl extcap`) against a real memifd core
and gRPC server, run by hand and by a real tshark; `memifctl capture` writing pcapng."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from memifd.cli.extcap import NO_FILTER
from memifd.core import pcapng
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests.memifd.grpc_support import GrpcEnv, start_env
from tests.memifd.rest_support import frame, free_port, memif_clients
from tests.memifd.test_pcapng import blocks, isb_counts, tshark_fields
from tests.memifd.test_rest_capture import nanoseconds

TOKEN = "extcap-test-token-5e1d"


@pytest.fixture
def env(sock_dir: Path) -> Iterator[GrpcEnv]:
    environment = start_env(sock_dir)
    try:
        environment.create("vnf0", socket="x.sock", action=pb.ACTION_ECHO)
        environment.create("ip0", socket="x.sock", id=1, mode=pb.MODE_IP)
        yield environment
    finally:
        environment.close()


def command() -> list[str]:
    """The installed entry point, as Wireshark runs it."""
    return shlex.split(shutil.which("memifd-extcap") or f"{sys.executable} -m memifd.cli.extcap")


def extcap(addr: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    environ.update(MEMIFD_GRPC_ADDR=addr, **extra_env)
    return subprocess.run(
        [*command(), *args], capture_output=True, text=True, timeout=60, env=environ
    )


@pytest.fixture
def echo_traffic(env: GrpcEnv) -> Iterator[None]:
    """A Python peer on vnf0 sending a few frames every 10 ms (memifd echoes them)."""
    stop = threading.Event()
    with memif_clients(env.socket_path("x.sock"), [0]) as (client,):
        assert client.wait_connected(5)

        def pump() -> None:
            for seq in itertools.count(step=4):
                if stop.is_set():
                    return
                client.tx_queue(0).send_burst([frame(seq + k) for k in range(4)])
                client.rx_queue(0).recv_burst(256)
                stop.wait(0.01)  # paced: four frames every 10 ms

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)


# -- the protocol, by hand -------------------------------------------------------------------------


def test_interfaces_dlts_and_config(env: GrpcEnv) -> None:
    listed = extcap(env.address, "--extcap-interfaces", "--extcap-version=4.0")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "extcap {version=0.1.0}{display=memifd}",
        f"interface {{value=memif-vnf0}}{{display=memif vnf0 (memifd {env.address})}}",
        f"interface {{value=memif-ip0}}{{display=memif ip0 (memifd {env.address})}}",
    ]  # in the order memifd lists them: as created
    eth = extcap(env.address, "--extcap-dlts", "--extcap-interface", "memif-vnf0")
    assert eth.stdout == "dlt {number=1}{name=EN10MB}{display=Ethernet}\n"
    raw = extcap(env.address, "--extcap-dlts", "--extcap-interface", "memif-ip0")
    assert raw.stdout == "dlt {number=101}{name=RAW}{display=Raw IPv4/IPv6}\n"
    config = extcap(env.address, "--extcap-config", "--extcap-interface", "memif-vnf0")
    lines = config.stdout.splitlines()
    assert lines[0].startswith("arg {number=0}{call=--addr}")
    assert f"{{default={env.address}}}" in lines[0]
    calls = [line.split("{call=")[1].split("}")[0] for line in lines if line.startswith("arg")]
    assert calls == ["--addr", "--token-file", "--tls-ca", "--direction", "--queue", "--snaplen"]
    assert "value {arg=3}{value=both}{display=received and sent}{default=true}" in lines
    version = extcap(env.address, "--extcap-version")
    assert version.stdout == "extcap {version=0.1.0}{display=memifd}\n"


def test_filters_are_refused_with_a_reason(env: GrpcEnv, tmp_path: Path) -> None:
    empty = extcap(env.address, "--extcap-interface", "memif-vnf0", "--extcap-capture-filter", "")
    assert (empty.returncode, empty.stdout) == (0, "")  # Wireshark reads "valid"
    bpf = extcap(env.address, "--extcap-interface", "memif-vnf0", "--extcap-capture-filter", "udp")
    assert (bpf.returncode, bpf.stdout) == (0, NO_FILTER + "\n")
    capture = extcap(
        env.address, "--capture", "--extcap-interface", "memif-vnf0",
        "--extcap-capture-filter", "udp", "--fifo", str(tmp_path / "never"),
    )  # fmt: skip
    assert capture.returncode == 1 and NO_FILTER in capture.stderr
    assert not (tmp_path / "never").exists()


def test_errors_name_the_problem(env: GrpcEnv) -> None:
    foreign = extcap(env.address, "--extcap-dlts", "--extcap-interface", "eth0")
    assert foreign.returncode == 1
    assert "'eth0' is not one of memifd's (memif-NAME)" in foreign.stderr
    nothing = extcap(env.address)
    assert nothing.returncode == 1 and "nothing to do" in nothing.stderr
    bad_queue = extcap(
        env.address, "--capture", "--extcap-interface", "memif-vnf0", "--fifo", "/dev/null",
        "--queue", "first",
    )  # fmt: skip
    assert bad_queue.returncode == 1 and "--queue 'first'" in bad_queue.stderr
    gone = extcap(
        env.address, "--capture", "--extcap-interface", "memif-ghost", "--fifo", "/dev/null"
    )
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr and "ghost" in gone.stderr
    down = extcap(f"127.0.0.1:{free_port()}", "--extcap-interfaces")
    assert down.returncode == 0 and down.stdout == "extcap {version=0.1.0}{display=memifd}\n"
    assert "no interfaces listed: UNAVAILABLE" in down.stderr


def test_token_from_file_or_environment(sock_dir: Path, tmp_path: Path) -> None:
    environment = start_env(sock_dir, token=TOKEN)
    try:
        environment.create("vnf0")
        refused = extcap(environment.address, "--extcap-interfaces")
        assert "UNAUTHENTICATED" in refused.stderr and "memif-vnf0" not in refused.stdout
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        from_file = extcap(
            environment.address, "--extcap-interfaces", "--token-file", str(token_file)
        )
        assert "interface {value=memif-vnf0}" in from_file.stdout, from_file.stderr
        from_env = extcap(environment.address, "--extcap-interfaces", MEMIFD_TOKEN=TOKEN)
        assert "interface {value=memif-vnf0}" in from_env.stdout, from_env.stderr
        missing = extcap(
            environment.address, "--extcap-interfaces", "--token-file", str(tmp_path / "no")
        )
        assert "--token-file: cannot read" in missing.stderr
    finally:
        environment.close()


def test_memifctl_extcap_passes_its_options(env: GrpcEnv) -> None:
    memifctl = shlex.split(shutil.which("memifctl") or f"{sys.executable} -m memifd.cli.ctl")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    done = subprocess.run(
        [*memifctl, "--addr", env.address, "extcap", "--extcap-interfaces"],
        capture_output=True, text=True, timeout=60, env=environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "interface {value=memif-vnf0}" in done.stdout


@pytest.mark.usefixtures("echo_traffic")
def test_capture_into_a_fifo_until_sigterm(env: GrpcEnv, tmp_path: Path) -> None:
    fifo = tmp_path / "wireshark_extcap_fifo"
    os.mkfifo(fifo)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    proc = subprocess.Popen(
        [*command(), "--capture", "--extcap-interface", "memif-vnf0", "--fifo", str(fifo),
         "--addr", env.address, "--direction", "tx"],
        stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    data = b""
    with open(fifo, "rb") as reader:
        while complete_packets(data) < 40:
            chunk = reader.read1(65536)
            assert chunk, proc.stderr.read() if proc.stderr else ""
            data += chunk
        proc.send_signal(signal.SIGTERM)
        data += reader.read()
    assert proc.wait(timeout=20) == 0
    kinds = [kind for kind, _ in blocks(data)]
    assert kinds[:2] == [pcapng.MAGIC, pcapng.BLOCK_IDB] and kinds[-1] == pcapng.BLOCK_ISB
    (closing,) = [body for kind, body in blocks(data) if kind == pcapng.BLOCK_ISB]
    assert b"capture ended: stopped by Wireshark" in closing
    delivered = kinds.count(pcapng.BLOCK_EPB)
    assert isb_counts(closing) == {pcapng.ISB_IFDROP: 0, pcapng.ISB_USRDELIV: delivered}
    path = tmp_path / "fifo.pcapng"
    path.write_bytes(data)
    directions = tshark_fields(path, ["frame.packet_flags_direction"])
    assert {row[0] for row in directions} == {"0x00000002"}  # --direction tx: outbound only


def complete_packets(data: bytes) -> int:
    """EPBs among the whole blocks at the start of ``data``."""
    count = offset = 0
    while offset + 8 <= len(data):
        kind, total = struct.unpack_from("<II", data, offset)
        if offset + total > len(data):
            break
        count += kind == pcapng.BLOCK_EPB
        offset += total
    return count


# -- Wireshark's own use ---------------------------------------------------------------------------


def wireshark_home(tmp_path: Path) -> Path:
    """A home whose personal extcap folders (Wireshark 4.0, and 4.1 and later) hold the
    entry point as the README says: a link, or a two-line script without an install."""
    home = tmp_path / "home"
    for folder in (home / ".config/wireshark/extcap", home / ".local/lib/wireshark/extcap"):
        folder.mkdir(parents=True)
        installed = shutil.which("memifd-extcap")
        if installed:
            (folder / "memifd-extcap").symlink_to(installed)
        else:
            script = folder / "memifd-extcap"
            script.write_text(f'#!/bin/sh\nexec {sys.executable} -m memifd.cli.extcap "$@"\n')
            script.chmod(0o755)
    return home


def tshark(env: GrpcEnv, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("tshark"), "tshark is not installed (Debian package tshark)"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    environ.update(HOME=str(home), MEMIFD_GRPC_ADDR=env.address)
    return subprocess.run(
        ["tshark", *args], capture_output=True, text=True, timeout=120, env=environ
    )


def test_tshark_lists_memifd_interfaces(env: GrpcEnv, tmp_path: Path) -> None:
    listed = tshark(env, wireshark_home(tmp_path), "-D")
    assert listed.returncode == 0, listed.stderr
    names = [line.split(". ", 1)[1] for line in listed.stdout.splitlines()]
    assert f"memif-vnf0 (memif vnf0 (memifd {env.address}))" in names
    assert f"memif-ip0 (memif ip0 (memifd {env.address}))" in names


@pytest.mark.usefixtures("echo_traffic")
def test_tshark_captures_from_memifd(env: GrpcEnv, tmp_path: Path) -> None:
    home = wireshark_home(tmp_path)
    out = tmp_path / "out.pcapng"
    done = tshark(env, home, "-i", "memif-vnf0", "-c", "40", "-w", str(out))
    assert done.returncode == 0, done.stderr
    rows = tshark_fields(
        out, ["frame.interface_name", "frame.packet_flags_direction", "frame.time_epoch"]
    )
    assert len(rows) == 40
    assert {row[0] for row in rows} == {"vnf0"}
    assert {row[1] for row in rows} == {"0x00000001", "0x00000002"}  # received and echoed
    stamps = [nanoseconds(row[2]) for row in rows]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    rx_only = tmp_path / "rx.pcapng"
    done = tshark(env, home, "-i", "memif-vnf0", "-o", "extcap.memif_vnf0.direction:rx",
                  "-c", "10", "-w", str(rx_only))  # fmt: skip
    assert done.returncode == 0, done.stderr
    directions = tshark_fields(rx_only, ["frame.packet_flags_direction"])
    assert [row[0] for row in directions] == ["0x00000001"] * 10


# -- memifctl capture ------------------------------------------------------------------------------


@pytest.mark.usefixtures("echo_traffic")
def test_memifctl_capture_writes_pcapng_unless_told_pcap(env: GrpcEnv, tmp_path: Path) -> None:
    memifctl = shlex.split(shutil.which("memifctl") or f"{sys.executable} -m memifd.cli.ctl")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    environ["MEMIFD_GRPC_ADDR"] = env.address
    for name, extra, magic in [
        ("a.pcapng", [], pcapng.MAGIC.to_bytes(4, "little")),
        ("b.cap", [], pcapng.MAGIC.to_bytes(4, "little")),
        ("c.pcap", [], bytes.fromhex("4d3cb2a1")),  # nanosecond pcap
        ("d.pcap", ["--format", "pcapng"], pcapng.MAGIC.to_bytes(4, "little")),
    ]:
        path = tmp_path / name
        done = subprocess.run(
            [*memifctl, "capture", "vnf0", "-w", str(path), "--count", "20", *extra],
            capture_output=True, text=True, timeout=60, env=environ,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert path.read_bytes()[:4] == magic, name
        rows = tshark_fields(path, ["frame.interface_name", "frame.packet_flags_direction"])
        assert len(rows) == 20
        if magic != bytes.fromhex("4d3cb2a1"):
            assert {row[0] for row in rows} == {"vnf0"}
            assert {row[1] for row in rows} == {"0x00000001", "0x00000002"}
            assert b"capture ended: count or duration reached" in path.read_bytes()


def test_capture_ends_with_the_reason_when_the_interface_goes(env: GrpcEnv, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    proc = subprocess.Popen(
        [*command(), "--capture", "--extcap-interface", "memif-vnf0", "--fifo", str(fifo),
         "--addr", env.address],
        stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    with open(fifo, "rb") as reader:
        data = reader.read1(65536)  # the header: the capture runs
        env.stub.DeleteInterface(pb.DeleteInterfaceRequest(name="vnf0"))
        data += reader.read()
    assert proc.wait(timeout=20) == 1
    assert proc.stderr is not None
    assert "memifd-extcap: ABORTED: interface deleted" in proc.stderr.read()
    (closing,) = [body for kind, body in blocks(data) if kind == pcapng.BLOCK_ISB]
    assert b"capture ended: ABORTED: interface deleted" in closing
