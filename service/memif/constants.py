"""Protocol constants of memif v2.0 (see docs: memif protocol)."""

from __future__ import annotations

from typing import Final

VERSION_MAJOR: Final = 2
VERSION_MINOR: Final = 0
VERSION: Final = (VERSION_MAJOR << 8) | VERSION_MINOR  # 0x0200

COOKIE: Final = 0x3E31F20
MSG_SIZE: Final = 128
NAME_SIZE: Final = 32
SECRET_SIZE: Final = 24
DISCONNECT_STRING_SIZE: Final = 96

RING_HEADER_SIZE: Final = 128
DESC_SIZE: Final = 16
RING_FLAG_MASK_INT: Final = 1
DESC_FLAG_NEXT: Final = 1
RING_FLAG_S2M: Final = 1

MAX_LOG2_RING_SIZE: Final = 14
MAX_QUEUE_PAIRS: Final = 255  # what one interface may be configured with
# What a server accepts from a client, and announces in HELLO as count − 1 (255, 255,
# 14), as libmemif, VPP, DPDK and gomemif servers do whatever their configuration.
MAX_RINGS: Final = 256  # per direction
MAX_REGIONS: Final = 256
MAX_PACKET_SIZE: Final = 65535
MIN_BUFFER_SIZE: Final = 64
MAX_SOCKET_PATH: Final = 107  # sun_path holds 108 bytes including the terminating NUL
MAX_BUFFER_SIZE: Final = 65535
# Offsets in descriptors and ADD_RING are u32: nothing past 4 GiB is addressable.
MAX_REGION_SIZE: Final = 1 << 32

DEFAULT_SOCKET_PATH: Final = "/run/vpp/memif.sock"
DEFAULT_RECONNECT_INTERVAL: Final = 2.0
DEFAULT_APP_NAME: Final = "memif-python"
