"""SIGHUP: read the config file again and bring the declared interfaces in line with it.

Only interfaces the config file declares are touched; those created through the API
stay as they are. :func:`plan` (pure) compares the interfaces declared before with
those declared now; :class:`Reloader` carries the plan out through the manager's
public calls: it deletes what the file no longer declares, patches what can change
in place (rx_mode, action, xconnect_to, admin_up), recreates what cannot (socket,
id, role, secret, mode, memory) and creates what is new. Settings other than the
interfaces need a restart; a reload says so in the log. A file that does not load
changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from memifd.core.errors import MemifdError
from memifd.core.manager import Manager
from memifd.core.models import Action, InterfacePatch, InterfaceSpec
from memifd.core.settings import Settings

log = logging.getLogger("memifd.reload")

PATCHABLE = frozenset(InterfacePatch.model_fields)
RELOAD_REASON = "config reloaded"


@dataclass
class Plan:
    """What a reload does, in this order: delete, recreate, create, update."""

    delete: list[str] = field(default_factory=list)
    recreate: list[InterfaceSpec] = field(default_factory=list)
    create: list[InterfaceSpec] = field(default_factory=list)
    update: list[InterfaceSpec] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)  # names taken by API-created interfaces

    @property
    def empty(self) -> bool:
        return not (self.delete or self.recreate or self.create or self.update or self.skip)


def plan(previous: list[InterfaceSpec], wanted: list[InterfaceSpec], existing: set[str]) -> Plan:
    """The steps from the interfaces declared before (``previous``) to those declared
    now (``wanted``), given the names that exist right now."""
    before = {spec.name: spec for spec in previous}
    now = {spec.name for spec in wanted}
    steps = Plan(delete=[name for name in before if name not in now and name in existing])
    for spec in wanted:
        old = before.get(spec.name)
        if spec.name not in existing:
            steps.create.append(spec)
        elif old is None:
            steps.skip.append(spec.name)
        elif spec != old:
            changed = {
                key for key in InterfaceSpec.model_fields if getattr(spec, key) != getattr(old, key)
            }
            (steps.update if changed <= PATCHABLE else steps.recreate).append(spec)
    return steps


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """Settings besides the interfaces whose values differ (they need a restart)."""
    return [
        name
        for name in Settings.model_fields
        if name != "interfaces" and getattr(old, name) != getattr(new, name)
    ]


class Reloader:
    """Reloads on request; requests never wait and reloads never overlap."""

    def __init__(self, manager: Manager, load: Callable[[], Settings]) -> None:
        self._manager = manager
        self._load = load
        self._lock = threading.Lock()

    def request(self) -> None:
        """Reload in a thread of its own (safe to call from a signal handler)."""
        threading.Thread(target=self.reload, name="memifd-reload", daemon=True).start()

    def reload(self) -> Plan | None:
        """Reload now; returns what was planned, or None when the file did not load."""
        with self._lock:
            current = self._manager.settings
            log.info("reloading the config file", extra={"config": str(current.config)})
            try:
                new = self._load()
            except ValidationError as exc:
                errors = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: "
                    f"{e['msg'].removeprefix('Value error, ')}".lstrip(": ")
                    for e in exc.errors()
                )
                log.error("reload refused, nothing changed: %s", errors)
                return None
            except ValueError as exc:
                log.error("reload refused, nothing changed: %s", exc)
                return None
            restart = changed_settings(current, new)
            if restart:
                log.warning(
                    "reload: %s changed; restart memifd to apply %s",
                    ", ".join(restart),
                    "it" if len(restart) == 1 else "them",
                )
            existing = {status.name for status in self._manager.list_interfaces()}
            steps = plan(list(current.interfaces), list(new.interfaces), existing)
            failed = self._apply(steps)
            applied = [spec for spec in new.interfaces if spec.name not in failed]
            kept = [spec for spec in current.interfaces if spec.name in failed]
            self._manager.settings = current.model_copy(update={"interfaces": applied + kept})
            log.info(
                "reloaded",
                extra={
                    "deleted": steps.delete,
                    "recreated": [s.name for s in steps.recreate],
                    "added": [s.name for s in steps.create],
                    "updated": [s.name for s in steps.update],
                    "failed": sorted(failed),
                },
            )
            return steps

    def _apply(self, steps: Plan) -> set[str]:
        """Carry ``steps`` out; returns the names whose step failed (each is logged)."""
        manager = self._manager
        failed: set[str] = set()

        def attempt(name: str, call: Callable[..., object], *args: object) -> None:
            try:
                call(*args)
            except MemifdError as exc:
                log.error("reload: %s: %s", name, exc.message, extra={"interface": name})
                failed.add(name)

        for name in steps.skip:
            log.warning(
                "reload: %s exists and was created through the API; its config entry is "
                "not applied",
                name,
                extra={"interface": name},
            )
            failed.add(name)
        leaving = set(steps.delete)
        targets = {status.name: status.xconnect_to for status in manager.list_interfaces()}
        for name in steps.delete:
            # references from interfaces that leave too do not hold it back
            alone = all(user in leaving for user, target in targets.items() if target == name)
            attempt(name, manager.delete_interface, name, alone)
        for spec in steps.recreate:  # back under the same name: references to it stay valid
            attempt(spec.name, manager.delete_interface, spec.name, True)
        created = [spec for spec in [*steps.recreate, *steps.create] if spec.name not in failed]
        for spec in created:  # cross-connections once every target exists
            first = spec.model_copy(update={"action": Action.DROP, "xconnect_to": None})
            attempt(spec.name, manager.create_interface, first)
        linked = [s for s in created if s.action is Action.XCONNECT or s.xconnect_to]
        for spec in [*linked, *steps.update]:
            if spec.name not in failed:
                patch = InterfacePatch(
                    rx_mode=spec.rx_mode,
                    action=spec.action,
                    xconnect_to=spec.xconnect_to,
                    admin_up=spec.admin_up,
                )
                attempt(spec.name, manager.update_interface, spec.name, patch)
        return failed
