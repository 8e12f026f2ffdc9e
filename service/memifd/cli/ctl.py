"""``memifctl``: the command-line client of memifd's gRPC API.

Every command talks to ``--addr`` (``MEMIFD_GRPC_ADDR``, default
127.0.0.1:50051), sends ``--token`` (``MEMIFD_TOKEN``) as a bearer token and
verifies the server against ``--tls-ca`` when given. Failures print the gRPC
status code and the server's explanation and exit with status 1.
"""

from __future__ import annotations

import contextlib
import enum
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import grpc
import typer
import yaml
from google.protobuf.message import Message
from memif.config import Mode, RxMode
from pydantic import ValidationError
from typer.core import TyperGroup

from memifd import __version__
from memifd.api.grpc import convert
from memifd.cli import capture_client
from memifd.cli import ctl_output as show
from memifd.cli.capture_client import CaptureFile
from memifd.cli.ctl_output import Output
from memifd.core.capture_format import CaptureFormat
from memifd.core.models import MAX_SNAPLEN, Action, Direction, InterfaceSpec, InterfaceStatus
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

DEFAULT_PORT = 50051
DEFAULT_ADDR = f"127.0.0.1:{DEFAULT_PORT}"
PROGRESS_INTERVAL = 0.1  # seconds between live counter updates

COMPLETION_TIMEOUT = 1.0  # seconds shell completion waits for memifd's interface names


class _Group(TyperGroup):
    """memifctl's commands, their flags shown without a value placeholder in help."""

    def get_params(self, ctx: Any) -> Any:
        return _plain_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command.get_params(ctx))
        return command


def _plain_flags(params: list[Any]) -> list[Any]:
    """Show on/off flags (``--dry-run``, ``--help``) without the ``<bool>`` typer gives them."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


app = typer.Typer(
    name="memifctl",
    cls=_Group,
    help="Manage memifd's memif interfaces and capture their packets over gRPC.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


class RoleName(enum.StrEnum):
    """Every role name the REST API, the config file and the chart accept."""

    SERVER = "server"
    CLIENT = "client"
    MASTER = "master"
    SLAVE = "slave"


_DIRECTIONS = {"rx": pb.DIRECTION_RX, "tx": pb.DIRECTION_TX, "both": pb.DIRECTION_BOTH}


@dataclass
class Client:
    """A connection to memifd and the metadata every call carries."""

    addr: str
    token: str | None
    tls_ca: Path | None
    tls_server_name: str | None
    timeout: float
    tls: bool = False  # TLS with the system's CAs unless tls_ca is given

    def __post_init__(self) -> None:
        self._channel: grpc.Channel | None = None

    @property
    def stub(self) -> pb_grpc.MemifStub:
        if self._channel is None:
            options: list[tuple[str, int | str]] = [
                ("grpc.max_receive_message_length", 64 * 1024 * 1024)
            ]
            if self.tls_ca is None and not self.tls:
                self._channel = grpc.insecure_channel(self.addr, options=options)
            else:
                ca = None
                try:
                    ca = self.tls_ca.read_bytes() if self.tls_ca is not None else None
                except OSError as exc:
                    fail(f"--tls-ca: cannot read {self.tls_ca}: {exc.strerror}")
                if self.tls_server_name:
                    options.append(("grpc.ssl_target_name_override", self.tls_server_name))
                credentials = grpc.ssl_channel_credentials(root_certificates=ca)
                self._channel = grpc.secure_channel(self.addr, credentials, options=options)
        return pb_grpc.MemifStub(self._channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def call(self, method: str, request: Message) -> Any:
        """A unary call with the deadline and the token."""
        rpc = getattr(self.stub, method)
        return rpc(request, timeout=self.timeout, metadata=self.metadata)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


def fail(message: str) -> NoReturn:
    """Print ``error: message`` to stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def _reporting(label: str = "") -> Iterator[None]:
    """Turn gRPC failures into ``error: [label]CODE: detail`` and exit status 1."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        fail(f"{label}{code.name if code else 'UNKNOWN'}: {details}")


def _client(ctx: typer.Context) -> Client:
    client: Client = ctx.obj
    ctx.call_on_close(client.close)
    return client


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"memifctl {__version__}")
        raise typer.Exit()


def parse_addr(text: str) -> tuple[str, bool]:
    """``--addr`` as a gRPC target and whether to use TLS.

    Takes ``host``, ``host:port``, ``[v6]:port`` and the same behind ``http://`` or
    ``https://`` (TLS); the port defaults to :data:`DEFAULT_PORT`.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if scheme not in ("", "http", "https"):
        raise ValueError(f"{text!r}: the scheme must be http:// or https://, not {scheme}://")
    rest = rest.rstrip("/")
    if "/" in rest:
        raise ValueError(f"{text!r}: nothing but host[:port] may follow the scheme")
    if not rest:
        raise ValueError(f"{text!r} is not host[:port]")
    if rest.startswith("["):  # [v6] or [v6]:port
        inside, _, tail = rest[1:].partition("]")
        host, port = f"[{inside}]", tail.removeprefix(":") if tail.startswith(":") else tail
    elif rest.count(":") > 1:  # a bare IPv6 address
        host, port = f"[{rest}]", ""
    else:
        host, _, port = rest.partition(":")
    port = port or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: port {port!r} is not a number in 1..65535")
    return f"{host}:{port}", scheme == "https"


