#!/usr/bin/env python3
"""Benchmark: pybeat vs tshark -T ek on the same capture, in the same run.

    python3 bench/bench_dns.py                      # the shared 100k-packet capture, 5 rounds
    python3 bench/bench_dns.py --loops 10           # the capture looped to 1M packets
    python3 bench/bench_dns.py --workers 1          # pybeat in one process (default: one per CPU)
    python3 bench/bench_dns.py --scaling            # pybeat with 1, then 2, ... N worker processes
    python3 bench/bench_dns.py --pure-python        # pybeat without its compiled hot path
    python3 bench/bench_dns.py --no-disk-queue      # skip the rounds with queue.disk

pybeat runs with the file output and every DNS field switched on (authorities, additionals,
request and response strings), split across one process per CPU by flow
(``packetbeat.workers``; ``--workers 1`` for a single process). tshark runs as Wireshark's Elasticsearch export
(``tshark -r FILE -T ek``) writing to /dev/null. Each round runs both tools back to back and
the best round of each is reported (these machines are noisy), with packets/s, events/s, peak
RSS, CPU time (user+sys, all processes) and the ratio (of the best rounds; also the range and
median of each round's ratio, both tools timed back to back). Each round also runs pybeat with
the disk queue (``queue.disk``, in the benchmark's temporary folder) and reports its cost
against the same round's run without it (wall and CPU time). It says whether pybeat ran its
compiled hot path (``pybeat._speedups``) or pure Python. Results also go to
``bench/results/<timestamp>.json``. pybeat runs with its bytecode cached, as an installed
package does (an untimed warm-up run writes the cache even where PYTHONDONTWRITEBYTECODE is set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PCAP = REPO / "tests" / "data" / "pcaps" / "dns_bulk_100k.pcap"

CONFIG = """
packetbeat.protocols:
  - type: dns
    ports: [53]
    include_authorities: true
    include_additionals: true
    send_request: true
    send_response: true
output.file:
  path: {out}
  filename: bench
  rotate_every_kb: 10485760
logging.to_stderr: true
logging.level: warning
logging.metrics.enabled: false
"""


# pybeat runs as an installed package does: with its bytecode cached (pip compiles it at install
# time). Some environments set PYTHONDONTWRITEBYTECODE, which would make every run compile every
# module again (~50 ms); a warm-up run before the timed rounds writes the cache.
PYBEAT_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall time and peak RSS (KiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before), proc


def _peak_rss_of(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run through /usr/bin/time -v when present, for the child's own peak RSS (the largest of
    its processes) and CPU time (``proc.cpu_s``: user + sys of the process and its children)."""
    gnu_time = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    if gnu_time is None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed, rss, proc = _run(cmd)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # type: ignore[attr-defined]
        return elapsed, rss, proc
    t0 = time.perf_counter()
    proc = subprocess.run([gnu_time, "-v", *cmd], stdout=subprocess.PIPE if cmd[0] != "tshark" else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=PYBEAT_ENV if cmd[0] != "tshark" else None)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rss = 0
    cpu = 0.0
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1])
        elif "User time (seconds)" in line or "System time (seconds)" in line:
            cpu += float(line.split(":")[1])
    proc.cpu_s = cpu  # type: ignore[attr-defined]
    return elapsed, rss, proc


