"""One daemon thread for memory work too slow for an event loop.

Building the memory of a big client interface (255 queue pairs × 2^14
descriptors is 134 MB of descriptors and millions of Python objects) or
freeing it takes hundreds of milliseconds. An event loop that did it itself
would stop every other interface for that long, so such jobs run here, in
small steps that each end with :func:`pause`: the thread sleeps briefly and
the event loop gets the GIL.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger("memif")

#: Work that touches more descriptors than this goes to the background thread;
#: smaller work (well under a millisecond) is done in place.
BACKGROUND_DESCRIPTORS = 1 << 15
#: How long a job sleeps between steps; enough for a waiting thread to take the GIL.
PAUSE = 0.0001

_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def submit(job: Callable[[], None]) -> None:
    """Run ``job`` on the background thread (started on first use)."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="memif-memory", daemon=True)
            _thread.start()
    _jobs.put(job)


def on_background_thread() -> bool:
    """True when called from the background thread itself."""
    return _thread is not None and threading.current_thread() is _thread


def pause() -> None:
    """Between two steps of a job: let other threads run."""
    time.sleep(PAUSE)


def discard(items: list[object]) -> None:
    """Drop the references in ``items`` one at a time, off the caller's thread.

    Freeing a big ring (its descriptor template, its buffer offsets) or a big
    mapping costs up to a millisecond each; hundreds of them in one go would
    hold the GIL for a tenth of a second.
    """

    def job() -> None:
        while items:
            items.pop()
            pause()

    if on_background_thread():
        job()
    else:
        submit(job)


def idle(timeout: float = 10.0) -> bool:
    """Wait until every job submitted so far has finished; False on timeout."""
    done = threading.Event()
    submit(done.set)
    return done.wait(timeout)


def _run() -> None:
    while True:
        job = _jobs.get()
        try:
            job()
        except Exception:  # a failing job must not end the thread
            log.exception("background memory job failed")
        del job


def _forget_thread() -> None:
    global _thread, _jobs, _lock
    _thread = None
    _jobs = queue.SimpleQueue()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_thread)
