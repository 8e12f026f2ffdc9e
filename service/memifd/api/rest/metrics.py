"""Prometheus metrics, read from the manager on each scrape (nothing is counted twice).

Per interface and direction: packets, bytes, drops, bad descriptors, ring-full;
the same per queue; the manager's own counters (action drops, forwarded,
forward drops, subscriber drops); the link state; stream totals; log records
dropped; failed handshakes by reason (a fixed set of labels, never the peer's text); the build;
and the standard process_* and python_* metrics of the Prometheus client.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from memifd import __version__
from memifd.core import logs
from memifd.core.logs import printable
from memifd.core.manager import Manager
from memifd.core.models import QUEUE_COUNTERS, InterfaceStatus, LinkState, QueueCounters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "packets": "Packets moved",
    "bytes": "Bytes moved",
    "drops": "Packets lost to bad descriptors",
    "bad_descriptors": "Descriptors the peer filled in wrongly",
    "ring_full": "Packets that found no room on the ring",
}
_MANAGER_FIELDS = {
    "action_drops": "Received packets the drop action consumed",
    "forwarded": "Received packets sent on by echo or xconnect",
    "forward_drops": "Received packets echo, xconnect or an exchange could not send on",
    "exchanged": "Received packets handed to an exchange client",
    "injected": "Packets sent from the API",
    "subscriber_drops": "Captured or exchanged packets a slow subscriber lost",
}
_STATES = tuple(state for state in LinkState if state is not LinkState.DELETED)


class ManagerCollector(Collector):
    """Builds every metric family from one :meth:`Manager.list_interfaces` snapshot."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        statuses = self.manager.list_interfaces()
        yield from _queue_families(statuses)
        yield from _manager_families(statuses)
        yield from _link_families(statuses)
        yield from self._stream_families()
        yield self._handshake_family()
        yield CounterMetricFamily(
            "memifd_log_records_dropped",
            "Log records dropped because the log output (stderr) was not read fast enough",
            value=logs.records_dropped(),
        )

    def _handshake_family(self) -> Metric:
        family = CounterMetricFamily(
            "memifd_handshake_failures",
            "Handshakes that did not bring a link up, by reason (see memif.FailureKind)",
            labels=["reason"],
        )
        for reason, count in dict(self.manager.handshake_failures).items():
            family.add_metric([reason], count)
        return family

    def _stream_families(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "memifd_subscriptions",
            "Open streams (captures, event streams, exchanges)",
            labels=["kind"],
        )
        for kind, count in self.manager.subscription_counts().items():
            active.add_metric([kind], count)
        yield active
        yield CounterMetricFamily(
            "memifd_subscription_drops",
            "Items (packets, events) streams lost because their reader was too slow",
            value=self.manager.subscription_drops,
        )
        yield GaugeMetricFamily(
            "memifd_ready",
            "1 when the worker runs and its loop turns, every socket listens, socket_dir is "
            "writable",
            value=1 if self.manager.ready else 0,
        )
        yield GaugeMetricFamily(
            "memifd_worker_stall_seconds",
            "Seconds since the worker's loop last turned (it turns at least twice a second)",
            value=self.manager.worker_stall,
        )


def _queue_families(statuses: list[InterfaceStatus]) -> Iterator[Metric]:
    for name in QUEUE_COUNTERS:
        per_interface = CounterMetricFamily(
            f"memifd_interface_{name}",
            f"{_HELP[name]}, per interface and direction",
            labels=["interface", "direction"],
        )
        per_queue = CounterMetricFamily(
            f"memifd_queue_{name}",
            f"{_HELP[name]}, per queue",
            labels=["interface", "direction", "queue"],
        )
        for status in statuses:
            stats = status.stats
            for direction, total, queues in (
                ("rx", stats.rx, stats.rx_queues),
                ("tx", stats.tx, stats.tx_queues),
            ):
                per_interface.add_metric([status.name, direction], _value(total, name))
                for index, row in enumerate(queues):
                    per_queue.add_metric([status.name, direction, str(index)], _value(row, name))
        yield per_interface
        yield per_queue


def _manager_families(statuses: list[InterfaceStatus]) -> Iterator[Metric]:
    for name, help_text in _MANAGER_FIELDS.items():
        family = CounterMetricFamily(f"memifd_interface_{name}", help_text, labels=["interface"])
        for status in statuses:
            family.add_metric([status.name], getattr(status.stats, name))
        yield family


def _link_families(statuses: list[InterfaceStatus]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "memifd_interface_link_up", "1 while the interface is connected", labels=["interface"]
    )
    state = GaugeMetricFamily(
        "memifd_interface_state",
        "1 for the interface's current link state",
        labels=["interface", "state"],
    )
    info = GaugeMetricFamily(
        "memifd_interface_info",
        "Configuration of each interface (value always 1)",
        labels=["interface", "socket", "role", "id", "mode", "action"],
    )
    for status in statuses:
        current = status.state
        up.add_metric([status.name], 1 if current is LinkState.CONNECTED else 0)
        for each in _STATES:
            state.add_metric([status.name, each.value], 1 if each is current else 0)
        info.add_metric(
            [
                status.name,
                printable(status.socket_path),
                status.role.value,
                str(status.id),
                status.mode.value,
                status.action.value,
            ],
            1,
        )
    yield up
    yield state
    yield info


def _value(row: QueueCounters, name: str) -> int:
    value: int = getattr(row, name)
    return value


class BuildCollector(Collector):
    """``memifd_build_info``: 1, labelled with the versions this process runs."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "memifd_build_info",
            "memifd's version and the Python running it (always 1)",
            labels=["version", "python", "implementation"],
        )
        info.add_metric(
            [__version__, platform.python_version(), platform.python_implementation()], 1
        )
        yield info


def make_registry(manager: Manager) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding the manager's metrics,
    memifd_build_info and the standard process_* and python_* collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))
    registry.register(BuildCollector())
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, fds
    PlatformCollector(registry=registry)  # python_info
    GCCollector(registry=registry)  # python_gc_*
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``."""
    return generate_latest(registry)
