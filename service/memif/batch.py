"""Batch API: a burst as one numpy array plus a lengths array (the ``fast`` extra).

Packet bytes move with one gather (receive) or one scatter (transmit) per
contiguous run of ring slots: when buffers sit at a regular stride, as in every
copy-mode layout, the run is a strided 2-D view of the region and the copy is
a single numpy assignment. Descriptors are snapshotted and validated as whole
columns; anything unusual (chains, several regions, bad descriptors) falls back
to the per-packet path, so behaviour and counters match :meth:`RxQueue.recv_burst`.

These functions only move packets between a ring and arrays; the queues
(:mod:`memif.queue`) hold the lock and handle a broken ring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .constants import DESC_FLAG_NEXT, MAX_PACKET_SIZE
from .errors import LocalProtocolError
from .known import KnownOffsets
from .ring import (
    ClientRxRing,
    ClientTxRing,
    QueueStats,
    ServerRxRing,
    ServerTxRing,
    copy_template,
)

try:
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
except ImportError:  # pragma: no cover - exercised only without the extra
    np = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from numpy.typing import NDArray

    U8 = NDArray[np.uint8]
    U32 = NDArray[np.uint32]
else:
    U8 = U32 = Any


def _numpy() -> Any:
    if np is None:
        raise LocalProtocolError("the batch API needs numpy: pip install 'memifd[fast]'")
    return np


@dataclass(frozen=True, slots=True)
class Batch:
    """``len(lengths)`` packets; packet ``i`` is ``data[i, :lengths[i]]``."""

    data: U8
    lengths: U32

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def packets(self) -> list[bytes]:
        """The packets as bytes objects."""
        return [row[:n].tobytes() for row, n in zip(self.data, self.lengths.tolist(), strict=True)]

    @classmethod
    def from_packets(cls, packets: list[bytes], stride: int | None = None) -> Batch:
        """Pack ``packets`` into one array whose rows are ``stride`` bytes wide."""
        npy = _numpy()
        lengths = npy.fromiter((len(p) for p in packets), dtype=npy.uint32, count=len(packets))
        width = stride or (int(lengths.max()) if len(packets) else 0)
        data = npy.zeros((len(packets), width), dtype=npy.uint8)
        for row, packet in zip(data, packets, strict=True):
            row[: len(packet)] = npy.frombuffer(packet, dtype=npy.uint8)
        return cls(data, lengths)

    @classmethod
    def empty(cls) -> Batch:
        """A batch of no packets."""
        npy = _numpy()
        return cls(npy.zeros((0, 0), dtype=npy.uint8), npy.zeros(0, dtype=npy.uint32))


class _Arrays:
    """numpy views of one ring's descriptors and of the regions, made once per ring.

    They are built from the mmap objects themselves (not from the ring's
    memoryviews), so releasing those views on disconnect stays possible.
    """

    __slots__ = ("desc", "regions", "rows", "rows_version")

    def __init__(self, ring: Any) -> None:
        npy = _numpy()
        view = ring.view
        self.desc = npy.frombuffer(
            view.region, dtype=npy.uint32, count=4 * view.size, offset=view.offset + 128
        ).reshape(view.size, 4)
        self.regions = [npy.frombuffer(m, dtype=npy.uint8) for m in ring.regions.maps]
        self.rows: U8 | None = None
        self.rows_version = -1

    def slot_rows(self, known: KnownOffsets) -> U8 | None:
        """A (ring size, width) view whose row ``i`` is slot ``i``'s buffer, or None.

        Only when the known offsets advance by one step from slot to slot; the
        width is that step, cut so that the furthest buffer ends in the region.
        """
        if self.rows_version != known.version:
            self.rows_version = known.version
            self.rows = None
            step = known.stride()
            if step and 0 <= known.region < len(self.regions):
                region = self.regions[known.region]
                width = min(step, region.shape[0] - known.limit)
                if width > 0:
                    start = known.values[0]
                    self.rows = as_strided(
                        region[start:], shape=(known.size, width), strides=(step, 1)
                    )
        return self.rows


def _arrays(ring: Any) -> _Arrays:
    arrays: _Arrays | None = getattr(ring, "batch_arrays", None)
    if arrays is None:
        arrays = _Arrays(ring)
        ring.batch_arrays = arrays
    return arrays


def _strided(region: U8, offsets: U32, width: int) -> U8 | None:
    """A (n, width) view of ``region`` if ``offsets`` advance by one fixed step."""
    count = offsets.shape[0]
    start = int(offsets[0])
    if count == 1:
        return region[start : start + width].reshape(1, width)
    step = int(offsets[1]) - start
    if step < width or (count > 2 and not (offsets[1:] - offsets[:-1] == step).all()):
        return None
    view: U8 = as_strided(region[start:], shape=(count, width), strides=(step, 1))
    return view


def read_batch(
    ring: ServerRxRing | ClientRxRing, max_packets: int, stats: QueueStats
) -> Batch | None:
    """Read up to ``max_packets`` packets of ``ring`` as one :class:`Batch`; None when none
    was waiting (or the peer broke the ring: ``ring.fault`` says how)."""
    npy = _numpy()
    avail = ring.available()
    if not avail:
        return None
    count = min(avail, max_packets)
    batch = _gather_known(npy, ring, count, stats)
    if batch is None:
        batch = _gather(npy, ring, count, stats)
    if batch is None:  # unusual descriptors: take the per-packet path
        packets = ring.recv_burst(max_packets, stats)
        return Batch.from_packets(packets) if packets else None
    return batch


def _gather_known(
    npy: Any, ring: ServerRxRing | ClientRxRing, count: int, stats: QueueStats
) -> Batch | None:
    """Fast path: slots' known buffers, one step apart, copied as one 2-D slice."""
    rows = _arrays(ring).slot_rows(ring.known)
    if rows is None:
        return None
    view = ring.view
    desc = view.desc
    slot = ring.cur & view.mask
    count = min(count, ring.size - slot)  # one contiguous run; the rest comes next call
    word = desc[slot * 4]
    if (
        word & DESC_FLAG_NEXT
        or word >> 16 != ring.known.region
        or not view.column_matches(2, slot, count, ring.known.view)
        or not view.column_uniform(0, slot, count)
    ):
        return None
    limit = min(ring.max_desc_len, rows.shape[1])
    if view.column_uniform(1, slot, count):
        length = desc[slot * 4 + 1]
        if not 0 < length <= limit:
            return None
        lengths = npy.full(count, length, dtype=npy.uint32)
        nbytes = length * count
    else:
        lengths = npy.array(view.column(1, slot, count), dtype=npy.uint32)
        length = int(lengths.max())
        if int(lengths.min()) == 0 or length > limit:
            return None
        nbytes = int(lengths.sum())
    data = rows[slot : slot + count, :length].copy()
    ring.consume(count)
    stats.packets += count
    stats.bytes += nbytes
    return Batch(data, lengths)


