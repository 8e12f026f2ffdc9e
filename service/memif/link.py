"""One established connection's shared memory: regions, eventfds and ring endpoints.

A :class:`Link` is built when the handshake completes (server: from the
regions and rings the client offered, a slice of rings at a time with
:class:`ServerLinkBuild`; client: from the memory it created, see
:class:`MemoryBuild`) and torn down on disconnect, closing every fd it owns.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from . import background
from .constants import COOKIE, RING_HEADER_SIZE
from .errors import FailureKind, MemifError, RemoteProtocolError
from .handshake import NegotiatedConfig, RegionInfo, RingInfo
from .memory import Layout, Region, create_region
from .ring import (
    ClientRxRing,
    ClientTxRing,
    RingView,
    ServerRxRing,
    ServerTxRing,
    make_template,
)

RxRing = ServerRxRing | ClientRxRing
TxRing = ServerTxRing | ClientTxRing

log = logging.getLogger("memif")


def check_eventfd(fd: int, what: str) -> None:
    """Refuse an fd that is not an eventfd, and make it non-blocking."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if target != "anon_inode:[eventfd]":
        raise RemoteProtocolError(
            f"{what}: file descriptor is not an eventfd ({target or '?'})", FailureKind.MEMORY
        )
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


@dataclass
class Link:
    """Regions, eventfds and ring endpoints of one connection."""

    regions: list[Region] = field(default_factory=list)
    eventfds: list[int] = field(default_factory=list)
    rx: list[RxRing] = field(default_factory=list)
    tx: list[TxRing] = field(default_factory=list)
    log2_ring_size: int = 0
    buffer_size: int = 0

    def close(self) -> None:
        """Release ring views, close region and eventfd fds (idempotent).

        The fds close at once; a big link's rings and mappings are freed on the
        background thread, so closing it never holds up the caller's loop.
        """
        rings = [*self.rx, *self.tx]
        for ring in rings:
            ring.release()
        self.rx.clear()
        self.tx.clear()
        maps: list[object] = [region.map for region in self.regions]
        for region in self.regions:
            region.close()
        self.regions.clear()
        for fd in self.eventfds:
            os.close(fd)
        self.eventfds.clear()
        if sum(ring.size for ring in rings) > background.BACKGROUND_DESCRIPTORS:
            background.discard([*maps, *rings])  # rings go first, then the mappings


class ServerLinkBuild:
    """Ring endpoints attached to the client's memory, a slice of rings at a time.

    The link owns the regions and eventfds from the start, so whoever holds
    :attr:`link` closes them whether the build finished, failed or was abandoned.
    """

    def __init__(
        self, regions: list[Region], s2m: tuple[RingInfo, ...], m2s: tuple[RingInfo, ...]
    ) -> None:
        self.link = Link(regions=list(regions), eventfds=[r.eventfd for r in (*s2m, *m2s)])
        try:
            self._maps = [r.mapping() for r in regions]
        except BaseException:
            self.link.close()
            raise
        self._pending = collections.deque((*s2m, *m2s))
        self._log2 = max((r.log2_ring_size for r in (*s2m, *m2s)), default=0)

    @property
    def done(self) -> bool:
        """True once every ring has its endpoint."""
        return not self._pending

    def step(self, rings: int) -> bool:
        """Attach up to ``rings`` more rings; True when done. Raises on a bad ring."""
        link = self.link
        for _ in range(min(rings, len(self._pending))):
            ring = self._pending.popleft()
            view = RingView(self._maps[ring.region], ring.offset, ring.log2_ring_size)
            cookie = view.cookie
            if cookie != COOKIE:
                direction = "S2M" if ring.s2m else "M2S"
                view.release()
                self._pending.clear()
                self._maps = []  # the mappings (and their fds) go with the link
                raise RemoteProtocolError(
                    f"{direction} ring {ring.index}: wrong cookie 0x{cookie:x}", FailureKind.MEMORY
                )
            if ring.s2m:
                link.rx.append(ServerRxRing(view, self._maps, ring.eventfd, max_desc_len=65535))
            else:
                link.tx.append(ServerTxRing(view, self._maps, ring.eventfd))
        if not self._pending:
            link.log2_ring_size = self._log2
            self._maps = []
        return not self._pending


@dataclass
class ClientMemory:
    """Memory a client created for a handshake, before the link is up."""

    layout: Layout
    link: Link
    region_infos: list[RegionInfo]
    ring_infos: list[RingInfo]