@app.callback()
def _options(
    ctx: typer.Context,
    addr: Annotated[
        str,
        typer.Option(
            "--addr",
            envvar="MEMIFD_GRPC_ADDR",
            metavar="ADDR",
            help=f"memifd gRPC address: host[:port] (port {DEFAULT_PORT} if left out), "
            "also as http:// or https:// (TLS) URL.",
        ),
    ] = DEFAULT_ADDR,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="MEMIFD_TOKEN", metavar="TOKEN", help="API token.", show_default=False
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            envvar="MEMIFD_TLS_CA",
            metavar="FILE",
            help="CA certificate (PEM): use TLS.",
            show_default=False,
        ),
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option(
            "--tls-server-name",
            metavar="HOST",
            show_default=False,
            help="Name to expect in the server certificate.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, metavar="SECONDS", help="Seconds to wait for an answer."
        ),
    ] = 10.0,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print memifctl's version and exit.",
        ),
    ] = False,
) -> None:
    try:
        target, tls = parse_addr(addr)
    except ValueError as exc:
        fail(f"--addr: {exc}")
    ctx.obj = Client(target, token or None, tls_ca, tls_server_name, timeout, tls)


# -- output helpers -------------------------------------------------------------------------


def _enum_name(enum_type: Any, number: int, prefix: str) -> str:
    return str(enum_type.Name(number)).removeprefix(prefix).lower().replace("_", "-")


# -- commands -------------------------------------------------------------------------------


def _complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """memifd's interface names for shell completion; none when memifd does not answer
    within :data:`COMPLETION_TIMEOUT`."""
    given = ctx.find_root().params
    tls_ca = given.get("tls_ca")
    try:
        target, tls = parse_addr(given.get("addr") or DEFAULT_ADDR)
        if tls_ca is not None and not Path(tls_ca).is_file():
            return []
        client = Client(
            target,
            given.get("token") or None,
            tls_ca,
            given.get("tls_server_name"),
            COMPLETION_TIMEOUT,
            tls,
        )
        try:
            reply = client.call("ListInterfaces", pb.ListInterfacesRequest())
        finally:
            client.close()
    except (ValueError, OSError, grpc.RpcError):
        return []
    return [s.name for s in reply.interfaces if s.name.startswith(incomplete)]


NameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="Interface name.", show_default=False, autocompletion=_complete_names
    ),
]
XconnectOption = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Target of action xconnect: an interface name.",
        show_default=False,
        autocompletion=_complete_names,
    ),
]
OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="A table, a wide table, or the REST API's JSON or YAML.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
RxModeOption = Annotated[
    RxMode | None, typer.Option(show_default=False, help="How received packets are noticed.")
]
ActionOption = Annotated[
    Action | None, typer.Option(show_default=False, help="What to do with received packets.")
]


