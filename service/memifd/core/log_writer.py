"""A logging handler that never blocks its caller: a bounded queue and a writer thread.

A process that writes its log straight to stderr stops when nobody reads the
pipe behind it (a full pipe blocks ``write``), and so does every thread that
logs: the manager's worker included. Here the calling thread only formats the
record and appends the line to a queue bounded in records and in bytes; one
writer thread empties it onto the file descriptor. When the queue is full a
record is dropped and counted, and once the writer catches up it writes one
``N log records dropped`` line. At exit the queue is flushed for at most
:data:`FLUSH_TIMEOUT` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from typing import TextIO

MAX_RECORDS = 10_000  # lines waiting at most
MAX_BYTES = 2 << 20  # bytes of lines waiting at most
FLUSH_TIMEOUT = 1.0  # seconds the writer gets at exit to empty the queue
DROPPED_LOGGER = "memifd.logs"


class QueuedWriter(logging.Handler):
    """Formats records in the caller's thread; a daemon thread writes them to ``stream``.

    ``stream`` is written through its file descriptor when it has one (a
    blocked pipe then holds no Python lock that interpreter shutdown needs),
    else through ``write``.
    """

    def __init__(
        self, stream: TextIO, *, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES
    ) -> None:
        super().__init__()
        self.stream = stream
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._fd = _fileno(stream)
        self._lines: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._pending_drops = 0  # dropped since the last "dropped" line
        self._dropped = 0
        self._writing = False
        self._closed = False
        self._stuck = False  # a flush timed out: the output is not being read
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="memifd-log-writer", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full, since the start."""
        return self._dropped

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except Exception:
            self.handleError(record)
            return
        with self._ready:
            if self._closed:
                return
            full = len(self._lines) >= self.max_records
            if full or self._queued_bytes + len(line) > self.max_bytes:
                self._dropped += 1
                self._pending_drops += 1
                return
            self._lines.append(line)
            self._queued_bytes += len(line)
            self._ready.notify()

    def flush(self) -> None:
        """Wait up to :data:`FLUSH_TIMEOUT` seconds for the queued lines to be written."""
        self.drain(FLUSH_TIMEOUT)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every queued line is written; True if it was."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._lines or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    self._stuck = True
                    return False
                self._ready.wait(remaining)
        return True

    def close(self) -> None:
        """Flush for at most :data:`FLUSH_TIMEOUT` seconds (none if a flush already timed
        out), then stop: nothing more is written once a write under way ends."""
        self.drain(0.0 if self._stuck else FLUSH_TIMEOUT)
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        super().close()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._lines and not self._pending_drops and not self._closed:
                    self._ready.wait()
                if self._closed:  # what close() could not write in time is dropped
                    return
                lines = list(self._lines)
                self._lines.clear()
                self._queued_bytes = 0
                drops, self._pending_drops = self._pending_drops, 0
                self._writing = True
            if drops:
                lines.append(self._dropped_line(drops))
            try:
                self._write(b"".join(lines))
            except OSError:
                pass  # nowhere left to report it
            finally:
                with self._ready:
                    self._writing = False
                    self._ready.notify_all()

    def _dropped_line(self, count: int) -> bytes:
        record = logging.LogRecord(
            DROPPED_LOGGER,
            logging.WARNING,
            __file__,
            0,
            "%d log records dropped: the log output was not read fast enough",
            (count,),
            None,
        )
        return (self.format(record) + "\n").encode("utf-8", "backslashreplace")

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.stream.write(data.decode("utf-8"))
            self.stream.flush()
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def _fileno(stream: TextIO) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what was written through the stream itself comes first
    return fd
