"""A server interface in its own process, for showing what an unsealed region risks.

``python -m tests.reliability.sigbus_victim SOCKET [--accept-unsealed]`` listens,
prints ``ready``, waits for one client and then reads packets for up to ten
seconds, printing ``received N`` at the end. A client that shrinks an unsealed
region under the mapping makes the first read of a vanished page raise SIGBUS,
which kills this process: that is the risk ``accept_unsealed_regions`` accepts.
"""

from __future__ import annotations

import argparse
import sys
import time

import memif


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--accept-unsealed", action="store_true")
    opts = parser.parse_args()
    with memif.Socket(opts.socket) as sock:
        iface = sock.create_interface(
            id=0,
            role="server",
            rx_mode="polling",
            accept_unsealed_regions=opts.accept_unsealed,
            memory=memif.MemoryConfig(log2_ring_size=4),
        )
        sock.start()
        print("ready", flush=True)
        if not iface.wait_connected(10):
            print(f"no client: {iface.disconnect_reason}", flush=True)
            return 1
        received = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and iface.is_connected:
            received += len(iface.rx_queue(0).recv_burst(64))
            time.sleep(0.001)  # polled: a victim that reads until the memory is pulled away
        print(f"received {received}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
