"""Runs on the worker thread: interface create, update and delete, limits, sockets by path.

Every interface lives on a :class:`memif.Socket` chosen by its resolved path;
the socket opens with its first interface and closes with its last. Creation
checks names, socket/role/id clashes, cross-connect targets and the resource
limits before anything is opened; a dry run also checks what opening the
socket would refuse (:mod:`memifd.core.preflight`) and opens nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os

import memif
from memif.constants import MAX_SOCKET_PATH

from memifd.core import preflight
from memifd.core.engine.dataplane import DataPlane
from memifd.core.engine.links import Links
from memifd.core.engine.state import EngineState, Entry
from memifd.core.engine.streams import Streams
from memifd.core.engine.views import preview
from memifd.core.engine.worker import Worker
from memifd.core.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    LimitExceededError,
    MemifdError,
)
from memifd.core.limits import (
    FDS_PER_SOCKET,
    api_fd_reserve,
    fd_limit,
    interface_fds,
    interface_memory,
)
from memifd.core.models import (
    Action,
    InterfacePatch,
    InterfaceSpec,
    InterfaceStatus,
    LinkDetails,
    LinkRegion,
    LinkRing,
)
from memifd.core.settings import Settings
from memifd.core.socketdirs import SocketDirs, socket_dir_problem

log = logging.getLogger("memifd.manager")

APP_NAME = "memifd"


class Registry:
    """The interfaces and the sockets they live on, by name and by path."""

    def __init__(
        self,
        state: EngineState,
        settings: Settings,
        worker: Worker,
        dataplane: DataPlane,
        links: Links,
        streams: Streams,
    ) -> None:
        self._state = state
        self._settings = settings
        self._worker = worker
        self._dataplane = dataplane
        self._links = links
        self._streams = streams
        self._dirs = SocketDirs(settings.allowed_socket_dirs)
        #: Fds open when the worker started (see the fd limit check).
        self.fd_baseline = 0

    # -- interfaces -------------------------------------------------------------------------------

    def create_declared(self, specs: list[InterfaceSpec]) -> None:
        """Create the configured interfaces; xconnect targets may be declared later in the list."""
        names = {spec.name for spec in specs}
        for spec in specs:
            if spec.xconnect_to is not None and spec.xconnect_to not in names:
                raise InvalidArgumentError(
                    "xconnect_to",
                    f"interfaces: {spec.name}: xconnect_to {spec.xconnect_to!r} is not declared",
                )
        for spec in specs:
            first = spec.model_copy(update={"action": Action.DROP, "xconnect_to": None})
            self.create(first, False)
        for spec in specs:
            self._state.entries[spec.name].spec = spec

    def create(self, spec: InterfaceSpec, dry_run: bool) -> Entry | InterfaceStatus:
        """Create the interface (its entry), or with ``dry_run`` only check it (a preview)."""
        state = self._state
        if spec.name in state.entries:
            raise AlreadyExistsError(f"interface {spec.name!r} already exists")
        path = self._settings.resolve_socket(spec.socket)
        size = len(path.encode())
        if size > MAX_SOCKET_PATH:
            raise InvalidArgumentError(
                "socket", f"socket path {path!r} is {size} bytes, the limit is {MAX_SOCKET_PATH}"
            )
        for other in state.entries.values():
            if (other.socket_path, other.spec.role, other.spec.id) == (path, spec.role, spec.id):
                raise AlreadyExistsError(
                    f"a {spec.role.value} interface with id {spec.id} already exists on {path} "
                    f"({other.name!r})"
                )
        self._check_xconnect(spec.name, spec.xconnect_to)
        self._check_limits(spec, path)
        if spec.role is memif.Role.SERVER and _in_socket_dir(spec.socket):
            problem = socket_dir_problem(self._settings.socket_dir)
            if problem is not None:
                raise InvalidArgumentError("socket", problem)
        if dry_run:
            self._preflight(path, spec)
            return preview(spec, path)
        sock, created = self._socket(path)
        try:
            iface = sock.create_interface(self._arguments(spec))
        except BaseException as exc:
            if created:
                self._close_socket(path, "socket unusable")
            if isinstance(exc, OSError):
                raise os_error(exc) from None
            if not isinstance(exc, memif.LocalProtocolError):
                raise
            raise _socket_error(exc) from None
        entry = Entry(spec, path, iface, iface.rx_queues, iface.tx_queues)
        self._streams.for_new_entry(entry)
        state.entries = {**state.entries, spec.name: entry}
        if not spec.admin_up:
            iface.set_admin_up(False)
        self._dataplane.watch_queues(entry)
        self._links.note_reasons(sock)  # a new interface has no connection yet: no events
        self._check_bound()
        log.info(
            "interface created",
            extra={
                "interface": spec.name,
                "socket": path,
                "role": spec.role.value,
                "id": spec.id,
                "action": spec.action.value,
            },
        )
        return entry

    def update(self, name: str, patch: InterfacePatch) -> Entry:
        """Apply ``patch`` (rx_mode, action, xconnect_to, admin_up) to a live interface."""
        entry = self._state.entry(name)
        # null means "unchanged", except for xconnect_to where it clears the target
        changes = {
            key: value
            for key, value in patch.model_dump(exclude_unset=True).items()
            if value is not None or key == "xconnect_to"
        }
        try:
            spec = InterfaceSpec.model_validate({**entry.spec.model_dump(), **changes})
        except ValueError as exc:
            message = _first_error(exc)
            raise InvalidArgumentError(message.partition(":")[0], message) from None
        if spec.action is Action.XCONNECT or "xconnect_to" in changes:
            self._check_xconnect(name, spec.xconnect_to)
        if spec.rx_mode is not entry.spec.rx_mode:
            self._dataplane.unwatch_queues(entry)
            for rxq in entry.rx:
                rxq.set_mode(spec.rx_mode)
            entry.spec = spec
            self._dataplane.watch_queues(entry)
        if spec.admin_up is not entry.spec.admin_up:
            entry.iface.set_admin_up(spec.admin_up)
        entry.spec = spec
        self._poll_socket(entry.iface.socket)  # an admin down ended the link just now
        log.info("interface updated", extra={"interface": name, "changes": changes})
        return entry

    def delete(self, name: str, reason: str, keep_references: bool = False) -> None:
        """Disconnect and delete an interface; its socket closes with its last interface."""
        state = self._state
        entry = state.entry(name)
        dependents = [e.name for e in state.entries.values() if e.spec.xconnect_to == name]
        if dependents and not keep_references:
            listed = ", ".join(repr(dependent) for dependent in dependents)
            raise ConflictError(
                f"interface {name!r} is the xconnect target of {listed}: change their "
                "xconnect_to or delete them first"
            )
        self._dataplane.unwatch_queues(entry)
        entries = dict(state.entries)
        del entries[name]
        state.entries = entries
        entry.iface.delete()
        self._links.deleted(entry, reason)
        self._streams.entry_deleted(entry, reason)
        sock = state.sockets.get(entry.socket_path)
        if sock is not None and not sock.interfaces:
            self._close_socket(entry.socket_path, reason)
        elif sock is not None:
            self._poll_socket(sock)  # its LinkDown, before an interface of that id may return
        self._check_bound()
        log.info("interface deleted", extra={"interface": name, "reason": reason})

    def link_details(self, name: str) -> LinkDetails:
        """The shared memory of an interface's link, its ring counters read now."""
        entry = self._state.entry(name)
        details = entry.iface.link_details()
        if details is None:
            return LinkDetails(name=name, state=entry.link.state)
        return LinkDetails(
            name=name,
            state=entry.link.state,
            memory=details.memory,
            regions=[
                LinkRegion(index=r.index, size=r.size, sealed=r.sealed) for r in details.regions
            ],
            rings=[LinkRing.model_validate(dataclasses.asdict(r)) for r in details.rings],
        )

    def close_all(self, reason: str) -> None:
        """Close every socket (peers get ``reason``) and mark every interface deleted."""
        state = self._state
        for path in list(state.sockets):
            self._close_socket(path, reason)
        for entry in state.entries.values():
            self._links.deleted(entry, reason)

    # -- checks -----------------------------------------------------------------------------------

    def _check_limits(self, spec: InterfaceSpec, path: str) -> None:
        """Refuse an interface that would pass max_interfaces, max_shared_memory or the
        file descriptors left under RLIMIT_NOFILE."""
        settings = self._settings
        entries = list(self._state.entries.values())
        if len(entries) >= settings.max_interfaces:
            raise LimitExceededError(
                f"max_interfaces: {len(entries)} interfaces exist, the limit is "
                f"{settings.max_interfaces}"
            )
        memory = interface_memory(spec.memory)
        committed = sum(interface_memory(e.spec.memory) for e in entries)
        if committed + memory > settings.max_shared_memory:
            raise LimitExceededError(
                f"max_shared_memory: the interface needs {memory} bytes of shared memory and "
                f"{committed} of {int(settings.max_shared_memory)} are taken"
            )
        sockets = self._state.sockets
        count = len(sockets) + (path not in sockets)
        fds = sum(interface_fds(e.spec.memory) for e in entries) + FDS_PER_SOCKET * count
        limit = fd_limit()
        reserve = api_fd_reserve(settings.http_max_connections)
        available = limit - self.fd_baseline - reserve
        if fds + interface_fds(spec.memory) > available:
            raise LimitExceededError(
                f"file descriptors: the interface needs {interface_fds(spec.memory)} and "
                f"{max(available - fds, 0)} are left (RLIMIT_NOFILE {limit}, "
                f"{self.fd_baseline} open at start, {reserve} kept for API connections)"
            )

    def _arguments(self, spec: InterfaceSpec) -> memif.Arguments:
        """The library's arguments, with the peers the spec (or the settings) allow.

        memifd's own uid is always allowed: a process of that uid controls memifd anyway.
        """
        uids, gids = spec.allowed_uids, spec.allowed_gids
        if not uids and not gids:
            if spec.role is not memif.Role.SERVER:
                return spec.to_arguments()  # a client with no list accepts any server
            uids, gids = self._settings.default_allowed_uids, self._settings.default_allowed_gids
        allowed = {
            "allowed_uids": frozenset({os.geteuid(), *uids}),
            "allowed_gids": frozenset(gids),
        }
        return spec.to_arguments().model_copy(update=allowed)

    def _preflight(self, path: str, spec: InterfaceSpec) -> None:
        """What opening the socket for ``spec`` would refuse, without opening it."""
        sock = self._state.sockets.get(path)
        listen = spec.role is memif.Role.SERVER and (sock is None or not sock.listening)
        if sock is None or listen:
            try:
                preflight.check_socket(
                    path, listen, self._dirs.opener(path), self._settings.replace_stale_sockets
                )
            except memif.LocalProtocolError as exc:
                raise _socket_error(exc) from None

    def _check_xconnect(self, name: str, target: str | None) -> None:
        if target is None:
            return
        if target == name:
            raise InvalidArgumentError(
                "xconnect_to", "an interface cannot be cross-connected to itself"
            )
        if target not in self._state.entries:
            raise InvalidArgumentError("xconnect_to", f"interface {target!r} does not exist")

    # -- sockets ----------------------------------------------------------------------------------

    def _socket(self, path: str) -> tuple[memif.Socket, bool]:
        sockets = self._state.sockets
        sock = sockets.get(path)
        if sock is not None:
            return sock, False
        try:
            sock = memif.Socket(
                path,
                app_name=APP_NAME,
                on_handshake_failure=self._count_handshake_failure,
                directory=self._dirs.opener(path),
                replace_stale=self._settings.replace_stale_sockets,
            )
        except memif.LocalProtocolError as exc:
            raise InvalidArgumentError("socket", str(exc)) from None
        except OSError as exc:
            raise os_error(exc) from None
        sockets[path] = sock
        opened = sock
        self._worker.watch(sock.fileno(), lambda: self._poll_socket(opened), reschedule=True)
        return sock, True

    def _poll_socket(self, sock: memif.Socket) -> None:
        """Run the socket's loop once and publish the link changes it reported."""
        events = sock.poll_events(0)
        self._state.generation += 1
        for event in events:
            self._links.apply(sock.interface_for(event), event)
        self._links.note_reasons(sock)

    def _count_handshake_failure(self, failure: memif.HandshakeFailure) -> None:
        self._state.handshake_failures[failure.kind.value] += 1  # the library logged it

    def _close_socket(self, path: str, reason: str) -> None:
        state = self._state
        sock = state.sockets.pop(path)
        self._worker.unwatch(sock.fileno())
        for iface in sock.interfaces:
            entry = state.entries.get(iface.name)
            if entry is not None:
                self._dataplane.unwatch_queues(entry)
        owners: dict[tuple[bool, int | None], memif.Interface] = {
            (iface.is_server, iface.id): iface for iface in sock.interfaces
        }
        sock.close(reason)
        for event in sock.poll_events(0):  # the links it ended (a closed socket runs no loop)
            self._links.apply(owners.get((event.role == "server", event.interface_id)), event)
        self._dirs.prune(state.sockets)

    def _check_bound(self) -> None:
        state = self._state
        state.bound = all(
            sock.listening
            for sock in state.sockets.values()
            if any(iface.is_server for iface in sock.interfaces)
        )
        files = []
        for path, sock in state.sockets.items():
            if sock.listening and not path.startswith("@"):
                with contextlib.suppress(OSError):
                    files.append((path, os.lstat(path).st_ino))
        state.socket_files = tuple(files)

    # -- timers -----------------------------------------------------------------------------------

    def next_deadline(self, now: float) -> float:
        """When a socket next needs a poll (reconnect and handshake deadlines)."""
        due = float("inf")
        for sock in self._state.sockets.values():
            wait = sock.next_timeout()
            if wait is not None:
                due = min(due, now + wait)
        return due

    def poll_due(self) -> None:
        """Poll the sockets whose reconnect or handshake deadline has come."""
        for sock in list(self._state.sockets.values()):
            due = sock.next_timeout()
            if due is not None and due <= 0:
                self._poll_socket(sock)


_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.ENOSPC}


def os_error(exc: OSError) -> MemifdError:
    """A system call failure while creating an interface, as an answer for the client."""
    text = exc.strerror or str(exc)
    if exc.errno in _EXHAUSTED:
        return LimitExceededError(f"out of system resources: {text}")
    return InvalidArgumentError("socket", f"cannot use the socket: {text}")


def _socket_error(exc: memif.LocalProtocolError) -> MemifdError:
    """The library's refusal to open a socket, as the API reports it."""
    if isinstance(exc, memif.PathInUse):
        return AlreadyExistsError(str(exc))
    return InvalidArgumentError("socket", str(exc))


def _in_socket_dir(socket: str) -> bool:
    return not socket.startswith("@") and not os.path.isabs(socket)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)
