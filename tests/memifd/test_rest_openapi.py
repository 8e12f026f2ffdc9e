"""The REST API's operations, pinned: every method and path with its operationId, the
status codes it documents, its parameters and its request body's media types.

The committed list is ``openapi_operations.json`` beside this file; after a deliberate
change of the API, write it anew with ``python -m tests.memifd.test_rest_openapi``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from memifd.api.rest.app import create_app
from memifd.core.manager import Manager
from memifd.core.settings import Settings

PINNED = Path(__file__).with_name("openapi_operations.json")
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per operation of an OpenAPI document, sorted by path and method."""
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {})
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "operationId": op["operationId"],
                    "tags": op.get("tags", []),
                    "status_codes": sorted(op["responses"]),
                    "parameters": [
                        [p["in"], p["name"], p.get("required", False)]
                        for p in op.get("parameters", [])
                    ],
                    "request_media_types": sorted(body),
                }
            )
    return sorted(found, key=lambda op: (op["path"], op["method"]))


def current_operations(socket_dir: Path) -> list[dict[str, Any]]:
    """The operations of the app memifd serves (its manager need not run)."""
    app = create_app(Manager(Settings(socket_dir=socket_dir)), Settings(socket_dir=socket_dir))
    return operations(app.openapi())


def test_operations_match_the_pinned_list(tmp_path: Path) -> None:
    pinned = json.loads(PINNED.read_text())
    current = current_operations(tmp_path)
    assert [(op["method"], op["path"]) for op in current] == [
        (op["method"], op["path"]) for op in pinned
    ]
    for now, then in zip(current, pinned, strict=True):
        assert now == then, f"{now['method']} {now['path']} changed"


def test_operation_ids_are_unique(tmp_path: Path) -> None:
    ids = [op["operationId"] for op in current_operations(tmp_path)]
    assert len(ids) == len(set(ids))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        listed = current_operations(Path(directory))
    PINNED.write_text("[\n" + ",\n".join(json.dumps(op) for op in listed) + "\n]\n")
    print(f"wrote {len(listed)} operations to {PINNED}")
