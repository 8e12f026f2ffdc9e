"""What the container image would run, without a container engine.

The test follows the Dockerfile: it gathers the build stage's COPY sources through
.dockerignore, runs the build stage's ``pip wheel`` command, installs the wheel the
way the final stage does (into a fresh virtualenv that reuses the installed
dependencies), then runs ENTRYPOINT + CMD with the final stage's ENV. Paths of the
image are re-rooted under a temporary directory, addresses moved to 127.0.0.1 on
free ports; the token file stays, so the API behaves as in a pod. The interface
config is the one the Helm chart renders for its sidecar-app values.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.conftest import CHART, DOCKERFILE, ROOT
from tests.deploy.dockerfile import Dockerfile, DockerIgnore, parse
from tests.deploy.helm import Helm, one
from tests.waiting import wait_until

TOKEN = "image-test-token-7f3a"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def outside_env() -> dict[str, str]:
    """This process's environment without what would lead Python to the work tree."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not key.startswith("MEMIFD_")
    }


def _rooted(root: Path, image_path: str) -> Path:
    return root / image_path.lstrip("/")


def build_context(dockerfile: Dockerfile, target: Path) -> Path:
    """The build stage's file system after its COPYs: returns its WORKDIR."""
    build = dockerfile.stage("build")
    ignore = DockerIgnore.load(ROOT / ".dockerignore")
    workdir = _rooted(target, build.last("WORKDIR").args)
    workdir.mkdir(parents=True)
    for item in build.all("COPY"):
        _, words = item.split()
        *sources, dest = words
        dest_path = workdir / dest
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"Dockerfile:{item.line}: COPY source {source} is missing"
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if ignore.ignored(relative):
                    continue
                if path.is_file():
                    out = dest_path / file.name if dest.endswith("/") else dest_path
                else:
                    out = dest_path / file.relative_to(path)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, out)
    return workdir


def image_command(words: list[str], python: Path, root: Path) -> list[str]:
    """A RUN command of the Dockerfile for this machine: pip via ``python``, paths re-rooted."""
    command: list[str] = []
    for word in words:
        if word == "pip":
            command += [str(python), "-m", "pip"]
        elif word.startswith("/"):
            matches = sorted(glob.glob(str(_rooted(root, word))))
            command += matches or [str(_rooted(root, word))]
        else:
            command.append(word)
    return command


def fresh_venv(path: Path) -> Path:
    """A virtualenv that sees this environment's packages (pip and memifd's dependencies).

    A ``.pth`` line adds their directories to ``sys.path`` after the venv's own; unlike
    ``--system-site-packages`` this also works when the tests themselves run in a venv, and
    the ``.pth`` files in those directories (such as an editable memifd) stay inactive.
    """
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (Path(site) / "outer-packages.pth").write_text("\n".join(sorted(ours)) + "\n")
    return path


@dataclass
class InstalledImage:
    """The image's software in a virtualenv, and the Dockerfile it came from."""

    dockerfile: Dockerfile
    root: Path
    venv: Path
    build_output: str  # what the wheel build printed
    wheel: Path


