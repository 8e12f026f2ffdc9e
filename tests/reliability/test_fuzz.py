"""A bounded atheris round over the control protocol must find nothing.

The round runs in a child process (``python -m tests.reliability.fuzz_protocol``)
from the seeds of :mod:`tests.reliability.fuzz_targets`; a longer round is
``python -m tests.reliability.fuzz_protocol --seconds 300``.
"""

from __future__ import annotations

from tests.reliability import fuzz_targets
from tests.reliability.fuzz_protocol import run_round

CI_RUNS = 100_000


def test_seeds_complete_every_handshake_they_describe() -> None:
    """The seeds reach CONNECTED in both machines, so mutation starts deep inside them."""
    before = fuzz_targets.TALLY.handshakes_done
    seeds = fuzz_targets.seeds()
    for seed in seeds:
        fuzz_targets.one_input(seed)
    complete = sum(1 for s in seeds if s[0] in (1, 2)) - 1  # one client seed offers no memory
    assert fuzz_targets.TALLY.handshakes_done - before == complete


def test_bounded_atheris_round_finds_no_crash() -> None:
    report = run_round(runs=CI_RUNS, timeout=240)
    print(report.line())
    assert report.crashes == 0, report.artifacts
    assert report.returncode == 0
    assert report.executions == CI_RUNS
    assert report.coverage > 0
