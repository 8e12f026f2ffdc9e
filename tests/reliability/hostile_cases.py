"""The hostile-memory cases: one attacker move, one victim burst, one comparison.

Each case: the attacker (a raw peer that did its own handshake and owns the
other end of the memory) writes descriptors, counters or bytes; the victim
runs one burst (through ``recv_burst``/``send_burst`` or the numpy batch API);
the outcome is compared with what :mod:`tests.reliability.hostile_memory` says
a correct reader or writer must do. Bad packets must be dropped and counted,
their slots handed back; good ones delivered byte for byte; a ring whose
counters run past its size must cost the peer its link, and the victim must
take the next connection as if nothing happened. :func:`server_cases` and
:func:`client_cases` run a random mix; :func:`scribble_rounds` adds an
attacker in another process writing while traffic flows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import memif
from memif.batch import Batch
from memif.queue import MAX_BURST

from tests.reliability.hostile_memory import (
    NEXT,
    ClientScene,
    Desc,
    ServerScene,
    Tally,
    expected_fill,
    expected_read,
    good_desc,
    posted_descs,
    random_descs,
    read_chain,
)

# -- cases shared by both scenes ------------------------------------------------------------------


def receive(scene: ServerScene | ClientScene, rxq: memif.RxQueue) -> list[bytes]:
    """Everything waiting, through ``recv_burst``, ``recv_views`` or ``recv_batch``."""
    draw = scene.rng.random()
    if draw < 1 / 2:
        return rxq.recv_burst(MAX_BURST)
    if draw < 2 / 3:  # views hold their slots until the next call, which hands them back
        views = rxq.recv_views(MAX_BURST)
        copies = [bytes(view) for view in views]
        assert rxq.recv_views(MAX_BURST) == []
        return copies
    got: list[bytes] = []
    while batch := rxq.recv_batch(MAX_BURST):  # one contiguous run of slots per call
        got += batch.packets()
    return got


def send(scene: ServerScene | ClientScene, packets: list[bytes]) -> int:
    """``send_burst`` or (a third of the time) ``send_batch``; returns how many went."""
    txq = scene.victim.tx_queue(0)
    if scene.rng.random() < 2 / 3:
        return txq.send_burst(packets)
    return txq.send_batch(Batch.from_packets(packets))


def rx_case(scene: ServerScene | ClientScene, descs: list[Desc], tally: Tally) -> None:
    """Publish ``descs`` to the victim's receive ring and check what one burst returns."""
    rxq = scene.victim.rx_queue(0)
    before = rxq.stats.as_dict()
    scene.produce(descs)
    packets, drops = expected_read(descs, scene.geometry, scene.maps())
    got = receive(scene, rxq)
    after = rxq.stats.as_dict()
    assert got == packets, f"{len(got)} packets, expected {len(packets)}"
    assert after["drops"] - before["drops"] == drops
    bad = after["bad_descriptors"] - before["bad_descriptors"]
    assert (bad == 0) if drops == 0 else (drops <= bad <= len(descs) + 1)
    published, handed_back = scene.rx_position()
    assert published == handed_back, "slots were not all handed back"
    assert scene.victim.is_connected
    tally.packets += len(got)
    tally.drops += drops


def rx_break_case(scene: ServerScene | ClientScene, tally: Tally) -> None:
    """A counter beyond the ring: the victim reads nothing and drops the link."""
    rxq = scene.victim.rx_queue(0)
    bad_before = rxq.stats.bad_descriptors
    scene.break_rx()
    assert rxq.recv_burst(MAX_BURST) == []
    assert scene.victim.wait_disconnected(5)
    assert rxq.stats.bad_descriptors == bad_before + 1
    reason = scene.disconnect_reason()
    assert "slots" in reason, reason
    scene.reconnect()
    tally.reconnects += 1


def garbage_case(scene: ServerScene | ClientScene, whole_header: bool, tally: Tally) -> None:
    """Random bytes over a ring header or a stretch of a region; then one burst each way."""
    rng = scene.rng
    if whole_header:
        ring = rng.choice([scene.rx_ring, scene.tx_ring])
        scene.mem.write(ring.region, ring.offset, rng.randbytes(128))
    else:
        region = rng.randrange(len(scene.mem.maps))
        size = len(scene.mem.maps[region])
        start = rng.randrange(size)
        scene.mem.write(region, start, rng.randbytes(min(size - start, rng.randint(1, 1 << 14))))
    for packet in scene.victim.rx_queue(0).recv_burst(MAX_BURST):
        assert 0 < len(packet) <= 65535
    scene.victim.tx_queue(0).send_burst([rng.randbytes(rng.randint(1, 4096))])
    scene.reconnect()  # whatever state the garbage left, start clean
    tally.reconnects += 1


