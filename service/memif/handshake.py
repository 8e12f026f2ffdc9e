"""The memif handshake as two sans-I/O state machines (server and client).

Messages and the file descriptors that came with them go in through
``receive()``; messages to send come out. Nothing here touches a socket or
allocates memory, so every rule is tested without I/O. Failures raise
:class:`RemoteProtocolError` (the peer broke a rule: answer with DISCONNECT
carrying ``reason``; ``kind`` names the rule), :class:`PeerDisconnected` (the
peer said goodbye) or :class:`LocalProtocolError` (the caller used the machine
wrongly).

The rules follow what VPP, libmemif, DPDK and gomemif do, so that each of them
connects: a server announces the protocol maxima in HELLO whatever its
interfaces are configured with; it takes as many rings (up to 256 per
direction) and as large a ring (up to 2^14) as the client built, since the
client made that memory before INIT; and it checks the secret only when the
server interface has one.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from . import wire
from .config import Arguments, Mode
from .constants import (
    DESC_SIZE,
    MAX_LOG2_RING_SIZE,
    MAX_REGION_SIZE,
    MAX_REGIONS,
    MAX_RINGS,
    RING_FLAG_S2M,
    RING_HEADER_SIZE,
    VERSION,
)
from .errors import FailureKind, LocalProtocolError, PeerDisconnected, RemoteProtocolError

__all__ = [
    "ClientHandshake",
    "HandshakeResult",
    "NegotiatedConfig",
    "RegionInfo",
    "RingInfo",
    "Send",
    "ServerHandshake",
    "ServerLimits",
    "ServerTarget",
]


@dataclass(frozen=True, slots=True)
class Send:
    """A message to send, with the fd to pass alongside it (if any)."""

    message: wire.Message
    fd: int | None = None


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """A region as announced by ADD_REGION."""

    index: int
    size: int
    fd: int


@dataclass(frozen=True, slots=True)
class RingInfo:
    """A ring as announced by ADD_RING."""

    s2m: bool
    index: int
    region: int
    offset: int
    log2_ring_size: int
    eventfd: int

    @property
    def end(self) -> int:
        """First byte past the ring's descriptor table."""
        return self.offset + RING_HEADER_SIZE + DESC_SIZE * (1 << self.log2_ring_size)


