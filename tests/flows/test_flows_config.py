"""The keys of ``packetbeat.flows`` as Packetbeat has them: ``fields``, ``fields_under_root``,
``tags``, ``processors`` and ``index`` apply to flow events only; ``timeout``, ``period`` and
``enable_delta_flow_reports`` reach the flow table; ``enabled: false`` and a missing section
mean no flows; the split of a replay across worker processes counts every frame once in
every split mode, compiled loop or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybeat.api import BeatInfo, OutputGroup, Paths, RetryPolicy
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.config.models import FlowsConfig
from pybeat.decode.decoder import Decoder
from pybeat.flows import attach_flows
from pybeat.monitoring.registry import MetricsRegistry
from pybeat.pipeline import Pipeline
from pybeat.pipeline.faults import FaultLog
from pybeat.pipeline.pipeline import OutputRunner
from pybeat.plugins import load_registry
from pybeat.processors.build import BuildContext
from tests.conftest import PCAPS
from tests.flows.test_flows_tshark import by_conversation

BASE = """\
packetbeat.protocols:
  - type: dns
    ports: [53]
  - type: icmp
output.file:
  path: {out}
  filename: ev
  rotate_every_kb: 10000000
logging.to_files: false
"""


def _run(tmp: Path, pcap: Path, extra_yaml: str, args: list[str] = (), env: dict[str, str] | None = None) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "pb.yml"
    cfg.write_text(BASE.format(out=tmp / "out") + extra_yaml)
    cfg.chmod(0o600)
    run = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t", *args],
                         capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert run.returncode == 0, run.stdout + run.stderr
    return [json.loads(line) for f in sorted((tmp / "out").glob("*.ndjson")) for line in f.read_text().splitlines()]


def test_fields_tags_and_processors_apply_to_flow_events_only(tmp_path: Path):
    docs = _run(tmp_path, PCAPS / "icmp.pcap", """\
packetbeat.flows:
  timeout: 30s
  period: -1s
  fields: {site: lab}
  tags: [flow-tag]
  processors:
    - drop_event.when.equals.network.transport: udp
    - add_fields: {target: extra, fields: {seen: true}}
""")
    flows = [d for d in docs if d.get("type") == "flow"]
    others = [d for d in docs if d.get("type") != "flow"]
    assert flows and others
    assert all(d["fields"] == {"site": "lab"} and d["tags"] == ["flow-tag"] and d["extra"] == {"seen": True}
               for d in flows)
    transports = {d["network"].get("transport") for d in flows}
    assert {"icmp", "ipv6-icmp"} <= transports and "udp" not in transports  # the capture's 5 UDP frames: dropped
    assert not any("fields" in d or "flow-tag" in d.get("tags", ()) or "extra" in d for d in others)


def test_fields_under_root(tmp_path: Path):
    docs = _run(tmp_path, PCAPS / "icmp.pcap", "packetbeat.flows:\n  fields: {site: lab}\n  fields_under_root: true\n")
    flows = [d for d in docs if d.get("type") == "flow"]
    assert flows and all(d["site"] == "lab" and "fields" not in d for d in flows)


def test_no_section_or_enabled_false_means_no_flows(tmp_path: Path):
    assert not [d for d in _run(tmp_path / "a", PCAPS / "icmp.pcap", "") if d.get("type") == "flow"]
    off = _run(tmp_path / "b", PCAPS / "icmp.pcap", "packetbeat.flows:\n  enabled: false\n")
    assert off and not [d for d in off if d.get("type") == "flow"]


class _Collect:
    def __init__(self) -> None:
        self.got: list = []

    def publish(self, batch) -> None:  # type: ignore[no-untyped-def]
        self.got += batch.events
        batch.ack()

    def close(self) -> None:
        pass


def test_index_timeout_period_and_delta_reach_the_flow_table_and_its_events(tmp_path: Path):
    """``index`` goes with each flow event to the output (``raw_index``, as a protocol's), and
    the timing keys reach the table (the agent's own wiring: attach_flows)."""
    out = _Collect()
    runner = OutputRunner("t", OutputGroup([out], batch_size=50, retry=RetryPolicy()), 1000, None)
    pipeline = Pipeline(BeatInfo(version="9.9.9", name="h"), [runner], min_events=1)
    paths = Paths(str(tmp_path), str(tmp_path), str(tmp_path), str(tmp_path))
    bctx = BuildContext(load_registry(), BeatInfo(), FaultLog(None), paths)
    config = FlowsConfig(timeout=5, period=2, enable_delta_flow_reports=True, index="flows-%{+yyyy.MM.dd}",
                         processors=[{"add_tags": {"tags": ["p"]}}])
    decoder = Decoder()
    metrics = MetricsRegistry()
    closers: list = []
    table = attach_flows(config, decoder, pipeline, bctx, metrics, closers)
    assert decoder.observer in (table, table.fast) and table in decoder.timers
    assert (table.timeout_ns, table.period_ns, table.delta) == (5 * 10**9, 2 * 10**9, True)
    for ts, link, frame in PcapFileSource(str(PCAPS / "icmp.pcap")):
        decoder.decode(ts, link, bytes(frame))
    table.flush()
    assert pipeline.close(10)
    for close in closers:
        close()
    assert out.got and all(e.meta["raw_index"] == "flows-%{+yyyy.MM.dd}" and e.fields["tags"] == ["p"]
                           for e in out.got)
    snap = metrics.snapshot()
    assert snap["flows.frames"] == decoder.packets and snap["flows.reports"] == len(out.got)


@pytest.mark.parametrize("mode", ["flow", "address_pair", "flow-pure-python", "address_pair-pure-python"])
def test_a_split_replay_counts_every_frame_once_in_every_split_mode(tmp_path: Path, mode: str):
    """Worker 0 reads every frame (the observer sees each one before the split check, in the
    compiled loop and in the Python decoder): the same flows as one process, whether the
    split is by flow (no detector) or by address pair (a detector on), on a capture with
    UDP, TCP, ICMP, IPv6 and fragments."""
    split, _, pure = mode.partition("-")
    extra = "packetbeat.flows:\n  period: -1s\n"
    if split == "address_pair":
        extra += "pybeat.detection.dns: {}\n"
    env = {"PYBEAT_PURE_PYTHON": "1" if pure else "0"}
    pcaps = [PCAPS / "dns_udp_mixed.pcap", PCAPS / "dns_tcp.pcap", PCAPS / "icmp.pcap"]
    for pcap in pcaps:
        one = _run(tmp_path / pcap.stem / "one", pcap, extra, env=env)
        two = _run(tmp_path / pcap.stem / "two", pcap, extra, ["-E", "packetbeat.workers=2"], env=env)

        def flows(docs: list[dict]) -> list[tuple]:
            return sorted((d["flow"]["id"], d["source"].get("packets"), d["source"].get("bytes"),
                           d["destination"].get("packets"), d["destination"].get("bytes"))
                          for d in docs if d.get("type") == "flow")

        assert flows(one) == flows(two) and len(flows(one)) > 2, pcap.name
        assert by_conversation([d for d in two if d.get("type") == "flow"]) == \
            by_conversation([d for d in one if d.get("type") == "flow"])
