"""API models of memifd, derived from the library's :mod:`memif.config`.

One schema serves the REST bodies, the gRPC conversions, the declarative
config file and the Helm chart's ``values.schema.json``.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memif.config import Arguments, MemoryConfig, Mode, Role, RxMode
from memif.constants import NAME_SIZE, SECRET_SIZE


class Action(enum.StrEnum):
    """What memifd does with packets an interface receives."""

    DROP = "drop"
    ECHO = "echo"
    XCONNECT = "xconnect"


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class InterfaceSpec(BaseModel):
    """An interface as orchestration declares it (REST body, config file, Helm values)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=NAME_SIZE, pattern=NAME_PATTERN)] = Field(
        description=f"Unique interface name, 1 to {NAME_SIZE} characters of [A-Za-z0-9._-]."
    )
    socket: Annotated[str, Field(min_length=1, max_length=107)] = Field(
        default="memif.sock",
        description="Control socket: relative to the socket directory, absolute, or "
        "@name for the abstract namespace.",
    )
    id: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = Field(
        default=0, description="Interface id (u32), unique per socket and role."
    )
    role: Role = Field(default=Role.SERVER, description="server|client (also master|slave).")
    secret: Annotated[str, Field(max_length=SECRET_SIZE)] | None = Field(
        default=None, description=f"Shared secret, at most {SECRET_SIZE} bytes; never echoed."
    )
    mode: Mode = Field(default=Mode.ETHERNET, description="ethernet|ip|punt-inject.")
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    rx_mode: RxMode = Field(default=RxMode.INTERRUPT, description="interrupt|polling.")
    action: Action = Field(default=Action.DROP, description="drop|echo|xconnect.")
    xconnect_to: str | None = Field(
        default=None, description="With action xconnect: the interface to forward to."
    )
    admin_up: bool = Field(default=True, description="False keeps the interface down.")
    accept_unsealed_regions: bool = Field(
        default=False,
        description="Accept peer memory without F_SEAL_SHRINK (zero-copy peers); risky.",
    )

    @field_validator("role", "mode", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.lower()
            return {"master": "server", "slave": "client"}.get(lowered, lowered)
        return value

    @model_validator(mode="after")
    def _check(self) -> InterfaceSpec:
        self.to_arguments()  # the library's own limits (byte lengths, memory size)
        if self.action is Action.XCONNECT and not self.xconnect_to:
            raise ValueError("xconnect_to: required when action is xconnect")
        if self.xconnect_to is not None and self.xconnect_to == self.name:
            raise ValueError("xconnect_to: an interface cannot be cross-connected to itself")
        return self

    def to_arguments(self) -> Arguments:
        """The library's :class:`memif.Arguments` for this spec."""
        return Arguments(
            id=self.id,
            role=self.role,
            name=self.name,
            secret=self.secret,
            mode=self.mode,
            memory=self.memory,
            rx_mode=self.rx_mode,
            accept_unsealed_regions=self.accept_unsealed_regions,
        )
