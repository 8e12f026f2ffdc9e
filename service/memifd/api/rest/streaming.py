"""Subscriptions read from asyncio: batches as they arrive, woken by the worker thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from memifd.core.subscription import Subscription

BATCH_BYTES = 1 << 20  # about this many packet bytes per chunk of a pcap stream


def _wake_on_arrival(sub: Subscription[Any]) -> asyncio.Event:
    """An asyncio event set (from the worker thread) when ``sub`` gets items or ends."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone
            loop.call_soon_threadsafe(arrived.set)

    sub.set_waker(wake)
    return arrived


async def batches(
    sub: Subscription[Any], max_items: int, keepalive: float | None = None
) -> AsyncIterator[list[Any]]:
    """Batches from ``sub`` until it ends; an empty batch every ``keepalive`` seconds."""
    arrived = _wake_on_arrival(sub)
    try:
        while True:
            batch = sub.get_batch(max_items, 0, BATCH_BYTES)
            if batch:
                yield batch
                continue
            if sub.closed:
                return
            arrived.clear()
            if len(sub) or sub.closed:
                continue
            try:
                await asyncio.wait_for(arrived.wait(), keepalive)
            except TimeoutError:
                yield []
    finally:
        sub.set_waker(None)
        sub.close()
