"""A memif peer that answers ARP requests and pings: a quick check of a set-up.

:class:`Responder` owns one :class:`~memif.Socket` with one interface, in
either role. Its loop reads a burst from every receive queue, builds the
replies with :mod:`memif.packet` and sends them as one burst on the transmit
queue of the same index. When every queue is idle it sleeps on the queues'
interrupt fds. Link changes and failed handshakes (refused peers, peers that
left mid-handshake) are told to a ``report`` callable (the CLI prints them).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
from collections.abc import Callable
from dataclasses import dataclass

from .config import Arguments, Mode, RxMode
from .constants import DEFAULT_RECONNECT_INTERVAL
from .errors import FailureKind
from .interface import Interface
from .packet import Identity, Reply, ReplyKind, answer_ethernet, answer_ip, format_mac
from .socket import Socket

DEFAULT_BURST = 64
IDLE_WAIT = 0.5  # seconds between checks of link state while nothing arrives

Report = Callable[[str], None]
# Failures where the peer ended the handshake rather than being refused.
_PEER_ENDED = (FailureKind.PEER_CLOSED, FailureKind.PEER_DISCONNECT, FailureKind.SOCKET_ERROR)


def _ignore(_: str) -> None:
    pass


@dataclass(slots=True)
class Counters:
    """What the responder saw and did."""

    received: int = 0
    arp_replies: int = 0
    icmp_replies: int = 0
    ignored: int = 0
    tx_dropped: int = 0  # replies built but not sent: the transmit ring was full

    def summary(self) -> str:
        """One line for people."""
        return (
            f"received {self.received} packets, answered {self.arp_replies} ARP and "
            f"{self.icmp_replies} ICMP echo requests, ignored {self.ignored}, "
            f"{self.tx_dropped} replies dropped (tx ring full)"
        )


class Responder:
    """Answers ARP requests for ``me.ip`` and ICMP echo requests to it on one interface."""

    def __init__(
        self,
        path: str,
        args: Arguments,
        me: Identity,
        *,
        report: Report = _ignore,
        reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL,
        burst: int = DEFAULT_BURST,
    ) -> None:
        if args.mode is Mode.PUNT_INJECT:
            raise ValueError("mode must be ethernet or ip; punt-inject carries no IP traffic")
        self.me = me
        self.counters = Counters()
        self._report = report
        self._burst = burst
        self._answer = answer_ip if args.mode is Mode.IP else answer_ethernet
        self._stopping = False
        self._failures_seen = 0
        self._failure_seen = ""
        self._sock = Socket(path, reconnect_interval=reconnect_interval)
        self._signal_pipe: tuple[int, int] | None = None
        self._previous_wakeup_fd = -1
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        try:
            self.iface: Interface = self._sock.create_interface(
                args.model_copy(update={"rx_mode": RxMode.INTERRUPT}),
                on_connected=self._on_up,
                on_disconnected=self._on_down,
            )
            self._selector.register(self._wake, selectors.EVENT_READ)
            for queue in self.iface.rx_queues:
                self._selector.register(queue.fileno(), selectors.EVENT_READ)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Responder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def socket(self) -> Socket:
        """The control socket."""
        return self._sock

    def describe(self) -> str:
        """Where this responder listens or connects, and what it answers for."""
        args = self.iface.args
        where = "listening on" if args.is_server else "connecting to"
        pairs = args.memory.num_queue_pairs
        identity = format_mac(self.me.mac) + " " if args.mode is Mode.ETHERNET else ""
        return (
            f"{where} {self._sock.path} ({args.role.value}, id {args.id}, mode {args.mode.value}, "
            f"{pairs} queue pair{'s' if pairs != 1 else ''}), answering for "
            f"{identity}{'.'.join(str(b) for b in self.me.ip)}"
        )

    def wake_on_signals(self) -> None:
        """Let a signal wake :meth:`run` at once (call from the main thread).

        The kernel may hand a signal to the socket's thread; Python then runs the handler
        only when the main thread next runs Python code, which an idle :meth:`run` would do
        after up to :data:`IDLE_WAIT` seconds. Python's wakeup fd, watched here, ends the
        wait as soon as any thread receives a signal.
        """
        if self._signal_pipe is not None:
            return
        self._signal_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._signal_pipe[0], selectors.EVENT_READ)
        self._previous_wakeup_fd = signal.set_wakeup_fd(
            self._signal_pipe[1], warn_on_full_buffer=False
        )

    def run(self) -> Counters:
        """Answer until :meth:`stop`; returns the counters."""
        self._sock.start()
        while not self._stopping:
            if not self.process():
                self._check_failures()
                for key, _ in self._selector.select(IDLE_WAIT):
                    if key.fd == self._wake:
                        self._drain_wake()
                    elif self._signal_pipe is not None and key.fd == self._signal_pipe[0]:
                        _drain(key.fd)
        return self.counters

    def process(self) -> int:
        """One pass over every queue pair; returns the number of packets read."""
        handled = 0
        iface = self.iface
        for rx, tx in zip(iface.rx_queues, iface.tx_queues, strict=True):
            packets = rx.recv_burst(self._burst)
            if not packets:
                continue
            handled += len(packets)
            replies = self._answer_all(packets)
            if replies:
                self.counters.tx_dropped += len(replies) - tx.send_burst(replies)
        return handled

    def stop(self) -> None:
        """Make :meth:`run` return; safe to call from a signal handler."""
        self._stopping = True
        self._kick()

    def close(self) -> None:
        """Delete the interface, close the socket (removing its file) and our fds."""
        self._sock.close()
        self._selector.close()
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1
        if self._signal_pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            for fd in self._signal_pipe:
                os.close(fd)
            self._signal_pipe = None

    # -- internals -------------------------------------------------------------------

    def _answer_all(self, packets: list[bytes]) -> list[bytes]:
        counters = self.counters
        counters.received += len(packets)
        replies: list[Reply] = []
        for packet in packets:
            reply = self._answer(packet, self.me)
            if reply is not None:
                replies.append(reply)
        arp = sum(1 for r in replies if r.kind is ReplyKind.ARP)
        counters.arp_replies += arp
        counters.icmp_replies += len(replies) - arp
        counters.ignored += len(packets) - len(replies)
        return [r.data for r in replies]

    def _check_failures(self) -> None:
        """Report failed server handshakes and failed connection attempts once per change."""
        failures = sum(self._sock.handshake_failures.values())
        if failures != self._failures_seen:
            self._failures_seen = failures
            last = self._sock.last_handshake_failure
            if last is not None and last.role == "server":
                verb = "handshake failed" if last.kind in _PEER_ENDED else "peer refused"
                self._report(f"{verb}: {last.describe()}")
        iface = self.iface
        reason = iface.disconnect_reason
        if not iface.is_connected and reason and reason != self._failure_seen:
            self._failure_seen = reason
            self._report(f"not connected: {reason}")

    def _on_up(self, iface: Interface) -> None:
        self._failure_seen = ""
        self._report(
            f"link up: peer {iface.peer_name!r} (app {iface.remote_app_name!r}), "
            f"{iface.num_rx_connected} rx / {iface.num_tx_connected} tx queues"
        )
        self._kick()

    def _on_down(self, iface: Interface) -> None:
        self._failure_seen = iface.disconnect_reason
        self._report(f"link down: {iface.disconnect_reason}")

    def _kick(self) -> None:
        if self._wake >= 0:
            with contextlib.suppress(OSError):
                os.eventfd_write(self._wake, 1)

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_read(self._wake)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 512):
            pass
