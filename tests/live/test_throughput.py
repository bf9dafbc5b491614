"""Issue 5's done-criterion: the shared 100k DNS capture replayed 3 times with tcpreplay at
100k packets/s onto a veth whose other end the agent captures with af_packet.

300,000 packets (150,000 query/response pairs) in 3 s; the agent must report >= 99.9 % of the
transactions and show the kernel's drop count in its exit summary. The ring is sized for the
burst (buffer_size_mb: 128, see docs/live_capture.md) and so is the event queue: the agent decodes ~15-19k DNS packets/s
on one core, so a 3 s burst at 100k/s is absorbed by the ring and drained afterwards.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import PCAPS, need
from tests.live.netns import VethPair, run_in
from tests.live.servers import agent

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BULK = PCAPS / "dns_bulk_100k.pcap"


def _lines(out: Path) -> int:
    if not out.is_dir():
        return 0
    return sum(f.read_bytes().count(b"\n") for f in out.iterdir())


def _burst(link: VethPair, where: Path) -> tuple[int, float, str, dict, str, int]:
    protocols = [{"type": "dns", "ports": [53]}]
    # The ring absorbs the burst; the event queue must absorb the agent's output bursts while it
    # drains the ring (with the default 3,200 events a loaded machine dropped ~0.3 % there).
    extra = {"queue.mem.events": 65536}
    iface = {"type": "af_packet", "buffer_size_mb": 128}
    with agent(link, where, protocols, interface=iface, extra=extra) as a:
        replay = link.cli("tcpreplay", "-i", link.cli_if, "--pps=100000", "--loop=3", str(BULK), timeout=120).stdout
        sent = int(re.search(r"Actual: (\d+) packets", replay).group(1))  # type: ignore[union-attr]
        rate = float(re.search(r"([\d.]+) pps", replay).group(1))  # type: ignore[union-attr]
        # Let the agent drain the ring: wait for all events, or until the output has not grown
        # for 10 s (a loaded machine can starve the agent for a few seconds), at most 150 s.
        deadline = time.monotonic() + 150
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = _lines(a.out)
            if n >= 150_000:
                break
            if n != last:
                last, still_since = n, time.monotonic()
            elif time.monotonic() - still_since > 10:
                break
            time.sleep(1)
        a.stop(signal.SIGINT, timeout=60)
        assert a.returncode == 0, a.log_text()[-2000:]
        return sent, rate, replay, a.metrics, a.log_text(), _lines(a.out)


def test_100k_pps_burst_is_reported_with_kernel_drops_shown(link: VethPair, tmp_path: Path) -> None:
    """tcpreplay --pps=100000 --loop=3 of dns_bulk_100k.pcap: >= 149,850 of 150,000 DNS
    transactions reported, and the exit summary states the kernel drop count."""
    need(BULK.is_file(), f"the shared capture {BULK}")
    need(run_in(link.cli_ns, "which", "tcpreplay", check=False).returncode == 0, "tcpreplay")
    # The experiment needs the traffic at the rate: when tcpreplay itself cannot keep 100k pps (a
    # busy machine), that run says nothing about the agent and the burst is replayed again, at
    # most 3 times. The assertions on the agent apply to a run where the rate was reached.
    tries = []
    for attempt in range(3):
        sent, rate, replay, metrics, log, events = _burst(link, tmp_path / f"run{attempt}")
        tries.append(f"{sent} packets at {rate:.0f} pps")
        if sent == 300_000 and rate > 90_000:
            break
    assert sent == 300_000 and rate > 90_000, f"tcpreplay never reached 90k pps: {tries}\n{replay}"
    transactions = metrics["dns.transactions"]
    dropped = metrics.get("capture.kernel_dropped", 0)
    summary = re.search(r"capture\s+received ([\d,]+), kernel dropped ([\d,]+)", log)
    assert summary, log[-2000:]
    assert int(summary.group(2).replace(",", "")) == dropped
    assert metrics["capture.received"] + dropped == metrics["capture.kernel_received"] == 300_000
    queue_dropped = {k: v for k, v in metrics.items() if k.endswith("dropped_full") or k.endswith("events.dropped")}
    assert transactions >= 149_850, f"{transactions} transactions, {dropped} kernel drops"
    assert events >= 149_850, f"{events} events written, queue drops {queue_dropped}"
    print(f"\nreplayed {sent} packets at {rate:.0f} pps: {transactions} transactions, {events} events written, "
          f"{dropped} kernel drops, queue drops {queue_dropped}")
