"""API models of memifd, derived from the library's :mod:`memif.config`.

One schema serves the REST bodies, the gRPC conversions, the declarative
config file and the Helm chart's ``values.schema.json``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple

from memif import QueueStats
from memif.config import (
    MODE_ALIASES,
    ROLE_ALIASES,
    Arguments,
    MemoryConfig,
    Mode,
    Role,
    RxMode,
    UnixId,
    printable,
)
from memif.constants import (
    MAX_PACKET_SIZE,
    MAX_QUEUE_PAIRS,
    MAX_SOCKET_PATH,
    NAME_SIZE,
    SECRET_SIZE,
)
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo


class Action(enum.StrEnum):
    """What memifd does with packets an interface receives."""

    DROP = "drop"
    ECHO = "echo"
    XCONNECT = "xconnect"


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# Names another interface; it must exist, and reaches logs before that is checked.
InterfaceRef = Annotated[
    str, Field(max_length=NAME_SIZE), AfterValidator(lambda v: printable(v, "xconnect_to"))
]
MAX_ALLOWED_IDS = 64  # entries of allowed_uids / allowed_gids
IdList = Annotated[list[UnixId], Field(max_length=MAX_ALLOWED_IDS)]


def _library(name: str, **overrides: Any) -> Any:
    """Field ``name`` of :class:`memif.Arguments` (type limits, default, description), with
    ``overrides``: a spec takes its limits from the library rather than repeating them."""
    return FieldInfo.merge_field_infos(Arguments.model_fields[name], **overrides)


def _canonical(value: object, aliases: Mapping[str, enum.StrEnum]) -> object:
    """A role or mode as the library spells it: lower case, aliases resolved."""
    if isinstance(value, str):
        lowered = value.lower()
        return aliases.get(lowered, lowered)
    return value


class InterfaceSpec(BaseModel):
    """An interface as orchestration declares it (REST body, config file, Helm values)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=NAME_SIZE, pattern=NAME_PATTERN)] = Field(
        description=f"Unique interface name, 1 to {NAME_SIZE} characters of [A-Za-z0-9._-]."
    )
    socket: Annotated[str, Field(min_length=1, max_length=MAX_SOCKET_PATH)] = Field(
        default="memif.sock",
        description="Control socket: relative to the socket directory, absolute, or "
        "@name for the abstract namespace.",
    )
    id: int = _library("id", description="Interface id (u32), unique per socket and role.")
    role: Role = _library("role", default=Role.SERVER)
    secret: Annotated[str, Field(max_length=SECRET_SIZE)] | None = Field(
        default=None, description=f"Shared secret, at most {SECRET_SIZE} bytes; never echoed."
    )
    mode: Mode = _library("mode")
    memory: MemoryConfig = _library("memory")
    rx_mode: RxMode = _library("rx_mode", description="interrupt|polling.")
    action: Action = Field(default=Action.DROP, description="drop|echo|xconnect.")
    xconnect_to: InterfaceRef | None = Field(
        default=None, description="With action xconnect: the interface to forward to."
    )
    admin_up: bool = Field(default=True, description="False keeps the interface down.")
    accept_unsealed_regions: bool = _library(
        "accept_unsealed_regions",
        description="Accept peer memory without F_SEAL_SHRINK (zero-copy peers); risky.",
    )
    allowed_uids: IdList = Field(
        default_factory=list,
        description=f"Peer uids (SO_PEERCRED) allowed besides memifd's own, at most "
        f"{MAX_ALLOWED_IDS}. A server checks its clients, a client its server. With "
        "allowed_gids also empty: a server takes the settings' default_allowed_uids and "
        "default_allowed_gids, a client accepts any server.",
    )
    allowed_gids: IdList = Field(
        default_factory=list,
        description=f"Peer groups (primary or supplementary) allowed, at most {MAX_ALLOWED_IDS}.",
    )

    @field_validator("role", mode="before")
    @classmethod
    def _role_alias(cls, value: object) -> object:
        return _canonical(value, ROLE_ALIASES)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_alias(cls, value: object) -> object:
        return _canonical(value, MODE_ALIASES)

    @field_validator("socket")
    @classmethod
    def _printable(cls, value: str) -> str:
        # NUL ends a filesystem path in the kernel; no control character belongs in a
        # name that reaches logs and metrics labels, abstract names included
        return printable(value, "socket")

    @field_validator("socket")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if not value.startswith("@") and ".." in value.split("/"):
            raise ValueError("'..' is not allowed; name a file in an allowed socket directory")
        return value

    @field_validator("allowed_uids", "allowed_gids")
    @classmethod
    def _sorted_ids(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _check(self) -> InterfaceSpec:
        self.to_arguments()  # the library's own limits (byte lengths, memory size)
        if self.action is Action.XCONNECT and not self.xconnect_to:
            raise ValueError("xconnect_to: required when action is xconnect")
        if self.xconnect_to is not None and self.xconnect_to == self.name:
            raise ValueError("xconnect_to: an interface cannot be cross-connected to itself")
        return self

    def to_arguments(self) -> Arguments:
        """The library's :class:`memif.Arguments` for this spec (the peers it allows are
        left to the manager, which adds its own uid and the settings' defaults)."""
        return Arguments(**{name: getattr(self, name) for name in ARGUMENT_FIELDS})


#: The fields an InterfaceSpec hands to :class:`memif.Arguments` as they are.
ARGUMENT_FIELDS: tuple[str, ...] = tuple(
    name
    for name in Arguments.model_fields
    if name in InterfaceSpec.model_fields and name not in ("allowed_uids", "allowed_gids")
)


class LinkState(enum.StrEnum):
    """Link state of a managed interface; ``deleted`` only in the event of its deletion."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DELETED = "deleted"


class Direction(enum.StrEnum):
    """Which packets a capture sees, from memifd's point of view."""

    RX = "rx"
    TX = "tx"
    BOTH = "both"


class PeerInfo(BaseModel):
    """The process at the other end of a connected interface."""

    name: str = Field(description="Interface name the peer announced.")
    app_name: str = Field(description="Application name from the peer's HELLO or INIT.")
    pid: int | None = Field(default=None, description="Peer pid (SO_PEERCRED).")
    uid: int | None = Field(default=None, description="Peer uid (SO_PEERCRED).")
    gid: int | None = Field(default=None, description="Peer gid (SO_PEERCRED).")


#: The counters of a queue, as the library names them (:class:`memif.QueueStats`); the
#: REST, gRPC, metrics and ctl views list them in this order.
QUEUE_COUNTERS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(QueueStats))


