"""gRPC packet streams end to end: dpdk-testpmd ⇄ memif ⇄ memifd ⇄ gRPC client."""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from memifd.proto.memif.v1 import memif_pb2 as pb

from tests import testpmd as testpmd_mod
from tests.memifd.grpc_support import (
    GrpcEnv,
    frame,
    frame_seq,
    grpc_env,
    memif_stub,
    wait_connected,
    wait_for,
)
from tests.memifd.rest_support import Daemon
from tests.waiting import wait_until

__all__ = ["grpc_env"]

pytestmark = pytest.mark.interop

PACKETS = 10_000
RING = 12
IN_FLIGHT = 4  # exchange batches sent before waiting for a result
WARM_UP = 1 << 40  # sequence numbers of probe packets


Pmd = testpmd_mod.TestPmd


def _peer(env: GrpcEnv, testpmd: Callable[..., Pmd], mode: str) -> Pmd:
    """A server interface ``srv`` with testpmd connected to it as a client in ``mode``.

    Rings of 4096 slots: the Python side gets time to drain what testpmd sends.
    """
    env.create("srv", socket="pmd.sock", memory=pb.MemoryConfig(log2_ring_size=RING))
    pmd = testpmd(socket=env.socket_path("pmd.sock"), role="client", forward_mode=mode, rsize=RING)
    wait_connected(env, "srv")
    return pmd


def test_capture_receives_10000_packets_from_testpmd(
    grpc_env: GrpcEnv, testpmd: Callable[..., Pmd]
) -> None:
    _peer(grpc_env, testpmd, "txonly")
    request = pb.CaptureRequest(interface="srv", direction=pb.DIRECTION_RX, count=PACKETS)
    batches = list(grpc_env.stub.Capture(request, timeout=60))
    packets = [p for batch in batches for p in batch.packets]
    assert len(packets) == PACKETS
    assert batches[-1].dropped == 0
    assert max(len(batch.packets) for batch in batches) <= 256
    first = packets[0]
    assert (first.interface, first.queue, first.direction) == ("srv", 0, pb.DIRECTION_RX)
    assert first.orig_len == len(first.data) == 64  # testpmd's default txonly packet
    assert all(p.timestamp_ns > 0 for p in packets[:10])


def test_stalled_capture_does_not_slow_another(
    grpc_env: GrpcEnv, testpmd: Callable[..., Pmd]
) -> None:
    _peer(grpc_env, testpmd, "txonly")
    stalled = grpc_env.stub.Capture(
        pb.CaptureRequest(interface="srv", direction=pb.DIRECTION_RX, buffer=1024), timeout=60
    )
    try:
        next(stalled)  # started; from now on nobody reads it
        reader = pb.CaptureRequest(interface="srv", direction=pb.DIRECTION_RX, count=PACKETS)
        batches = list(grpc_env.stub.Capture(reader, timeout=60))
        assert sum(len(b.packets) for b in batches) == PACKETS
        assert batches[-1].dropped == 0

        def drops() -> int:
            stats = grpc_env.stub.GetStats(pb.GetStatsRequest(name="srv"))
            return int(stats.subscriber_drops)

        wait_for(lambda: drops() > 0, 30, "the stalled capture to lose packets")
        for batch in stalled:  # past what gRPC buffered, the loss shows
            if batch.dropped:
                break
        assert 0 < batch.dropped <= drops()
    finally:
        stalled.cancel()


def _inject(env: GrpcEnv, packets: list[bytes]) -> pb.InjectResponse:
    def requests() -> Iterator[pb.InjectRequest]:
        for start in range(0, len(packets), 256):
            yield pb.InjectRequest(interface="srv", packets=packets[start : start + 256])

    response: pb.InjectResponse = env.stub.Inject(requests(), timeout=60)
    return response


def test_inject_10000_packets_that_testpmd_counts(
    grpc_env: GrpcEnv, testpmd: Callable[..., Pmd]
) -> None:
    pmd = _peer(grpc_env, testpmd, "rxonly")
    pending = [frame(i) for i in range(PACKETS)]
    accepted = 0
    for _ in range(50):  # what did not fit in the ring is sent again
        reply = _inject(grpc_env, pending)
        assert reply.accepted + reply.ring_full == len(pending)
        assert reply.batches == (len(pending) + 255) // 256
        accepted += reply.accepted
        pending = pending[reply.accepted :] if reply.ring_full else []
        if not pending:
            break
    assert accepted == PACKETS
    assert pmd.wait_rx(PACKETS) == PACKETS
    stats = grpc_env.stub.GetStats(pb.GetStatsRequest(name="srv"))
    assert stats.injected == PACKETS
    assert stats.tx.packets == PACKETS


