#!/usr/bin/env python3
"""Memory under a flood of DNS queries that never get an answer.

    python3 bench/flood_unanswered.py                    # 1,000,000 queries, default cap (100,000)
    python3 bench/flood_unanswered.py --queries 200000 --cap 10000

Writes a classic pcap (raw ``struct`` records, no scapy; ~80 MB for 1M queries, in a temporary
directory that is removed afterwards) of distinct queries 1 µs apart from many client ports, so
every query is still inside ``transaction_timeout`` when the pending table fills: from then on
each new query evicts the oldest one, which is published as unanswered. pybeat replays it with
the file output and ``max_pending_transactions: --cap``; the script prints the peak RSS, the
evicted count and the events written, and checks that every query became exactly one event.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
packetbeat.protocols:
  - type: dns
    ports: [53]
    max_pending_transactions: {cap}
output.file:
  path: {out}
  filename: flood
  rotate_every_kb: 10485760
logging.to_stderr: true
logging.level: warning
logging.metrics.enabled: false
"""


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def write_flood(path: Path, queries: int, start_s: int = 1_700_000_000) -> None:
    """``queries`` distinct A queries (name ``q<i>.flood.example``), 10.1.x.y -> 10.0.0.53."""
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    rec = struct.Struct("<IIII")
    with open(path, "wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(queries):
            qname = b"".join(bytes([len(p)]) + p for p in (b"q%d" % i, b"flood", b"example")) + b"\0"
            dns = struct.pack("!6H", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
            sport = 1024 + (i % 60000)
            src = bytes((10, 1, (i >> 8) & 0xFF, i & 0xFF))
            udp = struct.pack("!HHHH", sport, 53, 8 + len(dns), 0) + dns
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, b"\x0a\x00\x00\x35")
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            frame = eth + ip + udp
            ts_us = i  # 1 µs apart: 1M queries span one second of packet time
            fh.write(rec.pack(start_s + ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame)))
            fh.write(frame)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--cap", type=int, default=100_000, help="max_pending_transactions")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pybeat-flood-"))
    try:
        pcap = work / "flood.pcap"
        t0 = time.perf_counter()
        write_flood(pcap, args.queries)
        print(f"wrote {args.queries:,} queries ({pcap.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s",
              flush=True)
        out = work / "out"
        cfg = work / "flood.yml"
        cfg.write_text(CONFIG.format(cap=args.cap, out=out))
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap),
               "-t", "--path.home", str(work), "-E", "packetbeat.workers=1"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"pybeat failed: {proc.stderr[-3000:]}")
        rss = cpu = 0.0
        for line in proc.stderr.splitlines():
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1]) / 1024
            elif "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.split(":")[1])
        events = evicted = 0
        for p in out.glob("*.ndjson"):
            with open(p, "rb") as fh:
                for line in fh:
                    events += 1
                    if b"Query evicted before a response" in line:
                        evicted += 1
        summary = proc.stdout.strip()
        print(summary)
        result = {
            "queries": args.queries, "cap": args.cap, "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss, 1), "events": events, "events_noting_eviction": evicted,
        }
        print(json.dumps(result))
        ok = events == args.queries and evicted == args.queries - args.cap
        print("OK" if ok else "MISMATCH: expected every query once and queries - cap evictions")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
