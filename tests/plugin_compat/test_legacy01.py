"""A plugin package written for pybeat.api 0.1 (tests/plugin_compat/legacy01: a protocol, an
output and a processor that declare no api_version) installs and works unchanged: through the
real CLI, events out to its own output and to the file output, its deprecated uses logged once
each, ``pybeat plugins`` listing it as 0.1; also split across processes, with pre-encoded
events, and in pybeat.testing's harnesses."""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pybeat.testing import (
    Capture, CliResult, OutputHarness, ProcessorHarness, ProtocolHarness, at, run_cli, run_pybeat,
)
from tests.conftest import need
from tests.plugin_compat.support import Installed

SERVER = ("10.7.0.2", 7070)


def capture(path: Path) -> Path:
    """18 requests: 10 answered over UDP, one the processor drops (key drop-me), 2 over IPv6 in
    VLAN 42, 3 pipelined on one TCP connection (tiny segments), one error reply, one never
    answered; plus a line that is no message."""
    cap = Capture()
    for i in range(10):
        client = ("10.7.0.1", 5000 + i)
        cap.udp(f"GET k{i}".encode(), src=client, dst=SERVER, ts=at(i / 10))
        cap.udp(f"VAL k{i} value-{i}".encode(), src=SERVER, dst=client, ts=at(i / 10 + 0.001))
    cap.udp(b"GET drop-me", src=("10.7.0.1", 6000), dst=SERVER, ts=at(1.1))
    cap.udp(b"VAL drop-me x", src=SERVER, dst=("10.7.0.1", 6000), ts=at(1.2))
    for i in range(2):
        client6, server6 = ("fd07::1", 7000 + i), ("fd07::2", 7070)
        cap.udp(f"GET six{i}".encode(), src=client6, dst=server6, ts=at(1.3 + i / 10), vlan=42)
        cap.udp(f"VAL six{i} v6".encode(), src=server6, dst=client6, ts=at(1.35 + i / 10), vlan=42)
    conn = cap.tcp(("10.7.0.1", 8000), SERVER, ts=at(2))
    conn.flow.mss = 5
    conn.send(b"GET t1\nGET t2\nGET t3\n", ts=at(2.1))
    conn.reply(b"VAL t1 a\nVAL t2 b\nERR t3 nope\n", ts=at(2.2))
    conn.close(ts=at(2.3))
    cap.udp(b"GET e1", src=("10.7.0.1", 6001), dst=SERVER, ts=at(2.4))
    cap.udp(b"ERR e1 denied", src=SERVER, dst=("10.7.0.1", 6001), ts=at(2.5))
    cap.udp(b"GET lost", src=("10.7.0.1", 6002), dst=SERVER, ts=at(2.6))
    cap.udp(b"HELLO", src=("10.7.0.1", 6003), dst=SERVER, ts=at(2.7))
    return cap.write(path)


CONFIG: dict[str, Any] = {
    "packetbeat.protocols": [{"type": "legacy_kv", "processors": [{"legacy_stamp": {"field": "labels.proto"}}]}],
    "processors": [{"legacy_stamp": {}}],
    "output.legacy_jsonl": {"workers": 2, "batch_size": 4, "fail_first": 2},
}


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(tmp_path_factory.mktemp("legacy01") / "kv.pcap")


def run(installed: Installed, tmp_path: Path, pcap: Path, config: dict[str, Any], *args: str) -> CliResult:
    return run_cli({**config, "output.file": {"path": str(tmp_path / "out"), "filename": "events"}}, pcap,
                   tmp_path, args=args, env=installed.env("legacy01"))


def jsonl(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def test_it_installs_and_pybeat_plugins_lists_it_as_0_1(installed: Installed, tmp_path: Path) -> None:
    done = run_pybeat(["plugins"], tmp_path, env=installed.env("legacy01"))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if "pybeat-legacy01" in line}
    assert sorted(rows) == ["legacy_jsonl", "legacy_kv", "legacy_stamp"]
    assert all(" api 0.1 " in row and row.endswith("ok (api 0.1, deprecated)") for row in rows.values())


def test_a_run_through_the_cli_publishes_every_event(installed: Installed, tmp_path: Path, pcap: Path) -> None:
    result = run(installed, tmp_path, pcap, CONFIG)
    assert result.exit_code == 0, result
    docs = result.events
    assert len(docs) == 17  # 18 requests, drop-me dropped by the protocol's processor
    assert Counter(d["status"] for d in docs) == {"OK": 14, "Error": 3}
    assert all(d["labels"]["stamped_by"].startswith("pybeat ") and d["labels"]["proto"] for d in docs)
    keys = sorted(d["legacy_kv"]["key"] for d in docs)
    assert keys == sorted([f"k{i}" for i in range(10)] + ["six0", "six1", "t1", "t2", "t3", "e1", "lost"])
    tcp = [d for d in docs if d["network"]["transport"] == "tcp"]
    assert [d["legacy_kv"].get("value") for d in sorted(tcp, key=lambda d: d["legacy_kv"]["key"])] == ["a", "b", None]
    assert {d["network"].get("vlan", {}).get("id") for d in docs if d["network"]["type"] == "ipv6"} == {42}
    # its own output: two workers' files under path.data, every event once, the first batches retried
    written = jsonl(tmp_path / "data" / "legacy-jsonl")
    assert sorted(d["legacy_kv"]["key"] for d in written) == keys
    assert {p.name for p in (tmp_path / "data" / "legacy-jsonl").iterdir()} == {"legacy_jsonl-0.jsonl",
                                                                                 "legacy_jsonl-1.jsonl"}
    assert any(d["retries"] for d in written)
    m = result.metrics
    assert m["output.legacy_jsonl.events.acked"] == 17 and "output.legacy_jsonl.events.dropped" not in m
    assert m["output.legacy_jsonl.legacy.written"] == 17  # the 0.1 plugin's own namespace in the registry
    assert m["legacy_kv.requests"] == 18 and m["legacy_kv.garbage"] == 1


