"""Conversions between the ``memif.v1`` protobuf messages and memifd's pydantic models.

Requests become validated models (a failure is an
:class:`~memifd.core.errors.InvalidArgumentError` naming the field and the limit);
models become response messages. Enum value 0 and numeric 0 in requests mean
"the default", as the ``.proto`` documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from memif.config import MemoryConfig, Mode, Role, RxMode
from memif.constants import MAX_PACKET_SIZE
from pydantic import BaseModel, ValidationError

from memifd.core.errors import InvalidArgumentError
from memifd.core.models import (
    INTERFACE_COUNTERS,
    QUEUE_COUNTERS,
    Action,
    CapturedPacket,
    CaptureFilter,
    Direction,
    InterfacePatch,
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
    LinkRegion,
    LinkRing,
    LinkState,
    PeerInfo,
    QueueCounters,
)
from memifd.proto.memif.v1 import memif_pb2 as pb

MAX_SEND_PACKETS = 4096

M = TypeVar("M", bound=BaseModel)


# -- enums: model value <-> protobuf number -------------------------------------------

ROLES: dict[str, int] = {Role.SERVER: pb.ROLE_SERVER, Role.CLIENT: pb.ROLE_CLIENT}
MODES: dict[str, int] = {
    Mode.ETHERNET: pb.MODE_ETHERNET,
    Mode.IP: pb.MODE_IP,
    Mode.PUNT_INJECT: pb.MODE_PUNT_INJECT,
}
RX_MODES: dict[str, int] = {
    RxMode.INTERRUPT: pb.RX_MODE_INTERRUPT,
    RxMode.POLLING: pb.RX_MODE_POLLING,
}
ACTIONS: dict[str, int] = {
    Action.DROP: pb.ACTION_DROP,
    Action.ECHO: pb.ACTION_ECHO,
    Action.XCONNECT: pb.ACTION_XCONNECT,
}
LINK_STATES: dict[str, int] = {
    LinkState.DISCONNECTED: pb.LINK_STATE_DISCONNECTED,
    LinkState.CONNECTING: pb.LINK_STATE_CONNECTING,
    LinkState.CONNECTED: pb.LINK_STATE_CONNECTED,
    LinkState.DELETED: pb.LINK_STATE_DELETED,
}
DIRECTIONS: dict[str, int] = {Direction.RX: pb.DIRECTION_RX, Direction.TX: pb.DIRECTION_TX}
FILTER_DIRECTIONS: dict[int, str] = {
    pb.DIRECTION_UNSPECIFIED: Direction.BOTH,
    pb.DIRECTION_BOTH: Direction.BOTH,
    pb.DIRECTION_RX: Direction.RX,
    pb.DIRECTION_TX: Direction.TX,
}


def _unknown(
    field: str, number: int, enum_name: str, numbers: Iterable[int]
) -> InvalidArgumentError:
    values = pb.DESCRIPTOR.enum_types_by_name[enum_name].values_by_number
    names = ", ".join(values[n].name for n in sorted(set(numbers)) if n)
    return InvalidArgumentError(field, f"unknown value {number}; expected one of {names}")


def _from_number(table: Mapping[str, int], number: int, field: str, enum_name: str) -> str:
    for value, candidate in table.items():
        if candidate == number:
            return str(value)
    raise _unknown(field, number, enum_name, table.values())


def _to_number(table: Mapping[str, int], value: object) -> int:
    return table.get(str(value), 0)


# -- validation --------------------------------------------------------------------------


def _error_text(error: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    """(field path, message) of one pydantic error, with the request's field names."""
    path = [prefix] if prefix else []
    path += [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    # Model-level validators name the field at the start of their message.
    head, sep, rest = message.partition(": ")
    if sep and head.replace("_", "").replace(".", "").isalnum() and " " not in head:
        if not path or path[-1] != head:
            path.append(head)
        message = rest
    return ".".join(path), message


def invalid_argument(exc: ValidationError, prefix: str = "") -> InvalidArgumentError:
    """An :class:`~memifd.core.errors.InvalidArgumentError` describing every error of ``exc``."""
    texts = [_error_text(error, prefix) for error in exc.errors(include_url=False)]
    field = texts[0][0]
    message = "; ".join(f"{path}: {text}" if path else text for path, text in texts)
    if message.startswith(f"{field}: "):
        message = message[len(field) + 2 :]
    return InvalidArgumentError(field, message)


def _validate(model: type[M], data: dict[str, Any], prefix: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_argument(exc, prefix) from None


# -- requests -> models --------------------------------------------------------------------


def spec_from_proto(msg: pb.InterfaceSpec, prefix: str = "spec") -> InterfaceSpec:
    """Validate an ``InterfaceSpec`` message."""
    data: dict[str, Any] = {"name": msg.name, "id": msg.id}
    if msg.socket:
        data["socket"] = msg.socket
    if msg.role:
        data["role"] = _from_number(ROLES, msg.role, f"{prefix}.role", "Role")
    if msg.secret:
        data["secret"] = msg.secret
    if msg.mode:
        data["mode"] = _from_number(MODES, msg.mode, f"{prefix}.mode", "Mode")
    if msg.HasField("memory"):
        memory = {
            key: value
            for key, value in (
                ("num_queue_pairs", msg.memory.num_queue_pairs),
                ("log2_ring_size", msg.memory.log2_ring_size),
                ("packet_buffer_size", msg.memory.packet_buffer_size),
            )
            if value
        }
        data["memory"] = memory
    if msg.rx_mode:
        data["rx_mode"] = _from_number(RX_MODES, msg.rx_mode, f"{prefix}.rx_mode", "RxMode")
    if msg.action:
        data["action"] = _from_number(ACTIONS, msg.action, f"{prefix}.action", "Action")
    if msg.xconnect_to:
        data["xconnect_to"] = msg.xconnect_to
    if msg.HasField("admin_up"):
        data["admin_up"] = msg.admin_up
    data["accept_unsealed_regions"] = msg.accept_unsealed_regions
    data["allowed_uids"] = list(msg.allowed_uids)
    data["allowed_gids"] = list(msg.allowed_gids)
    return _validate(InterfaceSpec, data, prefix)


def _interface_fields(item: InterfaceSpec | InterfaceStatus) -> dict[str, Any]:
    """The fields ``InterfaceSpec`` and ``InterfaceStatus`` messages share (no secret)."""
    return {
        "name": item.name,
        "socket": item.socket,
        "id": item.id,
        "role": _to_number(ROLES, item.role),
        "mode": _to_number(MODES, item.mode),
        "memory": memory_to_proto(item.memory),
        "rx_mode": _to_number(RX_MODES, item.rx_mode),
        "action": _to_number(ACTIONS, item.action),
        "xconnect_to": item.xconnect_to or "",
        "admin_up": item.admin_up,
        "accept_unsealed_regions": item.accept_unsealed_regions,
        "allowed_uids": item.allowed_uids,
        "allowed_gids": item.allowed_gids,
    }


def spec_to_proto(spec: InterfaceSpec) -> pb.InterfaceSpec:
    """The message for a validated spec (used by clients such as ``memifctl``)."""
    return pb.InterfaceSpec(**_interface_fields(spec), secret=spec.secret or "")


def patch_from_proto(msg: pb.InterfacePatch, prefix: str = "patch") -> InterfacePatch:
    """Validate an ``InterfacePatch`` message; unset fields stay unset."""
    data: dict[str, Any] = {}
    if msg.rx_mode:
        data["rx_mode"] = _from_number(RX_MODES, msg.rx_mode, f"{prefix}.rx_mode", "RxMode")
    if msg.action:
        data["action"] = _from_number(ACTIONS, msg.action, f"{prefix}.action", "Action")
    if msg.HasField("xconnect_to"):
        data["xconnect_to"] = msg.xconnect_to
    if msg.HasField("admin_up"):
        data["admin_up"] = msg.admin_up
    return _validate(InterfacePatch, data, prefix)


def filter_from_proto(msg: pb.CaptureRequest) -> CaptureFilter:
    """Validate a ``CaptureRequest`` (0 means "no limit" for count and duration)."""
    direction = FILTER_DIRECTIONS.get(msg.direction)
    if direction is None:
        raise _unknown("direction", msg.direction, "Direction", FILTER_DIRECTIONS)
    data: dict[str, Any] = {"interface": msg.interface or None, "direction": direction}
    if msg.HasField("queue"):
        data["queue"] = msg.queue
    if msg.count:
        data["count"] = msg.count
    if msg.duration:
        data["duration"] = msg.duration
    if msg.snaplen:
        data["snaplen"] = msg.snaplen
    return _validate(CaptureFilter, data, "")


@dataclass(frozen=True)
class CountField:
    """A count a request may leave at 0 for ``default``, refused above ``limit``."""

    default: int
    limit: int


BATCH = CountField(default=256, limit=1024)  # packets per streamed batch
BUFFER = CountField(default=65536, limit=65536)  # packets held for a slow stream reader


def count_from_proto(value: int, field: str, kind: CountField) -> int:
    """The count a request asks for in ``field``: 0 means the default."""
    if value == 0:
        return kind.default
    if value > kind.limit:
        raise InvalidArgumentError(field, f"{value} exceeds the limit of {kind.limit}")
    return value


def packets_from_proto(packets: Sequence[bytes], field: str = "packets") -> list[bytes]:
    """Packets to send, checked against the batch and packet size limits."""
    count = len(packets)
    if not 1 <= count <= MAX_SEND_PACKETS:
        raise InvalidArgumentError(
            field, f"{count} packets; a batch holds 1 to {MAX_SEND_PACKETS} packets"
        )
    data = list(packets)
    sizes = list(map(len, data))
    if min(sizes) < 1 or max(sizes) > MAX_PACKET_SIZE:
        index, size = next((i, n) for i, n in enumerate(sizes) if not 1 <= n <= MAX_PACKET_SIZE)
        raise InvalidArgumentError(
            f"{field}[{index}]", f"{size} bytes; a packet holds 1 to {MAX_PACKET_SIZE} bytes"
        )
    return data


# -- models -> responses -----------------------------------------------------------------


def _counters(row: QueueCounters, out: pb.QueueStats) -> None:
    for name in QUEUE_COUNTERS:
        setattr(out, name, getattr(row, name))


def stats_to_proto(
    stats: InterfaceStats, out: pb.InterfaceStats | None = None
) -> pb.InterfaceStats:
    """The ``InterfaceStats`` message (filled into ``out`` when given)."""
    msg = pb.InterfaceStats() if out is None else out
    _counters(stats.rx, msg.rx)
    _counters(stats.tx, msg.tx)
    for row in stats.rx_queues:
        _counters(row, msg.rx_queues.add())
    for row in stats.tx_queues:
        _counters(row, msg.tx_queues.add())
    for name in INTERFACE_COUNTERS:
        setattr(msg, name, getattr(stats, name))
    return msg


def memory_to_proto(memory: MemoryConfig) -> pb.MemoryConfig:
    """The ``MemoryConfig`` message."""
    return pb.MemoryConfig(
        num_queue_pairs=memory.num_queue_pairs,
        log2_ring_size=memory.log2_ring_size,
        packet_buffer_size=memory.packet_buffer_size,
    )


def _peer(peer: PeerInfo, out: pb.PeerInfo) -> None:
    out.name = peer.name
    out.app_name = peer.app_name
    if peer.pid is not None:
        out.pid = peer.pid
    if peer.uid is not None:
        out.uid = peer.uid
    if peer.gid is not None:
        out.gid = peer.gid


def status_to_proto(status: InterfaceStatus) -> pb.InterfaceStatus:
    """The ``InterfaceStatus`` message (never holds the secret)."""
    msg = pb.InterfaceStatus(
        **_interface_fields(status),
        has_secret=status.has_secret,
        socket_path=status.socket_path,
        state=_to_number(LINK_STATES, status.state),  # type: ignore[arg-type]
        disconnect_reason=status.disconnect_reason,
    )
    if status.peer is not None:
        _peer(status.peer, msg.peer)
    stats_to_proto(status.stats, msg.stats)
    return msg


def event_to_proto(event: LinkEvent) -> pb.LinkEvent:
    """The ``LinkEvent`` message."""
    msg = pb.LinkEvent(
        interface=event.interface,
        state=_to_number(LINK_STATES, event.state),  # type: ignore[arg-type]
        reason=event.reason,
        timestamp=event.timestamp,
    )
    if event.peer is not None:
        _peer(event.peer, msg.peer)
    return msg


def status_event(status: InterfaceStatus, timestamp: float) -> pb.LinkEvent:
    """A ``LinkEvent`` describing an interface's current state."""
    msg = pb.LinkEvent(
        interface=status.name,
        state=_to_number(LINK_STATES, status.state),  # type: ignore[arg-type]
        reason=status.disconnect_reason,
        timestamp=timestamp,
    )
    if status.peer is not None:
        _peer(status.peer, msg.peer)
    return msg


def packet_batch(packets: Iterable[CapturedPacket], dropped: int) -> pb.PacketBatch:
    """A ``PacketBatch`` of captured packets (one C call per packet: the streams send
    :func:`memifd.api.grpc.wire.encode_packet_batch`'s bytes instead, the same ones)."""
    batch = pb.PacketBatch(dropped=dropped)
    add = batch.packets.add
    directions = DIRECTIONS
    for interface, queue, direction, timestamp_ns, orig_len, data in packets:
        add(
            interface=interface,
            queue=queue,
            direction=directions[direction],
            timestamp_ns=timestamp_ns,
            orig_len=orig_len,
            data=data,
        )
    return batch


# -- responses -> models (clients such as memifctl print what REST would) --------------


def _name_of(table: Mapping[str, int], number: int) -> str:
    return next((str(value) for value, candidate in table.items() if candidate == number), "")


def _counters_from(msg: pb.QueueStats) -> QueueCounters:
    return QueueCounters(**{name: getattr(msg, name) for name in QUEUE_COUNTERS})


def stats_from_proto(msg: pb.InterfaceStats) -> InterfaceStats:
    """The :class:`InterfaceStats` an ``InterfaceStats`` message carries."""
    return InterfaceStats(
        rx=_counters_from(msg.rx),
        tx=_counters_from(msg.tx),
        rx_queues=[_counters_from(q) for q in msg.rx_queues],
        tx_queues=[_counters_from(q) for q in msg.tx_queues],
        **{name: getattr(msg, name) for name in INTERFACE_COUNTERS},
    )


def peer_from_proto(msg: pb.PeerInfo) -> PeerInfo:
    """The :class:`PeerInfo` of a ``PeerInfo`` message (unset ids stay None)."""
    return PeerInfo(
        name=msg.name,
        app_name=msg.app_name,
        pid=msg.pid if msg.HasField("pid") else None,
        uid=msg.uid if msg.HasField("uid") else None,
        gid=msg.gid if msg.HasField("gid") else None,
    )


def status_from_proto(msg: pb.InterfaceStatus) -> InterfaceStatus:
    """The :class:`InterfaceStatus` an ``InterfaceStatus`` message carries."""
    return InterfaceStatus.model_validate(
        {
            "name": msg.name,
            "socket": msg.socket,
            "id": msg.id,
            "role": _name_of(ROLES, msg.role),
            "mode": _name_of(MODES, msg.mode),
            "memory": {
                "num_queue_pairs": msg.memory.num_queue_pairs,
                "log2_ring_size": msg.memory.log2_ring_size,
                "packet_buffer_size": msg.memory.packet_buffer_size,
            },
            "rx_mode": _name_of(RX_MODES, msg.rx_mode),
            "action": _name_of(ACTIONS, msg.action),
            "xconnect_to": msg.xconnect_to or None,
            "admin_up": msg.admin_up,
            "accept_unsealed_regions": msg.accept_unsealed_regions,
            "has_secret": msg.has_secret,
            "allowed_uids": list(msg.allowed_uids),
            "allowed_gids": list(msg.allowed_gids),
            "socket_path": msg.socket_path,
            "state": _name_of(LINK_STATES, msg.state),
            "peer": peer_from_proto(msg.peer) if msg.HasField("peer") else None,
            "disconnect_reason": msg.disconnect_reason,
            "stats": stats_from_proto(msg.stats),
        }
    )


def event_from_proto(msg: pb.LinkEvent) -> LinkEvent:
    """The :class:`LinkEvent` a ``LinkEvent`` message carries."""
    return LinkEvent(
        interface=msg.interface,
        state=_name_of(LINK_STATES, msg.state),
        peer=peer_from_proto(msg.peer) if msg.HasField("peer") else None,
        reason=msg.reason,
        timestamp=msg.timestamp,
    )


def link_to_proto(details: LinkDetails) -> pb.LinkDetails:
    """The ``LinkDetails`` message."""
    msg = pb.LinkDetails(
        name=details.name,
        state=_to_number(LINK_STATES, details.state),  # type: ignore[arg-type]
        regions=[
            pb.LinkRegion(index=r.index, size=r.size, sealed=r.sealed) for r in details.regions
        ],
        rings=[
            pb.LinkRing(
                direction=DIRECTIONS[r.direction],  # type: ignore[arg-type]
                queue=r.queue,
                size=r.size,
                head=r.head,
                tail=r.tail,
                region=r.region,
                offset=r.offset,
            )
            for r in details.rings
        ],
    )
    if details.memory is not None:
        msg.memory.CopyFrom(memory_to_proto(details.memory))
    return msg


def link_from_proto(msg: pb.LinkDetails) -> LinkDetails:
    """The :class:`LinkDetails` a ``LinkDetails`` message carries."""
    memory = msg.memory
    return LinkDetails(
        name=msg.name,
        state=_name_of(LINK_STATES, msg.state),
        memory=MemoryConfig(
            num_queue_pairs=memory.num_queue_pairs,
            log2_ring_size=memory.log2_ring_size,
            packet_buffer_size=memory.packet_buffer_size,
        )
        if msg.HasField("memory")
        else None,
        regions=[LinkRegion(index=r.index, size=r.size, sealed=r.sealed) for r in msg.regions],
        rings=[
            LinkRing(
                direction=_name_of(DIRECTIONS, r.direction),
                queue=r.queue,
                size=r.size,
                head=r.head,
                tail=r.tail,
                region=r.region,
                offset=r.offset,
            )
            for r in msg.rings
        ],
    )


def packets_from_batch(batch: pb.PacketBatch) -> list[CapturedPacket]:
    """The packets of a ``PacketBatch`` as :class:`CapturedPacket` tuples."""
    names = {number: name for name, number in DIRECTIONS.items()}
    return [
        CapturedPacket(
            p.interface, p.queue, names.get(p.direction, ""), p.timestamp_ns, p.orig_len, p.data
        )
        for p in batch.packets
    ]
