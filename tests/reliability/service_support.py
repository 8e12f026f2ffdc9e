"""What the service-level reliability tests share: ``memifd serve`` with a config
file, figures of a process from ``/proc``, and Python memif traffic with exact counts."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import memif
import yaml

from tests.memifd.rest_support import Daemon, frame
from tests.waiting import wait_until

SETTLE_QUIET = 0.5  # seconds without a change that mean "drained"


# -- a process seen from /proc ---------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    """The fields of ``/proc/<pid>/status``."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) in MiB."""
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def rss_split_mib(pid: int) -> dict[str, float]:
    """VmRSS split into anonymous memory and shared memory (the memif regions) in MiB."""
    status = proc_status(pid)
    return {
        key: int(status[field].split()[0]) / 1024
        for key, field in (("anon", "RssAnon"), ("shmem", "RssShmem"), ("file", "RssFile"))
    }


def thread_count(pid: int) -> int:
    """Threads of the process."""
    return int(proc_status(pid)["Threads"])


def fd_count(pid: int) -> int:
    """Open file descriptors of the process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_mib(pid)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return


# -- memifd as a process -----------------------------------------------------------------------


def write_config(path: Path, interfaces: list[dict[str, Any]], **settings: Any) -> Path:
    """A ``memifd serve --config`` file declaring ``interfaces``."""
    path.write_text(yaml.safe_dump({**settings, "interfaces": interfaces}, sort_keys=False))
    return path


def start_daemon(
    sock_dir: Path,
    config: Path | None = None,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Daemon:
    """``memifd serve`` (warnings only unless ``args`` say otherwise), started and ready."""
    flags = ["--log-level", "warning"]
    if config is not None:
        flags += ["--config", str(config)]
    daemon = Daemon(sock_dir, args=[*flags, *(args or [])], env=env or {})
    if http_port is not None:
        daemon.http_port = http_port
    if grpc_port is not None:
        daemon.grpc_port = grpc_port
    try:
        return daemon.start()
    except BaseException:
        daemon.kill()
        raise


def stats(api: httpx.Client, name: str) -> dict[str, Any]:
    """``GET /v1/interfaces/<name>/stats``."""
    response = api.get(f"/v1/interfaces/{name}/stats")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def all_connected(api: httpx.Client, names: set[str]) -> bool:
    """True when every interface in ``names`` is listed and connected."""
    listed = {i["name"]: i["state"] for i in api.get("/v1/interfaces").json()}
    return all(listed.get(name) == "connected" for name in names)


# -- traffic -----------------------------------------------------------------------------------


class Sender(threading.Thread):
    """Sends bursts on tx queue 0 as fast as the ring takes them until stopped.

    ``accepted`` counts what ``send_burst`` took; what found no room is the
    library's ``ring_full`` (back-pressure), never retried here.
    """

    def __init__(self, iface: memif.Interface, burst: int = 64, size: int = 64) -> None:
        super().__init__(name=f"sender-{iface.name}", daemon=True)
        self.iface = iface
        self.batch = [frame(i, size) for i in range(burst)]
        self.accepted = 0
        self.offered = 0
        self._halt = threading.Event()

    def run(self) -> None:
        txq = self.iface.tx_queue(0)
        batch = self.batch
        while not self._halt.is_set():
            sent = txq.send_burst(batch)
            self.offered += len(batch)
            self.accepted += sent
            if sent < len(batch):
                time.sleep(0)  # let the reader threads in

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


class Receiver(threading.Thread):
    """Reads rx queue 0 until stopped; ``slow`` takes a small burst per millisecond,
    so the peer's tx ring fills and the peer must drop."""

    def __init__(self, iface: memif.Interface, slow: bool = False) -> None:
        super().__init__(name=f"receiver-{iface.name}", daemon=True)
        self.iface = iface
        self.slow = slow
        self.received = 0
        self.last_packet = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        rxq = self.iface.rx_queue(0)
        while not self._halt.is_set():
            burst = rxq.recv_burst(16 if self.slow else 256)
            if burst:
                self.received += len(burst)
                self.last_packet = time.monotonic()
                if self.slow:
                    time.sleep(0.001)  # a slow reader on purpose
            else:
                rxq.wait(0.02)

    def quiet(self) -> float:
        """Seconds since the last packet arrived."""
        return time.monotonic() - self.last_packet

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def settle(
    api: httpx.Client, names: list[str], receivers: list[Receiver], timeout: float = 20.0
) -> dict[str, dict[str, Any]]:
    """Wait until the receivers and memifd's counters stay still; the final stats by name."""
    last: dict[str, dict[str, Any]] = {}
    still_since = time.monotonic()

    def still() -> bool:
        nonlocal last, still_since
        now = {name: stats(api, name) for name in names}
        if now != last:
            last, still_since = now, time.monotonic()
        quiet = all(r.quiet() >= SETTLE_QUIET for r in receivers)
        return quiet and time.monotonic() - still_since >= SETTLE_QUIET

    wait_until(still, timeout, 0.05, lambda: f"traffic to settle: {last}")
    return last


