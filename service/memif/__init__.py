"""memif: the shared memory packet interface of VPP and DPDK, in pure Python.

Speaks memif protocol v2.0 in both roles (server/master and client/slave)::

    with memif.Socket("/run/memif/app.sock") as sock:
        iface = sock.create_interface(memif.Arguments(id=0, role="client"))
        sock.start()
        iface.wait_connected(timeout=5)
        for packet in iface.rx_queue(0).recv_burst(256):
            iface.tx_queue(0).send(packet)
"""

from .config import Arguments, MemoryConfig, Mode, Role, RxMode
from .connection import Connection
from .errors import (
    FailureKind,
    LocalProtocolError,
    MemifError,
    NotConnectedError,
    PathInUse,
    PeerDisconnected,
    RegionError,
    RemoteProtocolError,
    WireError,
)
from .events import Connecting, HandshakeFailed, LinkDown, LinkEvent, LinkUp
from .failures import HandshakeFailure
from .interface import Interface, LinkDetails, PeerCredentials, RegionDetails, RingDetails, State
from .queue import RxQueue, TxQueue
from .ring import QueueStats
from .socket import Socket

__version__ = "0.1.0"

__all__ = [
    "Arguments",
    "Connecting",
    "Connection",
    "FailureKind",
    "HandshakeFailed",
    "HandshakeFailure",
    "Interface",
    "LinkDetails",
    "LinkDown",
    "LinkEvent",
    "LinkUp",
    "LocalProtocolError",
    "MemifError",
    "MemoryConfig",
    "Mode",
    "NotConnectedError",
    "PathInUse",
    "PeerCredentials",
    "PeerDisconnected",
    "QueueStats",
    "RegionDetails",
    "RegionError",
    "RemoteProtocolError",
    "RingDetails",
    "Role",
    "RxMode",
    "RxQueue",
    "Socket",
    "State",
    "TxQueue",
    "WireError",
    "__version__",
]
