"""Rings in shared memory: burst reads and writes, chaining and validation.

Everything the peer can write is hostile. Descriptors are copied out of shared
memory once per burst as columns (strided ``memoryview`` slices turned into
lists), validated over whole columns with ``min``/``max``/``count``, and only
chains or odd descriptors take the per-descriptor slow path. Counters are
published with one aligned 16-bit store through a ``memoryview.cast("H")``.

The four endpoint classes encode who writes which counter (the client always
produces ``head``, the server always ``tail``):

=============  =========================================================
ServerRxRing   S2M, server reads client packets in [tail, head)
ServerTxRing   M2S, server fills client-posted buffers in [tail, head)
ClientTxRing   S2M, client writes packets at head, free = size − (head − tail)
ClientRxRing   M2S, client reads [last, tail), then reposts those buffers
=============  =========================================================
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

from . import heap
from .constants import (
    COOKIE,
    DESC_FLAG_NEXT,
    DESC_SIZE,
    MAX_PACKET_SIZE,
    RING_FLAG_MASK_INT,
    RING_HEADER_SIZE,
)
from .errors import FailureKind, LocalProtocolError, RemoteProtocolError
from .known import KnownOffsets

# Indexes of the header words in a cast("H") view of the 128-byte ring header.
_FLAGS: Final = 2  # byte 4
_HEAD: Final = 3  # byte 6
_TAIL: Final = 32  # byte 64, own cache line
_KICK: Final = (1).to_bytes(8, "little")

Packet = bytes | bytearray | memoryview


@dataclass(slots=True)
class QueueStats:
    """Counters of one queue; plain integers, updated once per burst."""

    packets: int = 0
    bytes: int = 0
    drops: int = 0
    bad_descriptors: int = 0
    ring_full: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "drops": self.drops,
            "bad_descriptors": self.bad_descriptors,
            "ring_full": self.ring_full,
        }


class RingView:
    """The header and descriptor table of one ring inside a mapped region."""

    def __init__(self, region: mmap.mmap, offset: int, log2_ring_size: int) -> None:
        size = 1 << log2_ring_size
        end = offset + RING_HEADER_SIZE + DESC_SIZE * size
        if offset % 8 or end > len(region):
            raise RemoteProtocolError(
                f"ring at offset {offset} does not fit its region", FailureKind.MEMORY
            )
        raw = memoryview(region)
        self.region = region
        self.offset = offset
        self.size = size
        self.mask = size - 1
        self.header = raw[offset : offset + RING_HEADER_SIZE].cast("H")
        self.cookie_view = raw[offset : offset + 4].cast("I")
        self.desc_bytes = raw[offset + RING_HEADER_SIZE : end]
        self.desc = self.desc_bytes.cast("I")

    @property
    def cookie(self) -> int:
        """The ring's magic number as currently in memory."""
        return int(self.cookie_view[0])

    def counters(self) -> tuple[int, int]:
        """The ring's ``head`` and ``tail`` as currently in memory (16 bits each)."""
        return int(self.header[_HEAD]), int(self.header[_TAIL])

    def init(self) -> None:
        """Write a fresh header (client side, before the ring is offered)."""
        self.cookie_view[0] = COOKIE
        self.header[_FLAGS] = 0
        self.header[_HEAD] = 0
        self.header[_TAIL] = 0

    def set_interrupts(self, wanted: bool) -> None:
        """As this ring's reader, ask the producer for interrupts (or not)."""
        flags = self.header[_FLAGS]
        self.header[_FLAGS] = (
            (flags & ~RING_FLAG_MASK_INT) if wanted else (flags | RING_FLAG_MASK_INT)
        )

    def release(self) -> None:
        """Drop the views so the mapping can go once nothing else holds it."""
        for view in (self.desc, self.desc_bytes, self.header, self.cookie_view):
            view.release()
        # A ring object kept alive elsewhere (say, by a logged traceback) must not pin
        # the mapping and its fd.
        vars(self).pop("region", None)

    def columns(self, start: int, count: int) -> tuple[list[int], list[int], list[int]]:
        """Snapshot ``count`` descriptors from slot counter ``start`` as three columns.

        Returns ``(flags | region << 16, length, offset)`` lists, copied out of
        shared memory once; later reads of the ring never change them.
        """
        desc = self.desc
        if count == 1:  # one descriptor (latency-bound traffic): item reads are cheaper
            i = (start & self.mask) * 4
            return [desc[i]], [desc[i + 1]], [desc[i + 2]]
        first = (start & self.mask) * 4
        stop = first + count * 4
        if stop <= self.size * 4:
            return (
                desc[first:stop:4].tolist(),
                desc[first + 1 : stop : 4].tolist(),
                desc[first + 2 : stop : 4].tolist(),
            )
        wrap = stop - self.size * 4
        return (
            desc[first::4].tolist() + desc[0:wrap:4].tolist(),
            desc[first + 1 :: 4].tolist() + desc[1:wrap:4].tolist(),
            desc[first + 2 :: 4].tolist() + desc[2:wrap:4].tolist(),
        )

    def column(self, column: int, slot: int, count: int) -> list[int]:
        """One descriptor column of ``count`` slots from ``slot`` on, copied out."""
        desc = self.desc
        first = slot * 4 + column
        end = slot + count
        if end <= self.size:
            return desc[first : end * 4 : 4].tolist()
        return desc[first::4].tolist() + desc[column : (end - self.size) * 4 : 4].tolist()

    def column_uniform(self, column: int, slot: int, count: int) -> bool:
        """True when one column holds a single value over ``count`` slots from ``slot`` on.

        Each item is compared with its neighbour by ``memoryview ==``, in C.
        """
        desc = self.desc
        first = slot * 4 + column
        end = slot + count
        if end <= self.size:
            return bool(desc[first : end * 4 - 4 : 4] == desc[first + 4 : end * 4 : 4])
        stop = (end - self.size) * 4
        last = self.size * 4 - 4 + column
        return bool(
            desc[first:last:4] == desc[first + 4 :: 4]
            and desc[column : stop - 4 : 4] == desc[column + 4 : stop : 4]
            and desc[last] == desc[column]
        )

    def column_matches(self, column: int, slot: int, count: int, expected: memoryview) -> bool:
        """True when one column equals ``expected[slot:slot + count]`` (one entry per slot)."""
        desc = self.desc
        first = slot * 4 + column
        end = slot + count
        if end <= self.size:
            return bool(desc[first : end * 4 : 4] == expected[slot:end])
        wrap = end - self.size
        return bool(
            desc[first::4] == expected[slot:] and desc[column : wrap * 4 : 4] == expected[:wrap]
        )

    def fill_column(self, column: int, start: int, count: int, value: int) -> None:
        """Store one ``value`` into a column for ``count`` slots from slot counter ``start``."""
        self.write_words(column, start, array("I", (value,)) * count)

    def write_column(self, column: int, start: int, values: list[int]) -> None:
        """Store ``values`` into one descriptor column from slot counter ``start``."""
        desc = self.desc
        count = len(values)
        if count == 1:
            desc[(start & self.mask) * 4 + column] = values[0]
            return
        self.write_words(column, start, array("I", values))

    def write_words(self, column: int, start: int, words: array[int]) -> None:
        """Store ``words`` into one column from slot counter ``start`` on, wrapping."""
        desc = self.desc
        count = len(words)
        first = (start & self.mask) * 4 + column
        room = (self.size * 4 - first + 3) // 4
        if count <= room:
            desc[first : first + count * 4 : 4] = words
        else:
            desc[first::4] = words[:room]
            desc[column : (count - room) * 4 : 4] = words[room:]


