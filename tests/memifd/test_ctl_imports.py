"""memifctl is a client: importing it loads none of the server's modules."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = (
    "memifd.core.manager",
    "memifd.core.engine",
    "memifd.core.subscription",
    "memifd.core.capture",
    "memifd.core.settings",
    "memifd.api.rest",
    "memifd.api.grpc.server",
    "memifd.api.grpc.servicer",
    "memifd.api.grpc.handlers",
    "memifd.cli.serve",
    "fastapi",
    "uvicorn",
)


def _loaded_after_import(module: str) -> list[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def _server_modules(loaded: list[str]) -> list[str]:
    return [
        name
        for name in loaded
        if any(name == server or name.startswith(f"{server}.") for server in SERVER_MODULES)
    ]


def test_ctl_imports_no_server_module() -> None:
    loaded = _loaded_after_import("memifd.cli.ctl")
    assert "memifd.cli.ctl" in loaded
    assert _server_modules(loaded) == []


def test_the_check_sees_a_server_module() -> None:
    assert _server_modules(_loaded_after_import("memifd.api.rest.app")) != []
