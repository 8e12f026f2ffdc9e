"""SIGHUP reloads the interfaces of the config file: the plan (pure) and ``memifd serve``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from memifd.cli.reload import plan
from memifd.core.models import InterfaceSpec

from tests.memifd.rest_support import Daemon, memif_clients, wait_for


def specs(*items: dict[str, Any]) -> list[InterfaceSpec]:
    return [InterfaceSpec.model_validate(item) for item in items]


def test_plan_patches_what_it_can_and_recreates_the_rest() -> None:
    before = specs(
        {"name": "same"},
        {"name": "patched", "id": 1},
        {"name": "moved", "id": 2},
        {"name": "gone", "id": 3},
        {"name": "deleted-by-api", "id": 4},
    )
    after = specs(
        {"name": "same"},
        {"name": "patched", "id": 1, "action": "echo", "admin_up": False},
        {"name": "moved", "id": 2, "socket": "other.sock"},
        {"name": "new", "id": 5},
        {"name": "deleted-by-api", "id": 4},
        {"name": "made-by-api", "id": 6},
    )
    existing = {"same", "patched", "moved", "gone", "made-by-api"}
    steps = plan(before, after, existing)
    assert steps.delete == ["gone"]
    assert [s.name for s in steps.update] == ["patched"]
    assert [s.name for s in steps.recreate] == ["moved"]
    assert [s.name for s in steps.create] == ["new", "deleted-by-api"]
    assert steps.skip == ["made-by-api"]
    assert plan(after, after, existing | {"new", "deleted-by-api"}).empty


def write(path: Path, interfaces: list[dict[str, Any]], **settings: Any) -> None:
    path.write_text(yaml.safe_dump({"log_format": "json", **settings, "interfaces": interfaces}))


def records(daemon: Daemon) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]


def hangup(daemon: Daemon, message: str) -> dict[str, Any]:
    """SIGHUP, then the first log record with ``message`` that was not there before."""
    seen = len(records(daemon))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        found[:] = [r for r in records(daemon)[seen:] if r["message"].startswith(message)]
        return bool(found)

    assert wait_for(arrived, timeout=10), daemon.log()
    return found[0]


def test_sighup_reloads_the_declared_interfaces(sock_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "memifd.yaml"
    write(
        config,
        [
            {"name": "a", "socket": "a.sock", "action": "echo"},
            {"name": "b", "socket": "b.sock", "action": "xconnect", "xconnect_to": "a"},
            {"name": "c", "socket": "c.sock"},
        ],
    )
    daemon = Daemon(sock_dir, args=["--config", str(config)]).start()
    try:
        with daemon.client() as api, memif_clients(str(sock_dir / "b.sock"), [0]) as (peer,):
            made = api.post("/v1/interfaces", json={"name": "api0", "socket": "api.sock"})
            assert made.is_success
            assert peer.wait_connected(5)
            write(
                config,
                [
                    {
                        "name": "a",
                        "socket": "a.sock",
                        "memory": {"num_queue_pairs": 2},
                    },  # recreated
                    {"name": "b", "socket": "b.sock", "action": "echo"},  # patched: link stays up
                    {"name": "d", "socket": "d.sock", "action": "xconnect", "xconnect_to": "a"},
                    {"name": "api0", "socket": "elsewhere.sock"},  # the API's: left alone
                ],
            )
            done = hangup(daemon, "reloaded")
            assert (done["deleted"], done["recreated"], done["added"], done["updated"]) == (
                ["c"],
                ["a"],
                ["d"],
                ["b"],
            )
            assert done["failed"] == ["api0"]
            listed = {i["name"]: i for i in api.get("/v1/interfaces").json()}
            assert sorted(listed) == ["a", "api0", "b", "d"]
            assert listed["a"]["memory"]["num_queue_pairs"] == 2
            assert (listed["b"]["action"], listed["b"]["state"]) == ("echo", "connected")
            assert (listed["d"]["action"], listed["d"]["xconnect_to"]) == ("xconnect", "a")
            assert listed["api0"]["socket"] == "api.sock"
            assert not (sock_dir / "c.sock").exists() and peer.is_connected

            config.write_text("interfaces:\n  - name: a\n    memory: {log2_ring_size: 15}\n")
            refused = hangup(daemon, "reload refused")
            assert "interfaces.0.memory.log2_ring_size" in refused["message"]
            assert sorted(i["name"] for i in api.get("/v1/interfaces").json()) == sorted(listed)

            write(config, [{"name": "b", "socket": "b.sock"}], root_path="/memifd")
            hangup(daemon, "reloaded")
            warned = [r["message"] for r in records(daemon) if r["message"].startswith("reload:")]
            assert "reload: root_path changed; restart memifd to apply it" in warned
            names = sorted(i["name"] for i in api.get("/v1/interfaces").json())
            assert names == ["api0", "b"]
        assert daemon.terminate()[0] == 0
    finally:
        daemon.kill()


def test_sighup_without_a_config_file_is_logged_and_ignored(sock_dir: Path) -> None:
    daemon = Daemon(sock_dir, args=["--log-format", "json"]).start()
    try:
        with daemon.client() as api:
            assert api.post("/v1/interfaces", json={"name": "x"}).is_success
            hangup(daemon, "SIGHUP ignored: there is no config file")
            time.sleep(0.2)  # a daemon that the ignored SIGHUP made exit would be gone by now
            assert daemon.proc is not None and daemon.proc.poll() is None
            assert [i["name"] for i in api.get("/v1/interfaces").json()] == ["x"]
            assert (sock_dir / "memif.sock").exists()
        assert daemon.terminate()[0] == 0
    finally:
        daemon.kill()
