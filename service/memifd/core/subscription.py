"""Bounded per-subscriber queues between the manager's worker and API handlers.

The worker must never wait for a reader, so a full queue drops its *oldest*
items to make room and counts them. A queue is bounded in items and, when it
is given a ``sizer``, in bytes: its own ``max_bytes`` and a :class:`BytePool`
that all packet streams share. A reader takes items in batches and sees the end
of the stream (``closed`` with a reason) after the last item.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAXSIZE = 1024


class BytePool:
    """A byte budget that several subscriptions draw from (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes if they are free; all or nothing."""
        with self._lock:
            if self.used + size > self.capacity:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        """Give back ``size`` reserved bytes."""
        if size:
            with self._lock:
                self.used -= size


class Subscription(Generic[T]):
    """A bounded queue that drops the oldest items when full.

    The producer calls :meth:`put_many` and :meth:`end`; the consumer calls
    :meth:`get_batch` and, when it loses interest, :meth:`close`. With a
    ``sizer`` the queue also holds at most ``max_bytes`` (as the sizer counts
    them) and reserves them in ``pool``; what does not fit is dropped, oldest
    first, and counted like any other drop.
    """

    def __init__(
        self,
        maxsize: int = DEFAULT_MAXSIZE,
        on_close: Callable[[], None] | None = None,
        *,
        sizer: Callable[[T], int] | None = None,
        max_bytes: int | None = None,
        pool: BytePool | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.max_bytes = max_bytes if sizer is not None and max_bytes is not None else None
        self._sizer = sizer
        self._pool = pool if sizer is not None else None
        self._bytes = 0
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._on_close = on_close
        self._waker: Callable[[], None] | None = None
        self.dropped = 0
        self.closed = False
        self.close_reason: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes queued, as the sizer counts them (0 without a sizer)."""
        return self._bytes

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
            if self._sizer is None:
                lost, items = self._fit_count(items)
            else:
                lost, items = self._fit_bytes(items)
            self.dropped += len(lost)
            queue = self._items
            was_empty = not queue
            queue.extend(items)
            self._cond.notify()
            waker = self._waker if was_empty and items else None
        if waker is not None:
            waker()
        return lost

    def _fit_count(self, items: Sequence[T]) -> tuple[list[T], Sequence[T]]:
        """Drop (oldest first) what exceeds ``maxsize``; the lost items and what is
        left of ``items`` to append."""
        queue = self._items
        overflow = len(queue) + len(items) - self.maxsize
        if overflow <= 0:
            return [], items
        from_queue = min(overflow, len(queue))
        lost = [queue.popleft() for _ in range(from_queue)]
        skip = overflow - from_queue  # the batch alone is larger than the queue
        lost.extend(items[:skip])
        return lost, items[skip:]

    def _fit_bytes(self, items: Sequence[T]) -> tuple[list[T], Sequence[T]]:
        """Drop (oldest first) what exceeds ``maxsize``, ``max_bytes`` or the pool;
        the lost items and what is left of ``items`` to append."""
        assert self._sizer is not None
        sizer, queue, pool = self._sizer, self._items, self._pool
        limit = self.max_bytes if self.max_bytes is not None else float("inf")
        sizes = [sizer(item) for item in items]
        incoming = sum(sizes)
        skip = 0
        while skip < len(items) and (len(items) - skip > self.maxsize or incoming > limit):
            incoming -= sizes[skip]
            skip += 1
        lost = []
        freed = 0
        while queue and (
            len(queue) + len(items) - skip > self.maxsize or self._bytes + incoming > limit
        ):
            old = queue.popleft()
            size = sizer(old)
            self._bytes -= size
            freed += size
            lost.append(old)
        if pool is not None:
            pool.release(freed)
            while incoming and not pool.take(incoming):
                if queue:  # give the pool our own oldest bytes first
                    old = queue.popleft()
                    size = sizer(old)
                    self._bytes -= size
                    pool.release(size)
                    lost.append(old)
                else:  # the pool is held by other streams: drop the oldest new items
                    incoming -= sizes[skip]
                    skip += 1
        lost.extend(items[:skip])
        self._bytes += incoming
        return lost, items[skip:]

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

    def get_batch(
        self, max_items: int, timeout: float | None = None, max_bytes: int | None = None
    ) -> list[T]:
        """Up to ``max_items`` items (and, with a sizer, about ``max_bytes``: always at
        least one item), waiting up to ``timeout`` seconds for the first.

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
            sizer = self._sizer
            if sizer is None:
                if len(queue) <= max_items:
                    batch = list(queue)
                    queue.clear()
                    return batch
                return [queue.popleft() for _ in range(max_items)]
            budget = max_bytes if max_bytes is not None else float("inf")
            batch, taken = [], 0
            while queue and len(batch) < max_items:
                size = sizer(queue[0])
                if batch and taken + size > budget:
                    break
                batch.append(queue.popleft())
                taken += size
            self._bytes -= taken
        if self._pool is not None:
            self._pool.release(taken)
        return batch

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
            freed, self._bytes = self._bytes, 0
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.release(freed)
        if not already and self._on_close is not None:
            self._on_close()
