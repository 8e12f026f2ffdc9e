"""What ``memifctl`` prints: tables for people, and the REST API's JSON (or YAML) for tools.

Everything here works on memifd's models (:mod:`memifd.core.models`), so ``-o json``
is byte for byte what the REST API would answer, only indented.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

import yaml
from memif.config import MemoryConfig
from pydantic import BaseModel

from memifd.core.models import (
    INTERFACE_COUNTERS,
    QUEUE_COUNTERS,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    PeerInfo,
    QueueCounters,
)


class Output(enum.StrEnum):
    """``-o``: how to print."""

    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


def data(items: BaseModel | Sequence[BaseModel]) -> Any:
    """The JSON value of a model or a list of them, as the REST API writes it."""
    if isinstance(items, BaseModel):
        return items.model_dump(mode="json")
    return [item.model_dump(mode="json") for item in items]


def serialised(items: BaseModel | Sequence[BaseModel], output: Output) -> str:
    """``items`` as indented JSON or as YAML."""
    value = data(items)
    if output is Output.YAML:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")
    return json.dumps(value, indent=2, ensure_ascii=False)


def widths(rows: Sequence[Sequence[object]]) -> list[int]:
    """The width of each column of ``rows``."""
    return [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]


def aligned(row: Sequence[object], column_widths: Sequence[int]) -> str:
    """One row, its cells left-aligned in columns two spaces apart (a longer cell pushes the
    rest of its row right)."""
    cells = zip(row, column_widths, strict=True)
    return "  ".join(str(cell).ljust(width) for cell, width in cells).rstrip()


def table(rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, the first row being the header."""
    column_widths = widths(rows)
    return "\n".join(aligned(row, column_widths) for row in rows)


def peer_text(peer: PeerInfo | None) -> str:
    """``app/interface pid N`` of a peer, ``-`` when there is none."""
    if peer is None:
        return "-"
    pid = f" pid {peer.pid}" if peer.pid is not None else ""
    return f"{peer.app_name or '?'}/{peer.name or '?'}{pid}"


_COLUMNS = ["NAME", "ROLE", "ID", "STATE", "ADMIN", "MODE", "QUEUES", "RX", "TX"]
_WIDE = ["SOCKET", "PEER", "RX_MODE", "ACTION", "XCONNECT_TO", "SECRET"]
_LAST = ["REASON"]  # last: a reason has spaces


def header(output: Output) -> list[str]:
    """The column names of the interface table (``wide`` adds some)."""
    return [*_COLUMNS, *(_WIDE if output is Output.WIDE else []), *_LAST]


def interface_row(s: InterfaceStatus, output: Output) -> list[object]:
    """One interface as a row of the table under :func:`header`."""
    cells: list[object] = [
        s.name,
        s.role.value,
        s.id,
        s.state.value,
        "up" if s.admin_up else "down",
        s.mode.value,
        s.memory.num_queue_pairs,
        s.stats.rx.packets,
        s.stats.tx.packets,
    ]
    if output is Output.WIDE:
        cells += [
            s.socket_path,
            peer_text(s.peer),
            s.rx_mode.value,
            s.action.value,
            s.xconnect_to or "-",
            "yes" if s.has_secret else "no",
        ]
    return [*cells, s.disconnect_reason or "-"]


def interfaces(statuses: Sequence[InterfaceStatus], output: Output) -> str:
    """The interface list: a table (``wide`` adds columns), JSON or YAML."""
    if output in (Output.JSON, Output.YAML):
        return serialised(statuses, output)
    return table([header(output), *(interface_row(s, output) for s in statuses)])


def stats(counters: InterfaceStats, output: Output) -> str:
    """Counters in total and per queue: a table and the interface totals, JSON or YAML."""
    if output in (Output.JSON, Output.YAML):
        return serialised(counters, output)
    rows: list[list[object]] = [["QUEUE", "PACKETS", "BYTES", "DROPS", "BAD_DESC", "RING_FULL"]]

    def row(label: str, q: QueueCounters) -> list[object]:
        return [label, *(getattr(q, name) for name in QUEUE_COUNTERS)]

    rows.append(row("rx", counters.rx))
    rows += [row(f"rx {i}", q) for i, q in enumerate(counters.rx_queues)]
    rows.append(row("tx", counters.tx))
    rows += [row(f"tx {i}", q) for i, q in enumerate(counters.tx_queues)]
    totals = [f"{field}: {getattr(counters, field)}" for field in INTERFACE_COUNTERS]
    return "\n".join([table(rows), *totals])


def describe(s: InterfaceStatus, link: LinkDetails | None = None) -> str:
    """One interface for people: spec, link state and reason, peer, memory (configured and,
    while connected, negotiated), regions, rings with head and tail, counters per queue."""
    peer = s.peer
    memory = s.memory
    lines = [
        f"Name:            {s.name}",
        f"Role:            {s.role.value}, id {s.id}, mode {s.mode.value}",
        f"Socket:          {s.socket_path}"
        + (f" (given as {s.socket})" if s.socket != s.socket_path else ""),
        f"State:           {s.state.value}" + ("" if s.admin_up else " (admin down)"),
        f"Reason:          {s.disconnect_reason or '-'}",
        "Peer:            "
        + ("-" if peer is None else f"interface {peer.name!r} of {peer.app_name!r}"),
    ]
    if peer is not None:
        who = ", ".join(
            f"{key} {value}"
            for key, value in (("pid", peer.pid), ("uid", peer.uid), ("gid", peer.gid))
            if value is not None
        )
        lines.append(f"Peer process:    {who or 'unknown'}")
    lines += [
        f"Memory:          {_geometry(memory)}",
        *_link_lines(link),
        f"Receive:         {s.rx_mode.value}, action {s.action.value}"
        + (f" to {s.xconnect_to}" if s.xconnect_to else ""),
        f"Secret:          {'set' if s.has_secret else 'none'}",
        f"Unsealed memory: {'accepted' if s.accept_unsealed_regions else 'refused'}",
        "",
        stats(s.stats, Output.TABLE),
    ]
    return "\n".join(lines)


def _geometry(memory: MemoryConfig) -> str:
    return (
        f"{memory.num_queue_pairs} queue pair(s), {1 << memory.log2_ring_size} descriptors per "
        f"ring, {memory.packet_buffer_size}-byte buffers"
    )


def _link_lines(link: LinkDetails | None) -> list[str]:
    if link is None or link.memory is None:
        return []
    regions = ", ".join(
        f"{r.index}: {r.size} bytes{'' if r.sealed else ' (unsealed)'}" for r in link.regions
    )
    rows: list[list[object]] = [["RING", "QUEUE", "SIZE", "HEAD", "TAIL", "REGION", "OFFSET"]]
    rows += [
        [r.direction.value, r.queue, r.size, r.head, r.tail, r.region, r.offset] for r in link.rings
    ]
    return [
        f"Negotiated:      {_geometry(link.memory)}",
        f"Regions:         {regions}",
        *("  " + line for line in table(rows).splitlines()),
    ]
