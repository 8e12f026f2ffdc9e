"""The packet API: :class:`RxQueue` and :class:`TxQueue`.

Queues belong to an :class:`~memif.Interface` and outlive its connections: a
queue object stays valid across disconnects and reconnects, its ``fileno()``
never changes (it is a private epoll set into which the current ring's
eventfd is added), and while the link is down bursts are simply empty.

A server whose client built more S2M rings than the server interface has
receive queues reads the extra rings too: receive queue ``i`` of ``n`` takes
rings ``i``, ``i + n``, ``i + 2n``... in turn, so no packet the client sends is
stranded.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .config import RxMode
from .errors import LocalProtocolError
from .ring import (
    ClientRxRing,
    ClientTxRing,
    Packet,
    QueueStats,
    ServerRxRing,
    ServerTxRing,
)

if TYPE_CHECKING:
    from .batch import Batch

DEFAULT_BURST = 256
MAX_BURST = 1 << 14

FaultHandler = Callable[[str], None]
RxRing = ServerRxRing | ClientRxRing
_P = TypeVar("_P", bytes, memoryview)


def _check_burst(count: int) -> None:
    if not 1 <= count <= MAX_BURST:
        raise LocalProtocolError(f"burst size {count} outside 1..{MAX_BURST}")


class _Queue:
    """What both directions share: index, lock, counters, fault reporting."""

    def __init__(self, index: int, lock: threading.Lock, on_fault: FaultHandler) -> None:
        self.index = index
        self.stats = QueueStats()
        self._lock = lock
        self._on_fault = on_fault

    def _fault(self, reason: str) -> None:
        self._on_fault(reason)


class RxQueue(_Queue):
    """Receive side of one queue pair."""

    def __init__(
        self, index: int, lock: threading.Lock, on_fault: FaultHandler, mode: RxMode
    ) -> None:
        super().__init__(index, lock, on_fault)
        self._ring: RxRing | None = None  # the queue's own ring
        self._folded: tuple[RxRing, ...] = ()  # every ring, own first, when there are more
        self._turn = 0  # which of the folded rings to read first
        self._mode = RxMode(mode)
        self._epoll = select.epoll()
        self._registered: list[int] = []
        self._views: list[memoryview] = []  # handed out by recv_views, valid until the next call
        self._views_ring: ServerRxRing | ClientRxRing | None = None

    @property
    def connected(self) -> bool:
        """True while a ring is attached."""
        return self._ring is not None

    @property
    def rings(self) -> int:
        """Rings this queue reads: 0 while down, 1 normally, more when folded."""
        return len(self._folded) or (1 if self._ring is not None else 0)

    @property
    def mode(self) -> RxMode:
        """Current receive mode."""
        return self._mode

    def set_mode(self, mode: RxMode | str) -> None:
        """Switch between interrupt and polling mode; takes effect at once."""
        new = RxMode(mode)
        with self._lock:
            self._mode = new
            for ring in self._attached():
                ring.view.set_interrupts(new is RxMode.INTERRUPT)

    def fileno(self) -> int:
        """An fd that is readable when the peer signals packets (interrupt mode).

        It stays the same across reconnects. After it turns readable call
        :meth:`recv_burst` until it returns an empty list; that re-arms it.
        """
        return self._epoll.fileno()

    def recv_burst(self, max_packets: int = DEFAULT_BURST) -> list[bytes]:
        """Return up to ``max_packets`` received packets (possibly none); never blocks."""
        _check_burst(max_packets)
        with self._lock:
            if self._views_ring is not None:
                self._end_views()
            ring = self._ring
            if ring is None:
                return []
            if self._folded:
                return self._recv_folded(max_packets)
            packets = ring.recv_burst(max_packets, self.stats)
            if packets:
                return packets
            return self._nothing_read(ring, ring.recv_burst, max_packets)

    def recv_views(self, max_packets: int = DEFAULT_BURST) -> list[memoryview]:
        """Zero-copy receive: up to ``max_packets`` read-only views into the shared buffers.

        The views are valid until the next receive call on this queue (or a
        disconnect): then their slots go back to the peer and the views are
        released, so touching one raises ``ValueError``. Slices or other
        objects made from a view outlive that but may then show the peer's
        next packets. The bounds of every view were validated once and stay
        fixed, but the bytes are the peer's shared memory: a misbehaving peer
        can change them while you read, so copy (``bytes(view)``) whatever
        you check before you act on it. Chained packets arrive as views of a
        private copy, and so does everything a server queue reads while it
        takes a client's extra rings in turn (see :attr:`rings`).
        """
        _check_burst(max_packets)
        with self._lock:
            if self._views_ring is not None:
                self._end_views()
            ring = self._ring
            if ring is None:
                return []
            if self._folded:  # several rings read in turn: views of private copies
                return [memoryview(p) for p in self._recv_folded(max_packets)]
            views = ring.recv_views(max_packets, self.stats)
            if not views:
                views = self._nothing_read(ring, ring.recv_views, max_packets)
            if views:
                self._views = views
                self._views_ring = ring
            elif ring.held and ring is self._ring:  # only bad descriptors: hand them back now
                ring.hand_back()
            return views

    def _nothing_read(
        self,
        ring: ServerRxRing | ClientRxRing,
        read: Callable[[int, QueueStats], list[_P]],
        max_packets: int,
    ) -> list[_P]:
        """After an empty read: report a broken ring, or re-arm interrupts and look again."""
        if ring.fault is not None:
            self._detach_broken(ring)
            return []
        if self._mode is RxMode.INTERRUPT:
            # Drain the eventfd first, then look again: a kick that lands after
            # the drain leaves the fd readable, so no wake-up is ever lost.
            _drain(ring.eventfd)
            return read(max_packets, self.stats)
        return []

    def _end_views(self) -> None:
        """Release the views of the last :meth:`recv_views` and hand their slots back."""
        try:
            deque(map(memoryview.release, self._views), 0)
        except BufferError:  # one was exported further: release the others one by one
            for view in self._views:
                with contextlib.suppress(BufferError):  # that one stays readable
                    view.release()
        self._views = []
        ring, self._views_ring = self._views_ring, None
        if ring is not None and ring is self._ring:
            ring.hand_back()

    def _recv_folded(self, max_packets: int) -> list[bytes]:
        """:meth:`recv_burst` over several rings, starting with a different one each time."""
        packets = self._read_folded(max_packets)
        if packets:
            return packets
        broken = next((r for r in self._folded if r.fault is not None), None)
        if broken is not None:
            self._detach_broken(broken)
            return []
        if self._mode is RxMode.INTERRUPT:
            for ring in self._folded:
                _drain(ring.eventfd)
            return self._read_folded(max_packets)
        return []

    def _read_folded(self, max_packets: int) -> list[bytes]:
        rings = self._folded
        count = len(rings)
        start = self._turn
        self._turn = (start + 1) % count
        packets: list[bytes] = []
        for step in range(count):
            ring = rings[(start + step) % count]
            packets += ring.recv_burst(max_packets - len(packets), self.stats)
            if len(packets) >= max_packets:
                break
        return packets

    def recv(self) -> bytes | None:
        """Return one packet, or None when nothing is waiting."""
        packets = self.recv_burst(1)
        return packets[0] if packets else None

    def recv_batch(self, max_packets: int = DEFAULT_BURST) -> Batch:
        """Receive a burst as one numpy array plus lengths (needs the ``fast`` extra)."""
        from .batch import Batch, read_batch

        _check_burst(max_packets)
        with self._lock:
            if self._views_ring is not None:
                self._end_views()
            ring = self._ring
            if ring is None:
                return Batch.empty()
            if self._folded:  # several rings: the per-packet path reads them in turn
                packets = self._recv_folded(max_packets)
                return Batch.from_packets(packets) if packets else Batch.empty()
            batch = read_batch(ring, max_packets, self.stats)
            if batch is None and ring.fault is None and self._mode is RxMode.INTERRUPT:
                # Drain first, then look again: a kick after the drain leaves the fd readable.
                _drain(ring.eventfd)
                batch = read_batch(ring, max_packets, self.stats)
            if batch is not None:
                return batch
            if ring.fault is not None:
                self._detach_broken(ring)
            return Batch.empty()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until packets may be waiting; True if woken, False on timeout.

        In polling mode this does not sleep: it reports whether packets are pending.
        """
        if self._mode is RxMode.POLLING:
            return self.pending() > 0
        try:
            return bool(self._epoll.poll(-1 if timeout is None else timeout, 1))
        except InterruptedError:
            return False

    def pending(self) -> int:
        """Descriptors waiting to be read (0 when disconnected)."""
        return sum(ring.pending() for ring in self._attached())

    def _attached(self) -> tuple[RxRing, ...]:
        ring = self._ring
        return self._folded or ((ring,) if ring is not None else ())

    def _attach(self, rings: Sequence[RxRing]) -> None:
        """Read ``rings`` from now on: normally one; more when folded (server only)."""
        with self._lock:
            self._ring = rings[0]
            self._folded = tuple(rings) if len(rings) > 1 else ()
            self._turn = 0
            for ring in rings:
                ring.view.set_interrupts(self._mode is RxMode.INTERRUPT)
                try:
                    self._epoll.register(ring.eventfd, select.EPOLLIN)
                    self._registered.append(ring.eventfd)
                except OSError:
                    pass

    def _detach(self) -> None:
        with self._lock:
            self._detach_locked()

    def _detach_locked(self) -> None:
        self._ring = None  # views are released, their slots die with the ring
        self._end_views()
        for fd in self._registered:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
        self._registered = []
        self._folded = ()

    def _detach_broken(self, ring: RxRing) -> None:
        reason = ring.fault or "ring fault"
        self.stats.bad_descriptors += 1
        self._detach_locked()
        self._fault(f"rx queue {self.index}: {reason}")

    def _close(self) -> None:
        self._detach()
        self._epoll.close()


