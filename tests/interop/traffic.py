"""Traffic through an echoing peer (testpmd ``macswap``): exact frames, no loss tolerated.

Every frame carries its sequence number, queue and a payload derived from
both, so a reply is checked byte for byte against the frame that caused it
(with source and destination MAC swapped). Replies must come back in order:
one queue is one testpmd stream, and a stream keeps order.
"""

from __future__ import annotations

import contextlib
import random
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import memif

from tests.testpmd import TestPmd

DST_MAC = bytes.fromhex("02fe00000001")
SRC_MAC = bytes.fromhex("02fe00000002")
ETHERTYPE = 0x88B5  # IEEE "local experimental": nothing on the path interprets it
PROBE_ETHERTYPE = 0x88B6
_STAMP = struct.Struct("!IHH")  # sequence, queue, size
MIN_FRAME = 14 + _STAMP.size
STALL = 5.0  # seconds without progress that fail a transfer
CONNECT = 15.0  # seconds allowed for a link to come up


def frame(seq: int, size: int, queue: int = 0) -> bytes:
    """Test frame ``seq`` of ``size`` bytes for ``queue``."""
    if size < MIN_FRAME:
        raise ValueError(f"frames must be at least {MIN_FRAME} bytes")
    stamp = _STAMP.pack(seq, queue, size)
    body = random.Random(seq << 8 | queue).randbytes(size - MIN_FRAME)
    return DST_MAC + SRC_MAC + ETHERTYPE.to_bytes(2, "big") + stamp + body


def swapped(data: bytes) -> bytes:
    """``data`` with destination and source MAC exchanged, as macswap returns it."""
    return data[6:12] + data[0:6] + data[12:]


@contextlib.contextmanager
def python_peer(path: str, role: str, **kwargs: Any) -> Iterator[memif.Interface]:
    """A Python memif interface on ``path`` with its socket loop running."""
    with memif.Socket(path, reconnect_interval=0.5) as sock:
        iface = sock.create_interface(role=role, name=f"python-{role}", **kwargs)
        sock.start()
        yield iface


def wait_up(iface: memif.Interface, pmd: TestPmd, timeout: float = CONNECT) -> None:
    """Wait for the link, failing with both sides' view of why not."""
    if not iface.wait_connected(timeout):
        pmd.check_alive()
        raise AssertionError(
            f"no link after {timeout}s: {iface.disconnect_reason or 'no reason'}; "
            f"socket refused: {iface.socket.last_refused_reason or 'nothing'}\n"
            f"testpmd log:\n{pmd.log()[-3000:]}"
        )


def warm_up(iface: memif.Interface, queues: Sequence[int] = (0,), timeout: float = 10.0) -> None:
    """Send probes on each queue, one at a time, until one returns.

    A testpmd client was seen to receive, but never forward, the frames that
    reach it in the first moments after it connects (the server side of a link
    is up when CONNECT arrives, before the client has handled CONNECTED).
    Probes find the moment forwarding works; the measured traffic that follows
    tolerates no loss.
    """
    probe = DST_MAC + SRC_MAC + PROBE_ETHERTYPE.to_bytes(2, "big") + bytes(50)
    for queue in queues:
        tx, rx = iface.tx_queue(queue), iface.rx_queue(queue)
        deadline = time.monotonic() + timeout
        answered = False
        while not answered:
            if time.monotonic() > deadline:
                raise AssertionError(f"queue {queue}: no probe returned within {timeout}s")
            tx.send(probe)
            until = time.monotonic() + 0.2
            while not answered and time.monotonic() < until:
                rx.wait(0.02)
                answered = any(p == swapped(probe) for p in rx.recv_burst(64))
        quiet = time.monotonic() + 0.1
        while time.monotonic() < quiet:  # a slow earlier probe must not count as traffic
            if rx.recv_burst(64):
                quiet = time.monotonic() + 0.1
            rx.wait(0.02)


@dataclass
class _Flow:
    """One queue's share of a transfer."""

    queue: int
    tx: memif.TxQueue
    rx: memif.RxQueue
    sent: int = 0
    received: int = 0
    backlog: list[bytes] = field(default_factory=list)


def echo(
    iface: memif.Interface,
    count: int,
    size: int,
    *,
    queues: Sequence[int] = (0,),
    pmd: TestPmd | None = None,
    burst: int = 32,
) -> None:
    """Send ``count`` frames of ``size`` bytes on each queue; expect each back swapped, in order.

    At most a ring's worth of descriptors is in flight per queue, so the echoing
    peer never finds a ring full and nothing may be lost, duplicated or altered.
    """
    memory = iface.memory
    assert memory is not None, "link is down"
    per_frame = -(-size // memory.packet_buffer_size)
    window = memory.ring_size // per_frame
    step = min(burst, window)
    flows = [_Flow(q, iface.tx_queue(q), iface.rx_queue(q)) for q in queues]
    progress = time.monotonic()
    while any(f.received < count for f in flows):
        moved = False
        for flow in flows:
            moved |= _pump(flow, count, size, window, step)
        if moved:
            progress = time.monotonic()
        elif time.monotonic() - progress > STALL:
            state = ", ".join(f"q{f.queue} sent {f.sent} got {f.received}" for f in flows)
            log = pmd.log()[-2000:] if pmd is not None else ""
            raise AssertionError(
                f"{size}-byte transfer stalled: {state}; window {window}; stats {iface.stats()}"
                f"\ntestpmd log:\n{log}"
            )
        else:
            flows[0].rx.wait(0.002)
    time.sleep(0.05)  # a frame beyond the count would arrive meanwhile
    for flow in flows:
        extra = flow.rx.recv_burst(64)
        assert not extra, f"queue {flow.queue}: {len(extra)} frames beyond the {count} sent"


def _pump(flow: _Flow, count: int, size: int, window: int, step: int) -> bool:
    """Send what the window allows and check what came back; True if anything moved."""
    moved = False
    room = min(step, window - (flow.sent - flow.received), count - flow.sent)
    if room > 0:
        if not flow.backlog:
            flow.backlog = [frame(s, size, flow.queue) for s in range(flow.sent, flow.sent + room)]
        taken = flow.tx.send_burst(flow.backlog)
        flow.backlog = flow.backlog[taken:]
        flow.sent += taken
        moved = taken > 0
    for reply in flow.rx.recv_burst(256):
        expected = swapped(frame(flow.received, size, flow.queue))
        if reply != expected:
            raise AssertionError(_mismatch(flow, reply, expected))
        flow.received += 1
        moved = True
    return moved


def _mismatch(flow: _Flow, reply: bytes, expected: bytes) -> str:
    if len(reply) >= MIN_FRAME:
        seq, queue, size = _STAMP.unpack_from(reply, 14)
        what = f"frame {seq} of queue {queue} ({size} bytes sent, {len(reply)} returned)"
    else:
        what = f"a {len(reply)}-byte frame"
    first = next((i for i, (a, b) in enumerate(zip(reply, expected, strict=False)) if a != b), None)
    return (
        f"queue {flow.queue}: expected frame {flow.received} back, got {what}; "
        f"first differing byte {first}"
    )
