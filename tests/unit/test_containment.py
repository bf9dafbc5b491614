"""A faulty plugin harms only itself (#13): each fault is counted under the plugin's name and
logged once per kind, and costs at most the packet or event that caused it; no other event is
lost; a plugin that cannot start is one line naming it; a stuck output cannot hold a stopping
agent past its shutdown timeout; the first SIGTERM always starts a shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter

from pybeat.agent import Agent, Paths, RunOptions, StartupError
from pybeat.api import Batch, Event, OutputGroup, PluginConfig, RetryPolicy
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry
from tests.conftest import REPO
from tests.unit.test_agent import EchoAnalyzer, EchoPlugin

SAMPLE = REPO / "packaging" / "sample" / "dns.pcap"  # 118 DNS transactions


class Boom(Exception):
    pass


class BoomProcessorPlugin:
    """A processor that raises on every third event it sees."""

    name = "boom"
    api_version = "1.0"
    config_model = PluginConfig

    def create(self, config: Any, ctx: Any) -> Any:
        class Proc:
            seen = 0

            def run(self, event: Event) -> Event:
                Proc.seen += 1
                if Proc.seen % 3 == 0:
                    raise Boom("third event")
                event.put("boom.ok", True)
                return event

        return Proc()


class Log:
    """Collects log calls (the agent's logger interface)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def bind(self, **kw: Any) -> "Log":
        return self

    def __getattr__(self, level: str) -> Any:
        def log(msg: str, **kw: Any) -> None:
            self.lines.append((level, msg, kw))

        return log

    def at(self, level: str) -> list[str]:
        return [m for lv, m, _ in self.lines if lv == level]


def _run(tmp_path: Path, config: str, registry: Any, pcap: Path, log: Any = None, **opts: Any) -> Any:
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(config.format(out=tmp_path / "out"))
    settings = load_settings(load(str(cfg)), registry)
    agent = Agent(settings, registry, Paths.resolve(str(tmp_path)), log or Log(),
                  RunOptions(file=str(pcap), fast=True, **opts))
    return agent.run(install_signals=False)


def _docs(out: Path) -> list[dict[str, Any]]:
    docs = []
    for f in sorted(out.glob("*.ndjson")):
        docs += [json.loads(line) for line in f.read_text().splitlines()]
    return docs


def _echo_pcap(path: Path, n: int = 50) -> Path:
    pkts = []
    for i in range(n):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024 + i, dport=7) / f"m{i}".encode()
        p.time = 1_700_000_000 + i / 1000
        pkts.append(p)
    PcapWriter(str(path)).write(pkts)
    return path


def test_a_raising_processor_costs_only_its_own_work_on_that_event(tmp_path: Path) -> None:
    """The DNS sample with a per-protocol processor that raises on every third event: all 118
    transactions are delivered (the analyzer's flush is not interrupted), the failed ones with a
    note naming the processor, the count under processors.boom.exceptions, one log line."""
    reg = load_registry(extra={"processors": {"boom": BoomProcessorPlugin()}})
    log = Log()
    res = _run(tmp_path, "packetbeat.protocols: [{{type: dns, ports: [53], processors: [{{boom: {{}}}}]}}]\n"
                         "output.file: {{path: '{out}'}}\n", reg, SAMPLE, log)
    docs = _docs(tmp_path / "out")
    assert len(docs) == 118 and res.exit_code == 0
    failed = [d for d in docs if "processor boom failed" in json.dumps(d.get("error", {}))]
    assert len(failed) == 39 and all(not d.get("boom") for d in failed)
    assert sum(1 for d in docs if d.get("boom", {}).get("ok")) == 118 - 39
    assert res.metrics["processors.boom.exceptions"] == 39
    assert len([m for m in log.at("warning") if "processor boom raised Boom" in m]) == 1


def test_an_analyzer_exception_costs_only_the_packet_and_is_counted_under_its_name(tmp_path: Path) -> None:
    """An analyzer that raises on one datagram: the other 49 events are delivered, the fault is
    counted as echo.exceptions (not as an undecodable packet), logged once with its origin,
    with the traceback at debug level."""

    class Flaky(EchoPlugin):
        def create(self, config: Any, ctx: Any) -> Any:
            class A(EchoAnalyzer):
                def on_udp(self, pkt: Any, payload: bytes) -> None:
                    if payload == b"m7":
                        raise KeyError("bad state")
                    super().on_udp(pkt, payload)

            return A(ctx)

    reg = load_registry(extra={"protocols": {"echo": Flaky()}})
    log = Log()
    res = _run(tmp_path, "packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: '{out}'}}\n",
               reg, _echo_pcap(tmp_path / "in.pcap"), log)
    assert len(_docs(tmp_path / "out")) == 49
    assert res.metrics["echo.exceptions"] == 1
    assert "decode.errors.analyzer_exception" not in res.metrics
    warnings = [(m, kw) for lv, m, kw in log.lines if lv == "warning" and "protocol echo raised KeyError" in m]
    assert len(warnings) == 1 and "test_containment.py" in warnings[0][1]["where"]
    assert any("traceback" in kw for lv, m, kw in log.lines if lv == "debug")


