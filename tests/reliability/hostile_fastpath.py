"""Hostile cases aimed at the fast paths: every slot keeps its buffer, then one field lies.

The library skips per-descriptor checks when a burst looks like ordinary
copy-mode traffic: each slot's offset is one it validated before, one flags
word and (often) one length for the whole burst. Each case first teaches it
every slot's offset with a clean burst over the whole ring, then tampers with
exactly the fields the fast path relies on (a length of 0 or past the limit or the region, another
region, a chain flag, an offset moved in or out of bounds, capacities too
small or reaching past the region) and compare the outcome with the reference
reader and writer of :mod:`tests.reliability.hostile_memory`.
"""

from __future__ import annotations

from tests.reliability.hostile_cases import rx_case, server_tx_case
from tests.reliability.hostile_memory import NEXT, U32, ClientScene, Desc, ServerScene, Tally

RX_VARIANTS = (
    "clean",
    "mixed",
    "zero",
    "too_long",
    "too_long",
    "too_long_all",
    "long_all",
    "past_region",
    "past_region_all",
    "region",
    "next",
    "stray_flags",
    "moved",
    "outside",
)
TX_VARIANTS = ("clean", "small", "small", "past_region", "region", "next", "stray_flags", "moved")


def slot_buffers(
    scene: ServerScene | ClientScene, first: int, count: int, at_end: bool
) -> list[tuple[int, int]]:
    """(region, offset) of the buffer each slot from counter ``first`` on always uses.

    A hostile client picks its buffers: its ring's own, or (``at_end``) the
    last ones of the region.
    """
    if isinstance(scene, ServerScene):
        ring = scene.tx_ring if at_end else scene.rx_ring
        return [(0, scene.mem.buffer(ring, first + n)) for n in range(count)]  # type: ignore[attr-defined]
    out = []
    for n in range(count):  # what the victim posted (it restores its descriptors every burst)
        _, region, _, offset = scene.mem.descriptor(scene.rx_ring, first + n)
        out.append((region, offset))
    return out


def tamper(scene: ServerScene | ClientScene, descs: list[Desc], variant: str) -> list[Desc]:
    """Apply one ``variant`` of lying to one descriptor (or to all of them)."""
    rng = scene.rng
    j = rng.randrange(len(descs))
    d = descs[j]
    size = scene.geometry.sizes[d.region]
    limit = scene.geometry.max_desc_len
    changed = {
        "zero": Desc(d.flags, d.region, 0, d.offset),
        "too_long": Desc(d.flags, d.region, rng.choice([limit + 1, limit + 1, U32]), d.offset),
        "region": Desc(d.flags, rng.randint(len(scene.geometry.sizes), 0xFFFF), d.length, d.offset),
        "next": Desc(d.flags | NEXT, d.region, d.length, d.offset),
        "moved": Desc(d.flags, d.region, d.length, rng.randint(0, size - d.length)),
        "outside": Desc(d.flags, d.region, d.length, rng.randint(size - d.length + 1, U32)),
    }
    if variant == "past_region":  # the buffer furthest out, told to run past the region's end
        j = max(range(len(descs)), key=lambda i: descs[i].offset)
        d = descs[j]
        changed[variant] = Desc(d.flags, d.region, size - d.offset + 1, d.offset)
    if variant in changed:
        return [*descs[:j], changed[variant], *descs[j + 1 :]]
    if variant == "mixed":
        return [Desc(x.flags, x.region, rng.randint(1, x.length), x.offset) for x in descs]
    if variant == "long_all":  # one length for all, far beyond a buffer: overlaps, may pass the end
        length = rng.randint(scene.buffer_size, limit)
        return [Desc(x.flags, x.region, length, x.offset) for x in descs]
    if variant == "too_long_all":
        return [Desc(x.flags, x.region, limit + 1, x.offset) for x in descs]
    if variant == "past_region_all":  # one length for all that takes the last one past the end
        length = size - max(x.offset for x in descs) + 1
        if length <= limit:
            return [Desc(x.flags, x.region, length, x.offset) for x in descs]
    if variant == "stray_flags":
        flags = rng.randrange(0x10000) & ~NEXT
        return [Desc(flags, x.region, x.length, x.offset) for x in descs]
    return descs


def rx_fixed_case(scene: ServerScene | ClientScene, tally: Tally, variant: str) -> None:
    """A burst in the slots' own buffers, tampered with by ``variant``, read by the victim."""
    rng = scene.rng
    at_end = rng.random() < 0.5
    for lesson in (True, False):
        if isinstance(scene, ServerScene):
            _, _, _, first = scene.mem.header(scene.rx_ring)
            room = scene.size
        else:
            head, first = scene.posted()
            room = (head - first) & 0xFFFF
        count = room if lesson else rng.choice([1, 2, rng.randint(1, room), room])
        length = rng.choice([1, scene.buffer_size, rng.randint(1, scene.buffer_size)])
        where = slot_buffers(scene, first, count, at_end)
        descs = [Desc(0, region, length, offset) for region, offset in where]
        rx_case(scene, descs if lesson else tamper(scene, descs, variant), tally)


