"""Validated configuration of a memif interface: :class:`Arguments` and :class:`MemoryConfig`.

These pydantic models are the single source of truth for limits; memifd's REST
and gRPC bodies, its config file and the Helm chart's schema derive from them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .constants import (
    MAX_BUFFER_SIZE,
    MAX_LOG2_RING_SIZE,
    MAX_QUEUE_PAIRS,
    MAX_REGION_SIZE,
    MIN_BUFFER_SIZE,
    NAME_SIZE,
    SECRET_SIZE,
)


class Role(enum.StrEnum):
    """Which end of the connection an interface is."""

    SERVER = "server"
    CLIENT = "client"


class Mode(enum.StrEnum):
    """Interface mode, carried in INIT; both sides must agree."""

    ETHERNET = "ethernet"
    IP = "ip"
    PUNT_INJECT = "punt-inject"

    @property
    def wire_value(self) -> int:
        """The mode's number on the wire."""
        return _MODE_WIRE[self]

    @classmethod
    def from_wire(cls, value: int) -> Mode:
        """The mode for a wire number; raises ValueError for unknown numbers."""
        for mode, number in _MODE_WIRE.items():
            if number == value:
                return mode
        raise ValueError(f"unknown interface mode {value}")


_MODE_WIRE = {Mode.ETHERNET: 0, Mode.IP: 1, Mode.PUNT_INJECT: 2}

#: Other spellings :class:`Arguments` accepts for a role and a mode (any case).
ROLE_ALIASES = {"master": Role.SERVER, "slave": Role.CLIENT}
MODE_ALIASES = {"eth": Mode.ETHERNET, "punt_inject": Mode.PUNT_INJECT, "punt": Mode.PUNT_INJECT}


class RxMode(enum.StrEnum):
    """How a receive queue learns about new packets."""

    INTERRUPT = "interrupt"
    POLLING = "polling"


class MemoryConfig(BaseModel):
    """Shared memory geometry of an interface.

    A client uses it to size the memory it creates (clamped to the server's
    HELLO limits). A server creates ``num_queue_pairs`` queues; the client's
    ring count and sizes are its own (extra rings are read by the queues in turn).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_queue_pairs: Annotated[int, Field(ge=1, le=MAX_QUEUE_PAIRS)] = Field(
        default=1, description=f"Queue pairs (rx+tx), 1 to {MAX_QUEUE_PAIRS}."
    )
    log2_ring_size: Annotated[int, Field(ge=1, le=MAX_LOG2_RING_SIZE)] = Field(
        default=10, description=f"log2 of descriptors per ring, 1 to {MAX_LOG2_RING_SIZE}."
    )
    packet_buffer_size: Annotated[int, Field(ge=MIN_BUFFER_SIZE, le=MAX_BUFFER_SIZE)] = Field(
        default=2048,
        description=f"Bytes per packet buffer, {MIN_BUFFER_SIZE} to {MAX_BUFFER_SIZE}; "
        "larger packets are chained over several buffers.",
    )

    @property
    def ring_size(self) -> int:
        """Descriptors per ring."""
        return 1 << self.log2_ring_size

    @property
    def buffer_region_size(self) -> int:
        """Bytes of packet buffers a client allocates for this geometry."""
        return 2 * self.num_queue_pairs * self.ring_size * self.packet_buffer_size

    @model_validator(mode="after")
    def _fits_in_u32_offsets(self) -> MemoryConfig:
        if self.buffer_region_size > MAX_REGION_SIZE:
            raise ValueError(
                "memory: num_queue_pairs × 2 × 2^log2_ring_size × packet_buffer_size = "
                f"{self.buffer_region_size} bytes exceeds the limit of {MAX_REGION_SIZE} "
                "(4 GiB, descriptor offsets are 32-bit)"
            )
        return self


def _utf8_limited(value: str, field: str, limit: int) -> str:
    size = len(value.encode())
    if size > limit:
        raise ValueError(f"{field} must be at most {limit} bytes in UTF-8, got {size}")
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    return value


def printable(value: str, field: str) -> str:
    """``value`` if it holds no control or other non-printable character; a name that
    reaches logs, metrics labels and the peer must not carry any."""
    for index, char in enumerate(value):
        if not char.isprintable():
            known = _CONTROL_NAMES.get(char)
            raise ValueError(
                f"{field} must hold printable characters only, found U+{ord(char):04X}"
                f"{f' ({known})' if known else ''} at position {index}"
            )
    return value


_CONTROL_NAMES = {
    "\0": "NUL",
    "\t": "tab",
    "\n": "newline",
    "\r": "carriage return",
    "\x1b": "escape",
}


#: A uid or gid; 2^32 - 1 is (uid_t)-1, "no id", and never names a peer.
UnixId = Annotated[int, Field(ge=0, le=0xFFFFFFFE)]


class Arguments(BaseModel):
    """Everything needed to create an interface (gomemif's ``Arguments``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    id: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = Field(
        default=0, description="Interface id, unique per socket and role (u32)."
    )
    role: Role = Field(default=Role.CLIENT, description="server|client (also master|slave).")
    name: str = Field(default="memif0", description=f"Interface name, at most {NAME_SIZE} bytes.")
    secret: str | None = Field(
        default=None, description=f"Shared secret, at most {SECRET_SIZE} bytes."
    )
    mode: Mode = Field(default=Mode.ETHERNET, description="ethernet|ip|punt-inject.")
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    rx_mode: RxMode = Field(
        default=RxMode.INTERRUPT, description="Initial mode of every receive queue."
    )
    accept_unsealed_regions: bool = Field(
        default=False,
        description="Accept peer memory without F_SEAL_SHRINK (zero-copy peers). "
        "Risky: a peer that shrinks it kills this process with SIGBUS.",
    )
    allowed_uids: frozenset[UnixId] | None = Field(
        default=None,
        description="Peer uids (SO_PEERCRED) this interface accepts; with allowed_gids "
        "both None, any peer the socket lets in.",
    )
    allowed_gids: frozenset[UnixId] | None = Field(
        default=None,
        description="Peer groups this interface accepts: the primary group or any "
        "supplementary group of the peer process.",
    )

    @field_validator("role", mode="before")
    @classmethod
    def _role_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ROLE_ALIASES.get(value.lower(), value.lower())
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return MODE_ALIASES.get(value.lower(), value.lower())
        return value

    @field_validator("name")
    @classmethod
    def _name_fits(cls, value: str) -> str:
        return printable(_utf8_limited(value, "name", NAME_SIZE), "name")

    @field_validator("secret")
    @classmethod
    def _secret_fits(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _utf8_limited(value, "secret", SECRET_SIZE)

    @property
    def is_server(self) -> bool:
        """True for the server (master) role."""
        return self.role is Role.SERVER
