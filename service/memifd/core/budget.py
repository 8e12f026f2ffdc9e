"""A byte budget that requests in flight share: each takes its bytes and gives them back.

memifd bounds the memory of what clients send at once (gRPC packet batches,
REST pcap bodies) with one of these per kind: a request whose bytes do not fit
waits for a moment (gRPC) or is refused at once (REST), instead of every
client's data being held together until the process runs out of memory.
"""

from __future__ import annotations

import threading
import time


class ByteBudget:
    """``capacity`` bytes shared by the requests in flight (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 byte, got {capacity}")
        self.capacity = capacity
        self.used = 0
        self.refused = 0  # takes that found no room (in time)
        self._freed = threading.Condition(threading.Lock())

    def try_take(self, size: int) -> bool:
        """Reserve ``size`` bytes if they are free now; all or nothing."""
        return self.take(size, 0.0)

    def take(self, size: int, timeout: float) -> bool:
        """Reserve ``size`` bytes, waiting up to ``timeout`` seconds for them to be freed."""
        with self._freed:
            if not self._wait_for_room(size, timeout):
                self.refused += 1
                return False
            self.used += size
            return True

    def has_room(self, size: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``size`` bytes are free; reserves nothing."""
        with self._freed:
            return self._wait_for_room(size, timeout)

    def release(self, size: int) -> None:
        """Give back ``size`` reserved bytes."""
        if size:
            with self._freed:
                self.used -= size
                self._freed.notify_all()

    def _wait_for_room(self, size: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._fits(size):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or size > self.capacity:
                return False
            self._freed.wait(remaining)
        return True

    def _fits(self, size: int) -> bool:
        return self.used + size <= self.capacity
