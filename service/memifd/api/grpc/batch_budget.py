"""The packet batches of Inject and Exchange calls share one byte budget (``grpc_batch_memory``).

Before a call takes its next batch from grpcio it reserves room for a batch of
the largest size (:data:`MAX_BATCH_MESSAGE`); when the batch arrives the
reservation shrinks to its real size, which stays reserved while the batch is
parsed, converted and sent, until the call asks for the next one (or ends).
grpcio reads a stream's next message only when the call asks for it, and the
HTTP/2 window stays small, so batches that find no room wait in the clients,
not in memifd: memifd holds about the budget in batches (beyond it only a
batch that comes after its call gave its reservation back, while it waits
for room). An Inject call
that finds no room within :data:`BUDGET_WAIT` seconds ends with
RESOURCE_EXHAUSTED and a message naming the setting; an Exchange, which lives
long and whose client may send nothing for minutes, waits for room as long as
it lasts (its client's sends wait meanwhile). A call whose client sends
nothing gives its reservation back after :data:`IDLE_HOLD` seconds (its batch,
when it comes, then takes just its own size).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import grpc

from memifd.core.budget import ByteBudget
from memifd.core.errors import LimitExceededError
from memifd.core.limits import GRPC_MAX_BATCH_BYTES

MAX_BATCH_MESSAGE = GRPC_MAX_BATCH_BYTES  # what grpcio accepts from Inject and Exchange
BUDGET_WAIT = 2.0  # seconds a call waits for room before it is refused
IDLE_HOLD = 1.0  # seconds a reservation waits for its batch before it is given back
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
PACKET_METHODS = frozenset({"/memif.v1.Memif/Inject", "/memif.v1.Memif/Exchange"})
PATIENT_METHODS = frozenset({"/memif.v1.Memif/Exchange"})  # wait for room, never refused


class MeteredRequests:
    """The raw request messages of one call, metered against ``budget`` (see the module)."""

    def __init__(
        self,
        raws: Iterator[bytes],
        budget: ByteBudget,
        wait: float = BUDGET_WAIT,
        patient: Callable[[], bool] | None = None,
    ):
        self._raws = raws
        self._budget = budget
        self._wait = wait
        self._patient = patient  # while it returns True, wait for room instead of refusing
        self._held = 0  # bytes this call holds in the budget
        self._reserved_at: float | None = None  # while a reservation awaits its batch
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> MeteredRequests:
        return self

    def __next__(self) -> bytes:
        self._give_back()
        if not self._take(MAX_BATCH_MESSAGE):  # the call ended: there is no next batch
            return next(self._raws)
        self._hold(MAX_BATCH_MESSAGE, reserved_at=time.monotonic())
        try:
            raw = next(self._raws)
        except BaseException:
            self._give_back()
            raise
        size = len(raw)
        with self._lock:
            self._reserved_at = None
            held, closed = self._held, self._closed
            if held >= size:
                self._budget.release(held - size)
                self._held = size
        if closed:  # the call ended while this batch arrived
            self._give_back()
        elif held < size and self._take(size):  # the reservation went back while idle
            self._hold(size)
        return raw

    def _hold(self, size: int, reserved_at: float | None = None) -> None:
        """Note ``size`` reserved bytes as this call's (given back at once if it ended)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._held = size
                self._reserved_at = reserved_at
        if closed:
            self._budget.release(size)

    def _take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False if the call ended while it waited for them."""
        while not self._budget.take(size, self._wait):
            if self._patient is None:
                raise self._exhausted()
            if not self._patient():
                return False
        return True

    def release_if_idle(self, now: float, hold: float = IDLE_HOLD) -> None:
        """Give the reservation back if it has waited ``hold`` seconds for its batch."""
        with self._lock:
            if self._reserved_at is not None and now - self._reserved_at >= hold:
                self._budget.release(self._held)
                self._held = 0
                self._reserved_at = None

    def close(self) -> None:
        """Give back what the call holds; batches taken later hold nothing."""
        with self._lock:
            self._closed = True
        self._give_back()

    def _give_back(self) -> None:
        with self._lock:
            held, self._held = self._held, 0
            self._reserved_at = None
        self._budget.release(held)

    def _exhausted(self) -> LimitExceededError:
        budget = self._budget
        return LimitExceededError(
            f"grpc_batch_memory: no room for a packet batch within {self._wait:g} s "
            f"({budget.used} of {budget.capacity} bytes are held by batches of other calls); "
            "retry later"
        )


class _IdleReaper:
    """One thread that gives back the reservations of calls whose clients send nothing."""

    def __init__(self, hold: float = IDLE_HOLD) -> None:
        self.hold = hold
        self._calls: set[MeteredRequests] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, call: MeteredRequests) -> None:
        with self._changed:
            self._calls.add(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="memifd-grpc-budget", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def remove(self, call: MeteredRequests) -> None:
        with self._changed:
            self._calls.discard(call)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._calls:
                    self._changed.wait()
                calls = list(self._calls)
            now = time.monotonic()
            for call in calls:
                call.release_if_idle(now, self.hold)
            time.sleep(self.hold / 4)


class BatchBudget(grpc.ServerInterceptor):
    """Meters the request messages of the packet methods against one :class:`ByteBudget`."""

    def __init__(self, capacity: int, wait: float = BUDGET_WAIT) -> None:
        self.budget = ByteBudget(capacity)
        self.wait = wait
        self._reaper = _IdleReaper()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None or details.method not in PACKET_METHODS:
            return handler
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            self._unary(handler.stream_unary or _unexpected, details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def metered(requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
            batches = self._metered(requests, context, method)
            try:
                return behaviour(batches, context)
            finally:
                self._done(batches)

        return metered

    def _streaming(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def metered(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            batches = self._metered(requests, context, method)
            try:
                yield from behaviour(batches, context)
            finally:
                self._done(batches)

        return metered

    def _metered(
        self, requests: Iterator[bytes], context: grpc.ServicerContext, method: str
    ) -> MeteredRequests:
        patient = context.is_active if method in PATIENT_METHODS else None
        batches = MeteredRequests(requests, self.budget, self.wait, patient)
        self._reaper.add(batches)
        return batches

    def _done(self, batches: MeteredRequests) -> None:
        self._reaper.remove(batches)
        batches.close()


def _unexpected(requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "not a request-streaming method")
