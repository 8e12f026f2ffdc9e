"""``memifd-extcap``: memifd's interfaces as Wireshark capture interfaces.

Wireshark (and tshark, dumpcap) run every program in their extcap folder to
list capture interfaces, and run it again to capture (the extcap protocol of
Wireshark's ``extcap(4)``):

* ``--extcap-interfaces``: one ``memif-<name>`` interface per memifd interface;
* ``--extcap-dlts --extcap-interface I``: its link type;
* ``--extcap-config --extcap-interface I``: the options Wireshark shows;
* ``--extcap-interface I --extcap-capture-filter F``: is ``F`` usable (no:
  memifd has no capture filters; direction and queue are options);
* ``--capture --extcap-interface I --fifo PATH``: write pcapng to ``PATH``
  until Wireshark stops the capture (SIGTERM) or the stream ends.

memifd is reached over gRPC at ``--addr`` (default ``MEMIFD_GRPC_ADDR``, else
127.0.0.1:50051), with the token of ``--token-file`` (default
``MEMIFD_TOKEN``) and, for TLS, ``--tls-ca`` (``MEMIFD_TLS_CA``). The token
never goes on the command line, where other local users could read it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import grpc

from memifd import __version__
from memifd.cli.capture_client import CaptureFile, linktype_of
from memifd.core.capture_format import CaptureFormat
from memifd.proto.memif.v1 import memif_pb2 as pb
from memifd.proto.memif.v1 import memif_pb2_grpc as pb_grpc

PREFIX = "memif-"  # Wireshark interface names: memif-<memifd interface name>
DEFAULT_ADDR = "127.0.0.1:50051"
LIST_TIMEOUT = 3.0  # seconds: Wireshark waits for every extcap when it starts
CALL_TIMEOUT = 10.0  # seconds for a unary call before a capture
_DIRECTIONS = {"rx": pb.DIRECTION_RX, "tx": pb.DIRECTION_TX, "both": pb.DIRECTION_BOTH}
_DLT_NAMES = {1: ("EN10MB", "Ethernet"), 101: ("RAW", "Raw IPv4/IPv6")}
NO_FILTER = (
    "memifd has no capture filters: leave the capture filter empty and choose "
    "direction and queue in the interface options, or use a display filter"
)


class Stop(Exception):
    """Wireshark asked the capture to stop."""


class ExtcapError(Exception):
    """A failure to report to Wireshark (on stderr, exit status 1)."""


def parser() -> argparse.ArgumentParser:
    """The command line Wireshark uses, plus memifd's options."""
    p = argparse.ArgumentParser(
        prog="memifd-extcap",
        description="memifd's interfaces as Wireshark capture interfaces (extcap).",
    )
    p.add_argument("--extcap-interfaces", action="store_true", help="List the interfaces.")
    p.add_argument(
        "--extcap-version",
        nargs="?",
        const="",
        metavar="WIRESHARK_VERSION",
        help="Print this extcap's version (Wireshark passes its own).",
    )
    p.add_argument("--extcap-interface", metavar="IFACE", help="The interface to act on.")
    p.add_argument("--extcap-dlts", action="store_true", help="Print the link type of IFACE.")
    p.add_argument("--extcap-config", action="store_true", help="Print IFACE's options.")
    p.add_argument(
        "--extcap-capture-filter",
        metavar="FILTER",
        help="Capture filter (memifd has none: any filter is refused).",
    )
    p.add_argument("--extcap-reload-option", help=argparse.SUPPRESS)
    p.add_argument("--capture", action="store_true", help="Capture IFACE into --fifo.")
    p.add_argument("--fifo", metavar="PATH", help="Where to write pcapng.")
    p.add_argument("--extcap-control-in", help=argparse.SUPPRESS)
    p.add_argument("--extcap-control-out", help=argparse.SUPPRESS)
    p.add_argument(
        "--addr",
        default=os.environ.get("MEMIFD_GRPC_ADDR") or DEFAULT_ADDR,
        help="memifd gRPC address (MEMIFD_GRPC_ADDR).",
    )
    p.add_argument(
        "--token-file", type=Path, help="File holding the API token (else MEMIFD_TOKEN)."
    )
    p.add_argument(
        "--tls-ca",
        type=Path,
        default=_env_path("MEMIFD_TLS_CA"),
        help="CA certificate (PEM): use TLS (MEMIFD_TLS_CA).",
    )
    p.add_argument("--tls-server-name", help="Name to expect in the server certificate.")
    p.add_argument(
        "--direction", choices=sorted(_DIRECTIONS), default="both", help="rx, tx or both (default)."
    )
    p.add_argument("--queue", default="all", help="A queue number, or all (default).")
    p.add_argument("--snaplen", type=int, default=65535, help="Bytes kept of each packet.")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``memifd-extcap`` (and of ``memifctl extcap``)."""
    args = parser().parse_args(argv)
    try:
        return _run(args, sys.stdout)
    except ExtcapError as exc:
        print(f"memifd-extcap: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, out: TextIO) -> int:
    if args.extcap_interfaces:
        _print_interfaces(args, out)
    elif args.capture:
        _capture(args)
    elif args.extcap_config:
        _print_config(args, out)
    elif args.extcap_dlts:
        _print_dlts(args, out)
    elif args.extcap_capture_filter is not None:
        if args.extcap_capture_filter.strip():
            out.write(NO_FILTER + "\n")
    elif args.extcap_version is not None:
        out.write(_extcap_line())
    else:
        raise ExtcapError(
            "nothing to do: Wireshark runs this with --extcap-interfaces, --extcap-dlts, "
            "--extcap-config or --capture (see --help)"
        )
    return 0


# -- answers ---------------------------------------------------------------------------------------


def _extcap_line() -> str:
    return f"extcap {{version={__version__}}}{{display=memifd}}\n"


def _print_interfaces(args: argparse.Namespace, out: TextIO) -> None:
    out.write(_extcap_line())
    try:
        with _connect(args, LIST_TIMEOUT) as conn:
            reply = conn.call("ListInterfaces", pb.ListInterfacesRequest())
    except ExtcapError as exc:
        # Wireshark shows no interfaces then; say why to whoever runs this by hand
        print(f"memifd-extcap: no interfaces listed: {exc}", file=sys.stderr)
        return
    for status in reply.interfaces:
        out.write(
            f"interface {{value={PREFIX}{status.name}}}"
            f"{{display=memif {status.name} (memifd {args.addr})}}\n"
        )


def _print_dlts(args: argparse.Namespace, out: TextIO) -> None:
    name = _memif_name(args)
    linktype = 1
    with contextlib.suppress(ExtcapError), _connect(args, LIST_TIMEOUT) as conn:
        linktype = linktype_of(conn.call("GetInterface", pb.GetInterfaceRequest(name=name)))
    dlt_name, display = _DLT_NAMES[linktype]
    out.write(f"dlt {{number={linktype}}}{{name={dlt_name}}}{{display={display}}}\n")


def _print_config(args: argparse.Namespace, out: TextIO) -> None:
    _memif_name(args)
    lines = [
        f"arg {{number=0}}{{call=--addr}}{{display=memifd gRPC address}}{{type=string}}"
        f"{{default={args.addr}}}{{tooltip=host:port of memifd's gRPC API}}{{group=Server}}",
        "arg {number=1}{call=--token-file}{display=Token file}{type=fileselect}"
        "{mustexist=true}{tooltip=File holding memifd's API token (else MEMIFD_TOKEN)}"
        "{group=Server}",
        "arg {number=2}{call=--tls-ca}{display=CA certificate (TLS)}{type=fileselect}"
        "{mustexist=true}{tooltip=PEM CA to verify memifd's certificate; empty: plaintext}"
        "{group=Server}",
        "arg {number=3}{call=--direction}{display=Direction}{type=selector}"
        "{tooltip=Packets memifd receives (rx), sends (tx), or both}{group=Capture}",
        "value {arg=3}{value=both}{display=received and sent}{default=true}",
        "value {arg=3}{value=rx}{display=received (rx)}{default=false}",
        "value {arg=3}{value=tx}{display=sent (tx)}{default=false}",
        "arg {number=4}{call=--queue}{display=Queue}{type=string}{default=all}"
        "{validation=^(all|[0-9]+)$}{tooltip=A queue number, or all}{group=Capture}",
        "arg {number=5}{call=--snaplen}{display=Snapshot length}{type=unsigned}"
        "{default=65535}{range=1,65535}{tooltip=Bytes kept of each packet}{group=Capture}",
    ]
    out.write("\n".join(lines) + "\n")


# -- capturing -------------------------------------------------------------------------------------


def _capture(args: argparse.Namespace) -> None:
    name = _memif_name(args)
    if args.fifo is None:
        raise ExtcapError("--capture needs --fifo PATH")
    if args.extcap_capture_filter and args.extcap_capture_filter.strip():
        raise ExtcapError(NO_FILTER)
    request = pb.CaptureRequest(
        interface=name, direction=_DIRECTIONS[args.direction], snaplen=_snaplen(args.snaplen)
    )
    if args.queue != "all":
        request.queue = _queue(args.queue)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with _connect(args, CALL_TIMEOUT) as conn:
            status = conn.call("GetInterface", pb.GetInterfaceRequest(name=name))
            with contextlib.suppress(BrokenPipeError, Stop), open(args.fifo, "wb") as fifo:
                sink = CaptureFile(
                    fifo,
                    CaptureFormat.PCAPNG,
                    status,
                    request.snaplen,
                    comment=f"memifd-extcap capture of {name} from {args.addr}",
                )
                _stream(conn, request, sink)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stream(conn: _Connection, request: pb.CaptureRequest, sink: CaptureFile) -> None:
    """Copy the capture stream into ``sink`` until it ends or Wireshark stops it."""
    stream = conn.stub.Capture(request, metadata=conn.metadata)
    reason = "the stream ended"
    try:
        sink.start()
        for batch in stream:
            sink.write(batch)
    except Stop:
        reason = "stopped by Wireshark"
    except grpc.RpcError as exc:
        reason = _rpc_error(exc)
        raise ExtcapError(reason) from None
    except BrokenPipeError:
        return  # Wireshark closed its end first: nothing more can be said
    finally:
        stream.cancel()
        with contextlib.suppress(BrokenPipeError, Stop):
            sink.finish(reason)


def _stop(signum: int, frame: types.FrameType | None) -> NoReturn:
    raise Stop


# -- helpers ---------------------------------------------------------------------------------------


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _memif_name(args: argparse.Namespace) -> str:
    iface = args.extcap_interface
    if not iface:
        raise ExtcapError("--extcap-interface is required")
    if not iface.startswith(PREFIX) or len(iface) == len(PREFIX):
        raise ExtcapError(f"--extcap-interface {iface!r} is not one of memifd's ({PREFIX}NAME)")
    return str(iface[len(PREFIX) :])


def _queue(value: str) -> int:
    if not value.isdigit() or int(value) > 254:
        raise ExtcapError(f"--queue {value!r}: give a queue number 0..254, or all")
    return int(value)


def _snaplen(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ExtcapError(f"--snaplen {value}: allowed 1..65535")
    return value


def _rpc_error(exc: grpc.RpcError) -> str:
    if isinstance(exc, grpc.Call):
        code = exc.code()
        return f"{code.name if code else 'UNKNOWN'}: {exc.details()}"
    return str(exc)


class _Connection:
    """A gRPC channel to memifd with the call metadata."""

    def __init__(self, args: argparse.Namespace, timeout: float | None) -> None:
        self.timeout = timeout
        token = _token(args.token_file)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)
        ]
        if args.tls_ca is None:
            self.channel = grpc.insecure_channel(args.addr, options=options)
        else:
            try:
                ca = Path(args.tls_ca).read_bytes()
            except OSError as exc:
                raise ExtcapError(f"--tls-ca: cannot read {args.tls_ca}: {exc.strerror}") from None
            if args.tls_server_name:
                options.append(("grpc.ssl_target_name_override", args.tls_server_name))
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            self.channel = grpc.secure_channel(args.addr, credentials, options=options)
        self.stub = pb_grpc.MemifStub(self.channel)

    def call(self, method: str, request: object) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise ExtcapError(_rpc_error(exc)) from None


@contextlib.contextmanager
def _connect(args: argparse.Namespace, timeout: float | None) -> Iterator[_Connection]:
    conn = _Connection(args, timeout)
    try:
        yield conn
    finally:
        conn.channel.close()


def _token(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get("MEMIFD_TOKEN") or None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise ExtcapError(f"--token-file: cannot read {path}: {exc.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