@dataclass(frozen=True, slots=True)
class NegotiatedConfig:
    """What a client builds after clamping its wishes to the server's HELLO limits."""

    num_s2m_rings: int
    num_m2s_rings: int
    log2_ring_size: int
    packet_buffer_size: int
    max_regions: int


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """Everything the handshake established; fds are now owned by the receiver."""

    interface_id: int
    peer_if_name: str
    peer_app_name: str
    s2m_rings: tuple[RingInfo, ...]
    m2s_rings: tuple[RingInfo, ...]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What a server accepts and announces in HELLO (as counts; HELLO says count − 1).

    The defaults are the protocol maxima every other implementation announces:
    HELLO then reads 255 regions, 255 rings each way and log2 ring size 14.
    """

    max_regions: int = MAX_REGIONS
    max_m2s_rings: int = MAX_RINGS
    max_s2m_rings: int = MAX_RINGS
    max_log2_ring_size: int = MAX_LOG2_RING_SIZE


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """What the server knows of the interface an INIT names."""

    id: int
    name: str
    mode: Mode
    secret: str | None
    busy: bool = False


class _State(enum.Enum):
    START = "start"
    WAIT_HELLO = "waiting for HELLO"
    NEED_MEMORY = "waiting for memory"
    WAIT_INIT = "waiting for INIT"
    WAIT_ACK = "waiting for ACK"
    WAIT_REGION = "waiting for ADD_REGION"
    WAIT_RING = "waiting for ADD_REGION, ADD_RING or CONNECT"
    WAIT_CONNECTED = "waiting for CONNECTED"
    DONE = "connected"
    FAILED = "failed"


_FD_MESSAGES = (wire.AddRegion, wire.AddRing)


def _name(raw: str) -> bytes:
    return raw.encode()[:32]


def _secret_accepted(ours: str | None, theirs: bytes) -> bool:
    """True when INIT's secret (up to its first NUL) passes the server interface's.

    A server without a secret ignores whatever the client sent, as VPP, libmemif
    and DPDK do: libmemif and VPP clients that set none may send stale bytes there.
    With one, the comparison takes constant time.
    """
    if not ours:
        return True
    return hmac.compare_digest(ours.encode(), theirs)


class _Machine:
    """Shared plumbing: state and DISCONNECT handling."""

    def __init__(self) -> None:
        self._state = _State.START

    @property
    def state(self) -> str:
        """Human-readable current state."""
        return self._state.value

    @property
    def done(self) -> bool:
        """True once the link is up."""
        return self._state is _State.DONE

    def _fail(self, reason: str, kind: FailureKind = FailureKind.PROTOCOL) -> RemoteProtocolError:
        self._state = _State.FAILED
        return RemoteProtocolError(reason, kind)

    def _precheck(self, message: wire.Message, fd: int | None) -> None:
        if self._state is _State.FAILED:
            raise LocalProtocolError("handshake already failed")
        if isinstance(message, wire.Disconnect):
            self._state = _State.FAILED
            reason = wire.text(message.reason) or "no reason given"
            raise PeerDisconnected(
                f"peer disconnected: {reason} (code {message.code})", FailureKind.PEER_DISCONNECT
            )
        if fd is not None and not isinstance(message, _FD_MESSAGES):
            raise self._fail(f"unexpected file descriptor with {message.TYPE.name}")
        if fd is None and isinstance(message, _FD_MESSAGES):
            raise self._fail(f"{message.TYPE.name} without its file descriptor")

    def _unexpected(self, message: wire.Message) -> RemoteProtocolError:
        return self._fail(f"unexpected {message.TYPE.name} while {self._state.value}")


class ServerHandshake(_Machine):
    """Server side: sends HELLO, validates INIT, collects regions and rings."""

    def __init__(
        self,
        app_name: str,
        lookup: Callable[[int], ServerTarget | None],
        limits: ServerLimits | None = None,
    ) -> None:
        super().__init__()
        self._app_name = app_name
        self._lookup = lookup
        self._limits = limits or ServerLimits()
        self._target: ServerTarget | None = None
        self._peer_app = ""
        self._regions: list[RegionInfo] = []
        self._rings: dict[bool, list[RingInfo]] = {True: [], False: []}
        self._result: HandshakeResult | None = None
        self._last_ring: RingInfo | None = None

    @property
    def target(self) -> ServerTarget | None:
        """The interface INIT named, once accepted."""
        return self._target

    @property
    def result(self) -> HandshakeResult:
        """The established connection; only valid when :attr:`done`."""
        if self._result is None:
            raise LocalProtocolError(f"handshake not complete ({self.state})")
        return self._result

    @property
    def last_ring(self) -> RingInfo:
        """The ring the latest ADD_RING announced (valid after one was accepted)."""
        if self._last_ring is None:
            raise LocalProtocolError(f"no ring accepted yet ({self.state})")
        return self._last_ring

    def hello(self) -> Send:
        """The HELLO to send on accept."""
        if self._state is not _State.START:
            raise LocalProtocolError("hello() already called")
        self._state = _State.WAIT_INIT
        lim = self._limits
        return Send(
            wire.Hello(
                name=_name(self._app_name),
                min_version=VERSION,
                max_version=VERSION,
                max_region=lim.max_regions - 1,
                max_m2s_ring=lim.max_m2s_rings - 1,
                max_s2m_ring=lim.max_s2m_rings - 1,
                max_log2_ring_size=lim.max_log2_ring_size,
            )
        )

    def receive(self, message: wire.Message, fd: int | None = None) -> list[Send]:
        """Feed one received message; returns the replies to send."""
        if self._state is _State.START:
            raise LocalProtocolError("call hello() before receive()")
        self._precheck(message, fd)
        state = self._state
        if state is _State.WAIT_INIT and isinstance(message, wire.Init):
            return self._on_init(message)
        if state in (_State.WAIT_REGION, _State.WAIT_RING) and isinstance(message, wire.AddRegion):
            assert fd is not None
            return self._on_region(message, fd)
        if state is _State.WAIT_RING and isinstance(message, wire.AddRing):
            assert fd is not None
            return self._on_ring(message, fd)
        if state is _State.WAIT_RING and isinstance(message, wire.Connect):
            return self._on_connect(message)
        raise self._unexpected(message)

    def _on_init(self, msg: wire.Init) -> list[Send]:
        if msg.version != VERSION:
            raise self._fail(
                f"unsupported version {msg.version >> 8}.{msg.version & 0xFF}, "
                f"server speaks {VERSION >> 8}.{VERSION & 0xFF}",
                FailureKind.VERSION,
            )
        target = self._lookup(msg.id)
        if target is None:
            raise self._fail(f"no server interface with id {msg.id}", FailureKind.UNKNOWN_ID)
        if target.busy:
            raise self._fail(f"interface id {msg.id} is already connected", FailureKind.BUSY)
        try:
            peer_mode = Mode.from_wire(msg.mode)
        except ValueError:
            raise self._fail(f"unknown mode {msg.mode}", FailureKind.MODE) from None
        if peer_mode is not target.mode:
            raise self._fail(
                f"mode mismatch: peer {peer_mode.value}, ours {target.mode.value}",
                FailureKind.MODE,
            )
        if not _secret_accepted(target.secret, msg.secret):
            raise self._fail("secret mismatch", FailureKind.SECRET)
        self._target = target
        self._peer_app = wire.text(msg.name)
        self._state = _State.WAIT_REGION
        return [Send(wire.Ack())]

    def _on_region(self, msg: wire.AddRegion, fd: int) -> list[Send]:
        if self._state is _State.WAIT_RING and any(self._rings.values()):
            raise self._fail("ADD_REGION after ADD_RING")
        expected = len(self._regions)
        if msg.index != expected:
            raise self._fail(f"region index {msg.index} out of order, expected {expected}")
        if msg.index >= self._limits.max_regions:
            raise self._fail(
                f"region index {msg.index} over the limit {self._limits.max_regions}",
                FailureKind.MEMORY,
            )
        if not 0 < msg.size <= MAX_REGION_SIZE:
            raise self._fail(
                f"region {msg.index} size {msg.size} outside 1..{MAX_REGION_SIZE}",
                FailureKind.MEMORY,
            )
        self._regions.append(RegionInfo(msg.index, msg.size, fd))
        self._state = _State.WAIT_RING
        return [Send(wire.Ack())]

    def _on_ring(self, msg: wire.AddRing, fd: int) -> list[Send]:
        """Take one ring; its count and size are the client's, up to the HELLO limits.

        The server interface's own queue count and ring size do not limit the
        client: it built its memory before INIT named the interface. Rings
        beyond the interface's queues are read by its queues in turn.
        """
        s2m = bool(msg.flags & RING_FLAG_S2M)
        rings = self._rings[s2m]
        direction = "S2M" if s2m else "M2S"
        if msg.index != len(rings):
            raise self._fail(
                f"{direction} ring index {msg.index} out of order, expected {len(rings)}"
            )
        limit = self._limits.max_s2m_rings if s2m else self._limits.max_m2s_rings
        if msg.index >= limit:
            raise self._fail(
                f"{direction} ring {msg.index} over the limit of {limit} rings", FailureKind.MEMORY
            )
        if msg.private_hdr_size:
            raise self._fail(
                f"{direction} ring {msg.index}: private headers ({msg.private_hdr_size} bytes) "
                "are not supported"
            )
        max_log2 = self._limits.max_log2_ring_size
        if msg.log2_ring_size > max_log2:
            raise self._fail(
                f"log2 ring size {msg.log2_ring_size} over the limit {max_log2}",
                FailureKind.MEMORY,
            )
        if msg.region >= len(self._regions):
            raise self._fail(f"ring in unknown region {msg.region}", FailureKind.MEMORY)
        ring = RingInfo(s2m, msg.index, msg.region, msg.offset, msg.log2_ring_size, fd)
        if ring.end > self._regions[msg.region].size:
            raise self._fail(
                f"{direction} ring {msg.index} at offset {msg.offset} runs past the end "
                f"of region {msg.region} ({self._regions[msg.region].size} bytes)",
                FailureKind.MEMORY,
            )
        rings.append(ring)
        self._last_ring = ring
        return [Send(wire.Ack())]

    def _on_connect(self, msg: wire.Connect) -> list[Send]:
        assert self._target is not None
        for s2m, direction in ((True, "S2M"), (False, "M2S")):
            if not self._rings[s2m]:
                raise self._fail(f"CONNECT without any {direction} ring")
        self._state = _State.DONE
        self._result = HandshakeResult(
            interface_id=self._target.id,
            peer_if_name=wire.text(msg.if_name),
            peer_app_name=self._peer_app,
            s2m_rings=tuple(self._rings[True]),
            m2s_rings=tuple(self._rings[False]),
        )
        return [Send(wire.Connected(_name(self._target.name)))]

    def after_connected(self, message: wire.Message, fd: int | None = None) -> None:
        """Feed a message that arrived on an established link (only DISCONNECT is valid)."""
        self._precheck(message, fd)
        raise self._unexpected(message)


class ClientHandshake(_Machine):
    """Client side: answers HELLO, then offers memory one message per ACK."""

    def __init__(self, args: Arguments, app_name: str) -> None:
        super().__init__()
        if args.is_server:
            raise LocalProtocolError("ClientHandshake needs an interface in the client role")
        self._args = args
        self._app_name = app_name
        self._state = _State.WAIT_HELLO
        self._negotiated: NegotiatedConfig | None = None
        self._peer_app = ""
        self._pending: list[Send] = []
        self._rings: tuple[RingInfo, ...] = ()
        self._result: HandshakeResult | None = None

    @property
    def negotiated(self) -> NegotiatedConfig:
        """The clamped geometry to build memory for; valid after HELLO."""
        if self._negotiated is None:
            raise LocalProtocolError(f"no HELLO yet ({self.state})")
        return self._negotiated

    @property
    def needs_memory(self) -> bool:
        """True when :meth:`provide_memory` is the next step."""
        return self._state is _State.NEED_MEMORY

    @property
    def result(self) -> HandshakeResult:
        """The established connection; only valid when :attr:`done`."""
        if self._result is None:
            raise LocalProtocolError(f"handshake not complete ({self.state})")
        return self._result

    def receive(self, message: wire.Message, fd: int | None = None) -> list[Send]:
        """Feed one received message; returns the messages to send next."""
        self._precheck(message, fd)
        if self._state is _State.WAIT_HELLO and isinstance(message, wire.Hello):
            self._on_hello(message)
            return []
        if self._state is _State.WAIT_ACK and isinstance(message, wire.Ack):
            return [self._next()]
        if self._state is _State.WAIT_CONNECTED and isinstance(message, wire.Connected):
            self._state = _State.DONE
            s2m = tuple(r for r in self._rings if r.s2m)
            m2s = tuple(r for r in self._rings if not r.s2m)
            self._result = HandshakeResult(
                interface_id=self._args.id,
                peer_if_name=wire.text(message.if_name),
                peer_app_name=self._peer_app,
                s2m_rings=s2m,
                m2s_rings=m2s,
            )
            return []
        raise self._unexpected(message)

    def _on_hello(self, hello: wire.Hello) -> None:
        """Clamp our geometry to the server's HELLO, read as count − 1 like libmemif and VPP.

        Every known server announces 255 or 256 (the protocol maxima), so a
        client gets what it was configured with.
        """
        if not hello.min_version <= VERSION <= hello.max_version:
            raise self._fail(
                f"server speaks versions 0x{hello.min_version:04x}..0x{hello.max_version:04x}, "
                f"we need 0x{VERSION:04x}",
                FailureKind.VERSION,
            )
        mem = self._args.memory
        self._peer_app = wire.text(hello.name)
        self._negotiated = NegotiatedConfig(
            num_s2m_rings=min(mem.num_queue_pairs, hello.max_s2m_ring + 1),
            num_m2s_rings=min(mem.num_queue_pairs, hello.max_m2s_ring + 1),
            log2_ring_size=min(mem.log2_ring_size, hello.max_log2_ring_size),
            packet_buffer_size=mem.packet_buffer_size,
            max_regions=hello.max_region + 1,
        )
        self._state = _State.NEED_MEMORY

    def provide_memory(self, regions: list[RegionInfo], rings: list[RingInfo]) -> list[Send]:
        """Queue INIT, the regions, the rings and CONNECT; returns INIT to send now."""
        if self._state is not _State.NEED_MEMORY:
            raise LocalProtocolError(f"provide_memory() while {self.state}")
        neg = self.negotiated
        if not regions or len(regions) > neg.max_regions:
            raise LocalProtocolError(
                f"{len(regions)} regions offered, the server allows 1..{neg.max_regions}"
            )
        self._rings = tuple(rings)
        secret = (self._args.secret or "").encode()
        self._pending = [
            Send(
                wire.Init(
                    version=VERSION,
                    id=self._args.id,
                    mode=self._args.mode.wire_value,
                    secret=secret,
                    name=_name(self._app_name),
                )
            ),
            *(Send(wire.AddRegion(r.index, r.size), r.fd) for r in regions),
            *(
                Send(
                    wire.AddRing(
                        flags=RING_FLAG_S2M if r.s2m else 0,
                        index=r.index,
                        region=r.region,
                        offset=r.offset,
                        log2_ring_size=r.log2_ring_size,
                    ),
                    r.eventfd,
                )
                for r in rings
            ),
            Send(wire.Connect(_name(self._args.name))),
        ]
        return [self._next()]

    def _next(self) -> Send:
        send = self._pending.pop(0)
        self._state = _State.WAIT_CONNECTED if not self._pending else _State.WAIT_ACK
        return send

    def after_connected(self, message: wire.Message, fd: int | None = None) -> None:
        """Feed a message that arrived on an established link (only DISCONNECT is valid)."""
        self._precheck(message, fd)
        raise self._unexpected(message)
