"""Hypothesis state machine: a server and a client handshake talking through two queues.

Rules deliver queued messages in order, or tamper: inject arbitrary messages
(with no fd, fd -1 or a real eventfd/memfd), drop, duplicate, reorder or replay
old ones. Whatever happens, only :class:`memif.MemifError` subclasses come out;
a machine that failed stays failed; an untampered exchange completes with both
sides agreeing on the memory; a completed server obeys every limit it announced.
"""

from __future__ import annotations

from collections import deque

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from memif import Arguments, LocalProtocolError, MemoryConfig, Mode, wire
from memif.constants import VERSION
from memif.errors import PeerDisconnected, RemoteProtocolError
from memif.handshake import ClientHandshake, Send, ServerHandshake, ServerLimits, ServerTarget

from tests.reliability.fuzz_targets import (
    ServerSetup,
    check_server_result,
    client_memory,
    open_fake_fds,
)

FDS = open_fake_fds()  # real fds, closed with the process: the machines only carry them
_u8 = st.integers(0, 0xFF)
_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFFFFFF)
_name = st.binary(max_size=32).map(lambda b: b.replace(b"\0", b"a"))
_version = st.sampled_from([VERSION, 0x0100, 0x0201, 0]) | _u16


def _messages() -> st.SearchStrategy[wire.Message]:
    raw = st.builds(
        lambda kind, body: wire.decode(kind.to_bytes(2, "little") + body),
        st.integers(0, len(wire.MsgType) - 1),
        st.binary(min_size=126, max_size=126),
    )
    return st.one_of(
        st.just(wire.NoneMsg()),
        st.just(wire.Ack()),
        st.builds(
            wire.Hello,
            _name,
            _version,
            _version,
            _u16 | st.integers(0, 3),
            _u16 | st.integers(0, 3),
            _u16 | st.integers(0, 3),
            _u8 | st.integers(0, 14),
        ),
        st.builds(
            wire.Init,
            _version,
            st.integers(0, 4) | _u32,
            st.integers(0, 3) | _u8,
            st.sampled_from([b"", b"pw", b"wrong"]),
            _name,
        ),
        st.builds(
            wire.AddRegion,
            st.integers(0, 3) | _u16,
            st.integers(1, 1 << 16) | st.integers(0, (1 << 64) - 1),
        ),
        st.builds(
            wire.AddRing,
            st.integers(0, 1) | _u16,
            st.integers(0, 3) | _u16,
            st.integers(0, 3) | _u16,
            st.integers(0, 4096) | _u32,
            st.integers(0, 15) | _u8,
            _u16,
        ),
        st.builds(wire.Connect, _name),
        st.builds(wire.Connected, _name),
        st.builds(wire.Disconnect, _u32, st.binary(max_size=96)),
        raw,
    )


_fd = st.sampled_from([None, -1, FDS.eventfd, FDS.memfd])
_side = st.sampled_from(["server", "client"])


