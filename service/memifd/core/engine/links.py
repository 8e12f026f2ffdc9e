"""Runs on the worker thread: link tracking and the LinkEvents it publishes.

The library reports connects and disconnects through callbacks; states the
callbacks do not report (connecting, failed handshakes) are found by looking
at a socket's interfaces after it was polled (:meth:`Links.scan`).
"""

from __future__ import annotations

import time

import memif

from memifd.core.engine.state import EngineState, Entry, LinkView
from memifd.core.models import LinkEvent, LinkState, PeerInfo


class Links:
    """Keeps every entry's :class:`LinkView` current and tells event subscribers."""

    def __init__(self, state: EngineState) -> None:
        self._state = state

    def on_connected(self, iface: memif.Interface) -> None:
        """The library's callback: ``iface`` connected."""
        entry = self._state.entries.get(iface.name)
        if entry is not None and entry.iface is iface:
            self.publish(entry, LinkView(LinkState.CONNECTED, peer_of(iface), ""))

    def on_disconnected(self, iface: memif.Interface) -> None:
        """The library's callback: ``iface`` disconnected."""
        entry = self._state.entries.get(iface.name)
        if entry is not None and entry.iface is iface:
            peer = entry.link.peer
            view = LinkView(LinkState.DISCONNECTED, None, iface.disconnect_reason)
            self.publish(entry, view, peer=peer)

    def scan(self, sock: memif.Socket) -> None:
        """Publish state changes the callbacks do not report (connecting, failed handshakes)."""
        entries = self._state.entries
        for iface in sock.interfaces:
            entry = entries.get(iface.name)
            if entry is None or entry.iface is not iface:
                continue
            state = iface.state
            if state is memif.State.DELETED:
                continue
            current = entry.link
            if state is memif.State.CONNECTED:
                if current.state is not LinkState.CONNECTED:
                    self.publish(entry, LinkView(LinkState.CONNECTED, peer_of(iface), ""))
            elif state is memif.State.CONNECTING:
                if current.state is not LinkState.CONNECTING:
                    self.publish(entry, LinkView(LinkState.CONNECTING, None, ""))
            elif (
                current.state is not LinkState.DISCONNECTED
                or current.reason != iface.disconnect_reason
            ):
                view = LinkView(LinkState.DISCONNECTED, None, iface.disconnect_reason)
                self.publish(entry, view)

    def deleted(self, entry: Entry, reason: str) -> None:
        """The entry is gone: its link is down for good."""
        view = LinkView(LinkState.DISCONNECTED, None, reason)
        self.publish(entry, view, LinkState.DELETED)

    def publish(
        self,
        entry: Entry,
        view: LinkView,
        state: LinkState | None = None,
        peer: PeerInfo | None = None,
    ) -> None:
        """Set the entry's link and send a :class:`LinkEvent` (``state`` overrides the view's)."""
        entry.link = view
        shared = self._state
        shared.generation += 1
        if not shared.event_subs:
            return
        event = LinkEvent(
            interface=entry.name,
            state=state or view.state,
            peer=view.peer or peer,
            reason=view.reason,
            timestamp=time.time(),
        )
        for sub in shared.event_subs:
            lost = sub.put(event)
            shared.subscription_drops += len(lost)


def peer_of(iface: memif.Interface) -> PeerInfo:
    """Who is on the other end of a connected interface."""
    creds = iface.peer_credentials
    return PeerInfo(
        name=iface.peer_name,
        app_name=iface.remote_app_name,
        pid=creds.pid if creds else None,
        uid=creds.uid if creds else None,
        gid=creds.gid if creds else None,
    )
