"""docs/plugins.md's lifecycle table, checked against a real run: a package with one plugin of
each kind (tests/sdk/lifecycle, installed as a package) records every call the agent makes, in
order, with the thread it came on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from pybeat.testing import Capture, at, run_cli
from tests.conftest import need

PACKAGE = Path(__file__).resolve().parent / "lifecycle"
PACKETS = 12  # one every 0.3 s of packet time: expire ticks (every 0.5 s) fall between them


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[list[Any]]]:
    """Runs ``pybeat run`` with the package's plugins on a capture; returns the calls recorded
    (kind, call, thread name, pid)."""
    root = tmp_path_factory.mktemp("lifecycle")
    shutil.copytree(PACKAGE, root / "src")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(root / "site"),
                           str(root / "src")], capture_output=True, text=True, timeout=600)
    need(done.returncode == 0, f"pip install of tests/sdk/lifecycle ({done.stderr.strip()[-300:]})")
    cap = Capture()  # one client each: a split replay with detectors in it splits by address pair
    for i in range(PACKETS):
        cap.udp(b"x%d" % i, src=(f"10.1.0.{i + 10}", 5000 + i), dst=("10.1.0.2", 4444), ts=at(i * 0.3))
    pcap = cap.write(root / "lc.pcap")
    config = {"packetbeat.protocols": [{"type": "lc_proto"}], "processors": [{"lc_proc": {}}],
              "pybeat.detection.lc_det": {}, "output.lc_out": {}}

    def run(name: str, *args: str) -> list[list[Any]]:
        log = root / f"{name}.jsonl"
        result = run_cli(config, pcap, root / name, args=args,
                         env={"PYTHONPATH": str(root / "site"), "PYBEAT_LIFECYCLE_LOG": str(log)})
        assert result.exit_code == 0, result
        return [json.loads(line) for line in log.read_text().splitlines()]

    return run


@pytest.fixture(scope="module")
def calls(replay: Callable[..., list[list[Any]]]) -> list[tuple[str, str, str]]:
    """The detectors in the capture process (``detection_process: false``)."""
    records = replay("one", "-E", "packetbeat.detection_process=false")
    assert len({pid for *_, pid in records}) == 1  # one process: no split replay asked for
    return [(kind, call, thread) for kind, call, thread, _ in records]


@pytest.fixture(scope="module")
def process_records(replay: Callable[..., list[list[Any]]]) -> list[list[Any]]:
    """The detectors in a process of their own (``detection_process: true``)."""
    return replay("process", "-E", "packetbeat.detection_process=true")


def positions(calls: list[tuple[str, str, str]], kind: str, call: str) -> list[int]:
    return [i for i, (k, c, _) in enumerate(calls) if (k, c) == (kind, call)]


def test_create_once_each_outputs_first_then_processors_detectors_protocols(
        calls: list[tuple[str, str, str]]) -> None:
    created = [(k, t) for k, c, t in calls if c == "create"]
    assert created == [("output", "MainThread"), ("processor", "MainThread"), ("detector", "MainThread"),
                       ("protocol", "MainThread")]
    assert positions(calls, "protocol", "create")[0] < positions(calls, "protocol", "on_udp")[0]


def test_packets_timers_processors_and_detectors_run_on_the_capture_thread(
        calls: list[tuple[str, str, str]]) -> None:
    """The capture thread of a replay is the process's main thread: the thread create ran on."""
    for kind, call in [("protocol", "on_udp"), ("protocol", "expire"), ("protocol", "flush"),
                       ("processor", "run"), ("detector", "observe"), ("detector", "expire"),
                       ("detector", "flush")]:
        threads = {t for k, c, t in calls if (k, c) == (kind, call)}
        assert threads == {"MainThread"}, (kind, call, threads)
    assert len(positions(calls, "protocol", "on_udp")) == PACKETS
    assert len(positions(calls, "processor", "run")) == len(positions(calls, "detector", "observe")) == PACKETS


