"""The README's claims, executed: set-up commands and the echo example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import memif

README = Path(__file__).resolve().parent.parent / "README.md"


def _echo_example() -> str:
    text = README.read_text()
    section = text.split("## The library in 15 lines", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "echo example missing"
    return match.group(1)


def test_readme_opens_with_two_setup_commands() -> None:
    block = re.search(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_echo_example_is_short_and_echoes(sock_dir: Path) -> None:
    code = _echo_example()
    assert len(code.strip().splitlines()) <= 20
    path = str(sock_dir / "app.sock")
    script = code.replace("/run/memif/app.sock", path)
    with memif.Socket(path) as sock:
        server = sock.create_interface(id=0, role="server", name="tester")
        sock.start()
        proc = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert server.wait_connected(10), server.disconnect_reason
            sent = [os.urandom(60 + i) for i in range(100)]
            deadline = time.monotonic() + 10
            # a server sends into buffers the client posts right after CONNECTED
            while server.tx_queue(0).free() < 100 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.tx_queue(0).send_burst(sent) == 100
            received: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(received) < 100 and time.monotonic() < deadline:
                received += server.rx_queue(0).recv_burst(256)
                if not received:
                    server.rx_queue(0).wait(0.1)
            assert received == sent
        finally:
            proc.kill()
            proc.wait()


def test_config_file_example_loads(tmp_path: Path) -> None:
    from memifd.models import Action
    from memifd.settings import load_settings

    section = README.read_text().split("## memifd", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "config example missing"
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    text = match.group(1).replace("/etc/memifd/token", str(token)).replace(
        "/run/memif", str(tmp_path / "sockets")
    )
    config = tmp_path / "memifd.yaml"
    config.write_text(text)
    settings = load_settings(config=config)
    assert [i.name for i in settings.interfaces] == ["vnf0", "vnf1"]
    assert settings.interfaces[1].action is Action.XCONNECT
    assert settings.token_value == "s3cret-token"