class QueueCounters(BaseModel):
    """Packet counters of one queue, or of all queues of one direction (the fields are
    :data:`QUEUE_COUNTERS`)."""

    packets: int = 0
    bytes: int = 0
    drops: int = Field(default=0, description="Packets lost to bad descriptors (rx).")
    bad_descriptors: int = 0
    ring_full: int = Field(default=0, description="Packets that found no room (tx).")


class InterfaceStats(BaseModel):
    """Counters of one interface.

    Every received packet is accounted for exactly once:
    ``rx.packets == action_drops + forwarded + forward_drops + exchanged``.
    """

    rx: QueueCounters = Field(default_factory=QueueCounters)
    tx: QueueCounters = Field(default_factory=QueueCounters)
    rx_queues: list[QueueCounters] = Field(default_factory=list)
    tx_queues: list[QueueCounters] = Field(default_factory=list)
    action_drops: int = Field(default=0, description="Received packets the drop action consumed.")
    forwarded: int = Field(default=0, description="Received packets sent on by echo or xconnect.")
    forward_drops: int = Field(
        default=0,
        description="Received packets echo, xconnect or an exchange could not send on "
        "(no room, target down or missing).",
    )
    exchanged: int = Field(default=0, description="Received packets handed to an exchange.")
    injected: int = Field(default=0, description="Packets sent from the API (inject, exchange).")
    subscriber_drops: int = Field(
        default=0, description="Captured or exchanged packets a slow subscriber lost."
    )


#: The counters memifd keeps per interface on top of its queues' (see InterfaceStats).
INTERFACE_COUNTERS: tuple[str, ...] = tuple(
    name for name, info in InterfaceStats.model_fields.items() if info.annotation is int
)


class InterfaceStatus(BaseModel):
    """An interface as memifd reports it: its spec (without the secret) and its state."""

    name: str
    socket: str
    id: int
    role: Role
    mode: Mode
    memory: MemoryConfig
    rx_mode: RxMode
    action: Action
    xconnect_to: str | None = None
    admin_up: bool
    accept_unsealed_regions: bool
    allowed_uids: list[int] = Field(default_factory=list)
    allowed_gids: list[int] = Field(default_factory=list)
    has_secret: bool = Field(description="True when a secret is set (it is never returned).")
    socket_path: str = Field(description="The control socket as resolved on this host.")
    state: LinkState
    peer: PeerInfo | None = None
    disconnect_reason: str = ""
    stats: InterfaceStats = Field(default_factory=InterfaceStats)