class _Regions:
    """The peer-visible regions as seen by one ring: maps, sizes, read-only views."""

    __slots__ = ("maps", "sizes", "views")

    def __init__(self, maps: Sequence[mmap.mmap]) -> None:
        self.maps = list(maps)
        self.sizes = [len(m) for m in maps]
        self.views: list[memoryview] = []

    def readonly(self) -> list[memoryview]:
        """Read-only views of the regions (made on first use): slices of them are too."""
        if not self.views:
            for mapping in self.maps:
                writable = memoryview(mapping)
                self.views.append(writable.toreadonly())
                writable.release()
        return self.views

    def release(self) -> None:
        """Drop the read-only views (slices handed out keep the mapping alive)."""
        for view in self.views:
            view.release()
        self.views = []


class _Endpoint:
    """Common state of a ring endpoint."""

    def __init__(self, view: RingView, regions: Sequence[mmap.mmap], eventfd: int) -> None:
        self.view = view
        self.regions = _Regions(regions)
        self.eventfd = eventfd
        self.header = view.header
        self.size = view.size
        self.cur = 0  # the slot counter this side works from
        self.fault: str | None = None

    def _broken(self, reason: str) -> None:
        self.fault = reason

    def kick(self) -> None:
        """Wake the reader unless it masked interrupts."""
        if not self.header[_FLAGS] & RING_FLAG_MASK_INT:
            try:  # noqa: SIM105 - hot path: try/except costs less than contextlib.suppress
                os.write(self.eventfd, _KICK)
            except BlockingIOError:
                pass  # counter saturated: the reader is awake anyway

    def release(self) -> None:
        """Drop views onto shared memory."""
        self.regions.release()
        self.regions = _Regions([])
        self.view.release()