def run(
    scene: ServerScene | ClientScene,
    cases: dict[str, tuple[int, Callable[[], None]]],
    count: int,
    tally: Tally,
) -> None:
    """Run ``count`` cases drawn from ``cases`` (name: (weight, case)), counting each."""
    names = list(cases)
    weights = [cases[n][0] for n in names]
    for _ in range(count):
        name = scene.rng.choices(names, weights)[0]
        tally.count(name)
        cases[name][1]()


# -- our server against a hostile client -------------------------------------------------------


def server_tx_case(
    scene: ServerScene,
    tally: Tally,
    bad_share: float,
    posted: list[Desc] | None = None,
    packets: list[bytes] | None = None,
) -> None:
    """The attacker posts buffers (some bad); the victim fills them, chaining if it must."""
    rng = scene.rng
    txq = scene.victim.tx_queue(0)
    if posted is None:
        posted = posted_descs(
            rng, scene.geometry, rng.randint(1, scene.size), bad_share, scene.buffer_size
        )
    first = scene.post(posted)
    if packets is None:
        packets = [
            rng.randbytes(rng.randint(1, 3 * scene.buffer_size))
            for _ in range(rng.randint(1, scene.size))
        ]
    count, used, broken = expected_fill(posted, scene.geometry, [len(p) for p in packets])
    bad_before = txq.stats.bad_descriptors
    assert send(scene, packets) == count
    slot = first
    for packet in packets[:count]:
        data, slots = read_chain(scene.mem, scene.tx_ring, slot)
        assert data == packet
        slot += slots
    assert (slot - first) == used
    _, _, _, tail = scene.mem.header(scene.tx_ring)
    assert tail == (first + used) & 0xFFFF
    if broken:
        assert txq.stats.bad_descriptors == bad_before + 1
        assert scene.victim.wait_disconnected(5)
        scene.reconnect()
        tally.reconnects += 1
    else:
        assert scene.victim.is_connected
        scene.post([])  # take back what was posted and not used
    tally.packets += count


def server_tx_break(scene: ServerScene, tally: Tally) -> None:
    """More posted buffers than the ring holds: nothing is written, the link goes."""
    scene.break_tx()
    assert scene.victim.tx_queue(0).send_burst([b"x" * 60]) == 0
    assert scene.victim.wait_disconnected(5)
    scene.reconnect()
    tally.reconnects += 1


def server_cases(scene: ServerScene, count: int) -> Tally:
    """``count`` random cases against our server; returns what was tried and seen."""
    rng = scene.rng
    tally = Tally()
    size = scene.size

    def rx_random() -> None:
        share = rng.choice([0.0, 0.05, 0.3, 1.0])
        rx_case(scene, random_descs(rng, scene.geometry, rng.randint(1, size), share), tally)

    def rx_next_loop() -> None:
        descs = random_descs(rng, scene.geometry, rng.randint(1, size), 0.0)
        rx_case(scene, [Desc(d.flags | NEXT, d.region, d.length, d.offset) for d in descs], tally)

    def rx_oversized_chain() -> None:
        part = rng.randint(32768, 65535)
        descs = [
            Desc(NEXT, 0, part, scene.mem.buffer_offset + i * 256)  # type: ignore[attr-defined]
            for i in range(rng.randint(2, min(4, size)))
        ]
        descs[-1] = Desc(0, descs[-1].region, descs[-1].length, descs[-1].offset)
        rx_case(scene, descs, tally)

    cases = {
        "rx_random": (40, rx_random),
        "rx_next_loop": (5, rx_next_loop),
        "rx_oversized_chain": (3, rx_oversized_chain),
        "rx_counter_beyond_ring": (3, lambda: rx_break_case(scene, tally)),
        "tx_random": (25, lambda: server_tx_case(scene, tally, rng.choice([0.0, 0.0, 0.1, 1.0]))),
        "tx_counter_beyond_ring": (3, lambda: server_tx_break(scene, tally)),
        "garbage_header": (2, lambda: garbage_case(scene, True, tally)),
        "garbage_region": (2, lambda: garbage_case(scene, False, tally)),
    }
    run(scene, cases, count, tally)
    return tally


# -- our client against a hostile server -------------------------------------------------------


