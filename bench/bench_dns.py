#!/usr/bin/env python3
"""Benchmark: pybeat vs Elastic Packetbeat 7.17 vs tshark -T ek on the same capture, in the same run.

    python3 bench/bench_dns.py                      # the shared 100k-packet capture, 5 rounds
    python3 bench/bench_dns.py --loops 10           # the capture looped to 1M packets
    python3 bench/bench_dns.py --workers 1          # pybeat in one process (default: one per CPU)
    python3 bench/bench_dns.py --scaling            # pybeat with 1, then 2, ... N worker processes
    python3 bench/bench_dns.py --pure-python        # pybeat without its compiled hot path
    python3 bench/bench_dns.py --no-disk-queue      # skip the rounds with queue.disk
    python3 bench/bench_dns.py --no-packetbeat      # leave Packetbeat out

pybeat runs with the file output and every DNS field switched on (authorities, additionals,
request and response strings), split across one process per CPU by flow
(``packetbeat.workers``; ``--workers 1`` for a single process). tshark runs as Wireshark's Elasticsearch export
(``tshark -r FILE -T ek``) writing to /dev/null. Packetbeat 7.17.29 (built by
``tests/tooling/packetbeat/setup.sh``; its column is skipped with a message when it is not built)
runs with the same DNS settings and file output (``-I FILE -t``, no processors). Packetbeat does
not exit when its events are written: after the capture ends it sleeps ``shutdown_timeout``
(5 s here; its janitor publishes the unanswered queries in that time) and only then stops, and
it writes the last ~2 % of the events during that wait. So its output file is watched every
10 ms and two times are reported: when 98 % and when all of the events it finally wrote were
in the file (``to all events``, the number its packets/s use), counted from its "start running"
log line (before it, its config check sleeps shutdown_timeout once more), besides its process
wall time.
pybeat and tshark exit once done, so for them both are their wall time. Each round runs the
tools back to back and the best round of each is reported (these machines are noisy), with packets/s, events/s, peak
RSS, CPU time (user+sys, all processes) and the ratio (of the best rounds; also the range and
median of each round's ratio, both tools timed back to back). Each round also runs pybeat with
the disk queue (``queue.disk``, in the benchmark's temporary folder) and reports its cost
against the same round's run without it (wall and CPU time). It says whether pybeat ran its
compiled hot path (``pybeat.decode._replay``, ``pybeat.protocols.dns._fast``) or pure Python. Results also go to
``bench/results/<timestamp>.json``. pybeat runs with its bytecode cached, as an installed
package does (an untimed warm-up run writes the cache even where PYTHONDONTWRITEBYTECODE is set).
"""

from __future__ import annotations

import argparse
import datetime
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
PACKETBEAT = REPO / "tests" / "tooling" / "packetbeat" / ".build" / "packetbeat"
PACKETBEAT_SETUP = "tests/tooling/packetbeat/setup.sh"
#: Packetbeat's wait after the capture ends; its unanswered queries are published by a janitor
#: every transaction_timeout of wall time, so the wait is more than twice that.
PACKETBEAT_SHUTDOWN = "5s"
PACKETBEAT_TRANSACTION_TIMEOUT = "2s"

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
#: the detection column: the same run with every DNS detector on (docs/detection.md)
DETECTION = """
pybeat.detection.dns:
  enabled: true
  protected_domains: [example.test, corp.test]
"""

