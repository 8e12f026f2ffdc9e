"""The fast paths against a peer that keeps each slot's buffer and lies in one field.

The cases are in :mod:`tests.reliability.hostile_fastpath`; each is checked
against the reference reader and writer, so a fast path that trusted a field
it did not check would deliver, drop or write something the reference does not.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.hostile_fastpath import client_fastpath_cases, server_fastpath_cases
from tests.reliability.hostile_memory import ClientScene, ServerScene

CASES = 600
SEED = 31337


def test_server_fast_paths_against_a_lying_client(sock_dir: Path) -> None:
    scene = ServerScene(str(sock_dir / "victim.sock"), random.Random(SEED))
    try:
        tally = server_fastpath_cases(scene, CASES)
        print(f"\nfixed-slot lies vs our server: {tally.line()}")
        assert tally.cases == CASES
        assert tally.packets > 0 and tally.drops > 0 and tally.reconnects > 0
        assert scene.victim.connect_count == tally.reconnects + 1
    finally:
        scene.close()


def test_client_fast_paths_against_a_lying_server(sock_dir: Path) -> None:
    scene = ClientScene(str(sock_dir / "attacker.sock"), random.Random(SEED + 1))
    try:
        tally = client_fastpath_cases(scene, CASES)
        print(f"\nfixed-slot lies vs our client: {tally.line()}")
        assert tally.cases == CASES
        assert tally.packets > 0 and tally.drops > 0
        assert scene.victim.connect_count == tally.reconnects + 1
    finally:
        scene.close()
