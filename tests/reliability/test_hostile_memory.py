"""Our interfaces against a peer that writes garbage into the shared memory.

The cases are in :mod:`tests.reliability.hostile_cases`: random descriptors,
counters and bytes written by a raw peer that owns the other end of the
memory, each checked against the protocol's rules, then a scribbler process
attacking while traffic flows. The number of cases tried is printed; a longer
run over more seeds and ring sizes is ``python -m bench.soak_hostile``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.reliability.hostile_cases import client_cases, scribble_rounds, server_cases
from tests.reliability.hostile_memory import ClientScene, ServerScene

CASES = 1500
ROUNDS = 8
ROUND_SECONDS = 0.3
SEED = 20240


def test_server_survives_hostile_client_memory(sock_dir: Path) -> None:
    scene = ServerScene(str(sock_dir / "victim.sock"), random.Random(SEED))
    try:
        tally = server_cases(scene, CASES)
        print(f"\nhostile memory vs our server: {tally.line()}")
        assert tally.cases == CASES
        assert tally.packets > 0 and tally.drops > 0 and tally.reconnects > 0
        assert scene.victim.connect_count == tally.reconnects + 1
    finally:
        scene.close()


def test_client_survives_hostile_server_memory(sock_dir: Path) -> None:
    scene = ClientScene(str(sock_dir / "attacker.sock"), random.Random(SEED + 1))
    try:
        tally = client_cases(scene, CASES)
        print(f"\nhostile memory vs our client: {tally.line()}")
        assert tally.cases == CASES
        assert tally.packets > 0 and tally.drops > 0 and tally.reconnects > 0
        assert scene.victim.connect_count == tally.reconnects + 1
    finally:
        scene.close()


@pytest.mark.parametrize("role", ["server", "client"])
def test_victim_survives_a_concurrent_scribbler(sock_dir: Path, role: str) -> None:
    rng = random.Random(SEED + 2)
    scene: ServerScene | ClientScene
    if role == "server":
        scene = ServerScene(str(sock_dir / "victim.sock"), rng)
    else:
        scene = ClientScene(str(sock_dir / "attacker.sock"), rng)
    try:
        report = scribble_rounds(scene, ROUNDS, ROUND_SECONDS)
        stats = scene.victim.stats()
        bad = stats["rx"]["bad_descriptors"] + stats["tx"]["bad_descriptors"]
        print(
            f"\nscribbler vs our {role}: {report.rounds} rounds, {report.writes} hostile writes, "
            f"{report.packets} packets received, {stats['rx']['drops']} dropped, {bad} bad "
            f"descriptors, {report.victim_drops} links dropped by the victim"
        )
        assert report.writes > 0
        assert scene.victim.connect_count == ROUNDS + 1
    finally:
        scene.close()