def test_expire_ticks_on_packet_time_analyzers_before_detectors(calls: list[tuple[str, str, str]]) -> None:
    timers = [(k, c) for k, c, _ in calls if c in ("expire", "flush")]
    ticks = timers[:-2]
    # 3.3 s of packet time: a tick every 0.5 s, each analyzers' then detectors'
    assert len(ticks) // 2 >= 5 and ticks == [("protocol", "expire"), ("detector", "expire")] * (len(ticks) // 2)
    udp = positions(calls, "protocol", "on_udp")
    # before the packet that reaches the tick (the first packet starts the clock): between packets
    assert any(udp[0] < e < udp[-1] for e in positions(calls, "protocol", "expire"))
    # the end of input: flush, analyzers then detectors, after the last packet
    assert timers[-2:] == [("protocol", "flush"), ("detector", "flush")]
    assert positions(calls, "protocol", "flush")[0] > udp[-1]


def test_publish_on_the_clients_worker_threads_close_from_another(calls: list[tuple[str, str, str]]) -> None:
    publishing = {t for k, c, t in calls if (k, c) == ("output", "publish")}
    assert publishing and publishing <= {"output-lc_out-0", "output-lc_out-1"}
    closing = [t for k, c, t in calls if (k, c) == ("output", "close")]
    assert len(closing) == 2 and not set(closing) & publishing


def test_processors_and_detectors_close_at_the_end_after_the_outputs_drained(
        calls: list[tuple[str, str, str]]) -> None:
    last_publish = positions(calls, "output", "publish")[-1]
    for kind in ("processor", "detector"):
        (closed,) = positions(calls, kind, "close")
        assert closed > last_publish and calls[closed][2] == "MainThread"
    assert positions(calls, "protocol", "stats")  # the exit summary read the counters


def test_a_split_replay_creates_each_plugin_once_in_each_process(replay: Callable[..., list[list[Any]]]) -> None:
    records = replay("split", "-E", "packetbeat.workers=2", "-E", "packetbeat.detection_process=false")
    pids = {r[3] for r in records if r[1] == "on_udp"}
    assert len(pids) == 2
    for pid in pids:
        created = [kind for kind, call, _, p in records if call == "create" and p == pid]
        assert created == ["output", "processor", "detector", "protocol"]
    assert sum(r[1] == "on_udp" for r in records) == PACKETS


def _detector_calls(records: list[list[Any]]) -> tuple[set[int], int, list[tuple[str, str]]]:
    """(the capture processes, the detection process, its detector calls but stats)."""
    capture = {pid for kind, call, _, pid in records if (kind, call) == ("protocol", "on_udp")}
    (detection,) = {pid for kind, _, _, pid in records if kind == "detector"}
    assert detection not in capture
    return capture, detection, [(c, t) for k, c, t, _ in records if k == "detector" and c != "stats"]


def test_detectors_in_their_own_process_are_created_and_called_there_on_its_main_thread(
        process_records: list[list[Any]]) -> None:
    capture, detection, det = _detector_calls(process_records)
    (pid,) = capture
    assert [k for k, c, _, p in process_records if c == "create" and p == pid] == ["output", "processor", "protocol"]
    assert {t for _, t in det} == {"MainThread"}
    names = [c for c, _ in det]
    assert names[0] == "create" and names.count("create") == 1
    assert names.count("observe") == PACKETS
    # every 0.5 s of packet time after that period's transactions; flush, then close, last
    assert names.count("expire") >= 5 and names[-2:] == ["flush", "close"]
    assert "expire" not in names[names.index("flush"):]
    # the run's processors saw every event in the capture process
    assert sum(1 for k, c, _, p in process_records if (k, c) == ("processor", "run") and p == pid) == PACKETS


def test_a_split_replay_feeds_one_detection_process_from_every_worker(
        replay: Callable[..., list[list[Any]]]) -> None:
    records = replay("split-process", "-E", "packetbeat.workers=2", "-E", "packetbeat.detection_process=true")
    capture, detection, det = _detector_calls(records)
    assert len(capture) == 2
    for pid in capture:
        assert [k for k, c, _, p in records if c == "create" and p == pid] == ["output", "processor", "protocol"]
    names = [c for c, _ in det]
    assert names.count("create") == 1 and names.count("observe") == PACKETS and names[-2:] == ["flush", "close"]
