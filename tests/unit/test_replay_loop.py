"""The compiled replay loop gives what the generator loop gives.

Every shared capture is replayed with ``-t`` through the compiled loop (pybeat/decode/_replay.pyx,
with the DNS analyzer's compiled lane) and through the Python path (the source's iterator and
``Decoder.decode``, driven here as the agent drives it, or by the agent itself),
with two passes (``-l 2``) so that the time shift between passes is covered too: the
documents, in order, and every metric (packets, bytes, decoder errors, analyzer counters) must
be the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pybeat.agent.run as agent_mod
from pybeat.agent import Agent, Paths, RunOptions
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry
from pybeat.decode import replay as replay_mod
from tests.conftest import PCAPS, need
from tests.golden.test_golden import CAPTURES, CONFIG, normalise

VOLATILE_METRICS = ("output.file.location",)
LOOPS = ["python", "compiled"]


def _python_replay(source, decoder, check):
    """The Python path as the agent runs it: the source's iterator into ``Decoder.decode``,
    ``check`` every 64 packets."""
    decode = decoder.decode
    records = iter(source)
    n = 0
    try:
        for ts, link, frame in records:
            decode(ts, link, frame)
            n += 1
            if not n & 63 and check():
                return False
    finally:
        records.close()
    return True


def loop_impl(kind: str):
    """The replay of that kind; the compiled loop must have been built (pip install)."""
    if kind == "python":
        return _python_replay
    need(replay_mod.compiled_replay is not None, "the compiled extension pybeat.decode._replay (pip install -e .)")
    return replay_mod.compiled_replay


def _run(pcap: Path, tmp_path: Path, loops: int) -> tuple[list[dict], dict]:
    tmp_path.mkdir()
    cfg = tmp_path / "golden.yml"
    cfg.write_text(CONFIG.format(out=tmp_path / "out"))
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "logs")),
                  RunOptions(file=str(pcap), fast=True, loops=loops))
    result = agent.run(install_signals=False)
    assert result.all_settled
    docs = []
    for f in sorted((tmp_path / "out").glob("*.ndjson")):
        docs += [normalise(json.loads(line)) for line in f.read_text().splitlines()]
    metrics = {k: v for k, v in result.metrics.items() if k not in VOLATILE_METRICS and not k.startswith("agent.")}
    return docs, metrics


@pytest.mark.parametrize("kind", LOOPS)
@pytest.mark.parametrize("name", CAPTURES + ["dns_tunnel_iodine.pcap"])
def test_fused_loop_equals_generator_loop(name, kind, tmp_path, monkeypatch):
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    calls = []
    real = loop_impl(kind)

    def spy(*args):
        result = real(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(agent_mod, "best_replay", lambda: spy)
    fused_docs, fused_metrics = _run(pcap, tmp_path / "fused", 2)
    monkeypatch.setattr(agent_mod, "best_replay", lambda: lambda *args: None)
    plain_docs, plain_metrics = _run(pcap, tmp_path / "plain", 2)
    assert fused_docs == plain_docs
    assert fused_metrics == plain_metrics
    if name in ("dns_udp_mixed.pcap", "icmp.pcap", "dns_ip_fragments.pcap"):
        assert calls == [True]  # classic pcap of Ethernet frames: the fused loop ran


@pytest.mark.parametrize("kind", LOOPS)
def test_fused_loop_stops_on_request(kind, tmp_path):
    """A stop request ends the fused loop within 64 packets, as it ends the generator loop."""
    pcap = PCAPS / "dns_bulk_100k.pcap"
    need(pcap.exists(), f"capture {pcap} missing")
    from pybeat.capture.pcapfile import PcapFileSource
    from pybeat.decode import Decoder

    replay_classic_pcap = loop_impl(kind)

    source = PcapFileSource(str(pcap))
    decoder = Decoder()
    checks = []

    def check() -> bool:
        checks.append(decoder.packets)
        return len(checks) == 3

    assert replay_classic_pcap(source, decoder, check) is False
    assert decoder.packets == 192 and source.packets == 192
    source.close()


def test_generator_counts_what_was_read_before_a_stop():
    """A replay stopped in the middle of a pass reports the packets read so far as
    ``capture.file.packets`` (the generator used to add a pass's count only at its end)."""
    pcap = PCAPS / "dns_bulk_100k.pcap"
    need(pcap.exists(), f"capture {pcap} missing")
    from pybeat.capture.pcapfile import PcapFileSource

    source = PcapFileSource(str(pcap))
    records = iter(source)
    for _ in range(100):
        next(records)
    records.close()  # what the agent's loop does when it breaks out
    assert source.packets == 100 and source.bytes > 0
    source.close()


@pytest.mark.parametrize("fused", ["python", "compiled", None])
def test_stopped_endless_replay_counts_what_it_read(fused, tmp_path, monkeypatch):
    """``-l 0`` (forever) stopped from outside: the file's packet count equals the decoder's,
    on the fused loop and on the generator loop."""
    import threading

    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap} missing")
    impl = loop_impl(fused) if fused else (lambda *args: None)
    monkeypatch.setattr(agent_mod, "best_replay", lambda: impl)
    cfg = tmp_path / "golden.yml"
    cfg.write_text(CONFIG.format(out=tmp_path / "out"))
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "logs")),
                  RunOptions(file=str(pcap), fast=True, loops=0))
    threading.Timer(0.5, agent.stop).start()
    result = agent.run(install_signals=False)
    m = result.metrics
    assert m["decode.packets"] > 0
    assert m["capture.file.packets"] == m["decode.packets"]


@pytest.mark.parametrize("kind", LOOPS)
@pytest.mark.parametrize("name", ["dns_udp_mixed.pcap", "dns_vlan.pcap", "icmp.pcap"])
def test_observer_sees_every_frame_once(kind, name):
    """``Decoder.observer`` (the hook flows will use) sees every frame once, in order, with its
    time and bytes, in the compiled loop as in the Python path; without one nothing changes."""
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    from pybeat.capture.pcapfile import PcapFileSource
    from pybeat.decode import Decoder
    from tests.dns.dnstest import make

    class Seen:
        def __init__(self) -> None:
            self.frames: list[tuple[int, int, bytes]] = []

        def observe_frame(self, ts: int, link: int, frame: bytes) -> None:
            self.frames.append((ts, link, bytes(frame)))

    an, _events = make()
    decoder = Decoder({53: an}, {53: an})
    decoder.observer = seen = Seen()
    source = PcapFileSource(str(pcap), loops=2)
    try:
        if loop_impl(kind)(source, decoder, lambda: False) is None:  # not Ethernet in classic pcap
            for ts, link, frame in source:
                decoder.decode(ts, link, frame)
    finally:
        source.close()
    expected = list(PcapFileSource(str(pcap), loops=2))
    assert [(ts, link, bytes(f)) for ts, link, f in expected] == seen.frames
