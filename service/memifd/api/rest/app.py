"""The REST API's FastAPI application: the routers of ``routes/``, the error answers, the
docs pages and the request guard, put together around one manager.

Handlers are thin; the manager comes in through ``Depends`` and so does the
bearer-token check (see :mod:`memifd.api.rest.dependencies`).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from memifd import __version__
from memifd.api.rest import problems
from memifd.api.rest.dependencies import require_token
from memifd.api.rest.guard import RequestGuard
from memifd.api.rest.metrics import make_registry
from memifd.api.rest.routes import capture, events, health, inject, interfaces, link, metrics, stats
from memifd.api.rest.ui import install_ui
from memifd.core.manager import Manager
from memifd.core.settings import Settings

# in the order the OpenAPI document lists them; all but the probes need the token
_GUARDED = (interfaces, stats, link, capture, inject, events, metrics)


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
    app.state.list_cache = interfaces.ListCache()
    app.state.registry = make_registry(manager)
    app.include_router(health.router)
    for module in _GUARDED:
        app.include_router(module.router, dependencies=[Depends(require_token)])
    problems.install(app)
    install_ui(app)
    app.add_middleware(
        RequestGuard,
        token=token,
        allowed_hosts=settings.allowed_hosts,
        body_timeout=settings.http_body_timeout,
        body_memory=settings.http_body_memory,
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
