"""pybeat.testing.ProcessorHarness (the agent's chain builder, when, faults) and
DetectorHarness (transaction events in, alerts out, packet time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybeat.api import Event
from pybeat.config.loader import ConfigError
from pybeat.testing import DetectorHarness, PluginFault, ProcessorHarness, at
from tests.sdk.toys import burst, ping, upper


def test_a_processor_runs_on_event_dicts_with_when() -> None:
    h = ProcessorHarness(upper, {"field": "name"}, when={"equals": {"type": "dns"}})
    assert h.run({"type": "dns", "name": "a.example"}) == {"type": "dns", "name": "A.EXAMPLE"}
    assert h.run({"type": "http", "name": "a.example"}) == {"type": "http", "name": "a.example"}
    assert h.run({"type": "dns", "name": "drop me"}) is None
    h.close()


def test_a_chain_mixes_the_plugin_with_installed_processors() -> None:
    h = ProcessorHarness(upper, chain=[{"add_fields": {"target": "", "fields": {"name": "x"}}},
                                       {"upper": {"field": "name"}}])
    assert h.run({"type": "dns"}) == {"type": "dns", "name": "X"}


def test_settings_are_validated_by_the_plugins_model() -> None:
    with pytest.raises(ConfigError, match=r"processors.0.upper.feild"):
        ProcessorHarness(upper, {"feild": "x"})


def test_a_raising_processor_fails_the_test_or_is_contained() -> None:
    """strict: the plugin's own exception; strict=False: the event goes on with a note, counted."""
    with pytest.raises(PluginFault, match="processor upper raised AttributeError"):
        ProcessorHarness(upper, {"field": "n"}).run({"n": 1})
    h = ProcessorHarness(upper, {"field": "n"}, strict=False)
    out = h.run({"n": 1})
    assert out is not None and out["error"]["message"].startswith("processor upper failed: AttributeError")
    assert h.exceptions() == 1


def test_a_detector_sees_events_and_expires_on_packet_time() -> None:
    h = DetectorHarness(burst, {"threshold": 2, "window_s": 1})
    fields = {"client": {"ip": "10.0.0.1"}}
    assert h.observe((at(0), fields)) == []
    (alert,) = h.observe(Event(at(0.2), fields))
    assert alert.fields["alert"] == {"client": "10.0.0.1", "count": 2}
    h.observe((at(5), {"client": {"ip": "10.0.0.9"}}))  # a tick at 5 s expires 10.0.0.1's window
    assert h.stats() == {"clients": 1, "expired": 1}
    h.flush()
    h.close()


def test_a_detector_watches_protocol_plugins_fed_from_packets() -> None:
    """As in the agent: the detector observes the events a watched protocol emits."""
    h = DetectorHarness(burst, {"threshold": 3})
    proto = h.protocols({ping: {"ports": [7777]}})
    for i in range(3):
        proto.udp(f"PING {i}".encode(), src=("10.0.0.5", 1000 + i), dst=("10.0.0.6", 7777), ts=at(i))
    proto.flush()
    assert [a.fields["alert"]["client"] for a in h.alerts] == ["10.0.0.5"]


def test_a_detector_harness_alerts_as_a_real_run_does(tmp_path: Path) -> None:
    """The built-in DNS detector on the iodine capture: the harness's alerts are the alerts
    the CLI writes (apart from what the pipeline adds: agent, ecs, host, @metadata)."""
    from pybeat.api import format_ts
    from pybeat.plugins import load_registry
    from pybeat.testing import run_cli
    from tests.conftest import PCAPS

    capture = PCAPS / "dns_tunnel_iodine.pcap"
    h = DetectorHarness(load_registry().get("detectors", "dns"), {"enabled": True})
    alerts = h.pcap(capture, {"dns": {"ports": [53]}})
    cli = run_cli({"packetbeat.protocols": [{"type": "dns", "ports": [53]}], "pybeat.detection.dns": {"enabled": True}},
                  capture, tmp_path)
    written = [d for d in cli.events if d.get("event", {}).get("kind") == "alert"]
    assert cli.exit_code == 0 and len(alerts) == len(written) >= 1
    skip = ("agent", "ecs", "host", "@metadata", "@timestamp")
    for alert, doc in zip(alerts, written):
        assert {k: v for k, v in doc.items() if k not in skip} == alert.fields
        assert format_ts(alert.timestamp_ns) == doc["@timestamp"]
