"""``/v1/interfaces/{name}/capture`` and ``/v1/capture``: packets streamed as a capture file
(pcap or pcapng for one interface, pcapng for several)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from memifd import __version__
from memifd.api.rest.dependencies import ERRORS, ManagerDep, NamePath
from memifd.api.rest.streaming import batches
from memifd.core import pcap, pcapng
from memifd.core.capture import CaptureSubscription, description, pcapng_stream, summary
from memifd.core.capture_format import CaptureFormat, negotiate
from memifd.core.errors import InvalidArgumentError, NotFoundError
from memifd.core.manager import Manager
from memifd.core.models import (
    MAX_CAPTURE_COUNT,
    MAX_CAPTURE_DURATION,
    MAX_CAPTURE_INTERFACES,
    MAX_SNAPLEN,
    CaptureFilter,
    Direction,
    InterfaceStatus,
)

CAPTURE_BATCH = 4096

router = APIRouter(prefix="/v1", tags=["interfaces"], responses=ERRORS)

_CAPTURE_FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {pcap.MEDIA_TYPE: {}, pcapng.MEDIA_TYPE: {}},
        "description": "A pcap or pcapng file, streamed as packets arrive",
    }
}
_FORMAT_QUERY = Query(
    description="pcap or pcapng; unset: what the Accept header prefers "
    f"({pcapng.MEDIA_TYPE} or {pcap.MEDIA_TYPE})"
)

# The query parameters every capture route takes.
CaptureCount = Annotated[
    int | None, Query(ge=1, le=MAX_CAPTURE_COUNT, description="Stop after this many packets.")
]
CaptureDuration = Annotated[
    float | None,
    Query(gt=0, le=MAX_CAPTURE_DURATION, description="Stop after this many seconds."),
]
CaptureSnaplen = Annotated[
    int, Query(ge=1, le=MAX_SNAPLEN, description="Bytes kept of each packet.")
]
CaptureDirection = Annotated[
    Direction, Query(description="Packets received (rx), sent (tx) or both.")
]
CaptureQueue = Annotated[
    int | None,
    Query(ge=0, le=254, description="Only this queue (one the interface has); all if unset."),
]


@router.get(
    "/interfaces/{name}/capture",
    response_model=None,
    response_class=StreamingResponse,
    responses=_CAPTURE_FILES,
)
async def capture(
    name: NamePath,
    request: Request,
    manager: ManagerDep,
    count: CaptureCount = None,
    duration: CaptureDuration = None,
    snaplen: CaptureSnaplen = MAX_SNAPLEN,
    direction: CaptureDirection = Direction.BOTH,
    queue: CaptureQueue = None,
    format: Annotated[CaptureFormat | None, _FORMAT_QUERY] = None,
) -> StreamingResponse:
    """Stream packets of the interface as a capture file until ``count`` or ``duration``
    (or until the client goes away): pcap unless pcapng is asked for."""
    status = manager.get_interface(name)
    chosen = format or negotiate(request.headers.get("accept"), CaptureFormat.PCAP)
    flt = CaptureFilter(
        interface=name,
        queue=queue,
        direction=direction,
        count=count,
        duration=duration,
        snaplen=snaplen,
    )
    return await _capture_response(manager, flt, chosen, name, [status])


@router.get(
    "/capture",
    response_model=None,
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {pcapng.MEDIA_TYPE: {}},
            "description": "A pcapng file with an interface block per memif interface",
        }
    },
)
async def capture_many(
    manager: ManagerDep,
    interface: Annotated[
        list[str],
        Query(
            max_length=MAX_CAPTURE_INTERFACES,
            description="Interfaces to capture (repeat the parameter); none: every interface, "
            "including those created during the capture.",
        ),
    ] = [],  # noqa: B006
    count: CaptureCount = None,
    duration: CaptureDuration = None,
    snaplen: CaptureSnaplen = MAX_SNAPLEN,
    direction: CaptureDirection = Direction.BOTH,
    queue: CaptureQueue = None,
) -> StreamingResponse:
    """Stream packets of several interfaces (or all) as one pcapng file."""
    names = list(dict.fromkeys(interface))
    statuses = (
        [manager.get_interface(name) for name in names] if names else manager.list_interfaces()
    )
    flt = CaptureFilter(
        interfaces=names or None,
        queue=queue,
        direction=direction,
        count=count,
        duration=duration,
        snaplen=snaplen,
    )
    return await _capture_response(manager, flt, CaptureFormat.PCAPNG, "memifd", statuses)


async def _capture_response(
    manager: Manager,
    flt: CaptureFilter,
    fmt: CaptureFormat,
    stem: str,
    statuses: list[InterfaceStatus],
) -> StreamingResponse:
    """Start the capture and stream it in format ``fmt``."""
    try:
        sub = await run_in_threadpool(manager.capture, flt)
    except InvalidArgumentError as exc:  # a queue the interface lacks: name the parameter
        raise _invalid_query(exc) from None
    if fmt is CaptureFormat.PCAP:
        linktype = pcap.linktype_for(statuses[0].mode)
        body = _pcap_stream(sub, pcap.global_header(linktype, flt.snaplen))
        media_type = pcap.MEDIA_TYPE
    else:
        body = pcapng_stream(
            sub,
            batches(sub, CAPTURE_BATCH),
            application=f"memifd {__version__}",
            snaplen=flt.snaplen,
            interfaces=[(s.name, pcap.linktype_for(s.mode), description(s)) for s in statuses],
            linktype_of=lambda name: _linktype_of(manager, name),
            comment=summary(flt),
        )
        media_type = pcapng.MEDIA_TYPE
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{stem}.{fmt.value}"',
            "Vary": "Accept",
        },
    )


def _linktype_of(manager: Manager, name: str) -> int:
    """The link type of an interface first seen during a capture (gone: Ethernet)."""
    try:
        return pcap.linktype_for(manager.get_interface(name).mode)
    except NotFoundError:
        return pcap.LINKTYPE_ETHERNET


async def _pcap_stream(sub: CaptureSubscription, header: bytes) -> AsyncIterator[bytes]:
    yield header
    async for batch in batches(sub, CAPTURE_BATCH):
        yield pcap.records((p.timestamp_ns, p.orig_len, p.data) for p in batch)


def _invalid_query(exc: InvalidArgumentError) -> RequestValidationError:
    """The manager's refusal of a query parameter, reported as FastAPI reports its own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", exc.field), "msg": exc.message}]
    )
