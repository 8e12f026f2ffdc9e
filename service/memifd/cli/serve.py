"""``memifd serve``: start the manager, the REST API (uvicorn) and the gRPC API.

SIGTERM or SIGINT stops accepting requests, disconnects every peer with a
reason, ends open streams, removes the socket files and exits with status 0,
all within ``shutdown_timeout`` seconds: if the worker does not stop in time,
memifd removes its socket files itself and exits with status 1.
SIGHUP reloads the interfaces the config file declares.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
import uvicorn
from pydantic import ValidationError

from memifd import __version__
from memifd.api.grpc.server import GrpcServerHandle, serve_grpc
from memifd.api.rest.access import AccessLog
from memifd.api.rest.app import create_app
from memifd.api.rest.server import uvicorn_config
from memifd.cli.reload import Reloader
from memifd.core import logs, malloc
from memifd.core.errors import MemifdError
from memifd.core.limits import raise_fd_limit, reserve_fd_table
from memifd.core.manager import Manager
from memifd.core.settings import ENV_PREFIX, Settings, load_settings, split_address

log = logging.getLogger("memifd")

SHUTDOWN_REASON = "memifd shutting down"
GRACEFUL_SHUTDOWN = 2.0  # seconds open HTTP connections get after a signal
GRPC_GRACE = 1.0  # seconds open gRPC calls get after a signal

app = typer.Typer(
    help="memifd: memif (shared-memory packet interface) interfaces as a service.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"memifd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print memifd's version and exit.",
        ),
    ] = False,
) -> None:
    """memifd: memif (shared-memory packet interface) interfaces as a service."""


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with settings and interfaces.")
    ] = None,
    socket_dir: Annotated[
        Path | None, typer.Option(help="Directory for relative socket names.")
    ] = None,
    http_addr: Annotated[str | None, typer.Option(help="REST listen address host:port.")] = None,
    grpc_addr: Annotated[str | None, typer.Option(help="gRPC listen address host:port.")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the API bearer token.")
    ] = None,
    insecure: Annotated[
        bool | None,
        typer.Option("--insecure", help="Allow non-loopback addresses without a token."),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate (HTTP and gRPC).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key.")] = None,
    root_path: Annotated[str | None, typer.Option(help="URL prefix behind a proxy.")] = None,
    log_format: Annotated[str | None, typer.Option(help="auto|json|text.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug|info|warning|error.")] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log", help="Log every HTTP request.")
    ] = None,
) -> None:
    """Run memifd until SIGTERM or SIGINT."""
    try:
        settings = load_settings(
            config=config,
            socket_dir=socket_dir,
            http_addr=http_addr,
            grpc_addr=grpc_addr,
            token_file=token_file,
            insecure=insecure,
            tls_cert=tls_cert,
            tls_key=tls_key,
            root_path=root_path,
            log_format=log_format,
            log_level=log_level,
            access_log=access_log,
        )
    except ValidationError as exc:
        _fail("invalid settings: " + describe_errors(exc), log_format=log_format)
    except (ValueError, TypeError) as exc:
        _fail(f"invalid settings: {_one_line(str(exc))}", log_format=log_format)
    logs.configure(settings.log_format, settings.log_level)
    flags = {
        "config": config,
        "socket_dir": socket_dir,
        "http_addr": http_addr,
        "grpc_addr": grpc_addr,
        "token_file": token_file,
        "insecure": insecure,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "root_path": root_path,
        "log_format": log_format,
        "log_level": log_level,
        "access_log": access_log,
    }
    run(settings, reload=functools.partial(load_settings, **flags))


MAX_ERRORS_SHOWN = 5


def describe_errors(exc: ValidationError) -> str:
    """Every error on one line, naming the field; never the input (it may be a secret)."""
    parts = []
    errors = exc.errors()
    for error in errors[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in error["loc"])
        message = _one_line(error["msg"].removeprefix("Value error, "))
        parts.append(f"{where}: {message}" if where else message)
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "; ".join(parts)


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` without line breaks or control characters, at most ``limit`` characters."""
    flat = " ".join(text.split())
    flat = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _fail(message: str, code: int = 2, log_format: str | None = None) -> NoReturn:
    """Report ``message`` as an error in the log format and exit with ``code``.

    Settings that fail come before logging is set up: then the flag or the
    environment picks the format, and text is one ``memifd: ...`` line.
    """
    if not logging.getLogger().handlers:
        wanted = (log_format or os.environ.get(f"{ENV_PREFIX}LOG_FORMAT") or "auto").lower()
        if logs.choose_format(wanted, sys.stderr) != "json":
            typer.echo(f"memifd: {message}", err=True)
            raise typer.Exit(code)
        logs.configure("json")
    log.error(message)
    for handler in logging.getLogger().handlers:  # the log is written by a thread: wait for it
        handler.flush()
    raise typer.Exit(code)


