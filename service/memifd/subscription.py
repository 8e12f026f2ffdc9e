"""Bounded per-subscriber queues between the manager's worker and API handlers.

The worker must never wait for a reader, so a full queue drops its *oldest*
items to make room and counts them. A reader takes items in batches and sees
the end of the stream (``closed`` with a reason) after the last item.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAXSIZE = 1024


class Subscription(Generic[T]):
    """A bounded queue that drops the oldest items when full.

    The producer calls :meth:`put_many` and :meth:`end`; the consumer calls
    :meth:`get_batch` and, when it loses interest, :meth:`close`.
    """

    def __init__(
        self, maxsize: int = DEFAULT_MAXSIZE, on_close: Callable[[], None] | None = None
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._on_close = on_close
        self._waker: Callable[[], None] | None = None
        self.dropped = 0
        self.closed = False
        self.close_reason: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    # -- producer side --------------------------------------------------------

    def put_many(self, items: Sequence[T]) -> list[T]:
        """Append ``items``; returns the items dropped to make room (oldest first).

        Items put after the subscription ended are dropped silently (not counted).
        """
        if not items:
            return []
        with self._cond:
            if self.closed:
                return []
            queue = self._items
            overflow = len(queue) + len(items) - self.maxsize
            lost: list[T] = []
            if overflow > 0:
                from_queue = min(overflow, len(queue))
                lost = [queue.popleft() for _ in range(from_queue)]
                if overflow > from_queue:  # the batch alone is larger than the queue
                    skip = overflow - from_queue
                    lost.extend(items[:skip])
                    items = items[skip:]
                self.dropped += overflow
            was_empty = not queue
            queue.extend(items)
            self._cond.notify()
            waker = self._waker if was_empty else None
        if waker is not None:
            waker()
        return lost

    def put(self, item: T) -> list[T]:
        """Append one item; returns what was dropped to make room."""
        return self.put_many((item,))

    def end(self, reason: str) -> None:
        """End the stream: the consumer gets what is queued, then an empty batch."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self.close_reason = reason
            self._cond.notify_all()
            waker = self._waker
        if waker is not None:
            waker()

    # -- consumer side ----------------------------------------------------------

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Up to ``max_items`` items, waiting up to ``timeout`` seconds for the first.

        Returns ``[]`` on timeout, and once the subscription is closed and empty.
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self.closed:
                    return []
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            queue = self._items
            if len(queue) <= max_items:
                batch = list(queue)
                queue.clear()
                return batch
            return [queue.popleft() for _ in range(max_items)]

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """Call ``waker()`` (from the producer's thread) when items arrive in an empty
        queue and when the stream ends; lets an event loop wait without a thread."""
        self._waker = waker

    def close(self, reason: str = "closed by subscriber") -> None:
        """Stop receiving; queued items are discarded and the producer is told."""
        with self._cond:
            already = self.closed
            self.closed = True
            if self.close_reason is None:
                self.close_reason = reason
            self._items.clear()
            self._cond.notify_all()
        if not already and self._on_close is not None:
            self._on_close()
