"""``/healthz`` and ``/readyz``: the liveness and readiness probes (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from memifd.api.rest.dependencies import ManagerDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Answer of the probes."""

    status: str


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(manager: ManagerDep, response: Response) -> Health:
    """Liveness: the worker thread is alive and its loop turned within
    ``worker_stall_unhealthy`` seconds."""
    if not manager.running:
        response.status_code = 503
        return Health(status="worker not running")
    if not manager.live:
        response.status_code = 503
        return Health(status=f"worker stalled for {manager.worker_stall:.0f} s")
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(manager: ManagerDep, response: Response) -> Health:
    """Readiness: the worker runs, its loop turned within ``worker_stall_unready`` seconds,
    every socket is bound, the socket directory is writable."""
    reason = manager.not_ready_reason
    if reason is not None:
        response.status_code = 503
        return Health(status=f"not ready: {reason}")
    return Health(status="ready")