class _Server(uvicorn.Server):
    """uvicorn, plus: a signal first ends the manager's streams, and exits with 0."""

    def __init__(
        self, config: uvicorn.Config, on_signal: threading.Thread, deadline: threading.Timer
    ) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._deadline = deadline
        self._stopping = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        if self._stopping:
            return
        # Set before starting: a second signal landing inside start() must not start
        # the same thread twice.
        self._stopping = True
        with contextlib.suppress(RuntimeError):
            self._deadline.start()  # exits the process if stopping takes too long
            self._on_signal.start()  # a signal handler must not block: stop in a thread


def bind_http(address: str) -> socket.socket:
    """A listening TCP socket for ``host:port`` (port 0 picks a free one)."""
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"REST: cannot listen on {address}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def reachable_host(host: str) -> str:
    """``host``, or for a wildcard address (0.0.0.0, ::) an address this machine is
    reached at: the one its default route leaves from (a pod's IP in Kubernetes),
    else loopback. Finding the route sends nothing."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    probes = [(socket.AF_INET6, "2001:db8::1")] if host == "::" else []
    probes.append((socket.AF_INET, "192.0.2.1"))  # documentation addresses (RFC 3849, 5737)
    for family, probe in probes:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.connect((probe, 9))
                address = str(udp.getsockname()[0])
        except OSError:
            continue
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    return "127.0.0.1"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url(sock: socket.socket, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    return f"{'https' if tls else 'http'}://{_host_port(reachable_host(host), port)}"


def run(settings: Settings, reload: Callable[[], Settings] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; everything is cleaned up on the way out. SIGHUP
    reloads the config file's interfaces with ``reload`` (see :mod:`memifd.cli.reload`)."""
    fd_limit = raise_fd_limit()
    log.info("open file limit: %d", fd_limit)
    reserve_fd_table(fd_limit)  # creates never wait for the fd table to grow
    malloc.tune()  # before the API threads exist
    manager = Manager(settings)
    server = _make_server(manager, settings)
    for sig in (signal.SIGTERM, signal.SIGINT):  # from here on a signal means a clean stop
        signal.signal(sig, server.handle_exit)
    reloader = Reloader(manager, reload or (lambda: load_settings(config=settings.config)))
    signal.signal(signal.SIGHUP, lambda _sig, _frame: _on_hangup(manager, reloader))
    grpc: GrpcServerHandle | None = None
    http: socket.socket | None = None
    try:
        manager.start()
        http = bind_http(settings.http_addr)
        grpc = serve_grpc(manager, settings)
        # What exists now lives as long as the process. Out of the collector's sight, a
        # full collection (which stops every thread, the worker too) takes well under a
        # millisecond instead of tens.
        gc.freeze()
        _print_banner(settings, http, grpc.address)
        if not server.should_exit:
            server.run(sockets=[http])
    except MemifdError as exc:
        _fail(f"cannot start: {exc.message}", 1)
    except (RuntimeError, OSError) as exc:
        _fail(str(exc), 1)
    finally:
        if grpc is not None:
            grpc.stop(GRPC_GRACE)
        manager.stop(SHUTDOWN_REASON)
        if http is not None:
            http.close()
    if manager.left_behind:
        _fail("the worker did not stop in time; its socket files were removed", 1)
    log.info("memifd stopped")


