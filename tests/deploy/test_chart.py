"""The Helm chart helm/memifd: lint, render, Kubernetes schemas, bad values, sidecar use."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import memifd
import pytest
import yaml
from memif.config import MemoryConfig
from memifd.core.settings import load_settings
from pydantic import ValidationError

from tests.deploy.conftest import CHART, CI_VALUES, ROOT
from tests.deploy.helm import Helm, HelmError, by_kind, one
from tests.deploy.kube_api import KubeApi
from tests.memifd.rest_support import Daemon
from tests.readme import block_after

KUBERNETES_VERSION = "1.33"
# Kinds of the Prometheus Operator; their CRD schemas are not bundled, checked by hand below.
CRD_KINDS = {"ServiceMonitor"}
VALUE_SETS = [None, *CI_VALUES]


def _ids(path: Path | None) -> str:
    return "defaults" if path is None else path.stem


def render(
    helm: Helm, values: Path | None = None, set_values: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """helm template of the chart with a values file and --set values."""
    return helm.template(CHART, [values] if values else None, set_values)


def pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for item in spec.get("initContainers", []) + spec["containers"]:
        if item["name"] == name:
            return item  # type: ignore[no-any-return]
    raise AssertionError(f"no container {name}")


def env_of(item: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var.get("value", "") for var in item.get("env", [])}


def mounts_of(item: dict[str, Any]) -> dict[str, str]:
    return {mount["mountPath"]: mount["name"] for mount in item.get("volumeMounts", [])}


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for item in spec["volumes"]:
        if item["name"] == name:
            return item  # type: ignore[no-any-return]
    raise AssertionError(f"no volume {name}")


def config_text(manifests: list[dict[str, Any]], name: str) -> str:
    """config.yaml from the ConfigMap or Secret called ``name``."""
    for doc in manifests:
        if doc["metadata"]["name"] != name:
            continue
        if doc["kind"] == "ConfigMap":
            return doc["data"]["config.yaml"]  # type: ignore[no-any-return]
        if doc["kind"] == "Secret":
            return doc["stringData"]["config.yaml"]  # type: ignore[no-any-return]
    raise AssertionError(f"no ConfigMap or Secret {name}")


def check_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    """Every manifest against the bundled Kubernetes schemas, offline and strict."""
    for doc in manifests:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# --- lint and schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_helm_lint_passes(helm: Helm, values: Path | None) -> None:
    report = helm.lint(CHART, [values] if values else None)
    assert "0 chart(s) failed" in report


def test_ci_value_files_cover_the_documented_uses() -> None:
    assert {path.stem for path in CI_VALUES} >= {
        "sidecar-app-values",
        "server-interfaces-values",
        "client-interfaces-values",
    }


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_rendered_manifests_match_kubernetes_schemas(helm: Helm, values: Path | None) -> None:
    manifests = render(helm, values)
    kinds = {doc["kind"] for doc in manifests}
    assert {"Deployment", "Service", "ServiceAccount", "Secret"} <= kinds
    check_kubernetes_schemas(manifests)


def test_schema_check_catches_a_broken_manifest(helm: Helm) -> None:
    manifests = render(helm)
    spec = pod_spec(manifests)
    spec["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        check_kubernetes_schemas(manifests)


# --- what the default values render ---------------------------------------------------------


def test_memifd_container_is_locked_down_and_probed(helm: Helm) -> None:
    spec = pod_spec(render(helm))
    memifd_c = container(spec, "memifd")
    sc = memifd_c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["securityContext"]["fsGroup"] == 10001
    assert spec["automountServiceAccountToken"] is False
    ports = {port["name"]: port["containerPort"] for port in memifd_c["ports"]}
    assert ports == {"memifd-http": 8080, "memifd-grpc": 50051}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert memifd_c[probe]["httpGet"] == {"path": path, "port": "memifd-http", "scheme": "HTTP"}
    assert memifd_c["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_memifd_gets_socket_dir_config_and_token_files(helm: Helm) -> None:
    manifests = render(helm)
    spec = pod_spec(manifests)
    memifd_c = container(spec, "memifd")
    env = env_of(memifd_c)
    mounts = mounts_of(memifd_c)
    assert env["MEMIFD_HTTP_ADDR"] == "0.0.0.0:8080"
    assert env["MEMIFD_GRPC_ADDR"] == "0.0.0.0:50051"
    service = one(manifests, "Service")["metadata"]["name"]
    assert env["MEMIFD_ALLOWED_HOSTS"].split(",") == [  # the names clients reach it by
        service,
        f"{service}.net",
        f"{service}.net.svc",
        f"{service}.net.svc.cluster.local",
    ]
    sockets = volume(spec, mounts[env["MEMIFD_SOCKET_DIR"]])
    assert sockets["emptyDir"]["medium"] == "Memory"
    config_dir = env["MEMIFD_CONFIG"].rsplit("/", 1)[0]
    config_map = volume(spec, mounts[config_dir])["configMap"]["name"]
    assert yaml.safe_load(config_text(manifests, config_map)) == {
        "interfaces": [],
        "socket_dirs": [],
        "default_allowed_uids": [],
        "default_allowed_gids": [10001],  # the pod's fsGroup
    }
    token_dir, token_file = env["MEMIFD_TOKEN_FILE"].rsplit("/", 1)
    token_volume = volume(spec, mounts[token_dir])["secret"]
    assert token_volume["items"] == [{"key": "token", "path": token_file}]
    secret = next(
        doc
        for doc in by_kind(manifests, "Secret")
        if doc["metadata"]["name"] == token_volume["secretName"]
    )
    assert len(base64.b64decode(secret["data"]["token"])) == 40
    assert "/tmp" in mounts  # the root filesystem is read-only


def test_access_log_value_reaches_memifd(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    def env(set_values: dict[str, str] | None = None) -> dict[str, str]:
        return env_of(container(pod_spec(render(helm, set_values=set_values)), "memifd"))

    assert "MEMIFD_ACCESS_LOG" not in env()
    monkeypatch.setenv("MEMIFD_ACCESS_LOG", env({"accessLog": "true"})["MEMIFD_ACCESS_LOG"])
    assert load_settings(socket_dir="/run/memif").access_log is True


def test_service_exposes_rest_and_grpc(helm: Helm) -> None:
    manifests = render(helm)
    service = one(manifests, "Service")
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"http": (8080, "memifd-http"), "grpc": (50051, "memifd-grpc")}
    labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_generated_tokens_differ_and_a_given_token_is_kept(helm: Helm) -> None:
    def token(set_values: dict[str, str] | None = None) -> bytes:
        secret = one(render(helm, set_values=set_values), "Secret")
        return base64.b64decode(secret["data"]["token"])

    assert token() != token()  # helm template cannot read the cluster: a new one each time
    assert token({"auth.token": "my-token"}) == b"my-token" == token({"auth.token": "my-token"})
    hint = "set auth.token or auth.existingSecret for a stable token"
    only_secret = ("template", "rel", CHART, "--show-only", "templates/token-secret.yaml")
    assert hint in helm.run(*only_secret)
    assert hint not in helm.run(*only_secret, "--set", "auth.token=my-token")


def test_a_generated_token_is_read_back_from_the_cluster(helm: Helm, tmp_path: Path) -> None:
    api = KubeApi()
    with api.running():
        client = Helm(binary=helm.binary, home=tmp_path / "home")
        client.env["KUBECONFIG"] = str(api.kubeconfig(tmp_path / "kubeconfig"))

        def token(*args: str) -> bytes:
            out = client.run(
                "template",
                "rel",
                CHART,
                "--namespace",
                "net",
                "--dry-run=server",
                "--disable-openapi-validation",
                "--show-only",
                "templates/token-secret.yaml",
                *args,
            )
            return base64.b64decode(yaml.safe_load(out)["data"]["token"])

        first = token()  # no Secret in the cluster yet: a random token
        assert len(first) == 40 and first != token()
        stored = base64.b64encode(first).decode()
        api.add_release_object(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rel-memifd-token"},
                "type": "Opaque",
                "data": {"token": stored},
            },
            release="rel",
            namespace="net",
        )
        assert token() == first and token() == first  # an upgrade keeps it
        assert "/api/v1/namespaces/net/secrets/rel-memifd-token" in api.asked
        assert token("--set", "auth.token=chosen") == b"chosen"


def test_config_change_changes_the_pod_template(helm: Helm) -> None:
    def checksum(set_values: dict[str, str] | None = None) -> str:
        deployment = one(render(helm, set_values=set_values), "Deployment")
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/memifd-config"]  # type: ignore[no-any-return]

    assert checksum() == checksum()
    assert checksum() != checksum({"interfaces[0].name": "a"})


# --- the three documented uses ----------------------------------------------------------------


def test_sidecar_app_values_share_the_socket_dir(helm: Helm) -> None:
    manifests = render(helm, CHART / "ci" / "sidecar-app-values.yaml")
    spec = pod_spec(manifests)
    memifd_c = spec["initContainers"][0]
    assert memifd_c["name"] == "memifd" and memifd_c["restartPolicy"] == "Always"
    app = container(spec, "packet-app")
    assert app["image"] == "example.org/packet-app:1.4.2"
    assert app["command"] == ["packet-app"]
    socket_dir = env_of(memifd_c)["MEMIFD_SOCKET_DIR"]
    assert mounts_of(app)[socket_dir] == mounts_of(memifd_c)[socket_dir]
    app_env = env_of(app)
    assert app_env["MEMIF_SOCKET_DIR"] == socket_dir
    assert app_env["MEMIFD_URL"] == "http://127.0.0.1:8080"
    assert app_env["MEMIFD_GRPC_ADDR"] == "127.0.0.1:50051"
    assert app_env["PACKET_APP_MODE"] == "forward"
    token_ref = next(var for var in app["env"] if var["name"] == "MEMIFD_TOKEN")["valueFrom"]
    token_secret = volume(spec, "memifd-token")["secret"]["secretName"]
    assert token_ref["secretKeyRef"] == {"name": token_secret, "key": "token"}
    template_meta = one(manifests, "Deployment")["spec"]["template"]["metadata"]
    assert template_meta["annotations"]["example.org/team"] == "network"
    assert template_meta["labels"]["tier"] == "dataplane"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dataplane"
    assert "podAntiAffinity" in spec["affinity"]


def test_readme_values_install_memifd_beside_the_app(helm: Helm, tmp_path: Path) -> None:
    values = block_after("Install memifd with your packet application", "yaml")
    install = block_after("Install memifd with your packet application", "sh").split()
    assert install[:3] == ["helm", "install", "net"], install
    (tmp_path / "my-values.yaml").write_text(values)
    # no cluster here: what `helm install` would apply, rendered by `helm template`
    args = [arg for arg in install[3:] if arg != "--create-namespace"]
    chart, namespace = args[0], args[args.index("--namespace") + 1]
    manifests = helm.template(
        ROOT / chart, [tmp_path / args[args.index("-f") + 1]], release="net", namespace=namespace
    )
    spec = pod_spec(manifests)
    app = container(spec, "packet-app")
    assert app["args"] == ["--memif-socket", "/run/memif/app.sock"]
    assert app["image"] == "registry.example.org/packet-app:1.4.2"
    memifd_c = container(spec, "memifd")
    assert mounts_of(app)["/run/memif"] == mounts_of(memifd_c)["/run/memif"]
    config = tmp_path / "config.yaml"
    config.write_text(config_text(manifests, "net-memifd-config"))
    settings = load_settings(config=config, token="t", socket_dir="/run/memif")
    [app0] = settings.interfaces
    assert settings.resolve_socket(app0.socket) == "/run/memif/app.sock"
    assert {d["metadata"]["name"] for d in by_kind(manifests, "Service")} == {"net-memifd"}


def test_native_sidecar_needs_kubernetes_1_29(helm: Helm) -> None:
    values = [CHART / "ci" / "sidecar-app-values.yaml"]
    assert helm.template(CHART, values, kube_version="1.29.0")
    with pytest.raises(HelmError, match=r"need Kubernetes 1\.29 or later, this is v1\.28\.3"):
        helm.template(CHART, values, kube_version="1.28.3")


def test_sidecar_app_values_render_monitoring_and_network_policy(helm: Helm) -> None:
    manifests = render(helm, CHART / "ci" / "sidecar-app-values.yaml")
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("http", "/metrics", "http")
    token_secret = next(doc for doc in by_kind(manifests, "Secret"))
    assert endpoint["authorization"]["credentials"] == {
        "name": token_secret["metadata"]["name"],
        "key": "token",
    }
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        one(manifests, "Service")["metadata"]["labels"].items()
    )
    policy = one(manifests, "NetworkPolicy")["spec"]
    api_rule, app_rule = policy["ingress"]
    assert {port["port"] for port in api_rule["ports"]} == {"memifd-http", "memifd-grpc"}
    assert api_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert app_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def hook_test_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [
        doc
        for doc in by_kind(manifests, "Pod")
        if doc["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    return pod


def test_helm_test_pod_checks_rest_and_grpc_through_the_service(helm: Helm, sock_dir: Path) -> None:
    manifests = render(helm, set_values={"auth.token": "helm-test-token"})
    pod = hook_test_pod(manifests)
    service = one(manifests, "Service")
    labels = pod["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= labels.items()  # not a Service endpoint
    (check,) = pod["spec"]["containers"]
    assert check["image"] == container(pod_spec(manifests), "memifd")["image"]
    assert check["securityContext"]["runAsNonRoot"] is True
    assert (
        check["env"][2]["valueFrom"]["secretKeyRef"]["name"]
        == one(manifests, "Secret")["metadata"]["name"]
    )
    # Run its command with its environment, the Service's name pointing at a memifd here.
    daemon = Daemon(sock_dir, env={"MEMIFD_TOKEN": "helm-test-token"}).start()
    try:
        env = {var["name"]: var.get("value", "") for var in check["env"]}
        assert env["MEMIFD_URL"] == "http://rel-memifd.net.svc:8080"
        assert env["MEMIFD_GRPC_ADDR"] == "rel-memifd.net.svc:50051"
        env["MEMIFD_URL"] = daemon.url
        env["MEMIFD_GRPC_ADDR"] = f"127.0.0.1:{daemon.grpc_port}"

        def run(token: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, *check["command"][1:]]
            assert check["command"][0] == "python"
            full_env = {**os.environ, **env, "MEMIFD_TOKEN": token}
            return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=60)

        good = run("helm-test-token")
        assert good.returncode == 0, good.stdout + good.stderr
        assert [line.split()[0] for line in good.stdout.splitlines()] == ["ok"] * 4
        bad = run("wrong")
        assert bad.returncode == 1
        failed = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
        assert len(failed) == 2 and "401" in failed[0] and "UNAUTHENTICATED" in failed[1]
    finally:
        daemon.kill()


def test_helm_test_pod_with_tls_and_a_network_policy(helm: Helm) -> None:
    manifests = render(
        helm, CHART / "ci" / "sidecar-app-values.yaml", {"tls.secretName": "memifd-tls"}
    )
    pod = hook_test_pod(manifests)
    (check,) = pod["spec"]["containers"]
    env = {var["name"]: var.get("value") for var in check["env"]}
    assert env["MEMIFD_URL"].startswith("https://")
    assert env["MEMIFD_TLS_CA"] == "/var/run/secrets/memifd-tls/ca.crt"
    assert pod["spec"]["volumes"][0]["secret"]["secretName"] == "memifd-tls"
    policy = one(manifests, "NetworkPolicy")["spec"]
    allowed = policy["ingress"][0]["from"]
    assert {
        "podSelector": {
            "matchLabels": {
                key: pod["metadata"]["labels"][key]
                for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")
            }
        }
    } in allowed
    check_kubernetes_schemas(manifests)
    assert not by_kind(render(helm, set_values={"helmTest.enabled": "false"}), "Pod")


def test_dashboard_charts_memifd_metrics(helm: Helm) -> None:
    manifests = render(helm, CHART / "ci" / "sidecar-app-values.yaml")
    dashboards = [
        doc
        for doc in by_kind(manifests, "ConfigMap")
        if doc["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == 1
    assert dashboards[0]["metadata"]["annotations"] == {"grafana_folder": "Network"}
    board = json.loads(dashboards[0]["data"]["memifd.json"])
    targets = [target for panel in board["panels"] for target in panel["targets"]]
    assert all(target["datasource"]["uid"] == "${datasource}" for target in targets)
    used = {name for t in targets for name in re.findall(r"memifd_[a-z_]+", t["expr"])}
    # The names memifd exports are checked against a running memifd in test_image.py.
    assert {
        "memifd_interface_packets_total",
        "memifd_interface_bytes_total",
        "memifd_interface_drops_total",
        "memifd_interface_link_up",
    } <= used
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Link state", "Received packets/s", "Transmitted bits/s", "Drops/s"} <= titles
    assert not by_kind(render(helm), "ConfigMap")[1:]  # off by default: only the config


def test_server_interfaces_become_the_config_memifd_reads(helm: Helm, tmp_path: Path) -> None:
    values_file = CHART / "ci" / "server-interfaces-values.yaml"
    values = yaml.safe_load(values_file.read_text())
    manifests = render(helm, values_file)
    spec = pod_spec(manifests)
    memifd_c = container(spec, "memifd")
    env = env_of(memifd_c)
    config_dir, config_name = env["MEMIFD_CONFIG"].rsplit("/", 1)
    source = volume(spec, mounts_of(memifd_c)[config_dir])
    assert "configMap" in source  # no secrets in these interfaces
    path = tmp_path / config_name
    path.write_text(config_text(manifests, source["configMap"]["name"]))
    settings = load_settings(config=path, token="t", socket_dir=env["MEMIFD_SOCKET_DIR"])
    assert [spec.name for spec in settings.interfaces] == [i["name"] for i in values["interfaces"]]
    assert settings.interfaces[2].role.value == "server"  # "master" is an alias
    assert env["MEMIFD_HTTP_ADDR"] == "0.0.0.0:18080"
    assert env["MEMIFD_LOG_LEVEL"] == "debug"
    service_ports = {p["name"]: p["port"] for p in one(manifests, "Service")["spec"]["ports"]}
    assert service_ports == {"http": 80, "grpc": 50051}


def test_socket_dirs_and_peer_ids_reach_memifd(helm: Helm, tmp_path: Path) -> None:
    values = {
        "socketDirs": ["/run/vpp"],
        "defaultAllowedUids": [1000],
        "defaultAllowedGids": [2000, 3000],
        "podSecurityContext": {"fsGroup": 3000},
        "interfaces": [
            {"name": "vpp", "socket": "/run/vpp/memif.sock", "role": "client"},
            {"name": "app", "socket": "app.sock", "allowed_uids": [1001], "allowed_gids": [7]},
        ],
    }
    manifests = helm.template_values(CHART, values, tmp_path)
    spec = pod_spec(manifests)
    env = env_of(container(spec, "memifd"))
    path = tmp_path / "config.yaml"
    path.write_text(config_text(manifests, volume(spec, "memifd-config")["configMap"]["name"]))
    settings = load_settings(config=path, token="t", socket_dir=env["MEMIFD_SOCKET_DIR"])
    assert settings.socket_dirs == [Path("/run/vpp")]
    assert settings.default_allowed_uids == [1000]
    assert settings.default_allowed_gids == [2000, 3000]  # fsGroup joins the given groups
    assert settings.resolve_socket(settings.interfaces[0].socket) == "/run/vpp/memif.sock"
    assert settings.interfaces[1].allowed_uids == [1001]
    assert settings.interfaces[1].allowed_gids == [7]


def test_interfaces_apart_by_socket_role_or_id_render_and_memifd_takes_them(
    helm: Helm, tmp_path: Path
) -> None:
    values = {
        "interfaces": [
            {"name": "a"},
            {"name": "b", "role": "slave"},
            {"name": "c", "id": 1},
            {"name": "d", "socket": "d.sock"},
            {"name": "e", "socket": "@memif.sock"},
        ]
    }
    manifests = helm.template_values(CHART, values, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(manifests, "rel-memifd-config"))
    settings = load_settings(config=config, token="t", socket_dir="/run/memif")
    assert [spec.name for spec in settings.interfaces] == ["a", "b", "c", "d", "e"]


VPP_VALUES: dict[str, Any] = {
    "dataPlaneSocketDir": {"hostPath": "/run/vpp"},
    "podSecurityContext": {"fsGroup": 10001, "supplementalGroups": [998]},
    "app": {"enabled": True, "image": {"repository": "registry.example.org/app"}},
    "interfaces": [{"name": "vpp0", "socket": "/run/vpp/memif.sock", "role": "client"}],
}


def test_a_data_plane_socket_dir_on_the_node_is_mounted_and_allowed(
    helm: Helm, tmp_path: Path
) -> None:
    manifests = helm.template_values(CHART, VPP_VALUES, tmp_path)
    check_kubernetes_schemas(manifests)
    spec = pod_spec(manifests)
    assert volume(spec, "data-plane-sockets")["hostPath"] == {
        "path": "/run/vpp",
        "type": "Directory",
    }
    assert mounts_of(container(spec, "memifd"))["/run/vpp"] == "data-plane-sockets"
    assert "/run/vpp" not in mounts_of(container(spec, "app"))  # only memifd needs it
    config = yaml.safe_load(
        config_text(manifests, volume(spec, "memifd-config")["configMap"]["name"])
    )
    assert config["socket_dirs"] == ["/run/vpp"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(config=path, token="t", socket_dir="/run/memif")
    assert settings.socket_dirs == [Path("/run/vpp")]

    elsewhere = {
        **VPP_VALUES,
        "dataPlaneSocketDir": {
            "hostPath": "/var/run/vpp",
            "mountPath": "/run/vpp",
            "type": "DirectoryOrCreate",
        },
    }
    spec = pod_spec(helm.template_values(CHART, elsewhere, tmp_path))
    assert volume(spec, "data-plane-sockets")["hostPath"] == {
        "path": "/var/run/vpp",
        "type": "DirectoryOrCreate",
    }
    assert mounts_of(container(spec, "memifd"))["/run/vpp"] == "data-plane-sockets"


def test_without_the_data_plane_dir_its_sockets_are_refused(helm: Helm, tmp_path: Path) -> None:
    manifests = helm.template_values(
        CHART, {"interfaces": VPP_VALUES["interfaces"]} | {"socketDirs": ["/run/vpp"]}, tmp_path
    )
    assert "data-plane-sockets" not in {v["name"] for v in pod_spec(manifests)["volumes"]}
    with pytest.raises(HelmError, match="outside the socket directories"):
        helm.template_values(CHART, {"interfaces": VPP_VALUES["interfaces"]}, tmp_path)
    with pytest.raises(HelmError, match="dataPlaneSocketDir"):
        helm.template_values(CHART, {"dataPlaneSocketDir": {"hostPath": "run/vpp"}}, tmp_path)


def test_a_parent_chart_pod_gets_the_data_plane_dir(helm: Helm, parent_chart: Path) -> None:
    values = parent_chart / "vpp-values.yaml"
    values.write_text(yaml.safe_dump({"memifd": {"dataPlaneSocketDir": {"hostPath": "/run/vpp"}}}))
    spec = one(helm.template(parent_chart, [values]), "Deployment")["spec"]["template"]["spec"]
    assert volume(spec, "data-plane-sockets")["hostPath"]["path"] == "/run/vpp"
    assert mounts_of(container(spec, "memifd"))["/run/vpp"] == "data-plane-sockets"


def test_client_interfaces_with_secrets_keep_them_out_of_configmaps(
    helm: Helm, tmp_path: Path
) -> None:
    values_file = CHART / "ci" / "client-interfaces-values.yaml"
    values = yaml.safe_load(values_file.read_text())
    manifests = render(helm, values_file)
    secrets = [iface["secret"] for iface in values["interfaces"]]
    for config_map in by_kind(manifests, "ConfigMap"):
        text = json.dumps(config_map)
        assert not any(secret in text for secret in secrets)
    spec = pod_spec(manifests)
    memifd_c = container(spec, "memifd")
    env = env_of(memifd_c)
    config_dir = env["MEMIFD_CONFIG"].rsplit("/", 1)[0]
    config_secret = volume(spec, mounts_of(memifd_c)[config_dir])["secret"]["secretName"]
    path = tmp_path / "config.yaml"
    path.write_text(config_text(manifests, config_secret))
    settings = load_settings(config=path, token="t", socket_dir=tmp_path)
    assert [s.secret for s in settings.interfaces] == secrets
    assert {s.role.value for s in settings.interfaces} == {"client"}
    # The token comes from the existing Secret; none is created.
    token = volume(spec, "memifd-token")["secret"]
    assert token == {"secretName": "memifd-api", "items": [{"key": "api-token", "path": "token"}]}
    assert [doc["metadata"]["name"] for doc in by_kind(manifests, "Secret")] == [config_secret]
    # TLS: files mounted, probes and scrapes over HTTPS.
    assert volume(spec, "memifd-tls")["secret"]["secretName"] == "memifd-tls"
    assert env["MEMIFD_TLS_CERT"].endswith("/tls.crt") and env["MEMIFD_TLS_KEY"].endswith(
        "/tls.key"
    )
    assert memifd_c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    endpoint = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}
    assert endpoint["authorization"]["credentials"] == {"name": "memifd-api", "key": "api-token"}


# --- bad values ---------------------------------------------------------------------------------

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "ring-size-20": (
        {"interfaces": [{"name": "a", "memory": {"log2_ring_size": 20}}]},
        "/interfaces/0/memory/log2_ring_size",
    ),
    "bad-role": ({"interfaces": [{"name": "a", "role": "boss"}]}, "/interfaces/0/role"),
    "name-too-long": ({"interfaces": [{"name": "n" * 33}]}, "/interfaces/0/name"),
    "name-bad-characters": ({"interfaces": [{"name": "a b"}]}, "/interfaces/0/name"),
    "name-missing": ({"interfaces": [{"role": "server"}]}, "name"),
    "unknown-interface-field": (
        {"interfaces": [{"name": "a", "colour": "red"}]},
        "'colour' not allowed",
    ),
    "xconnect-without-target": (
        {"interfaces": [{"name": "a", "action": "xconnect"}]},
        "xconnect_to",
    ),
    "secret-too-long": ({"interfaces": [{"name": "a", "secret": "s" * 25}]}, "/secret"),
    "secret-too-many-bytes": (
        {"interfaces": [{"name": "a", "secret": "\u00e9" * 13}]},
        "secret must be at most 24 bytes in UTF-8, got 26",
    ),
    "duplicate-names": (
        {"interfaces": [{"name": "a"}, {"name": "a", "id": 1}]},
        'name "a" is used by more than one interface',
    ),
    "defaults-share-socket-role-and-id": (
        {"interfaces": [{"name": "a"}, {"name": "b", "action": "echo"}]},
        "interfaces[0] (a) and interfaces[1] (b) both use socket /run/memif/memif.sock, "
        "role server and id 0; give one of them another socket or id",
    ),
    "one-socket-spelt-two-ways": (
        {
            "interfaces": [
                {"name": "a", "socket": "x.sock", "role": "client", "id": 4},
                {"name": "b", "socket": "c.sock", "role": "client", "id": 4},
                {"name": "c", "socket": "/run/memif/./x.sock", "role": "slave", "id": 4},
            ]
        },
        "interfaces[0] (a) and interfaces[2] (c) both use socket /run/memif/x.sock, "
        "role client and id 4",
    ),
    "xconnect-to-itself": (
        {"interfaces": [{"name": "a", "action": "xconnect", "xconnect_to": "a"}]},
        "cannot be cross-connected to itself",
    ),
    "xconnect-to-undeclared": (
        {"interfaces": [{"name": "a", "action": "xconnect", "xconnect_to": "b"}]},
        'xconnect_to: "b" is not one of the declared interfaces',
    ),
    "memory-over-4GiB": (
        {"interfaces": [{"name": "a", "memory": {"num_queue_pairs": 128, "log2_ring_size": 14}}]},
        "exceeds the limit of 4294967296",
    ),
    "misspelt-key": ({"interface": []}, "'interface' not allowed"),
    "app-without-image": ({"app": {"enabled": True}}, "/app/image/repository"),
    "app-named-memifd": (
        {"app": {"enabled": True, "name": "memifd", "image": {"repository": "x"}}},
        "/app/name",
    ),
    "bad-log-level": ({"logLevel": "loud"}, "/logLevel"),
    "port-out-of-range": ({"ports": {"http": 70000}}, "/ports/http"),
    "relative-socket-dir": ({"socketDir": {"path": "run/memif"}}, "/socketDir/path"),
    "annotation-not-a-string": ({"podAnnotations": {"a": True}}, "/podAnnotations/a"),
    "socket-outside-the-dirs": (
        {"interfaces": [{"name": "a", "socket": "/etc/a.sock"}]},
        "socket: /etc/a.sock is outside the socket directories (/run/memif); "
        "add its directory to socketDirs",
    ),
    "socket-with-dot-dot": (
        {"interfaces": [{"name": "a", "socket": "x/../../etc/a.sock"}]},
        "socket: '..' is not allowed",
    ),
    "relative-socket-dirs-entry": ({"socketDirs": ["run/vpp"]}, "/socketDirs/0"),
    "allowed-uid-negative": (
        {"interfaces": [{"name": "a", "allowed_uids": [-1]}]},
        "/interfaces/0/allowed_uids/0",
    ),
    "default-uid-too-large": ({"defaultAllowedUids": [2**32]}, "/defaultAllowedUids/0"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_fail_helm_template(helm: Helm, tmp_path: Path, case: str) -> None:
    values, message = BAD_VALUES[case]
    with pytest.raises(HelmError) as failure:
        helm.template_values(CHART, values, tmp_path)
    assert message in str(failure.value)


# helm lint applies the schema; the template's own checks (fail) only stop template/install.
@pytest.mark.parametrize("case", ["ring-size-20", "bad-role", "name-too-long", "misspelt-key"])
def test_bad_values_fail_helm_lint(helm: Helm, tmp_path: Path, case: str) -> None:
    values, message = BAD_VALUES[case]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(HelmError) as failure:
        helm.lint(CHART, [path])
    assert message in str(failure.value)


@pytest.mark.parametrize(
    "memory",
    [
        {"num_queue_pairs": 64, "log2_ring_size": 14},  # exactly 4 GiB with 2048-byte buffers
        {"num_queue_pairs": 65, "log2_ring_size": 14},
        {"num_queue_pairs": 16, "log2_ring_size": 14, "packet_buffer_size": 8192},
        {"num_queue_pairs": 16, "log2_ring_size": 14, "packet_buffer_size": 8193},
        {"num_queue_pairs": 255, "log2_ring_size": 1, "packet_buffer_size": 65535},
        {"log2_ring_size": 14, "packet_buffer_size": 65535},
        {"num_queue_pairs": 255},
    ],
)
def test_memory_limit_agrees_with_the_model(
    helm: Helm, tmp_path: Path, memory: dict[str, int]
) -> None:
    try:
        MemoryConfig(**memory)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    values = {"interfaces": [{"name": "a", "memory": memory}]}
    try:
        helm.template_values(CHART, values, tmp_path)
        chart_accepts = True
    except HelmError:
        chart_accepts = False
    assert chart_accepts == model_accepts


# --- memifd as a sidecar in another chart ---------------------------------------------------------


@pytest.fixture
def parent_chart(tmp_path: Path) -> Path:
    """tests/deploy/charts/packet-app with memifd in its charts/ directory."""
    chart = tmp_path / "packet-app"
    shutil.copytree(Path(__file__).parent / "charts" / "packet-app", chart)
    shutil.copytree(CHART, chart / "charts" / "memifd")
    return chart


def test_parent_chart_adds_memifd_to_its_own_pod(helm: Helm, parent_chart: Path) -> None:
    assert "0 chart(s) failed" in helm.lint(parent_chart)
    manifests = helm.template(parent_chart, release="shop")
    check_kubernetes_schemas(manifests)
    deployments = by_kind(manifests, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == ["shop-packet-app"]
    assert not by_kind(manifests, "Service")
    spec = pod_spec(manifests)
    assert [c["name"] for c in spec["containers"]] == ["packet-app", "memifd"]
    app, memifd_c = spec["containers"]
    socket_dir = env_of(memifd_c)["MEMIFD_SOCKET_DIR"]
    assert mounts_of(app)[socket_dir] == mounts_of(memifd_c)[socket_dir]
    assert env_of(app)["MEMIF_SOCKET_DIR"] == socket_dir
    # Every Secret and ConfigMap the pod mounts is one the memifd subchart rendered.
    rendered = {(d["kind"], d["metadata"]["name"]) for d in manifests}
    for item in spec["volumes"]:
        if "secret" in item:
            assert ("Secret", item["secret"]["secretName"]) in rendered
        if "configMap" in item:
            assert ("ConfigMap", item["configMap"]["name"]) in rendered
    config = yaml.safe_load(config_text(manifests, "shop-memifd-config"))
    assert config["interfaces"][0]["name"] == "app0"
    annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/memifd-config" in annotations


def test_parent_chart_without_memifd_dependency_gets_a_clear_error(
    helm: Helm, parent_chart: Path
) -> None:
    chart = yaml.safe_load((parent_chart / "Chart.yaml").read_text())
    chart["dependencies"][0]["alias"] = "packets"
    (parent_chart / "Chart.yaml").write_text(yaml.safe_dump(chart))
    with pytest.raises(HelmError, match=r'dependency named \(or aliased\) "memifd"'):
        helm.template(parent_chart)


# --- NOTES and the files themselves -------------------------------------------------------------


@pytest.mark.parametrize(
    ("set_values", "expected"),
    [
        ({}, "kubectl port-forward --namespace net deployment/rel-memifd 8080 50051"),
        ({"deployment.enabled": "false"}, 'include the "memifd.sidecar"'),
        ({"auth.existingSecret": "mine"}, "get secret --namespace net mine"),
    ],
)
def test_notes_tell_how_to_reach_the_api(
    helm: Helm, set_values: dict[str, str], expected: str
) -> None:
    args: list[str | Path] = ["install", "rel", CHART, "--dry-run=client", "--namespace", "net"]
    for key, value in set_values.items():
        args += ["--set", f"{key}={value}"]
    notes = helm.run(*args).split("NOTES:", 1)[1]
    assert expected in notes


def test_every_value_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    previous = ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if re.match(r"^[A-Za-z_][\w.-]*:", stripped):
            assert previous.startswith("#"), f"values.yaml:{number}: {stripped} has no comment"
        if stripped:
            previous = stripped


def test_versions_agree() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == values["image"]["tag"] == project["version"]
    assert project["version"] == memifd.__version__


def test_chart_icon_is_memifds_logo_inline(helm: Helm) -> None:
    icon = yaml.safe_load((CHART / "Chart.yaml").read_text())["icon"]
    prefix = "data:image/svg+xml;base64,"
    assert icon.startswith(prefix)
    logo = ROOT / "service" / "memifd" / "api" / "rest" / "static" / "favicon.svg"
    assert base64.b64decode(icon.removeprefix(prefix)) == logo.read_bytes()
    assert "icon" not in helm.lint(CHART)  # no "icon is recommended", no "invalid icon URL"


@pytest.mark.parametrize("readme", [ROOT / "README.md", CHART / "README.md"], ids=["main", "chart"])
def test_readme_data_plane_values_render(helm: Helm, tmp_path: Path, readme: Path) -> None:
    blocks = re.findall(r"```yaml\n(dataPlaneSocketDir:.*?)```", readme.read_text(), re.S)
    assert len(blocks) == 1
    values = yaml.safe_load(blocks[0])
    manifests = helm.template_values(CHART, values, tmp_path)
    check_kubernetes_schemas(manifests)
    spec = pod_spec(manifests)
    assert volume(spec, "data-plane-sockets")["hostPath"]["path"] == "/run/vpp"
    assert spec["securityContext"]["supplementalGroups"] == [998]
