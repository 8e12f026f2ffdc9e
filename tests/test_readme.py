"""The README's claims, executed: every fenced block is run by a test (listed in
:data:`RUN_BY`), here or next to the code it is about."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import memif
from memif.__main__ import build_parser

from tests.memif.responder_process import ResponderProcess
from tests.memifd.rest_support import Daemon
from tests.readme import README, block_after, blocks
from tests.waiting import wait_until

ROOT = README.parent

# The first line of every fenced block of README.md, and the tests that run it. A block
# that needs what no test machine has (VPP, a container engine, a cluster) is run as far
# as it goes here; what is left is named after "needs".
RUN_BY: dict[str, list[str]] = {
    "make run    # install into .venv and start memifd with its embedded defaults": [
        "tests/test_readme.py::test_readme_opens_with_two_setup_commands",
    ],
    "import memif": [
        "tests/test_readme.py::test_echo_example_is_short_and_echoes",
        "tests/test_readme.py::test_echo_example_says_why_it_has_no_link",
        "tests/interop/test_readme_testpmd.py::"
        "test_library_example_echoes_testpmd_traffic_on_a_fresh_machine",
    ],
    "mkdir -p /run/memif": [
        "tests/interop/test_readme_testpmd.py::"
        "test_library_example_echoes_testpmd_traffic_on_a_fresh_machine",
    ],
    "args = memif.Arguments(": ["tests/test_readme.py::test_arguments_example"],
    "python -m memif responder --socket PATH --role server|client [--id N] [--secret S]": [
        "tests/test_readme.py::test_responder_synopsis_is_the_parsers",
    ],
    "python -m memif responder --socket /run/memif/responder.sock --role server --ip 192.168.1.1": [
        "tests/test_readme.py::test_vpp_examples_responder_lines",
        "needs VPP: the vppctl lines",
    ],
    "vppctl create interface memif id 0 master": [
        "tests/test_readme.py::test_vpp_examples_responder_lines",
        "needs VPP: the vppctl lines",
    ],
    "python -m memif responder --socket /tmp/memif/responder.sock --role server": [
        "tests/interop/test_readme_testpmd.py::test_responder_example_with_testpmd",
    ],
    "socket_dir: /run/memif": ["tests/test_readme.py::test_config_file_example_loads"],
    **{
        first: ["tests/memifd/test_ctl.py::test_readme_table_and_watch_output_is_memifctls"]
        for first in (
            "NAME    ROLE    ID  STATE      ADMIN  MODE      QUEUES  RX  TX  REASON",
            "NAME    ROLE    ID  STATE         ADMIN  MODE      QUEUES  RX  TX  REASON",
        )
    },
    **{
        first: ["tests/memifd/test_rest_readme.py::test_readme_examples"]
        for first in (
            "curl -s -X POST http://127.0.0.1:8080/v1/interfaces \\",
            "curl -s http://127.0.0.1:8080/v1/interfaces",
            "curl -s -X POST 'http://127.0.0.1:8080/v1/interfaces?dry_run=true' \\",
            "curl -s -o vnf0.pcap "
            "'http://127.0.0.1:8080/v1/interfaces/vnf0/capture?count=100&duration=30'",
            "curl -s -X POST http://127.0.0.1:8080/v1/interfaces/vnf0/packets \\",
            "curl -sN http://127.0.0.1:8080/v1/events",
            "curl -s -X PATCH http://127.0.0.1:8080/v1/interfaces/vnf0 \\",
        )
    },
    '{"type": "about:blank", "title": "Unprocessable Entity", "status": 422,': [
        "tests/memifd/test_rest_readme.py::test_readme_examples",
    ],
    'curl -s -H "Authorization: Bearer $(cat /etc/memifd/token)" \\': [
        "tests/memifd/test_rest_readme.py::test_readme_token_example",
    ],
    "memifctl create memif0 --socket memif.sock --role server --action echo": [
        "tests/memifd/test_ctl.py::test_readme_examples_run",
    ],
    "grpcurl -plaintext 127.0.0.1:50051 list": [
        "tests/memifd/test_grpc_readme.py::test_grpcurl_examples",
    ],
    "import grpc": ["tests/memifd/test_grpc_readme.py::test_python_example"],
    "docker build -t registry.example.org/memifd:0.1.0 .": [
        "tests/deploy/test_image.py::test_image_serves_health_api_and_metrics_then_stops_on_sigterm",
        "needs a container engine and a registry: the build is followed step by step instead",
    ],
    "# my-values.yaml": [
        "tests/deploy/test_chart.py::test_readme_values_install_memifd_beside_the_app",
    ],
    "helm install net helm/memifd --namespace net --create-namespace -f my-values.yaml": [
        "tests/deploy/test_chart.py::test_readme_values_install_memifd_beside_the_app",
        "needs a cluster: rendered with helm template",
    ],
    "export MEMIFD_TOKEN=$(kubectl -n net get secret net-memifd-token -o "
    "jsonpath='{.data.token}' | base64 -d)": [
        "tests/test_readme.py::test_reach_the_api_from_your_machine",
        "needs a cluster: the kubectl lines",
    ],
    "$ memifd serve --log-format json --access-log --log-level debug": [
        "tests/memifd/test_cli.py::test_access_log_has_method_path_status_duration_and_request_id",
        "tests/memifd/test_cli.py::test_grpc_calls_are_logged_at_debug",
    ],
    "$ memifd serve --log-format text --http-addr 0.0.0.0:8080 --grpc-addr 0.0.0.0:50051 "
    "--token-file token": [
        "tests/memifd/test_cli.py::test_bound_to_every_address_the_banner_shows_a_reachable_url",
    ],
    "python -c \"import importlib.resources as r; print(r.files('memifd.proto') / "
    "'memif/v1/memif.proto')\"": [
        "tests/deploy/test_image.py::test_the_wheel_and_the_image_ship_the_proto_file",
    ],
    "docker build -t memifd:0.1.0 .": [
        "tests/deploy/test_dockerfile.py::test_readme_docker_run_example_fits_the_image",
        "needs a container engine: the image is followed step by step instead",
    ],
    "curl -fsSL -o get_helm.sh "
    "https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3": [
        "needs the internet: the tests take helm from a PyPI package instead",
    ],
    "$ MEMIFD_TOKEN=s3cret python -m memifd.cli.check": [
        "tests/deploy/test_chart.py::test_helm_test_pod_checks_rest_and_grpc_through_the_service",
    ],
    'kubectl -n net create secret generic memifd-token --from-literal=token="$(openssl rand -hex '
    '20)"': [
        "tests/deploy/test_chart.py::test_generated_tokens_differ_and_a_given_token_is_kept",
        "needs a cluster: the kubectl line",
    ],
    "dataPlaneSocketDir:": [
        "tests/deploy/test_chart.py::test_readme_data_plane_values_render",
    ],
    "curl -s -o capture.pcapng 'http://127.0.0.1:8080/v1/capture?interface="
    "vnf0&interface=vnf1&duration=10'": [
        "tests/memifd/test_readme_captures.py::test_curl_and_tshark_examples",
    ],
    "vnf0\t0x00000001\t1796407469.376376372": [
        "tests/memifd/test_readme_captures.py::test_curl_and_tshark_examples",
    ],
    "$ capinfos -I capture.pcapng | grep -E 'Name|Description|Encapsulation|precision'": [
        "tests/memifd/test_readme_captures.py::test_curl_and_tshark_examples",
    ],
    "curl -s -o vnf0.pcapng 'http://127.0.0.1:8080/v1/interfaces/vnf0/captu"
    "re?count=200000&format=pcapng'": [
        "tests/memifd/test_readme_captures.py::test_curl_and_tshark_examples",
    ],
    "36097\t98368\t98368 packets of vnf0 dropped before this one: the capture"
    " reader was too slow": [
        "tests/memifd/test_readme_captures.py::test_curl_and_tshark_examples",
        "tests/memifd/test_rest_capture.py::test_slow_reader_learns_where_packets_were_dropped",
    ],
    "mkdir -p ~/.local/lib/wireshark/extcap   # Wireshark 4.1 and later": [
        "tests/memifd/test_readme_captures.py::test_wireshark_set_up",
    ],
    "$ tshark -D | grep memif": [
        "tests/memifd/test_readme_captures.py::test_wireshark_set_up",
        "tests/memifd/test_extcap.py::test_tshark_lists_memifd_interfaces",
    ],
    "#!/bin/sh": [
        "tests/memifd/test_readme_captures.py::test_wireshark_set_up",
    ],
    "make test          # ruff, mypy --strict (service, tests, bench), pytest: unit, hostile "
    "peers, interop with testpmd": [
        "tests/test_readme.py::test_development_commands_exist",
    ],
}


def test_every_block_is_run_by_a_test() -> None:
    found = {block.first_line: block for block in blocks()}
    missing = [f"line {b.line}: {first}" for first, b in found.items() if first not in RUN_BY]
    assert not missing, "README blocks no test runs (add the test and list it in RUN_BY)"
    assert set(RUN_BY) <= set(found), set(RUN_BY) - set(found)
    for tests in RUN_BY.values():
        for test in tests:
            if test.startswith("needs "):
                continue
            path, _, name = test.partition("::")
            assert f"def {name}(" in (ROOT / path).read_text(), f"{test} does not exist"


def _echo_example() -> str:
    return block_after("## The library in 15 lines", "python")


def test_readme_opens_with_two_setup_commands() -> None:
    first = blocks()[0]
    assert first.lang == "sh"
    commands = [line.split("#")[0].strip() for line in first.text.splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
    for command in ("make run", "make test"):  # the targets exist (a dry run: -n)
        subprocess.run([*command.split(), "-n"], cwd=ROOT, check=True, capture_output=True)


def test_echo_example_says_why_it_has_no_link(sock_dir: Path) -> None:
    path = sock_dir / "fresh" / "app.sock"  # a directory nothing made, nothing listens in
    script = _echo_example().replace("/run/memif/app.sock", str(path))
    script = script.replace("wait_connected(timeout=30)", "wait_connected(timeout=1)")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"no link: connect to {path} failed: No such file or directory"


def test_echo_example_is_short_and_echoes(sock_dir: Path) -> None:
    code = _echo_example()
    assert len(code.strip().splitlines()) <= 20
    path = str(sock_dir / "app.sock")
    script = code.replace("/run/memif/app.sock", path)
    with memif.Socket(path) as sock:
        server = sock.create_interface(id=0, role="server", name="tester")
        sock.start()
        proc = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert server.wait_connected(10), server.disconnect_reason
            sent = [os.urandom(60 + i) for i in range(100)]
            # a server sends into buffers the client posts right after CONNECTED
            wait_until(lambda: server.tx_queue(0).free() >= 100, 10, message="100 free tx slots")
            assert server.tx_queue(0).send_burst(sent) == 100
            received: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(received) < 100 and time.monotonic() < deadline:
                received += server.rx_queue(0).recv_burst(256)
                if not received:
                    server.rx_queue(0).wait(0.1)
            assert received == sent
        finally:
            proc.kill()
            proc.wait()


def test_config_file_example_loads(tmp_path: Path) -> None:
    from memifd.core.models import Action
    from memifd.core.settings import load_settings

    section = README.read_text().split("## memifd", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "config example missing"
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    text = (
        match.group(1)
        .replace("/etc/memifd/token", str(token))
        .replace("/run/memif", str(tmp_path / "sockets"))
    )
    config = tmp_path / "memifd.yaml"
    config.write_text(text)
    settings = load_settings(config=config)
    assert [i.name for i in settings.interfaces] == ["vnf0", "vnf1"]
    assert settings.interfaces[1].action is Action.XCONNECT
    assert settings.token_value == "s3cret-token"


def test_arguments_example(sock_dir: Path) -> None:
    code = block_after("### Sockets and interfaces", "python")
    with memif.Socket(str(sock_dir / "args.sock")) as sock:
        scope = {"memif": memif, "sock": sock}
        exec(code, scope)
        iface = scope["iface"]
        assert isinstance(iface, memif.Interface)
        assert (iface.args.name, iface.args.secret, iface.args.memory.num_queue_pairs) == (
            "memif0",
            "s3cret",
            2,
        )


def test_responder_synopsis_is_the_parsers() -> None:
    synopsis = block_after("## Check your set-up with the responder", "")
    assert synopsis.startswith("python -m memif responder ")
    shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", synopsis.split(" responder ", 1)[1]))
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    responder = commands.choices["responder"]
    options = {o for a in responder._actions for o in a.option_strings} - {"-h", "--help"}
    assert shown == options - {"--verbose"}
    for role in ("server", "client", "master", "slave"):  # every value the synopsis names
        build_parser().parse_args(["responder", "--socket", "/x", "--role", role, "--mode", "ip"])


def _responder_lines(block: str) -> list[list[str]]:
    return [
        shlex.split(line)[4:]
        for line in block.splitlines()
        if line.startswith("python -m memif responder ")
    ]


def test_vpp_examples_responder_lines(sock_dir: Path) -> None:
    server, client = (
        _responder_lines(block_after("### With VPP", "sh", skip=n).replace("/run", str(sock_dir)))
        for n in (0, 1)
    )
    [server_args], [client_args] = server, client
    listening = ResponderProcess(*server_args)
    connecting = ResponderProcess(*client_args)
    try:
        assert str(sock_dir / "memif/responder.sock") in listening.wait_for("listening on")
        assert "192.168.1.1" in listening.wait_for("answering for")
        failed = connecting.wait_for("not connected:")  # no VPP: nothing listens
        assert f"connect to {sock_dir}/vpp/memif.sock failed" in failed
        assert listening.stop(signal.SIGINT) == 0 and connecting.stop(signal.SIGINT) == 0
    finally:
        listening.kill()
        connecting.kill()


# The README's commands as a user with the venv activated runs them.
VENV_PATH = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def test_reach_the_api_from_your_machine(sock_dir: Path, tmp_path: Path) -> None:
    block = block_after("Reach the API:", "sh")
    token = tmp_path / "token"
    token.write_text("from-your-machine\n")
    daemon = Daemon(sock_dir, args=["--token-file", str(token)]).start()
    try:
        for line in block.splitlines():
            if "kubectl" in line:
                continue  # no cluster: the port-forward is memifd on this machine
            command = line.replace("127.0.0.1:8080", f"127.0.0.1:{daemon.http_port}")
            command = command.replace("127.0.0.1:50051", f"127.0.0.1:{daemon.grpc_port}")
            done = subprocess.run(
                ["bash", "-c", command],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "MEMIFD_TOKEN": "from-your-machine", "PATH": VENV_PATH},
            )
            assert done.returncode == 0, done.stderr
            empty = ("[]", "NAME  ROLE  ID  STATE  ADMIN  MODE  QUEUES  RX  TX  REASON")
            assert done.stdout.strip() in empty
    finally:
        daemon.kill()


def test_development_commands_exist() -> None:
    for line in block_after("## Development", "sh").splitlines():
        command = shlex.split(line.split("#")[0])
        if command[0] == "make":
            subprocess.run([*command, "-n"], cwd=ROOT, check=True, capture_output=True)
        else:  # the options are the module's own (--help stops before any work)
            done = subprocess.run(
                [sys.executable, *command[1:], "--help"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"{line}: {done.stderr}"


def test_development_maps_every_api_and_cli_module() -> None:
    section = README.read_text().partition("## Development")[2]
    service = ROOT / "service" / "memifd"
    modules = [
        path.relative_to(service).with_suffix("").as_posix()
        for package in ("api", "cli")
        for path in sorted((service / package).rglob("*.py"))
        if path.name != "__init__.py"
    ]
    assert modules
    unmapped = [module for module in modules if f"| `{module}` |" not in section]
    assert not unmapped, f"add a line for each to the README's Development section: {unmapped}"


def test_development_names_every_library_and_core_module() -> None:
    section = README.read_text().partition("## Development")[2]
    packages = [
        ROOT / "service" / "memif",
        ROOT / "service" / "memifd" / "core",
        ROOT / "service" / "memifd" / "core" / "engine",
    ]
    modules = [
        path.stem
        for package in packages
        for path in sorted(package.glob("*.py"))
        if not path.name.startswith("__")
    ]
    assert modules
    unnamed = [module for module in modules if f"`{module}`" not in section]
    assert not unnamed, f"say in the README's Development section what each does: {unnamed}"
