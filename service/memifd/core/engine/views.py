"""Runs on API threads; reads snapshots only: the status of an interface as clients see it.

A status is projected from the entry the worker published (its immutable spec
and link view) and the plain integer counters the library and the data path
keep, so reading never waits for the worker. Building one for 255 queue pairs
takes milliseconds, so each entry caches its last status and JSON with the
fingerprint they were built from: an immutable tuple an API thread replaces
whole (:attr:`Entry.view`); the worker never reads it.
"""

from __future__ import annotations

from typing import Any

import memif

from memifd.core.engine.state import Entry
from memifd.core.models import (
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkState,
    QueueCounters,
)


def view(entry: Entry) -> tuple[InterfaceStatus, bytes]:
    """The entry's status and its JSON, rebuilt only when its fingerprint changed."""
    fingerprint = _fingerprint(entry)
    cached = entry.view
    if cached is not None and cached[0] == fingerprint:
        return cached[1], cached[2]
    built = status(entry)
    body = built.model_dump_json().encode()
    entry.view = (fingerprint, built, body)
    return built, body


def status(entry: Entry) -> InterfaceStatus:
    """The entry's status, built now."""
    link = entry.link
    return InterfaceStatus.model_construct(
        **_spec_fields(entry.spec),
        socket_path=entry.socket_path,
        state=link.state,
        peer=link.peer,
        disconnect_reason=link.reason,
        stats=stats(entry),
    )


def stats(entry: Entry) -> InterfaceStats:
    """The entry's counters, read now."""
    rx, rx_queues = _counters([q.stats for q in entry.rx])
    tx, tx_queues = _counters([q.stats for q in entry.tx])
    c = entry.counters
    return InterfaceStats.model_construct(
        rx=rx,
        tx=tx,
        rx_queues=rx_queues,
        tx_queues=tx_queues,
        action_drops=c.action_drops,
        forwarded=c.forwarded,
        forward_drops=c.forward_drops,
        exchanged=c.exchanged,
        injected=c.injected,
        subscriber_drops=c.subscriber_drops,
    )


def preview(spec: InterfaceSpec, path: str) -> InterfaceStatus:
    """What the status of an interface created from ``spec`` would be at first."""
    nq = spec.memory.num_queue_pairs
    zero = [QueueCounters() for _ in range(nq)]
    return InterfaceStatus.model_construct(
        **_spec_fields(spec),
        socket_path=path,
        state=LinkState.DISCONNECTED,
        peer=None,
        disconnect_reason="",
        stats=InterfaceStats(rx_queues=zero, tx_queues=list(zero)),
    )


def _counters(rows: list[memif.QueueStats]) -> tuple[QueueCounters, list[QueueCounters]]:
    per_queue = [
        QueueCounters.model_construct(
            packets=s.packets,
            bytes=s.bytes,
            drops=s.drops,
            bad_descriptors=s.bad_descriptors,
            ring_full=s.ring_full,
        )
        for s in rows
    ]
    total = QueueCounters.model_construct(
        packets=sum(s.packets for s in rows),
        bytes=sum(s.bytes for s in rows),
        drops=sum(s.drops for s in rows),
        bad_descriptors=sum(s.bad_descriptors for s in rows),
        ring_full=sum(s.ring_full for s in rows),
    )
    return total, per_queue


def _spec_fields(spec: InterfaceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "socket": spec.socket,
        "id": spec.id,
        "role": spec.role,
        "mode": spec.mode,
        "memory": spec.memory,
        "rx_mode": spec.rx_mode,
        "action": spec.action,
        "xconnect_to": spec.xconnect_to,
        "admin_up": spec.admin_up,
        "accept_unsealed_regions": spec.accept_unsealed_regions,
        "allowed_uids": spec.allowed_uids,
        "allowed_gids": spec.allowed_gids,
        "has_secret": bool(spec.secret),
    }


def _fingerprint(entry: Entry) -> tuple[object, ...]:
    """Everything a status is built from; equal fingerprints give equal statuses."""
    c = entry.counters
    rows: list[object] = [
        entry.spec,
        entry.link,
        c.action_drops,
        c.forwarded,
        c.forward_drops,
        c.exchanged,
        c.injected,
        c.subscriber_drops,
    ]
    for rxq in entry.rx:
        s = rxq.stats
        rows += (s.packets, s.bytes, s.drops, s.bad_descriptors, s.ring_full)
    for txq in entry.tx:
        s = txq.stats
        rows += (s.packets, s.bytes, s.drops, s.bad_descriptors, s.ring_full)
    return tuple(rows)
