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
    """Validated offsets of one ring's slots, all in one region."""

    __slots__ = ("_stride", "limit", "region", "size", "values", "version", "view", "words")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: list[int] = [UNKNOWN] * size
        self.words = array("I", [UNKNOWN]) * size
        self.view = memoryview(self.words)
        self.region = -1
        self.limit = UNKNOWN  # at least every known offset; UNKNOWN fails every bound check
        self.version = 0  # changes whenever the offsets do
        self._stride: int | None = None

    def _forget(self, region: int) -> None:
        self.values[:] = [UNKNOWN] * self.size
        self.view[:] = array("I", [UNKNOWN]) * self.size
        self.region = region
        self.limit = UNKNOWN
        self.version += 1

    @classmethod
    def fixed(cls, region: int, offsets: Sequence[int]) -> KnownOffsets:
        """Offsets known from the start (buffers this side posted itself)."""
        known = cls(len(offsets))
        known.learn(region, 0, list(offsets), max(offsets))
        return known

    def learn(self, region: int, slot: int, offsets: list[int], largest: int) -> None:
        """Record ``offsets`` (validated, largest ``largest``) for slots from ``slot`` on."""
        if region != self.region:
            self._forget(region)
        count = len(offsets)
        end = slot + count
        if end <= self.size:
            self.values[slot:end] = offsets
            self.words[slot:end] = array("I", offsets)
        else:
            split = self.size - slot
            self.values[slot:] = offsets[:split]
            self.values[: end - self.size] = offsets[split:]
            self.words[slot:] = array("I", offsets[:split])
            self.words[: end - self.size] = array("I", offsets[split:])
        if self.limit != UNKNOWN:
            self.limit = max(self.limit, largest)
        else:  # stays UNKNOWN while any slot is
            self.limit = max(self.values)
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
        end = slot + count
        if end <= self.size:
            return self.values[slot:end]
        return self.values[slot:] + self.values[: end - self.size]