class TxQueue(_Queue):
    """Transmit side of one queue pair."""

    def __init__(self, index: int, lock: threading.Lock, on_fault: FaultHandler) -> None:
        super().__init__(index, lock, on_fault)
        self._ring: ServerTxRing | ClientTxRing | None = None

    @property
    def connected(self) -> bool:
        """True while a ring is attached."""
        return self._ring is not None

    def send_burst(self, packets: Sequence[Packet]) -> int:
        """Queue as many of ``packets`` as fit; returns how many were taken.

        Never blocks. Packets that did not fit are counted in ``stats.ring_full``
        and stay the caller's to retry. Packets larger than one buffer are
        chained; an empty packet or one over 65535 bytes raises
        :class:`LocalProtocolError` before anything is sent.
        """
        with self._lock:
            ring = self._ring
            if ring is None:
                self.stats.ring_full += len(packets)
                return 0
            sent = ring.send_burst(packets, self.stats)
            if ring.fault is not None:
                self._ring = None
                self._fault(f"tx queue {self.index}: {ring.fault}")
            return sent

    def send(self, packet: Packet) -> bool:
        """Queue one packet; False when the ring is full or the link is down."""
        return self.send_burst((packet,)) == 1

    def send_batch(self, batch: Batch) -> int:
        """Send a numpy batch (see :class:`memif.batch.Batch`); returns how many fitted."""
        from .batch import check_batch, write_batch

        check_batch(batch)
        if not len(batch):
            return 0
        with self._lock:
            ring = self._ring
            if ring is None:
                self.stats.ring_full += len(batch)
                return 0
            sent = write_batch(ring, batch, self.stats)
            if ring.fault is not None:
                self._ring = None
                self._fault(f"tx queue {self.index}: {ring.fault}")
            return sent

    def free(self) -> int:
        """Slots free right now (0 when disconnected)."""
        ring = self._ring
        return ring.free() if ring is not None else 0

    def _attach(self, ring: ServerTxRing | ClientTxRing) -> None:
        with self._lock:
            self._ring = ring

    def _detach(self) -> None:
        with self._lock:
            self._ring = None

    def _close(self) -> None:
        self._detach()


def _drain(eventfd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        os.read(eventfd, 8)
