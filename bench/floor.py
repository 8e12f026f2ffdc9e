"""Where the time goes: the library's per-packet CPU cost beside its irreducible part.

``python -m bench.floor`` connects two interfaces in one process over real
shared memory and times, in CPU time of this thread only (so other load on
the machine does not count), 256-packet bursts through ``send_burst``,
``recv_burst``, ``recv_views`` and the numpy batch API, next to the one
Python operation each of them cannot avoid per packet: slicing a bytes object
out of the mmap (receive), ``Struct.pack_into`` into it (transmit), slicing a
memoryview (views). The gap between the two is what the library adds.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
import timeit
from collections import deque
from collections.abc import Callable
from itertools import repeat

import memif

BURST = 256
HEADER = bytes.fromhex("02fe0000000102fe000000020800")


def _cpu_ns(step: Callable[[], object], packets: int, rounds: int = 5, number: int = 400) -> float:
    """Best of ``rounds`` of CPU time per packet of ``number`` calls of ``step``."""
    best = min(timeit.repeat(step, number=number, repeat=rounds, timer=time.thread_time))
    return best / number / packets * 1e9


def _pair(workdir: str, log2_ring: int) -> tuple[memif.Socket, memif.Interface, memif.Interface]:
    sock = memif.Socket(os.path.join(workdir, "floor.sock"), reconnect_interval=0.05)
    memory = memif.MemoryConfig(log2_ring_size=log2_ring)
    server = sock.create_interface(role="server", name="s", memory=memory)
    client = sock.create_interface(role="client", name="c", memory=memory)
    sock.start()
    if not (client.wait_connected(10) and server.wait_connected(10)):
        raise SystemExit("the two interfaces did not connect")
    return sock, client, server


def measure(size: int, log2_ring: int = 10) -> dict[str, float]:
    """ns per packet of each API call and of its irreducible operation, at ``size`` bytes."""
    packets = [HEADER + n.to_bytes(4, "little") + bytes(size - 18) for n in range(BURST)]
    region = __import__("mmap").mmap(-1, BURST * 2048 * 2)
    offsets = [n * 2048 for n in range(BURST)]
    readonly = memoryview(region).toreadonly()
    pack = struct.Struct(f"{size}s").pack_into
    out = {
        "bytes slice": _cpu_ns(lambda: [region[o : o + size] for o in offsets], BURST),
        "pack_into": _cpu_ns(lambda: deque(map(pack, repeat(region), offsets, packets), 0), BURST),
        "view slice": _cpu_ns(lambda: [readonly[o : o + size] for o in offsets], BURST),
    }
    with tempfile.TemporaryDirectory(prefix="memif-floor-") as workdir:
        sock, client, server = _pair(workdir, log2_ring)
        try:
            tx, rx = client.tx_queue(0), server.rx_queue(0)
            send, receive = _alternate(lambda: tx.send_burst(packets), rx.recv_burst)
            out["send_burst"], out["recv_burst"] = send, receive
            out["recv_views"] = _alternate(lambda: tx.send_burst(packets), rx.recv_views)[1]
            try:
                from memif.batch import Batch
            except ImportError:
                return out
            batch = Batch.from_packets(packets)
            send, receive = _alternate(lambda: tx.send_batch(batch), rx.recv_batch)
            out["send_batch"], out["recv_batch"] = send, receive
        finally:
            sock.close()
    return out


def _alternate(
    send: Callable[[], int], receive: Callable[[int], object], rounds: int = 5, bursts: int = 400
) -> tuple[float, float]:
    """CPU ns per packet of ``send`` and of ``receive``, called in turns (best round)."""
    clock = time.thread_time_ns
    best_send = best_receive = float("inf")
    for _ in range(rounds):
        sending = receiving = packets = 0
        for _ in range(bursts):
            start = clock()
            sent = send()
            middle = clock()
            receive(BURST)
            receiving += clock() - middle
            sending += middle - start
            packets += sent
        best_send = min(best_send, sending / packets)
        best_receive = min(best_receive, receiving / packets)
    return best_send, best_receive


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--sizes", default="64,1500", help="packet sizes, comma-separated")
    parser.add_argument("--log2-ring", type=int, default=10, help="ring size (default 1024)")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size} B, CPU ns per packet (bursts of {BURST}):")
        for name, ns in measure(size, args.log2_ring).items():
            print(f"  {name:<26} {ns:7.1f} ns  ({1e3 / ns:5.2f} Mpps on one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
