"""The Exchange RPC's relay: packets between an exchange session and one bidirectional
stream, on two threads of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import Message

from memifd.api.grpc import convert, wire
from memifd.api.grpc.status import fields_under
from memifd.core.errors import InvalidArgumentError, StreamEndedError
from memifd.proto.memif.v1 import memif_pb2 as pb

if TYPE_CHECKING:
    from memifd.core.manager import ExchangeSession

EXCHANGE_STAGED = 4  # responses an exchange stream holds for a slow client

Staged = Message | bytes | BaseException | None


class ExchangeRelay:
    """Moves packets between an exchange session and one bidirectional stream.

    Two threads feed one small staging queue that the RPC's response iterator
    drains: one takes the interface's received packets, one sends the client's
    batches and stages their results. Neither ever waits on the worker; when
    the client reads slowly the staging queue fills, the receive thread stops
    taking packets and the session's bounded queue drops the oldest. Every wait
    lasts at most ``poll_interval`` seconds, so :meth:`stop` takes effect soon.
    """

    def __init__(
        self,
        session: ExchangeSession,
        requests: Iterator[pb.ExchangeRequest],
        max_batch: int,
        *,
        poll_interval: float,
        batch_bytes: int,
    ) -> None:
        self.session = session
        self._requests = requests
        self._max_batch = max_batch
        self._poll_interval = poll_interval
        self._batch_bytes = batch_bytes
        self._staged: queue.Queue[Staged] = queue.Queue(EXCHANGE_STAGED)
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._receive, name="memifd-exchange-rx", daemon=True),
            threading.Thread(target=self._send, name="memifd-exchange-tx", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """End both threads (the sender also ends when the RPC's request stream does)."""
        self._stopped.set()
        self.session.close()

    def responses(self, context: grpc.ServicerContext) -> Iterator[Message | bytes]:
        """What to send the client, until the client half-closes or the session ends."""
        while True:
            try:
                item = self._staged.get(timeout=self._poll_interval)
            except queue.Empty:
                if not context.is_active() or self._stopped.is_set():
                    return
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _stage(self, item: Staged) -> bool:
        while not self._stopped.is_set():
            try:
                self._staged.put(item, timeout=self._poll_interval)
                return True
            except queue.Full:
                continue
        return False

    def _receive(self) -> None:
        rx = self.session.rx
        try:
            while not self._stopped.is_set():
                packets = rx.get_batch(self._max_batch, self._poll_interval, self._batch_bytes)
                if packets:
                    batch = wire.encode_packet_batch(packets, rx.dropped)
                    if not self._stage(wire.exchange_rx(batch)):
                        return
                elif rx.closed:
                    self._stage(StreamEndedError(rx.close_reason or "exchange ended"))
                    return
        except Exception as exc:  # handed to the RPC thread, which reports it
            self._stage(exc)

    def _send(self) -> None:
        try:
            for request in self._requests:
                if self._stopped.is_set():
                    return
                if request.WhichOneof("kind") != "send":
                    raise InvalidArgumentError("send", "every request after the first must be send")
                packets = convert.packets_from_proto(request.send.packets, "send.packets")
                with fields_under("send"):
                    result = self.session.send(packets, queue=request.send.queue)
                sent = pb.SendResult(
                    seq=request.send.seq, accepted=result.accepted, ring_full=result.ring_full
                )
                if not self._stage(pb.ExchangeResponse(sent=sent)):
                    return
            self._stage(None)
        except grpc.RpcError:
            self._stopped.set()  # the client went away
        except Exception as exc:  # handed to the RPC thread, which reports it
            self._stage(exc)
