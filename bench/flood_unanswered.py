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
import resource
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
        cmd = [sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
               "--path.home", str(work), "-E", "packetbeat.workers=1"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        curve: list[tuple[float, float]] = []  # (seconds, RSS MiB), sampled while it runs
        peak = 0.0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status", encoding="ascii") as fh:
                    for line in fh:
                        if line.startswith("VmRSS:"):
                            curve.append((time.perf_counter() - t0, int(line.split()[1]) / 1024))
                        elif line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.5)
        stdout, stderr = proc.communicate()
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"pybeat failed: {stderr[-3000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss = max(peak, after.ru_maxrss / 1024)
        if curve:
            step = max(1, len(curve) // 10)
            print("RSS while running (s, MiB): " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in curve[::step]))
        events = evicted = 0
        for p in out.glob("*.ndjson"):
            with open(p, "rb") as fh:
                for line in fh:
                    events += 1
                    if b"Query evicted before a response" in line:
                        evicted += 1
        summary = stdout.strip()
        print(summary)
        result = {
            "queries": args.queries, "cap": args.cap, "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss, 1), "events": events, "events_noting_eviction": evicted,
            "rss_curve_mib": [(round(t, 1), round(m)) for t, m in curve],
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
