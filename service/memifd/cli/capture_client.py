"""Capture files on the client side: what a gRPC ``Capture`` stream returns, written as
pcap or pcapng (``memifctl capture`` and the Wireshark extcap share this)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import BinaryIO

from memifd import __version__
from memifd.core import pcap, pcapng
from memifd.core.capture_format import CaptureFormat
from memifd.proto.memif.v1 import memif_pb2 as pb


def format_for(path: str, given: CaptureFormat | None = None) -> CaptureFormat:
    """``given``, else pcap for a ``.pcap`` file name and pcapng for anything else."""
    if given is not None:
        return given
    return CaptureFormat.PCAP if path.lower().endswith(".pcap") else CaptureFormat.PCAPNG


def linktype_of(status: pb.InterfaceStatus) -> int:
    """The link type of an interface's packets."""
    return pcap.LINKTYPE_RAW if status.mode == pb.MODE_IP else pcap.LINKTYPE_ETHERNET


def describe(status: pb.InterfaceStatus) -> str:
    """The pcapng interface description of an interface."""
    role = "client" if status.role == pb.ROLE_CLIENT else "server"
    mode = {pb.MODE_IP: "ip", pb.MODE_PUNT_INJECT: "punt/inject"}.get(status.mode, "ethernet")
    return f"memif {status.name}: {role} id {status.id}, {mode} mode, on {status.socket_path}"


class CaptureFile:
    """Writes the batches of one interface's capture stream to ``out``.

    pcapng keeps what pcap cannot: the interface's name, each packet's
    direction and queue, and the packets memifd dropped because this reader was
    slow (on the next packet, and in statistics blocks).
    """

    def __init__(
        self,
        out: BinaryIO,
        fmt: CaptureFormat,
        status: pb.InterfaceStatus,
        snaplen: int,
        comment: str = "",
    ) -> None:
        self._out = out
        self.format = fmt
        self._name = status.name
        self._linktype = linktype_of(status)
        self._description = describe(status)
        self._snaplen = snaplen
        self._comment = comment
        self._writer = pcapng.StreamWriter(
            snaplen, f"memifctl {__version__}", lambda _name: self._linktype, time.time_ns()
        )
        self.packets = 0
        self.dropped = 0

    def start(self) -> None:
        """Write the file header."""
        if self.format is CaptureFormat.PCAP:
            self._out.write(pcap.global_header(self._linktype, self._snaplen))
        else:
            self._out.write(
                self._writer.header(
                    [(self._name, self._linktype, self._description)], comment=self._comment
                )
            )
        self._out.flush()

    def write(self, batch: pb.PacketBatch) -> None:
        """Write a batch (and the drops it reports) and flush."""
        self.packets += len(batch.packets)
        if self.format is CaptureFormat.PCAP:
            self._out.write(
                pcap.records((p.timestamp_ns, p.orig_len, p.data) for p in batch.packets)
            )
        else:
            self._out.write(
                self._writer.drops({self._name: batch.dropped})
                + self._writer.packets(_tuples(batch.packets))
            )
        self.dropped = max(self.dropped, batch.dropped)
        self._out.flush()

    def finish(self, reason: str) -> None:
        """Close a pcapng file with its statistics (pcap has no place for them)."""
        if self.format is CaptureFormat.PCAPNG:
            now = time.time_ns()
            self._out.write(
                self._writer.drops({self._name: self.dropped})
                + self._writer.statistics(now, comment=f"capture ended: {reason}")
            )
        self._out.flush()


def _tuples(packets: Iterable[pb.Packet]) -> Iterable[tuple[str, int, str, int, int, bytes]]:
    for p in packets:
        direction = "tx" if p.direction == pb.DIRECTION_TX else "rx"
        yield p.interface, p.queue, direction, p.timestamp_ns, p.orig_len, p.data
