"""Structured logs: JSON lines for machines, ``key=value`` text for people.

The library and memifd log with ``extra=`` fields (interface, socket, peer,
reason, ...); both formats print them. Fields whose name suggests a secret
are never printed. Records reach the output through a bounded queue
(:mod:`memifd.core.log_writer`): logging never blocks, and what does not fit
is dropped and counted (:func:`records_dropped`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from memifd.core.log_writer import QueuedWriter

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_SECRET_WORDS = ("secret", "token", "password", "authorization")
REDACTED = "<redacted>"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, with secret-looking ones redacted."""
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if any(word in key.lower() for word in _SECRET_WORDS):
            value = REDACTED
        fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={_text(value)}" for key, value in extra_fields(record).items())
        message = printable(record.getMessage())
        line = f"{_iso(record.created)} {record.levelname:<7} {record.name}: {message}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def printable(text: str) -> str:
    """``text`` with every non-printable character (newline, NUL, ...) escaped as Python
    writes it (``\\n``, ``\\x00``): one log line stays one line."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def _text(value: Any) -> str:
    text = str(value)
    if " " in text or not text or '"' in text or not text.isprintable():
        return json.dumps(text)  # quoted, with control characters escaped
    return text


def print_banner(
    title: str,
    rows: list[tuple[str, str, Any, str]],
    log_format: str,
    stream: TextIO | None = None,
) -> None:
    """What memifd tells at start: ``rows`` of (JSON key, label, JSON value, text).

    Text: the title, then one aligned ``label: text`` line per row. JSON: a single
    record like every log line, with the title as message and each row as a field.
    ``log_format`` is ``text`` or ``json`` (see :func:`choose_format`).
    """
    stream = stream if stream is not None else sys.stdout
    if log_format == "json":
        record = logging.LogRecord("memifd", logging.INFO, __file__, 0, title, None, None)
        for key, _, value, _ in rows:
            setattr(record, key, value)
        print(JsonFormatter().format(record), file=stream, flush=True)
        return
    width = max(len(label) for _, label, _, _ in rows)
    lines = [title, *(f"  {label:<{width}}: {text}" for _, label, _, text in rows)]
    print("\n".join(lines), file=stream, flush=True)


def choose_format(log_format: str, stream: TextIO) -> str:
    """``json`` or ``text``; ``auto`` picks text for a terminal and JSON otherwise."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record (memifd, memif, uvicorn, grpc) to ``stream`` in one format,
    through a bounded queue a writer thread empties."""
    global _writer
    stream = stream if stream is not None else sys.stderr
    handler = QueuedWriter(stream)
    fmt = choose_format(log_format, stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, QueuedWriter):
            old.close()
    root.addHandler(handler)
    _writer = handler
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


_writer: QueuedWriter | None = None  # the handler :func:`configure` installed


def records_dropped() -> int:
    """Log records dropped since :func:`configure` because the output was not read in time."""
    return _writer.dropped if _writer is not None else 0