class _ServerEndpoint(_Endpoint):
    """A ring as the server sees it: the server owns ``tail`` in both directions and
    works on the slots [tail, head) the client published."""

    DIRECTION = ""  # "S2M" or "M2S", for fault reasons

    def __init__(self, view: RingView, regions: Sequence[mmap.mmap], eventfd: int) -> None:
        super().__init__(view, regions, eventfd)
        self.cur = int(self.header[_TAIL])

    def _span(self) -> int:
        return (self.header[_HEAD] - self.cur) & 0xFFFF

    def _window(self) -> int:
        """Slots in [tail, head); 0 (and :attr:`fault` set) when head ran past the ring."""
        span = self._span()
        if span > self.size:
            self._broken(
                f"{self.DIRECTION} head is {span} slots ahead of tail, ring has {self.size}"
            )
            return 0
        return span

    def _advance_tail(self, used: int) -> None:
        cur = (self.cur + used) & 0xFFFF
        self.cur = cur
        self.header[_TAIL] = cur


class _Reader(_Endpoint):
    """Reads packets out of descriptors [cur, cur + avail)."""

    def __init__(
        self,
        view: RingView,
        regions: Sequence[mmap.mmap],
        eventfd: int,
        max_desc_len: int,
    ) -> None:
        super().__init__(view, regions, eventfd)
        self.max_desc_len = max_desc_len
        self.known = KnownOffsets(view.size)
        self.learns = True  # remember validated offsets (the server; a client knows its own)
        self.held = 0  # slots read as views and not handed back yet (they end at ``cur``)

    def _read(
        self, cur: int, avail: int, want: int, stats: QueueStats, views: bool = False
    ) -> tuple[list[Any], int]:
        """Copy up to ``want`` packets out; returns them and the slots consumed.

        With ``views`` the packets are read-only memoryviews into the region
        instead of bytes (a chained packet is joined into a private copy).
        """
        count = avail if avail < want else want
        source: Sequence[Any] = self.regions.readonly() if views else self.regions.maps
        done = self._read_known(cur & self.view.mask, count, source)
        if done is None:
            done = self._read_columns(cur, count, source)
            if done is None:
                return self._read_slow(cur, avail, want, stats, source, views)
        packets, nbytes = done
        stats.packets += count
        stats.bytes += nbytes
        if nbytes > heap.covered and not views:
            heap.reserve(nbytes)
        return packets, count

    def recv_views(self, want: int, stats: QueueStats) -> list[memoryview]:
        """Read up to ``want`` packets as views; their slots stay held until :meth:`hand_back`."""
        avail = self.available()
        if not avail:
            return []
        packets, used = self._read(self.cur, avail, want, stats, views=True)
        self.cur = (self.cur + used) & 0xFFFF
        self.held += used
        return packets

    def available(self) -> int:
        """Descriptors ready to read (each ring kind knows its own counters)."""
        raise NotImplementedError

    def hand_back(self) -> None:
        """Give the peer the slots held since the last :meth:`recv_views`."""
        raise NotImplementedError

    def _read_known(
        self, slot: int, count: int, source: Sequence[Any]
    ) -> tuple[list[Any], int] | None:
        """Fast path: one flags/region word, offsets as validated before, lengths in bounds."""
        known = self.known
        view = self.view
        desc = view.desc
        word = desc[slot * 4]
        region = word >> 16
        if (
            word & DESC_FLAG_NEXT
            or region != known.region
            or not view.column_matches(2, slot, count, known.view)
            or not view.column_uniform(0, slot, count)
        ):
            return None
        limit = self.regions.sizes[region] - known.limit
        data = source[region]
        offsets = known.take(slot, count)
        if view.column_uniform(1, slot, count):
            length = desc[slot * 4 + 1]
            if not 0 < length <= self.max_desc_len or length > limit:
                return None
            return [data[o : o + length] for o in offsets], length * count
        lengths = view.column(1, slot, count)
        longest = max(lengths)
        if min(lengths) == 0 or longest > self.max_desc_len or longest > limit:
            return None
        return [data[o : o + n] for o, n in zip(offsets, lengths, strict=True)], sum(lengths)

    def _read_columns(
        self, cur: int, count: int, source: Sequence[Any]
    ) -> tuple[list[Any], int] | None:
        """Whole-column validation of a burst of unchained descriptors in one region."""
        flags_regions, lengths, offsets = self.view.columns(cur, count)
        first = flags_regions[0]
        region = first >> 16
        regions = self.regions
        if (
            first & DESC_FLAG_NEXT
            or flags_regions.count(first) != count
            or region >= len(regions.sizes)
            or min(lengths) == 0
            or max(lengths) > self.max_desc_len
        ):
            return None
        largest = max(offsets)
        if largest + max(lengths) > regions.sizes[region]:
            return None
        if self.learns:
            self.known.learn(region, cur & self.view.mask, offsets, largest)
        data = source[region]
        return [data[o : o + n] for o, n in zip(offsets, lengths, strict=True)], sum(lengths)

    def _read_slow(
        self,
        cur: int,
        avail: int,
        want: int,
        stats: QueueStats,
        source: Sequence[Any],
        views: bool,
    ) -> tuple[list[Any], int]:
        """Per-descriptor path: chains, several regions, and bad descriptors."""
        flags_regions, lengths, offsets = self.view.columns(cur, avail)
        regions = self.regions
        nregions = len(regions.sizes)
        packets: list[Any] = []
        received = stats.bytes
        slot = 0
        while slot < avail and len(packets) < want:
            parts: list[Any] = []
            total = 0
            bad = 0
            while True:
                word = flags_regions[slot]
                region, length, offset = word >> 16, lengths[slot], offsets[slot]
                slot += 1
                if (
                    region >= nregions
                    or length == 0
                    or length > self.max_desc_len
                    or offset + length > regions.sizes[region]
                ):
                    bad += 1
                else:
                    total += length
                    if total > MAX_PACKET_SIZE:
                        bad += 1
                    elif not bad:
                        parts.append(source[region][offset : offset + length])
                if not word & DESC_FLAG_NEXT:
                    break
                if slot >= avail:
                    bad += 1  # chain runs past what the producer published
                    break
            if bad:
                stats.bad_descriptors += bad
                stats.drops += 1
                continue
            packet = parts[0] if len(parts) == 1 else b"".join(parts)
            packets.append(memoryview(packet) if views and len(parts) > 1 else packet)
            stats.packets += 1
            stats.bytes += total
        if stats.bytes - received > heap.covered and not views:
            heap.reserve(stats.bytes - received)
        return packets, slot


