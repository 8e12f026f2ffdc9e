"""``/v1/interfaces``: create, list, read, change and delete interfaces.

``GET /v1/interfaces`` serves cached JSON bytes while the manager's generation counter
says nothing changed, so polling it is cheap.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from memifd.api.rest.dependencies import BAD_BODY, ERRORS, LIMITS, ManagerDep, NamePath
from memifd.core.manager import Manager
from memifd.core.models import InterfacePatch, InterfacePreview, InterfaceSpec, InterfaceStatus

DRY_RUN_HEADER = "Memifd-Dry-Run"  # on the answer of a create with dry_run

router = APIRouter(prefix="/v1/interfaces", tags=["interfaces"], responses=ERRORS)


class ListCache:
    """JSON of the interface list, rebuilt only when the manager's generation moved."""

    def __init__(self) -> None:
        self.generation = -1
        self.body = b"[]"

    def get(self, manager: Manager) -> bytes:
        generation = manager.generation
        if generation != self.generation:
            self.body = manager.list_interfaces_json()
            self.generation = generation
        return self.body


@router.post(
    "",
    response_model=InterfaceStatus,
    status_code=201,
    responses={
        **BAD_BODY,
        **LIMITS,
        200: {
            "model": InterfacePreview,
            "description": "dry_run: validated, nothing created. The body is the interface as "
            "it would be, with `dry_run: true`, and the header "
            f"`{DRY_RUN_HEADER}: true` says so too.",
            "headers": {
                DRY_RUN_HEADER: {
                    "description": "`true`: a preview, nothing was created.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
    },
)
def create_interface(
    spec: InterfaceSpec,
    manager: ManagerDep,
    dry_run: Annotated[
        bool,
        Query(
            description="Only validate and answer 200 with a preview (`dry_run: true`); "
            "create nothing."
        ),
    ] = False,
) -> Any:
    """Create an interface (a server listens at once, a client starts connecting)."""
    status = manager.create_interface(spec, dry_run=dry_run)
    if not dry_run:
        return status
    preview = InterfacePreview.model_validate({**status.model_dump(), "dry_run": True})
    return JSONResponse(preview.model_dump(mode="json"), headers={DRY_RUN_HEADER: "true"})


@router.get("", response_model=list[InterfaceStatus])
async def list_interfaces(request: Request, manager: ManagerDep) -> Response:
    """Every interface with its state and counters."""
    cache: ListCache = request.app.state.list_cache
    return Response(cache.get(manager), media_type="application/json")


@router.get("/{name}", response_model=InterfaceStatus)
async def get_interface(name: NamePath, manager: ManagerDep) -> InterfaceStatus:
    """One interface with its state and counters."""
    return manager.get_interface(name)


@router.patch("/{name}", response_model=InterfaceStatus, responses=BAD_BODY)
def update_interface(name: NamePath, patch: InterfacePatch, manager: ManagerDep) -> InterfaceStatus:
    """Change rx_mode, action, xconnect_to or admin_up of a live interface."""
    return manager.update_interface(name, patch)


@router.delete("/{name}", status_code=204, response_model=None)
def delete_interface(name: NamePath, manager: ManagerDep) -> Response:
    """Disconnect the peer and delete the interface."""
    manager.delete_interface(name)
    return Response(status_code=204)