def test_a_plugin_whose_create_fails_is_one_line_naming_it(tmp_path: Path) -> None:
    class Broken(EchoPlugin):
        def create(self, config: Any, ctx: Any) -> Any:
            raise RuntimeError("cannot open the lookup table")

    reg = load_registry(extra={"protocols": {"echo": Broken()}})
    with pytest.raises(StartupError) as err:
        _run(tmp_path, "packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: '{out}'}}\n",
             reg, _echo_pcap(tmp_path / "in.pcap"))
    assert str(err.value).startswith("protocol echo could not start: RuntimeError: cannot open the lookup table")
    assert "\n" not in str(err.value)


class _StuckOutputPlugin:
    """An output whose client never settles (``mode`` "return") or always raises ("raise")."""

    name = "stuck"
    api_version = "1.0"

    class config_model(PluginConfig):  # noqa: N801 (the plugin attribute's name)
        mode: str = "return"

    def __init__(self) -> None:
        self.calls = 0

    def create(self, config: Any, ctx: Any) -> OutputGroup:
        plugin = self

        class Client:
            def publish(self, batch: Batch) -> None:
                plugin.calls += 1
                if config.mode == "raise":
                    raise ConnectionError("nobody listens")

            def close(self) -> None:
                pass

        return OutputGroup([Client()], batch_size=10, retry=RetryPolicy(max_retries=-1, backoff_init=0.05,
                                                                         backoff_max=0.2))


@pytest.mark.parametrize("mode", ["return", "raise"])
def test_a_stuck_output_is_retried_with_backoff_and_bounded_by_shutdown_timeout(tmp_path: Path, mode: str) -> None:
    """A replay into an output that never settles (or always raises) ends within
    shutdown_timeout plus a little, with its events counted as not delivered, a non-zero exit
    status, the file output beside it complete, and few publish attempts (backoff, no spin)."""
    stuck = _StuckOutputPlugin()
    reg = load_registry(extra={"protocols": {"echo": EchoPlugin()}, "outputs": {"stuck": stuck}})
    log = Log()
    t0 = time.monotonic()
    res = _run(tmp_path, "packetbeat.protocols: [{{type: echo, ports: [7]}}]\npacketbeat.shutdown_timeout: 2s\n"
                         f"output.stuck: {{{{mode: {mode}}}}}\noutput.file: {{{{path: '{{out}}'}}}}\n"
                         "queue.mem: {{events: 100, flush.min_events: 10, flush.timeout: 0.1s}}\n",
               reg, _echo_pcap(tmp_path / "in.pcap"), log)
    took = time.monotonic() - t0
    assert took < 2 + 4, took
    assert res.metrics["output.stuck.events.not_delivered"] == 50
    assert res.metrics["output.file.events.acked"] == 50 and len(_docs(tmp_path / "out")) == 50
    assert res.exit_code == 3 and "not delivered to output stuck" in res.summary
    assert stuck.calls < 40  # backoff from 50 ms doubling to 200 ms over ~2 s, not a tight loop
    assert len(log.lines) < 20