class ServerRxRing(_Reader, _ServerEndpoint):
    """S2M ring seen by the server: packets from the client."""

    DIRECTION = "S2M"

    def pending(self) -> int:
        """Descriptors published and not yet read."""
        return self._span()

    def available(self) -> int:
        """Descriptors ready to read; 0 (and :attr:`fault` set) when the peer broke the ring."""
        return self._window()

    def consume(self, used: int) -> None:
        """Hand ``used`` slots back to the client."""
        self._advance_tail(used)
        self.held = 0

    def hand_back(self) -> None:
        """Give the client the slots held since the last :meth:`recv_views`."""
        self.header[_TAIL] = self.cur
        self.held = 0

    def recv_burst(self, want: int, stats: QueueStats) -> list[bytes]:
        """Read up to ``want`` packets and hand their slots back."""
        avail = self.available()
        if not avail:
            return []
        packets, used = self._read(self.cur, avail, want, stats)
        self.consume(used)
        return packets


class ClientRxRing(_Reader):
    """M2S ring seen by the client: reads what the server filled, reposts buffers."""

    def __init__(
        self,
        view: RingView,
        regions: Sequence[mmap.mmap],
        eventfd: int,
        buffer_region: int,
        buffer_offset: int,
        buffer_size: int,
        template: bytes,
    ) -> None:
        super().__init__(view, regions, eventfd, buffer_size)
        # The template's offset column (an array: no list for the collector to walk).
        self.known = KnownOffsets.fixed(buffer_region, array("I", template)[2::4])
        self.learns = False  # consume() puts the posted offsets back every time
        self.template = template
        self.buffer_region = buffer_region
        self.buffer_offset = buffer_offset
        self.buffer_size = buffer_size
        self.head = 0
        self.cur = 0

    def post_all(self) -> None:
        """Offer every buffer to the server (right after CONNECTED).

        The descriptors are the pristine template since the memory was built;
        whatever the server wrote there since is checked when it is read.
        """
        self.cur = int(self.header[_TAIL])
        self.head = (self.cur + self.size) & 0xFFFF
        self.header[_HEAD] = self.head

    def pending(self) -> int:
        """Descriptors filled by the server and not yet read."""
        return (self.header[_TAIL] - self.cur) & 0xFFFF

    def available(self) -> int:
        """Descriptors ready to read; 0 (and :attr:`fault` set) when the peer broke the ring."""
        cur = self.cur
        avail = (self.header[_TAIL] - cur) & 0xFFFF
        if avail > ((self.head - cur) & 0xFFFF):
            self._broken(f"M2S tail moved {avail} slots, past the {self.size} posted buffers")
            return 0
        return avail

    def consume(self, used: int) -> None:
        """Repost the ``used`` buffers just read (and any held) and publish the new head."""
        self.cur = (self.cur + used) & 0xFFFF
        self.held += used
        self.hand_back()

    def hand_back(self) -> None:
        """Repost the buffers held since the last :meth:`recv_views`."""
        held = self.held
        if held:
            copy_template(
                self.view.desc_bytes, self.template, (self.cur - held) & self.view.mask, held
            )
            self.head = (self.head + held) & 0xFFFF
            self.header[_HEAD] = self.head
            self.held = 0

    def recv_burst(self, want: int, stats: QueueStats) -> list[bytes]:
        """Read up to ``want`` packets, then repost the buffers they used."""
        avail = self.available()
        if not avail:
            return []
        packets, used = self._read(self.cur, avail, want, stats)
        self.consume(used)
        return packets