@pytest.fixture(scope="module")
def image() -> Iterator[InstalledImage]:
    dockerfile = parse(DOCKERFILE)
    root = Path(tempfile.mkdtemp(prefix="img-", dir="/tmp"))  # short: socket paths fit
    try:
        workdir = build_context(dockerfile, root)
        _, wheel_words = dockerfile.stage("build").last("RUN").split()
        # Offline: the installed setuptools builds the wheel instead of a fresh download.
        build = [*image_command(wheel_words, Path(sys.executable), root), "--no-build-isolation"]
        built = subprocess.run(
            build,
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
            env=outside_env(),
        )
        (wheel,) = (root / "wheels").glob("memifd-*.whl")
        env_dir = fresh_venv(root / "venv")
        install = next(i for i in dockerfile.final.all("RUN") if "pip install" in i.args)
        _, install_words = install.split()
        # --no-index: the wheel's dependencies must all be satisfied by what is installed.
        command = image_command(install_words, env_dir / "bin" / "python", root)
        command.append("--no-index")
        subprocess.run(command, check=True, capture_output=True, timeout=300, env=outside_env())
        yield InstalledImage(
            dockerfile=dockerfile,
            root=root,
            venv=env_dir,
            build_output=built.stdout + built.stderr,
            wheel=wheel,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_venv_runs_the_wheel_not_the_work_tree(image: InstalledImage) -> None:
    out = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import memifd; print(memifd.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=image.root,
        env=outside_env(),
    ).stdout.strip()
    assert out.startswith(str(image.venv)), out
    files = {p.relative_to(Path(out).parent).as_posix() for p in Path(out).parent.rglob("*.py")}
    sources = {
        p.relative_to(ROOT / "service" / "memifd").as_posix()
        for p in (ROOT / "service" / "memifd").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources <= files, sorted(sources - files)


def test_the_wheel_builds_without_warnings(image: InstalledImage) -> None:
    assert "Created wheel for memifd" in image.build_output
    assert "warning" not in image.build_output.lower(), image.build_output


def test_the_wheel_and_the_image_ship_the_proto_file(image: InstalledImage) -> None:
    source = (ROOT / "proto" / "memif" / "v1" / "memif.proto").read_bytes()
    with zipfile.ZipFile(image.wheel) as wheel:
        assert wheel.read("memifd/proto/memif/v1/memif.proto") == source
    found = subprocess.run(
        [
            str(image.venv / "bin" / "python"),
            "-c",
            "import importlib.resources as r; "
            "print(r.files('memifd.proto') / 'memif' / 'v1' / 'memif.proto')",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=image.root,
        env=outside_env(),
    ).stdout.strip()
    assert found.startswith(str(image.venv)) and Path(found).read_bytes() == source


@dataclass
class Running:
    """memifd started as the image would start it."""

    proc: subprocess.Popen[str]
    base: str
    socket_dir: Path
    config: dict[str, object]


@pytest.fixture
def running(image: InstalledImage, helm: Helm) -> Iterator[Running]:
    final = image.dockerfile.final
    env = outside_env()
    for key, value in final.env().items():
        env[key] = str(_rooted(image.root, value)) if value.startswith("/") else value
    http_port, grpc_port = _free_port(), _free_port()
    env["MEMIFD_HTTP_ADDR"] = re.sub(
        r"^0\.0\.0\.0:\d+$", f"127.0.0.1:{http_port}", final.env()["MEMIFD_HTTP_ADDR"]
    )
    env["MEMIFD_GRPC_ADDR"] = re.sub(
        r"^0\.0\.0\.0:\d+$", f"127.0.0.1:{grpc_port}", final.env()["MEMIFD_GRPC_ADDR"]
    )
    for volume in final.last("VOLUME").exec_form():
        _rooted(image.root, volume).mkdir(parents=True, exist_ok=True)
    token_file = Path(env["MEMIFD_TOKEN_FILE"])
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN + "\n")
    # The interface config as the chart renders it (MEMIFD_CONFIG is set by the chart).
    manifests = helm.template(CHART, [CHART / "ci" / "sidecar-app-values.yaml"])
    config_text = next(
        doc["data"]["config.yaml"]
        for doc in manifests
        if doc["kind"] == "ConfigMap" and "config.yaml" in doc.get("data", {})
    )
    config_path = image.root / "etc" / "memifd" / "config.yaml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(config_text)
    env["MEMIFD_CONFIG"] = str(config_path)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert any(var["name"] == "MEMIFD_CONFIG" for c in pod["initContainers"] for var in c["env"])
    entry = final.last("ENTRYPOINT").exec_form()
    command = [str(image.venv / "bin" / entry[0]), *entry[1:], *final.last("CMD").exec_form()]
    log = (image.root / "memifd.log").open("w+")
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=image.root,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield Running(
            proc=proc,
            base=f"http://127.0.0.1:{http_port}",
            socket_dir=Path(env["MEMIFD_SOCKET_DIR"]),
            config=yaml.safe_load(config_text),
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        sys.stdout.write(log.read())  # shown by pytest when the test failed
        log.close()
        config_path.unlink()
        config_path.parent.rmdir()


def wait_ready(running: Running) -> None:
    def ready() -> bool:
        assert running.proc.poll() is None, f"memifd exited with {running.proc.returncode}"
        try:
            return httpx.get(running.base + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, START_TIMEOUT, 0.1, "memifd in the image to be ready")


def test_image_serves_health_api_and_metrics_then_stops_on_sigterm(running: Running) -> None:
    wait_ready(running)
    assert httpx.get(running.base + "/healthz", timeout=5).status_code == 200
    assert httpx.get(running.base + "/readyz", timeout=5).status_code == 200
    # The token file of the image's MEMIFD_TOKEN_FILE guards the API.
    assert httpx.get(running.base + "/v1/interfaces", timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx.get(running.base + "/v1/interfaces", headers=auth, timeout=5)
    assert listed.status_code == 200
    declared = running.config["interfaces"]
    assert isinstance(declared, list)
    assert [i["name"] for i in listed.json()] == [i["name"] for i in declared]
    for got, want in zip(listed.json(), declared, strict=True):
        assert {key: got[key] for key in want} == want
    assert (running.socket_dir / declared[0]["socket"]).is_socket()
    metrics = httpx.get(running.base + "/metrics", headers=auth, timeout=5)
    assert metrics.status_code == 200
    check_dashboard_metrics(metrics.text)

    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=STOP_TIMEOUT) == 0
    assert not [p for p in running.socket_dir.iterdir() if p.is_socket()]


def check_dashboard_metrics(exposition: str) -> None:
    """Every series and label the Grafana dashboard queries is one memifd exports."""
    exported: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ", line)
        if match and not line.startswith("#"):
            labels = set(re.findall(r'(\w+)="', match.group(2) or ""))
            exported.setdefault(match.group(1), set()).update(labels)
    board = (CHART / "dashboards" / "memifd.json").read_text()
    scrape_labels = {"namespace", "pod"}  # added by Prometheus from the scrape target
    for expr in re.findall(r'"expr": "(.*)"', board):
        expr = expr.replace('\\"', '"')
        for name, selector in re.findall(r"(memifd_\w+)\{([^}]*)\}", expr):
            assert name in exported, f"dashboard queries {name}, memifd exports {sorted(exported)}"
            used = set(re.findall(r"(\w+)=~?\"", selector)) - scrape_labels
            assert used <= exported[name], (name, used)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {label.strip() for label in group.split(",")} - scrape_labels <= set().union(
                *exported.values()
            )
