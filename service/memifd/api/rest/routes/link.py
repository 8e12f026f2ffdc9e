"""``/v1/interfaces/{name}/link``: the shared memory of an interface's link."""

from __future__ import annotations

from fastapi import APIRouter

from memifd.api.rest.dependencies import ERRORS, ManagerDep, NamePath
from memifd.core.models import LinkDetails

router = APIRouter(prefix="/v1/interfaces", tags=["interfaces"], responses=ERRORS)


@router.get("/{name}/link", response_model=LinkDetails)
def interface_link(name: NamePath, manager: ManagerDep) -> LinkDetails:
    """The shared memory of the interface's link: the geometry negotiated, the regions, and
    the rings with their head and tail right now (empty unless connected)."""
    return manager.link_details(name)
