"""Link tracking: library link events in, the LinkEvents memifd publishes out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import memif
import pytest
from memifd.core.engine.links import Links
from memifd.core.engine.state import DOWN, EngineState, Entry
from memifd.core.manager import Manager
from memifd.core.models import InterfacePatch, InterfaceSpec, LinkEvent, LinkState
from memifd.core.subscription import Subscription

from tests.memifd.rest_support import memif_clients, spec, wait_for


class Tracked:
    """A :class:`Links` over one client interface, with a subscriber to its events."""

    def __init__(self, sock: memif.Socket) -> None:
        self.sock = sock
        self.iface = sock.create_interface(role="client", id=3, name="a")
        self.entry = Entry(
            InterfaceSpec(name="a", socket=sock.path, role=memif.Role.CLIENT, id=3),
            sock.path,
            self.iface,
            self.iface.rx_queues,
            self.iface.tx_queues,
        )
        self.state = EngineState(entries={"a": self.entry})
        self.events: Subscription[LinkEvent] = Subscription()
        self.state.event_subs.append(self.events)
        self.links = Links(self.state)

    def feed(self, *events: memif.LinkEvent) -> None:
        for event in events:
            self.links.apply(self.sock.interface_for(event), event)

    def published(self) -> list[tuple[str, str, str | None]]:
        """(state, reason, peer name) of every LinkEvent published since the last call."""
        got = self.events.get_batch(100, 0)
        return [(e.state.value, e.reason, e.peer.name if e.peer else None) for e in got]


@pytest.fixture
def tracked() -> Iterator[Tracked]:
    # a client on a path nothing listens on: no loop runs, nothing connects
    with memif.Socket(f"@memifd-test-links-{os.getpid()}") as sock:
        yield Tracked(sock)


def connecting() -> memif.Connecting:
    return memif.Connecting(role="client", interface_id=3)


def link_up() -> memif.LinkUp:
    return memif.LinkUp(role="client", interface_id=3, peer_name="srv", peer_app="vpp")


def link_down(reason: str, was_up: bool) -> memif.LinkDown:
    return memif.LinkDown(role="client", interface_id=3, reason=reason, was_up=was_up)


def test_a_link_goes_up_and_down(tracked: Tracked) -> None:
    tracked.feed(connecting(), link_up())
    assert tracked.published() == [("connecting", "", None), ("connected", "", "srv")]
    assert tracked.entry.link.state is LinkState.CONNECTED
    peer = tracked.entry.link.peer
    assert peer is not None and peer.app_name == "vpp"
    tracked.feed(link_down("peer went away", was_up=True))
    # the last peer goes with the disconnect; the view keeps none
    assert tracked.published() == [("disconnected", "peer went away", "srv")]
    assert tracked.entry.link.peer is None and tracked.entry.link.reason == "peer went away"


def test_a_failed_handshake_ends_with_its_reason(tracked: Tracked) -> None:
    failed = memif.HandshakeFailed(role="client", interface_id=3, reason="secret mismatch")
    tracked.feed(connecting(), failed, link_down("secret mismatch", was_up=False))
    assert tracked.published() == [
        ("connecting", "", None),
        ("disconnected", "secret mismatch", None),
    ]


def test_an_unchanged_state_is_not_published_again(tracked: Tracked) -> None:
    generation = tracked.state.generation
    tracked.feed(link_down("", was_up=False))  # the same as the initial view
    assert tracked.published() == [] and tracked.entry.link is DOWN
    tracked.feed(connecting(), connecting(), link_down("gone", False), link_down("gone", False))
    assert tracked.published() == [("connecting", "", None), ("disconnected", "gone", None)]
    assert tracked.state.generation == generation + 2


def test_events_of_other_interfaces_are_ignored(tracked: Tracked) -> None:
    tracked.feed(
        memif.Connecting(role="server", interface_id=3),  # no server 3 here
        memif.Connecting(role="client", interface_id=4),
        memif.HandshakeFailed(role="server", interface_id=None, reason="bad id"),
    )
    tracked.state.entries = {}  # "a" is being deleted: its events no longer count
    tracked.feed(connecting())
    assert tracked.published() == []


def test_a_reason_without_an_event_is_noted(tracked: Tracked) -> None:
    tracked.iface.set_admin_up(False)  # no connection to end: the library reports nothing
    tracked.links.note_reasons(tracked.sock)
    assert tracked.published() == [("disconnected", "administratively down", None)]
    tracked.links.note_reasons(tracked.sock)
    assert tracked.published() == []


def test_a_reason_does_not_override_a_live_link(tracked: Tracked) -> None:
    tracked.feed(connecting())
    tracked.iface.disconnect_reason = "connect to x failed"  # an earlier attempt's
    tracked.links.note_reasons(tracked.sock)
    assert tracked.published() == [("connecting", "", None)]


def test_deleted_is_published_with_its_reason(tracked: Tracked) -> None:
    tracked.feed(connecting(), link_up())
    tracked.published()
    tracked.links.deleted(tracked.entry, "interface deleted")
    assert tracked.published() == [("deleted", "interface deleted", None)]


def events_until_quiet(events: Subscription[LinkEvent]) -> list[tuple[str, str, str | None]]:
    got: list[LinkEvent] = []
    while batch := events.get_batch(100, 0.2):
        got += batch
    return [(e.state.value, e.reason, e.peer.name if e.peer else None) for e in got]


def test_the_manager_reports_every_step_of_a_link(manager: Manager, sock_dir: Path) -> None:
    events = manager.subscribe_events()
    manager.create_interface(spec("a"))
    with memif_clients(str(sock_dir / "m.sock"), [0]) as (client,):
        assert client.wait_connected(5)
        assert wait_for(lambda: manager.get_interface("a").state == "connected")
        status = manager.update_interface("a", InterfacePatch(admin_up=False))
        assert (status.state, status.disconnect_reason) == (
            LinkState.DISCONNECTED,
            "administratively down",
        )
    manager.delete_interface("a")
    assert events_until_quiet(events) == [
        ("connecting", "", None),
        ("connected", "", "py0"),
        ("disconnected", "administratively down", "py0"),
        ("deleted", "interface deleted", None),
    ]


def test_an_interface_created_down_says_why(manager: Manager) -> None:
    events = manager.subscribe_events()
    status = manager.create_interface(spec("b", admin_up=False))
    assert status.disconnect_reason == "administratively down"
    manager.update_interface("b", InterfacePatch(rx_mode=memif.RxMode.POLLING))
    assert events_until_quiet(events) == [("disconnected", "administratively down", None)]
