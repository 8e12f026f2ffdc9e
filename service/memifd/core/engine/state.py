"""Changed on the worker thread only; API threads read the references it publishes.

The worker replaces collections instead of mutating them where readers look
(``entries``, an entry's ``captures``), so an API thread that took a reference
sees a consistent, if slightly old, picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import memif

from memifd.core.errors import NotFoundError
from memifd.core.models import (
    CapturedPacket,
    CaptureFilter,
    InterfaceSpec,
    InterfaceStatus,
    LinkEvent,
    LinkState,
    PeerInfo,
)
from memifd.core.subscription import Subscription


@dataclass(frozen=True, slots=True)
class LinkView:
    """Link state as last published by the worker."""

    state: LinkState
    peer: PeerInfo | None
    reason: str


DOWN = LinkView(LinkState.DISCONNECTED, None, "")


@dataclass(slots=True)
class Counters:
    """What memifd counts per interface on top of the library's queue counters."""

    action_drops: int = 0
    forwarded: int = 0
    forward_drops: int = 0
    exchanged: int = 0
    injected: int = 0
    subscriber_drops: int = 0


@dataclass(eq=False)
class Capture:
    """One capture subscription as the worker tracks it."""

    sub: Subscription[CapturedPacket]
    flt: CaptureFilter
    names: frozenset[str] | None  # None: every interface, present and future
    remaining: int | None
    deadline: float | None
    rx: bool
    tx: bool


class Exchange(Protocol):
    """An API client attached as the packet endpoint of one interface."""

    interface: str
    rx: Subscription[CapturedPacket]


#: A status with the fingerprint it was built from and its JSON (see :mod:`.views`).
CachedView = tuple[tuple[object, ...], InterfaceStatus, bytes]


@dataclass(eq=False)
class Entry:
    """One managed interface. The worker changes every field but ``view``."""

    spec: InterfaceSpec
    socket_path: str
    iface: memif.Interface
    rx: list[memif.RxQueue]
    tx: list[memif.TxQueue]
    counters: Counters = field(default_factory=Counters)
    link: LinkView = DOWN
    captures: list[Capture] = field(default_factory=list)
    exchange: Exchange | None = None
    #: The last status built for readers: API threads replace it whole (an immutable
    #: tuple), the worker never reads it.
    view: CachedView | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(eq=False)
class EngineState:
    """Everything the worker owns, shared by the engine's modules."""

    entries: dict[str, Entry] = field(default_factory=dict)
    sockets: dict[str, memif.Socket] = field(default_factory=dict)
    captures: list[Capture] = field(default_factory=list)
    event_subs: list[Subscription[LinkEvent]] = field(default_factory=list)
    #: Bumped after every change and every burst; lets readers cache.
    generation: int = 0
    #: Items all subscriptions (captures, events, exchanges) lost to slow readers.
    subscription_drops: int = 0
    #: False while a server socket is not listening.
    bound: bool = True
    #: Socket files the worker listens on, (path, inode), for a shutdown without it.
    socket_files: tuple[tuple[str, int], ...] = ()
    #: Failed handshakes on every socket so far, by memif.FailureKind (fixed keys).
    handshake_failures: dict[str, int] = field(
        default_factory=lambda: {kind.value: 0 for kind in memif.FailureKind}
    )

    def entry(self, name: str) -> Entry:
        """The entry called ``name``; raises :class:`NotFoundError`."""
        found = self.entries.get(name)
        if found is None:
            raise NotFoundError(f"interface {name!r} not found")
        return found