def copy_template(dest: memoryview, template: bytes, slot: int, count: int) -> None:
    """Restore ``count`` pristine descriptors from ``slot`` on, wrapping at the end."""
    first = slot * DESC_SIZE
    stop = first + count * DESC_SIZE
    limit = len(template)
    if stop <= limit:
        dest[first:stop] = template[first:stop]
    else:
        dest[first:] = template[first:]
        dest[: stop - limit] = template[: stop - limit]


def _check_lengths(lengths: list[int]) -> int:
    """Refuse an empty or oversized packet; returns the one length all share, else 0."""
    first = lengths[0]
    if lengths.count(first) == len(lengths) and 0 < first <= MAX_PACKET_SIZE:
        return first
    smallest = min(lengths)
    if smallest == 0:
        raise LocalProtocolError(f"packet {lengths.index(0)} is empty")
    largest = max(lengths)
    if largest > MAX_PACKET_SIZE:
        raise LocalProtocolError(
            f"packet {lengths.index(largest)} is {largest} bytes, the limit is {MAX_PACKET_SIZE}"
        )
    return 0


_packers: dict[int, Callable[[mmap.mmap, int, Packet], None]] = {}


def _copy_in(
    data: mmap.mmap, offsets: Sequence[int], packets: Sequence[Packet], uniform: int
) -> None:
    """Copy ``packets[:len(offsets)]`` to ``offsets`` in ``data`` (bounds checked by the callers).

    When every packet has the same length ``uniform``, one ``Struct.pack_into``
    per packet, driven by ``map`` in C, costs about a third less than a slice
    assignment in a Python loop. It takes bytes and bytearray only; anything
    else falls back to slice assignment.
    """
    if uniform:
        pack = _packers.get(uniform)
        if pack is None:
            if len(_packers) >= 64:
                _packers.clear()
            pack = _packers[uniform] = struct.Struct(f"{uniform}s").pack_into
        try:
            deque(map(pack, repeat(data), offsets, packets), 0)
            return
        except struct.error:
            pass  # a memoryview or other buffer among them
    for o, p in zip(offsets, packets, strict=False):
        data[o : o + len(p)] = p


