"""Golden tests: real captures in, NDJSON out, compared with reviewed expected files.

The expected files are regenerated only on purpose, with ``pytest tests/golden --update-golden``,
and reviewed in the diff. Fields that change from run to run or machine to machine (agent ids,
host, agent version) are removed before comparing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pybeat.agent import Agent, Paths, RunOptions
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry
from tests.conftest import PCAPS, need

EXPECTED = Path(__file__).parent / "expected"

CONFIG = """
packetbeat.interfaces.internal_networks: [private]
packetbeat.protocols:
  - type: dns
    ports: [53, 5353]
    include_authorities: true
    include_additionals: true
    send_request: true
    send_response: true
  - type: icmp
  - type: dhcpv4
    ports: [67, 68]
  - type: dhcpv6
    ports: [546, 547]
output.file:
  path: {out}
  filename: golden
  rotate_every_kb: 1048576
"""

CAPTURES = [
    "dns_udp_mixed.pcap", "dns_tcp.pcap", "dns_dnssec.pcap", "mdns.pcap", "dhcp.pcap", "icmp.pcap",
    "dns_linux_sll.pcap", "dns_linux_sll2.pcap", "dns_vlan.pcap", "dns_ip_fragments.pcap",
    "packetbeat_vectors_udp.pcap", "packetbeat_vectors_tcp.pcap",
]

VOLATILE = {
    ("agent", "id"), ("agent", "ephemeral_id"), ("agent", "name"), ("agent", "version"), ("agent", "build"),
    ("@metadata", "version"),
}


def normalise(doc: dict) -> dict:
    doc.pop("host", None)
    for parent, key in VOLATILE:
        if isinstance(doc.get(parent), dict):
            doc[parent].pop(key, None)
    return doc


def run_capture(pcap: Path, tmp_path: Path) -> list[dict]:
    cfg = tmp_path / "golden.yml"
    cfg.write_text(CONFIG.format(out=tmp_path / "out"))
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "logs")),
                  RunOptions(file=str(pcap), fast=True))
    result = agent.run(install_signals=False)
    assert result.all_settled
    docs = []
    for f in sorted((tmp_path / "out").glob("*.ndjson")):
        docs += [normalise(json.loads(line)) for line in f.read_text().splitlines()]
    return docs


@pytest.mark.parametrize("name", CAPTURES)
def test_golden(name, tmp_path, request):
    pcap = PCAPS / name
    need(pcap.exists(), f"shared capture {pcap}")
    docs = run_capture(pcap, tmp_path)
    expected_file = EXPECTED / (name.rsplit(".", 1)[0] + ".ndjson")
    got = "".join(json.dumps(d, sort_keys=True) + "\n" for d in docs)
    if request.config.getoption("--update-golden") or not expected_file.exists():
        if not request.config.getoption("--update-golden"):
            pytest.fail(f"no expected file {expected_file.name}: run pytest tests/golden --update-golden and review it")
        expected_file.write_text(got)
        return
    want = expected_file.read_text().splitlines()
    have = got.splitlines()
    assert len(have) == len(want), f"{name}: {len(have)} events, expected {len(want)}"
    for i, (h, w) in enumerate(zip(have, want)):
        if h != w:
            hd, wd = json.loads(h), json.loads(w)
            diff = sorted(k for k in set(_flat(hd)) | set(_flat(wd)) if _flat(hd).get(k) != _flat(wd).get(k))
            pytest.fail(f"{name}: event {i} differs in {diff[:20]}")


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = json.dumps(v, sort_keys=True)
    return out
