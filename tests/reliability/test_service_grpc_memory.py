"""Many gRPC clients sending packet batches of the largest size at once: memory stays bounded.

Against ``memifd serve``, :data:`CLIENTS` clients each keep an Inject stream
busy with batches of :data:`BATCH_PACKETS` packets of 65,535 bytes (just under
the 8 MiB message limit) into one connected interface. The batches share the
``grpc_batch_memory`` budget (32 MiB): those that find no room are refused with
RESOURCE_EXHAUSTED naming it, the rest are sent, and memifd's resident memory
stays within :data:`RSS_BOUND_MIB` of where it started. A batch over the limit
is refused whole.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
from memifd.core.limits import GRPC_MAX_BATCH_BYTES
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

from tests.memifd.rest_support import memif_clients
from tests.reliability.service_support import RssSampler, rss_mib, start_daemon, write_config

CLIENTS = 32
BATCH_PACKETS = 127  # 127 x 65,535 bytes and framing: 8,323,500 bytes, the most that fits
BATCHES_PER_CALL = 4
SECONDS = 4.0
# memifd's growth: the 32 MiB budget, each batch also copied by grpcio while it arrives and
# parsed into packets while it is sent, plus grpcio's windows and threads. Measured: 163 to
# 201 MiB (before the budget: 1,070 to 1,110 MiB, and 250 to 570 MiB kept after the load).
RSS_BOUND_MIB = 360


def test_concurrent_maximal_batches_keep_memory_bounded(sock_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "memifd.yaml", [{"name": "inj", "socket": "inj.sock"}])
    daemon = start_daemon(sock_dir, config)
    assert daemon.proc is not None
    pid = daemon.proc.pid
    address = f"127.0.0.1:{daemon.grpc_port}"
    batch = pb.InjectRequest(interface="inj", packets=[b"\xab" * 65_535] * BATCH_PACKETS)
    assert batch.ByteSize() <= GRPC_MAX_BATCH_BYTES
    outcomes: Counter[str] = Counter()
    details: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client() -> None:
        options = [("grpc.max_send_message_length", 2 * GRPC_MAX_BATCH_BYTES)]
        with grpc.insecure_channel(address, options=options) as channel:
            stub = pb_grpc.MemifStub(channel)
            while time.monotonic() < deadline:
                try:
                    stub.Inject(iter([batch] * BATCHES_PER_CALL), timeout=30)
                    outcome = "ok"
                except grpc.RpcError as exc:
                    outcome = exc.code().name
                    with lock:
                        details.append(str(exc.details()))
                with lock:
                    outcomes[outcome] += 1

    try:
        with memif_clients(str(sock_dir / "inj.sock"), [0]) as (peer,):
            assert peer.wait_connected(5)
            before = rss_mib(pid)
            threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
            with RssSampler(pid) as rss:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(60)
            after = rss_mib(pid)
            with grpc.insecure_channel(address) as channel:
                too_big = pb.InjectRequest(interface="inj", packets=[b"x" * 65_535] * 130)
                try:
                    pb_grpc.MemifStub(channel).Inject(iter([too_big]), timeout=30)
                    raise AssertionError("a batch over the message limit was taken")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        print(
            f"\n{CLIENTS} clients, batches of {batch.ByteSize()} bytes: {dict(outcomes)}; "
            f"memifd RSS {before:.1f} -> peak {rss.peak:.1f} -> {after:.1f} MiB"
        )
        assert outcomes["ok"] > 0
        assert set(outcomes) <= {"ok", "RESOURCE_EXHAUSTED"}, (outcomes, details[:3])
        assert all("grpc_batch_memory" in text for text in details), details[:3]
        assert rss.peak - before < RSS_BOUND_MIB, (before, rss.peak, after, dict(outcomes))
        assert daemon.terminate(timeout=10)[0] == 0
    finally:
        daemon.kill()
