"""Run ``python -m memif responder`` as a subprocess and follow what it prints."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

WAIT = 10.0  # seconds allowed for a process or link to react


class ResponderProcess:
    """One responder process whose stdout is collected line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memif", "responder", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The first output line containing ``text``; fails with the whole output if none."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"responder never printed {text!r}; output:\n{self.output}")
                self._changed.wait(min(remaining, 0.2))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and return the exit code."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
