from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SERVER: _ClassVar[Role]
    ROLE_CLIENT: _ClassVar[Role]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_ETHERNET: _ClassVar[Mode]
    MODE_IP: _ClassVar[Mode]
    MODE_PUNT_INJECT: _ClassVar[Mode]

class RxMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RX_MODE_UNSPECIFIED: _ClassVar[RxMode]
    RX_MODE_INTERRUPT: _ClassVar[RxMode]
    RX_MODE_POLLING: _ClassVar[RxMode]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_DROP: _ClassVar[Action]
    ACTION_ECHO: _ClassVar[Action]
    ACTION_XCONNECT: _ClassVar[Action]

class LinkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_STATE_UNSPECIFIED: _ClassVar[LinkState]
    LINK_STATE_DISCONNECTED: _ClassVar[LinkState]
    LINK_STATE_CONNECTING: _ClassVar[LinkState]
    LINK_STATE_CONNECTED: _ClassVar[LinkState]
    LINK_STATE_DELETED: _ClassVar[LinkState]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_RX: _ClassVar[Direction]
    DIRECTION_TX: _ClassVar[Direction]
    DIRECTION_BOTH: _ClassVar[Direction]
ROLE_UNSPECIFIED: Role
ROLE_SERVER: Role
ROLE_CLIENT: Role
MODE_UNSPECIFIED: Mode
MODE_ETHERNET: Mode
MODE_IP: Mode
MODE_PUNT_INJECT: Mode
RX_MODE_UNSPECIFIED: RxMode
RX_MODE_INTERRUPT: RxMode
RX_MODE_POLLING: RxMode
ACTION_UNSPECIFIED: Action
ACTION_DROP: Action
ACTION_ECHO: Action
ACTION_XCONNECT: Action
LINK_STATE_UNSPECIFIED: LinkState
LINK_STATE_DISCONNECTED: LinkState
LINK_STATE_CONNECTING: LinkState
LINK_STATE_CONNECTED: LinkState
LINK_STATE_DELETED: LinkState
DIRECTION_UNSPECIFIED: Direction
DIRECTION_RX: Direction
DIRECTION_TX: Direction
DIRECTION_BOTH: Direction

class MemoryConfig(_message.Message):
    __slots__ = ("num_queue_pairs", "log2_ring_size", "packet_buffer_size")
    NUM_QUEUE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    LOG2_RING_SIZE_FIELD_NUMBER: _ClassVar[int]
    PACKET_BUFFER_SIZE_FIELD_NUMBER: _ClassVar[int]
    num_queue_pairs: int
    log2_ring_size: int
    packet_buffer_size: int
    def __init__(self, num_queue_pairs: _Optional[int] = ..., log2_ring_size: _Optional[int] = ..., packet_buffer_size: _Optional[int] = ...) -> None: ...

class InterfaceSpec(_message.Message):
    __slots__ = ("name", "socket", "id", "role", "secret", "mode", "memory", "rx_mode", "action", "xconnect_to", "admin_up", "accept_unsealed_regions", "allowed_uids", "allowed_gids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    RX_MODE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    XCONNECT_TO_FIELD_NUMBER: _ClassVar[int]
    ADMIN_UP_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_UNSEALED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_UIDS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_GIDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    socket: str
    id: int
    role: Role
    secret: str
    mode: Mode
    memory: MemoryConfig
    rx_mode: RxMode
    action: Action
    xconnect_to: str
    admin_up: bool
    accept_unsealed_regions: bool
    allowed_uids: _containers.RepeatedScalarFieldContainer[int]
    allowed_gids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., socket: _Optional[str] = ..., id: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., secret: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., memory: _Optional[_Union[MemoryConfig, _Mapping]] = ..., rx_mode: _Optional[_Union[RxMode, str]] = ..., action: _Optional[_Union[Action, str]] = ..., xconnect_to: _Optional[str] = ..., admin_up: _Optional[bool] = ..., accept_unsealed_regions: _Optional[bool] = ..., allowed_uids: _Optional[_Iterable[int]] = ..., allowed_gids: _Optional[_Iterable[int]] = ...) -> None: ...

