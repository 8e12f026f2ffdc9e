"""Settings: defaults, environment, YAML file, flags, and the checks on them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from memifd.core.errors import InvalidArgumentError
from memifd.core.settings import (
    Settings,
    default_socket_dir,
    is_loopback,
    load_settings,
    split_address,
)
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MEMIFD_"):
            monkeypatch.delenv(key)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings()
    assert (s.http_addr, s.grpc_addr) == ("127.0.0.1:8080", "127.0.0.1:50051")
    assert s.token_value is None and not s.insecure and not s.tls
    assert (s.log_format, s.log_level, s.access_log, s.root_path) == ("auto", "info", False, "")
    assert s.interfaces == [] and s.socket_dir == default_socket_dir()


def test_precedence_flags_env_file_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "memifd.yaml",
        "http_addr: 127.0.0.1:1001\ngrpc_addr: 127.0.0.1:1002\nlog-level: DEBUG\n"
        "root_path: /from-file\n",
    )
    monkeypatch.setenv("MEMIFD_CONFIG", str(config))
    monkeypatch.setenv("MEMIFD_GRPC_ADDR", "127.0.0.1:2002")
    monkeypatch.setenv("MEMIFD_ROOT_PATH", "/from-env")
    s = load_settings(root_path="/from-flag", http_addr=None)
    assert s.http_addr == "127.0.0.1:1001"  # file (the flag was not given)
    assert s.grpc_addr == "127.0.0.1:2002"  # env beats file
    assert s.root_path == "/from-flag"  # flag beats env
    assert s.log_level == "debug"  # file beats default; dashes and case accepted
    assert s.log_format == "auto"  # default


def test_config_flag_wins_over_env_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMIFD_CONFIG", str(write(tmp_path / "a.yaml", "root_path: /a\n")))
    s = load_settings(config=write(tmp_path / "b.yaml", "root_path: /b\n"))
    assert s.root_path == "/b"


def test_interfaces_from_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        """
socket_dir: /tmp/somewhere
socket_dirs: [/abs]
interfaces:
  - name: vnf0
    socket: vnf.sock
    role: master
    memory: {num_queue_pairs: 2, log2_ring_size: 11}
  - name: vnf1
    socket: "@abstract"
    id: 3
    action: xconnect
    xconnect_to: vnf0