def client_tx_case(scene: ClientScene, tally: Tally) -> None:
    """The attacker moves the S2M tail anywhere legal; the victim fills only the room left."""
    rng = scene.rng
    size, buf = scene.size, scene.buffer_size
    head, _ = scene.s2m()
    inflight = rng.randint(0, size)
    scene.mem.set_tail(scene.tx_ring, head - inflight)
    packets = [rng.randbytes(rng.randint(1, 2 * buf)) for _ in range(rng.randint(1, size))]
    free = size - inflight
    count = used = 0
    for packet in packets:
        need = -(-len(packet) // buf)
        if used + need > free:
            break
        used += need
        count += 1
    assert send(scene, packets) == count
    slot = head
    for packet in packets[:count]:
        data, slots = read_chain(scene.mem, scene.tx_ring, slot)
        assert data == packet
        slot += slots
    new_head, _ = scene.s2m()
    assert new_head == (head + used) & 0xFFFF
    scene.mem.set_tail(scene.tx_ring, new_head)  # the attacker consumes everything
    tally.packets += count


def client_tx_break(scene: ClientScene, tally: Tally) -> None:
    """S2M tail further behind head than the ring is long: the link goes."""
    head, _ = scene.s2m()
    scene.mem.set_tail(scene.tx_ring, head - scene.rng.randint(scene.size + 1, 0xFFFF))
    assert scene.victim.tx_queue(0).send_burst([b"y" * 60]) == 0
    assert scene.victim.wait_disconnected(5)
    scene.reconnect()
    tally.reconnects += 1


def client_cases(scene: ClientScene, count: int) -> Tally:
    """``count`` random cases against our client; returns what was tried and seen."""
    rng = scene.rng
    tally = Tally()

    def posted() -> int:
        head, tail = scene.posted()
        return (head - tail) & 0xFFFF

    def rx_random() -> None:
        share = rng.choice([0.0, 0.05, 0.3, 1.0])
        rx_case(scene, random_descs(rng, scene.geometry, rng.randint(1, posted()), share), tally)

    def rx_next_loop() -> None:
        descs = random_descs(rng, scene.geometry, posted(), 0.0)
        rx_case(scene, [Desc(d.flags | NEXT, d.region, d.length, d.offset) for d in descs], tally)

    cases = {
        "rx_random": (40, rx_random),
        "rx_next_loop": (5, rx_next_loop),
        "rx_counter_beyond_posted": (3, lambda: rx_break_case(scene, tally)),
        "tx_random_room": (25, lambda: client_tx_case(scene, tally)),
        "tx_counter_beyond_ring": (3, lambda: client_tx_break(scene, tally)),
        "garbage_header": (2, lambda: garbage_case(scene, True, tally)),
        "garbage_region": (2, lambda: garbage_case(scene, False, tally)),
    }
    run(scene, cases, count, tally)
    return tally


# -- a scribbler in another process, while traffic flows -----------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def start_scribbler(
    scene: ServerScene | ClientScene, seed: int, seconds: float
) -> subprocess.Popen[str]:
    """A process that maps the connection's memory and writes garbage into it."""
    if isinstance(scene, ServerScene):
        regions = [(scene.mem.fd, scene.mem.size)]  # type: ignore[attr-defined]
        own = "head"
    else:
        link = scene.victim._link
        assert link is not None
        regions = [(r.fd, r.size) for r in link.regions]
        own = "tail"
    cmd = [
        sys.executable,
        "-m",
        "tests.reliability.scribbler",
        "--seconds",
        str(seconds),
        "--seed",
        str(seed),
    ]
    for fd, size in regions:
        cmd += ["--region", f"{fd}:{size}"]
    posting = own == "head"  # a client posts the buffers our server transmits into
    for ring, bad in ((scene.rx_ring, 0.02), (scene.tx_ring, 0.0 if posting else 0.02)):
        cmd += ["--ring", f"{ring.region}:{ring.offset}:{ring.log2}:{own}:{bad}"]
    return subprocess.Popen(
        cmd, pass_fds=[fd for fd, _ in regions], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


@dataclass
class ScribbleReport:
    """What a series of scribbler rounds did."""

    rounds: int
    writes: int
    packets: int
    victim_drops: int  # links the victim dropped itself before the round ended


def scribble_rounds(
    scene: ServerScene | ClientScene, rounds: int, seconds: float
) -> ScribbleReport:
    """Rounds of traffic through the victim while a scribbler process attacks the memory.

    Each round ends with a fresh connection; after the last, a clean burst must
    still arrive intact.
    """
    writes = packets = dropped = 0
    for round_ in range(rounds):
        rxq, txq = scene.victim.rx_queue(0), scene.victim.tx_queue(0)
        proc = start_scribbler(scene, round_, seconds)
        burst = [bytes(60)] * 8
        while proc.poll() is None:
            for packet in rxq.recv_burst(256):
                assert 0 < len(packet) <= 65535
                packets += 1
            txq.send_burst(burst)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        writes += json.loads(out)["writes"]
        dropped += not scene.victim.is_connected
        scene.reconnect()
    tally = Tally()
    rx_case(scene, [good_desc(scene.rng, scene.geometry, 1500) for _ in range(4)], tally)
    assert tally.packets == 4
    return ScribbleReport(rounds, writes, packets, dropped)
