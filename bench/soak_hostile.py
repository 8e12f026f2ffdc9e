"""Soak: our interfaces against hostile shared memory, over many seeds and geometries.

``python -m bench.soak_hostile [--seeds 8] [--cases 1000] [--rounds 8]`` runs
the cases of :mod:`tests.reliability.hostile_cases` against our server and our
client for every seed, ring size (2, 8, 64 and 1024 slots) and buffer size (64
and 2048 bytes), then scribbler rounds (another process writing garbage while
traffic flows) for each seed and role. It prints one line per role and a JSON
line; any broken rule stops it with the failing case's assertion.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.reliability.hostile_cases import (  # noqa: E402
    client_cases,
    scribble_rounds,
    server_cases,
)
from tests.reliability.hostile_memory import ClientScene, ServerScene, Tally  # noqa: E402

LOG2_SIZES = (1, 3, 6, 10)
BUFFER_SIZES = (64, 2048)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--cases", type=int, default=1000, help="cases per seed and geometry")
    parser.add_argument("--rounds", type=int, default=8, help="scribbler rounds per seed")
    opts = parser.parse_args(argv)
    tallies = {"server": Tally(), "client": Tally()}
    scribbled = {"server": [0, 0, 0], "client": [0, 0, 0]}  # rounds, writes, packets
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="memif-hostile-", dir="/tmp") as tmp:
        for seed in range(opts.seeds):
            for log2 in LOG2_SIZES:
                for buffer_size in BUFFER_SIZES:
                    rng = random.Random(seed * 1000 + log2 * 10 + buffer_size)
                    server = ServerScene(f"{tmp}/s.sock", rng, log2, buffer_size)
                    try:
                        tallies["server"].add(server_cases(server, opts.cases))
                    finally:
                        server.close()
                    client = ClientScene(f"{tmp}/c.sock", rng, log2, buffer_size)
                    try:
                        tallies["client"].add(client_cases(client, opts.cases))
                    finally:
                        client.close()
            for role, scene_type in (("server", ServerScene), ("client", ClientScene)):
                scene = scene_type(f"{tmp}/{role}.sock", random.Random(seed))
                try:
                    report = scribble_rounds(scene, opts.rounds, 0.3)
                finally:
                    scene.close()
                figures = scribbled[role]
                figures[0] += report.rounds
                figures[1] += report.writes
                figures[2] += report.packets
    seconds = time.monotonic() - started
    for role, tally in tallies.items():
        rounds, writes, packets = scribbled[role]
        print(f"hostile memory vs our {role}: {tally.line()}")
        print(
            f"scribbler vs our {role}: {rounds} rounds, {writes} hostile writes, "
            f"{packets} packets received"
        )
    print(
        json.dumps(
            {
                "soak_hostile": {
                    role: {
                        "cases": t.cases,
                        "packets": t.packets,
                        "drops": t.drops,
                        "reconnects": t.reconnects,
                        "scribbler_rounds": scribbled[role][0],
                        "scribbler_writes": scribbled[role][1],
                    }
                    for role, t in tallies.items()
                },
                "seconds": round(seconds, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
