"""The rules of the request guard: which Host values pass, which body each route takes,
what an interface costs, how request bodies share ``http_body_memory``; the guard itself
runs against real uvicorn in ``tests/reliability/test_service_limits.py``,
``test_service_hostile_input.py`` and ``test_service_uploads.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from memif.config import MemoryConfig
from memifd.api.rest.guard import (
    DEFAULT_BODY_MEMORY,
    JSON,
    MAX_INJECT_BYTES,
    HostCheck,
    RequestGuard,
    needs_token,
    rule_for,
)
from memifd.core import pcap
from memifd.core.limits import interface_fds, interface_memory
from memifd.core.settings import Settings
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send


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


# -- the shared body budget (http_body_memory) ------------------------------------------------


def upload_scope(length: int | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", pcap.MEDIA_TYPE.encode())]
    if length is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/interfaces/x/packets",
        "root_path": "",
        "headers": headers,
    }


class Upload:
    """One request through the guard to an app that reads the body, then waits for ``done``."""

    def __init__(self, guard: RequestGuard, chunks: list[bytes], declared: bool = True) -> None:
        self.guard = guard
        self.chunks = chunks
        self.length = sum(map(len, chunks)) if declared else None
        self.read = asyncio.Event()
        self.done = asyncio.Event()
        self.sent: list[Message] = []

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        self.read.set()
        await self.done.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run(self) -> None:
        messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(self.chunks) - 1}
            for i, chunk in enumerate(self.chunks)
        ]

        async def receive() -> Message:
            return messages.pop(0)

        async def send(message: Message) -> None:
            self.sent.append(message)

        self.guard.app = self.app
        await self.guard(upload_scope(self.length), receive, send)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.sent[0]["headers"]).get(name)


def guard_with(body_memory: int) -> RequestGuard:
    return RequestGuard(
        None,  # type: ignore[arg-type]  # each Upload puts in its app
        token=None,
        allowed_hosts=[],
        body_timeout=5.0,
        body_memory=body_memory,
    )


def test_bodies_in_flight_share_the_budget() -> None:
    asyncio.run(_bodies_in_flight_share_the_budget())


async def _bodies_in_flight_share_the_budget() -> None:
    guard = guard_with(1000)
    first = Upload(guard, [b"a" * 600])
    running = asyncio.create_task(first.run())
    await asyncio.wait_for(first.read.wait(), 5)
    assert guard.bodies.used == 600

    second = Upload(guard, [b"b" * 600])
    await second.run()
    assert second.status == 503 and second.header(b"retry-after") == b"1"
    detail = json.loads(second.sent[1]["body"])["detail"]
    assert detail.startswith("http_body_memory: a request body of 600 bytes does not fit")
    assert "600 of 1000 bytes" in detail

    first.done.set()
    await asyncio.wait_for(running, 5)
    assert first.status == 200 and guard.bodies.used == 0
    third = Upload(guard, [b"c" * 1000])
    third.done.set()
    await third.run()
    assert third.status == 200 and guard.bodies.used == 0


def test_a_chunked_body_is_held_as_it_arrives() -> None:
    asyncio.run(_a_chunked_body_is_held_as_it_arrives())


async def _a_chunked_body_is_held_as_it_arrives() -> None:
    guard = guard_with(1000)
    first = Upload(guard, [b"a" * 500])
    running = asyncio.create_task(first.run())
    await asyncio.wait_for(first.read.wait(), 5)
    chunked = Upload(guard, [b"b" * 300, b"b" * 300], declared=False)
    with pytest.raises(HTTPException) as refused:
        await chunked.run()
    assert refused.value.status_code == 503
    assert "http_body_memory" in refused.value.detail
    assert guard.bodies.used == 500  # what the refused body held is back
    first.done.set()
    await asyncio.wait_for(running, 5)
    assert guard.bodies.used == 0


def test_body_memory_setting() -> None:
    assert Settings().http_body_memory == DEFAULT_BODY_MEMORY == 128 << 20
    assert Settings(http_body_memory="256MiB").http_body_memory == 256 << 20
    with pytest.raises(ValueError, match="http_body_memory"):
        Settings(http_body_memory=MAX_INJECT_BYTES - 1)  # one pcap file of the largest size fits
