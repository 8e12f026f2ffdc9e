"""Command line tools of the memif library.

``python -m memif responder --socket PATH --role server|client [...]`` runs a
peer that answers ARP requests and pings, to check that a VPP, DPDK or other
memif set-up passes traffic. It runs until SIGINT or SIGTERM and exits 0;
bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from pydantic import ValidationError

from .config import Arguments, MemoryConfig
from .constants import DEFAULT_RECONNECT_INTERVAL, MAX_QUEUE_PAIRS, MAX_SOCKET_PATH
from .errors import MemifError
from .packet import Identity, parse_mac
from .responder import Responder

PROG = "python -m memif"


def _socket_path(text: str) -> str:
    size = len(text.encode())
    if text in ("", "@") or size > MAX_SOCKET_PATH:
        raise argparse.ArgumentTypeError(
            f"must be 1..{MAX_SOCKET_PATH} bytes (a leading @ means an abstract name), got {size}"
        )
    return text


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None


def _mac(text: str) -> str:
    try:
        parse_mac(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return convert


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m memif``."""
    parser = argparse.ArgumentParser(prog=PROG, description="memif tools in pure Python.")
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL")
    resp = tools.add_parser(
        "responder",
        help="answer ARP requests and pings on one memif interface",
        description="Answer ARP requests for --ip and ICMP echo requests to it, until "
        "SIGINT or SIGTERM.",
    )
    resp.add_argument(
        "--socket",
        required=True,
        type=_socket_path,
        metavar="PATH",
        help="control socket path; a leading @ means an abstract name",
    )
    resp.add_argument(
        "--role",
        required=True,
        type=str.lower,
        choices=["server", "client", "master", "slave"],
        help="server (master) listens, client (slave) connects",
    )
    resp.add_argument(
        "--id",
        type=_bounded_int(0, 0xFFFFFFFF),
        default=0,
        help="interface id, 0..4294967295 (default 0)",
    )
    resp.add_argument("--secret", default=None, help="shared secret, at most 24 bytes")
    resp.add_argument(
        "--ip",
        type=_ipv4,
        default="192.168.1.1",
        help="IPv4 address to answer for (default 192.168.1.1)",
    )
    resp.add_argument(
        "--mac",
        type=_mac,
        default=None,
        help="MAC address (default 02:fe followed by the IPv4 address bytes)",
    )
    resp.add_argument(
        "--mode",
        type=str.lower,
        choices=["ethernet", "ip"],
        default="ethernet",
        help="interface mode (default ethernet); ip carries bare IPv4 packets",
    )
    resp.add_argument(
        "--queues",
        type=_bounded_int(1, MAX_QUEUE_PAIRS),
        default=1,
        help=f"queue pairs, 1..{MAX_QUEUE_PAIRS} (default 1)",
    )
    resp.add_argument(
        "--name",
        default="memif-responder",
        help="interface name sent to the peer, at most 32 bytes",
    )
    resp.add_argument(
        "--reconnect-interval",
        type=_positive_float,
        default=DEFAULT_RECONNECT_INTERVAL,
        metavar="SECONDS",
        help=f"client retry interval (default {DEFAULT_RECONNECT_INTERVAL})",
    )
    resp.add_argument(
        "--accept-unsealed-regions",
        action="store_true",
        help="accept peer memory not sealed against shrinking, as zero-copy clients "
        "(VPP, DPDK zero-copy=yes) send; a peer that shrinks it kills this process",
    )
    resp.add_argument("-v", "--verbose", action="store_true", help="log library events")
    resp.set_defaults(tool_parser=resp)
    return parser


def _arguments(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> Arguments:
    try:
        return Arguments(
            id=ns.id,
            role=ns.role,
            name=ns.name,
            secret=ns.secret,
            mode=ns.mode,
            memory=MemoryConfig(num_queue_pairs=ns.queues),
            accept_unsealed_regions=ns.accept_unsealed_regions,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"argument --{err['loc'][-1]}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        parser.error(problems)


def run_responder(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    """Run the responder until a signal; returns the exit code."""
    args = _arguments(parser, ns)
    me = Identity.parse(ns.ip, ns.mac)

    def say(message: str) -> None:
        print(f"memif responder: {message}", flush=True)

    try:
        responder = Responder(
            ns.socket, args, me, report=say, reconnect_interval=ns.reconnect_interval
        )
    except MemifError as exc:
        print(f"{PROG} responder: error: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name}, stopping")
        responder.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    responder.wake_on_signals()
    with responder:
        say(responder.describe())
        counters = responder.run()
    say(f"stopped: {counters.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m memif``."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if ns.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_responder(ns.tool_parser, ns)


if __name__ == "__main__":
    sys.exit(main())
