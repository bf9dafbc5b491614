"""The agent's Logstash output against real go-lumber receivers, driven through the CLI on shared
captures. Each run also writes the same events with ``output.file``; the receiver's NDJSON
(the exact JSON bytes it got) is compared with that file line for line."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.logstash.agent_run import dns_capture, run_agent
from lumber_receiver import wait_for

pytestmark = pytest.mark.integration


def _compare(sent: list[bytes], got: list[bytes]) -> tuple[int, int]:
    """(missing, duplicates): every sent line must have arrived at least as often as sent."""
    want, have = Counter(sent), Counter(got)
    missing = sum((want - have).values())
    extra = have - want
    unknown = [line for line in extra if line not in want]
    assert not unknown, f"receiver got lines that were never sent, e.g. {unknown[:1]}"
    return missing, sum(extra.values())


def _fast(**kw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"backoff": {"init": "50ms", "max": "500ms"}, "timeout": "10s"}
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("compression_level", [0, 3])
def test_every_capture_event_arrives_once_intact(tmp_path: Path, receivers: Any, compression_level: int) -> None:
    """Every event of the DNS (UDP and TCP), ICMP and DHCP captures reaches the receiver exactly
    once, byte-identical to the file output's copy, with and without compression."""
    r = receivers()
    captures = [("icmp.pcap", 10), ("dhcp.pcap", 5)]
    if dns_capture() != "icmp.pcap":
        captures = [("dns_udp_mixed.pcap", 5), ("dns_tcp.pcap", 3), ("dns_dnssec.pcap", 2)] + captures
    for capture, loops in captures:
        r.out.unlink(missing_ok=True)
        r.restart()
        run = run_agent(tmp_path, _fast(hosts=[r.address], compression_level=compression_level), capture, loops)
        assert run.proc.returncode == 0, run.log_tail()
        sent = run.file_lines()
        assert len(sent) > 20, capture
        assert wait_for(lambda: r.count() >= len(sent), 5)
        missing, dups = _compare(sent, r.lines())
        assert (missing, dups) == (0, 0)
        m = run.metrics
        assert m["output.logstash.events.acked"] == len(sent)
        raw = sum(len(x) for x in sent) + 10 * len(sent)  # J frames uncompressed
        if compression_level:
            assert m["output.logstash.write.bytes"] < raw / 3, capture
        else:
            assert m["output.logstash.write.bytes"] >= raw, capture
        assert m.get("output.logstash.events.dropped", 0) == 0
    doc = orjson.loads(r.lines()[0])
    assert doc["@metadata"]["beat"] == "packetbeat"


def test_index_option_sets_metadata_beat(tmp_path: Path, receivers: Any) -> None:
    """``index: Custom`` arrives as ``@metadata.beat: custom`` (lower-cased), as Beats sends it."""
    r = receivers()
    run = run_agent(tmp_path, _fast(hosts=[r.address], index="Custom"), with_file=False)
    assert run.proc.returncode == 0, run.log_tail()
    docs = [orjson.loads(x) for x in r.lines()]
    assert docs and {d["@metadata"]["beat"] for d in docs} == {"custom"}


def test_receiver_killed_and_restarted_mid_stream(tmp_path: Path, receivers: Any) -> None:
    """kill -9 of the receiver while the agent streams, then a restart on the same port: nothing is
    lost, events sent but not ACKed before the kill arrive again (duplicates, counted)."""
    r = receivers(ack_delay=0.05)
    run = run_agent(
        tmp_path, _fast(hosts=[r.address], bulk_max_size=250), dns_capture(), loops=90 if dns_capture() != "icmp.pcap" else 200,
        wait=None,
        extra={"queue.mem": {"events": 1000, "flush.min_events": 250, "flush.timeout": "100ms"}},
    )
    assert wait_for(lambda: r.count() >= 2000, 60), run.log_tail()
    r.kill()
    before = r.count()
    time.sleep(0.5)  # the agent sees refused connections for a while
    r.start()
    run.wait(120)
    assert run.proc.returncode == 0, run.log_tail()
    sent = run.file_lines()
    assert before < len(sent), "the kill came after the last event; make the stream longer"
    assert wait_for(lambda: r.count() >= len(sent), 5)
    missing, dups = _compare(sent, r.lines())
    m = run.metrics
    print(f"restart: sent {len(sent)}, received {r.count()}, duplicates {dups}, "
          f"connections failed {m.get('output.logstash.connections.failed', 0)}, "
          f"broken {m.get('output.logstash.connections.broken', 0)}")
    assert missing == 0
    assert m.get("output.logstash.events.dropped", 0) == 0
    assert m["output.logstash.connections.opened"] >= 2
    assert dups == r.count() - len(sent)