def _gather(
    npy: Any, ring: ServerRxRing | ClientRxRing, count: int, stats: QueueStats
) -> Batch | None:
    arrays = _arrays(ring)
    slot = ring.cur & ring.view.mask
    count = min(count, ring.size - slot)  # one contiguous run; the rest comes next call
    desc = arrays.desc[slot : slot + count].copy()  # one snapshot of shared memory
    words, lengths, offsets = desc[:, 0], desc[:, 1], desc[:, 2]
    first = int(words[0])
    region = first >> 16
    if first & DESC_FLAG_NEXT or region >= len(arrays.regions) or not (words == first).all():
        return None
    longest = int(lengths.max())
    if int(lengths.min()) == 0 or longest > ring.max_desc_len:
        return None
    source = arrays.regions[region]
    largest = int(offsets.max())
    if largest + longest > source.shape[0]:
        return None
    if ring.learns:
        ring.known.learn(region, slot, offsets.tolist(), largest)
    view = _strided(source, offsets, longest)
    if view is not None:
        data = npy.array(view)
    else:
        data = source[offsets[:, None].astype(npy.int64) + npy.arange(longest)]
    ring.consume(count)
    stats.packets += count
    stats.bytes += int(lengths.sum())
    return Batch(data, lengths)


def check_batch(batch: Batch) -> None:
    """Refuse a batch with an empty packet or a length its rows cannot hold."""
    npy = _numpy()
    if not len(batch):
        return
    lengths = batch.lengths
    if int(lengths.min()) == 0:
        raise LocalProtocolError(f"packet {int(npy.argmin(lengths))} is empty")
    if int(lengths.max()) > min(MAX_PACKET_SIZE, batch.data.shape[1]):
        raise LocalProtocolError(
            f"a length exceeds the row width {batch.data.shape[1]} or {MAX_PACKET_SIZE}"
        )


def write_batch(ring: ServerTxRing | ClientTxRing, batch: Batch, stats: QueueStats) -> int:
    """Copy as many packets of a checked ``batch`` into ``ring`` as fit; returns how many."""
    npy = _numpy()
    total = len(batch)
    sent = 0
    for _ in range(2):  # at most two contiguous runs: before and after the wrap
        if sent == total:
            break
        done = _scatter(npy, ring, batch, sent, stats)
        if done is None:
            rest = batch.packets()[sent:]
            sent += ring.send_burst(rest, stats)
            stats.ring_full -= total - sent  # counted once below
            break
        if not done:
            break
        sent += done
    stats.ring_full += total - sent
    return sent


def _scatter(
    npy: Any, ring: ServerTxRing | ClientTxRing, batch: Batch, start: int, stats: QueueStats
) -> int | None:
    """Copy one contiguous run of packets; None means: use the per-packet path."""
    room = ring.room()
    if not room:
        return 0
    arrays = _arrays(ring)
    slot = (ring.head if isinstance(ring, ClientTxRing) else ring.cur) & ring.view.mask
    count = min(room, len(batch) - start, ring.size - slot)
    lengths = batch.lengths[start : start + count]
    width = int(lengths.max())
    packets = batch.data[start : start + count, :width]
    if isinstance(ring, ClientTxRing):
        if width > ring.buffer_size:
            return None  # chains: the per-packet path
        rows = arrays.slot_rows(ring.known)  # our own buffers: always one step apart
        assert rows is not None
        rows[slot : slot + count, :width] = packets
        copy_template(ring.view.desc_bytes, ring.template, slot, count)
    else:
        # Posted buffers that each take ``width`` bytes, whole inside their region
        # (checked, and learned for next time, by the ring); others: per-packet path.
        placed = ring.posted(slot, count, width)
        if placed is None:
            return None
        rows = arrays.slot_rows(ring.known)
        if rows is not None and width <= rows.shape[1] and placed[0] == ring.known.region:
            rows[slot : slot + count, :width] = packets
        else:
            region = arrays.regions[placed[0]]
            offsets = npy.array(placed[1], dtype=npy.int64)
            region[offsets[:, None] + npy.arange(width)] = packets
    arrays.desc[slot : slot + count, 1] = lengths
    stats.packets += count
    stats.bytes += int(lengths.sum())
    ring.publish(count)
    return count
