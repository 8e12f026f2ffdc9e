"""The REST API: FastAPI routers that translate HTTP to manager calls and back.

Handlers are thin; the manager comes in through ``Depends`` and so does the
bearer-token check. ``GET /v1/interfaces`` serves cached JSON bytes while the
manager's generation counter says nothing changed, so polling it is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from memif import Mode
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from memifd import __version__
from memifd.api.rest import problems
from memifd.api.rest.guard import MAX_INJECT_BYTES, TOKEN_PROBLEM, RequestGuard
from memifd.api.rest.metrics import CONTENT_TYPE, make_registry, render
from memifd.api.rest.ui import install_ui
from memifd.core import pcap, pcapng
from memifd.core.capture import (
    CaptureFormat,
    CaptureSubscription,
    description,
    negotiate,
    pcapng_stream,
    summary,
)
from memifd.core.errors import InvalidArgumentError, NotFoundError
from memifd.core.manager import Manager
from memifd.core.models import (
    MAX_CAPTURE_COUNT,
    MAX_CAPTURE_DURATION,
    MAX_CAPTURE_INTERFACES,
    MAX_SNAPLEN,
    CaptureFilter,
    Direction,
    InjectResult,
    InterfacePatch,
    InterfacePreview,
    InterfaceSpec,
    InterfaceStats,
    InterfaceStatus,
    LinkDetails,
    LinkEvent,
)
from memifd.core.settings import Settings
from memifd.core.subscription import Subscription

MAX_INJECT_PACKETS = 65536
CAPTURE_BATCH = 4096
BATCH_BYTES = 1 << 20  # about this many packet bytes per chunk of a pcap stream
SSE_KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream
DRY_RUN_HEADER = "Memifd-Dry-Run"  # on the answer of a create with dry_run


class Health(BaseModel):
    """Answer of the probes."""

    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problems.documented("Missing or wrong bearer token"),
    404: problems.documented("No such interface"),
    409: problems.documented("Conflicts with the current state"),
    422: problems.documented("Invalid field (errors names each field and its limit)"),
    503: problems.documented("The worker is not running"),
}
_BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: problems.documented("The body cannot be parsed"),
    408: problems.documented("The body did not arrive in time"),
    413: problems.documented("The body is larger than the route allows"),
    415: problems.documented("The body is not of the route's media type"),
}
_LIMITS: dict[int | str, dict[str, Any]] = {
    507: problems.documented("A resource limit would be passed (names it)"),
}
NamePath = Annotated[str, Path(description="The interface's name.")]


# -- dependencies ----------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="The token memifd was started with.")


async def get_manager(request: Request) -> Manager:
    """The manager this app serves."""
    manager: Manager = request.app.state.manager
    return manager


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries the configured bearer token (if any)."""
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            status_code=401, detail=TOKEN_PROBLEM, headers={"WWW-Authenticate": "Bearer"}
        )


ManagerDep = Annotated[Manager, Depends(get_manager)]


# -- interfaces ------------------------------------------------------------------------------------

interfaces = APIRouter(prefix="/v1/interfaces", tags=["interfaces"], responses=_ERRORS)


class _ListCache:
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


