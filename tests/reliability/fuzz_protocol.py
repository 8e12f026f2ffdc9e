"""Coverage-guided fuzzing of the memif control protocol with atheris (libFuzzer).

``python -m tests.reliability.fuzz_protocol --seconds 300`` runs a round in a
child process, over the targets of :mod:`tests.reliability.fuzz_targets`
starting from their seeds, and prints one summary line: executions, seconds,
crashes, coverage. ``--runs N`` bounds the round by executions instead, and
``--artifacts DIR`` keeps crashing inputs (default: a temporary directory,
reported on a crash). ``--worker`` is the child itself; arguments after ``--``
go to libFuzzer unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_COV = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")


@dataclass
class FuzzReport:
    """What one round did."""

    executions: int
    seconds: float
    crashes: int
    coverage: int
    features: int
    corpus: int
    returncode: int
    artifacts: list[str]

    def line(self) -> str:
        """A one-line human summary."""
        return (
            f"fuzz: {self.executions} executions in {self.seconds:.0f} s, "
            f"{self.crashes} crashes, coverage {self.coverage} edges / {self.features} "
            f"features, corpus {self.corpus}"
        )


def _worker(libfuzzer_args: list[str]) -> None:
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["memif"]):
        import memif  # noqa: F401

    from tests.reliability import fuzz_targets

    atheris.Setup([sys.argv[0], *libfuzzer_args], fuzz_targets.one_input)
    atheris.Fuzz()


def run_round(
    *,
    runs: int | None = None,
    seconds: int | None = None,
    artifacts: Path | None = None,
    extra: list[str] | None = None,
    timeout: float | None = None,
) -> FuzzReport:
    """Run one fuzzing round in a child process and parse its result."""
    from tests.reliability.fuzz_targets import seeds

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="memif-fuzz-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for number, seed in enumerate(seeds()):
            (corpus / f"seed-{number}").write_bytes(seed)
        art = artifacts or Path(tmp) / "artifacts"
        art.mkdir(parents=True, exist_ok=True)
        args = [f"-artifact_prefix={art}/", "-print_final_stats=1", *(extra or [])]
        if runs is not None:
            args.append(f"-runs={runs}")
        if seconds is not None:
            args.append(f"-max_total_time={seconds}")
        cmd = [
            sys.executable,
            "-m",
            "tests.reliability.fuzz_protocol",
            "--worker",
            "--",
            *args,
            str(corpus),
        ]
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": f"{root / 'service'}{os.pathsep}{root}"},
        )
        elapsed = time.monotonic() - started
        output = proc.stdout + proc.stderr
        crashes = sorted(str(p) for p in art.iterdir() if p.name.startswith("crash-"))
        if crashes and artifacts is None:
            print(output[-4000:], file=sys.stderr)
            for path in crashes:
                print(f"crashing input {path}: {Path(path).read_bytes().hex()}", file=sys.stderr)
        done = _DONE.findall(output)
        cov = _COV.findall(output)
        execs = int(done[-1][0]) if done else _last_count(output)
        if proc.returncode != 0 and not crashes:
            print(output[-4000:], file=sys.stderr)
        return FuzzReport(
            executions=execs,
            seconds=elapsed,
            crashes=len(crashes) or (1 if proc.returncode != 0 else 0),
            coverage=int(cov[-1][0]) if cov else 0,
            features=int(cov[-1][1]) if cov else 0,
            corpus=int(cov[-1][2]) if cov else 0,
            returncode=proc.returncode,
            artifacts=crashes,
        )


def _last_count(output: str) -> int:
    counts = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: run a round and print its summary (exit 1 on any crash)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=int, help="stop after this many seconds")
    parser.add_argument("--runs", type=int, help="stop after this many executions")
    parser.add_argument("--artifacts", type=Path, help="directory for crashing inputs")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON too")
    opts = parser.parse_args(argv)
    if opts.worker:
        _worker(passthrough)
        return 0
    if opts.seconds is None and opts.runs is None:
        opts.seconds = 60
    report = run_round(
        runs=opts.runs, seconds=opts.seconds, artifacts=opts.artifacts, extra=passthrough
    )
    print(report.line())
    if opts.json:
        print(json.dumps(asdict(report)))
    return 1 if report.crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
