"""The status page at ``/`` and the API docs at ``/docs`` and ``/redoc``, all served offline.

The page is rendered here (the interface table, unless a token guards the API) and kept
live by ``static/app.js``, which polls ``/v1/interfaces`` for counters and follows
``/v1/events`` for link changes. Every URL in the page starts with the request's root
path, so it works behind a proxy that serves memifd under a prefix. Swagger UI and ReDoc
load their scripts from the ``fastapi-offline`` package through ``/static/docs``, never
from a CDN, so the docs render in a cluster without internet access.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import string
import urllib.parse
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Route

from memifd import __version__
from memifd.core.manager import Manager
from memifd.core.models import InterfaceStatus, QueueCounters

STATIC_DIR = Path(__file__).parent / "static"
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
UI_STATIC = "/static/ui"
DOCS_STATIC = "/static/docs"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
CAPTURE_COUNT = 1000  # each row's capture link saves at most this many packets ...
CAPTURE_SECONDS = 10  # ... or what arrives in this many seconds, so it ends on an idle link

# The page loads nothing but its own script, style and icon, and talks only to memifd.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# Swagger UI and ReDoc need inline scripts and styles, and ReDoc a worker; nothing else.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'"
)

# ReDoc draws its makers' logo from their CDN; memifd serves ReDoc's script with a blank
# inline image in its place, so the page asks nothing of the internet.
REDOC_SCRIPT = "/static/redoc/redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"

router = APIRouter(include_in_schema=False)


def install_ui(app: FastAPI) -> None:
    """Serve the status page and offline API docs from ``app`` (once; later calls do nothing).

    Routes FastAPI created for its CDN-based ``/docs`` and ``/redoc`` are replaced.
    """
    if getattr(app.state, "ui_installed", False):
        return
    _drop_routes(app, {path for path in (app.docs_url, app.redoc_url) if path})
    app.mount(UI_STATIC, StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    app.include_router(router)
    app.state.ui_installed = True


def _drop_routes(app: FastAPI, paths: set[str]) -> None:
    keep: list[BaseRoute] = [
        route
        for route in app.router.routes
        if not (isinstance(route, Route) and route.path in paths)
    ]
    app.router.routes[:] = keep


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


# -- the status page -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def status_page(request: Request) -> HTMLResponse:
    """The status page; the table is filled here unless the API needs a token."""
    root = _root(request)
    manager: Manager = request.app.state.manager
    guarded = request.app.state.token is not None
    interfaces = [] if guarded else manager.list_interfaces()
    page = _template().substitute(
        root=html.escape(root),
        static=html.escape(root + UI_STATIC),
        version=html.escape(__version__),
        rows="\n".join(render_row(status, root) for status in interfaces),
        capture_count=CAPTURE_COUNT,
        capture_seconds=CAPTURE_SECONDS,
        capture_title=html.escape(CAPTURE_TITLE),
        empty_hidden="hidden" if interfaces or guarded else "",
        loading_hidden="" if guarded else "hidden",
    )
    return HTMLResponse(
        page,
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"},
    )


@functools.cache
def _template() -> string.Template:
    return string.Template((STATIC_DIR / "index.html").read_text())


def capture_url(root: str, name: str) -> str:
    """Where a row's capture link points (``app.js`` builds the same)."""
    query = f"count={CAPTURE_COUNT}&duration={CAPTURE_SECONDS}"
    return f"{root}/v1/interfaces/{urllib.parse.quote(name, safe='')}/capture?{query}"


