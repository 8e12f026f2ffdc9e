"""Checks every HTTP request passes before memifd reads its body.

A pure ASGI layer in front of the routes, in this order:

1. ``Host`` must name this machine (an IP address, ``localhost``) or a name in
   ``allowed_hosts``: a web page cannot rebind its own DNS name to memifd.
2. With a token configured, the API routes (``/v1/...``, ``/metrics``) need it,
   so an anonymous client is answered 401 before anything else.
3. A route that takes a body takes it only in its own media type (JSON, or a
   pcap file): a cross-origin page cannot send those without a CORS preflight,
   which memifd never grants.
4. ``Content-Length`` must be within the route's limit, and the body is counted
   as it arrives (chunked too), ending in 413 past the limit and in 408 when it
   takes longer than ``http_body_timeout``.
5. The bodies of all requests in flight share ``http_body_memory``: a body that
   does not fit (its ``Content-Length`` up front, a chunked one as it arrives)
   is answered 503 with ``Retry-After``, so many large uploads at once cannot
   run memifd out of memory. A body's bytes are held until its response is sent.

Requests refused before their body is read close the connection, so an unread
body is never drained.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memifd.api.rest import problems
from memifd.core import pcap
from memifd.core.budget import ByteBudget
from memifd.core.limits import HTTP_MAX_PCAP_BYTES

JSON = "application/json"
MAX_SPEC_BYTES = 64 << 10  # POST /v1/interfaces: one interface spec
MAX_PATCH_BYTES = 16 << 10  # PATCH /v1/interfaces/{name}
MAX_INJECT_BYTES = HTTP_MAX_PCAP_BYTES  # POST /v1/interfaces/{name}/packets: a pcap file
MAX_OTHER_BYTES = 4 << 10  # any other route (none reads a body)
TOKEN_PROBLEM = "missing or invalid bearer token (Authorization: Bearer <token>)"
DEFAULT_BODY_MEMORY = 128 << 20  # two pcap files of the largest size at once
RETRY_AFTER = (b"retry-after", b"1")


@dataclass(frozen=True)
class BodyRule:
    """What one route accepts as a body."""

    method: str
    path: re.Pattern[str]
    media_type: str | None
    max_bytes: int


RULES = (
    BodyRule("POST", re.compile(r"/v1/interfaces/?"), JSON, MAX_SPEC_BYTES),
    BodyRule("PATCH", re.compile(r"/v1/interfaces/[^/]+/?"), JSON, MAX_PATCH_BYTES),
    BodyRule(
        "POST", re.compile(r"/v1/interfaces/[^/]+/packets/?"), pcap.MEDIA_TYPE, MAX_INJECT_BYTES
    ),
)
OTHER = BodyRule("*", re.compile(".*"), None, MAX_OTHER_BYTES)


def rule_for(method: str, path: str) -> BodyRule:
    """The body rule of a request."""
    for rule in RULES:
        if rule.method == method and rule.path.fullmatch(path):
            return rule
    return OTHER


def needs_token(path: str) -> bool:
    """True for the API routes (the probes, status page and docs are public)."""
    return path == "/metrics" or path == "/v1" or path.startswith("/v1/")


class HostCheck:
    """Which ``Host`` header values memifd answers to."""

    def __init__(self, allowed: list[str]) -> None:
        self.any = "*" in allowed
        self.names = frozenset(h for h in allowed if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in allowed if h.startswith("*."))

    def allows(self, host: str) -> bool:
        """True when ``host`` (a Host header value, with or without port) is allowed."""
        if self.any:
            return True
        name = _host_name(host.strip().lower())
        if name is None:
            return False
        try:
            ipaddress.ip_address(name)
            return True  # an address literal cannot be rebound by DNS
        except ValueError:
            pass
        if name == "localhost" or name.endswith(".localhost"):
            return True  # resolved by the browser itself, never by DNS
        return name in self.names or name.endswith(self.suffixes)


def _host_name(host: str) -> str | None:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else None
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


class RequestGuard:
    """The ASGI layer; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: list[str],
        body_timeout: float,
        body_memory: int = DEFAULT_BODY_MEMORY,
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.hosts = HostCheck(allowed_hosts)
        self.body_timeout = body_timeout
        self.bodies = ByteBudget(body_memory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = _route_path(scope)
        rule = rule_for(scope["method"], path)
        length = headers.get("content-length")
        has_body = (length not in (None, "0")) or "transfer-encoding" in headers
        refusal = self._refusal(headers, path, rule, length)
        if refusal is not None:
            status, detail, extra = refusal
            await _answer(send, scope["path"], status, detail, extra, close=has_body)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        declared = int(length) if length is not None else 0
        if not self.bodies.try_take(declared):
            detail = busy_detail(self.bodies, declared)
            await _answer(send, scope["path"], 503, detail, [RETRY_AFTER], close=True)
            return
        counted = _CountedBody(receive, rule.max_bytes, self.body_timeout, self.bodies, declared)
        try:
            await self.app(scope, counted.receive, send)
        finally:
            counted.release()

    def _refusal(
        self, headers: dict[str, str], path: str, rule: BodyRule, length: str | None
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        host = headers.get("host")
        if host is not None and not self.hosts.allows(host):
            return (
                400,
                (
                    f"Host {host!r} is not allowed: add the name to allowed_hosts "
                    "(MEMIFD_ALLOWED_HOSTS) to reach memifd by it"
                ),
                [],
            )
        if self.token is not None and needs_token(path) and not self._authorized(headers):
            return 401, TOKEN_PROBLEM, [(b"www-authenticate", b"Bearer")]
        if length is not None:
            if not length.isdigit():
                return 400, f"Content-Length {length[:32]!r} is not a number", []
            if int(length) > rule.max_bytes:
                return (
                    413,
                    (
                        f"request body of {int(length)} bytes exceeds the limit of "
                        f"{rule.max_bytes} bytes for this route"
                    ),
                    [],
                )
        if rule.media_type is not None and _media_type(headers) != rule.media_type:
            given = headers.get("content-type", "none")[:64]
            return 415, f"Content-Type must be {rule.media_type} (got {given})", []
        return None

    def _authorized(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(errors="replace"), self.token
        )


def busy_detail(bodies: ByteBudget, size: int) -> str:
    """The 503 problem detail of a body that does not fit ``http_body_memory``."""
    return (
        f"http_body_memory: a request body of {size} bytes does not fit while "
        f"{bodies.used} of {bodies.capacity} bytes of other requests' bodies are in "
        "flight; retry later"
    )


class _CountedBody:
    """``receive`` for the app: the body's bytes are counted, timed and held in ``bodies``
    as they arrive (``reserved`` bytes, its Content-Length, are held already)."""

    def __init__(
        self, receive: Receive, limit: int, timeout: float, bodies: ByteBudget, reserved: int
    ) -> None:
        self._receive = receive
        self._limit = limit
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self._bodies = bodies
        self._held = reserved
        self._size = 0
        self._done = False

    def release(self) -> None:
        """Give the body's bytes back to ``bodies``."""
        held, self._held = self._held, 0
        self._bodies.release(held)

    async def receive(self) -> Message:
        if self._done:  # after the body: the app waits for a disconnect, without limit
            return await self._receive()
        remaining = self._deadline - time.monotonic()
        try:
            message = await asyncio.wait_for(self._receive(), max(remaining, 0.001))
        except TimeoutError:
            raise HTTPException(
                408,
                f"request body not received within {self._timeout:g} s",
                headers={"Connection": "close"},
            ) from None
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._limit:
                raise HTTPException(
                    413,
                    f"request body exceeds the limit of {self._limit} bytes for this route",
                    headers={"Connection": "close"},
                )
            if self._size > self._held:
                self._hold(self._size - self._held)
            self._done = not message.get("more_body", False)
        else:
            self._done = True
        return message

    def _hold(self, more: int) -> None:
        if not self._bodies.try_take(more):
            raise HTTPException(
                503,
                busy_detail(self._bodies, self._size),
                headers={"Connection": "close", "Retry-After": "1"},
            )
        self._held += more


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _media_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


async def _answer(
    send: Callable[[Message], Awaitable[None]],
    instance: str,
    status: int,
    detail: str,
    extra: list[tuple[bytes, bytes]],
    close: bool,
) -> None:
    problem = problems.Problem(
        title=http.HTTPStatus(status).phrase, status=status, detail=detail, instance=instance
    )
    body = json.dumps(problem.model_dump(mode="json"), separators=(",", ":")).encode()
    headers = [
        (b"content-type", problems.MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