def test_its_deprecated_uses_are_logged_once_each(installed: Installed, tmp_path: Path, pcap: Path) -> None:
    result = run(installed, tmp_path, pcap, CONFIG)
    warnings = [r for r in result.logs if r.get("level") == "warning"]
    served = Counter(r.get("plugin") for r in warnings if "served as pybeat.api 0.1" in r["event"])
    assert served == {"legacy_kv": 1, "legacy_jsonl": 1, "legacy_stamp": 1}
    uses = Counter(r["detail"] for r in warnings if r["event"] == "deprecated pybeat.api use")
    assert set(uses.values()) == {1}  # each once, although create() ran once per worker
    assert any("extra['path_data']" in d for d in uses) and any("extra['file_suffix']" in d for d in uses)
    assert all("pybeat_legacy01" in r["where"] for r in warnings if r["event"] == "deprecated pybeat.api use")


def test_pre_encoded_events_come_out_the_same(installed: Installed, tmp_path: Path, pcap: Path) -> None:
    """0.1's Event.raw, closed with ctx.raw_close and sent with ctx.emit_closed (nothing
    configured changes events, so the agent offers them): the same documents as dict events."""
    plain = {"packetbeat.protocols": [{"type": "legacy_kv"}]}
    raw = {"packetbeat.protocols": [{"type": "legacy_kv", "raw_events": True}]}
    a = run(installed, tmp_path / "dicts", pcap, plain)
    b = run(installed, tmp_path / "raw", pcap, raw)
    assert a.exit_code == b.exit_code == 0, b

    def comparable(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in d.items() if k not in ("agent", "@metadata")} for d in docs),
                      key=lambda d: d["legacy_kv"]["key"])

    assert len(a.events) == 18 and comparable(a.events) == comparable(b.events)
    uses = [r["detail"] for r in b.logs if r.get("event") == "deprecated pybeat.api use"]
    assert sorted(uses) == sorted(set(uses)) and any("raw_close" in u for u in uses)


def test_a_run_split_across_processes_uses_the_file_suffix(installed: Installed, tmp_path: Path,
                                                           pcap: Path) -> None:
    result = run(installed, tmp_path, pcap, CONFIG, "-E", "packetbeat.workers=2")
    assert result.exit_code == 0, result
    assert len(result.events) == 17
    folder = tmp_path / "data" / "legacy-jsonl"
    names = {p.name for p in folder.iterdir()}
    assert names and all(n.startswith(("legacy_jsonl-w0-", "legacy_jsonl-w1-")) for n in names)
    assert len(jsonl(folder)) == 17


def test_it_is_served_in_pybeat_testings_harnesses(installed: Installed) -> None:
    """An author of a 0.1 plugin can test it with pybeat.testing too."""
    sys.path.insert(0, str(installed.site("legacy01")))
    try:
        protocol = importlib.import_module("pybeat_legacy01.protocol").plugin
        output = importlib.import_module("pybeat_legacy01.output").JsonlOutput()
        processor = importlib.import_module("pybeat_legacy01.processor").plugin
    finally:
        sys.path.remove(str(installed.site("legacy01")))
    h = ProtocolHarness(protocol)
    h.udp(b"GET a", src=("10.0.0.1", 1), dst=SERVER)
    (event,) = h.udp(b"VAL a 1", src=SERVER, dst=("10.0.0.1", 1))
    assert event.fields["legacy_kv"] == {"key": "a", "value": "1"}
    with pytest.warns(DeprecationWarning, match="extra"):
        out = OutputHarness(output, {"workers": 3})
    assert out.legacy and len(out.clients) == 3
    assert out.publish([event]).acked == 1
    out.close()
    stamped = ProcessorHarness(processor, {}).run({"legacy_kv": {"key": "x", "secret": 1}})
    assert stamped is not None and "secret" not in stamped["legacy_kv"] and "stamped_by" in stamped["labels"]


def test_ci_installs_it_as_a_package_of_its_own(tmp_path: Path) -> None:
    """tests/tooling/plugins/setup.sh installs it into the test environment (as .ci/run runs it)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist: Any = distribution("pybeat-legacy01")
    except PackageNotFoundError:
        dist = None
    need(dist is not None, "the pybeat-legacy01 package (bash tests/tooling/plugins/setup.sh installs it)")
    done = run_pybeat(["plugins"], tmp_path)
    assert done.returncode == 0 and "pybeat-legacy01" in done.stdout, done.stdout + done.stderr
