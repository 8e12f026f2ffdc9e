"""Buffer offsets per ring slot that already passed validation, kept in private memory.

Producers in copy mode (libmemif, DPDK, VPP, this library) give every ring slot
the same buffer for the life of a connection, so a burst's offset column
usually equals what an earlier burst already validated. One comparison of
the shared column against the private copy (``memoryview ==`` runs in C)
replaces a list of offsets and its bounds check per burst. The offsets used
afterwards are the private ones: nothing the peer writes after the comparison
can move a read or write outside what was validated, and every use still
checks ``limit + length`` against the region.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Final

UNKNOWN: Final = 0xFFFFFFFF  # a slot not validated yet; also the limit until all are


class KnownOffsets:
    """Validated offsets of one ring's slots, all in one region.

    The per-slot tables (a list for fast slicing, an array the comparisons run
    on in C) are made on first use: a ring that carries no packets costs
    nothing, and an idle interface of 255 queue pairs × 2^14 slots does not
    hand the garbage collector millions of list entries to walk.
    """

    __slots__ = (
        "_pending",
        "_stride",
        "_values",
        "_view",
        "_words",
        "limit",
        "region",
        "size",
        "version",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: list[int] | None = None
        self._words: array[int] | None = None
        self._view: memoryview | None = None
        self._pending: Sequence[int] | None = None  # fixed offsets, copied in on first use
        self.region = -1
        self.limit = UNKNOWN  # at least every known offset; UNKNOWN fails every bound check
        self.version = 0  # changes whenever the offsets do
        self._stride: int | None = None

    def _tables(self) -> tuple[list[int], array[int], memoryview]:
        values, words, view = self._values, self._words, self._view
        if values is None or words is None or view is None:
            pending, self._pending = self._pending, None
            if pending is None:
                values = [UNKNOWN] * self.size
                words = array("I", [UNKNOWN]) * self.size
            else:
                values = list(pending)
                words = array("I", pending)
            view = memoryview(words)
            self._values, self._words, self._view = values, words, view
        return values, words, view

    @property
    def values(self) -> list[int]:
        """Each slot's offset (UNKNOWN where none was validated yet)."""
        values = self._values
        return values if values is not None else self._tables()[0]

    @property
    def words(self) -> array[int]:
        """:attr:`values` as 32-bit words."""
        words = self._words
        return words if words is not None else self._tables()[1]

    @property
    def view(self) -> memoryview:
        """A memoryview of :attr:`words`."""
        view = self._view
        return view if view is not None else self._tables()[2]

    def _forget(self, region: int) -> None:
        self._values = self._words = self._view = None  # all UNKNOWN again, made on use
        self._pending = None
        self.region = region
        self.limit = UNKNOWN
        self.version += 1

    @classmethod
    def fixed(cls, region: int, offsets: Sequence[int]) -> KnownOffsets:
        """Offsets known from the start (buffers this side posted itself)."""
        known = cls(len(offsets))
        known.region = region
        known.limit = max(offsets)
        known._pending = offsets
        known.version = 1
        return known

    def learn(self, region: int, slot: int, offsets: list[int], largest: int) -> None:
        """Record ``offsets`` (validated, largest ``largest``) for slots from ``slot`` on."""
        if region != self.region:
            self._forget(region)
        values, words, _ = self._tables()
        count = len(offsets)
        end = slot + count
        if end <= self.size:
            values[slot:end] = offsets
            words[slot:end] = array("I", offsets)
        else:
            split = self.size - slot
            values[slot:] = offsets[:split]
            values[: end - self.size] = offsets[split:]
            words[slot:] = array("I", offsets[:split])
            words[: end - self.size] = array("I", offsets[split:])
        if self.limit != UNKNOWN:
            self.limit = max(self.limit, largest)
        else:  # stays UNKNOWN while any slot is
            self.limit = max(values)
        self.version += 1
        self._stride = None

    def stride(self) -> int:
        """The step when slot ``i`` holds ``values[0] + i * step`` for every slot, else 0."""
        if self._stride is None:
            values = self.values
            step = values[1] - values[0] if self.size > 1 else 1
            regular = self.limit != UNKNOWN and step > 0
            if regular:
                regular = values == list(range(values[0], values[0] + step * self.size, step))
            self._stride = step if regular else 0
        return self._stride

    def take(self, slot: int, count: int) -> list[int]:
        """The known offsets of ``count`` slots from ``slot`` on (wrapping)."""
        values = self.values
        end = slot + count
        if end <= self.size:
            return values[slot:end]
        return values[slot:] + values[: end - self.size]