PACKETBEAT_CONFIG = """
packetbeat.protocols:
  - type: dns
    ports: [53]
    include_authorities: true
    include_additionals: true
    send_request: true
    send_response: true
    transaction_timeout: {timeout}
packetbeat.shutdown_timeout: {shutdown}
processors: []
output.file:
  path: {out}
  filename: packetbeat
  rotate_every_kb: 10485760
logging.level: info
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


def run_packetbeat(pcap: Path, work: Path, loops: int) -> dict:
    """One Packetbeat run: wall time of the process, times at which 98 % and all of its events
    were in its output file (polled every 10 ms), CPU time and peak RSS (from wait4).

    The times to events are counted from Packetbeat's "packetbeat start running" log line: before
    it, Packetbeat checks its config by building and stopping a runner, and that stop sleeps
    shutdown_timeout (here 5 s) although nothing was read yet. The time of that line (``start``)
    is reported too."""
    home = work / "packetbeat"
    shutil.rmtree(home, ignore_errors=True)
    out = home / "out"
    home.mkdir(parents=True)
    cfg = home / "packetbeat.yml"
    cfg.write_text(PACKETBEAT_CONFIG.format(out=out, shutdown=PACKETBEAT_SHUTDOWN,
                                            timeout=PACKETBEAT_TRANSACTION_TIMEOUT))
    cmd = [str(PACKETBEAT), "-e", "-c", str(cfg), "--strict.perms=false", "--path.home", str(home),
           "--path.data", str(home / "data"), "--path.logs", str(home / "logs"),
           "-I", str(pcap), "-t", "-l", str(loops)]
    target = out / "packetbeat"
    samples: list[tuple[float, int]] = []  # (seconds since launch, file size) at each change
    log = home / "stderr.log"
    with open(log, "wb") as err:
        wall0, t0 = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        size = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            try:
                now_size = target.stat().st_size
            except FileNotFoundError:
                now_size = 0
            if now_size != size:
                size = now_size
                samples.append((time.perf_counter() - t0, size))
            if pid:
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0 or not target.exists():
        sys.exit(f"packetbeat failed ({proc.returncode}): {text[-2000:]}")
    start = 0.0
    for line in text.splitlines():
        if "packetbeat start running" in line:
            stamp = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            start = max(0.0, stamp - wall0)
            break
    ends = []  # byte offset after each event
    with open(target, "rb") as fh:
        pos = 0
        for line_ in fh:
            pos += len(line_)
            ends.append(pos)

    def reached(nbytes: int) -> float:
        return next(t for t, sz in samples if sz >= nbytes) - start

    events = len(ends)
    return {"packetbeat_s": wall, "packetbeat_start_s": start,
            "packetbeat_all_s": reached(ends[-1]) if ends else wall,
            "packetbeat_98_s": reached(ends[max(0, -(-events * 98 // 100) - 1)]) if ends else wall,
            "packetbeat_cpu_s": usage.ru_utime + usage.ru_stime, "packetbeat_rss_kib": usage.ru_maxrss,
            "packetbeat_events": events}


def count_lines(directory: Path) -> int:
    return sum(sum(1 for _ in open(p, "rb")) for p in directory.glob("*.ndjson"))


def print_table(rounds: list[dict], packets: int, packetbeat: bool, tshark: bool) -> None:
    """The tools side by side, each on its best round (by time to all events)."""
    cols: list[tuple[str, dict]] = []
    py = min(rounds, key=lambda r: r["pybeat_s"])
    cols.append(("pybeat", {"wall": py["pybeat_s"], "all": py["pybeat_s"], "98": None, "cpu": py["pybeat_cpu_s"],
                            "events": py["events"], "rss": py["pybeat_rss_kib"]}))
    if "detection_s" in rounds[0]:
        dt = min(rounds, key=lambda r: r["detection_s"])
        cols.append(("pybeat+detection", {"wall": dt["detection_s"], "all": dt["detection_s"], "98": None,
                                          "cpu": dt["detection_cpu_s"], "events": dt["detection_events"],
                                          "rss": dt["detection_rss_kib"]}))
    if packetbeat:
        pb = min(rounds, key=lambda r: r["packetbeat_all_s"])
        cols.append(("Packetbeat 7.17", {"wall": pb["packetbeat_s"], "all": pb["packetbeat_all_s"],
                                         "98": pb["packetbeat_98_s"], "cpu": pb["packetbeat_cpu_s"],
                                         "events": pb["packetbeat_events"], "rss": pb["packetbeat_rss_kib"]}))
    if tshark:
        ts = min(rounds, key=lambda r: r["tshark_s"])
        cols.append(("tshark -T ek", {"wall": ts["tshark_s"], "all": ts["tshark_s"], "98": None,
                                      "cpu": ts["tshark_cpu_s"], "events": None, "rss": ts["tshark_rss_kib"]}))
    rows = [
        ("wall, process (s)", lambda c: f"{c['wall']:.2f}"),
        ("to 98 % of events (s)", lambda c: "-" if c["98"] is None else f"{c['98']:.2f}"),
        ("to all events (s)", lambda c: f"{c['all']:.2f}"),
        ("CPU user+sys (s)", lambda c: f"{c['cpu']:.2f}"),
        ("packets/s (to all events)", lambda c: f"{packets / c['all']:,.0f}"),
        ("events written", lambda c: f"{packets:,} docs" if c["events"] is None else f"{c['events']:,}"),
        ("peak RSS (MiB)", lambda c: f"{c['rss'] / 1024:.0f}"),
    ]
    print(f"\n{'best round of each':<27}" + "".join(f"{name:>18}" for name, _ in cols))
    for label, fmt in rows:
        print(f"{label:<27}" + "".join(f"{fmt(c):>18}" for _, c in cols))
    if packetbeat:
        print(f"Packetbeat: times to events count from its 'start running' log line (before it, its config "
              f"check sleeps shutdown_timeout = {PACKETBEAT_SHUTDOWN}); it exits only after sleeping "
              f"shutdown_timeout again,\nand writes its last events in that wait: 'to all events' is when "
              f"the last of them reached its file (polled every 10 ms). pybeat and tshark: from launch to exit.")


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
    ap.add_argument("--no-packetbeat", action="store_true", help="leave Packetbeat 7.17 out")
    ap.add_argument("--no-detection", action="store_true", help="leave out the run with the DNS detectors on")
    ap.add_argument("--no-flows", action="store_true", help="leave out the run with packetbeat.flows on")
    ap.add_argument("--pure-python", action="store_true",
                    help="run pybeat without its compiled hot path (PYBEAT_PURE_PYTHON=1), for comparison")
    args = ap.parse_args()
    if args.pure_python:
        PYBEAT_ENV["PYBEAT_PURE_PYTHON"] = "1"
    import importlib.util

    compiled = importlib.util.find_spec("pybeat.decode._replay") is not None and not args.pure_python
    print("pybeat hot path: " + ("compiled (pybeat.decode._replay + pybeat.protocols.dns._fast)" if compiled else
                                 "pure Python" + ("" if args.pure_python else " (the extensions were not built)")),
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
    packetbeat = not (args.no_packetbeat or args.scaling)
    if packetbeat and not os.access(PACKETBEAT, os.X_OK):
        print(f"Packetbeat: not built, its column is skipped (build it: bash {PACKETBEAT_SETUP})", flush=True)
        packetbeat = False
    work = Path(tempfile.mkdtemp(prefix="pybeat-bench-"))
    looped = pcap
    if args.loops > 1 and tshark and not args.no_tshark:
        looped = work / "looped.pcap"
        subprocess.run(["mergecap", "-a", "-w", str(looped), *[str(pcap)] * args.loops], check=True)

    warm = work / "warm.yml"
    warm.write_text(CONFIG.format(out=work / "warm"))
    subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(warm), "-I", str(pcap), "-t", "-N",
                    "--path.home", str(work)], env=PYBEAT_ENV, stdout=subprocess.DEVNULL, check=True)
    best_py = best_ts = best_pb = None
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
        if not args.no_detection:  # the same run with the detectors on, right after it
            det_cfg = work / "bench-detection.yml"
            det_cfg.write_text(CONFIG.format(out=out) + DETECTION)
            det_cmd = [str(det_cfg) if c == str(cfg) else c for c in cmd] + ["--path.data", str(work / f"data{r}")]
            det_s, det_rss, det_proc = _peak_rss_of(det_cmd)
            det_events = count_lines(out)
            shutil.rmtree(out, ignore_errors=True)
            row.update(detection_s=det_s, detection_cpu_s=det_proc.cpu_s, detection_rss_kib=det_rss,
                       detection_events=det_events)
        if not args.no_flows:  # the same run with packetbeat.flows on (docs/flows.md), right after it
            fl_s, fl_rss, fl_proc = _peak_rss_of(cmd + ["-E", "packetbeat.flows.timeout=30s"])
            shutil.rmtree(out, ignore_errors=True)
            row.update(flows_s=fl_s, flows_cpu_s=fl_proc.cpu_s, flows_rss_kib=fl_rss)
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
        if packetbeat:
            row.update(run_packetbeat(pcap, work, args.loops))
            best_pb = row["packetbeat_all_s"] if best_pb is None else min(best_pb, row["packetbeat_all_s"])
        best_py = py_s if best_py is None else min(best_py, py_s)
        results["rounds"].append(row)
        print(f"round {r + 1}: pybeat {py_s:.2f}s (CPU {py_proc.cpu_s:.2f}s, {args.workers} worker(s); "
              f"{total_packets / py_s:,.0f} packets/s, {events:,} events, peak RSS {py_rss / 1024:.0f} MiB)"
              + (f"; with detection {row['detection_s']:.2f}s (CPU {row['detection_cpu_s']:.2f}s)"
                 if "detection_s" in row else "")
              + (f"; Packetbeat all events {row['packetbeat_all_s']:.2f}s, 98 % {row['packetbeat_98_s']:.2f}s after "
                 f"its start at {row['packetbeat_start_s']:.2f}s, exit {row['packetbeat_s']:.2f}s "
                 f"(CPU {row['packetbeat_cpu_s']:.2f}s; "
                 f"{row['packetbeat_events']:,} events)" if "packetbeat_s" in row else "")
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
    if not args.no_detection:
        best_det = min(row["detection_s"] for row in results["rounds"])
        costs = sorted(1 - row["pybeat_s"] / row["detection_s"] for row in results["rounds"])
        results["best_detection_packets_per_s"] = total_packets / best_det
        results["detection_cost"] = 1 - best_py / best_det
        results["round_detection_costs"] = costs
        print(f"pybeat with detection on: {total_packets / best_det:,.0f} packets/s (best of {args.rounds}): "
              f"{100 * (1 - best_py / best_det):.0f} % slower (best of each; per round, both timed back to back: "
              f"{100 * costs[0]:.0f} %-{100 * costs[-1]:.0f} %, median {100 * costs[len(costs) // 2]:.0f} %)")
    if not args.no_flows:
        best_fl = min(row["flows_s"] for row in results["rounds"])
        costs = sorted(1 - row["pybeat_s"] / row["flows_s"] for row in results["rounds"])
        results.update(best_flows_packets_per_s=total_packets / best_fl, flows_cost=1 - best_py / best_fl,
                       round_flows_costs=costs)
        print(f"pybeat with flows on: {total_packets / best_fl:,.0f} packets/s (best of {args.rounds}): "
              f"{100 * (1 - best_py / best_fl):.0f} % slower (best of each; per round, both timed back to back: "
              f"{100 * costs[0]:.0f} %-{100 * costs[-1]:.0f} %, median {100 * costs[len(costs) // 2]:.0f} %)")
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
    if best_pb is not None:
        results["best_packetbeat_packets_per_s"] = total_packets / best_pb
        results["ratio_packetbeat"] = best_pb / best_py
        print(f"ratio pybeat / Packetbeat (to all events): {best_pb / best_py:.1f}x (best of each)")
    print_table(results["rounds"], total_packets, packetbeat, best_ts is not None)
    dest = REPO / "bench" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / time.strftime("%Y%m%dT%H%M%S.json")).write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
