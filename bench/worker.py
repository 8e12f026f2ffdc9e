"""The Python side of each benchmark case, run in its own pinned process.

``python -m bench.worker CASE --socket PATH ...`` prints one JSON object with
its measurements on stdout when done. With ``--serve`` (rx and tx) it connects,
prints ``{"ready": true}`` and then measures one window per ``run SECONDS``
line on stdin, idle in between; ``drain`` receives what is left and prints the
totals, ``quit`` ends it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import struct
import sys
import time
from collections.abc import Callable, Mapping

import memif

PAYLOAD_HEADER = bytes.fromhex("02fe0000000102fe000000020800")


def _frame(size: int, number: int = 0) -> bytes:
    """An Ethernet frame of ``size`` bytes whose payload starts with ``number``."""
    body = number.to_bytes(4, "little") + bytes(size - len(PAYLOAD_HEADER) - 4)
    return PAYLOAD_HEADER + body


def _pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def _connect(args: argparse.Namespace) -> tuple[memif.Socket, memif.Interface]:
    sock = memif.Socket(args.socket, reconnect_interval=0.2)
    iface = sock.create_interface(
        id=0,
        role=args.role,
        name=f"bench-{args.case}",
        rx_mode=args.rx_mode,
        memory={"log2_ring_size": args.log2_ring, "packet_buffer_size": args.buffer_size},
    )
    sock.start()
    if not iface.wait_connected(args.connect_timeout):
        raise SystemExit(f"not connected: {iface.disconnect_reason}")
    return sock, iface


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


SLICE = 0.1  # seconds per rate sample inside a window


def _run_for(
    seconds: float, step: Callable[[], int], slices: list[float] | None = None
) -> tuple[int, float, int]:
    """Call ``step`` in rounds of 64 for ``seconds``.

    Returns its summed results, the time and the minor page faults the process
    took meanwhile; the rate of every :data:`SLICE` goes into ``slices``. The
    clock is read once a round, so its cost stays out of the figures.
    """
    count = 0
    faults = _minor_faults()
    start = time.perf_counter()
    end = start + seconds
    now = mark = start
    marked = 0
    while now < end:
        for _ in range(64):
            count += step()
        now = time.perf_counter()
        if slices is not None and now - mark >= SLICE:
            slices.append((count - marked) / (now - mark))
            mark, marked = now, count
    return count, now - start, _minor_faults() - faults


def _serve(step: Callable[[], int], drain: Callable[[], dict[str, int]]) -> None:
    """Measure one window per ``run SECONDS`` command until ``quit``."""
    _reply({"ready": True})
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "run":
            slices: list[float] = []
            count, elapsed, faults = _run_for(float(value), step, slices)
            _reply({"packets": count, "seconds": elapsed, "faults": faults, "slices": slices})
        elif command == "drain":
            _reply(drain())
        elif command == "quit":
            return


def _reply(message: Mapping[str, object]) -> None:
    json.dump(message, sys.stdout)
    print(flush=True)


def case_rx(args: argparse.Namespace) -> dict[str, float]:
    """Receive for ``seconds``; the packet rate after the first packet arrives."""
    sock, iface = _connect(args)
    rxq = iface.rx_queue(0)
    burst = args.burst
    recv = rxq.recv_burst if args.api == "list" else getattr(rxq, f"recv_{args.api}")

    def receive() -> int:
        return len(recv(burst))

    if args.serve:

        def drain() -> dict[str, int]:
            quiet = time.monotonic() + 0.3
            while time.monotonic() < quiet:
                if receive():
                    quiet = time.monotonic() + 0.3
            stats = iface.stats()["rx"]
            return {
                "total": stats["packets"],
                "drops": stats["drops"],
                "bad_descriptors": stats["bad_descriptors"],
            }

        _serve(receive, drain)
        sock.close()
        return {}
    while not rxq.pending():
        time.sleep(0.001)
    count, elapsed, faults = _run_for(args.seconds, receive)
    nbytes = iface.stats()["rx"]["bytes"]
    sock.close()
    return {
        "pps": count / elapsed,
        "bytes": nbytes,
        "seconds": elapsed,
        "faults_per_packet": faults / max(count, 1),
    }


def case_tx(args: argparse.Namespace) -> dict[str, float]:
    """Send bursts for ``seconds``; the accepted packet rate."""
    sock, iface = _connect(args)
    txq = iface.tx_queue(0)
    packets = [_frame(args.size, n) for n in range(args.burst)]
    if args.api == "batch":
        from memif.batch import Batch

        batch = Batch.from_packets(packets)
        send = lambda: txq.send_batch(batch)  # noqa: E731
    else:
        send = lambda: txq.send_burst(packets)  # noqa: E731
    if args.serve:
        _serve(send, lambda: {"total": iface.stats()["tx"]["packets"]})
        sock.close()
        return {}
    time.sleep(0.5)  # let the peer settle after CONNECTED
    count, elapsed, faults = _run_for(args.seconds, send)
    sock.close()
    return {"pps": count / elapsed, "seconds": elapsed, "faults_per_packet": faults / max(count, 1)}


def case_echo(args: argparse.Namespace) -> dict[str, float]:
    """Send back everything received, in bursts."""
    sock, iface = _connect(args)
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    burst = args.burst

    def echo() -> int:
        packets = rxq.recv_burst(burst)
        return txq.send_burst(packets) if packets else 0

    count, elapsed, _ = _run_for(args.seconds, echo)
    stats = iface.stats()
    sock.close()
    return {
        "pps": count / elapsed,
        "rx": stats["rx"]["packets"],
        "ring_full": stats["tx"]["ring_full"],
    }


def case_pingpong(args: argparse.Namespace) -> dict[str, float]:
    """One 64 B packet at a time to an echoing peer; round-trip percentiles in µs."""
    sock, iface = _connect(args)
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    frame = _frame(64)
    interrupt = args.rx_mode == "interrupt"
    samples: list[float] = []
    lost = 0
    time.sleep(0.5)
    deadline = time.perf_counter() + args.seconds
    clock = time.perf_counter_ns
    while time.perf_counter() < deadline:
        sent = clock()
        txq.send(frame)
        limit = sent + 100_000_000
        while True:
            got = rxq.recv_burst(8)
            if got:
                samples.append((clock() - sent) / 1000)
                break
            if interrupt:
                rxq.wait(0.1)
            if clock() > limit:
                lost += 1
                break
        if interrupt:
            time.sleep(0.0005)  # let the core go idle, as a real idle interface would
    sock.close()
    samples.sort()

    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    return {
        "p50_us": statistics.median(samples) if samples else -1.0,
        "p99_us": pick(0.99) if samples else -1.0,
        "samples": len(samples),
        "lost": lost,
    }


_STAMP = struct.Struct("<QQ")  # sequence number, send time (ns), right after the Ethernet header


class _Window:
    """What the probe saw since the last report: echoes, their gaps and round trips."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.first_seq: int | None = None  # echoes come back in order: gaps are losses
        self.last_seq = 0
        self.last: int | None = None
        self.max_gap = 0
        self.max_send_gap = 0  # the probe's own hiccups (it was not scheduled)
        self.rtts: list[int] = []

    def report(self, interval_ns: int) -> dict[str, float]:
        rtts = sorted(self.rtts) or [0]

        def pick(q: float) -> float:
            return rtts[min(len(rtts) - 1, int(q * len(rtts)))] / 1e6

        return {
            "sent": self.sent,
            "received": self.received,
            "lost": 0
            if self.first_seq is None
            else self.last_seq - self.first_seq + 1 - self.received,
            "max_gap_ms": self.max_gap / 1e6,
            "max_send_gap_ms": self.max_send_gap / 1e6,
            "interval_ms": interval_ns / 1e6,
            "rtt_p50_ms": pick(0.5),
            "rtt_p999_ms": pick(0.999),
            "rtt_max_ms": rtts[-1] / 1e6,
        }


