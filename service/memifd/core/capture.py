"""What captures need beyond a plain subscription: drops counted per interface, and the
pcapng stream of a REST capture.

The manager's worker drops the *oldest* queued packets when a reader is slow,
so the packets lost lie between what the reader already took and the head of
the queue. :class:`CaptureSubscription` counts them per interface and lets a
reader see the counts as of the moment it took a batch, which places every
gap exactly: right before the first packet of that batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from memifd.core import pcapng
from memifd.core.models import CapturedPacket, CaptureFilter, InterfaceStatus
from memifd.core.subscription import Subscription


class CaptureSubscription(Subscription[CapturedPacket]):
    """A capture queue that also counts its drops per interface."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gap_lock = threading.Lock()
        self._dropped_by: dict[str, int] = {}
        #: Drops per interface as of the last :meth:`get_batch`.
        self.dropped_at_take: dict[str, int] = {}

    def put_many(self, items: Sequence[CapturedPacket]) -> list[CapturedPacket]:
        with self._gap_lock:
            lost = super().put_many(items)
            if lost:
                counts = self._dropped_by
                for item in lost:
                    counts[item.interface] = counts.get(item.interface, 0) + 1
        return lost

    def get_batch(
        self, max_items: int, timeout: float | None = None, max_bytes: int | None = None
    ) -> list[CapturedPacket]:
        # Taking without waiting, under the lock the producer counts drops under, makes
        # the take and the counts one step: they match the batch exactly.
        with self._gap_lock:
            batch = super().get_batch(max_items, 0, max_bytes)
            self.dropped_at_take = dict(self._dropped_by)
        if batch or (timeout is not None and timeout <= 0):
            return batch
        # The queue was empty: wait without the lock (the producer may wait for a
        # reader's take, never for a reader's wait). Drops between the wake-up and the
        # count would need the whole queue to fill in that instant.
        batch = super().get_batch(max_items, timeout, max_bytes)
        with self._gap_lock:
            self.dropped_at_take = dict(self._dropped_by)
        return batch

    def dropped_total(self) -> int:
        """Drops as of the last :meth:`get_batch`, over every interface."""
        return sum(self.dropped_at_take.values())


# -- the pcapng stream ---------------------------------------------------------------------------


def summary(flt: CaptureFilter) -> str:
    """What a capture takes, for the comment of its pcapng section."""
    names = flt.names()
    parts = [
        f"interfaces {', '.join(sorted(names))}" if names else "every interface",
        f"direction {flt.direction.value}",
    ]
    if flt.queue is not None:
        parts.append(f"queue {flt.queue}")
    if flt.count is not None:
        parts.append(f"count {flt.count}")
    if flt.duration is not None:
        parts.append(f"duration {flt.duration:g} s")
    parts.append(f"snaplen {flt.snaplen}")
    return "memifd capture of " + "; ".join(parts)


def description(status: InterfaceStatus) -> str:
    """The IDB description of an interface."""
    return (
        f"memif {status.name}: {status.role.value} id {status.id}, "
        f"{status.mode.value} mode, on {status.socket_path}"
    )


async def pcapng_stream(
    sub: CaptureSubscription,
    batches: AsyncIterator[list[CapturedPacket]],
    *,
    application: str,
    snaplen: int,
    interfaces: Iterable[tuple[str, int, str]],
    linktype_of: Callable[[str], int],
    comment: str = "",
) -> AsyncIterator[bytes]:
    """The pcapng body of a capture: a header, packets with any drops before them, and
    closing statistics once the capture ends (not when the client goes away)."""
    writer = pcapng.StreamWriter(snaplen, application, linktype_of, time.time_ns())
    yield writer.header(interfaces, comment)
    async for batch in batches:
        yield writer.drops(sub.dropped_at_take) + writer.packets(batch)
    now = time.time_ns()
    reason = sub.close_reason or "stream ended"
    yield writer.drops(sub.dropped_at_take) + writer.statistics(
        now, comment=f"capture ended: {reason}"
    )
