"""``/v1/interfaces/{name}/stats``: the counters of one interface."""

from __future__ import annotations

from fastapi import APIRouter

from memifd.api.rest.dependencies import ERRORS, ManagerDep, NamePath
from memifd.core.models import InterfaceStats

router = APIRouter(prefix="/v1/interfaces", tags=["interfaces"], responses=ERRORS)


@router.get("/{name}/stats", response_model=InterfaceStats)
async def interface_stats(name: NamePath, manager: ManagerDep) -> InterfaceStats:
    """Counters of one interface."""
    return manager.interface_stats(name)
