"""Runs on the worker thread: queue service, actions, capture fan-out and inject.

Interrupt-mode rx queues are watched through their fds; queues that returned
packets stay "hot" and are read again at once. Polling-mode queues are read on
every turn and, when idle, every :data:`POLL_IDLE_INTERVAL` seconds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import memif
from memif.constants import MAX_PACKET_SIZE

from memifd.core.engine.state import EngineState, Entry, Exchange
from memifd.core.engine.streams import Streams
from memifd.core.engine.worker import Worker
from memifd.core.errors import ConflictError, InvalidArgumentError
from memifd.core.models import Action, CapturedPacket, InjectResult, LinkState

BURST = 256  # packets read per queue per turn
POLL_IDLE_INTERVAL = 0.002  # seconds between looks at idle polling-mode queues
CLOCK_STEP_NS = 1_000_000_000  # a step back of the wall clock larger than this is followed
EXCHANGE_SNAPLEN = MAX_PACKET_SIZE  # an exchange gets whole packets

_Target = tuple[Entry, int]


class BurstClock:
    """Stamps for packets taken off (or put on) a ring a burst at a time.

    A ring gives no time per packet: the worker takes a whole burst at once. So
    every packet carries the wall-clock time its burst was read (rx) or written
    (tx), in ns, plus its place in the burst: packets ``i`` ns apart shared a
    burst, and stamps never repeat or go back, so they keep the ring's order
    across bursts, queues and interfaces. One clock reading per burst: reading
    the clock per packet would cost the data path ~100 ns a packet and say no
    more about when the peer queued each one.
    """

    def __init__(self) -> None:
        #: The latest stamp given out.
        self.last = 0

    def stamp(self, count: int) -> int:
        """The stamp of the first of ``count`` packets of a burst handled now."""
        now = time.time_ns()
        last = self.last
        if last - CLOCK_STEP_NS < now <= last:  # same tick, or a small step back
            now = last + 1
        self.last = now + count - 1
        return now


class DataPlane:
    """Reads rx queues, applies actions, feeds captures and exchanges, injects."""

    def __init__(self, state: EngineState, worker: Worker, streams: Streams) -> None:
        self._state = state
        self._worker = worker
        self._streams = streams
        self._polled: list[_Target] = []
        self._hot: dict[_Target, None] = {}
        self._rx_fds: dict[int, _Target] = {}
        self.clock = BurstClock()

    # -- scheduling -------------------------------------------------------------------------------

    def watch_queues(self, entry: Entry) -> None:
        """Start reading the entry's rx queues (by fd, or by polling)."""
        if entry.spec.rx_mode is memif.RxMode.POLLING:
            self._polled = [*self._polled, *((entry, i) for i in range(len(entry.rx)))]
            return
        for index, rxq in enumerate(entry.rx):
            fd = rxq.fileno()
            target = (entry, index)
            self._worker.watch(fd, functools.partial(self._hot.__setitem__, target, None))
            self._rx_fds[fd] = target
            self._hot[target] = None  # drain what arrived before we watched

    def unwatch_queues(self, entry: Entry) -> None:
        """Stop reading the entry's rx queues."""
        for fd, (owner, index) in list(self._rx_fds.items()):
            if owner is entry:
                del self._rx_fds[fd]
                self._hot.pop((entry, index), None)
                self._worker.unwatch(fd)
        self._polled = [t for t in self._polled if t[0] is not entry]
        for target in [t for t in self._hot if t[0] is entry]:
            del self._hot[target]

    def forget_all(self) -> None:
        """Drop every queue (the worker is stopping)."""
        self._rx_fds.clear()
        self._polled = []
        self._hot.clear()

    def wait_limit(self) -> float | None:
        """0 while queues are hot, the polling interval while any queue is polled."""
        if self._hot:
            return 0.0
        return POLL_IDLE_INTERVAL if self._polled else None

    def turn(self) -> None:
        """Read the hot queues, then the polled ones."""
        hot = self._hot
        if hot:
            for target in list(hot):
                if not self._service(*target):
                    del hot[target]
        for target in self._polled:
            if self._service(*target):
                hot[target] = None

    # -- the data path ----------------------------------------------------------------------------

    def _service(self, entry: Entry, index: int) -> bool:
        """Read one burst from rx queue ``index`` and dispatch it; False when it was empty."""
        packets = entry.rx[index].recv_burst(BURST)
        if not packets:
            return False
        self._state.generation += 1
        count = len(packets)
        if entry.captures:
            self._deliver(entry, index, "rx", packets)
        counters = entry.counters
        session = entry.exchange
        if session is not None:
            first = self.clock.stamp(count)
            items = to_captured(entry.name, index, "rx", packets, EXCHANGE_SNAPLEN, first)
            lost = session.rx.put_many(items)
            counters.exchanged += count
            if lost:
                self._count_lost(lost)
            return True
        action = entry.spec.action
        if action is Action.DROP:
            counters.action_drops += count
            return True
        target = (
            entry
            if action is Action.ECHO
            else self._state.entries.get(entry.spec.xconnect_to or "")
        )
        sent = 0
        if target is not None:
            connected = target.iface.num_tx_connected
            if connected:
                tx_index = index % connected
                sent = target.tx[tx_index].send_burst(packets)
                if sent and target.captures:
                    sent_packets = packets if sent == count else packets[:sent]
                    self._deliver(target, tx_index, "tx", sent_packets)
        counters.forwarded += sent
        counters.forward_drops += count - sent
        return True

    def _deliver(self, entry: Entry, index: int, direction: str, packets: list[bytes]) -> None:
        """Hand a burst to the captures of ``entry`` that want it (all with the same
        stamps, see :class:`BurstClock`)."""
        built: dict[int, list[CapturedPacket]] = {}
        first = 0
        ended = []
        for cap in entry.captures:
            if not (cap.rx if direction == "rx" else cap.tx):
                continue
            if cap.flt.queue is not None and cap.flt.queue != index:
                continue
            snaplen = cap.flt.snaplen
            items = built.get(snaplen)
            if items is None:
                first = first or self.clock.stamp(len(packets))
                items = to_captured(entry.name, index, direction, packets, snaplen, first)
                built[snaplen] = items
            if cap.remaining is not None:
                if len(items) >= cap.remaining:
                    items = items[: cap.remaining]
                    ended.append(cap)
                cap.remaining -= len(items)
            lost = cap.sub.put_many(items)
            if lost:
                self._count_lost(lost)
        for cap in ended:
            self._streams.end_capture(cap, "count reached")

    def _count_lost(self, lost: list[CapturedPacket]) -> None:
        state = self._state
        state.subscription_drops += len(lost)
        entries = state.entries
        for item in lost:
            entry = entries.get(item.interface)
            if entry is not None:
                entry.counters.subscriber_drops += 1

    def inject(
        self, name: str, packets: Sequence[bytes], index: int, session: Exchange | None
    ) -> InjectResult:
        """Transmit ``packets`` on tx queue ``index`` of ``name`` (for ``session``, while
        it is still attached)."""
        entry = self._state.entry(name)
        if session is not None and entry.exchange is not session:
            raise ConflictError(f"the exchange on interface {name!r} has ended")
        if entry.link.state is not LinkState.CONNECTED:
            raise ConflictError(f"interface {name!r} is not connected ({entry.link.state.value})")
        connected = entry.iface.num_tx_connected
        if not 0 <= index < connected:
            raise InvalidArgumentError(
                "queue", f"queue {index} is outside 0..{connected - 1} (queues connected)"
            )
        sent = entry.tx[index].send_burst(packets)
        entry.counters.injected += sent
        if sent and entry.captures:
            self._deliver(entry, index, "tx", list(packets[:sent]))
        return InjectResult(accepted=sent, ring_full=len(packets) - sent)


def to_captured(
    name: str,
    index: int,
    direction: str,
    packets: list[bytes],
    snaplen: int,
    first: int,
) -> list[CapturedPacket]:
    """Copies of a burst for subscribers, stamped ``first``, ``first + 1`` ... (ns)."""
    return [
        CapturedPacket(
            name, index, direction, stamp, len(p), p if len(p) <= snaplen else p[:snaplen]
        )
        for stamp, p in zip(range(first, first + len(packets)), packets, strict=False)
    ]
