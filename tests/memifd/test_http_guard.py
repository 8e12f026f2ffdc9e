"""The rules of the request guard: which Host values pass, which body each route takes,
what an interface costs; the guard itself runs against real uvicorn in
``tests/reliability/test_service_limits.py`` and ``test_service_hostile_input.py``."""

from __future__ import annotations

import pytest
from memif.config import MemoryConfig
from memifd.api.rest.guard import JSON, MAX_INJECT_BYTES, HostCheck, needs_token, rule_for
from memifd.core import pcap
from memifd.core.limits import interface_fds, interface_memory
from memifd.core.settings import Settings


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("127.1.2.3", True),
        ("[::1]:8080", True),
        ("10.0.0.7:80", True),
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("app.localhost:8080", True),
        ("localhost.", True),
        ("memifd.internal", True),
        ("x.pods.example", True),
        ("evil.example", False),
        ("pods.example", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example", False),
        ("memifd.internal:abc", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_host_check(host: str, allowed: bool) -> None:
    check = HostCheck(["memifd.internal", "*.pods.example"])
    assert check.allows(host) is allowed


def test_any_host() -> None:
    assert HostCheck(["*"]).allows("evil.example")


def test_body_rules() -> None:
    assert rule_for("POST", "/v1/interfaces").media_type == JSON
    assert rule_for("PATCH", "/v1/interfaces/a").media_type == JSON
    inject = rule_for("POST", "/v1/interfaces/a/packets")
    assert (inject.media_type, inject.max_bytes) == (pcap.MEDIA_TYPE, MAX_INJECT_BYTES)
    assert rule_for("DELETE", "/v1/interfaces/a").media_type is None
    assert rule_for("GET", "/healthz").max_bytes == 4096
    assert needs_token("/v1/interfaces") and needs_token("/metrics")
    assert not needs_token("/healthz") and not needs_token("/") and not needs_token("/v1x")


def test_allowed_hosts_setting() -> None:
    settings = Settings(allowed_hosts="A.example, *.b.example")
    assert settings.allowed_hosts == ["a.example", "*.b.example"]
    with pytest.raises(ValueError, match="not a host name"):
        Settings(allowed_hosts=["bad host"])


def test_costs_of_an_interface() -> None:
    default = MemoryConfig()
    assert interface_fds(default) == 6
    assert interface_fds(MemoryConfig(num_queue_pairs=255)) == 768
    # 2 rings of 1024 descriptors and their 2 x 1024 buffers of 2048 bytes
    assert interface_memory(default) == 2 * (128 + 16 * 1024) + 2 * 1024 * 2048