class ClientTxRing(_Endpoint):
    """S2M ring seen by the client: packets go into our own buffers at ``head``."""

    def __init__(
        self,
        view: RingView,
        regions: Sequence[mmap.mmap],
        eventfd: int,
        buffer_region: int,
        buffer_offset: int,
        buffer_size: int,
        template: bytes,
    ) -> None:
        super().__init__(view, regions, eventfd)
        self.buffers = regions[buffer_region]
        self.buffer_region = buffer_region
        self.buffer_offset = buffer_offset
        self.buffer_size = buffer_size
        # The template's offset column. An array, not a list: 2^14 ints per ring in
        # lists would make every full garbage collection walk millions of them.
        self.slot_offsets = array("I", template)[2::4]
        self.known = KnownOffsets.fixed(buffer_region, self.slot_offsets)  # for the batch API
        self.template = template
        self.region_word = buffer_region << 16
        self.head = int(self.header[_HEAD])

    def release(self) -> None:
        """Drop views onto shared memory, the buffer mapping included."""
        super().release()
        vars(self).pop("buffers", None)

    def free(self) -> int:
        """Slots the client may fill now."""
        return self.size - ((self.head - self.header[_TAIL]) & 0xFFFF)

    def room(self) -> int:
        """Free slots; 0 (and :attr:`fault` set) when the peer broke the ring."""
        inflight = (self.head - self.header[_TAIL]) & 0xFFFF
        if inflight > self.size:
            self._broken(f"S2M tail is {inflight} slots behind head, ring has {self.size}")
            return 0
        return self.size - inflight

    def publish(self, used: int) -> None:
        """Make ``used`` filled slots visible to the server and wake it."""
        self.head = (self.head + used) & 0xFFFF
        self.header[_HEAD] = self.head
        self.kick()

    def send_burst(self, packets: Sequence[Packet], stats: QueueStats) -> int:
        """Copy as many packets as fit; returns how many were queued."""
        wanted = len(packets)
        free = self.room()
        if not free or not wanted:
            stats.ring_full += wanted
            return 0
        head = self.head
        lengths = list(map(len, packets))
        uniform = _check_lengths(lengths)
        count = wanted if wanted < free else free
        if count < wanted:
            lengths = lengths[:count]
        if (uniform or max(lengths)) <= self.buffer_size:
            start = head & self.view.mask
            offsets = self.slot_offsets[start : start + count]
            if len(offsets) < count:
                offsets += self.slot_offsets[: count - len(offsets)]
            _copy_in(self.buffers, offsets, packets, uniform)
            copy_template(self.view.desc_bytes, self.template, start, count)
            if uniform:
                self.view.fill_column(1, head, count, uniform)
            else:
                self.view.write_column(1, head, lengths)
            used = count
        else:
            count, used = self._send_chained(head, free, packets, list(map(len, packets)))
        stats.packets += count
        stats.bytes += uniform * count if uniform else sum(lengths[:count])
        stats.ring_full += wanted - count
        if used:
            self.publish(used)
        return count

    def _send_chained(
        self, head: int, free: int, packets: Sequence[Packet], lengths: list[int]
    ) -> tuple[int, int]:
        """Packets larger than a buffer take several slots, all but the last flagged NEXT.

        Data goes slot by slot; the descriptors of the whole burst are written
        afterwards in three column stores.
        """
        size = self.buffer_size
        mask = self.view.mask
        data = self.buffers
        offsets = self.slot_offsets
        last_word = self.region_word
        next_word = last_word | DESC_FLAG_NEXT
        words: list[int] = []
        parts: list[int] = []
        used = 0
        count = 0
        for packet, length in zip(packets, lengths, strict=True):
            need = -(-length // size)
            if need > free - used:
                break
            if need == 1:
                offset = offsets[(head + used) & mask]
                data[offset : offset + length] = packet
            else:
                view = memoryview(packet).cast("B")
                for part in range(need):
                    offset = offsets[(head + used + part) & mask]
                    start = part * size
                    chunk = view[start : start + size]
                    data[offset : offset + len(chunk)] = chunk
                words += [next_word] * (need - 1)
                parts += [size] * (need - 1)
            words.append(last_word)
            parts.append(length - (need - 1) * size)
            used += need
            count += 1
        if used:
            copy_template(self.view.desc_bytes, self.template, head & mask, used)
            self.view.write_column(0, head, words)
            self.view.write_column(1, head, parts)
        return count, used


class ServerTxRing(_ServerEndpoint):
    """M2S ring seen by the server: packets go into buffers the client posted."""

    DIRECTION = "M2S"

    def __init__(self, view: RingView, regions: Sequence[mmap.mmap], eventfd: int) -> None:
        super().__init__(view, regions, eventfd)
        self.known = KnownOffsets(view.size)  # offsets of posted buffers validated before

    def free(self) -> int:
        """Buffers the client has posted and we have not filled."""
        return self._span()

    def room(self) -> int:
        """Posted buffers; 0 (and :attr:`fault` set) when the peer broke the ring."""
        return self._window()

    def publish(self, used: int) -> None:
        """Hand ``used`` filled buffers to the client and wake it."""
        self._advance_tail(used)
        self.kick()

    def send_burst(self, packets: Sequence[Packet], stats: QueueStats) -> int:
        """Copy as many packets as fit into posted buffers; returns how many."""
        wanted = len(packets)
        avail = self.room()
        if not avail or not wanted:
            stats.ring_full += wanted
            return 0
        cur = self.cur
        lengths = list(map(len, packets))
        uniform = _check_lengths(lengths)
        count = wanted if wanted < avail else avail
        if count < wanted:
            lengths = lengths[:count]
        placed = self.posted(cur & self.view.mask, count, uniform or max(lengths))
        if placed is not None:
            region, offsets = placed
            _copy_in(self.regions.maps[region], offsets, packets, uniform)
            if uniform:
                self.view.fill_column(1, cur, count, uniform)
            else:
                self.view.write_column(1, cur, lengths)
            used = count
        else:
            count, used = self._send_slow(cur, avail, packets, lengths, stats)
        stats.packets += count
        stats.bytes += uniform * count if uniform else sum(lengths[:count])
        stats.ring_full += wanted - count
        if used:
            self.publish(used)
        return count

    def posted(self, slot: int, count: int, longest: int) -> tuple[int, list[int]] | None:
        """Region and offsets of ``count`` posted buffers that each take ``longest`` bytes.

        None unless they are unchained, in one region, inside it whole and large
        enough; the slow path then sorts them out one by one.
        """
        view = self.view
        desc = view.desc
        word = desc[slot * 4]
        region = word >> 16
        known = self.known
        sizes = self.regions.sizes
        if word & DESC_FLAG_NEXT or region >= len(sizes):
            return None
        if (
            region == known.region
            and view.column_matches(2, slot, count, known.view)
            and view.column_uniform(0, slot, count)
            and view.column_uniform(1, slot, count)
        ):
            capacity = desc[slot * 4 + 1]
            if longest <= capacity <= sizes[region] - known.limit:
                return region, known.take(slot, count)
            return None
        words, capacities, offsets = view.columns(slot, count)
        if words.count(word) != count or min(capacities) < longest:
            return None
        largest = max(offsets)
        if largest + max(capacities) > sizes[region]:
            return None
        known.learn(region, slot, offsets, largest)
        return region, offsets

    def _send_slow(
        self,
        cur: int,
        avail: int,
        packets: Sequence[Packet],
        lengths: list[int],
        stats: QueueStats,
    ) -> tuple[int, int]:
        """Chain over posted buffers of any size; skip (and count) bad ones."""
        flags_regions, capacities, offsets = self.view.columns(cur, avail)
        regions = self.regions
        nregions = len(regions.sizes)
        desc = self.view.desc
        mask = self.view.mask
        used = 0
        count = 0
        for packet, length in zip(packets, lengths, strict=False):
            view = memoryview(packet).cast("B")
            done = 0
            start = used
            plan: list[tuple[int, int, int, int]] = []  # slot index, region, offset, size
            while done < length and used < avail:
                region = flags_regions[used] >> 16
                cap, offset = capacities[used], offsets[used]
                if region >= nregions or cap == 0 or offset + cap > regions.sizes[region]:
                    stats.bad_descriptors += 1
                    self._broken(f"M2S descriptor {(cur + used) & mask} points outside region")
                    return count, start
                take = min(cap, length - done)
                plan.append((used, region, offset, take))
                done += take
                used += 1
            if done < length:
                used = start
                break
            pos = 0
            for index, (slot_index, region, offset, take) in enumerate(plan):
                regions.maps[region][offset : offset + take] = view[pos : pos + take]
                pos += take
                base = ((cur + slot_index) & mask) * 4
                last = index == len(plan) - 1
                desc[base] = (region << 16) | (0 if last else DESC_FLAG_NEXT)
                desc[base + 1] = take
            count += 1
        return count, used


def make_template(size: int, buffer_region: int, buffer_offset: int, buffer_size: int) -> bytes:
    """Pristine descriptor table of a client ring: one buffer per slot, full length."""
    words = array("I", bytes(DESC_SIZE * size))
    words[0::4] = array("I", [buffer_region << 16]) * size
    words[1::4] = array("I", [buffer_size]) * size
    end = buffer_offset + size * buffer_size
    words[2::4] = array("I", range(buffer_offset, end, buffer_size))
    return words.tobytes()