""",
    )
    s = load_settings(config=config)
    assert [i.name for i in s.interfaces] == ["vnf0", "vnf1"]
    assert s.interfaces[0].role == "server" and s.interfaces[0].memory.num_queue_pairs == 2
    assert s.resolve_socket(s.interfaces[0].socket) == "/tmp/somewhere/vnf.sock"
    assert s.resolve_socket("@abstract") == "@abstract"
    assert s.resolve_socket("/abs/x.sock") == "/abs/x.sock"
    with pytest.raises(InvalidArgumentError, match=r"/elsewhere/x.sock is outside the socket dir"):
        s.resolve_socket("/elsewhere/x.sock")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interfaces:\n  - name: a\n    memory: {log2_ring_size: 15}\n", "or equal to 14"),
        ("interfaces:\n  - {name: a}\n  - {name: a, id: 1}\n", "duplicate names a"),
        (
            "socket_dir: /run/x\ninterfaces:\n  - {name: a, socket: s.sock}\n"
            "  - {name: b, role: client}\n  - {name: c, socket: /run/x/./s.sock, id: 0}\n",
            r"interfaces\[0\] \(a\) and interfaces\[2\] \(c\) both use socket /run/x/s.sock, "
            "role server and id 0",
        ),
        ("unknown_key: 1\n", "unknown_key"),
        ("- a\n- b\n", "must hold a mapping"),
        ("http_addr: [unclosed\n", "not valid YAML"),
        ("http_addr: 127.0.0.1:99999\n", "outside 0..65535"),
        ("http_addr: nohostport\n", "not host:port"),
        ("tls_cert: /x.pem\n", "tls_cert and tls_key must be given together"),
        ("log_level: loud\n", "log_level"),
        ("root_path: api\n", "must start with '/'"),
    ],
)
def test_bad_config_is_explained(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=expected):
        load_settings(config=write(tmp_path / "c.yaml", text))


def test_socket_dirs_and_peer_defaults_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMIFD_SOCKET_DIRS", "/run/vpp, /run/other/")
    monkeypatch.setenv("MEMIFD_DEFAULT_ALLOWED_UIDS", "[1000, 1001]")
    monkeypatch.setenv("MEMIFD_DEFAULT_ALLOWED_GIDS", "2000")
    s = load_settings(socket_dir=tmp_path)
    assert s.socket_dirs == [Path("/run/vpp"), Path("/run/other")]
    assert (s.default_allowed_uids, s.default_allowed_gids) == ([1000, 1001], [2000])
    assert s.allowed_socket_dirs == [str(tmp_path), "/run/vpp", "/run/other"]
    assert s.replace_stale_sockets == "own"
    monkeypatch.delenv("MEMIFD_SOCKET_DIRS")
    config = write(tmp_path / "c.yaml", "socket_dirs: [/srv/memif]\nreplace_stale_sockets: any\n")
    s = load_settings(config=config, socket_dir="relative/dir")
    assert s.socket_dirs == [Path("/srv/memif")] and s.replace_stale_sockets == "any"
    assert s.socket_dir.is_absolute() and str(s.socket_dir).endswith("/relative/dir")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("socket_dirs: [run/vpp]\n", "run/vpp is not an absolute path"),
        ("default_allowed_uids: [-1]\n", "greater than or equal to 0"),
        ("default_allowed_gids: [4294967295]\n", "less than or equal to 4294967294"),
        ("replace_stale_sockets: always\n", "'own', 'any' or 'never'"),
        (
            "socket_dir: /run/m\ninterfaces:\n  - {name: a, socket: /etc/a.sock}\n",
            "interfaces: a: socket: /etc/a.sock is outside the socket directories memifd may "
            "use (/run/m); add its directory to the socket_dirs setting",
        ),
        ("interfaces:\n  - {name: a, socket: ../a.sock}\n", "'..' is not allowed"),
    ],
)
def test_bad_socket_and_peer_settings_are_explained(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises((ValidationError, ValueError), match=re.escape(expected)):
        load_settings(config=write(tmp_path / "c.yaml", text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_settings(config=tmp_path / "absent.yaml")


def test_non_loopback_needs_token_or_insecure(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"http_addr 0\.0\.0\.0:8080 is not a loopback"):
        load_settings(http_addr="0.0.0.0:8080")
    with pytest.raises(ValidationError, match="grpc_addr"):
        load_settings(grpc_addr="[::]:50051")
    assert load_settings(http_addr="0.0.0.0:8080", insecure=True).insecure
    token = write(tmp_path / "token", "  t0ken\n")
    s = load_settings(http_addr="0.0.0.0:8080", token_file=token)
    assert s.token_value == "t0ken"
    assert "t0ken" not in repr(s) and "t0ken" not in str(s.model_dump())


def test_token_from_env_and_bad_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMIFD_TOKEN", "envtoken")
    assert load_settings().token_value == "envtoken"
    monkeypatch.delenv("MEMIFD_TOKEN")
    with pytest.raises(ValidationError, match="is empty"):
        load_settings(token_file=write(tmp_path / "t", "\n"))
    with pytest.raises(ValidationError, match="cannot read"):
        load_settings(token_file=tmp_path / "missing")


def test_address_helpers() -> None:
    assert split_address("[::1]:80") == ("::1", 80)
    assert split_address("localhost:0") == ("localhost", 0)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_settings_is_the_cli_model() -> None:
    fields = set(Settings.model_fields)
    assert {
        "socket_dir",
        "http_addr",
        "grpc_addr",
        "token_file",
        "token",
        "insecure",
        "config",
        "tls_cert",
        "tls_key",
        "root_path",
        "log_format",
        "log_level",
    } <= fields
