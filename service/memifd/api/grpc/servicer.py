"""The ``memif.v1.Memif`` servicer: each call becomes a manager call.

Requests arrive as raw bytes and are parsed here, so a malformed message is an
INVALID_ARGUMENT like any other bad input. Errors map to status codes in one
place (:func:`status_for`). Streams poll their subscription with a short
timeout, so a client that goes away releases its thread within
:data:`POLL_INTERVAL`; the RPC's termination callback also closes the
subscription at once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError, Message

from memifd.api.grpc import convert
from memifd.api.grpc import status as codes
from memifd.core.errors import (
    InvalidArgumentError,
    LimitExceededError,
    MalformedError,
    StreamEndedError,
)
from memifd.proto.memif.v1 import memif_pb2 as pb

if TYPE_CHECKING:
    from memifd.core.manager import ExchangeSession, Manager
    from memifd.core.models import CaptureFilter
    from memifd.core.subscription import Subscription

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Memif"].full_name
POLL_INTERVAL = 0.25
EVENT_BATCH = 64
DURATION_SLACK = 0.05  # seconds: the manager's capture timer and ours start apart
EXCHANGE_STAGED = 4  # responses an exchange stream holds for a slow client
BATCH_BYTES = 1 << 20  # about this many packet bytes per PacketBatch (at least one packet)
_RX_TAG = b"\x0a"  # ExchangeResponse.rx, length-delimited
# Requests larger than this are refused before they are parsed; Inject and Exchange
# messages carry packets and are held only to the server's receive limit.
MAX_REQUEST_BYTES = 64 << 10

M = TypeVar("M", bound=Message)
Context: TypeAlias = grpc.ServicerContext


class MemifServicer:
    """Thin translation between ``memif.v1`` messages and :class:`~memifd.core.manager.Manager`."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    # -- management ---------------------------------------------------------------------

    def create_interface(self, request: pb.CreateInterfaceRequest, context: Context) -> Message:
        """CreateInterface."""
        if not request.HasField("spec"):
            raise InvalidArgumentError("spec", "required")
        spec = convert.spec_from_proto(request.spec)
        with _fields_under("spec"):
            status = self._manager.create_interface(spec, dry_run=request.dry_run)
        return convert.status_to_proto(status)

    def list_interfaces(self, request: pb.ListInterfacesRequest, context: Context) -> Message:
        """ListInterfaces, in creation order as REST lists them."""
        statuses = self._manager.list_interfaces()
        return pb.ListInterfacesResponse(
            interfaces=[convert.status_to_proto(status) for status in statuses]
        )

    def get_interface(self, request: pb.GetInterfaceRequest, context: Context) -> Message:
        """GetInterface."""
        return convert.status_to_proto(self._manager.get_interface(_name(request.name)))

    def update_interface(self, request: pb.UpdateInterfaceRequest, context: Context) -> Message:
        """UpdateInterface."""
        patch = convert.patch_from_proto(request.patch)
        with _fields_under("patch"):
            status = self._manager.update_interface(_name(request.name), patch)
        return convert.status_to_proto(status)

    def delete_interface(self, request: pb.DeleteInterfaceRequest, context: Context) -> Message:
        """DeleteInterface."""
        self._manager.delete_interface(_name(request.name))
        return pb.DeleteInterfaceResponse()

    def get_stats(self, request: pb.GetStatsRequest, context: Context) -> Message:
        """GetStats."""
        return convert.stats_to_proto(self._manager.interface_stats(_name(request.name)))

    def get_link_details(self, request: pb.GetLinkDetailsRequest, context: Context) -> Message:
        """GetLinkDetails."""
        return convert.link_to_proto(self._manager.link_details(_name(request.name)))

    # -- streams --------------------------------------------------------------------------

    def watch_events(self, request: pb.WatchEventsRequest, context: Context) -> Iterator[Message]:
        """WatchEvents: current states first if asked, then every change."""
        wanted = request.interface
        events = self._manager.subscribe_events(interface=wanted or None)
        with _closing(events, context):
            if request.include_current:
                now = time.time()
                for status in sorted(self._manager.list_interfaces(), key=lambda s: s.name):
                    if not wanted or status.name == wanted:
                        yield convert.status_event(status, now)
            while context.is_active():
                batch = events.get_batch(EVENT_BATCH, timeout=POLL_INTERVAL)
                for event in batch:
                    if not wanted or event.interface == wanted:
                        yield convert.event_to_proto(event)
                if not batch and events.closed:
                    raise StreamEndedError(events.close_reason or "event stream ended")

    def capture(self, request: pb.CaptureRequest, context: Context) -> Iterator[Message | bytes]:
        """Capture: batches of copies of packets, with the running count of drops."""
        flt = convert.filter_from_proto(request)
        max_batch = convert.batch_size(request.max_batch)
        started = time.monotonic()
        packets = self._manager.capture(flt, maxsize=convert.buffer_size(request.buffer))
        context.send_initial_metadata(())  # accepted: a client may wait for this before a packet
        delivered = reported = 0
        with _closing(packets, context):
            while context.is_active():
                batch = packets.get_batch(max_batch, POLL_INTERVAL, BATCH_BYTES)
                if batch:
                    delivered += len(batch)
                    reported = packets.dropped_total()  # as of this batch: drops precede it
                    yield convert.encode_packet_batch(batch, reported)
                elif packets.closed:
                    if packets.dropped != reported:
                        yield pb.PacketBatch(dropped=packets.dropped)
                    if not _complete(flt, delivered + packets.dropped, started):
                        raise StreamEndedError(packets.close_reason or "capture ended")
                    return

    def inject(self, requests: Iterator[pb.InjectRequest], context: Context) -> Message:
        """Inject: send every batch; answer with the totals."""
        accepted = ring_full = batches = 0
        name = ""
        for request in requests:
            name = request.interface or name
            if not name:
                raise InvalidArgumentError("interface", "required in the first request")
            packets = convert.packets_from_proto(request.packets)
            result = self._manager.inject(name, packets, queue=request.queue)
            accepted += result.accepted
            ring_full += result.ring_full
            batches += 1
        return pb.InjectResponse(accepted=accepted, ring_full=ring_full, batches=batches)

    def exchange(
        self, requests: Iterator[pb.ExchangeRequest], context: Context
    ) -> Iterator[Message | bytes]:
        """Exchange: the client becomes the packet endpoint of an interface."""
        first = next(requests, None)
        if first is None:
            return
        if first.WhichOneof("kind") != "open":
            raise InvalidArgumentError("open", "the first request must be open")
        name = _name(first.open.interface, "open.interface")
        max_batch = convert.batch_size(first.open.max_batch, "open.max_batch")
        buffer = convert.buffer_size(first.open.buffer, "open.buffer")
        session = self._manager.exchange(name, maxsize=buffer)
        relay = _ExchangeRelay(session, requests, max_batch)
        if not context.add_callback(relay.stop):
            relay.stop()
            return
        try:
            relay.start()
            yield from relay.responses(context)
        finally:
            relay.stop()


