"""pybeat.testing.ProtocolHarness drives a protocol as the agent does: real decoder (ports,
TCP reassembly), real envelope, packet-time expiry, the pipeline's fields when published, and
the agent's fault containment when asked."""

from __future__ import annotations

import pytest

from pybeat.config.loader import ConfigError
from pybeat.plugins import PluginError
from pybeat.testing import SECOND, PluginFault, ProtocolHarness, at, write_pcap
from pybeat.testing import frames as f
from tests.sdk.toys import ping

C, S = ("10.1.0.1", 40000), ("10.1.0.2", 7777)


def test_udp_payloads_go_through_the_decoder_and_the_envelope() -> None:
    """A datagram to the configured port reaches the analyzer; the event has the common fields."""
    h = ProtocolHarness(ping, {"ports": [7777]})
    assert h.udp(b"PING 1", src=C, dst=S, ts=at(0)) == []
    (event,) = h.udp(b"PONG 1", src=S, dst=C, ts=at(0.25))
    assert event.fields["source"] == {"ip": "10.1.0.1", "port": 40000, "bytes": 6}
    assert event.fields["network"]["transport"] == "udp" and event.fields["network"]["community_id"].startswith("1:")
    assert event.fields["event"]["duration"] == SECOND // 4
    assert h.udp(b"PING 2", src=C, dst=("10.1.0.2", 7778)) == []  # not the protocol's port
    assert h.stats()["messages"] == 2
    assert h.metrics()["decode.dispatched"] == 2


def test_ipv6_and_vlan_tagged_datagrams_are_decoded() -> None:
    h = ProtocolHarness(ping, {"ports": [7777]})
    h.udp(b"PING 1", src=("2001:db8::1", 5000), dst=("2001:db8::2", 7777), vlan=12)
    (event,) = h.udp(b"PONG 1", src=("2001:db8::2", 7777), dst=("2001:db8::1", 5000), vlan=12)
    assert event.fields["network"]["type"] == "ipv6"


def test_tcp_streams_are_reassembled_across_segments() -> None:
    """Lines split across 3-byte segments arrive whole, in order; a skipped range is a gap."""
    h = ProtocolHarness(ping, {"ports": [7777]})
    conn = h.tcp(C, S, ts=at(0))
    conn.flow.mss = 3
    conn.send(b"PING 1\nPING 2\n")
    events = conn.reply(b"PONG 2\nPONG 1\n", ts=at(0.1))
    assert [e.fields["network"]["transport"] for e in events] == ["tcp", "tcp"]
    assert h.stats()["messages"] == 4 and h.stats()["pending"] == 0
    conn.skip(100)
    conn.send(b"PING 3\n")
    conn.close()
    h.flush()
    assert h.stats()["gaps"] == 1


def test_expiry_runs_on_packet_time_every_half_second() -> None:
    """expire is called by the decoder as packet time passes, never by the clock."""
    h = ProtocolHarness(ping, {"ports": [7777], "transaction_timeout": "2s"})
    h.udp(b"PING 1", src=C, dst=S, ts=at(0))
    assert h.udp(b"PING 2", src=C, dst=S, ts=at(1)) == []
    (late,) = h.udp(b"PING 3", src=C, dst=S, ts=at(2.5))
    assert late.fields["status"] == "Error" and h.stats()["expire_calls"] == 3
    (expired,) = h.advance(at(3.1))
    assert expired.timestamp_ns == at(1)
    assert len(h.flush()) == 1 and h.stats()["pending"] == 0


def test_a_pcap_gives_the_same_events_as_the_same_frames() -> None:
    frames = [(at(i / 10), f.udp_frame(C if i % 2 == 0 else S, S if i % 2 == 0 else C,
                                      f"{'PING' if i % 2 == 0 else 'PONG'} {i // 2}".encode())) for i in range(10)]
    by_frames = ProtocolHarness(ping, {"ports": [7777]})
    by_frames.frames(frames)
    by_frames.flush()

    def docs(h: ProtocolHarness) -> list[dict]:
        return [e.fields for e in h.events]

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        by_pcap = ProtocolHarness(ping, {"ports": [7777]})
        by_pcap.pcap(write_pcap(f"{tmp}/x.pcap", frames))
    assert docs(by_pcap) == docs(by_frames) and len(docs(by_pcap)) == 5


