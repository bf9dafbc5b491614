"""Events per second from a capture into one local Elasticsearch (or OpenSearch) node.

    python bench/bench_elasticsearch.py [--pcap dns_bulk_100k.pcap] [--engine es7|os2]
        [--workers 1,2] [--bulk 1600] [--compression 0,1] [--e2e]

Needs the embedded-node launcher built (tests/tooling/esnode/setup.sh). Steps:
1. The capture is decoded once by the agent (``pybeat run -I ... -t`` with the file output) into
   real Packetbeat-shaped events, cached next to the capture's name in /tmp.
2. One node is started; for each (workers, compression) the events are pushed through the
   agent's own pipeline and output runner into a fresh index, and timed until every event is
   acknowledged (the index's document count is checked against it).
3. With ``--e2e``, the whole agent (``pybeat run -I capture -t`` with output.elasticsearch) is
   timed too: capture, decode, DNS, pipeline and output together.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "tooling" / "esnode"))
sys.path.insert(0, str(REPO / "tests" / "elasticsearch"))

import esnode  # noqa: E402

from pybeat.api import Event  # noqa: E402
from pybeat.timefmt import parse_ts  # noqa: E402

PCAPS = REPO / "tests" / "data" / "pcaps"


def decode_capture(pcap: Path) -> list[Event]:
    cache = Path(tempfile.gettempdir()) / f"pybeat-bench-{pcap.stem}-events"
    files = sorted(cache.glob("*.ndjson")) if cache.is_dir() else []
    if not files:
        cache.mkdir(exist_ok=True)
        cfg = cache / "pybeat.yml"
        cfg.write_text(json.dumps({
            "packetbeat.interfaces.device": "any",
            "packetbeat.protocols": [{"type": "dns", "ports": [53]}],
            "output.file": {"path": str(cache), "filename": "events", "rotate_every_kb": 10_000_000},
            "logging.to_files": False,
        }))
        cfg.chmod(0o600)
        subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
                        "--strict.perms", "false"], check=True, capture_output=True, timeout=900)
        files = sorted(cache.glob("*.ndjson"))
    events = []
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                doc = json.loads(line)
                doc.pop("@metadata", None)
                ts = parse_ts(doc.pop("@timestamp"))
                events.append(Event(ts, doc))
    return events


BENCH_SETUP = {"template": {"overwrite": True, "settings": {"index": {
    "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "30s", "translog": {"durability": "async"}}}}}


def push(url: str, events: list[Event], workers: int, bulk: int, compression: int) -> float:
    """Time the agent's pipeline + output delivering ``events`` into the default index
    (packetbeat-<version>-<date>, with the output's own template) until all are acknowledged."""
    from conftest_es import Harness, count

    esnode.http_json(f"{url}/packetbeat-*", "DELETE")
    h = Harness({"hosts": [url], "worker": workers, "bulk_max_size": bulk, "compression_level": compression},
                setup=BENCH_SETUP, queue_events=max(8192, 4 * bulk * workers), logger=_quiet())
    t0 = time.perf_counter()
    h.feed(events)
    assert h.close(600)
    elapsed = time.perf_counter() - t0 - 0.25  # feed() waits 0.25 s for the last partial batch
    st = h.runner.stats()
    assert st["events.acked"] == len(events) and st["events.dropped"] == 0, st
    assert count(url, "packetbeat-*") == len(events)
    return elapsed


def _quiet() -> object:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    return structlog.get_logger("bench")


def e2e(url: str, pcap: Path) -> tuple[int, float]:
    tmp = Path(tempfile.mkdtemp(prefix="pybeat-bench-"))
    cfg = tmp / "pybeat.yml"
    cfg.write_text(json.dumps({
        "packetbeat.interfaces.device": "any",
        "packetbeat.protocols": [{"type": "dns", "ports": [53]}],
        "output.elasticsearch": {"hosts": [url], "compression_level": 0},
        "logging.to_files": False,
    }))
    cfg.chmod(0o600)
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
                          "--strict.perms", "false"], capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout + run.stderr
    m = re.search(r"^\s*events\s+([\d,]+)", run.stdout, re.M)
    return int(m.group(1).replace(",", "")) if m else 0, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pcap", default=str(PCAPS / "dns_bulk_100k.pcap"))
    ap.add_argument("--engine", default="es7", choices=["es7", "os2"])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--bulk", type=int, default=1600)
    ap.add_argument("--compression", default="0,1")
    ap.add_argument("--e2e", action="store_true")
    args = ap.parse_args()
    if not esnode.built(args.engine):
        print("build the launcher first: bash tests/tooling/esnode/setup.sh", file=sys.stderr)
        return 2
    pcap = Path(args.pcap)
    t0 = time.perf_counter()
    events = decode_capture(pcap)
    print(f"capture {pcap.name}: {len(events)} events (decoded in {time.perf_counter() - t0:.1f}s, cached)")
    # The output's own CPU ceiling: building the bulk bodies (action + document lines) for every
    # event, no network. What is left of the delivery time is the node indexing.
    from pybeat.outputs.elasticsearch.bulk import BulkEncoder

    enc = BulkEncoder()
    t1 = time.perf_counter()
    size = 0
    for i in range(0, len(events), args.bulk):
        lines = []
        for ev in events[i:i + args.bulk]:
            lines.append(enc.action("create", "packetbeat-0.1.0-2026.11.27"))
            lines.append(enc.document(ev))
        size += len(enc.body(lines))
    secs = time.perf_counter() - t1
    print(f"bulk encoding alone: {len(events) / secs:,.0f} events/s ({size / len(events):,.0f} bytes/event)")
    node = esnode.NodeProcess(args.engine, heap="1024m")
    try:
        print(f"{args.engine} node ready in {node.startup_seconds:.1f}s ({node.url()})")
        # Warm-up: a fresh JVM indexes several times slower until its JIT has compiled the hot
        # paths (measured here: 6.5k/s on the first pass, 20k/s on the third), so two untimed
        # passes of the whole capture go first.
        for _ in range(2):
            push(node.url(), events, 2, args.bulk, 0)
        for workers in (int(w) for w in args.workers.split(",")):
            for comp in (int(c) for c in args.compression.split(",")):
                secs = push(node.url(), events, workers, args.bulk, comp)
                print(f"output only: workers={workers} bulk_max_size={args.bulk} compression_level={comp}: "
                      f"{len(events)} events in {secs:.2f}s = {len(events) / secs:,.0f} events/s")
        if args.e2e:
            n, secs = e2e(node.url(), pcap)
            print(f"whole agent (pybeat run -I {pcap.name} -t): {n} events in {secs:.2f}s = {n / secs:,.0f} events/s")
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