def case_probe(args: argparse.Namespace) -> dict[str, float]:
    """One stamped packet every ``interval_us`` to an echoing path; gaps between echoes.

    Runs at real-time priority where allowed, so what it measures is the path,
    not its own scheduling. Prints ``ready`` once the first echo is back. Each
    SIGUSR1 prints the figures of the window since the previous one (a JSON
    line) and starts a new window; the last window is the result.
    """
    with contextlib.suppress(OSError):  # the probe's own hiccups must not count as stalls
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    sock, iface = _connect(args)
    rxq, txq = iface.rx_queue(0), iface.tx_queue(0)
    clock = time.perf_counter_ns
    interval = args.interval_us * 1000
    header = _frame(64)[:14]
    pad = bytes(64 - 14 - _STAMP.size)
    marks: list[int] = []
    signal.signal(signal.SIGUSR1, lambda *_: marks.append(1))
    window = _Window()
    seq = 0
    ready = False
    start = clock()
    end = None
    next_send = start
    last_send = start
    while end is None or clock() < end:
        now = clock()
        if now >= next_send:
            seq += 1
            if txq.send(header + _STAMP.pack(seq, now) + pad):
                window.sent += 1
            window.max_send_gap = max(window.max_send_gap, now - last_send)
            last_send = now
            next_send = max(next_send + interval, now - interval)
        for packet in rxq.recv_burst(64):
            now = clock()
            echoed_seq, stamp = _STAMP.unpack_from(packet, 14)
            if stamp < start:
                continue
            window.received += 1
            if window.first_seq is None:
                window.first_seq = echoed_seq
            window.last_seq = echoed_seq
            window.rtts.append(now - stamp)
            if window.last is not None:
                window.max_gap = max(window.max_gap, now - window.last)
            window.last = now
            if not ready:
                ready = True
                print("ready", flush=True)
                end = clock() + int(args.seconds * 1e9)
                window = _Window()
                window.last = now
        if marks:
            marks.clear()
            print(json.dumps(window.report(interval)), flush=True)
            last, window = window.last, _Window()
            window.last = last
        wait = (next_send - clock()) / 1e9
        if wait > 0:
            rxq.wait(wait)
    sock.close()
    return window.report(interval)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("case", choices=["rx", "tx", "echo", "pingpong", "probe"])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--role", default="server")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--burst", type=int, default=256)
    parser.add_argument("--api", choices=["list", "batch", "views"], default="list")
    parser.add_argument("--rx-mode", default="polling")
    parser.add_argument("--log2-ring", type=int, default=10)
    parser.add_argument("--buffer-size", type=int, default=2048)
    parser.add_argument("--core", type=int)
    parser.add_argument("--connect-timeout", type=float, default=20.0)
    parser.add_argument("--serve", action="store_true", help="measure windows on command")
    parser.add_argument("--interval-us", type=int, default=500)
    args = parser.parse_args()
    _pin(args.core)
    result = {
        "rx": case_rx,
        "tx": case_tx,
        "echo": case_echo,
        "pingpong": case_pingpong,
        "probe": case_probe,
    }[args.case](args)
    if result:
        _reply(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
