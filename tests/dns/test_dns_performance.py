"""The fast path keeps its promises: bounded memory under a flood of unanswered queries, the
faster suffix-list build, the inline decoder path and the split across processes give the same
events as the general code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


from pybeat.agent import Agent, Paths, RunOptions
from pybeat.api import BeatInfo, Event, ProtocolContext
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.config import load, load_settings
from pybeat.decode import Decoder
from pybeat.envelope import Envelope
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry
from pybeat.protocols.dns.plugin import plugin
from tests.conftest import PCAPS, need

REPO = Path(__file__).resolve().parents[2]


def _flood_writer():
    spec = importlib.util.spec_from_file_location("flood_unanswered", REPO / "bench" / "flood_unanswered.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_flood


def test_unanswered_flood_stays_within_the_pending_cap(tmp_path: Path) -> None:
    """30,000 distinct queries within one second, never answered, cap 3,000: the pending table
    never holds more than the cap, 27,000 are evicted (counted, noted) and every query is
    published exactly once."""
    pcap = tmp_path / "flood.pcap"
    _flood_writer()(pcap, 30_000)
    events: list[Event] = []
    ctx = ProtocolContext(emit=events.append, beat=BeatInfo(), protocol_name="dns", envelope=Envelope())
    an = plugin.create(plugin.config_model(type="dns", ports=[53], max_pending_transactions=3000), ctx)
    dec = Decoder({53: an})
    peak = 0
    for i, (ts, link, frame) in enumerate(PcapFileSource(str(pcap))):
        dec.decode(ts, link, frame)
        if not i % 500:
            peak = max(peak, len(an.table))  # type: ignore[attr-defined]
    assert peak == 3000
    dec.flush()
    stats = an.stats()
    assert stats["evicted"] == 27_000 and stats["pending"] == 0 and stats["unmatched_requests"] == 30_000
    assert len(events) == 30_000
    evicted = [e for e in events if "evicted" in str(e.get("error.message"))]
    assert len(evicted) == 27_000
    assert len({e.get("dns.question.name") for e in events}) == 30_000


def _agent_events(tmp_path: Path, pcap: Path, workers: int) -> list[dict]:
    out = tmp_path / f"out{workers}"
    cfg = tmp_path / f"pybeat{workers}.yml"
    cfg.write_text(
        "packetbeat.protocols:\n  - type: dns\n    ports: [53]\n    include_authorities: true\n"
        "    include_additionals: true\n    send_request: true\n    send_response: true\n"
        f"output.file:\n  path: {out}\n  filename: ev\n"
    )
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    log = setup_logging(logs_dir=str(tmp_path / "logs"))
    options = RunOptions(file=str(pcap), fast=True)
    paths = Paths.resolve(str(tmp_path))
    if workers > 1:
        from pybeat.agent import run_sharded

        result = run_sharded(settings, registry, paths, log, options, workers)
    else:
        result = Agent(settings, registry, paths, log, options).run(install_signals=False)
    assert result.all_settled
    docs = []
    for p in sorted(out.glob("*.ndjson")):
        docs += [json.loads(line) for line in p.read_text().splitlines()]
    for d in docs:  # differ per run
        d.pop("agent", None)
    return docs


def test_split_run_writes_the_same_events_as_one_process(tmp_path: Path) -> None:
    """packetbeat.workers=2 on the mixed capture: the same documents, only spread over files."""
    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap}")
    key = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731
    one = sorted(_agent_events(tmp_path, pcap, 1), key=key)
    two = sorted(_agent_events(tmp_path, pcap, 2), key=key)
    assert len(one) > 100 and one == two
