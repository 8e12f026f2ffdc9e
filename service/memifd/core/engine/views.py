"""Runs on API threads; reads snapshots only: the status of an interface as clients see it.

A status is projected from the entry the worker published (its immutable spec
and link view) and the plain integer counters the library and the data path
keep, so reading never waits for the worker. Building one for 255 queue pairs
takes milliseconds, so each entry caches its last status and JSON with the
fingerprint they were built from: an immutable tuple an API thread replaces
whole (:attr:`Entry.view`); the worker never reads it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import memif

from memifd.core.engine.state import Entry
from memifd.core.models import (
    INTERFACE_COUNTERS,
    QUEUE_COUNTERS,
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
    return InterfaceStats.model_construct(
        rx=rx,
        tx=tx,
        rx_queues=rx_queues,
        tx_queues=tx_queues,
        **dict(zip(INTERFACE_COUNTERS, _interface_counters(entry.counters), strict=True)),
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


_queue_counters = operator.attrgetter(*QUEUE_COUNTERS)
_interface_counters = operator.attrgetter(*INTERFACE_COUNTERS)


def _counters(rows: list[memif.QueueStats]) -> tuple[QueueCounters, list[QueueCounters]]:
    values = [_queue_counters(s) for s in rows]
    per_queue = [_queue_model(row) for row in values]
    sums = [sum(column) for column in zip(*values, strict=True)]
    return _queue_model(sums or [0] * len(QUEUE_COUNTERS)), per_queue


def _queue_model(values: Sequence[int]) -> QueueCounters:
    fields: dict[str, Any] = dict(zip(QUEUE_COUNTERS, values, strict=True))
    return QueueCounters.model_construct(**fields)


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
    rows: list[object] = [entry.spec, entry.link, _interface_counters(entry.counters)]
    rows += [_queue_counters(rxq.stats) for rxq in entry.rx]
    rows += [_queue_counters(txq.stats) for txq in entry.tx]
    return tuple(rows)
