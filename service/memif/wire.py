"""Encoding and decoding of the nine memif control messages (pure, no I/O).

Every message is exactly 128 bytes: a little-endian ``u16`` type followed by
the packed payload, zero-padded. Strings are NUL-padded byte arrays decoded up
to the first NUL; they are never trusted to be terminated.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from .constants import DISCONNECT_STRING_SIZE, MSG_SIZE, NAME_SIZE, SECRET_SIZE
from .errors import LocalProtocolError, WireError


class MsgType(enum.IntEnum):
    """Message type numbers (u16 at offset 0)."""

    NONE = 0
    ACK = 1
    HELLO = 2
    INIT = 3
    ADD_REGION = 4
    ADD_RING = 5
    CONNECT = 6
    CONNECTED = 7
    DISCONNECT = 8


_TYPE = struct.Struct("<H")


def _pad(value: bytes, size: int, field: str) -> bytes:
    if len(value) > size:
        raise LocalProtocolError(f"{field} is {len(value)} bytes, the limit is {size}")
    return value


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all messages; subclasses define ``TYPE`` and their payload."""

    TYPE: ClassVar[MsgType] = MsgType.NONE
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<")

    def payload(self) -> tuple[object, ...]:
        """The payload fields in wire order."""
        return ()

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        """Build the message from unpacked payload fields."""
        return cls()


@dataclass(frozen=True, slots=True)
class NoneMsg(Message):
    """Type 0: carries nothing; receiving it is a protocol error in every state."""

    TYPE: ClassVar[MsgType] = MsgType.NONE


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Type 1: acknowledges INIT, ADD_REGION and ADD_RING."""

    TYPE: ClassVar[MsgType] = MsgType.ACK


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Type 2: sent by the server on accept; ``max_*`` counts are count minus one."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    FORMAT: ClassVar[struct.Struct] = struct.Struct(f"<{NAME_SIZE}sHHHHHB")

    name: bytes = b""
    min_version: int = 0
    max_version: int = 0
    max_region: int = 0
    max_m2s_ring: int = 0
    max_s2m_ring: int = 0
    max_log2_ring_size: int = 0

    def payload(self) -> tuple[object, ...]:
        return (
            _pad(self.name, NAME_SIZE, "name"),
            self.min_version,
            self.max_version,
            self.max_region,
            self.max_m2s_ring,
            self.max_s2m_ring,
            self.max_log2_ring_size,
        )

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        name, *numbers = fields
        assert isinstance(name, bytes)
        return cls(_cstr(name), *(int(n) for n in numbers))  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class Init(Message):
    """Type 3: the client names the interface id, mode, secret and its application."""

    TYPE: ClassVar[MsgType] = MsgType.INIT
    FORMAT: ClassVar[struct.Struct] = struct.Struct(f"<HIB{SECRET_SIZE}s{NAME_SIZE}s")

    version: int = 0
    id: int = 0
    mode: int = 0
    secret: bytes = b""
    name: bytes = b""

    def payload(self) -> tuple[object, ...]:
        return (
            self.version,
            self.id,
            self.mode,
            _pad(self.secret, SECRET_SIZE, "secret"),
            _pad(self.name, NAME_SIZE, "name"),
        )

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        version, id_, mode, secret, name = fields
        assert isinstance(secret, bytes) and isinstance(name, bytes)
        return cls(int(version), int(id_), int(mode), _cstr(secret), _cstr(name))  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class AddRegion(Message):
    """Type 4: a shared memory region (its memfd travels with the message)."""

    TYPE: ClassVar[MsgType] = MsgType.ADD_REGION
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HQ")

    index: int = 0
    size: int = 0

    def payload(self) -> tuple[object, ...]:
        return (self.index, self.size)

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        return cls(*(int(f) for f in fields))  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class AddRing(Message):
    """Type 5: a ring inside a region (its interrupt eventfd travels with it)."""

    TYPE: ClassVar[MsgType] = MsgType.ADD_RING
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HHHIBH")

    flags: int = 0
    index: int = 0
    region: int = 0
    offset: int = 0
    log2_ring_size: int = 0
    private_hdr_size: int = 0

    def payload(self) -> tuple[object, ...]:
        return (
            self.flags,
            self.index,
            self.region,
            self.offset,
            self.log2_ring_size,
            self.private_hdr_size,
        )

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        return cls(*(int(f) for f in fields))  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class _Naming(Message):
    """A message that carries only an interface name (CONNECT and CONNECTED)."""

    FORMAT: ClassVar[struct.Struct] = struct.Struct(f"<{NAME_SIZE}s")

    if_name: bytes = b""

    def payload(self) -> tuple[object, ...]:
        return (_pad(self.if_name, NAME_SIZE, "if_name"),)

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        (name,) = fields
        assert isinstance(name, bytes)
        return cls(_cstr(name))


@dataclass(frozen=True, slots=True)
class Connect(_Naming):
    """Type 6: the client asks to bring the link up, naming its interface."""

    TYPE: ClassVar[MsgType] = MsgType.CONNECT


@dataclass(frozen=True, slots=True)
class Connected(_Naming):
    """Type 7: the server confirms the link, naming its interface."""

    TYPE: ClassVar[MsgType] = MsgType.CONNECTED


@dataclass(frozen=True, slots=True)
class Disconnect(Message):
    """Type 8: either side ends the connection with a code and a reason."""

    TYPE: ClassVar[MsgType] = MsgType.DISCONNECT
    FORMAT: ClassVar[struct.Struct] = struct.Struct(f"<I{DISCONNECT_STRING_SIZE}s")

    code: int = 0
    reason: bytes = b""

    def payload(self) -> tuple[object, ...]:
        # A reason longer than the field is cut rather than refused: it is advisory text.
        return (self.code, self.reason[:DISCONNECT_STRING_SIZE])

    @classmethod
    def from_payload(cls, fields: tuple[object, ...]) -> Message:
        code, reason = fields
        assert isinstance(reason, bytes)
        return cls(int(code), _cstr(reason))  # type: ignore[call-overload]


MESSAGE_CLASSES: Final[dict[MsgType, type[Message]]] = {
    cls.TYPE: cls
    for cls in (NoneMsg, Ack, Hello, Init, AddRegion, AddRing, Connect, Connected, Disconnect)
}


def encode(message: Message) -> bytes:
    """Encode ``message`` into exactly 128 bytes.

    Raises :class:`LocalProtocolError` when a field does not fit its wire size.
    """
    try:
        body = message.FORMAT.pack(*message.payload())
    except struct.error as exc:
        raise LocalProtocolError(f"{type(message).__name__}: {exc}") from None
    return (_TYPE.pack(message.TYPE) + body).ljust(MSG_SIZE, b"\x00")


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one 128-byte message; raises :class:`WireError` on malformed input."""
    if len(data) != MSG_SIZE:
        raise WireError(f"control message is {len(data)} bytes, expected {MSG_SIZE}")
    (type_value,) = _TYPE.unpack_from(data, 0)
    try:
        msg_type = MsgType(type_value)
    except ValueError:
        raise WireError(f"unknown message type {type_value}") from None
    cls = MESSAGE_CLASSES[msg_type]
    fields = cls.FORMAT.unpack_from(data, _TYPE.size)
    return cls.from_payload(fields)


def text(raw: bytes) -> str:
    """Decode a wire string for display: invalid UTF-8 replaced, and characters that are
    not printable (control characters, say) escaped as Python does (``\\n``, ``\\x00``),
    so what a peer sends cannot forge log lines or labels."""
    decoded = raw.decode("utf-8", errors="replace")
    if decoded.isprintable():
        return decoded
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in decoded
    )