@contextlib.contextmanager
def traffic(*threads: Sender | Receiver) -> Iterator[None]:
    """Start ``threads``; stop every one of them on the way out, whatever happened."""
    try:
        for thread in threads:
            thread.start()
        yield
    finally:
        for thread in threads:
            if thread.is_alive():
                thread.stop()


def run_for(seconds: float, check: Callable[[], None] | None = None) -> None:
    """Let traffic run for ``seconds``, calling ``check`` every 0.1 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check is not None:
            check()
        time.sleep(0.1)  # the traffic runs meanwhile: its duration is what is tested


# -- a peer running as another user ------------------------------------------------------------


def unused_id(taken: Callable[[int], object], start: int = 61000) -> int:
    """The first id from ``start`` on that ``taken`` (pwd.getpwuid, grp.getgrgid) rejects."""
    for candidate in range(start, start + 1000):
        try:
            taken(candidate)
        except KeyError:
            return candidate
    raise RuntimeError(f"no unused id in {start}..{start + 999}")


def as_user(
    uid: int,
    gid: int,
    fn: Callable[[], dict[str, Any]],
    timeout: float = 20.0,
    groups: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run ``fn`` in a forked child that dropped to ``uid``/``gid`` (supplementary
    ``groups`` only) and return the dict it returned. Forked, not executed: the
    interpreter may live where the other user cannot read."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        code = 0
        try:
            os.close(read_end)
            drop_to(uid, gid, groups)
            result = fn()
        except BaseException as exc:
            result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        try:
            with os.fdopen(write_end, "w") as out:
                json.dump(result, out)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        ready, _, _ = select.select([answer], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"the child as uid {uid} did not answer in {timeout} s")
        text = answer.read()
    os.waitpid(pid, 0)
    answered: dict[str, Any] = json.loads(text)
    return answered


def drop_to(uid: int, gid: int, groups: tuple[int, ...] = ()) -> None:
    """Become ``uid``/``gid`` with only ``groups`` as supplementary groups (needs root)."""
    os.setgroups(list(groups))
    os.setgid(gid)
    os.setuid(uid)


class AsUserLoop:
    """``step()`` called over and over in a forked child running as ``uid``/``gid`` until
    :meth:`stop`; ``stop`` returns how many steps ran and the errors they raised, by type."""

    def __init__(self, uid: int, gid: int, step: Callable[[], None]) -> None:
        self._stop_r, self._stop_w = os.pipe()
        self._out_r, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never return into the test runner
            code = 0
            counts: dict[str, int] = {"steps": 0}
            try:
                os.close(self._stop_w)
                os.close(self._out_r)
                drop_to(uid, gid)
                while not select.select([self._stop_r], [], [], 0)[0]:
                    try:
                        step()
                    except OSError as exc:
                        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                        counts[name] = counts.get(name, 0) + 1
                    counts["steps"] += 1
            except BaseException as exc:
                counts["fatal"] = 1
                counts[f"{type(exc).__name__}: {exc}"] = 1
                code = 1
            try:
                with os.fdopen(out_w, "w") as out:
                    json.dump(counts, out)
            finally:
                os._exit(code)
        os.close(self._stop_r)
        os.close(out_w)

    def stop(self, timeout: float = 20.0) -> dict[str, int]:
        os.close(self._stop_w)
        with os.fdopen(self._out_r) as answer:
            ready, _, _ = select.select([answer], [], [], timeout)
            if not ready:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"the looping child did not stop in {timeout} s")
            text = answer.read()
        os.waitpid(self.pid, 0)
        counts: dict[str, int] = json.loads(text)
        return counts


def try_connect(
    path: str, interface_id: int = 0, secret: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """One memif client's attempt at ``path``: a raw ``connect()`` (its errno), then the
    library's handshake (connected, or the reason it was refused). Runs in this thread."""
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        raw.connect("\0" + path[1:] if path.startswith("@") else path)
        errno_name = ""
    except OSError as exc:
        errno_name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    finally:
        raw.close()
    with memif.Socket(path, reconnect_interval=60) as sock:
        iface = sock.create_interface(
            memif.Arguments(id=interface_id, role="client", name="other-user", secret=secret)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not iface.is_connected:
            sock.poll(0.05)
            if iface.disconnect_reason and iface.state is memif.State.DISCONNECTED:
                break
        return {
            "uid": os.getuid(),
            "errno": errno_name,
            "connected": iface.is_connected,
            "reason": iface.disconnect_reason,
        }
