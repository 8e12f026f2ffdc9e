"""An interface: configuration, link state, queues, statistics and callbacks.

Interfaces are created by :meth:`memif.Socket.create_interface`. The two talk
through small public surfaces: an interface asks its socket (an
:class:`InterfaceHost`) to disconnect, enable, delete or drop a faulty link, and
the socket's loop tells the interface what its connection did
(:meth:`Interface.mark_connecting`, :meth:`Interface.attach_link`,
:meth:`Interface.detach_link`, :meth:`Interface.mark_deleted`). Everything
users call here is thread-safe.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .config import Arguments, MemoryConfig
from .errors import LocalProtocolError
from .link import Link
from .queue import RxQueue, TxQueue

if TYPE_CHECKING:
    from .socket import Socket

Callback = Callable[["Interface"], Any]


class InterfaceHost(Protocol):
    """What an interface asks of the socket that carries it."""

    def disconnect_interface(self, iface: Interface, reason: str) -> None:
        """Drop the interface's link or handshake, telling the peer ``reason``."""

    def set_interface_admin(self, iface: Interface, up: bool) -> None:
        """Enable or disable the interface."""

    def delete_interface(self, iface: Interface) -> None:
        """Disconnect, release and forget the interface."""

    def report_fault(self, iface: Interface, reason: str) -> None:
        """A queue found its ring broken; the link is to be dropped."""