def _output(output: Output | None, as_json: bool, default: Output = Output.TABLE) -> Output:
    if as_json and output not in (None, Output.JSON):
        fail(f"--json and -o {output} contradict each other")
    return Output.JSON if as_json else output or default


WatchFlag = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Then print a row for each change, until Ctrl-C."),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    output: OutputOption = None,
    as_json: JsonFlag = False,
    watch: WatchFlag = False,
) -> None:
    """List interfaces, in creation order."""
    client = _client(ctx)
    if watch:
        _watch(client, _output(output, as_json), None)
        return
    with _reporting():
        reply = client.call("ListInterfaces", pb.ListInterfacesRequest())
    statuses = [convert.status_from_proto(s) for s in reply.interfaces]
    typer.echo(show.interfaces(statuses, _output(output, as_json)))


@app.command()
def get(
    ctx: typer.Context,
    name: NameArgument,
    output: OutputOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Print a table row now and one for each change, until Ctrl-C or "
            "the interface is deleted.",
        ),
    ] = False,
) -> None:
    """Show one interface (JSON unless -o or --watch says otherwise)."""
    client = _client(ctx)
    if watch:
        _watch(client, output or Output.TABLE, name)
        return
    with _reporting():
        reply = client.call("GetInterface", pb.GetInterfaceRequest(name=name))
    status = convert.status_from_proto(reply)
    chosen = output or Output.JSON
    if chosen in (Output.JSON, Output.YAML):
        typer.echo(show.serialised(status, chosen))
    else:
        typer.echo(show.interfaces([status], chosen))


# -- watching -------------------------------------------------------------------------------


WATCH_REFRESH = 2.0  # seconds between re-reads while watching, for changes without a link event
_STREAM_ENDED = object()


def _watch(client: Client, output: Output, name: str | None) -> None:
    """Print the interface table, then a row for each interface whose state or settings
    change (a link event, or seen by a re-read every :data:`WATCH_REFRESH` seconds), and a
    ``deleted`` row for each one deleted; until Ctrl-C or, for one interface, its deletion."""
    if output not in (Output.TABLE, Output.WIDE):
        fail(
            f"--watch prints a table (-o table or wide), not {output}; "
            "'memifctl events' prints link events as JSON"
        )

    def read() -> list[InterfaceStatus]:
        with _reporting():
            if name is None:
                reply = client.call("ListInterfaces", pb.ListInterfacesRequest())
                return [convert.status_from_proto(s) for s in reply.interfaces]
            try:
                one = client.call("GetInterface", pb.GetInterfaceRequest(name=name))
            except grpc.RpcError as exc:
                if isinstance(exc, grpc.Call) and exc.code() is grpc.StatusCode.NOT_FOUND and shown:
                    return []  # deleted since it was shown
                raise
            return [convert.status_from_proto(one)]

    shown: dict[str, InterfaceStatus] = {}
    stream = None
    try:
        statuses = read()
        rows: list[Sequence[object]] = [
            show.header(output),
            *(show.interface_row(s, output) for s in statuses),
        ]
        widths = show.widths(rows)
        typer.echo(show.table(rows))
        shown = {s.name: s for s in statuses}
        stream = client.stub.WatchEvents(
            pb.WatchEventsRequest(interface=name or ""), metadata=client.metadata
        )
        events: queue.Queue[object] = queue.Queue(maxsize=1024)
        threading.Thread(target=_pump, args=(stream, events), daemon=True).start()
        while True:
            _next_change(events)
            current = {s.name: s for s in read()}
            for status in current.values():
                if _changed(shown.get(status.name), status):
                    typer.echo(show.aligned(show.interface_row(status, output), widths))
            for gone in shown.keys() - current.keys():
                cells = show.interface_row(shown[gone], output)
                cells[show.header(output).index("STATE")] = "deleted"
                typer.echo(show.aligned(cells, widths))
            shown = current
            if name is not None and not shown:
                return
    except KeyboardInterrupt:
        pass
    finally:
        if stream is not None:
            stream.cancel()


