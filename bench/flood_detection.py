#!/usr/bin/env python3
"""Memory of the dns detector under a random-name flood, with evictions counted.

    python3 bench/flood_detection.py --names 1000000

Feeds N transactions with distinct random names to the detector (every detector on, default
caps), half of them random subdomains of one domain from one client (a water-torture or
tunnel-like flood), half of them random registered domains from 1,000 clients, one every
100 µs of packet time, and prints the peak RSS growth, the tables' sizes and the eviction
counters. tests/detection/test_flood.py runs the same with 100,000 names and asserts the
bounds.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time

from pybeat.api import BeatInfo, DetectorContext, Paths
from pybeat.protocols.dns.detection.config import DnsDetectionConfig
from pybeat.protocols.dns.detection.detector import DnsDetector
from pybeat.protocols.dns.detection.view import Message, TxnView

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def flood(n: int, seed: int = 7) -> tuple[DnsDetector, dict[str, int], float]:
    rng = random.Random(seed)
    ctx = DetectorContext(emit=lambda e: None, beat=BeatInfo(), paths=Paths.resolve(tempfile.mkdtemp()))
    det = DnsDetector(DnsDetectionConfig.model_validate({"protected_domains": ["example.test"]}), ctx)
    observe, timers = det.observe_view, det._timers
    t0 = 1_800_000_000 * 10**9
    start = time.perf_counter()
    for i in range(n):
        label = "".join(rng.choice(ALPHABET) for _ in range(16))
        ts = t0 + i * 100_000
        if i % 2:
            rd, client = "victim.test", "10.0.0.1"
        else:
            rd, client = label[:10] + ".test", f"10.1.{i % 1000 // 250}.{i % 250}"
        name = f"{label}.{rd}"
        sub = name[: -len(rd) - 1]
        v = TxnView(ts, client, 1024 + i % 60000, "", i % 65536, True, False,
                    Message(name, "A", rd, sub, "", (), 0, sub, 0, False))
        observe(v)
        if i % 5000 == 0:  # the decoder's timer: every 0.5 s of packet time
            for expire in timers:
                expire(ts)
    return det, det.stats(), time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", type=int, default=1_000_000)
    args = ap.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _det, stats, secs = flood(args.names)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"names": args.names, "seconds": round(secs, 1), "rss_growth_mib": round((peak - before) / 1024, 1),
                      "peak_rss_mib": round(peak / 1024, 1), "stats": stats}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