class _ExchangeClient:
    """Drives an Exchange stream: sends batches, keeps a few in flight, collects replies."""

    def __init__(self, env: GrpcEnv, interface: str) -> None:
        self._requests: queue.Queue[pb.ExchangeRequest | None] = queue.Queue()
        self._requests.put(pb.ExchangeRequest(open=pb.ExchangeOpen(interface=interface)))
        self.call = env.stub.Exchange(iter(self._requests.get, None), timeout=60)
        self.received: list[bytes] = []
        self.results: queue.Queue[pb.SendResult] = queue.Queue()
        self.dropped = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for response in self.call:
            if response.HasField("rx"):
                self.received += [p.data for p in response.rx.packets]
                self.dropped = response.rx.dropped
            else:
                self.results.put(response.sent)

    def warm_up(self) -> None:
        """Send single probes until one comes back: testpmd forwards a moment after the
        link is up, and drops what arrives before."""
        probes = itertools.count(WARM_UP)

        def returned() -> bool:
            probe = next(probes)
            self.send(probe, [frame(probe)])
            self.results.get(timeout=10)
            return bool(self.received)

        wait_until(returned, 10, 0.05, "testpmd to return a probe")

    def counted(self) -> list[bytes]:
        """Received packets other than warm-up probes."""
        return [p for p in self.received if frame_seq(p) < WARM_UP]

    def send(self, seq: int, packets: list[bytes]) -> None:
        self._requests.put(pb.ExchangeRequest(send=pb.ExchangeSend(seq=seq, packets=packets)))

    def close(self) -> None:
        self._requests.put(None)
        self._reader.join(timeout=30)


def test_exchange_with_testpmd_macswap_returns_every_packet(
    grpc_env: GrpcEnv, testpmd: Callable[..., Pmd]
) -> None:
    _peer(grpc_env, testpmd, "macswap")
    client = _ExchangeClient(grpc_env, "srv")
    client.warm_up()
    sent = {}  # seq -> packets of that batch
    pending = [frame(i) for i in range(PACKETS)]
    seq = 0
    in_flight = 0
    while pending or in_flight:
        while pending and in_flight < IN_FLIGHT:
            batch, pending = pending[:256], pending[256:]
            seq += 1
            sent[seq] = batch
            client.send(seq, batch)
            in_flight += 1
        result = client.results.get(timeout=30)
        in_flight -= 1
        batch = sent.pop(result.seq)
        assert result.accepted + result.ring_full == len(batch)
        pending += batch[result.accepted :]  # the server never waits: resend what did not fit
    wait_for(lambda: len(client.counted()) >= PACKETS, 20, "every packet back")
    client.close()
    assert client.call.code() == grpc.StatusCode.OK
    returned = client.counted()
    assert sorted(frame_seq(p) for p in returned) == list(range(PACKETS))
    assert returned[0][:6] == frame(0)[6:12] and returned[0][6:12] == frame(0)[:6]  # swapped
    assert client.dropped == 0
    stats = grpc_env.stub.GetStats(pb.GetStatsRequest(name="srv"))
    assert stats.exchanged == len(client.received)
    assert stats.action_drops == 0


def test_memifd_serve_with_memifctl_and_a_stream_at_shutdown(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, env={"MEMIFD_TOKEN": "serve-token"}).start()
    try:
        address = f"127.0.0.1:{daemon.grpc_port}"
        env = {**os.environ, "MEMIFD_GRPC_ADDR": address, "MEMIFD_TOKEN": "serve-token"}
        memifctl = [sys.executable, "-m", "memifd.cli.ctl"]
        created = subprocess.run(
            [*memifctl, "create", "vnf0", "--action", "echo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert created.returncode == 0, created.stderr
        listed = subprocess.run(
            [*memifctl, "list"], env=env, capture_output=True, text=True, timeout=30
        )
        assert listed.stdout.splitlines()[1].split()[:2] == ["vnf0", "server"]
        with grpc.insecure_channel(address) as channel:
            stub = memif_stub(channel)
            events = stub.WatchEvents(
                pb.WatchEventsRequest(include_current=True),
                timeout=30,
                metadata=(("authorization", "Bearer serve-token"),),
            )
            assert next(events).interface == "vnf0"
            code, _took = daemon.terminate()
            with pytest.raises(grpc.RpcError) as excinfo:
                for _ in events:
                    pass
        assert code == 0
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "memifd shutting down" in (excinfo.value.details() or "")
    finally:
        daemon.kill()
