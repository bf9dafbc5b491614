"""The agent end to end on a capture file, with an in-process protocol plugin (so this test
does not depend on any built-in protocol): packets in, events in a file, nothing lost."""

from __future__ import annotations

import json
import os

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter

from pybeat.agent import Agent, Paths, RunOptions
from pybeat.api import Analyzer, CommonProtocolConfig, Event
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry


class EchoConfig(CommonProtocolConfig):
    pass


class EchoAnalyzer(Analyzer):
    def __init__(self, ctx):
        self.ctx = ctx
        self.seen = 0

    def on_udp(self, pkt, payload):
        self.seen += 1
        fields = self.ctx.envelope.build("echo", "udp", pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port,
                                         pkt.ts_ns, None, len(payload))
        fields.update({"type": "echo", "status": "OK", "echo": {"text": payload.decode()}})
        self.ctx.emit(Event(pkt.ts_ns, fields))

    def stats(self):
        return {"seen": self.seen}

    def shard_key(self, payload):
        return payload[-1]  # spread one flow's datagrams across processes


class EchoPlugin:
    name = "echo"
    transports = frozenset({"udp"})
    config_model = EchoConfig

    def create(self, config, ctx):
        return EchoAnalyzer(ctx)


def test_capture_to_file_end_to_end(tmp_path):
    pcap = tmp_path / "in.pcap"
    pkts = []
    for i in range(5000):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024 + i % 100, dport=7) / f"msg{i}".encode()
        p.time = 1_700_000_000 + i / 1000
        pkts.append(p)
    PcapWriter(str(pcap)).write(pkts)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(
        "packetbeat.protocols:\n  - type: echo\n    ports: [7]\n    tags: [echo]\n"
        f"output.file:\n  path: {tmp_path}/out\n  filename: ev\n"
        "processors:\n  - drop_event:\n      when.equals.echo.text: msg3\n"
    )
    registry = load_registry(extra={"protocols": {"echo": EchoPlugin()}})
    settings = load_settings(load(str(cfg)), registry)
    log = setup_logging(logs_dir=str(tmp_path / "logs"))
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), log, RunOptions(file=str(pcap), fast=True))
    result = agent.run(install_signals=False)
    assert result.all_settled
    (name,) = os.listdir(tmp_path / "out")
    docs = [json.loads(line) for line in (tmp_path / "out" / name).read_text().splitlines()]
    assert len(docs) == 4999
    assert result.metrics["pipeline.events.filtered"] == 1
    assert result.metrics["output.file.events.acked"] == 4999
    assert result.metrics["echo.seen"] == 5000
    d = docs[0]
    assert d["@timestamp"] == "2023-11-14T22:13:20.000Z"
    assert d["tags"] == ["echo"] and d["network"]["community_id"].startswith("1:")
    assert d["source"]["ip"] == "10.0.0.1" and d["client"] == d["source"]
    assert "5,000" in result.summary and "acked 4,999" in result.summary


def test_a_run_split_across_two_processes_loses_and_duplicates_nothing(tmp_path):
    from pybeat.agent import run_sharded

    pcap = tmp_path / "in.pcap"
    pkts = []
    for i in range(3000):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024 + i % 7, dport=7) / f"m{i}".encode()
        p.time = 1_700_000_000 + i / 1000
        pkts.append(p)
    PcapWriter(str(pcap)).write(pkts)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: {tmp_path}/out, filename: ev}}\n")
    registry = load_registry(extra={"protocols": {"echo": EchoPlugin()}})
    settings = load_settings(load(str(cfg)), registry)
    log = setup_logging(logs_dir=str(tmp_path / "logs"))
    result = run_sharded(settings, registry, Paths.resolve(str(tmp_path)), log, RunOptions(file=str(pcap), fast=True), 2)
    files = sorted(os.listdir(tmp_path / "out"))
    assert [f.split("-")[1] for f in files] == ["w0", "w1"]
    texts = sorted(json.loads(line)["echo"]["text"] for f in files for line in (tmp_path / "out" / f).read_text().splitlines())
    assert texts == sorted(f"m{i}" for i in range(3000))
    assert all(os.path.getsize(tmp_path / "out" / f) > 0 for f in files)  # both processes got a share
    assert result.metrics["decode.packets"] == 3000 and result.metrics["output.file.events.acked"] == 3000