class HandshakePair(RuleBasedStateMachine):
    """One server and one client handshake; messages travel through in-order queues."""

    def __init__(self) -> None:
        super().__init__()
        self.setup = ServerSetup(
            ServerTarget(id=3, name="srv", mode=Mode.IP, secret="pw"),
            ServerLimits(max_regions=2, max_m2s_rings=2, max_s2m_rings=2, max_log2_ring_size=8),
        )
        self.server = ServerHandshake("srv-app", {3: self.setup.target}.get, self.setup.limits)
        self.client = ClientHandshake(
            Arguments(
                id=3,
                role="client",
                name="cli",
                mode="ip",
                secret="pw",
                memory=MemoryConfig(num_queue_pairs=3, log2_ring_size=9),
            ),
            "cli-app",
        )
        self.queues: dict[str, deque[Send]] = {"server": deque(), "client": deque()}
        self.queues["client"].append(self.server.hello())
        self.history: list[Send] = list(self.queues["client"])
        self.failed = {"server": False, "client": False}
        self.tampered = False
        self.ended = False
        self.clean = True
        self.server_was_done = False
        self.server_regions: list[tuple[int, int]] = []  # (index, size) the server accepted
        self.offered_sizes: list[int] = []  # sizes of the regions the client sent

    # -- feeding -----------------------------------------------------------------------------

    def _feed(self, side: str, message: wire.Message, fd: int | None) -> None:
        machine = self.server if side == "server" else self.client
        other = "client" if side == "server" else "server"
        try:
            if machine.done:
                machine.after_connected(message, fd)
                raise AssertionError("a connected machine accepted a message")
            replies = machine.receive(message, fd)
        except LocalProtocolError:
            assert self.failed[side], "LocalProtocolError before the machine failed"
            return
        except (RemoteProtocolError, PeerDisconnected):
            assert machine.state == "failed"
            assert self.tampered, f"{side} failed on an untampered exchange"
            self.failed[side] = True
            event(f"{side} refused the peer")
            return
        assert not self.failed[side], "a failed machine accepted a message"
        if side == "server" and isinstance(message, wire.AddRegion):
            self.server_regions.append((message.index, message.size))
        if side == "client" and self.client.needs_memory:
            replies = replies + self.client.provide_memory(*client_memory(self.client, FDS))
        for item in replies:
            wire.encode(item.message)
            if side == "client" and isinstance(item.message, wire.AddRegion):
                self.offered_sizes.append(item.message.size)
        self.queues[other].extend(replies)
        self.history.extend(replies)

    @precondition(lambda self: self.queues["server"])
    @rule()
    def deliver_to_server(self) -> None:
        item = self.queues["server"].popleft()
        self._feed("server", item.message, item.fd)

    @precondition(lambda self: self.queues["client"])
    @rule()
    def deliver_to_client(self) -> None:
        item = self.queues["client"].popleft()
        self._feed("client", item.message, item.fd)

    @precondition(lambda self: self.queues["server"] or self.queues["client"])
    @rule()
    def deliver_all(self) -> None:
        """Deliver in order until both sides are quiet."""
        for _ in range(100):
            side = "server" if self.queues["server"] else "client"
            if not self.queues[side]:
                return
            item = self.queues[side].popleft()
            self._feed(side, item.message, item.fd)

    @rule(side=_side, code=_u32, reason=st.binary(max_size=96))
    def goodbye(self, side: str, code: int, reason: bytes) -> None:
        """DISCONNECT is legal at any moment: the machine must end with PeerDisconnected."""
        machine = self.server if side == "server" else self.client
        message = wire.Disconnect(code, reason)
        try:
            if machine.done:
                machine.after_connected(message)
            else:
                machine.receive(message)
        except PeerDisconnected:
            assert not self.failed[side]
        except LocalProtocolError:
            assert self.failed[side]
        else:
            raise AssertionError("DISCONNECT accepted as if it were not one")
        assert machine.state == "failed"
        self.failed[side] = True
        self.ended = True

    # -- tampering -------------------------------------------------------------------------------

    @initialize(clean=st.booleans())
    def choose_run(self, clean: bool) -> None:
        """Half of the runs never tamper: they must complete in agreement."""
        self.clean = clean

    @precondition(lambda self: not self.clean)
    @rule(
        side=_side,
        action=st.sampled_from(["inject", "replay", "drop", "duplicate", "swap"]),
        message=_messages(),
        fd=_fd,
        pick=st.integers(0, 1000),
    )
    def tamper(
        self, side: str, action: str, message: wire.Message, fd: int | None, pick: int
    ) -> None:
        self.tampered = True
        queue = self.queues[side]
        if action == "inject":
            self._feed(side, message, fd)
        elif action == "replay":
            item = self.history[pick % len(self.history)]
            self._feed(side, item.message, item.fd)
        elif not queue:
            self._feed(side, message, fd)
        elif action == "drop":
            queue.popleft()
        elif action == "duplicate":
            queue.appendleft(queue[0])
        elif len(queue) > 1:
            queue[0], queue[1] = queue[1], queue[0]

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def server_result_obeys_limits(self) -> None:
        if self.server.done and not self.server_was_done:
            self.server_was_done = True
            event("server handshake completed")
            check_server_result(self.server, self.setup, self.server_regions)

    @invariant()
    def untampered_exchange_completes_in_agreement(self) -> None:
        if self.tampered or self.ended or self.queues["server"] or self.queues["client"]:
            return
        assert self.server.done and self.client.done
        srv, cli = self.server.result, self.client.result
        assert srv.interface_id == cli.interface_id == 3
        assert [size for _, size in self.server_regions] == self.offered_sizes
        assert srv.s2m_rings == cli.s2m_rings and srv.m2s_rings == cli.m2s_rings
        assert len(srv.s2m_rings) == len(srv.m2s_rings) == 2  # clamped to the server's limit
        assert all(r.log2_ring_size == 8 for r in srv.s2m_rings + srv.m2s_rings)
        assert (srv.peer_if_name, cli.peer_if_name) == ("cli", "srv")
        assert (srv.peer_app_name, cli.peer_app_name) == ("cli-app", "srv-app")
        event("untampered handshake completed")


HandshakePair.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHandshakePair = HandshakePair.TestCase
