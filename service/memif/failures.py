"""Handshake failures: one record each, counted by kind and logged at WARNING.

Every failed handshake, in either role, becomes a :class:`HandshakeFailure`
naming the rule (:class:`~memif.errors.FailureKind`), the reason, the socket,
the interface id and the peer process (``SO_PEERCRED``). A :class:`FailureBook`
per socket counts them and logs each one, whatever the log level set for
debugging: a refused peer must never go unnoticed.

Logging is bounded, since any local user allowed on the socket can fail
handshakes on purpose: the same failure (same socket, role, id, kind and
reason) is logged again only after :data:`REPEAT_INTERVAL` seconds, saying how
often it happened meanwhile, and all sockets of the process together log at
most :data:`BURST` lines at once and one per second after that. Counters are
never limited.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .errors import FailureKind
from .interface import PeerCredentials

log = logging.getLogger("memif")

REPEAT_INTERVAL = 60.0  # seconds before an identical failure is logged again
BURST = 50  # lines logged at once before the rate limit applies
RATE = 1.0  # lines per second after a burst
_REMEMBERED = 256  # distinct failures remembered for de-duplication


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """One handshake that did not bring a link up."""

    kind: FailureKind
    reason: str
    role: Literal["server", "client"]
    socket: str
    interface_id: int | None = None  # from INIT (server) or our interface (client)
    interface: str = ""  # our interface's name, once INIT named one
    peer: PeerCredentials | None = None
    time: float = field(default_factory=time.time)

    def describe(self) -> str:
        """One line for people: what failed, where and with whom."""
        where = f"{self.role} on {self.socket}"
        if self.interface_id is not None:
            where += f", interface id {self.interface_id}"
        if self.interface:
            where += f" ({self.interface})"
        who = (
            f"peer pid {self.peer.pid} uid {self.peer.uid} gid {self.peer.gid}"
            if self.peer is not None
            else "peer credentials unknown"
        )
        return f"{printable(self.reason)}; {where}; {who}"


def printable(text: str) -> str:
    """``text`` with control characters escaped: reasons can carry the peer's bytes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


FailureCallback = Callable[[HandshakeFailure], object]


class _Limiter:
    """Process-wide token bucket for failure log lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = float(BURST)
        self._stamp = time.monotonic()
        self.suppressed = 0

    def take(self) -> int | None:
        """None when a line may not be logged now; else the lines suppressed before it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(BURST), self._tokens + (now - self._stamp) * RATE)
            self._stamp = now
            if self._tokens < 1.0:
                self.suppressed += 1
                return None
            self._tokens -= 1.0
            skipped, self.suppressed = self.suppressed, 0
            return skipped


_LIMITER = _Limiter()
_Key = tuple[str, str, int | None, FailureKind, str]


class FailureBook:
    """Counts, remembers and logs the handshake failures of one socket."""

    def __init__(self, on_failure: FailureCallback | None = None) -> None:
        self._counts = {kind.value: 0 for kind in FailureKind}  # fixed keys: safe to copy
        self._on_failure = on_failure
        self._logged: collections.OrderedDict[_Key, tuple[float, int]] = collections.OrderedDict()
        self.last: HandshakeFailure | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Failures so far by kind (every kind present, zero or not)."""
        return dict(self._counts)

    def record(self, failure: HandshakeFailure) -> None:
        """Log ``failure`` (within the limits), count it and tell the callback.

        The count goes up after the log line is written, so whoever sees the
        count change also finds the line.
        """
        self.last = failure
        self._log(failure)
        self._counts[failure.kind.value] += 1
        if self._on_failure is not None:
            try:
                self._on_failure(failure)
            except Exception:
                log.exception("handshake failure callback failed", extra={"socket": failure.socket})

    def _log(self, failure: HandshakeFailure) -> None:
        key = (failure.socket, failure.role, failure.interface_id, failure.kind, failure.reason)
        now = time.monotonic()
        seen = self._logged.get(key)
        if seen is not None and now - seen[0] < REPEAT_INTERVAL:
            self._logged[key] = (seen[0], seen[1] + 1)
            return
        skipped = _LIMITER.take()
        if skipped is None:
            return
        repeats = seen[1] if seen is not None else 0
        self._logged[key] = (now, 0)
        self._logged.move_to_end(key)
        while len(self._logged) > _REMEMBERED:
            self._logged.popitem(last=False)
        notes = []
        if repeats:
            notes.append(f"{repeats} more like it since last logged")
        if skipped:
            notes.append(f"{skipped} other failures not logged (rate limit)")
        suffix = f" ({'; '.join(notes)})" if notes else ""
        peer = failure.peer
        log.warning(
            "handshake failed (%s): %s%s",
            failure.kind.value,
            failure.describe(),
            suffix,
            extra={
                "socket": failure.socket,
                "role": failure.role,
                "interface_id": failure.interface_id,
                "interface": failure.interface,
                "peer_pid": peer.pid if peer else None,
                "peer_uid": peer.uid if peer else None,
                "failure": failure.kind.value,
                "reason": printable(failure.reason),
            },
        )