def build_client_memory(
    neg: NegotiatedConfig, name: str, between_rings: Callable[[], None] | None = None
) -> ClientMemory:
    """Create regions, rings and eventfds for the negotiated geometry (libmemif layout).

    ``between_rings`` is called after each ring; it may raise to abandon the
    build (everything created so far is closed).
    """
    layout = Layout(
        num_s2m=neg.num_s2m_rings,
        num_m2s=neg.num_m2s_rings,
        log2_ring_size=neg.log2_ring_size,
        buffer_size=neg.packet_buffer_size,
        separate_buffers=neg.max_regions >= 2,
    )
    link = Link(log2_ring_size=neg.log2_ring_size, buffer_size=neg.packet_buffer_size)
    ring_infos: list[RingInfo] = []
    try:
        for index, size in enumerate(layout.region_sizes()):
            link.regions.append(create_region(index, size, f"memif {name} region"))
        maps = [r.mapping() for r in link.regions]
        for place in layout.placements():
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            link.eventfds.append(efd)
            view = RingView(maps[place.region], place.offset, layout.log2_ring_size)
            view.init()
            template = make_template(
                layout.ring_size, place.buffer_region, place.buffer_offset, layout.buffer_size
            )
            # Through the file, not the mapping: the copy and its page faults run
            # without holding the GIL.
            fd = link.regions[place.region].fd
            if os.pwrite(fd, template, place.offset + RING_HEADER_SIZE) != len(template):
                view.desc_bytes[:] = template
            ring_args = (
                view,
                maps,
                efd,
                place.buffer_region,
                place.buffer_offset,
                layout.buffer_size,
                template,
            )
            if place.s2m:
                link.tx.append(ClientTxRing(*ring_args))
            else:
                link.rx.append(ClientRxRing(*ring_args))
            ring_infos.append(
                RingInfo(
                    s2m=place.s2m,
                    index=place.index,
                    region=place.region,
                    offset=place.offset,
                    log2_ring_size=layout.log2_ring_size,
                    eventfd=efd,
                )
            )
            if between_rings is not None:
                between_rings()
    except BaseException:
        link.close()
        raise
    region_infos = [RegionInfo(r.index, r.size, r.fd) for r in link.regions]
    return ClientMemory(layout, link, region_infos, ring_infos)


def is_big(neg: NegotiatedConfig) -> bool:
    """True when memory of this geometry is built and freed on the background thread."""
    rings = neg.num_s2m_rings + neg.num_m2s_rings
    return rings << neg.log2_ring_size > background.BACKGROUND_DESCRIPTORS


class _Abandoned(Exception):
    """Raised between two rings of a build nobody wants any more."""


class MemoryBuild:
    """The memory of one client interface for one geometry, built once, used once.

    Small memory is built in place by :meth:`start`; big memory on the
    background thread, and ``on_finished`` is called (from there) when it is
    ready. The owner checks :attr:`finished`, then takes the memory with
    :meth:`take` or learns why there is none from :attr:`error`. A build that
    nobody wants any more is cancelled (:meth:`cancel`): it stops at the next ring
    and frees what it made.
    """

    def __init__(self, neg: NegotiatedConfig, name: str, on_finished: Callable[[], None]) -> None:
        self.negotiated = neg
        self._name = name
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._memory: ClientMemory | None = None
        self._cancelled = False
        self.finished = False
        self.error = ""

    @classmethod
    def kept(cls, neg: NegotiatedConfig, memory: ClientMemory) -> MemoryBuild:
        """A finished build holding ``memory`` (made earlier and never shared)."""
        build = cls(neg, "", lambda: None)
        build._memory = memory
        build.finished = True
        return build

    def start(self) -> None:
        """Build now (small memory) or queue the build (big memory)."""
        if is_big(self.negotiated):
            background.submit(self._build)
        else:
            self._build()

    def take(self) -> ClientMemory | None:
        """The memory, now owned by the caller (None once taken, or after an error)."""
        with self._lock:
            memory, self._memory = self._memory, None
        return memory

    def cancel(self) -> None:
        """Abandon the build; memory already made is freed."""
        with self._lock:
            self._cancelled = True
            memory, self._memory = self._memory, None
        if memory is not None:
            memory.link.close()

    def _step(self) -> None:
        if self._cancelled:
            raise _Abandoned
        if background.on_background_thread():
            background.pause()

    def _build(self) -> None:
        memory: ClientMemory | None = None
        error = ""
        try:
            memory = build_client_memory(self.negotiated, self._name, self._step)
        except _Abandoned:
            pass
        except (OSError, MemifError) as exc:
            error = f"cannot build memory: {exc}"
        except Exception as exc:  # a bug must not leave the connection waiting forever
            log.exception("building memory failed", extra={"interface": self._name})
            error = f"cannot build memory: {exc}"
        with self._lock:
            if not self._cancelled:
                self._memory, memory = memory, None
                self.error = error
                self.finished = True
                # Under the lock: cancel() (and so closing the socket) waits for this call.
                self._on_finished()
        if memory is not None:
            memory.link.close()