def test_loadbalance_spreads_batches_over_two_receivers(tmp_path: Path, receivers: Any) -> None:
    """``loadbalance: true`` with two receivers: each gets a fair share (at least a third) of the
    batches, and together they get every event once."""
    a, b = receivers("a", ack_delay=0.01), receivers("b", ack_delay=0.01)
    run = run_agent(
        tmp_path, _fast(hosts=[a.address, b.address], loadbalance=True, bulk_max_size=200), dns_capture(),
        loops=30 if dns_capture() != "icmp.pcap" else 60,
        extra={"queue.mem": {"events": 2000, "flush.min_events": 200, "flush.timeout": "100ms"}},
    )
    assert run.proc.returncode == 0, run.log_tail()
    sent = run.file_lines()
    assert wait_for(lambda: a.count() + b.count() >= len(sent), 5)
    missing, dups = _compare(sent, a.lines() + b.lines())
    print(f"loadbalance: {len(sent)} events, a={a.count()} b={b.count()}")
    assert (missing, dups) == (0, 0)
    assert min(a.count(), b.count()) >= len(sent) / 3


def test_loadbalance_one_receiver_dies_the_other_takes_all(tmp_path: Path, receivers: Any) -> None:
    """One of two load-balanced receivers is killed mid-stream and stays dead: the other gets
    everything that follows, nothing is lost, and the run ends without waiting for the dead one."""
    a, b = receivers("a", ack_delay=0.03), receivers("b", ack_delay=0.03)
    run = run_agent(
        tmp_path, _fast(hosts=[a.address, b.address], loadbalance=True, bulk_max_size=200), dns_capture(),
        loops=70 if dns_capture() != "icmp.pcap" else 150, wait=None,
        extra={"queue.mem": {"events": 1000, "flush.min_events": 200, "flush.timeout": "100ms"}},
    )
    assert wait_for(lambda: b.count() >= 400 and a.count() >= 400, 60), run.log_tail()
    b.kill()
    b_at_kill = b.count()
    a_at_kill = a.count()
    run.wait(120)
    assert run.proc.returncode == 0, run.log_tail()
    sent = run.file_lines()
    assert wait_for(lambda: a.count() + b.count() >= len(sent), 5)
    missing, dups = _compare(sent, a.lines() + b.lines())
    print(f"failover: {len(sent)} events; b had {b_at_kill} when killed; a {a_at_kill} -> {a.count()}; dups {dups}")
    assert missing == 0
    assert b.count() == b_at_kill
    assert a.count() - a_at_kill >= len(sent) - a_at_kill - b_at_kill
    assert run.metrics.get("output.logstash.events.dropped", 0) == 0