class InterfacePatch(_message.Message):
    __slots__ = ("rx_mode", "action", "xconnect_to", "admin_up")
    RX_MODE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    XCONNECT_TO_FIELD_NUMBER: _ClassVar[int]
    ADMIN_UP_FIELD_NUMBER: _ClassVar[int]
    rx_mode: RxMode
    action: Action
    xconnect_to: str
    admin_up: bool
    def __init__(self, rx_mode: _Optional[_Union[RxMode, str]] = ..., action: _Optional[_Union[Action, str]] = ..., xconnect_to: _Optional[str] = ..., admin_up: _Optional[bool] = ...) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("name", "app_name", "pid", "uid", "gid")
    NAME_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    name: str
    app_name: str
    pid: int
    uid: int
    gid: int
    def __init__(self, name: _Optional[str] = ..., app_name: _Optional[str] = ..., pid: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("packets", "bytes", "drops", "bad_descriptors", "ring_full")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    BAD_DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    RING_FULL_FIELD_NUMBER: _ClassVar[int]
    packets: int
    bytes: int
    drops: int
    bad_descriptors: int
    ring_full: int
    def __init__(self, packets: _Optional[int] = ..., bytes: _Optional[int] = ..., drops: _Optional[int] = ..., bad_descriptors: _Optional[int] = ..., ring_full: _Optional[int] = ...) -> None: ...

class InterfaceStats(_message.Message):
    __slots__ = ("rx", "tx", "rx_queues", "tx_queues", "subscriber_drops", "action_drops", "forwarded", "forward_drops", "exchanged", "injected")
    RX_FIELD_NUMBER: _ClassVar[int]
    TX_FIELD_NUMBER: _ClassVar[int]
    RX_QUEUES_FIELD_NUMBER: _ClassVar[int]
    TX_QUEUES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_DROPS_FIELD_NUMBER: _ClassVar[int]
    ACTION_DROPS_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    FORWARD_DROPS_FIELD_NUMBER: _ClassVar[int]
    EXCHANGED_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FIELD_NUMBER: _ClassVar[int]
    rx: QueueStats
    tx: QueueStats
    rx_queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    tx_queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    subscriber_drops: int
    action_drops: int
    forwarded: int
    forward_drops: int
    exchanged: int
    injected: int
    def __init__(self, rx: _Optional[_Union[QueueStats, _Mapping]] = ..., tx: _Optional[_Union[QueueStats, _Mapping]] = ..., rx_queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ..., tx_queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ..., subscriber_drops: _Optional[int] = ..., action_drops: _Optional[int] = ..., forwarded: _Optional[int] = ..., forward_drops: _Optional[int] = ..., exchanged: _Optional[int] = ..., injected: _Optional[int] = ...) -> None: ...

class InterfaceStatus(_message.Message):
    __slots__ = ("name", "socket", "id", "role", "mode", "memory", "rx_mode", "action", "xconnect_to", "admin_up", "accept_unsealed_regions", "has_secret", "socket_path", "state", "peer", "disconnect_reason", "stats", "allowed_uids", "allowed_gids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    RX_MODE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    XCONNECT_TO_FIELD_NUMBER: _ClassVar[int]
    ADMIN_UP_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_UNSEALED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    HAS_SECRET_FIELD_NUMBER: _ClassVar[int]
    SOCKET_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_REASON_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_UIDS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_GIDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    socket: str
    id: int
    role: Role
    mode: Mode
    memory: MemoryConfig
    rx_mode: RxMode
    action: Action
    xconnect_to: str
    admin_up: bool
    accept_unsealed_regions: bool
    has_secret: bool
    socket_path: str
    state: LinkState
    peer: PeerInfo
    disconnect_reason: str
    stats: InterfaceStats
    allowed_uids: _containers.RepeatedScalarFieldContainer[int]
    allowed_gids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., socket: _Optional[str] = ..., id: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., mode: _Optional[_Union[Mode, str]] = ..., memory: _Optional[_Union[MemoryConfig, _Mapping]] = ..., rx_mode: _Optional[_Union[RxMode, str]] = ..., action: _Optional[_Union[Action, str]] = ..., xconnect_to: _Optional[str] = ..., admin_up: _Optional[bool] = ..., accept_unsealed_regions: _Optional[bool] = ..., has_secret: _Optional[bool] = ..., socket_path: _Optional[str] = ..., state: _Optional[_Union[LinkState, str]] = ..., peer: _Optional[_Union[PeerInfo, _Mapping]] = ..., disconnect_reason: _Optional[str] = ..., stats: _Optional[_Union[InterfaceStats, _Mapping]] = ..., allowed_uids: _Optional[_Iterable[int]] = ..., allowed_gids: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateInterfaceRequest(_message.Message):
    __slots__ = ("spec", "dry_run")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    spec: InterfaceSpec
    dry_run: bool
    def __init__(self, spec: _Optional[_Union[InterfaceSpec, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ListInterfacesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListInterfacesResponse(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: _containers.RepeatedCompositeFieldContainer[InterfaceStatus]
    def __init__(self, interfaces: _Optional[_Iterable[_Union[InterfaceStatus, _Mapping]]] = ...) -> None: ...

class GetInterfaceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateInterfaceRequest(_message.Message):
    __slots__ = ("name", "patch")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    patch: InterfacePatch
    def __init__(self, name: _Optional[str] = ..., patch: _Optional[_Union[InterfacePatch, _Mapping]] = ...) -> None: ...

class DeleteInterfaceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteInterfaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetLinkDetailsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LinkRegion(_message.Message):
    __slots__ = ("index", "size", "sealed")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    index: int
    size: int
    sealed: bool
    def __init__(self, index: _Optional[int] = ..., size: _Optional[int] = ..., sealed: _Optional[bool] = ...) -> None: ...

class LinkRing(_message.Message):
    __slots__ = ("direction", "queue", "size", "head", "tail", "region", "offset")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    queue: int
    size: int
    head: int
    tail: int
    region: int
    offset: int
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., queue: _Optional[int] = ..., size: _Optional[int] = ..., head: _Optional[int] = ..., tail: _Optional[int] = ..., region: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class LinkDetails(_message.Message):
    __slots__ = ("name", "state", "memory", "regions", "rings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    RINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: LinkState
    memory: MemoryConfig
    regions: _containers.RepeatedCompositeFieldContainer[LinkRegion]
    rings: _containers.RepeatedCompositeFieldContainer[LinkRing]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[LinkState, str]] = ..., memory: _Optional[_Union[MemoryConfig, _Mapping]] = ..., regions: _Optional[_Iterable[_Union[LinkRegion, _Mapping]]] = ..., rings: _Optional[_Iterable[_Union[LinkRing, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("interface", "include_current")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    interface: str
    include_current: bool
    def __init__(self, interface: _Optional[str] = ..., include_current: _Optional[bool] = ...) -> None: ...

class LinkEvent(_message.Message):
    __slots__ = ("interface", "state", "peer", "reason", "timestamp")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    interface: str
    state: LinkState
    peer: PeerInfo
    reason: str
    timestamp: float
    def __init__(self, interface: _Optional[str] = ..., state: _Optional[_Union[LinkState, str]] = ..., peer: _Optional[_Union[PeerInfo, _Mapping]] = ..., reason: _Optional[str] = ..., timestamp: _Optional[float] = ...) -> None: ...

class CaptureRequest(_message.Message):
    __slots__ = ("interface", "queue", "direction", "count", "duration", "snaplen", "max_batch", "buffer")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SNAPLEN_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    BUFFER_FIELD_NUMBER: _ClassVar[int]
    interface: str
    queue: int
    direction: Direction
    count: int
    duration: float
    snaplen: int
    max_batch: int
    buffer: int
    def __init__(self, interface: _Optional[str] = ..., queue: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., count: _Optional[int] = ..., duration: _Optional[float] = ..., snaplen: _Optional[int] = ..., max_batch: _Optional[int] = ..., buffer: _Optional[int] = ...) -> None: ...

class Packet(_message.Message):
    __slots__ = ("interface", "queue", "direction", "timestamp_ns", "orig_len", "data")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    ORIG_LEN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    interface: str
    queue: int
    direction: Direction
    timestamp_ns: int
    orig_len: int
    data: bytes
    def __init__(self, interface: _Optional[str] = ..., queue: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., timestamp_ns: _Optional[int] = ..., orig_len: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PacketBatch(_message.Message):
    __slots__ = ("packets", "dropped")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    packets: _containers.RepeatedCompositeFieldContainer[Packet]
    dropped: int
    def __init__(self, packets: _Optional[_Iterable[_Union[Packet, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...

class InjectRequest(_message.Message):
    __slots__ = ("interface", "queue", "packets")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    interface: str
    queue: int
    packets: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, interface: _Optional[str] = ..., queue: _Optional[int] = ..., packets: _Optional[_Iterable[bytes]] = ...) -> None: ...

class InjectResponse(_message.Message):
    __slots__ = ("accepted", "ring_full", "batches")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RING_FULL_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    ring_full: int
    batches: int
    def __init__(self, accepted: _Optional[int] = ..., ring_full: _Optional[int] = ..., batches: _Optional[int] = ...) -> None: ...

class ExchangeOpen(_message.Message):
    __slots__ = ("interface", "max_batch", "buffer")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    BUFFER_FIELD_NUMBER: _ClassVar[int]
    interface: str
    max_batch: int
    buffer: int
    def __init__(self, interface: _Optional[str] = ..., max_batch: _Optional[int] = ..., buffer: _Optional[int] = ...) -> None: ...

class ExchangeSend(_message.Message):
    __slots__ = ("seq", "queue", "packets")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    queue: int
    packets: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, seq: _Optional[int] = ..., queue: _Optional[int] = ..., packets: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ExchangeRequest(_message.Message):
    __slots__ = ("open", "send")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    open: ExchangeOpen
    send: ExchangeSend
    def __init__(self, open: _Optional[_Union[ExchangeOpen, _Mapping]] = ..., send: _Optional[_Union[ExchangeSend, _Mapping]] = ...) -> None: ...

class SendResult(_message.Message):
    __slots__ = ("seq", "accepted", "ring_full")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RING_FULL_FIELD_NUMBER: _ClassVar[int]
    seq: int
    accepted: int
    ring_full: int
    def __init__(self, seq: _Optional[int] = ..., accepted: _Optional[int] = ..., ring_full: _Optional[int] = ...) -> None: ...

class ExchangeResponse(_message.Message):
    __slots__ = ("rx", "sent")
    RX_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    rx: PacketBatch
    sent: SendResult
    def __init__(self, rx: _Optional[_Union[PacketBatch, _Mapping]] = ..., sent: _Optional[_Union[SendResult, _Mapping]] = ...) -> None: ...