@interfaces.post(
    "",
    response_model=InterfaceStatus,
    status_code=201,
    responses={
        **_BAD_BODY,
        **_LIMITS,
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


@interfaces.get("", response_model=list[InterfaceStatus])
async def list_interfaces(request: Request, manager: ManagerDep) -> Response:
    """Every interface with its state and counters."""
    cache: _ListCache = request.app.state.list_cache
    return Response(cache.get(manager), media_type="application/json")


@interfaces.get("/{name}", response_model=InterfaceStatus)
async def get_interface(name: NamePath, manager: ManagerDep) -> InterfaceStatus:
    """One interface with its state and counters."""
    return manager.get_interface(name)


@interfaces.patch("/{name}", response_model=InterfaceStatus, responses=_BAD_BODY)
def update_interface(name: NamePath, patch: InterfacePatch, manager: ManagerDep) -> InterfaceStatus:
    """Change rx_mode, action, xconnect_to or admin_up of a live interface."""
    return manager.update_interface(name, patch)


@interfaces.delete("/{name}", status_code=204, response_model=None)
def delete_interface(name: NamePath, manager: ManagerDep) -> Response:
    """Disconnect the peer and delete the interface."""
    manager.delete_interface(name)
    return Response(status_code=204)


@interfaces.get("/{name}/stats", response_model=InterfaceStats)
async def interface_stats(name: NamePath, manager: ManagerDep) -> InterfaceStats:
    """Counters of one interface."""
    return manager.interface_stats(name)


@interfaces.get("/{name}/link", response_model=LinkDetails)
def interface_link(name: NamePath, manager: ManagerDep) -> LinkDetails:
    """The shared memory of the interface's link: the geometry negotiated, the regions, and
    the rings with their head and tail right now (empty unless connected)."""
    return manager.link_details(name)


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


@interfaces.get(
    "/{name}/capture",
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


captures = APIRouter(prefix="/v1", tags=["interfaces"], responses=_ERRORS)


@captures.get(
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


@interfaces.post(
    "/{name}/packets",
    response_model=InjectResult,
    responses=_BAD_BODY,
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


# -- events ----------------------------------------------------------------------------------------

events = APIRouter(prefix="/v1", tags=["events"], responses=_ERRORS)


@events.get(
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


# -- health and metrics ----------------------------------------------------------------------------

health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=Health, responses={503: {"model": Health}})
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


@health.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(manager: ManagerDep, response: Response) -> Health:
    """Readiness: the worker runs, its loop turned within ``worker_stall_unready`` seconds,
    every socket is bound, the socket directory is writable."""
    reason = manager.not_ready_reason
    if reason is not None:
        response.status_code = 503
        return Health(status=f"not ready: {reason}")
    return Health(status="ready")


metrics = APIRouter(tags=["metrics"], responses={401: _ERRORS[401]})


@metrics.get("/metrics", response_class=PlainTextResponse, response_model=None)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(render(request.app.state.registry), media_type=CONTENT_TYPE)


# -- streaming helpers -----------------------------------------------------------------------------


def _wake_on_arrival(sub: Subscription[Any]) -> asyncio.Event:
    """An asyncio event set (from the worker thread) when ``sub`` gets items or ends."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone
            loop.call_soon_threadsafe(arrived.set)

    sub.set_waker(wake)
    return arrived


async def _batches(
    sub: Subscription[Any], max_items: int, keepalive: float | None = None
) -> AsyncIterator[list[Any]]:
    """Batches from ``sub`` until it ends; an empty batch every ``keepalive`` seconds."""
    arrived = _wake_on_arrival(sub)
    try:
        while True:
            batch = sub.get_batch(max_items, 0, BATCH_BYTES)
            if batch:
                yield batch
                continue
            if sub.closed:
                return
            arrived.clear()
            if len(sub) or sub.closed:
                continue
            try:
                await asyncio.wait_for(arrived.wait(), keepalive)
            except TimeoutError:
                yield []
    finally:
        sub.set_waker(None)
        sub.close()


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
            _batches(sub, CAPTURE_BATCH),
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
    async for batch in _batches(sub, CAPTURE_BATCH):
        yield pcap.records((p.timestamp_ns, p.orig_len, p.data) for p in batch)


async def _sse_stream(
    sub: Subscription[Any], interface: str | None = None, current: list[LinkEvent] | None = None
) -> AsyncIterator[str]:
    yield ": memifd link events\n\n"
    for event in current or ():
        yield f"event: link\ndata: {event.model_dump_json()}\n\n"
    async for batch in _batches(sub, 256, SSE_KEEPALIVE):
        if not batch:
            yield ": keepalive\n\n"
        for event in batch:
            if interface is None or event.interface == interface:
                yield f"event: link\ndata: {event.model_dump_json()}\n\n"
    yield f"event: end\ndata: {sub.close_reason or 'stream ended'}\n\n"


async def _read_body(request: Request, limit: int) -> bytes:
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


# -- errors ----------------------------------------------------------------------------------------


def _invalid_query(exc: InvalidArgumentError) -> RequestValidationError:
    """The manager's refusal of a query parameter, reported as FastAPI reports its own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", exc.field), "msg": exc.message}]
    )


# -- the app ---------------------------------------------------------------------------------------


def create_app(manager: Manager, settings: Settings) -> FastAPI:
    """The FastAPI application serving ``manager``."""
    app = FastAPI(
        title="memifd",
        version=__version__,
        summary="Manage memif (shared-memory packet interface) interfaces",
        docs_url=None,  # served offline by install_ui, not from a CDN
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    app.state.manager = manager
    token = settings.token_value
    app.state.token = token.encode() if token is not None else None
    app.state.list_cache = _ListCache()
    app.state.registry = make_registry(manager)
    auth = [Depends(require_token)]
    app.include_router(health)
    app.include_router(interfaces, dependencies=auth)
    app.include_router(events, dependencies=auth)
    app.include_router(captures, dependencies=auth)
    app.include_router(metrics, dependencies=auth)
    problems.install(app)
    install_ui(app)
    app.add_middleware(
        RequestGuard,
        token=token,
        allowed_hosts=settings.allowed_hosts,
        body_timeout=settings.http_body_timeout,
    )
    openapi = app.openapi
    app.openapi = lambda: problems.add_schemas(openapi())  # type: ignore[method-assign]
    return app


# operationIds: the handler's name in camelCase, unless it says too little
_OPERATION_IDS = {
    "interface_stats": "getInterfaceStats",
    "interface_link": "getInterfaceLink",
    "capture": "captureInterface",
    "inject": "injectPackets",
    "link_events": "watchEvents",
    "prometheus_metrics": "getMetrics",
}


def _operation_id(route: APIRoute) -> str:
    name = _OPERATION_IDS.get(route.name, route.name)
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
