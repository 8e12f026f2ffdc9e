"""Runs on the worker thread: link tracking and the LinkEvents it publishes.

The library reports the course of every connection as events (:mod:`memif.events`),
drained after each turn of a socket's loop, and when it closes, and handed to
:meth:`Links.apply`. A down link whose reason changes with no connection behind
it (a connect that failed, a server that refused us before the handshake, an
administrative down) has no event; :meth:`Links.note_reasons` publishes those.
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

    def apply(self, iface: memif.Interface | None, event: memif.LinkEvent) -> None:
        """Publish what a library link event about ``iface`` changes (nothing if unchanged).

        ``iface`` is None for a peer refused before it named an interface, or for
        an interface deleted since.
        """
        if iface is None:
            return
        entry = self._state.entries.get(iface.name)
        if entry is None or entry.iface is not iface:
            return
        current = entry.link
        if isinstance(event, memif.Connecting):
            view = LinkView(LinkState.CONNECTING, None, "")
        elif isinstance(event, memif.LinkUp):
            view = LinkView(LinkState.CONNECTED, peer_of(iface, event), "")
        elif isinstance(event, memif.LinkDown):
            view = LinkView(LinkState.DISCONNECTED, None, event.reason)
        else:
            return  # HandshakeFailed: the LinkDown that follows carries the reason
        if view.state is not current.state or view.reason != current.reason:
            self.publish(entry, view, peer=current.peer)

    def note_reasons(self, sock: memif.Socket) -> None:
        """Publish the new reason of a down link that changed without an event."""
        entries = self._state.entries
        for iface in sock.interfaces:
            entry = entries.get(iface.name)
            if entry is None or entry.iface is not iface or iface.state is memif.State.DELETED:
                continue
            current = entry.link
            if (
                current.state is LinkState.DISCONNECTED
                and iface.state is memif.State.DISCONNECTED
                and current.reason != iface.disconnect_reason
            ):
                self.publish(entry, LinkView(LinkState.DISCONNECTED, None, iface.disconnect_reason))

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


def peer_of(iface: memif.Interface, up: memif.LinkUp) -> PeerInfo:
    """Who is on the other end of the link ``up`` reported."""
    creds = iface.peer_credentials
    return PeerInfo(
        name=up.peer_name,
        app_name=up.peer_app,
        pid=creds.pid if creds else None,
        uid=creds.uid if creds else None,
        gid=creds.gid if creds else None,
    )