def render_row(status: InterfaceStatus, root: str) -> str:
    """One interface as a table row; ``app.js`` builds the same markup when it updates."""
    name = html.escape(status.name)
    peer = "—"
    if status.peer is not None:
        about = [status.peer.name] if status.peer.name else []
        if status.peer.pid is not None:
            about.append(f"pid {status.peer.pid}")
        peer = (
            f"<div>{html.escape(status.peer.app_name or '?')}</div>"
            f'<div class="sub">{html.escape(" · ".join(about))}</div>'
        )
    state = html.escape(status.state.value)
    admin = "" if status.admin_up else ' <span class="badge admin-down">admin down</span>'
    stats = status.stats
    capture = html.escape(capture_url(root, status.name))
    about_iface = (
        f'<span data-field="role">{html.escape(status.role.value)}</span> · '
        f"{html.escape(status.mode.value)} · id {status.id} · {html.escape(status.action.value)}"
    )
    return f"""<tr data-name="{name}">
  <td data-field="name"><strong>{name}</strong>
    <div class="sub">{about_iface}</div></td>
  <td data-field="socket"><code>{html.escape(status.socket_path)}</code></td>
  <td data-field="peer">{peer}</td>
  <td data-field="link"><span data-field="state"><span class="badge state-{state}">{state}</span>{admin}</span>
    <div class="sub" data-field="reason">{html.escape(status.disconnect_reason) or "—"}</div></td>
  <td data-field="totals"><div>rx <span data-field="rx-packets">{stats.rx.packets:,}</span></div>
    <div>tx <span data-field="tx-packets">{stats.tx.packets:,}</span></div></td>
  <td data-field="queues">{_queue_table(stats.rx_queues, stats.tx_queues)}</td>
  <td class="actions"><div class="row-actions">
    <a class="button" data-action="capture" href="{capture}" download="{name}.pcap" title="{CAPTURE_TITLE}">capture {CAPTURE_SECONDS} s</a>
    <button type="button" class="secondary" data-action="edit">edit</button>
    <form class="delete" data-name="{name}"><button type="submit" class="danger">delete</button>
      <span class="field-error" role="alert"></span></form>
  </div></td>
</tr>"""  # noqa: E501


CAPTURE_TITLE = (
    f"save a pcap file of what the interface sends and receives: up to {CAPTURE_COUNT} "
    f"packets, for at most {CAPTURE_SECONDS} seconds"
)


def _queue_table(rx: list[QueueCounters], tx: list[QueueCounters]) -> str:
    """Per-queue rates; the page computes them from counter deltas, so none yet."""
    rows = "".join(
        f'<tr data-queue="{index}"><th>{index}</th>'
        + "".join(
            f'<td data-rate="{key}"{_DIR_EDGE if key.endswith("-packets") else ""}>–</td>'
            for key in _RATE_KEYS
        )
        + "</tr>"
        for index in range(max(len(rx), len(tx)))
    )
    return f'<table class="queues"><thead>{_QUEUE_HEAD}</thead><tbody>{rows}</tbody></table>'


_RATE_KEYS = ("rx-packets", "rx-bytes", "rx-drops", "tx-packets", "tx-bytes", "tx-drops")
_DIR_EDGE = ' class="dir"'
_QUEUE_HEAD = (
    '<tr><th></th><th colspan="3" class="dir">rx</th><th colspan="3" class="dir">tx</th></tr>'
    '<tr><th>q</th><th class="dir">pkt/s</th><th>B/s</th><th>drop/s</th>'
    '<th class="dir">pkt/s</th><th>B/s</th><th>drop/s</th></tr>'
)


# -- API docs --------------------------------------------------------------------------------------


@router.get(DOCS_URL, response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI with its script and style served by memifd."""
    app: FastAPI = request.app
    root = _root(request)
    assets = root + DOCS_STATIC
    page = get_swagger_ui_html(
        openapi_url=root + (app.openapi_url or "/openapi.json"),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{root}{UI_STATIC}/favicon.svg",
        oauth2_redirect_url=None,  # the API takes a bearer token, not OAuth2
        # no badge from the public validator: it would call out to the internet
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get(REDOC_URL, response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc with its script served by memifd and no web fonts."""
    app: FastAPI = request.app
    root = _root(request)
    page = get_redoc_html(
        openapi_url=root + (app.openapi_url or "/openapi.json"),
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{REDOC_SCRIPT}",
        redoc_favicon_url=f"{root}{UI_STATIC}/favicon.svg",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get(REDOC_SCRIPT)
async def redoc_script() -> Response:
    """ReDoc's script, its one reference to the internet (a logo) made an inline image."""
    return Response(
        _redoc_script(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@functools.cache
def _redoc_script() -> bytes:
    return (
        (DOCS_ASSETS / "redoc.standalone.js")
        .read_bytes()
        .replace(REDOC_LOGO.encode(), BLANK_IMAGE.encode())
    )