def test_the_first_sigterm_starts_a_shutdown_even_with_a_stuck_output(tmp_path: Path) -> None:
    """A slow timed replay (-l 0: forever) into an output that never settles: one SIGTERM ends
    the run within shutdown_timeout + 2 s with the summary and a non-zero exit status."""
    pcap = _echo_pcap(tmp_path / "in.pcap", 20)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols: [{type: echo, ports: [7]}]\npacketbeat.shutdown_timeout: 1s\n"
                   "output.stuck: {}\nqueue.mem: {events: 100, flush.min_events: 1, flush.timeout: 0.1s}\n"
                   "logging.to_stderr: true\n")
    cfg.chmod(0o600)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import pybeat.cli as cli
        from pybeat.plugins import load_registry
        from tests.unit.test_agent import EchoPlugin
        from tests.unit.test_containment import _StuckOutputPlugin
        cli.load_registry = lambda: load_registry(extra={{"protocols": {{"echo": EchoPlugin()}},
                                                          "outputs": {{"stuck": _StuckOutputPlugin()}}}})
        sys.exit(cli.main(["run", "-c", {str(cfg)!r}, "-I", {str(pcap)!r}, "-l", "0"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(tmp_path))
    time.sleep(3)  # running: replaying with the capture's timing, the output holding every batch
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert took < 1 + 2, (took, err[-2000:])
    assert proc.returncode == 3, err[-2000:]
    assert "pybeat summary" in out and "not delivered to output stuck" in out


def test_pybeat_plugins_exits_non_zero_when_a_plugin_is_broken(capsys: Any, monkeypatch: Any) -> None:
    import pybeat.cli as cli

    class Half:
        name = "half"

    monkeypatch.setattr(cli, "load_registry", lambda: load_registry(extra={"outputs": {"half": Half()}}))
    assert cli.main(["plugins"]) == 1
    out = capsys.readouterr()
    assert "half" in out.out and "BROKEN" in out.out and "dns" in out.out
    monkeypatch.setattr(cli, "load_registry", lambda: load_registry())
    assert cli.main(["plugins"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["add_id"].endswith(" ok")
    assert lines["decode_cef"].endswith("known name, not supported (using it is a config error)")


def test_a_plugin_declaring_an_api_version_this_agent_cannot_serve_is_refused() -> None:
    from pybeat.plugins import PluginError

    class Future(EchoPlugin):
        api_version = "2.0"

    class Old(EchoPlugin):
        api_version = "0.0"

    reg = load_registry(extra={"protocols": {"echo": Future(), "old": Old()}})
    with pytest.raises(PluginError, match=r"needs pybeat.api 2.0, newer than this agent's 1\.0\.0"):
        reg.get("protocols", "echo")
    with pytest.raises(PluginError, match="no longer serves: 1.0 made outputs return an OutputGroup"):
        reg.get("protocols", "old")


def test_the_output_contract_adds_up_when_an_output_mixes_outcomes(tmp_path: Path) -> None:
    """retry counts attempts and drops past max_retries; cancel never does; both come back."""
    from pybeat.pipeline.runner import OutputRunner

    class Mixed:
        def __init__(self) -> None:
            self.rounds = 0

        def publish(self, batch: Batch) -> None:
            self.rounds += 1
            evs = batch.events
            # first event: always retried; second: cancelled twice then acked; rest acked
            if batch.retries == 0 and len(evs) == 4:
                batch.settle(acked=2, retry=[evs[0]], cancelled=[evs[1]])
            elif evs and evs[0].fields["i"] == 0:
                batch.retry()
            else:
                batch.ack()

        def close(self) -> None:
            pass

    runner = OutputRunner("m", OutputGroup([Mixed()], batch_size=10, retry=RetryPolicy(2, 0.001, 0.002)), 100, None)
    runner.queue.put([Event(i, {"i": i}) for i in range(4)])
    assert runner.close(5.0)
    st = runner.stats()
    assert st["events.acked"] == 3 and st["events.dropped_max_retries"] == 1 and st["events.cancelled"] == 1
    assert st["queue.used"] == 0


def test_no_signal_handler_is_left_behind(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    reg = load_registry(extra={"protocols": {"echo": EchoPlugin()}})
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.protocols: [{{type: echo, ports: [7]}}]\noutput.file: {{path: '{tmp_path}/o'}}\n")
    agent = Agent(load_settings(load(str(cfg)), reg), reg, Paths.resolve(str(tmp_path)),
                  setup_logging(logs_dir=str(tmp_path / "l")),
                  RunOptions(file=str(_echo_pcap(tmp_path / "in.pcap", 3)), fast=True))
    agent.run(install_signals=True)
    assert signal.getsignal(signal.SIGTERM) is before
    assert os.path.exists(tmp_path / "o")


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_with_every_real_output_down_ends_within_the_timeout(tmp_path: Path) -> None:
    """Elasticsearch and Logstash outputs whose servers are down (nothing listens on their
    ports): one SIGTERM during an endless replay ends the run within shutdown_timeout + 2 s,
    with the summary counting what was not delivered, and exit status 3."""
    pcap = REPO / "packaging" / "sample" / "dns.pcap"
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(
        "packetbeat.protocols: [{type: dns, ports: [53]}]\npacketbeat.shutdown_timeout: 2s\n"
        f"output.elasticsearch: {{hosts: ['http://127.0.0.1:{_dead_port()}'], backoff.init: 0.1s}}\n"
        f"output.logstash: {{hosts: ['127.0.0.1:{_dead_port()}'], backoff.init: 0.1s}}\n"
        "logging.to_stderr: true\n")
    cfg.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(pcap), "-t",
                             "-l", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    time.sleep(4)  # replaying forever, blocked on the full queues
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert took < 2 + 2, (took, err[-2000:])
    assert proc.returncode == 3, err[-3000:]
    assert "not delivered to output elasticsearch" in out and "not delivered to output logstash" in out
    assert len(err.splitlines()) < 60  # folded failure logs, no log storm