def _pump(stream: Any, events: queue.Queue[object]) -> None:
    """Move a WatchEvents stream's events into ``events`` (run in a thread)."""
    try:
        for event in stream:
            events.put(event)
    except grpc.RpcError as exc:
        events.put(exc)
    else:
        events.put(_STREAM_ENDED)


def _next_change(events: queue.Queue[object]) -> None:
    """Wait for link events (taking all that came) or :data:`WATCH_REFRESH` seconds; fail
    if the stream failed or ended."""
    taken = []
    with contextlib.suppress(queue.Empty):
        taken.append(events.get(timeout=WATCH_REFRESH))
        while True:
            taken.append(events.get_nowait())
    for item in taken:
        if item is _STREAM_ENDED:
            fail("memifd ended the event stream")
        if isinstance(item, grpc.RpcError):
            with _reporting():
                raise item


def _changed(before: InterfaceStatus | None, after: InterfaceStatus) -> bool:
    """Whether an interface changed in more than its counters."""
    if before is None:
        return True
    ignore = {"stats"}
    return before.model_dump(exclude=ignore) != after.model_dump(exclude=ignore)


@app.command()
def describe(ctx: typer.Context, name: NameArgument) -> None:
    """Describe one interface for people: spec, link state and reason, peer, memory as
    configured and negotiated, regions, rings with head and tail, counters per queue."""
    client = _client(ctx)
    with _reporting():
        reply = client.call("GetInterface", pb.GetInterfaceRequest(name=name))
        link = client.call("GetLinkDetails", pb.GetLinkDetailsRequest(name=name))
    typer.echo(show.describe(convert.status_from_proto(reply), convert.link_from_proto(link)))


def _load_specs(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        fail(f"--file: cannot read {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        fail(f"--file: {path} is not valid YAML: {exc}")
    if isinstance(data, dict) and isinstance(data.get("interfaces"), list):
        data = data["interfaces"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        fail(f"--file: {path} must hold an interface spec (a mapping) or a list of them")
    return items


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Interface name.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            show_default=False,
            help="YAML spec (one mapping or a list); flags override it.",
        ),
    ] = None,
    socket: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            show_default=False,
            help="Control socket, in the socket directory unless absolute; @name for "
            "an abstract one (default memif.sock).",
        ),
    ] = None,
    id_: Annotated[
        int | None,
        typer.Option("--id", metavar="ID", show_default=False, help="Interface id (default 0)."),
    ] = None,
    role: Annotated[
        RoleName | None,
        typer.Option(
            case_sensitive=False,
            show_default=False,
            help="server or client (master and slave too; default server).",
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option(metavar="SECRET", show_default=False, help="Shared secret.")
    ] = None,
    mode: Annotated[
        Mode | None, typer.Option(show_default=False, help="Interface mode (default ethernet).")
    ] = None,
    queues: Annotated[
        int | None, typer.Option(metavar="N", show_default=False, help="Queue pairs (default 1).")
    ] = None,
    log2_ring_size: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            show_default=False,
            help="Descriptors per ring as a power of 2 (default 10).",
        ),
    ] = None,
    buffer_size: Annotated[
        int | None,
        typer.Option(
            metavar="BYTES", show_default=False, help="Packet buffer size (default 2048)."
        ),
    ] = None,
    rx_mode: RxModeOption = None,
    action: ActionOption = None,
    xconnect_to: XconnectOption = None,
    admin_up: Annotated[
        bool | None, typer.Option("--admin-up/--admin-down", help="Start up or down.")
    ] = None,
    accept_unsealed_regions: Annotated[
        bool | None, typer.Option("--accept-unsealed-regions", help="Accept unsealed memory.")
    ] = None,
    allow_uid: Annotated[
        list[int] | None,
        typer.Option(
            "--allow-uid",
            metavar="UID",
            show_default=False,
            help="A peer user id allowed to connect (repeatable).",
        ),
    ] = None,
    allow_gid: Annotated[
        list[int] | None,
        typer.Option(
            "--allow-gid",
            metavar="GID",
            show_default=False,
            help="A peer group id allowed to connect (repeatable).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only validate (memifd checks it); create nothing.")
    ] = False,
) -> None:
    """Create interfaces from flags or a YAML spec."""
    client = _client(ctx)
    items = _load_specs(file) if file is not None else [{}]
    flags = {
        "name": name,
        "socket": socket,
        "id": id_,
        "role": role,
        "secret": secret,
        "mode": mode,
        "rx_mode": rx_mode,
        "action": action,
        "xconnect_to": xconnect_to,
        "admin_up": admin_up,
        "accept_unsealed_regions": accept_unsealed_regions,
        "allowed_uids": allow_uid or None,
        "allowed_gids": allow_gid or None,
    }
    memory = {
        "num_queue_pairs": queues,
        "log2_ring_size": log2_ring_size,
        "packet_buffer_size": buffer_size,
    }
    if len(items) > 1 and name is not None:
        fail("NAME cannot be given with a file holding several interfaces")
    entries: list[tuple[str, InterfaceSpec]] = []
    for index, data in enumerate(items):
        data.update({key: value for key, value in flags.items() if value is not None})
        given_memory = {key: value for key, value in memory.items() if value is not None}
        if given_memory:
            data["memory"] = {**(data.get("memory") or {}), **given_memory}
        label = _entry_label(file, index, data) if len(items) > 1 else ""
        if "name" not in data:
            fail(f"{label}give the interface NAME (or a name in --file)")
        try:
            entries.append((label, InterfaceSpec.model_validate(data)))
        except ValidationError as exc:
            fail(f"{label}invalid spec: {convert.invalid_argument(exc)}")
    _check_distinct(entries)
    statuses = _create_all(client, entries, dry_run)
    verb = "would create" if dry_run else "created"
    for status in statuses:
        typer.echo(
            f"{verb} {status.name} ({_enum_name(pb.Role, status.role, 'ROLE_')} "
            f"id {status.id} on {status.socket_path})"
        )


