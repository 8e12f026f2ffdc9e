"""HTTP access log and request ids, as an ASGI layer in front of the REST app.

Every response carries an ``X-Request-ID``: the client's own when it sent a
well-formed one (a proxy's, say), otherwise a fresh one. Handlers find it in
``request.state.request_id``. With the access log on, each request is logged
when its response ends, on logger ``memifd.access``, with method, path,
status, duration and request id; health probes are logged at debug only, so a
kubelet polling them does not flood the log.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("memifd.access")

HEADER = b"x-request-id"
# Accepted from clients: short, and nothing that could forge a log line or a header.
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
PROBES = frozenset({"/healthz", "/readyz"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` with control characters as ``\\xNN``: a path cannot start a new log line."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def new_request_id() -> str:
    """16 random hex digits."""
    return secrets.token_hex(8)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _GOOD_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return new_request_id()


class AccessLog:
    """Adds the request id to every HTTP response; logs requests when ``enabled``."""

    def __init__(self, app: ASGIApp, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.monotonic()
        status = 0
        sent = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500  # what uvicorn answers for an exception before a response
            raise
        finally:
            if self.enabled:
                self._log(scope, status, sent, time.monotonic() - start, request_id)

    @staticmethod
    def _log(scope: Scope, status: int, sent: int, seconds: float, request_id: str) -> None:
        path = printable(scope.get("path", ""))
        level = logging.DEBUG if path in PROBES else logging.INFO
        if not log.isEnabledFor(level):
            return
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope.get("method", ""),
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "request_id": request_id,
            "bytes": sent,
            "client": f"{client[0]}:{client[1]}" if client else "",
        }
        log.log(level, "%s %s %d", fields["method"], path, status, extra=fields)
