"""The commands of the README's "Captures" section, run against `memifd serve` with
Python memif peers: curl and tshark, and the Wireshark set-up in a home of its own.

The commands are the README's, character for character; only the addresses are the
test daemon's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.memifd.rest_support import Daemon, frame, memif_clients

README = Path(__file__).resolve().parents[2] / "README.md"
HTTP = "127.0.0.1:8080"
GRPC = "127.0.0.1:50051"

CAPTURE_TWO = (
    "curl -s -o capture.pcapng "
    "'http://127.0.0.1:8080/v1/capture?interface=vnf0&interface=vnf1&duration=10'"
)
LIST_TWO = (
    "tshark -r capture.pcapng -T fields -e frame.interface_name -e frame.packet_flags_direction "
    "\\\n  -e frame.time_epoch"
)
CAPINFOS = "capinfos -I capture.pcapng | grep -E 'Name|Description|Encapsulation|precision'"
CAPTURE_ONE = (
    "curl -s -o vnf0.pcapng "
    "'http://127.0.0.1:8080/v1/interfaces/vnf0/capture?count=200000&format=pcapng'"
)
DROPS = (
    "tshark -r vnf0.pcapng -Y frame.drop_count -T fields -e frame.number -e frame.drop_count "
    "-e frame.comment"
)
INSTALL = """mkdir -p ~/.local/lib/wireshark/extcap   # Wireshark 4.1 and later
ln -s "$(command -v memifd-extcap)" ~/.local/lib/wireshark/extcap/
mkdir -p ~/.config/wireshark/extcap      # Wireshark 4.0 and earlier
ln -s "$(command -v memifd-extcap)" ~/.config/wireshark/extcap/"""
LIST_INTERFACES = "tshark -D | grep memif"
CAPTURE_TSHARK = "tshark -i memif-vnf0 -c 10 -w vnf0.pcapng"


def section() -> str:
    return README.read_text().split("### Captures", 1)[1].split("\n## ", 1)[0]


def test_commands_are_the_readmes() -> None:
    text = section()
    for command in (CAPTURE_TWO, LIST_TWO, CAPINFOS, CAPTURE_ONE, DROPS, INSTALL):
        assert command in text, f"README's Captures section lacks:\n{command}"
    for command in (LIST_INTERFACES, CAPTURE_TSHARK):
        assert f"$ {command}\n" in text


@pytest.fixture
def daemon(sock_dir: Path) -> Iterator[Daemon]:
    proc = Daemon(sock_dir, args=["--log-level", "warning"]).start()
    try:
        api = proc.client()
        for name, action in (("vnf0", "echo"), ("vnf1", "drop")):
            body = {"name": name, "socket": f"{name}.sock", "action": action}
            assert api.post("/v1/interfaces", json=body).status_code == 201
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def traffic(daemon: Daemon) -> Iterator[None]:
    """Peers on vnf0 (echoed) and vnf1 sending a few frames every 20 ms."""
    stop = threading.Event()
    sockets = daemon.socket_dir
    with (
        memif_clients(str(sockets / "vnf0.sock"), [0]) as (vnf0,),
        memif_clients(str(sockets / "vnf1.sock"), [0]) as (vnf1,),
    ):
        assert vnf0.wait_connected(5) and vnf1.wait_connected(5)

        def pump() -> None:
            seq = 0
            while not stop.is_set():
                vnf0.tx_queue(0).send_burst([frame(seq + k) for k in range(3)])
                vnf0.rx_queue(0).recv_burst(256)
                vnf1.tx_queue(0).send(frame(seq))
                seq += 3
                stop.wait(0.02)  # paced: a few frames every 20 ms

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)


def sh(command: str, cwd: Path, daemon: Daemon, env: dict[str, str] | None = None) -> str:
    command = command.replace(HTTP, f"127.0.0.1:{daemon.http_port}")
    command = command.replace("duration=10", "duration=1")  # the same, sooner
    command = command.replace("count=200000", "count=300")
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=120,
        check=True, env=env,
    )  # fmt: skip
    return done.stdout


@pytest.mark.usefixtures("traffic")
def test_curl_and_tshark_examples(daemon: Daemon, tmp_path: Path) -> None:
    sh(CAPTURE_TWO, tmp_path, daemon)
    rows = [line.split("\t") for line in sh(LIST_TWO, tmp_path, daemon).splitlines()]
    assert {row[0] for row in rows} == {"vnf0", "vnf1"}
    assert {row[1] for row in rows if row[0] == "vnf0"} == {"0x00000001", "0x00000002"}
    assert {row[1] for row in rows if row[0] == "vnf1"} == {"0x00000001"}
    assert all(re.fullmatch(r"\d{10}\.\d{9}", row[2]) for row in rows)
    info = sh(CAPINFOS, tmp_path, daemon).splitlines()
    assert [line.strip() for line in info if "Name =" in line] == ["Name = vnf0", "Name = vnf1"]
    assert info[1].strip().startswith("Description = memif vnf0: server id 0, ethernet mode")
    sh(CAPTURE_ONE, tmp_path, daemon)
    gaps = sh(DROPS, tmp_path, daemon).splitlines()  # curl keeps up: no gap to show
    assert all(re.fullmatch(r"\d+\t(\d+)\t\1 packets of vnf0 dropped .*", g) for g in gaps)


@pytest.mark.usefixtures("traffic")
def test_wireshark_set_up(daemon: Daemon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMIFD_")}
    env.update(HOME=str(home), MEMIFD_GRPC_ADDR=f"127.0.0.1:{daemon.grpc_port}")
    if not shutil.which("memifd-extcap"):  # not installed here: the same entry point
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        script = bin_dir / "memifd-extcap"
        script.write_text(f'#!/bin/sh\nexec {sys.executable} -m memifd.cli.extcap "$@"\n')
        script.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    sh(INSTALL, tmp_path, daemon, env)
    assert (home / ".config/wireshark/extcap/memifd-extcap").is_symlink()
    listed = sh(LIST_INTERFACES, tmp_path, daemon, env).splitlines()
    address = f"127.0.0.1:{daemon.grpc_port}"
    assert [line.split(". ", 1)[1] for line in listed] == [
        f"memif-vnf0 (memif vnf0 (memifd {address}))",
        f"memif-vnf1 (memif vnf1 (memifd {address}))",
    ]
    done = subprocess.run(
        ["bash", "-c", CAPTURE_TSHARK], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Capturing on 'memif vnf0 (memifd {address}): memif-vnf0'" in done.stderr
    assert "10 packets captured" in done.stderr
    assert (tmp_path / "vnf0.pcapng").stat().st_size > 0
