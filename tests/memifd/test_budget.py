"""Byte budgets: the shared bound on what gRPC packet batches hold in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from memifd.api.grpc import servicer as grpc_api
from memifd.api.grpc.batch_budget import BatchBudget, MeteredRequests
from memifd.core.budget import ByteBudget
from memifd.core.errors import LimitExceededError
from memifd.core.limits import GRPC_MAX_BATCH_BYTES
from memifd.core.models import InjectResult
from memifd.core.settings import Settings
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

from tests.memifd.rest_support import wait_for

# -- ByteBudget -------------------------------------------------------------------------------


def test_takes_until_full_then_refuses_and_counts() -> None:
    budget = ByteBudget(100)
    assert budget.try_take(60) and budget.try_take(40)
    assert not budget.try_take(1)
    assert (budget.used, budget.refused) == (100, 1)
    budget.release(40)
    assert budget.try_take(40)


def test_take_waits_for_a_release() -> None:
    budget = ByteBudget(100)
    assert budget.try_take(100)
    timer = threading.Timer(0.1, budget.release, args=(50,))
    timer.start()
    started = time.monotonic()
    assert budget.take(50, timeout=5.0)
    assert 0.05 < time.monotonic() - started < 4.0
    assert budget.used == 100
    timer.join()


def test_take_gives_up_after_its_timeout() -> None:
    budget = ByteBudget(100)
    assert budget.try_take(80)
    started = time.monotonic()
    assert not budget.take(30, timeout=0.1)
    assert time.monotonic() - started >= 0.1
    assert (budget.used, budget.refused) == (80, 1)


def test_more_than_the_capacity_never_fits_and_is_refused_at_once() -> None:
    budget = ByteBudget(100)
    started = time.monotonic()
    assert not budget.take(101, timeout=5.0)
    assert not budget.has_room(101, timeout=5.0)
    assert time.monotonic() - started < 1.0


def test_has_room_reserves_nothing() -> None:
    budget = ByteBudget(100)
    assert budget.has_room(100, timeout=0)
    assert budget.used == 0
    budget.try_take(1)
    assert not budget.has_room(100, timeout=0)


def test_a_budget_needs_a_capacity() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        ByteBudget(0)


def test_the_setting_holds_at_least_one_batch_of_the_largest_size() -> None:
    assert Settings().grpc_batch_memory == 32 << 20
    with pytest.raises(ValueError, match="grpc_batch_memory"):
        Settings(grpc_batch_memory=GRPC_MAX_BATCH_BYTES - 1)


# -- MeteredRequests --------------------------------------------------------------------------


def test_a_batch_holds_its_bytes_until_the_next_one_is_asked_for() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    batches = MeteredRequests(iter([b"a" * 10, b"b" * 20]), budget, wait=0.1)
    assert next(batches) == b"a" * 10 and budget.used == 10
    assert next(batches) == b"b" * 20 and budget.used == 20
    with pytest.raises(StopIteration):
        next(batches)
    assert budget.used == 0


def test_close_gives_the_current_batch_back() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    batches = MeteredRequests(iter([b"a" * 10, b"b" * 20]), budget, wait=0.1)
    next(batches)
    batches.close()
    assert budget.used == 0
    next(batches)  # a batch taken after the call ended holds nothing
    assert budget.used == 0


def test_a_batch_without_room_is_refused_naming_the_setting() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    assert budget.try_take(GRPC_MAX_BATCH_BYTES - 5)
    batches = MeteredRequests(iter([b"x" * 10]), budget, wait=0.1)
    with pytest.raises(LimitExceededError, match=r"^grpc_batch_memory: no room for a packet"):
        next(batches)
    assert budget.used == GRPC_MAX_BATCH_BYTES - 5


def test_room_for_the_largest_batch_is_reserved_before_a_batch_is_taken() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES + 100)
    seen: list[int] = []

    def raws() -> Iterator[bytes]:
        seen.append(budget.used)  # while grpcio would be reading the batch
        yield b"x" * 10

    batches = MeteredRequests(raws(), budget, wait=0.1)
    assert next(batches) == b"x" * 10
    assert seen == [GRPC_MAX_BATCH_BYTES] and budget.used == 10


def test_an_idle_call_gives_its_reservation_back() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    arrived = threading.Event()
    reserved: list[int] = []

    def raws() -> Iterator[bytes]:
        reserved.append(budget.used)
        assert arrived.wait(5)
        yield b"late" * 100

    batches = MeteredRequests(raws(), budget, wait=0.5)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(next(batches)))
    reader.start()
    assert wait_for(lambda: reserved == [GRPC_MAX_BATCH_BYTES], timeout=5)
    batches.release_if_idle(time.monotonic(), hold=10.0)  # not idle long enough
    assert budget.used == GRPC_MAX_BATCH_BYTES
    batches.release_if_idle(time.monotonic() + 10.0, hold=10.0)
    assert budget.used == 0 and budget.try_take(GRPC_MAX_BATCH_BYTES - 400)
    arrived.set()
    reader.join(5)
    assert result == [b"late" * 100] and budget.used == GRPC_MAX_BATCH_BYTES


def test_a_patient_call_waits_for_room_instead_of_being_refused() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    assert budget.try_take(100)
    threading.Timer(0.3, budget.release, args=(100,)).start()
    batches = MeteredRequests(iter([b"x" * 10]), budget, wait=0.05, patient=lambda: True)
    started = time.monotonic()
    assert next(batches) == b"x" * 10
    assert time.monotonic() - started >= 0.25 and budget.used == 10


def test_a_patient_call_that_ended_takes_no_room() -> None:
    budget = ByteBudget(GRPC_MAX_BATCH_BYTES)
    assert budget.try_take(100)
    batches = MeteredRequests(iter([b"x" * 10]), budget, wait=0.05, patient=lambda: False)
    assert next(batches) == b"x" * 10
    assert budget.used == 100


# -- the interceptor on a real gRPC server ------------------------------------------------------


class BlockingManager:
    """Just enough of a manager for Inject: each call waits until ``proceed`` is set."""

    ready = True

    def __init__(self) -> None:
        self.proceed = threading.Event()
        self.injected = 0

    def inject(self, name: str, packets: list[bytes], queue: int = 0) -> InjectResult:
        assert self.proceed.wait(10)
        self.injected += len(packets)
        return InjectResult(accepted=len(packets), ring_full=0)


def batch(megabytes: int) -> pb.InjectRequest:
    return pb.InjectRequest(interface="a", packets=[b"p" * 65_000] * (megabytes * 16))


def test_concurrent_batches_share_the_budget() -> None:
    manager = BlockingManager()
    budget = BatchBudget(GRPC_MAX_BATCH_BYTES, wait=0.3)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[budget],
        options=[("grpc.max_receive_message_length", GRPC_MAX_BATCH_BYTES)],
    )
    grpc_api.add_to_server(manager, server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.MemifStub(channel)
    try:
        first: Any = stub.Inject.future(iter([batch(5)]), timeout=20)  # about 5 MB, held
        assert wait_for(lambda: budget.budget.used > 5_000_000, timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Inject(iter([batch(5)]), timeout=20)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "grpc_batch_memory" in str(refused.value.details())
        manager.proceed.set()
        assert first.result().accepted == 80
        assert wait_for(lambda: budget.budget.used == 0, timeout=5)
        assert stub.Inject(iter([batch(5), batch(5)]), timeout=20).accepted == 160
        assert budget.budget.used == 0
    finally:
        manager.proceed.set()
        channel.close()
        server.stop(0)


def test_unmetered_methods_pass_through() -> None:
    budget = BatchBudget(GRPC_MAX_BATCH_BYTES)
    handler = SimpleNamespace(stream_stream=None)

    def continuation(details: Any) -> Any:
        return handler

    details = SimpleNamespace(method="/memif.v1.Memif/ListInterfaces")
    answered: object = budget.intercept_service(continuation, details)
    assert answered is handler


def test_only_exchange_calls_wait_for_room_without_limit() -> None:
    budget = BatchBudget(GRPC_MAX_BATCH_BYTES)
    context: Any = SimpleNamespace(is_active=lambda: True)
    exchange = budget._metered(iter([]), context, "/memif.v1.Memif/Exchange")
    inject = budget._metered(iter([]), context, "/memif.v1.Memif/Inject")
    assert exchange._patient is not None and inject._patient is None
