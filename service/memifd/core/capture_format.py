"""The file formats of a capture, pcap and pcapng, and the choice between them that an
HTTP ``Accept`` header makes."""

from __future__ import annotations

import enum

from memifd.core import pcapng


class CaptureFormat(enum.StrEnum):
    """The file format of a capture."""

    PCAP = "pcap"
    PCAPNG = "pcapng"


PCAP_MEDIA_TYPES = frozenset(
    {"application/vnd.tcpdump.pcap", "application/pcap", "application/x-pcap"}
)
PCAPNG_MEDIA_TYPES = frozenset({pcapng.MEDIA_TYPE, "application/pcapng"})
_WILDCARDS = frozenset({"*/*", "application/*"})


def negotiate(accept: str | None, default: CaptureFormat) -> CaptureFormat:
    """The format an ``Accept`` header prefers: the higher quality wins, a type named
    outright beats a wildcard, and anything undecided gets ``default``."""
    if not accept:
        return default
    named: dict[CaptureFormat, float] = {}
    wildcard: float | None = None
    for item in accept.split(","):
        media, _, params = item.strip().lower().partition(";")
        quality = _quality(params)
        media = media.strip()
        fmt = (
            CaptureFormat.PCAPNG
            if media in PCAPNG_MEDIA_TYPES
            else CaptureFormat.PCAP
            if media in PCAP_MEDIA_TYPES
            else None
        )
        if fmt is not None:
            named[fmt] = max(named.get(fmt, 0.0), quality)
        elif media in _WILDCARDS:
            wildcard = max(wildcard or 0.0, quality)

    def rank(fmt: CaptureFormat) -> tuple[float, bool, bool]:
        if fmt in named:
            return named[fmt], True, fmt is default
        return wildcard or 0.0, False, fmt is default

    best = max(CaptureFormat, key=rank)
    return best if rank(best)[0] > 0 else default


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
