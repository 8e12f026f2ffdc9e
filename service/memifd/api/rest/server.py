"""uvicorn as memifd runs it: a connection cap, header and idle timeouts.

uvicorn closes a keep-alive connection that stays idle after a response, but
not one that never sends a request, or sends its headers a byte at a time, and
it accepts every connection it is offered. :class:`GuardedHttpProtocol` adds:

* at most ``http_max_connections`` open connections; the next one is answered
  503 and closed at once, so idle clients cannot take every file descriptor;
* ``http_header_timeout``: the request line and headers must be complete that
  many seconds after the connection opened or the previous response ended;
* at most :data:`MAX_HEADER_BYTES` of request line and headers (431 past it).

The body's size and time limits are checked per route by
:mod:`memifd.http_guard`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from memifd.core.settings import Settings

log = logging.getLogger("memifd.http")

MAX_HEADER_BYTES = 64 << 10
REFUSAL_LOG_INTERVAL = 10.0  # seconds between two warnings about refused connections
_REASONS = {
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _RefusalLog:
    """Logs refused connections at most once per interval, with a count."""

    def __init__(self) -> None:
        self.next_report = 0.0
        self.suppressed = 0

    def report(self, status: int, why: str) -> None:
        now = time.monotonic()
        if now < self.next_report:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.warning("HTTP connection refused with %d: %s%s", status, why, more)
        self.suppressed = 0
        self.next_report = now + REFUSAL_LOG_INTERVAL


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits in the module docstring."""

    max_connections: ClassVar[int] = 1024
    header_timeout: ClassVar[float] = 10.0
    refusals: ClassVar[_RefusalLog] = _RefusalLog()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a message's start and its complete headers (or idle)
        self._head_started = False  # bytes of the current head have arrived
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection lifetime -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, f"more than http_max_connections={self.max_connections} open")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        counted = self._in_head and self._head_started
        super().data_received(data)
        if self._in_head and self._head_started and not self.transport.is_closing():
            # A chunk in which the head started may also end the previous body: count
            # from the next chunk on (one read of slack).
            self._head_bytes = self._head_bytes + len(data) if counted else 0
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_started, self._head_bytes = True, True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_started = True, False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle now: the next head is due
            self._arm_head_timer()

    # -- helpers -----------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or busy or not self._in_head:
            return
        self._refuse(408, f"no complete request headers within {self.header_timeout:g} s")

    def _refuse(self, status: int, why: str) -> None:
        """Answer ``status`` with ``why`` and close the connection."""
        self.refusals.report(status, why)
        body = why.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8"
            f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
        self._cancel_head_timer()


def protocol_for(settings: Settings) -> type[GuardedHttpProtocol]:
    """:class:`GuardedHttpProtocol` with the limits of ``settings``."""
    return type(
        "MemifdHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_connections": settings.http_max_connections,
            "header_timeout": settings.http_header_timeout,
            "refusals": _RefusalLog(),
        },
    )


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration memifd serves ``app`` with (``options`` added)."""
    return uvicorn.Config(
        app,
        http=protocol_for(settings),
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,  # memifd.access logs requests, with their duration and id
        root_path=settings.root_path,
        timeout_keep_alive=settings.http_idle_timeout,  # type: ignore[arg-type]
        server_header=False,
        **options,
    )