def test_slow_receiver_backpressure_bounded_memory_nothing_dropped(tmp_path: Path, receivers: Any) -> None:
    """A receiver that waits 200 ms before each ACK (1,250 events/s at most): the replay slows
    to its pace through the bounded queue (peak = capacity, never above), the agent's memory
    stays flat, nothing is dropped."""
    r = receivers(ack_delay=0.2)
    cap = 1000
    run = run_agent(
        tmp_path, _fast(hosts=[r.address], bulk_max_size=250, pipelining=1), dns_capture(),
        loops=80 if dns_capture() != "icmp.pcap" else 180,
        with_file=False, wait=None,
        extra={"queue.mem": {"events": cap, "flush.min_events": 250, "flush.timeout": "100ms"}},
    )
    run.wait(180)
    assert run.proc.returncode == 0, run.log_tail()
    m = run.metrics
    published = m["pipeline.events.published"]
    assert r.count() == published == m["output.logstash.events.acked"]
    assert m.get("output.logstash.events.dropped", 0) == 0
    assert m["output.logstash.queue.peak"] == cap  # the queue filled up: backpressure
    rss = run.rss_samples
    assert len(rss) > 20
    # Memory after the first quarter of the run (imports done, queue full) vs the peak.
    settled = max(rss[: len(rss) // 4])
    growth = max(rss) - settled
    print(f"slow receiver: {published} events in {len(rss) * 0.05:.1f}s, rss {settled >> 20} MiB -> "
          f"peak {max(rss) >> 20} MiB (growth {growth >> 10} KiB), queue peak {m['output.logstash.queue.peak']}")
    assert growth < 20 << 20


def test_slow_host_does_not_stall_the_fast_one(tmp_path: Path, receivers: Any) -> None:
    """``loadbalance: true`` with one receiver ACKing at once and one taking 500 ms per batch
    (Beats issue #12567): the fast one takes most batches and the run is not paced by the slow one."""
    fast, slow = receivers("fast"), receivers("slow", ack_delay=0.5)
    t0 = time.monotonic()
    run = run_agent(
        tmp_path, _fast(hosts=[fast.address, slow.address], loadbalance=True, bulk_max_size=200), dns_capture(),
        loops=50 if dns_capture() != "icmp.pcap" else 100, with_file=False,
        extra={"queue.mem": {"events": 1000, "flush.min_events": 200, "flush.timeout": "100ms"}},
    )
    elapsed = time.monotonic() - t0
    assert run.proc.returncode == 0, run.log_tail()
    total = run.metrics["pipeline.events.published"]
    assert wait_for(lambda: fast.count() + slow.count() >= total, 5)
    print(f"slow host: {total} events in {elapsed:.1f}s, fast={fast.count()} slow={slow.count()}")
    # The slow host can only have taken one 200-event batch per 0.5 s it was busy...
    assert slow.count() <= 200 * (elapsed / 0.5 + 2)
    # ...and the fast one took the rest, instead of the run being paced by the slow one
    # (200-event batches alternating with a 0.5 s wait would take total/400 seconds).
    assert fast.count() > slow.count()
    assert elapsed < total / 400


@pytest.mark.slow
def test_dns_bulk_capture_arrives_once_intact(tmp_path: Path, receivers: Any) -> None:
    """All 50,000 transactions of dns_bulk_100k.pcap arrive once and intact (compression 3)."""
    if dns_capture() == "icmp.pcap":
        pytest.skip("the DNS protocol plugin is not installed yet")
    r = receivers()
    t0 = time.monotonic()
    run = run_agent(tmp_path, _fast(hosts=[r.address]), "dns_bulk_100k.pcap", 1, wait=300)
    elapsed = time.monotonic() - t0
    assert run.proc.returncode == 0, run.log_tail()
    sent = run.file_lines()
    assert len(sent) == 50_000
    assert wait_for(lambda: r.count() >= len(sent), 10)
    assert _compare(sent, r.lines()) == (0, 0)
    print(f"dns bulk: {len(sent)} events through file+logstash in {elapsed:.1f}s (agent run incl. start)")


@pytest.mark.slow
def test_loadbalance_with_default_settings_shares_dns_bulk(tmp_path: Path, receivers: Any) -> None:
    """``loadbalance: true`` and every other key at its default (bulk 2048, pipelining 2, queue
    3200, flush 1600): the 50,000 transactions of dns_bulk_100k.pcap are shared, each receiver
    getting at least 30%, none lost or doubled."""
    if dns_capture() == "icmp.pcap":
        pytest.skip("the DNS protocol plugin is not installed yet")
    a, b = receivers("a"), receivers("b")
    run = run_agent(tmp_path, {"hosts": [a.address, b.address], "loadbalance": True}, "dns_bulk_100k.pcap", 1,
                    with_file=False, wait=300)
    assert run.proc.returncode == 0, run.log_tail()
    total = run.metrics["pipeline.events.published"]
    assert total == 50_000
    assert wait_for(lambda: a.count() + b.count() >= total, 10)
    print(f"default loadbalance: a={a.count()} b={b.count()} of {total}")
    assert a.count() + b.count() == total
    assert min(a.count(), b.count()) >= 0.3 * total
