"""The detectors in a process of their own (pybeat/agent/detection.py): the same alerts and
counters as on the capture thread, a start-up failure reported as one, a detection process
that dies costing only detection, and a stop by signal to the whole process group losing
nothing the detectors were handed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from pybeat.agent import Agent, Paths, RunOptions
from pybeat.agent.build import StartupError
from pybeat.config import load, load_settings
from pybeat.logs import setup_logging
from pybeat.plugins import load_registry
from pybeat.protocols.dns.detection import plugin as plugin_mod
from tests.conftest import PCAPS
from tests.detection.helpers import DETECTION, run

IN_PROCESS = "packetbeat.detection_process: false\n"
OWN_PROCESS = "packetbeat.detection_process: true\n"


def _key(alert):
    return (alert["rule"]["name"], alert["event"]["id"], alert["@timestamp"], alert["message"],
            json.dumps(alert.get("dns_detection"), sort_keys=True))


def _detection_metrics(metrics):
    return {k: v for k, v in metrics.items() if k.startswith("detection.dns.")}


@pytest.mark.parametrize("name", ["dns_tunnel_iodine.pcap", "dns_tunnel_dns2tcp.pcap", "dns_poisoning_race.pcap",
                                  "dns_lookalikes.pcap", "dns_udp_mixed.pcap"])
def test_both_layouts_give_the_same_alerts_and_counters(name, tmp_path):
    inline, docs_inline, m_inline = run(PCAPS / name, tmp_path / "in", extra=IN_PROCESS)
    own, docs_own, m_own = run(PCAPS / name, tmp_path / "own", extra=OWN_PROCESS)
    assert sorted(map(_key, inline)) == sorted(map(_key, own))
    assert len(docs_inline) == len(docs_own)
    assert _detection_metrics(m_inline) == _detection_metrics(m_own)
    assert m_own["detection.dns.events"] > 0 and m_own["detection.process.lost"] == 0


def _agent(tmp_path: Path, pcap: Path, extra: str = OWN_PROCESS) -> Agent:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols:\n  - type: dns\n    ports: [53]\n"
                   f"output.file:\n  path: {out}\n  filename: ev\n" + DETECTION + extra)
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    log = setup_logging(logs_dir=str(tmp_path / "logs"))
    return Agent(settings, registry, Paths.resolve(str(tmp_path)), log, RunOptions(file=str(pcap), fast=True))


def _written(tmp_path: Path) -> list[dict]:
    out = tmp_path / "out"
    return [json.loads(line) for name in sorted(os.listdir(out)) for line in (out / name).read_text().splitlines()]


def test_the_detection_process_ends_with_the_run_and_is_reaped(tmp_path):
    agent = _agent(tmp_path, PCAPS / "dns_tunnel_iodine.pcap")
    host = agent.detection_host
    assert host is not None and host.pid > 0
    pid = host.pid
    result = agent.run(install_signals=False)
    assert result.exit_code == 0 and host.status == 0
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)
    assert result.metrics["detection.dns.tunnel.alerts"] >= 1
    assert any(d.get("rule", {}).get("name") == "dns_tunnel" for d in _written(tmp_path))


def test_a_detector_that_cannot_start_in_its_process_stops_the_agent_at_start(tmp_path, monkeypatch):
    def create(self, config, ctx):
        raise RuntimeError("no state folder")

    monkeypatch.setattr(plugin_mod.DnsDetectionPlugin, "create", create)
    with pytest.raises(StartupError) as info:
        _agent(tmp_path, PCAPS / "dns_tunnel_iodine.pcap")
    assert str(info.value).startswith("detector dns could not start: RuntimeError: no state folder")
    with pytest.raises(StartupError) as same:  # the same line as on the capture thread
        _agent(tmp_path / "in", PCAPS / "dns_tunnel_iodine.pcap", extra=IN_PROCESS)
    assert str(same.value) == str(info.value)


def _wrap_observe_raw(monkeypatch, wrapper):
    """Every dns detector built from here on reads its pre-encoded events through
    ``wrapper(its own observe_raw, ts, raw)`` (the Python method or its compiled twin)."""
    create = plugin_mod.DnsDetectionPlugin.create

    def wrapped(self, config, ctx):
        det = create(self, config, ctx)
        inner = det.observe_raw
        det.observe_raw = lambda ts, raw: wrapper(inner, ts, raw)
        return det

    monkeypatch.setattr(plugin_mod.DnsDetectionPlugin, "create", wrapped)


def test_a_detection_process_that_dies_costs_only_detection(tmp_path, monkeypatch):
    seen = {"n": 0}

    def observe_raw(inner, ts, raw):
        seen["n"] += 1  # (counted in the detection process, which this kills)
        if seen["n"] == 5:
            os._exit(9)

    _wrap_observe_raw(monkeypatch, observe_raw)
    agent = _agent(tmp_path, PCAPS / "dns_tunnel_iodine.pcap")
    started = time.monotonic()
    result = agent.run(install_signals=False)
    assert time.monotonic() - started < 30
    assert result.exit_code == 0 and agent.detection_host.status == 9
    assert result.metrics["detection.process.lost"] == 1
    # every transaction was still published, none of the detectors' alerts
    docs = _written(tmp_path)
    assert len(docs) == result.metrics["pipeline.events.published"] > 0
    assert not [d for d in docs if d.get("event", {}).get("kind") == "alert"]


def test_a_stop_by_signal_to_the_process_group_loses_nothing_the_detectors_were_handed(tmp_path):
    """Ctrl-C and a service manager's stop reach every process of the group: the detection
    process ignores them, ends when its feed does, and saves its state."""
    cfg = tmp_path / "pybeat.yml"
    out = tmp_path / "out"
    cfg.write_text("packetbeat.protocols:\n  - type: dns\n    ports: [53]\n"
                   f"output.file:\n  path: {out}\n  filename: ev\n" + DETECTION + OWN_PROCESS
                   + "logging.to_stderr: true\nlogging.level: info\n")
    data = tmp_path / "data"
    # the bulk capture replayed over and over at full speed, until the signal
    proc = subprocess.Popen([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I",
                             str(PCAPS / "dns_udp_mixed.pcap"), "-t", "-l", "0", "--path.data", str(data),
                             "--path.home", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
            time.sleep(0.1)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    # nothing of the group is left running
    for _ in range(50):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a process of the agent's group outlived it")
    state = data / "detection" / "dns-domains.json"
    assert state.exists() and json.loads(state.read_text())
    assert b"detection process" not in stderr  # neither gone nor late


@pytest.mark.parametrize("layout", [OWN_PROCESS, IN_PROCESS])
def test_a_detector_that_raises_on_some_events_loses_only_those(tmp_path, monkeypatch, layout):
    calls = {"n": 0}

    def observe_raw(inner, ts, raw):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("every third one")
        inner(ts, raw)

    _wrap_observe_raw(monkeypatch, observe_raw)
    _, docs, metrics = run(PCAPS / "dns_udp_mixed.pcap", tmp_path, extra=layout)
    dns = [d for d in docs if d.get("type") == "dns" and d.get("client", {}).get("port") != 5353]
    raised = len(dns) // 3
    assert raised > 0 and metrics["detection.dns.exceptions"] == raised
    assert metrics["detection.dns.events"] == len(dns) - raised


def test_the_detection_process_that_could_not_start_exits_with_status_1(tmp_path, monkeypatch):
    from pybeat.agent.detection import DetectionHost, DetectionStartError
    from pybeat.agent.build import beat_info

    def create(self, config, ctx):
        raise RuntimeError("no")

    monkeypatch.setattr(plugin_mod.DnsDetectionPlugin, "create", create)
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols:\n  - type: dns\noutput.file:\n  path: /tmp\n" + DETECTION)
    registry = load_registry()
    settings = load_settings(load(str(cfg)), registry)
    paths = Paths.resolve(str(tmp_path))
    hosts = []
    original = DetectionHost.join

    def join(self, timeout=None):
        hosts.append(self)
        return original(self, timeout)

    monkeypatch.setattr(DetectionHost, "join", join)
    with pytest.raises(DetectionStartError):
        DetectionHost(settings, paths, None, beat_info(settings, paths), 1)
    assert hosts and hosts[0].status == 1


def test_the_compiled_batch_keeps_the_same_frames_as_the_python_reference():
    from pybeat.agent import detection as D
    from pybeat.api import Event
    from pybeat.protocols.dns.detection.view import reduce_raw

    if D._Batch is D._PyBatch:
        pytest.skip("pybeat.agent._batch is not built (pip install -e . builds it; PYBEAT_PURE_PYTHON=1 keeps it out)")
    raw = (b'{"@timestamp":"x","client":{"ip":"10.0.0.1","port":40000,"bytes":30},"dns":{"id":7,'
           b'"response_code":"NOERROR","question":{"name":"a.test"},"answers_count":0,"type":"answer"},"x":1}')
    events = [Event(1_000 + i, None, raw=raw) for i in range(5)]
    events += [Event(2_000, {"dns": {"id": 1}, "client": {"ip": "10.0.0.2"}}),  # not pre-encoded
               Event(3_000, None, {"pipeline": "p"}, raw=raw),  # with meta: its JSON
               Event(4_000, None, raw=bytearray(raw[:40]))]  # another bytes-like type, kept as bytes
    frames = []
    for batch_type in (D._Batch, D._PyBatch):
        clock = types.SimpleNamespace(now_ns=0)
        full: list[tuple[int, bytes]] = []
        batch = batch_type([clock], lambda: full.append(batch.take()), 3)
        watch_dns, watch_plain = batch.watcher(2, reduce_raw), batch.watcher(5)
        for i, e in enumerate(events):
            clock.now_ns = 10 * i
            (watch_dns if i % 2 else watch_plain)(e)
        frames.append(full + [batch.take()])
    assert frames[0] == frames[1]
    assert [count for count, _ in frames[0]] == [3, 3, 2]
    # and the detection process reads them back as kept
    es, tss, codes, bodies = D._unpack(*frames[0][0])
    assert es == [0, 10, 20] and tss == [1_000, 1_001, 1_002] and codes == bytes([10, 4, 10])
    assert bodies == [raw, reduce_raw(raw), raw]


def test_an_event_the_detectors_cannot_be_handed_is_counted_and_the_rest_go_on():
    """A snapshot that fails (here a key no JSON can hold, or a reduce hook that raises) costs
    the detectors that event only: it is counted, and the watcher returns normally, so the
    event is published all the same. Both batches."""
    from pybeat.agent import detection as D
    from pybeat.api import Event

    for batch_type in {D._Batch, D._PyBatch}:
        batch = batch_type([types.SimpleNamespace(now_ns=0)], lambda: None, 512)

        def broken(raw):
            raise RuntimeError("a reduce hook that fails")

        watch, reducing = batch.watcher(1), batch.watcher(2, broken)
        watch(Event(1, {"dns": {("a", "tuple"): 1}}))
        watch(Event(2, {"dns": {7: "int keys are fine"}}))
        reducing(Event(3, None, raw=b'{"x":1}'))
        watch(Event(2**70, {"dns": {"id": 1}}))  # a timestamp no frame can carry
        watch(Event(5.9, {"dns": {"id": 1}}))  # nor a float (not truncated)
        watch(Event(4, {"dns": {"id": 1}}))
        count, body = batch.take()
        assert batch.failed == 4 and count == 2
        assert D._unpack(count, body)[1] == [2, 4]



def test_a_frame_whose_lengths_do_not_fit_it_is_refused():
    from pybeat.agent import detection as D
    from pybeat.api import Event

    batch = D._PyBatch([types.SimpleNamespace(now_ns=-5)], lambda: None, 512)
    watch = batch.watcher(3)
    for i, raw in enumerate([b"{}", b'{"a":1}', b"", b'{"b":"' + b"x" * 300 + b'"}']):
        watch(Event(i - 2, None, raw=raw))
    count, body = batch.take()
    assert D._unpack(count, body)[1] == [-2, -1, 0, 1]
    assert D._unpack(0, b"") == ([], [], b"", [])
    for bad_count, bad_body in [(count, body[:-1]), (count, body[:20]), (-1, body),
                                (1, b"\x00" * 16 + b"\xff\xff\xff\xff" + b"\x02")]:
        with pytest.raises(ValueError, match="broken detection stream"):
            D._unpack(bad_count, bad_body)


def test_a_protocol_code_a_frame_cannot_carry_is_refused_by_both_batches():
    from pybeat.agent import detection as D

    for batch_type in {D._Batch, D._PyBatch}:
        batch = batch_type([types.SimpleNamespace(now_ns=0)], lambda: None, 512)
        for code in (-1, 128, 200):
            with pytest.raises(ValueError, match="0-127"):
                batch.watcher(code)
    if D._Batch is not D._PyBatch:
        from pybeat.agent import _batch

        with pytest.raises(TypeError):
            _batch.Watcher(None, 1, None)  # (a None batch: refused, never dereferenced)
