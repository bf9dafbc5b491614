"""DnsAnalyzer.on_udp4 (the inline query/answer pairing for plain IPv4), and its compiled twin
(the lane of pybeat/decode/_replay.pyx and protocols/dns/_fast.pyx, with the compiled parser of the usual messages), have the
effects of the general path (Analyzer.on_udp4's default: build the Packet, call on_udp, the
Python parser): the same documents in the same order and the same metrics, on every shared
capture, with and without processors (pre-encoded and dict events)."""

from __future__ import annotations

import pytest

from pybeat.api import Analyzer
from pybeat.protocols.dns.analyzer import DnsAnalyzer
from pybeat.pipeline.pipeline import ProtocolClient
from tests.conftest import PCAPS, need
from tests.golden.test_golden import CAPTURES
import pybeat.agent.run as agent_mod
from tests.unit.test_replay_loop import LOOPS, _run, loop_impl


@pytest.mark.parametrize("kind", LOOPS)
@pytest.mark.parametrize("shared", [True, False], ids=["pre-encoded", "dict"])
@pytest.mark.parametrize("name", CAPTURES + ["dns_tunnel_iodine.pcap"])
def test_inline_pairing_equals_the_general_path(name, shared, kind, tmp_path, monkeypatch):
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    if not shared:
        monkeypatch.setattr(ProtocolClient, "events_may_share", lambda self: False)
    impl = loop_impl(kind)
    monkeypatch.setattr(agent_mod, "best_replay", lambda: impl)
    inline_docs, inline_metrics = _run(pcap, tmp_path / "inline", 1)
    # the general path: no compiled lane, no inline step
    monkeypatch.setattr(agent_mod, "best_replay", lambda: loop_impl("python"))
    monkeypatch.setattr(DnsAnalyzer, "on_udp4", Analyzer.on_udp4)
    general_docs, general_metrics = _run(pcap, tmp_path / "general", 1)
    assert [list(d.items()) for d in inline_docs] == [list(d.items()) for d in general_docs]
    assert inline_metrics == general_metrics