def _on_hangup(manager: Manager, reloader: Reloader) -> None:
    if manager.settings.config is None:
        log.warning("SIGHUP ignored: there is no config file (--config, MEMIFD_CONFIG) to reload")
    elif not manager.running:
        log.warning("SIGHUP ignored: memifd is not running yet, or stopping")
    else:
        reloader.request()


def _make_server(manager: Manager, settings: Settings) -> _Server:
    config = uvicorn_config(
        AccessLog(create_app(manager, settings), enabled=settings.access_log),
        settings,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    # The manager gets most of the time; the deadline ends the process regardless.
    budget = max(settings.shutdown_timeout - 1.0, settings.shutdown_timeout / 2)
    stopper = threading.Thread(
        target=manager.stop, args=(SHUTDOWN_REASON, budget), name="memifd-stop", daemon=True
    )
    deadline = threading.Timer(settings.shutdown_timeout, _exit_now, args=(manager, settings))
    deadline.daemon = True
    return _Server(config, stopper, deadline)


def _exit_now(manager: Manager, settings: Settings) -> None:
    """Shutting down took longer than ``shutdown_timeout``: remove socket files, exit 1."""
    log.error(
        "shutdown did not finish within shutdown_timeout; exiting anyway",
        extra={"shutdown_timeout": settings.shutdown_timeout},
    )
    manager.remove_socket_files()
    logging.shutdown()
    os._exit(1)


def _print_banner(settings: Settings, http: socket.socket, grpc_address: str) -> None:
    auth = "bearer token required" if settings.token_value else "no token (loopback only)"
    if settings.token_value is None and settings.insecure:
        auth = "no token (--insecure)"
    rest_url = _url(http, settings.tls) + settings.root_path
    grpc_host, _, grpc_port = grpc_address.rpartition(":")
    grpc_host = grpc_host.strip("[]")
    grpc_shown = _host_port(reachable_host(grpc_host), int(grpc_port))
    tls = " (TLS)" if settings.tls else ""
    rows: list[tuple[str, str, object, str]] = [
        ("socket_dir", "socket dir", str(settings.socket_dir), str(settings.socket_dir)),
        ("status_page", "status page", f"{rest_url}/", f"{rest_url}/"),
        ("rest_api", "REST API", f"{rest_url}/v1/interfaces", f"{rest_url}/v1/interfaces"),
        ("api_docs", "API docs", f"{rest_url}/docs", f"{rest_url}/docs"),
        ("metrics", "metrics", f"{rest_url}/metrics", f"{rest_url}/metrics"),
        ("grpc", "gRPC", grpc_shown, f"{grpc_shown}{tls}"),
    ]
    http_host, http_port = http.getsockname()[:2]
    bound = [_host_port(http_host, http_port), _host_port(grpc_host, int(grpc_port))]
    if reachable_host(http_host) != http_host or reachable_host(grpc_host) != grpc_host:
        text = f"every address: {bound[0]} (REST), {bound[1]} (gRPC)"
        rows.append(("listen", "listening", bound, text))
    rows += [
        ("tls", "TLS", settings.tls, "on" if settings.tls else "off"),
        ("auth", "auth", auth, auth),
        (
            "interfaces",
            "interfaces",
            len(settings.interfaces),
            f"{len(settings.interfaces)} from the config",
        ),
    ]
    fmt = logs.choose_format(settings.log_format, sys.stderr)
    logs.print_banner(f"memifd {__version__}", rows, fmt)


def main() -> None:
    """Entry point of the ``memifd`` command."""
    app(prog_name="memifd")


if __name__ == "__main__":
    main()