def _entry_label(file: Path | None, index: int, data: dict[str, Any]) -> str:
    name = data.get("name")
    return f"{file} entry {index + 1}{f' ({name})' if isinstance(name, str) else ''}: "


def _check_distinct(entries: list[tuple[str, InterfaceSpec]]) -> None:
    """Refuse two entries of one file with the same name, or socket, role and id."""
    seen: dict[object, str] = {}
    for label, spec in entries:
        for key, what in (
            (("name", spec.name), f"name {spec.name!r}"),
            (
                ("place", spec.socket, spec.role, spec.id),
                f"socket {spec.socket!r}, role {spec.role.value} and id {spec.id}",
            ),
        ):
            if key in seen:
                fail(f"{label}{what} already used by {seen[key].removesuffix(': ')}")
            seen[key] = label


def _create_all(
    client: Client, entries: list[tuple[str, InterfaceSpec]], dry_run: bool
) -> list[pb.InterfaceStatus]:
    """Create every entry or none: each is checked by memifd (a dry run) before the first
    is created, and those created are deleted again if a later one still fails.

    An entry cross-connected to another entry of the same file is created with action
    drop and switched to xconnect once its target exists.
    """
    names = {spec.name for _, spec in entries}
    first = [
        (
            label,
            spec.model_copy(update={"action": Action.DROP, "xconnect_to": None})
            if spec.xconnect_to in names
            else spec,
        )
        for label, spec in entries
    ]
    previews = [_create_one(client, label, spec, dry_run=True) for label, spec in first]
    if dry_run:
        return previews
    created: list[pb.InterfaceStatus] = []
    try:
        for label, spec in first:
            created.append(_create_one(client, label, spec, dry_run=False))
        for (label, spec), (_, staged) in zip(entries, first, strict=True):
            if spec is not staged:  # its target exists now
                patch = pb.InterfacePatch(xconnect_to=spec.xconnect_to)
                patch.action = convert.ACTIONS[spec.action]  # type: ignore[assignment]
                with _reporting(label):
                    client.call(
                        "UpdateInterface", pb.UpdateInterfaceRequest(name=spec.name, patch=patch)
                    )
    except typer.Exit:
        for status in reversed(created):
            with contextlib.suppress(grpc.RpcError):
                client.call("DeleteInterface", pb.DeleteInterfaceRequest(name=status.name))
        if created:
            undone = ", ".join(status.name for status in created)
            typer.echo(f"error: nothing created: deleted {undone} again", err=True)
        raise
    return created