def count_lines(directory: Path) -> int:
    return sum(sum(1 for _ in open(p, "rb")) for p in directory.glob("*.ndjson"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", nargs="?", default=str(DEFAULT_PCAP))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loops", type=int, default=1, help="replay the capture N times (pybeat -l, tshark on a looped copy)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="pybeat worker processes, split by flow (default: one per CPU, here %(default)s)")
    ap.add_argument("--scaling", action="store_true", help="run pybeat with 1..--workers processes (no tshark)")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--no-disk-queue", action="store_true", help="skip the runs with queue.disk")
    ap.add_argument("--pure-python", action="store_true",
                    help="run pybeat without its compiled hot path (PYBEAT_PURE_PYTHON=1), for comparison")
    args = ap.parse_args()
    if args.pure_python:
        PYBEAT_ENV["PYBEAT_PURE_PYTHON"] = "1"
    import importlib.util

    compiled = importlib.util.find_spec("pybeat._speedups") is not None and not args.pure_python
    print("pybeat hot path: " + ("compiled (pybeat._speedups)" if compiled else
                                 "pure Python" + ("" if args.pure_python else " (pybeat._speedups was not built)")),
          flush=True)
    if args.scaling:
        rows = []
        for w in range(1, max(1, args.workers) + 1):
            argv = [sys.executable, __file__, args.pcap, "--rounds", str(args.rounds), "--loops", str(args.loops),
                    "--workers", str(w), "--no-tshark"] + (["--pure-python"] if args.pure_python else [])
            print(f"== {w} worker(s)", flush=True)
            out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout
            print(out, end="", flush=True)
            rows.append(out)
        return 0

    pcap = Path(args.pcap)
    packets = 0
    with open(pcap, "rb") as fh:
        from pybeat.capture.pcapfile import PcapFileSource

        packets = sum(1 for _ in PcapFileSource(str(pcap)))
    total_packets = packets * args.loops
    tshark = shutil.which("tshark")
    work = Path(tempfile.mkdtemp(prefix="pybeat-bench-"))
    looped = pcap
    if args.loops > 1 and tshark and not args.no_tshark:
        looped = work / "looped.pcap"
        subprocess.run(["mergecap", "-a", "-w", str(looped), *[str(pcap)] * args.loops], check=True)

    warm = work / "warm.yml"
    warm.write_text(CONFIG.format(out=work / "warm"))
    subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(warm), "-I", str(pcap), "-t", "-N",
                    "--path.home", str(work)], env=PYBEAT_ENV, stdout=subprocess.DEVNULL, check=True)
    best_py = best_ts = None
    results = {"pcap": str(pcap), "loops": args.loops, "packets": total_packets, "rounds": [], "compiled": compiled}
    for r in range(args.rounds):
        out = work / f"out{r}"
        cfg = work / "bench.yml"
        cfg.write_text(CONFIG.format(out=out))
        cmd = [sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
               "-l", str(args.loops), "--path.home", str(work)]
        if args.workers:
            cmd += ["-E", f"packetbeat.workers={args.workers}"]
        py_s, py_rss, py_proc = _peak_rss_of(cmd)
        events = count_lines(out)
        shutil.rmtree(out, ignore_errors=True)
        row = {"pybeat_s": py_s, "pybeat_cpu_s": py_proc.cpu_s, "pybeat_rss_kib": py_rss, "events": events,
               "workers": args.workers}
        if not args.no_disk_queue:
            dq = work / f"dq{r}"
            dq_s, dq_rss, dq_proc = _peak_rss_of(cmd + ["-E", f"queue.disk.path={dq}", "-E", "queue.disk.max_size=10GB"])
            dq_events = count_lines(out)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(dq, ignore_errors=True)
            if dq_events != events:
                sys.exit(f"with the disk queue pybeat wrote {dq_events} events, without it {events}")
            row.update(disk_queue_s=dq_s, disk_queue_cpu_s=dq_proc.cpu_s, disk_queue_rss_kib=dq_rss)
        if tshark and not args.no_tshark:
            ts_s, ts_rss, ts_proc = _peak_rss_of(["tshark", "-r", str(looped), "-T", "ek"])
            row.update(tshark_s=ts_s, tshark_cpu_s=ts_proc.cpu_s, tshark_rss_kib=ts_rss)
            best_ts = ts_s if best_ts is None else min(best_ts, ts_s)
        best_py = py_s if best_py is None else min(best_py, py_s)
        results["rounds"].append(row)
        print(f"round {r + 1}: pybeat {py_s:.2f}s (CPU {py_proc.cpu_s:.2f}s, {args.workers} worker(s); "
              f"{total_packets / py_s:,.0f} packets/s, {events:,} events, peak RSS {py_rss / 1024:.0f} MiB)"
              + (f"; tshark -T ek {row['tshark_s']:.2f}s (CPU {row['tshark_cpu_s']:.2f}s; "
                 f"{total_packets / row['tshark_s']:,.0f} packets/s, peak RSS {row['tshark_rss_kib'] / 1024:.0f} MiB)"
                 if "tshark_s" in row else "")
              + (f"; with queue.disk {row['disk_queue_s']:.2f}s (CPU {row['disk_queue_cpu_s']:.2f}s, "
                 f"x{row['disk_queue_s'] / py_s:.2f} wall, x{row['disk_queue_cpu_s'] / py_proc.cpu_s:.2f} CPU)"
                 if "disk_queue_s" in row else ""), flush=True)
    assert best_py is not None
    results["best_pybeat_packets_per_s"] = total_packets / best_py
    results["events"] = results["rounds"][-1]["events"]
    best_cpu = min(row["pybeat_cpu_s"] for row in results["rounds"])
    results["workers"] = args.workers
    results["best_pybeat_cpu_s"] = best_cpu
    print(f"\npybeat ({args.workers} worker(s)): {total_packets / best_py:,.0f} packets/s, "
          f"{results['events'] / best_py:,.0f} events/s (best of {args.rounds}; "
          f"{total_packets / best_cpu:,.0f} packets per CPU-second)")
    if best_ts is not None:
        results["best_tshark_packets_per_s"] = total_packets / best_ts
        results["ratio"] = best_ts / best_py
        best_ts_cpu = min(row["tshark_cpu_s"] for row in results["rounds"])
        print(f"tshark -T ek: {total_packets / best_ts:,.0f} packets/s ({total_packets / best_ts_cpu:,.0f} packets per CPU-second)")
        per_round = sorted(row["tshark_s"] / row["pybeat_s"] for row in results["rounds"])
        results["round_ratios"] = per_round
        print(f"ratio pybeat / tshark: {best_ts / best_py:.1f}x (best of each; per round, both timed back to back: "
              f"{per_round[0]:.1f}x-{per_round[-1]:.1f}x, median {per_round[len(per_round) // 2]:.1f}x)")
    if not args.no_disk_queue:
        best_dq = min(row["disk_queue_s"] for row in results["rounds"])
        best_dq_cpu = min(row["disk_queue_cpu_s"] for row in results["rounds"])
        walls = sorted(row["disk_queue_s"] / row["pybeat_s"] for row in results["rounds"])
        cpus = sorted(row["disk_queue_cpu_s"] / row["pybeat_cpu_s"] for row in results["rounds"])
        results.update(best_disk_queue_packets_per_s=total_packets / best_dq, disk_queue_wall_ratios=walls,
                       disk_queue_cpu_ratios=cpus)
        print(f"with queue.disk: {total_packets / best_dq:,.0f} packets/s (best of {args.rounds}; "
              f"{total_packets / best_dq_cpu:,.0f} packets per CPU-second); cost per round, both timed back to "
              f"back: wall x{walls[0]:.2f}-x{walls[-1]:.2f} (median x{walls[len(walls) // 2]:.2f}), "
              f"CPU x{cpus[0]:.2f}-x{cpus[-1]:.2f} (median x{cpus[len(cpus) // 2]:.2f})")
    dest = REPO / "bench" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / time.strftime("%Y%m%dT%H%M%S.json")).write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