def _complete(flt: CaptureFilter, seen: int, started: float) -> bool:
    """True when a capture reached its count or duration (rather than being cut off)."""
    if flt.count is not None and seen >= flt.count:
        return True
    return flt.duration is not None and time.monotonic() - started >= flt.duration - DURATION_SLACK


def _name(value: str, field: str = "name") -> str:
    if not value:
        raise InvalidArgumentError(field, "required")
    return value


@contextlib.contextmanager
def _fields_under(prefix: str) -> Iterator[None]:
    """Name the fields of the manager's :class:`InvalidArgumentError` as the request does."""
    try:
        yield
    except InvalidArgumentError as exc:
        if not exc.field or " " in exc.field:  # not a field name
            raise InvalidArgumentError(prefix, exc.message) from None
        message = exc.message.removeprefix(f"{exc.field}: ")
        raise InvalidArgumentError(f"{prefix}.{exc.field}", message) from None


@contextlib.contextmanager
def _closing(subscription: Subscription[Any], context: Context) -> Iterator[None]:
    """Close ``subscription`` when the block ends or the RPC terminates."""
    context.add_callback(subscription.close)
    try:
        yield
    finally:
        subscription.close()


class _ExchangeRelay:
    """Moves packets between an exchange session and one bidirectional stream.

    Two threads feed one small staging queue that the RPC's response iterator
    drains: one takes the interface's received packets, one sends the client's
    batches and stages their results. Neither ever waits on the worker; when
    the client reads slowly the staging queue fills, the receive thread stops
    taking packets and the session's bounded queue drops the oldest.
    """

    def __init__(
        self, session: ExchangeSession, requests: Iterator[pb.ExchangeRequest], max_batch: int
    ) -> None:
        self.session = session
        self._requests = requests
        self._max_batch = max_batch
        self._staged: queue.Queue[Message | bytes | BaseException | None]
        self._staged = queue.Queue(EXCHANGE_STAGED)
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

    def responses(self, context: Context) -> Iterator[Message | bytes]:
        """What to send the client, until the client half-closes or the session ends."""
        while True:
            try:
                item = self._staged.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                if not context.is_active() or self._stopped.is_set():
                    return
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _stage(self, item: Message | bytes | BaseException | None) -> bool:
        while not self._stopped.is_set():
            try:
                self._staged.put(item, timeout=POLL_INTERVAL)
                return True
            except queue.Full:
                continue
        return False

    def _receive(self) -> None:
        rx = self.session.rx
        try:
            while not self._stopped.is_set():
                packets = rx.get_batch(self._max_batch, POLL_INTERVAL, BATCH_BYTES)
                if packets:
                    batch = convert.encode_packet_batch(packets, rx.dropped)
                    if not self._stage(_RX_TAG + convert.varint(len(batch)) + batch):
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
                with _fields_under("send"):
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