def _create_one(client: Client, label: str, spec: InterfaceSpec, dry_run: bool) -> Any:
    request = pb.CreateInterfaceRequest(spec=convert.spec_to_proto(spec), dry_run=dry_run)
    with _reporting(label):
        return client.call("CreateInterface", request)


@app.command()
def update(
    ctx: typer.Context,
    name: NameArgument,
    rx_mode: RxModeOption = None,
    action: ActionOption = None,
    xconnect_to: XconnectOption = None,
    admin_up: Annotated[
        bool | None, typer.Option("--admin-up/--admin-down", help="Bring up or down.")
    ] = None,
) -> None:
    """Change a live interface."""
    if rx_mode is None and action is None and xconnect_to is None and admin_up is None:
        fail(
            "nothing to change: give --rx-mode, --action, --xconnect-to or --admin-up/--admin-down"
        )
    client = _client(ctx)
    patch = pb.InterfacePatch()
    if rx_mode is not None:
        patch.rx_mode = convert.RX_MODES[rx_mode]  # type: ignore[assignment]
    if action is not None:
        patch.action = convert.ACTIONS[action]  # type: ignore[assignment]
    if xconnect_to is not None:
        patch.xconnect_to = xconnect_to
    if admin_up is not None:
        patch.admin_up = admin_up
    with _reporting():
        client.call("UpdateInterface", pb.UpdateInterfaceRequest(name=name, patch=patch))
    typer.echo(f"updated {name}")


@app.command()
def delete(ctx: typer.Context, name: NameArgument) -> None:
    """Delete an interface."""
    client = _client(ctx)
    with _reporting():
        client.call("DeleteInterface", pb.DeleteInterfaceRequest(name=name))
    typer.echo(f"deleted {name}")


