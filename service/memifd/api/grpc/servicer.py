"""The ``memif.v1.Memif`` servicer: each call becomes a manager call.

Methods take parsed requests and return messages (or iterate them); parsing, status
codes and registration are :mod:`memifd.api.grpc.handlers`' job, the mapping of errors
to status codes :mod:`memifd.api.grpc.status`'s. Streams poll their subscription with a
short timeout, so a client that goes away releases its thread within
:data:`POLL_INTERVAL`; the RPC's termination callback also closes the subscription at
once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import Message

from memifd.api.grpc import convert, handlers, wire
from memifd.api.grpc.exchange import ExchangeRelay
from memifd.api.grpc.status import fields_under, status_for
from memifd.core.errors import InvalidArgumentError, StreamEndedError
from memifd.proto.memif.v1 import memif_pb2 as pb

if TYPE_CHECKING:
    from memifd.core.manager import Manager
    from memifd.core.models import CaptureFilter
    from memifd.core.subscription import Subscription

SERVICE = pb.DESCRIPTOR.services_by_name["Memif"]
SERVICE_NAME = SERVICE.full_name
POLL_INTERVAL = 0.25
EVENT_BATCH = 64
DURATION_SLACK = 0.05  # seconds: the manager's capture timer and ours start apart
BATCH_BYTES = 1 << 20  # about this many packet bytes per PacketBatch (at least one packet)

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
        with fields_under("spec"):
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
        with fields_under("patch"):
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
        max_batch = convert.count_from_proto(request.max_batch, "max_batch", convert.BATCH)
        started = time.monotonic()
        buffer = convert.count_from_proto(request.buffer, "buffer", convert.BUFFER)
        packets = self._manager.capture(flt, maxsize=buffer)
        context.send_initial_metadata(())  # accepted: a client may wait for this before a packet
        delivered = reported = 0
        with _closing(packets, context):
            while context.is_active():
                batch = packets.get_batch(max_batch, POLL_INTERVAL, BATCH_BYTES)
                if batch:
                    delivered += len(batch)
                    reported = packets.dropped_total()  # as of this batch: drops precede it
                    yield wire.encode_packet_batch(batch, reported)
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
        max_batch = convert.count_from_proto(first.open.max_batch, "open.max_batch", convert.BATCH)
        buffer = convert.count_from_proto(first.open.buffer, "open.buffer", convert.BUFFER)
        session = self._manager.exchange(name, maxsize=buffer)
        relay = ExchangeRelay(
            session, requests, max_batch, poll_interval=POLL_INTERVAL, batch_bytes=BATCH_BYTES
        )
        if not context.add_callback(relay.stop):
            relay.stop()
            return
        try:
            relay.start()
            yield from relay.responses(context)
        finally:
            relay.stop()


def add_to_server(manager: Manager, server: grpc.Server) -> MemifServicer:
    """Register the ``memif.v1.Memif`` service on ``server``."""
    servicer = MemifServicer(manager)
    handlers.add_service(servicer, SERVICE, lambda exc: status_for(exc, manager.ready), server)
    return servicer


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
def _closing(subscription: Subscription[Any], context: Context) -> Iterator[None]:
    """Close ``subscription`` when the block ends or the RPC terminates."""
    context.add_callback(subscription.close)
    try:
        yield
    finally:
        subscription.close()