# -- errors and method handlers -----------------------------------------------------------


def status_for(exc: BaseException, manager: Manager) -> tuple[grpc.StatusCode, str]:
    """The status code and message a call ending with ``exc`` reports."""
    return codes.status_for(exc, manager.ready)


def _parse(cls: type[M], raw: bytes, limit: int | None = MAX_REQUEST_BYTES) -> M:
    if limit is not None and len(raw) > limit:
        raise LimitExceededError(
            f"{cls.DESCRIPTOR.name} of {len(raw)} bytes exceeds the limit of {limit} bytes",
        )
    try:
        return cast(M, cls.FromString(raw))
    except DecodeError as exc:
        raise MalformedError(f"malformed {cls.DESCRIPTOR.full_name}: {exc}") from None


def _parse_stream(cls: type[M], raws: Iterator[bytes]) -> Iterator[M]:
    for raw in raws:
        yield _parse(cls, raw, None)


Behaviour = Callable[..., Any]


class _Handlers:
    """Wraps servicer methods into gRPC handlers that parse requests and map errors."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def _abort(self, context: Context, exc: BaseException) -> None:
        if isinstance(exc, grpc.RpcError):
            raise exc  # from the request stream: the client is gone
        code, message = status_for(exc, self._manager)
        context.abort(code, message)

    def unary(self, method: Behaviour, cls: type[Message]) -> grpc.RpcMethodHandler:
        def handle(raw: bytes, context: Context) -> Message:
            try:
                result: Message = method(_parse(cls, raw), context)
            except Exception as exc:
                self._abort(context, exc)
                raise
            return result

        return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)

    def server_stream(self, method: Behaviour, cls: type[Message]) -> grpc.RpcMethodHandler:
        def handle(raw: bytes, context: Context) -> Iterator[Message]:
            try:
                yield from method(_parse(cls, raw), context)
            except Exception as exc:
                self._abort(context, exc)
                raise

        return grpc.unary_stream_rpc_method_handler(handle, response_serializer=_serialize)

    def client_stream(self, method: Behaviour, cls: type[Message]) -> grpc.RpcMethodHandler:
        def handle(raws: Iterator[bytes], context: Context) -> Message:
            try:
                result: Message = method(_parse_stream(cls, raws), context)
            except Exception as exc:
                self._abort(context, exc)
                raise
            return result

        return grpc.stream_unary_rpc_method_handler(handle, response_serializer=_serialize)

    def bidi_stream(self, method: Behaviour, cls: type[Message]) -> grpc.RpcMethodHandler:
        def handle(raws: Iterator[bytes], context: Context) -> Iterator[Message]:
            try:
                yield from method(_parse_stream(cls, raws), context)
            except Exception as exc:
                self._abort(context, exc)
                raise

        return grpc.stream_stream_rpc_method_handler(handle, response_serializer=_serialize)


def _serialize(message: Message | bytes) -> bytes:
    """Responses are messages, or bytes already encoded (packet batches)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def add_to_server(manager: Manager, server: grpc.Server) -> MemifServicer:
    """Register the ``memif.v1.Memif`` service on ``server``."""
    servicer = MemifServicer(manager)
    wrap = _Handlers(manager)
    handlers = {
        "CreateInterface": wrap.unary(servicer.create_interface, pb.CreateInterfaceRequest),
        "ListInterfaces": wrap.unary(servicer.list_interfaces, pb.ListInterfacesRequest),
        "GetInterface": wrap.unary(servicer.get_interface, pb.GetInterfaceRequest),
        "UpdateInterface": wrap.unary(servicer.update_interface, pb.UpdateInterfaceRequest),
        "DeleteInterface": wrap.unary(servicer.delete_interface, pb.DeleteInterfaceRequest),
        "GetStats": wrap.unary(servicer.get_stats, pb.GetStatsRequest),
        "GetLinkDetails": wrap.unary(servicer.get_link_details, pb.GetLinkDetailsRequest),
        "WatchEvents": wrap.server_stream(servicer.watch_events, pb.WatchEventsRequest),
        "Capture": wrap.server_stream(servicer.capture, pb.CaptureRequest),
        "Inject": wrap.client_stream(servicer.inject, pb.InjectRequest),
        "Exchange": wrap.bidi_stream(servicer.exchange, pb.ExchangeRequest),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    return servicer
