"""The log writer: a bounded queue in front of the output, so logging never blocks."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
from memifd.core import logs
from memifd.core.log_writer import FLUSH_TIMEOUT, QueuedWriter


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("memifd.test", level, __file__, 0, message, None, None)


def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def blocked_pipe() -> Iterator[tuple[int, int]]:
    """A pipe whose buffer is full and that nobody reads: a write to it blocks."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    for chunk in (65536, 1):  # then byte by byte: not one byte of room is left
        try:
            while True:
                os.write(write_end, b"x" * chunk)
        except BlockingIOError:
            pass
    os.set_blocking(write_end, True)
    try:
        yield read_end, write_end
    finally:
        os.close(read_end)
        os.close(write_end)


def read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_lines_reach_a_text_stream_in_order() -> None:
    stream = io.StringIO()
    writer = QueuedWriter(stream)
    writer.setFormatter(logs.TextFormatter())
    for i in range(100):
        writer.handle(record(f"line {i}"))
    assert writer.drain(5.0)
    writer.close()
    lines = stream.getvalue().splitlines()
    assert [line.rpartition(": ")[2] for line in lines] == [f"line {i}" for i in range(100)]
    assert writer.dropped == 0


def test_lines_reach_a_file_descriptor() -> None:
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "w", closefd=False) as stream:
            writer = QueuedWriter(stream)
            writer.handle(record("through the fd"))
            assert writer.drain(5.0)
            writer.close()
        assert read_all(read_end).decode().endswith("through the fd\n")
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_blocked_output_never_blocks_the_caller(blocked_pipe: tuple[int, int]) -> None:
    _, write_end = blocked_pipe
    with os.fdopen(write_end, "w", closefd=False) as stream:
        writer = QueuedWriter(stream, max_records=50, max_bytes=1 << 20)
        started = time.monotonic()
        for i in range(1000):
            writer.handle(record(f"line {i}"))
        assert time.monotonic() - started < 1.0
        # The writer thread holds one batch in its blocked write; the queue holds 50 more.
        assert 1000 - 50 - 50 <= writer.dropped <= 1000 - 50
        started = time.monotonic()
        assert not writer.drain(0.2)
        writer.close()  # a flush already timed out: close does not wait again
        assert time.monotonic() - started < 0.2 + FLUSH_TIMEOUT / 2


def test_the_queue_is_bounded_in_bytes(blocked_pipe: tuple[int, int]) -> None:
    _, write_end = blocked_pipe
    with os.fdopen(write_end, "w", closefd=False) as stream:
        writer = QueuedWriter(stream, max_records=10_000, max_bytes=10_000)
        writer.setFormatter(logging.Formatter("%(message)s"))
        writer.handle(record("first"))  # taken by the writer, which then blocks
        wait_until(lambda: writer._writing)
        for _ in range(100):
            writer.handle(record("y" * 999))  # 1000 bytes with the newline
        assert writer.dropped == 90
        writer.close()


def test_drops_are_reported_in_one_line_once_the_output_drains(
    blocked_pipe: tuple[int, int],
) -> None:
    read_end, write_end = blocked_pipe
    with os.fdopen(write_end, "w", closefd=False) as stream:
        writer = QueuedWriter(stream, max_records=5)
        writer.setFormatter(logs.TextFormatter())
        writer.handle(record("first"))
        wait_until(lambda: writer._writing)
        for i in range(20):
            writer.handle(record(f"queued {i}"))
        assert writer.dropped == 15
        received = bytearray()
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                received.extend(read_all(read_end))
                time.sleep(0.01)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            assert writer.drain(5.0)
            wait_until(lambda: b"dropped" in received)
        finally:
            stop.set()
            thread.join()
        writer.close()
    text = received.decode(errors="replace")
    assert "15 log records dropped" in text
    assert text.count("log records dropped") == 1
    assert [f"queued {i}" in text for i in range(20)] == [True] * 5 + [False] * 15


def test_records_dropped_counts_for_the_configured_writer() -> None:
    stream = io.StringIO()
    logs.configure("text", "info", stream)
    root = logging.getLogger()
    try:
        assert logs.records_dropped() == 0
        logging.getLogger("memifd.test").info("one line")
        writer = root.handlers[0]
        assert isinstance(writer, QueuedWriter) and writer.drain(5.0)
        assert "one line" in stream.getvalue()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers.clear()


def test_nothing_is_written_after_close(blocked_pipe: tuple[int, int]) -> None:
    read_end, write_end = blocked_pipe
    with os.fdopen(write_end, "w", closefd=False) as stream:
        writer = QueuedWriter(stream)
        writer.setFormatter(logging.Formatter("%(message)s"))
        writer.handle(record("under way"))
        wait_until(lambda: writer._writing)
        writer.handle(record("queued"))
        assert not writer.drain(0.1)
        writer.close()
        received = bytearray()
        deadline = time.monotonic() + 5
        while writer._thread.is_alive():  # the write under way ends, then the thread
            received.extend(read_all(read_end))
            assert time.monotonic() < deadline, "the writer did not stop"
            time.sleep(0.01)
        received.extend(read_all(read_end))
    assert received.endswith(b"under way\n") and b"queued" not in received