def test_http_stats_endpoint_serves_the_metrics_registry(tmp_path):
    import threading
    import urllib.request

    pcap = tmp_path / "in.pcap"
    pkts = []
    for i in range(10):  # replayed with the capture's timing: the run lasts about a second
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024, dport=7) / b"x"
        p.time = 1_700_000_000 + i / 10
        pkts.append(p)
    PcapWriter(str(pcap)).write(pkts)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols: [{type: echo, ports: [7]}]\noutput.console: {}\n"
                   "http: {enabled: true, host: 127.0.0.1, port: 0}\n")
    registry = load_registry(extra={"protocols": {"echo": EchoPlugin()}})
    settings = load_settings(load(str(cfg)), registry)
    import io

    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "l")),
                  RunOptions(file=str(pcap), fast=False), stdout=io.BytesIO())
    seen = {}

    def poll():
        import time

        for _ in range(100):
            port = getattr(agent, "http_port", None)
            if port:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:
                    seen["stats"] = json.loads(r.read())
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
                    seen["root"] = json.loads(r.read())
                return
            time.sleep(0.02)

    t = threading.Thread(target=poll)
    t.start()
    agent.run(install_signals=False)
    t.join()
    assert seen["root"]["beat"] == "packetbeat" and "decode" in seen["stats"]


def test_with_a_processor_events_never_share_nested_objects(tmp_path):
    """Events may share memoised sub-documents only when nothing can change them; a processor
    that renames a nested field must see an independent copy in every event (the bulk capture
    repeats the same answers many times)."""
    from tests.conftest import PCAPS, need

    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), "shared captures")
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(
        "packetbeat.protocols: [{type: dns, ports: [53]}]\n"
        f"output.file: {{path: {tmp_path}/out, filename: ev}}\n"
        "processors:\n  - rename: {fields: [{from: dns.question.name, to: dns.question.renamed}]}\n"
    )
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "l")),
                  RunOptions(file=str(pcap), fast=True))
    agent.run(install_signals=False)
    (name,) = os.listdir(tmp_path / "out")
    docs = [json.loads(x) for x in (tmp_path / "out" / name).read_text().splitlines()]
    questions = [d["dns"]["question"] for d in docs if "question" in d.get("dns", {})]
    assert len(questions) > 100
    assert all("renamed" in q and "name" not in q for q in questions)


def test_worker_processes_report_one_agent_id(tmp_path):
    from pybeat.agent import run_sharded

    pcap = tmp_path / "in.pcap"
    pkts = []
    for i in range(200):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024 + i, dport=7) / f"m{i}".encode()
        p.time = 1_700_000_000 + i / 1000
        pkts.append(p)
    PcapWriter(str(pcap)).write(pkts)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: {tmp_path}/out, filename: ev}}\n")
    registry = load_registry(extra={"protocols": {"echo": EchoPlugin()}})
    settings = load_settings(load(str(cfg)), registry)
    run_sharded(settings, registry, Paths.resolve(str(tmp_path / "fresh-home")), setup_logging(logs_dir=str(tmp_path / "l")),
                RunOptions(file=str(pcap), fast=True), 2)
    ids = {json.loads(line)["agent"]["id"] for f in (tmp_path / "out").iterdir() for line in f.read_text().splitlines()}
    assert len(ids) == 1


def test_interfaces_file_is_a_replay_with_backpressure(tmp_path):
    """packetbeat.interfaces.file reads like -I: a queue far smaller than the capture loses nothing."""
    from tests.conftest import REPO

    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(
        f"packetbeat.interfaces.file: {REPO}/packaging/sample/dns.pcap\n"
        "packetbeat.protocols: [{type: dns, ports: [53]}]\n"
        f"output.file: {{path: {tmp_path}/out}}\nqueue.mem: {{events: 10, flush.min_events: 1600}}\n"
    )
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "l")),
                  RunOptions(fast=True))
    result = agent.run(install_signals=False)
    assert result.metrics["output.file.events.acked"] == 118
    assert result.metrics["output.file.queue.dropped_full"] == 0


def test_a_killed_worker_fails_the_run_instead_of_hanging_it(tmp_path):
    import signal as sig
    import time as t

    import pytest

    from pybeat.agent import run_sharded

    class Killer(EchoPlugin):
        def create(self, config, ctx):
            an = super().create(config, ctx)
            orig = an.on_udp

            def on_udp(pkt, payload):
                if payload.endswith(b"7"):
                    os.kill(os.getpid(), sig.SIGKILL)
                orig(pkt, payload)

            an.on_udp = on_udp
            return an

    pcap = tmp_path / "in.pcap"
    pkts = []
    for i in range(50):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024, dport=7) / f"m{i}".encode()
        p.time = 1_700_000_000 + i / 1000
        pkts.append(p)
    PcapWriter(str(pcap)).write(pkts)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: {tmp_path}/out}}\n")
    registry = load_registry(extra={"protocols": {"echo": Killer()}})
    settings = load_settings(load(str(cfg)), registry)
    start = t.monotonic()
    with pytest.raises(RuntimeError, match="without reporting"):
        run_sharded(settings, registry, Paths.resolve(str(tmp_path)), setup_logging(logs_dir=str(tmp_path / "l")),
                    RunOptions(file=str(pcap), fast=True), 2)
    assert t.monotonic() - start < 30
