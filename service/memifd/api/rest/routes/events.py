"""``/v1/events``: link state changes as server-sent events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from memifd.api.rest.dependencies import ERRORS, ManagerDep
from memifd.api.rest.streaming import batches
from memifd.core.models import LinkEvent
from memifd.core.subscription import Subscription

SSE_KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream

router = APIRouter(prefix="/v1", tags=["events"], responses=ERRORS)


@router.get(
    "/events",
    response_model=None,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Link events"}},
)
async def link_events(
    manager: ManagerDep,
    interface: Annotated[
        str | None, Query(description="Only this interface's events (404 when it does not exist).")
    ] = None,
    include_current: Annotated[
        bool, Query(description="Start with one event per interface giving its current state.")
    ] = False,
) -> StreamingResponse:
    """Server-sent events, one ``event: link`` per link state change."""
    sub = await run_in_threadpool(manager.subscribe_events, 1024, interface)
    current = []
    if include_current:  # after subscribing: a change in between shows up twice, never not
        now = time.time()
        current = [
            LinkEvent(
                interface=s.name,
                state=s.state.value,
                peer=s.peer,
                reason=s.disconnect_reason,
                timestamp=now,
            )
            for s in manager.list_interfaces()
            if interface is None or s.name == interface
        ]
    return StreamingResponse(
        _sse_stream(sub, interface, current),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse_stream(
    sub: Subscription[Any], interface: str | None = None, current: list[LinkEvent] | None = None
) -> AsyncIterator[str]:
    yield ": memifd link events\n\n"
    for event in current or ():
        yield f"event: link\ndata: {event.model_dump_json()}\n\n"
    async for batch in batches(sub, 256, SSE_KEEPALIVE):
        if not batch:
            yield ": keepalive\n\n"
        for event in batch:
            if interface is None or event.interface == interface:
                yield f"event: link\ndata: {event.model_dump_json()}\n\n"
    yield f"event: end\ndata: {sub.close_reason or 'stream ended'}\n\n"
