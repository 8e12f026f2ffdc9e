"""``/v1/interfaces/{name}/packets``: send the packets of a pcap or pcapng body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from memif import Mode
from starlette.concurrency import run_in_threadpool

from memifd.api.rest.dependencies import BAD_BODY, ERRORS, ManagerDep, NamePath
from memifd.api.rest.guard import MAX_INJECT_BYTES
from memifd.core import pcap, pcapng
from memifd.core.errors import InvalidArgumentError
from memifd.core.models import InjectResult

MAX_INJECT_PACKETS = 65536

router = APIRouter(prefix="/v1/interfaces", tags=["interfaces"], responses=ERRORS)


@router.post(
    "/{name}/packets",
    response_model=InjectResult,
    responses=BAD_BODY,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in (pcap.MEDIA_TYPE, pcapng.MEDIA_TYPE)
            },
        }
    },
)
async def inject(
    name: NamePath,
    request: Request,
    manager: ManagerDep,
    queue: Annotated[
        int, Query(ge=0, le=254, description="The transmit queue (a connected one).")
    ] = 0,
) -> InjectResult:
    """Send the packets of a pcap or pcapng body (LINKTYPE_ETHERNET for ethernet,
    LINKTYPE_RAW for ip); answers how many found room on the ring."""
    status = manager.get_interface(name)
    body = await _read_body(request, MAX_INJECT_BYTES)
    reader = pcapng.read if pcapng.is_pcapng(body) else pcap.read
    parsed = reader(body, max_packets=MAX_INJECT_PACKETS)
    expected = pcap.linktype_for(status.mode)
    if status.mode is not Mode.PUNT_INJECT and parsed.linktype != expected:
        raise InvalidArgumentError(
            "",
            f"pcap link type {parsed.linktype} does not fit interface mode "
            f"{status.mode.value} (expected {expected})",
        )
    if not parsed.packets:
        return InjectResult(accepted=0, ring_full=0)
    return await run_in_threadpool(manager.inject, name, parsed.packets, queue)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {declared} bytes exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
