"""JSON schema of the Helm chart's values: ``helm/memifd/values.schema.json``.

The items of ``interfaces:`` are :class:`memifd.core.models.InterfaceSpec`, exactly as
``POST /v1/interfaces`` takes them, so a bad interface fails at ``helm install``;
the rest of the values is described here by hand. Regenerate after changing
either with::

    python -m memifd.cli.chart_schema > helm/memifd/values.schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from memif.config import MODE_ALIASES, ROLE_ALIASES

from memifd.core.models import MAX_ALLOWED_IDS, Action, InterfaceSpec

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
ABSOLUTE = "^(/.*)?$"  # an absolute path, or empty


def _obj(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    """A closed object: unknown keys are typos and fail."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _free(description: str) -> Schema:
    """A Kubernetes object passed through as is (checked by the API server)."""
    return {"type": "object", "description": description}


def _list(description: str) -> Schema:
    """A list of Kubernetes objects passed through as is."""
    return {"type": "array", "description": description, "items": {"type": "object"}}


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _bool(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _int(description: str, minimum: int = 0, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, "minimum": minimum, **extra}


def _ids(description: str) -> Schema:
    """A list of uids or gids, as memifd's settings take them."""
    return {
        "type": "array",
        "description": description,
        "maxItems": MAX_ALLOWED_IDS,
        "items": {"type": "integer", "minimum": 0, "maximum": 0xFFFFFFFE},
    }


def _strings(description: str) -> Schema:
    """A map of strings (labels, annotations, node selector)."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    }


def _image(description: str, repository_required: bool) -> Schema:
    repository = _str("Image repository.", minLength=1 if repository_required else 0)
    return _obj(
        description,
        {
            "repository": repository,
            "tag": _str("Image tag.", minLength=1),
            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        },
    )


def _probe(description: str) -> Schema:
    timing = {
        name: _int(name, minimum=1)
        for name in ("periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold")
    }
    timing["initialDelaySeconds"] = _int("initialDelaySeconds")
    return _obj(description + " The chart sets the HTTP check; these are its timings.", timing)


def interface_schema() -> tuple[Schema, dict[str, Schema]]:
    """The schema of one interface body and the definitions it refers to."""
    schema = InterfaceSpec.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Schema] = schema.pop("$defs")
    # the other spellings InterfaceSpec accepts, as the library lists them
    for name, aliases in (("Role", ROLE_ALIASES), ("Mode", MODE_ALIASES)):
        defs[name]["enum"] = [*defs[name]["enum"], *aliases]
    # InterfaceSpec's model validator, in schema form (action defaults to drop).
    schema["if"] = {
        "properties": {"action": {"const": Action.XCONNECT.value}},
        "required": ["action"],
    }
    schema["then"] = {
        "properties": {"xconnect_to": {"type": "string", "minLength": 1}},
        "required": ["xconnect_to"],
    }
    return schema, defs


def values_schema() -> Schema:
    """The whole ``values.schema.json``."""
    interface, defs = interface_schema()
    defs["InterfaceSpec"] = interface
    app = _obj(
        "The application container of the pod (the Deployment mode).",
        {
            "enabled": _bool("Add the application container to memifd's pod."),
            "name": _str("Container name.", pattern=DNS_LABEL, maxLength=63)
            | {"not": {"const": "memifd"}},
            "image": _image("Application image.", repository_required=False),
            "command": {"type": "array", "items": {"type": "string"}},
            "args": {"type": "array", "items": {"type": "string"}},
            "env": _list("Extra environment variables."),
            "envFrom": _list("ConfigMaps and Secrets to take environment variables from."),
            "ports": _list("Container ports."),
            "resources": _free("Resource requests and limits."),
            "securityContext": _free("Container security context."),
            "volumeMounts": _list("Extra volume mounts (volumes from extraVolumes)."),
            "livenessProbe": _free("Liveness probe, as in a container spec."),
            "readinessProbe": _free("Readiness probe, as in a container spec."),
            "apiToken": _bool("Set MEMIFD_TOKEN from the token Secret."),
        },
        **{
            "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
            "then": {"properties": {"image": {"properties": {"repository": {"minLength": 1}}}}},
        },
    )
    properties: dict[str, Schema] = {
        "global": _free("Values Helm shares between a parent chart and its subcharts."),
        "image": _image("memifd image.", repository_required=True),
        "imagePullSecrets": _list("Secrets for pulling images ({name: ...})."),
        "nameOverride": _str("Replaces 'memifd' in resource names."),
        "fullnameOverride": _str("Replaces the full resource name prefix."),
        "deployment": _obj(
            "The Deployment this chart renders.",
            {
                "enabled": _bool("False when another chart includes memifd.sidecar."),
                "replicas": _int("Pod replicas."),
            },
        ),
        "nativeSidecar": _bool("Run memifd as a native sidecar (init container, Always)."),
        "socketDir": _obj(
            "The directory of memif control sockets shared with the application.",
            {
                "path": _str("Absolute mount path.", pattern="^/", maxLength=80),
                "sizeLimit": _str("Size limit of the in-memory emptyDir."),
                "volumeName": _str("Name of the volume.", pattern=DNS_LABEL, maxLength=63),
            },
        ),
        "socketDirs": {
            "type": "array",
            "description": "More absolute directories control sockets may be in.",
            "items": _str("An absolute directory.", pattern="^/"),
        },
        "defaultAllowedUids": _ids("Peer uids server interfaces accept besides memifd's own."),
        "defaultAllowedGids": _ids("Peer groups server interfaces accept (plus fsGroup)."),
        "dataPlaneSocketDir": _obj(
            "A node directory of a data plane's sockets, mounted into memifd (hostPath).",
            {
                "hostPath": _str("Directory on the node; empty mounts nothing.", pattern=ABSOLUTE),
                "mountPath": _str(
                    "Path in memifd's container; empty: as on the node.", pattern=ABSOLUTE
                ),
                "type": {"enum": ["Directory", "DirectoryOrCreate"]},
            },
        ),
        "listenAddress": _str("Address memifd binds for REST and gRPC.", minLength=1),
        "ports": _obj(
            "Container ports.",
            {"http": PORT | {"description": "REST"}, "grpc": PORT | {"description": "gRPC"}},
        ),
        "auth": _obj(
            "The API token.",
            {
                "token": _str("Token to store in the created Secret; empty generates one."),
                "existingSecret": _str("Use this Secret instead of creating one."),
                "secretKey": _str("Key of the token in the Secret.", minLength=1),
            },
        ),
        "tls": _obj(
            "TLS for REST and gRPC.",
            {"secretName": _str("A kubernetes.io/tls Secret; empty serves plain text.")},
        ),
        "logFormat": {"enum": ["auto", "json", "text"]},
        "logLevel": {"enum": ["debug", "info", "warning", "error", "critical"]},
        "accessLog": _bool("Log every HTTP request."),
        "interfaces": {
            "type": "array",
            "description": "Interfaces created at start, each a POST /v1/interfaces body.",
            "items": {"$ref": "#/$defs/InterfaceSpec"},
        },
        "extraEnv": _list("Extra environment variables of the memifd container."),
        "resources": _free("Resource requests and limits of the memifd container."),
        "podSecurityContext": _free("Pod security context."),
        "securityContext": _free("memifd container security context."),
        "livenessProbe": _probe("GET /healthz."),
        "readinessProbe": _probe("GET /readyz."),
        "startupProbe": _probe("GET /healthz until memifd has started."),
        "podAnnotations": _strings("Annotations of the pod."),
        "podLabels": _strings("Extra labels of the pod."),
        "nodeSelector": _strings("Node labels the pod requires."),
        "tolerations": _list("Taints the pod tolerates."),
        "affinity": _free("Pod affinity and anti-affinity."),
        "priorityClassName": _str("PriorityClass of the pod."),
        "terminationGracePeriodSeconds": _int("Seconds between SIGTERM and SIGKILL."),
        "extraVolumes": _list("Extra pod volumes."),
        "extraVolumeMounts": _list("Extra volume mounts of the memifd container."),
        "serviceAccount": _obj(
            "The pod's service account.",
            {
                "create": _bool("Create one."),
                "name": _str("Its name; empty derives one (or uses 'default')."),
                "annotations": _strings("Its annotations."),
                "automountToken": _bool("Mount a Kubernetes API token (memifd needs none)."),
            },
        ),
        "service": _obj(
            "The Service in front of REST and gRPC.",
            {
                "enabled": _bool("Render it."),
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "httpPort": PORT,
                "grpcPort": PORT,
                "annotations": _strings("Its annotations."),
            },
        ),
        "serviceMonitor": _obj(
            "A Prometheus Operator ServiceMonitor scraping /metrics with the token.",
            {
                "enabled": _bool("Render it."),
                "interval": _str("Scrape interval.", pattern=r"^[0-9]+(ms|s|m|h)$"),
                "scrapeTimeout": _str("Scrape timeout.", pattern=r"^[0-9]+(ms|s|m|h)$"),
                "labels": _strings("Labels the Prometheus selects ServiceMonitors by."),
                "tlsConfig": _free("TLS settings of the scrape when tls.secretName is set."),
            },
        ),
        "networkPolicy": _obj(
            "A NetworkPolicy limiting ingress to the pod.",
            {
                "enabled": _bool("Render it."),
                "from": _list("Peers allowed to reach REST and gRPC; empty allows all."),
                "extraIngress": _list("More ingress rules (the application's ports)."),
            },
        ),
        "helmTest": _obj(
            "The `helm test` pod checking REST and gRPC through the Service.",
            {
                "enabled": _bool("Render it."),
                "caKey": _str("Key of the CA certificate in tls.secretName.", minLength=1),
            },
        ),
        "dashboard": _obj(
            "A Grafana dashboard in a ConfigMap for Grafana's dashboard sidecar.",
            {
                "enabled": _bool("Render it."),
                "labels": _strings("Labels the Grafana sidecar looks for."),
                "annotations": _strings("Annotations (e.g. the sidecar's folder)."),
            },
        ),
        "app": app,
    }
    return {
        "$schema": DRAFT,
        "title": "memifd Helm chart values",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    """The schema as committed: indented JSON with a final newline."""
    return json.dumps(values_schema(), indent=2) + "\n"


def main() -> None:
    """Print the schema to stdout."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
