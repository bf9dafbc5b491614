"""Flow events agree with tshark's conversation statistics on every capture of tests/data:
for every UDP and TCP conversation, the packets and bytes in each direction (summed over the
flows of that conversation: Packetbeat's flows also tell apart MAC addresses and VLANs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import PCAPS, need_tool
from tests.flows.tshark_conv import conversations, exact_bytes

CAPTURES = sorted(p for p in PCAPS.glob("*.pcap"))
CONFIG = """\
packetbeat.protocols:
  - type: dns
    ports: [53, 5353]
  - type: icmp
packetbeat.flows:
  timeout: 30s
  period: -1s
output.file:
  path: {out}
  filename: flows
  rotate_every_kb: 10000000
logging.to_files: false
"""


def flow_events(pcap: Path, tmp: Path, extra: list[str] = ()) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "flows.yml"
    cfg.write_text(CONFIG.format(out=tmp / "out"))
    cfg.chmod(0o600)
    run = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t", *extra],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    events = []
    for f in sorted((tmp / "out").glob("*.ndjson")):
        for line in f.read_text().splitlines():
            doc = json.loads(line)
            if doc.get("type") == "flow":
                events.append(doc)
    return events


def by_conversation(events: list[dict]) -> dict[tuple, list[int]]:
    """``(transport, (ip, port), (ip, port))`` -> [frames, bytes] of that direction."""
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        t = e["network"].get("transport")
        if t not in ("udp", "tcp") or not e["flow"]["final"]:
            continue
        s, d = e["source"], e["destination"]
        sip = s["ip"][-1] if isinstance(s["ip"], list) else s["ip"]
        dip = d["ip"][-1] if isinstance(d["ip"], list) else d["ip"]
        a, b = (sip, s["port"]), (dip, d["port"])
        fwd, rev = out[(t, a, b)], out[(t, b, a)]
        fwd[0] += s.get("packets", 0)
        fwd[1] += s.get("bytes", 0)
        rev[0] += d.get("packets", 0)
        rev[1] += d.get("bytes", 0)
    return {k: v for k, v in out.items() if v[0]}


@pytest.mark.parametrize("pcap", CAPTURES, ids=lambda p: p.name)
def test_flows_agree_with_tshark_conversations(pcap: Path, tmp_path: Path):
    tshark = need_tool("tshark")
    mine = by_conversation(flow_events(pcap, tmp_path))
    expected: dict[tuple, list[int]] = {}
    for proto in ("udp", "tcp"):
        exact = exact_bytes(tshark, pcap, proto)
        for (p, a, b), (ab_f, ab_b, ba_f, ba_b) in conversations(tshark, pcap, proto).items():
            for src, dst, frames, rounded in ((a, b, ab_f, ab_b), (b, a, ba_f, ba_b)):
                if frames:
                    nbytes = exact[(p, src, dst)]
                    assert abs(nbytes - rounded) <= max(0.5, rounded * 0.001) * 1000 or rounded == nbytes
                    expected[(p, src, dst)] = [frames, nbytes]
    assert expected, "tshark found no conversation"
    missing = {k: v for k, v in expected.items() if mine.get(k) != v}
    extra = {k: v for k, v in mine.items() if k not in expected}
    assert not missing and not extra, {"differ": {k: (v, mine.get(k)) for k, v in list(missing.items())[:10]},
                                       "extra": dict(list(extra.items())[:10])}


def test_a_split_replay_counts_every_frame_once(tmp_path: Path):
    """With two worker processes, worker 0 (which reads every frame before the split) counts the
    flows: the same flow events as one process."""
    pcap = PCAPS / "dns_udp_mixed.pcap"
    one = by_conversation(flow_events(pcap, tmp_path / "one"))
    two = by_conversation(flow_events(pcap, tmp_path / "two", ["-E", "packetbeat.workers=2"]))
    assert one == two and len(one) > 100