def rx_relearn_case(scene: ServerScene, tally: Tally) -> None:
    """A partial burst moves one buffer (relearned), then the ring's furthest one runs past the end.

    The bound of every known offset must still cover the furthest buffer,
    which the partial burst did not include.
    """
    rng = scene.rng
    _, _, _, first = scene.mem.header(scene.rx_ring)
    where = slot_buffers(scene, first, scene.size, True)
    rx_case(scene, [Desc(0, r, scene.buffer_size, o) for r, o in where], tally)  # lesson
    _, _, _, first = scene.mem.header(scene.rx_ring)
    short = (scene.size - 1) - (first & (scene.size - 1))  # up to, not including, the last slot
    moved = scene.mem.buffer(scene.rx_ring, 0)  # type: ignore[attr-defined]
    slot = -1
    if short:
        where = slot_buffers(scene, first, short, True)
        descs = [Desc(0, r, 64, o) for r, o in where]
        j = rng.randrange(short)
        descs[j] = Desc(0, 0, 64, moved)
        slot = (first + j) & (scene.size - 1)
        rx_case(scene, descs, tally)
    _, _, _, first = scene.mem.header(scene.rx_ring)
    where = slot_buffers(scene, first, scene.size, True)
    length = scene.geometry.sizes[0] - max(o for _, o in where) + 1
    descs = [Desc(0, r, length, o) for r, o in where]
    if slot >= 0:  # that slot keeps the buffer it moved to
        j = (slot - first) & (scene.size - 1)
        descs[j] = Desc(0, 0, length, moved)
    rx_case(scene, descs, tally)


def server_tx_fixed_case(scene: ServerScene, tally: Tally, variant: str) -> None:
    """The attacker posts each slot's own buffer, tampered with by ``variant``; the victim fills."""
    rng = scene.rng
    _, _, _, first = scene.mem.header(scene.tx_ring)
    lesson = [
        Desc(0, 0, scene.buffer_size, scene.mem.buffer(scene.tx_ring, first + n))  # type: ignore[attr-defined]
        for n in range(scene.size)
    ]
    server_tx_case(scene, tally, 0.0, posted=lesson, packets=[b"\xa5" * 60] * scene.size)
    _, _, _, first = scene.mem.header(scene.tx_ring)
    count = rng.choice([1, rng.randint(1, scene.size), scene.size])
    capacity = rng.choice([scene.buffer_size, rng.randint(1, scene.buffer_size)])
    posted = [
        Desc(0, 0, capacity, scene.mem.buffer(scene.tx_ring, first + n))  # type: ignore[attr-defined]
        for n in range(count)
    ]
    if variant == "small":
        j = rng.randrange(count)
        posted[j] = Desc(0, 0, rng.randint(1, capacity), posted[j].offset)
    elif variant == "past_region":  # the whole buffer must lie in the region, used or not
        j = rng.randrange(count)
        posted[j] = Desc(0, 0, scene.geometry.sizes[0] - posted[j].offset + 1, posted[j].offset)
    elif variant == "moved":  # to a buffer no other posted one overlaps (the other ring's)
        j = rng.randrange(count)
        posted[j] = Desc(0, 0, capacity, scene.mem.buffer(scene.rx_ring, rng.randrange(scene.size)))  # type: ignore[attr-defined]
    elif variant in ("region", "next", "stray_flags"):
        posted = tamper(scene, posted, variant)
    size = rng.choice([capacity, capacity, rng.randint(1, capacity)])
    packets = [rng.randbytes(size) for _ in range(rng.choice([count, rng.randint(1, count)]))]
    if rng.random() < 0.3:
        packets = [rng.randbytes(rng.randint(1, capacity)) for _ in packets]
    server_tx_case(scene, tally, 0.0, posted=posted, packets=packets)


def server_tx_wide_case(scene: ServerScene, tally: Tally) -> None:
    """Posted buffers larger than their spacing: one packet wider than the spacing.

    The buffers overlap (the attacker's business); the victim must still
    write the packet at its slot's offset and nowhere else.
    """
    rng = scene.rng
    wide = 2 * scene.buffer_size

    def posted(count: int) -> list[Desc]:
        _, _, _, first = scene.mem.header(scene.tx_ring)
        return [
            Desc(0, 0, wide, scene.mem.buffer(scene.rx_ring, first + n))  # type: ignore[attr-defined]
            for n in range(count)
        ]

    lesson = [b"\x5a" * 60] * scene.size
    server_tx_case(scene, tally, 0.0, posted=posted(scene.size), packets=lesson)
    packet = rng.randbytes(rng.randint(scene.buffer_size + 1, wide))
    server_tx_case(scene, tally, 0.0, posted=posted(1), packets=[packet])


def server_fastpath_cases(scene: ServerScene, count: int) -> Tally:
    """``count`` fixed-slot cases against our server, receive and transmit."""
    tally = Tally()
    for _ in range(count):
        draw = scene.rng.random()
        if draw < 0.05:
            tally.count("rx_relearn")
            rx_relearn_case(scene, tally)
        elif draw < 0.1:
            tally.count("tx_wide")
            server_tx_wide_case(scene, tally)
        elif draw < 0.6:
            variant = scene.rng.choice(RX_VARIANTS)
            tally.count(f"rx_{variant}")
            rx_fixed_case(scene, tally, variant)
        else:
            variant = scene.rng.choice(TX_VARIANTS)
            tally.count(f"tx_{variant}")
            server_tx_fixed_case(scene, tally, variant)
    return tally


def client_fastpath_cases(scene: ClientScene, count: int) -> Tally:
    """``count`` fixed-slot receive cases against our client."""
    tally = Tally()
    for _ in range(count):
        variant = scene.rng.choice(RX_VARIANTS)
        tally.count(f"rx_{variant}")
        rx_fixed_case(scene, tally, variant)
    return tally
