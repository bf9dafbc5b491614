"""Reproduce the live-capture throughput table in docs/live_capture.md.

    python3 -m tests.live.bench_live --rate 100000 --loops 3 --buffer-mb 30
    python3 -m tests.live.bench_live --rate 0 ...      # tcpreplay --topspeed

Root only. Builds a veth pair between two fresh namespaces, runs ``pybeat run`` capturing one end
with af_packet, replays the shared 100k DNS capture onto the other end with tcpreplay, waits for
the agent to drain its ring, stops it with SIGINT and prints what it reported. All traffic stays
inside the two namespaces; they are deleted afterwards. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from tests.conftest import PCAPS
from tests.live.netns import veth_pair
from tests.live.servers import agent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=100_000, help="packets/s for tcpreplay (0: --topspeed)")
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--buffer-mb", type=int, default=30)
    ap.add_argument("--type", default="af_packet", choices=["af_packet", "pcap"])
    ap.add_argument("--pcap", default=str(PCAPS / "dns_bulk_100k.pcap"))
    ap.add_argument("--queue-events", type=int, default=3200, help="queue.mem.events")
    args = ap.parse_args()
    speed = ["--topspeed"] if args.rate == 0 else [f"--pps={args.rate}"]
    with tempfile.TemporaryDirectory(prefix="pybeat-bench-") as tmp, veth_pair() as link:
        iface = {"type": args.type, "buffer_size_mb": args.buffer_mb}
        extra = {"queue.mem.events": args.queue_events}
        with agent(link, Path(tmp), [{"type": "dns", "ports": [53]}], interface=iface, extra=extra) as a:
            t0 = time.monotonic()
            out = link.cli("tcpreplay", "-i", link.cli_if, *speed, f"--loop={args.loops}", args.pcap,
                           timeout=600).stdout
            replay_s = time.monotonic() - t0
            last = -1
            while True:  # drained when the output stops growing for 2 s
                time.sleep(2)
                size = sum(f.stat().st_size for f in a.out.iterdir()) if a.out.is_dir() else 0
                if size == last:
                    break
                last = size
            drain_s = time.monotonic() - t0 - replay_s - 2
            a.stop()
            m = a.metrics
        rated = re.search(r"([\d.]+) pps", out)
        print(f"replayed at {rated.group(1) if rated else '?'} pps in {replay_s:.1f} s, drained {drain_s:.1f} s later")
        for key in ("dns.transactions", "capture.received", "capture.kernel_received", "capture.kernel_dropped",
                    "capture.kernel_freeze_queue", "output.file.events.acked",
                    "output.file.queue.dropped_full"):
            print(f"  {key:34} {m.get(key, 0):>10,}")


if __name__ == "__main__":
    main()