def test_published_events_carry_what_the_pipeline_adds() -> None:
    """published=True: the agent's fields, the protocol's fields/tags/processors and the global
    ones, while ``events`` keeps them as the analyzer emitted them."""
    h = ProtocolHarness(
        ping,
        {"ports": [7777], "fields": {"site": "lab"}, "tags": ["t1"],
         "processors": [{"add_fields": {"target": "", "fields": {"proto_proc": True}}}]},
        published=True, tags=["global"], processors=[{"drop_fields": {"fields": ["related"]}}],
    )
    h.udp(b"PING 1", src=C, dst=S)
    h.udp(b"PONG 1", src=S, dst=C)
    (emitted,), (published,) = h.events, h.published
    assert "agent" not in emitted.fields and "tags" not in emitted.fields and "related" in emitted.fields
    doc = published.fields
    assert doc["agent"]["name"] == "pybeat-test" and doc["ecs"] == {"version": "8.0.0"}
    assert doc["fields"] == {"site": "lab"} and doc["tags"] == ["t1", "global"] and doc["proto_proc"] is True
    assert "related" not in doc


def test_the_analyzer_is_told_whether_events_may_share_as_the_agent_tells_it() -> None:
    plain = ProtocolHarness(ping, {"ports": [7777]})
    configured = ProtocolHarness(ping, {"ports": [7777], "tags": ["x"]})
    assert plain.analyzer.ctx.events_may_share is True  # type: ignore[attr-defined]
    assert configured.analyzer.ctx.events_may_share is False  # type: ignore[attr-defined]


def test_an_analyzer_exception_fails_the_test_with_the_plugins_own_error() -> None:
    h = ProtocolHarness(ping, {"ports": [7777]})
    with pytest.raises(PluginFault, match="protocol ping raised RuntimeError") as err:
        h.udp(b"BOOM", src=C, dst=S)
    assert isinstance(err.value.__cause__, RuntimeError)


def test_strict_false_shows_the_agents_containment() -> None:
    """The packet that raised is lost, the others are not; <protocol>.exceptions counts it and
    one warning names the plugin."""
    h = ProtocolHarness(ping, {"ports": [7777]}, strict=False)
    h.udp(b"PING 1", src=C, dst=S)
    h.udp(b"BOOM", src=C, dst=S)
    h.udp(b"BOOM", src=C, dst=S)
    h.udp(b"PONG 1", src=S, dst=C)
    assert len(h.events) == 1 and h.metrics()["ping.exceptions"] == 2
    assert [r.event for r in h.logger.records if r.level == "warning"] == [
        "protocol ping raised RuntimeError; further ones of this kind are only counted (counted as ping.exceptions)"]


def test_config_mistakes_are_reported_as_the_agent_reports_them() -> None:
    with pytest.raises(ConfigError, match=r"packetbeat.protocols.0.portz: unknown key; did you mean 'ports'"):
        ProtocolHarness(ping, {"portz": [7777]})
    with pytest.raises(ValueError, match="no ports configured"):
        ProtocolHarness(ping).udp(b"x", src=C, dst=S)


def test_a_plugin_the_agent_would_refuse_is_refused() -> None:
    class Future:
        name = "future"
        api_version = "2.0"
        transports = frozenset({"udp"})
        config_model = ping.config_model

    with pytest.raises(PluginError, match="needs pybeat.api 2.0"):
        ProtocolHarness(Future())


def test_two_protocols_share_one_decoder() -> None:
    """The DHCP way: several analyzers on one decoder, events kept per protocol."""
    class Pong2(type(ping)):  # type: ignore[misc]
        name = "ping2"

    h = ProtocolHarness(ping, {"ports": [7777]})
    h.add(Pong2(), {"ports": [8888]})
    h.udp(b"PING 1", src=C, dst=S)
    h.udp(b"PING 1", src=C, dst=("10.1.0.2", 8888))
    h.flush()
    assert len(h.events_of("ping")) == 1 and len(h.events_of("ping2")) == 1 and len(h.events) == 2