@app.command()
def stats(
    ctx: typer.Context,
    name: NameArgument,
    output: OutputOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the counters of an interface, in total and per queue."""
    client = _client(ctx)
    with _reporting():
        reply = client.call("GetStats", pb.GetStatsRequest(name=name))
    typer.echo(show.stats(convert.stats_from_proto(reply), _output(output, as_json)))


@app.command()
def events(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="Only this interface's events.",
            show_default=False,
            autocompletion=_complete_names,
        ),
    ] = None,
    current: Annotated[
        bool, typer.Option("--current", help="Start with one event per interface: its state now.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", show_default=False, help="Stop after this many events."),
    ] = None,
) -> None:
    """Print link events as they happen (one JSON object per line)."""
    client = _client(ctx)
    request = pb.WatchEventsRequest(interface=name or "", include_current=current)
    stream = client.stub.WatchEvents(request, metadata=client.metadata)
    seen = 0
    with _reporting(), _cancel_on_exit(stream):
        for event in stream:
            typer.echo(convert.event_from_proto(event).model_dump_json())
            seen += 1
            if count is not None and seen >= count:
                return


@contextlib.contextmanager
def _cancel_on_exit(call: Any) -> Iterator[None]:
    """Cancel a streaming call when the block ends early (Ctrl-C, count reached)."""
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        call.cancel()


def _wait_accepted(stream: Any) -> None:
    """Wait until memifd accepted a stream (its headers came) or refused it; a refusal
    fails here, before anything is written."""
    try:
        stream.initial_metadata()
    except KeyboardInterrupt:
        stream.cancel()
        raise typer.Exit(130) from None
    if stream.done() and stream.code() is not grpc.StatusCode.OK:
        with _reporting():
            raise stream  # the call is its own RpcError


class _Progress:
    """A live ``N packets`` counter on stderr when it is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._last = 0.0

    def show(self, packets: int, dropped: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self._enabled or (not force and now - self._last < PROGRESS_INTERVAL):
            return
        self._last = now
        sys.stderr.write(f"\r{packets} packets captured, {dropped} dropped")
        sys.stderr.flush()

    def end(self) -> None:
        if self._enabled:
            sys.stderr.write("\n")


@app.command()
def capture(
    ctx: typer.Context,
    name: NameArgument,
    write: Annotated[
        Path,
        typer.Option("--write", "-w", metavar="FILE", help="Capture file to write ('-': stdout)."),
    ],
    count: Annotated[
        int | None,
        typer.Option(metavar="N", show_default=False, help="Stop after this many packets."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", show_default=False, help="Stop after this many seconds."),
    ] = None,
    snaplen: Annotated[
        int, typer.Option(metavar="BYTES", help="Bytes kept of each packet.")
    ] = MAX_SNAPLEN,
    direction: Annotated[
        Direction, typer.Option(help="Packets received (rx), sent (tx) or both.")
    ] = Direction.BOTH,
    queue: Annotated[
        int | None,
        typer.Option(
            metavar="QUEUE", show_default=False, help="Only this queue (a number from 0)."
        ),
    ] = None,
    format_: Annotated[
        CaptureFormat | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="pcap or pcapng [default: pcap for a *.pcap file, else pcapng]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Capture an interface's packets into a pcapng or pcap file (Ctrl-C stops)."""
    client = _client(ctx)
    if count is not None and count < 1:
        fail("--count must be at least 1")
    if duration is not None and duration <= 0:
        fail("--duration must be more than 0")
    with _reporting():
        status = client.call("GetInterface", pb.GetInterfaceRequest(name=name))
    request = pb.CaptureRequest(
        interface=name,
        direction=_DIRECTIONS[direction],
        count=count or 0,
        duration=duration or 0.0,
        snaplen=snaplen,
    )
    if queue is not None:
        request.queue = queue
    stream = client.stub.Capture(request, metadata=client.metadata)
    _wait_accepted(stream)
    to_stdout = str(write) == "-"
    progress = _Progress(sys.stderr.isatty())
    packets = dropped = 0
    try:
        out = sys.stdout.buffer if to_stdout else open(write, "wb")  # noqa: SIM115
    except OSError as exc:
        stream.cancel()
        fail(f"--write: cannot open {write}: {exc.strerror}")
    sink = CaptureFile(
        out,
        capture_client.format_for(str(write), format_),
        status,
        snaplen,
        comment=f"memifctl capture of {name} from {client.addr}",
    )
    reason = "stopped by the user"
    try:
        sink.start()
        with _reporting(), _cancel_on_exit(stream):
            try:
                for batch in stream:
                    sink.write(batch)
                    packets, dropped = sink.packets, sink.dropped
                    progress.show(packets, dropped)
                reason = "count or duration reached"
            except grpc.RpcError as exc:
                reason = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                raise
    finally:
        sink.finish(reason)
        if not to_stdout:
            out.close()
        progress.show(packets, dropped, force=True)
        progress.end()
    where = "stdout" if to_stdout else str(write)
    typer.echo(f"{packets} packets captured, {dropped} dropped, written to {where}", err=True)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def extcap(ctx: typer.Context) -> None:
    """Wireshark's extcap protocol (what memifd-extcap does; --help lists its flags)."""
    from memifd.cli import extcap as wireshark

    client: Client = ctx.obj
    defaults = ["--addr", client.addr]
    if client.tls_ca is not None:
        defaults += ["--tls-ca", str(client.tls_ca)]
    if client.tls_server_name:
        defaults += ["--tls-server-name", client.tls_server_name]
    if client.token:
        os.environ["MEMIFD_TOKEN"] = client.token
    raise typer.Exit(wireshark.main([*defaults, *ctx.args]))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``memifctl``."""
    app(args=list(argv) if argv is not None else None, prog_name="memifctl")


if __name__ == "__main__":
    main()