class State(enum.StrEnum):
    """Link state of an interface."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """The peer process as the kernel reports it (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class RegionDetails:
    """One shared memory region of a link."""

    index: int
    size: int
    sealed: bool  # against shrinking (F_SEAL_SHRINK)


@dataclass(frozen=True, slots=True)
class RingDetails:
    """One ring of a link, as this side sees it (``rx``: the ring we read)."""

    direction: str
    queue: int
    size: int
    head: int
    tail: int
    region: int
    offset: int


@dataclass(frozen=True, slots=True)
class LinkDetails:
    """The shared memory of an established link: what was negotiated and where it is."""

    memory: MemoryConfig
    regions: list[RegionDetails]
    rings: list[RingDetails]


class Interface:
    """One memif interface in the server or client role."""

    def __init__(
        self,
        socket: Socket,
        args: Arguments,
        on_connected: Callback | None = None,
        on_disconnected: Callback | None = None,
    ) -> None:
        self._socket = socket
        self._host: InterfaceHost = socket
        self.args = args
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self._data_lock = threading.Lock()
        self._state_changed = threading.Condition()
        self._state = State.DISCONNECTED
        self._admin_up = True
        self._link: Link | None = None
        self.peer_name = ""
        self.remote_app_name = ""
        self.peer_credentials: PeerCredentials | None = None
        self.disconnect_reason = ""
        self.connected_since: float | None = None
        self.connect_count = 0
        self._negotiated: MemoryConfig | None = None
        nq = args.memory.num_queue_pairs
        self._rx = [RxQueue(i, self._data_lock, self._ring_fault, args.rx_mode) for i in range(nq)]
        self._tx = [TxQueue(i, self._data_lock, self._ring_fault) for i in range(nq)]

    def __repr__(self) -> str:
        return (
            f"<memif.Interface {self.args.name!r} id={self.args.id} "
            f"role={self.args.role.value} {self._state.value}>"
        )

    # -- identity and state -------------------------------------------------

    @property
    def socket(self) -> Socket:
        """The socket this interface lives on."""
        return self._socket

    @property
    def name(self) -> str:
        """Interface name (from the arguments)."""
        return self.args.name

    @property
    def id(self) -> int:
        """Interface id (from the arguments)."""
        return self.args.id

    @property
    def is_server(self) -> bool:
        """True in the server (master) role."""
        return self.args.is_server

    @property
    def state(self) -> State:
        """Current link state."""
        return self._state

    @property
    def is_connected(self) -> bool:
        """True while the link is up."""
        return self._state is State.CONNECTED

    @property
    def admin_up(self) -> bool:
        """False when the interface was taken down with :meth:`set_admin_up`."""
        return self._admin_up

    @property
    def memory(self) -> MemoryConfig | None:
        """The memory geometry in use while connected, as the client built it.

        ``num_queue_pairs`` counts the rings of the busier direction; a server may
        see more than it has queues (its receive queues then read several rings).
        """
        return self._negotiated

    def link_details(self) -> LinkDetails | None:
        """Regions and rings (with their head and tail right now) while connected, else None."""
        link, memory = self._link, self._negotiated
        if link is None or memory is None:
            return None
        try:
            regions = [RegionDetails(r.index, r.size, r.sealed) for r in link.regions]
            maps = [region.map for region in link.regions]
            rings = [
                RingDetails(
                    direction,
                    queue,
                    ring.view.size,
                    *ring.view.counters(),
                    _index_of(ring.view.region, maps),
                    ring.view.offset,
                )
                for direction, endpoints in (("rx", link.rx), ("tx", link.tx))
                for queue, ring in enumerate(endpoints)
            ]
        except (ValueError, AttributeError):  # the link went down meanwhile
            return None
        return LinkDetails(memory, regions, rings)

    # -- queues --------------------------------------------------------------

    @property
    def rx_queues(self) -> list[RxQueue]:
        """Receive queues (as configured; only the connected ones carry packets)."""
        return list(self._rx)

    @property
    def tx_queues(self) -> list[TxQueue]:
        """Transmit queues (as configured; only the connected ones carry packets)."""
        return list(self._tx)

    def rx_queue(self, index: int = 0) -> RxQueue:
        """The receive queue ``index``."""
        return self._queue(self._rx, index, "rx")  # type: ignore[return-value]

    def tx_queue(self, index: int = 0) -> TxQueue:
        """The transmit queue ``index``."""
        return self._queue(self._tx, index, "tx")  # type: ignore[return-value]

    @staticmethod
    def _queue(queues: list[RxQueue] | list[TxQueue], index: int, kind: str) -> object:
        if not 0 <= index < len(queues):
            raise LocalProtocolError(f"{kind} queue {index} does not exist (0..{len(queues) - 1})")
        return queues[index]

    @property
    def num_rx_connected(self) -> int:
        """Receive queues with a ring attached."""
        return sum(q.connected for q in self._rx)

    @property
    def num_tx_connected(self) -> int:
        """Transmit queues with a ring attached."""
        return sum(q.connected for q in self._tx)

    def stats(self) -> dict[str, Any]:
        """Per-queue counters and their totals."""
        rx = [q.stats.as_dict() for q in self._rx]
        tx = [q.stats.as_dict() for q in self._tx]

        def total(rows: list[dict[str, int]]) -> dict[str, int]:
            out: dict[str, int] = {}
            for row in rows:
                for key, value in row.items():
                    out[key] = out.get(key, 0) + value
            return out

        return {"rx": total(rx), "tx": total(tx), "rx_queues": rx, "tx_queues": tx}

    # -- control ---------------------------------------------------------------

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the link is up; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state_changed:
            while self._state is not State.CONNECTED:
                if self._state is State.DELETED:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._state_changed.wait(remaining)
            return True

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Block until the link is down; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state_changed:
            while self._state is State.CONNECTED:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._state_changed.wait(remaining)
            return True

    def disconnect(self, reason: str = "disconnected by user") -> None:
        """Drop the current link (a client reconnects after its retry interval)."""
        self._host.disconnect_interface(self, reason)

    def set_admin_up(self, up: bool) -> None:
        """Administratively enable or disable; disabled interfaces never connect."""
        self._host.set_interface_admin(self, up)

    def delete(self) -> None:
        """Disconnect, release every resource and remove from the socket."""
        self._host.delete_interface(self)

    # -- told by the socket's event loop (not for applications) ------------------

    def mark_connecting(self) -> None:
        """A handshake for this interface started."""
        self._set_state(State.CONNECTING)

    def mark_admin(self, up: bool) -> None:
        """Record the administrative state the socket acted on."""
        self._admin_up = up

    def mark_deleted(self) -> None:
        """The socket forgot this interface: the state is final, the queues close."""
        self._set_state(State.DELETED)
        for queue in self._rx:
            queue._close()
        for tx_queue in self._tx:
            tx_queue._close()

    def attach_link(
        self,
        link: Link,
        peer_name: str,
        remote_app: str,
        creds: PeerCredentials | None,
    ) -> None:
        """The link is up: attach its rings to the queues."""
        self._link = link
        self.peer_name = peer_name
        self.remote_app_name = remote_app
        self.peer_credentials = creds
        self.disconnect_reason = ""
        nq = max(len(link.rx), len(link.tx))
        self._negotiated = MemoryConfig.model_construct(
            num_queue_pairs=nq,
            log2_ring_size=link.log2_ring_size,
            packet_buffer_size=link.buffer_size or self.args.memory.packet_buffer_size,
        )
        # More S2M rings than receive queues (a server whose client built more):
        # queue i of n also reads rings i + n, i + 2n, ...
        for queue in self._rx:
            rx_rings = link.rx[queue.index :: len(self._rx)]
            if rx_rings:
                queue._attach(rx_rings)
        for tx_queue, tx_ring in zip(self._tx, link.tx, strict=False):
            tx_queue._attach(tx_ring)
        self.connected_since = time.time()
        self.connect_count += 1
        self._set_state(State.CONNECTED)

    def detach_link(self, reason: str) -> None:
        """The connection ended (or never was): detach and close the link, keep ``reason``."""
        for queue in self._rx:
            queue._detach()
        for tx_queue in self._tx:
            tx_queue._detach()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        self.disconnect_reason = reason
        self.connected_since = None
        self._negotiated = None
        if self._state is not State.DELETED:
            self._set_state(State.DISCONNECTED)

    def _set_state(self, state: State) -> None:
        with self._state_changed:
            self._state = state
            self._state_changed.notify_all()

    def _ring_fault(self, reason: str) -> None:
        self._host.report_fault(self, reason)


def _index_of(mapping: object, maps: Sequence[object]) -> int:
    return next((index for index, candidate in enumerate(maps) if candidate is mapping), -1)
