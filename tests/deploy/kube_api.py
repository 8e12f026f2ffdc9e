"""A stand-in for a Kubernetes API server, for `helm template --dry-run=server`.

With ``--dry-run=server`` helm asks the cluster for its version and API groups,
whether each rendered object already exists (and belongs to the release), and
what ``lookup`` reads. This server answers those GETs from a dict of objects
and records every path asked; anything else is 404. No real cluster runs here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CORE = {
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "Pod": "pods",
}
APPS = {"Deployment": "deployments"}


def _resources(kinds: dict[str, str], group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": "",
                "namespaced": True,
                "kind": kind,
                "verbs": ["get", "list", "create"],
            }
            for kind, plural in kinds.items()
        ],
    }


DISCOVERY: dict[str, Any] = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }
        ],
    },
    "/api/v1": _resources(CORE, "v1"),
    "/apis/apps/v1": _resources(APPS, "apps/v1"),
}


class KubeApi:
    """Objects by API path (``/api/v1/namespaces/NS/secrets/NAME``), and the paths asked."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.asked: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_release_object(self, obj: dict[str, Any], release: str, namespace: str) -> None:
        """Store ``obj`` as helm left it when it installed ``release``."""
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        meta.setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
        )
        group = "/api/v1" if obj["kind"] in CORE else "/apis/apps/v1"
        plural = {**CORE, **APPS}[obj["kind"]]
        self.objects[f"{group}/namespaces/{namespace}/{plural}/{meta['name']}"] = obj

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file pointing at this server."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "stand-in",
                    "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
                    "contexts": [
                        {"name": "stand-in", "context": {"cluster": "stand-in", "user": "u"}}
                    ],
                    "users": [{"name": "u", "user": {"token": "stand-in"}}],
                }
            )
        )
        return path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                api.asked.append(path)
                body = DISCOVERY.get(path) or api.objects.get(path)
                status = 200 if body is not None else 404
                if body is None:
                    body = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "NotFound",
                        "code": 404,
                    }
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[KubeApi]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
