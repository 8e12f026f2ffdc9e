"""What an interface costs in file descriptors and shared memory, and the process's fd limit.

memifd checks these before it creates an interface, so a request that would
exhaust them is refused with the limit named instead of failing half-way (or
starving the API and the memif handshakes of file descriptors).
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource

from memif.config import MemoryConfig
from memif.constants import DESC_SIZE, RING_HEADER_SIZE

log = logging.getLogger("memifd")

# Per queue pair: the rx queue's own epoll fd (for as long as the interface exists), and
# while connected the rx and tx rings' eventfds.
FDS_PER_QUEUE_PAIR = 3
# Per interface while connected: the control connection and the two regions' memfds.
FDS_PER_INTERFACE = 3
# Per control socket: its epoll fd, its wake-up eventfd and (server role) its listener.
FDS_PER_SOCKET = 3
# Log files, the HTTP and gRPC listeners, TLS files, short-lived fds of a handshake.
FD_HEADROOM = 64
# gRPC connections open at once (grpc.max_allowed_incoming_connections).
GRPC_MAX_CONNECTIONS = 256
# The largest Inject or Exchange message: a batch of 4096 full-size Ethernet frames (1518
# bytes and 3 bytes of protobuf framing each: 6.2 MB), or 127 packets of the 65,535-byte
# maximum. Larger batches are refused with RESOURCE_EXHAUSTED; clients split them.
GRPC_MAX_BATCH_BYTES = 8 << 20
# The largest pcap file one POST /v1/interfaces/{name}/packets takes.
HTTP_MAX_PCAP_BYTES = 64 << 20


def api_fd_reserve(http_max_connections: int) -> int:
    """File descriptors kept free for API connections and the process itself."""
    return http_max_connections + GRPC_MAX_CONNECTIONS + FD_HEADROOM


def interface_fds(memory: MemoryConfig) -> int:
    """File descriptors one connected interface of this geometry holds."""
    return FDS_PER_QUEUE_PAIR * memory.num_queue_pairs + FDS_PER_INTERFACE


def interface_memory(memory: MemoryConfig) -> int:
    """Bytes of shared memory (rings and packet buffers) this geometry needs."""
    rings = 2 * memory.num_queue_pairs
    return rings * (RING_HEADER_SIZE + DESC_SIZE * memory.ring_size) + memory.buffer_region_size


def fd_limit() -> int:
    """The soft RLIMIT_NOFILE (what ``open`` is held to)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (allowed without privileges);
    returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit from %d to %d: %s", soft, hard, exc)
    return fd_limit()


def open_fds() -> int:
    """File descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # listdir's own fd
    except OSError:
        return 0


FD_TABLE_RESERVE = 65536  # at most this many fd slots are reserved at start


def reserve_fd_table(size: int) -> int:
    """Grow this process's fd table to ``size`` slots (at most :data:`FD_TABLE_RESERVE`)
    at once; returns the slots reserved, 0 if it could not.

    The kernel doubles the table whenever an fd number passes its size and, once the
    process has threads, waits for an RCU grace period each time: several
    milliseconds in the middle of a create. A table grown before the threads start
    never grows again (it costs 8 bytes a slot), so a big interface's 765 fds cost
    what they cost the second time.
    """
    top = min(size, FD_TABLE_RESERVE) - 1
    if top < 3:
        return 0
    try:
        fcntl.fcntl(top, fcntl.F_GETFD)
        return 0  # in use already: the table is that large
    except OSError:
        pass
    try:
        os.dup2(2, top, inheritable=False)
    except OSError as exc:
        log.debug("cannot reserve %d fd slots: %s", top + 1, exc)
        return 0
    os.close(top)
    return top + 1
