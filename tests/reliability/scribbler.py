"""A separate process that scribbles on shared memory while the victim runs traffic.

``python -m tests.reliability.scribbler --region FD:SIZE --ring R:OFFSET:LOG2:OWN:BAD ...``
maps the regions it was given (fds inherited from the parent) and, until
``--seconds`` pass, mixes plausible traffic with garbage: it publishes
descriptors and moves the counter it owns (``head`` for a client, ``tail`` for
a server) within the legal window, and rewrites descriptors, buffers, ring
flags and cookies; after ``--wild-after`` of the time it also sets counters,
its own and the victim's, to anything. It runs truly in parallel with the
victim (another process, another core) and prints ``{"writes": N}`` when done.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import mmap
import random
import struct
import time
from dataclasses import dataclass

_DESC = struct.Struct("<HHIII")
RING_HEADER = 128
DESC_SIZE = 16


@dataclass
class Ring:
    """A ring as the scribbler sees it.

    ``own`` is the counter the scribbler plays the owner of; ``bad`` the share of
    bad descriptors it writes before the wild phase (0 for a ring of posted
    buffers, where one bad descriptor rightly costs the link).
    """

    region: int
    offset: int
    log2: int
    own: str  # "head" or "tail"
    bad: float

    @property
    def size(self) -> int:
        return 1 << self.log2

    def counter_at(self, name: str) -> int:
        return self.offset + (6 if name == "head" else 64)


class Scribbler:
    """The write loop over a set of mapped regions."""

    def __init__(self, maps: list[mmap.mmap], rings: list[Ring], rng: random.Random) -> None:
        self.maps = maps
        self.words = [memoryview(m).cast("H") for m in maps]
        self.rings = rings
        self.rng = rng
        self.writes = 0
        self.wild = False

    def load(self, ring: Ring, name: str) -> int:
        return int(self.words[ring.region][ring.counter_at(name) // 2])

    def store(self, ring: Ring, name: str, value: int) -> None:
        self.words[ring.region][ring.counter_at(name) // 2] = value & 0xFFFF
        self.writes += 1

    def descriptor(self, ring: Ring, slot: int) -> None:
        rng = self.rng
        region = rng.randrange(len(self.maps))
        if self.wild and rng.random() < 0.1:
            region = rng.randrange(0x10000)
        size = len(self.maps[region % len(self.maps)])
        roll = rng.random()
        if roll < (0.7 if self.wild else 1 - ring.bad):
            length = rng.randint(1, 2048)
            offset = rng.randrange(max(1, size - length))
            if not self.wild and self.on_ring(region, offset, offset + length):
                offset = self.past_rings(region)  # the victim would write into a ring
        elif roll < 0.85:
            length = rng.choice([0, 0xFFFFFFFF, 65536, rng.randrange(1 << 32)])
            offset = rng.randrange(1 << 32)
        else:
            length = rng.randint(1, 4096)
            offset = (1 << 32) - rng.randint(1, length)
        flags = rng.choice([0, 0, 0, 1, rng.randrange(0x10000)])
        at = ring.offset + RING_HEADER + DESC_SIZE * (slot & (ring.size - 1))
        _DESC.pack_into(self.maps[ring.region], at, flags, region, length, offset, 0)
        self.writes += 1

    def produce(self, ring: Ring) -> None:
        """Publish descriptors and move the owned counter: legally, or anywhere when wild."""
        rng = self.rng
        start = self.load(ring, ring.own)
        if self.wild and rng.random() < 0.05:
            target = rng.randrange(0x10000)
        elif ring.own == "head":  # forward, never more than a ring ahead of the victim
            ahead = (start - self.load(ring, "tail")) & 0xFFFF
            target = start + rng.randint(0, ring.size - ahead) if ahead <= ring.size else start
        else:  # forward, never past what the victim posted
            gap = (self.load(ring, "head") - start) & 0xFFFF
            target = start + rng.randint(0, gap) if gap <= ring.size else start
        for n in range(min((target - start) & 0xFFFF, ring.size)):
            self.descriptor(ring, start + n)
        self.store(ring, ring.own, target)

    def writable(self, ring: Ring) -> tuple[int, int]:
        """(first slot, count) of the slots the victim does not own right now."""
        head, tail = self.load(ring, "head"), self.load(ring, "tail")
        inflight = (head - tail) & 0xFFFF
        if inflight > ring.size:
            return 0, 0
        if ring.own == "head":
            return head, ring.size - inflight
        return tail, inflight

    def past_rings(self, region: int) -> int:
        """The first offset of ``region`` after every ring in it."""
        return max(
            (r.offset + RING_HEADER + DESC_SIZE * r.size for r in self.rings if r.region == region),
            default=0,
        )

    def on_ring(self, region: int, start: int, end: int) -> bool:
        """True when [start, end) of ``region`` touches a ring's header or descriptors."""
        return any(
            r.region == region
            and start < r.offset + RING_HEADER + DESC_SIZE * r.size
            and r.offset < end
            for r in self.rings
        )

    def step(self) -> None:
        rng = self.rng
        ring = rng.choice(self.rings)
        roll = rng.random()
        if roll < 0.45:
            self.produce(ring)
        elif roll < 0.75:
            first, count = self.writable(ring)
            if self.wild:
                self.descriptor(ring, rng.randrange(ring.size))
            elif count:
                self.descriptor(ring, first + rng.randrange(count))
        elif roll < 0.93:
            index = rng.randrange(len(self.maps))
            region = self.maps[index]
            start = rng.randrange(len(region))
            if self.wild or not self.on_ring(index, start, start + 64):
                region[start : start + 64] = rng.randbytes(len(region[start : start + 64]))
                self.writes += 1
        elif roll < 0.97:
            at = ring.offset + rng.choice([0, 4])  # cookie or flags
            self.maps[ring.region][at : at + 2] = rng.randbytes(2)
            self.writes += 1
        elif self.wild:  # the counter the victim owns
            self.store(ring, "tail" if ring.own == "head" else "head", rng.randrange(0x10000))

    def run(self, seconds: float, wild_after: float) -> None:
        """Scribble for ``seconds``; counters go anywhere only after ``wild_after`` of them."""
        started = time.monotonic()
        deadline = started + seconds
        wild_at = started + seconds * wild_after
        while (now := time.monotonic()) < deadline:
            self.wild = now >= wild_at
            for _ in range(64):
                self.step()


def _pair(text: str) -> tuple[int, int]:
    a, b = text.split(":")
    return int(a), int(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", action="append", type=_pair, required=True, help="FD:SIZE")
    parser.add_argument("--ring", action="append", required=True, help="REGION:OFFSET:LOG2:OWN:BAD")
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--wild-after",
        type=float,
        default=0.7,
        help="share of the time before counters may go anywhere",
    )
    opts = parser.parse_args()
    maps = [mmap.mmap(fd, size) for fd, size in opts.region]
    rings = []
    for text in opts.ring:
        region, offset, log2, own, bad = text.split(":")
        rings.append(Ring(int(region), int(offset), int(log2), own, float(bad)))
    scribbler = Scribbler(maps, rings, random.Random(opts.seed))
    scribbler.run(opts.seconds, opts.wild_after)
    print(json.dumps({"writes": scribbler.writes}))


if __name__ == "__main__":
    main()