class InterfacePreview(InterfaceStatus):
    """What a dry run of a create answers: the interface as it would be; nothing exists."""

    dry_run: Literal[True] = Field(
        default=True, description="Always true: a preview, nothing was created."
    )


class InterfacePatch(BaseModel):
    """Fields of a live interface that can change without recreating it."""

    model_config = ConfigDict(extra="forbid")

    rx_mode: RxMode | None = None
    action: Action | None = None
    xconnect_to: InterfaceRef | None = None
    admin_up: bool | None = None


class LinkEvent(BaseModel):
    """A link state change of one interface."""

    interface: str
    state: LinkState = Field(
        description="connecting (a handshake began), connected, disconnected (with a reason) "
        "or deleted"
    )
    peer: PeerInfo | None = None
    reason: str = ""
    timestamp: float = Field(description="Unix time in seconds.")


MAX_CAPTURE_COUNT = 10_000_000
MAX_CAPTURE_DURATION = 86_400.0
MAX_SNAPLEN = MAX_PACKET_SIZE
MAX_CAPTURE_INTERFACES = 256  # names in one capture of several interfaces


class CaptureFilter(BaseModel):
    """Which packets a capture wants and when it ends."""

    model_config = ConfigDict(extra="forbid")

    interface: str | None = Field(default=None, description="Interface name; None for all.")
    interfaces: (
        Annotated[list[str], Field(min_length=1, max_length=MAX_CAPTURE_INTERFACES)] | None
    ) = Field(
        default=None,
        description="Several interface names (instead of ``interface``); the capture ends "
        "when the last of them is deleted.",
    )
    queue: Annotated[int, Field(ge=0, le=MAX_QUEUE_PAIRS - 1)] | None = None
    direction: Direction = Direction.BOTH
    count: Annotated[int, Field(ge=1, le=MAX_CAPTURE_COUNT)] | None = Field(
        default=None, description=f"Stop after this many packets, 1 to {MAX_CAPTURE_COUNT}."
    )
    duration: Annotated[float, Field(gt=0, le=MAX_CAPTURE_DURATION)] | None = Field(
        default=None,
        description=f"Stop after this many seconds, > 0 and at most {MAX_CAPTURE_DURATION:g}.",
    )
    snaplen: Annotated[int, Field(ge=1, le=MAX_SNAPLEN)] = Field(
        default=MAX_SNAPLEN, description=f"Bytes kept of each packet, 1 to {MAX_SNAPLEN}."
    )

    @model_validator(mode="after")
    def _one_way_to_name(self) -> CaptureFilter:
        if self.interface is not None and self.interfaces is not None:
            raise ValueError("give interface or interfaces, not both")
        return self

    def names(self) -> frozenset[str] | None:
        """The interfaces captured; None for every interface, present and future."""
        if self.interfaces is not None:
            return frozenset(self.interfaces)
        return None if self.interface is None else frozenset((self.interface,))


class CapturedPacket(NamedTuple):
    """One packet seen on an interface (a tuple: captures create many of them)."""

    interface: str
    queue: int
    direction: str
    timestamp_ns: int
    orig_len: int
    data: bytes


class InjectResult(BaseModel):
    """What happened to packets handed to an interface for transmission."""

    accepted: int = Field(description="Packets queued on the ring.")
    ring_full: int = Field(description="Packets that found no room and were not sent.")


class LinkRegion(BaseModel):
    """One shared memory region of a link."""

    index: int
    size: int = Field(description="Bytes.")
    sealed: bool = Field(description="Sealed against shrinking (F_SEAL_SHRINK).")


class LinkRing(BaseModel):
    """One ring of a link, from memifd's side: ``rx`` is a ring it reads."""

    direction: Direction = Field(description="rx or tx.")
    queue: int
    size: int = Field(description="Descriptors.")
    head: int = Field(description="The head counter in shared memory (16 bits).")
    tail: int = Field(description="The tail counter in shared memory (16 bits).")
    region: int = Field(description="The region holding the ring.")
    offset: int = Field(description="Where the ring starts in that region.")


class LinkDetails(BaseModel):
    """The shared memory of an interface's link (empty unless it is connected)."""

    name: str
    state: LinkState
    memory: MemoryConfig | None = Field(
        default=None, description="The geometry negotiated with the peer."
    )
    regions: list[LinkRegion] = Field(default_factory=list)
    rings: list[LinkRing] = Field(default_factory=list)
