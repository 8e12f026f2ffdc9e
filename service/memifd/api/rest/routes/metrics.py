"""``/metrics``: the Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from memifd.api.rest.dependencies import ERRORS
from memifd.api.rest.metrics import CONTENT_TYPE, render

router = APIRouter(tags=["metrics"], responses={401: ERRORS[401]})


@router.get("/metrics", response_class=PlainTextResponse, response_model=None)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(render(request.app.state.registry), media_type=CONTENT_TYPE)
