"""The flow table on its own: the inline path gives the same flows as the general one on every
frame of every capture; reports on packet time (period, timeout, delta, final); the cap; the
event's fields."""

from __future__ import annotations

import struct

import pytest

from pybeat.capture.pcapfile import PcapFileSource
from pybeat.flows import FlowTable
from tests.conftest import PCAPS, need

CAPTURES = sorted(PCAPS.glob("*.pcap"))


def _frames(pcap):
    src = PcapFileSource(str(pcap))
    for item in src:
        yield item


def _hook(table: FlowTable, kind: str):
    """The per-frame hook under test: the table's Python inline path or the compiled one."""
    if kind == "python":
        return table.observe_frame
    try:
        from pybeat.flows._fast import FlowObserver  # noqa: F401
    except ImportError:
        need(False, "the compiled extension pybeat.flows._fast (pip install -e .)")
    obs = table.observer()
    assert obs is not table
    return obs.observe_frame


@pytest.mark.parametrize("kind", ["python", "compiled"])
@pytest.mark.parametrize("pcap", CAPTURES, ids=lambda p: p.name)
def test_the_inline_path_counts_as_the_general_path(pcap, kind, monkeypatch):
    monkeypatch.delenv("PYBEAT_PURE_PYTHON", raising=False)
    fast, slow = FlowTable(lambda e: None), FlowTable(lambda e: None)
    observe = _hook(fast, kind)
    n = 0
    for ts, link, frame in _frames(pcap):
        observe(ts, link, bytes(frame))
        slow.frames += 1
        slow.observe_general(ts, link, bytes(frame))
        n += 1
        if n > 20000:
            break
    assert fast.flows.keys() == slow.flows.keys()
    for k, f in fast.flows.items():
        g = slow.flows[k]
        assert (f.dir, f.start, f.last, f.packets, f.bytes) == (g.dir, g.start, g.last, g.packets, g.bytes)
    assert fast.stats() == slow.stats() and fast.now == slow.now


def _udp(ts, src, dst, sport, dport, size=100, smac=b"\x02" * 6, dmac=b"\x04" * 6, vlan=None):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + size, 0, 0, 64, 17, 0, bytes(src), bytes(dst))
    udp = struct.pack("!HHHH", sport, dport, 8 + size, 0)
    eth = dmac + smac + (struct.pack("!HH", 0x8100, vlan) if vlan is not None else b"") + b"\x08\x00"
    return ts, 1, eth + ip + udp + bytes(size)


S = 1_000_000_000
A, B = (10, 0, 0, 1), (10, 0, 0, 2)


def test_period_timeout_and_final_reports_on_packet_time():
    events = []
    t = FlowTable(events.append, timeout_s=30, period_s=10)
    t.observe_frame(*_udp(1 * S, A, B, 5000, 53))
    t.observe_frame(*_udp(2 * S, B, A, 53, 5000, size=200, smac=b"\x04" * 6, dmac=b"\x02" * 6))
    t.expire(9 * S)
    assert events == []
    t.expire(10 * S)  # the first period boundary
    assert len(events) == 1 and events[0].fields["flow"]["final"] is False
    f = events[0].fields
    assert (f["source"]["packets"], f["source"]["bytes"], f["destination"]["packets"], f["destination"]["bytes"]) == \
        (1, 142, 1, 242)
    assert f["source"]["ip"] == "10.0.0.1" and f["source"]["port"] == 5000 and f["destination"]["port"] == 53
    assert f["event"]["duration"] == S and f["network"]["packets"] == 2 and f["network"]["bytes"] == 384
    assert f["event"]["type"] == ["connection"] and events[0].timestamp_ns == 10 * S
    for half in range(21, 100):  # the decoder ticks every 0.5 s of packet time
        t.expire(half * S // 2)
    # periods at 20 s and 30 s; the last frame was at 2 s: more than 30 s idle at the 40 s tick,
    # final, forgotten (Packetbeat checks timeouts at ticks of gcd(timeout, period))
    assert [e.timestamp_ns for e in events] == [10 * S, 20 * S, 30 * S, 40 * S]
    assert events[-1].fields["flow"]["final"] is True and events[-1].fields["event"]["type"] == ["connection", "end"]
    assert not t.flows and t.timed_out == 1
    t.flush()
    assert len(events) == 4  # nothing left at flush


def test_delta_reports_and_flush():
    events = []
    t = FlowTable(events.append, timeout_s=60, period_s=10, delta=True)
    for i in range(3):
        t.observe_frame(*_udp(1 * S + i, A, B, 5000, 53))
    t.expire(10 * S)
    t.observe_frame(*_udp(11 * S, A, B, 5000, 53))
    t.flush()
    assert [e.fields["source"]["packets"] for e in events] == [3, 1]
    assert [e.fields["flow"]["final"] for e in events] == [False, True]


def test_vlan_and_mac_split_flows_and_the_flow_fields():
    events = []
    t = FlowTable(events.append, period_s=-1)
    t.observe_frame(*_udp(S, A, B, 5000, 53, vlan=7))
    t.observe_frame(*_udp(S, A, B, 5000, 53, vlan=8))
    t.flush()
    assert sorted(e.fields["flow"]["vlan"] for e in events) == [7, 8]
    f = events[0].fields
    assert f["type"] == "flow" and f["source"]["mac"] == "02:02:02:02:02:02"
    assert f["network"]["community_id"].startswith("1:") and f["network"]["transport"] == "udp"
    assert f["event"]["dataset"] == "flow" and f["event"]["action"] == "network_flow"


def test_the_table_is_bounded_and_evictions_are_reported_and_counted():
    events = []
    t = FlowTable(events.append, period_s=-1, max_flows=64)
    for port in range(1000):
        t.observe_frame(*_udp(S + port, A, B, 1024 + port, 53))
    assert len(t.flows) <= 64 and t.evicted >= 1000 - 64
    t.flush()
    assert len(events) == 1000 and all(e.fields["flow"]["final"] for e in events)
    assert sum(e.fields["source"]["packets"] for e in events) == 1000


def _sample_frames() -> list[bytes]:
    out: list[bytes] = []
    for name in ("dns_udp_mixed.pcap", "dns_tcp.pcap", "dns_vlan.pcap", "icmp.pcap"):
        out += [bytes(f) for _, link, f in _frames(PCAPS / name) if link == 1][:60]
    return out


SAMPLES = _sample_frames()


def test_hostile_frames_count_the_same_in_the_compiled_hook_and_in_python():
    """Frames of real captures with bytes changed, cut short at every length or grown: the
    compiled hook never reads past a frame and counts exactly as the Python path."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    try:
        from pybeat.flows._fast import FlowObserver  # noqa: F401
    except ImportError:
        need(False, "the compiled extension pybeat.flows._fast (pip install -e .)")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, len(SAMPLES) - 1), st.integers(0, 80), st.integers(0, 255),
                              st.integers(0, 1600)), min_size=1, max_size=40))
    def check(changes):
        py, compiled = FlowTable(lambda e: None), FlowTable(lambda e: None)
        hook = compiled.observer()
        assert hook is not compiled
        for i, (which, pos, value, cut) in enumerate(changes):
            frame = bytearray(SAMPLES[which])
            if pos < len(frame):
                frame[pos] = value
            frame = bytes(frame[:cut]) if cut < len(frame) else bytes(frame) + bytes(cut % 7)
            for t in (py, compiled):
                (t.observe_frame if t is py else hook.observe_frame)(S + i, 1, frame)
        assert py.flows.keys() == compiled.flows.keys() and py.stats() == compiled.stats()
        for k, f in py.flows.items():
            g = compiled.flows[k]
            assert (f.dir, f.start, f.last, f.packets, f.bytes) == (g.dir, g.start, g.last, g.packets, g.bytes)

    check()


def _icmp(ts, src, dst, icmp_type, smac=b"\x02" * 6, dmac=b"\x04" * 6, frag=0):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, frag, 64, 1, 0, bytes(src), bytes(dst))
    return ts, 1, dmac + smac + b"\x08\x00" + ip + struct.pack("!BBHHH", icmp_type, 0, 0, 7, 1)


def test_icmp_shares_the_ip_flow_and_its_last_type_names_the_transport():
    """As Packetbeat: no ICMP layer in the flow id (an IPv4 fragment between the same hosts is
    in the same flow); the source direction's last type/code, unless 0/0, gives the transport
    and the Community ID."""
    events = []
    t = FlowTable(events.append, period_s=-1)
    t.observe_frame(*_icmp(S, A, B, 8))  # echo request
    t.observe_frame(*_icmp(S + 1, B, A, 0, smac=b"\x04" * 6, dmac=b"\x02" * 6))  # echo reply
    t.observe_frame(*_icmp(S + 3, A, B, 8, frag=0x2000))  # a first fragment: IP only
    t.flush()
    assert len(events) == 1
    icmp = events[0].fields
    assert icmp["source"]["packets"] == 2
    assert icmp["network"]["transport"] == "icmp" and icmp["network"]["community_id"].startswith("1:")
    assert "port" not in icmp["source"] and icmp["destination"]["packets"] == 1  # request + fragment, reply
    assert icmp["flow"]["id"].startswith("EQAA")  # flags 0x0011: Ethernet and IPv4, no ICMP layer
    events.clear()
    t = FlowTable(events.append, period_s=-1)
    t.observe_frame(*_icmp(S, A, B, 0))  # the source's last message is an echo reply (0/0)
    t.flush()
    assert "transport" not in events[0].fields["network"] and "community_id" not in events[0].fields["network"]


def test_allow_mismatched_eth_leaves_the_macs_out_of_the_flow():
    """packetbeat.flows.allow_mismatched_eth (8.x): a reply routed back through another MAC
    pair stays in its flow, and the flow has no MAC addresses."""
    frames = [_udp(S, A, B, 5000, 53), _udp(S + 1, B, A, 53, 5000, smac=b"\x06" * 6, dmac=b"\x08" * 6)]
    for ethernet, flows in ((True, 2), (False, 1)):
        events = []
        t = FlowTable(events.append, period_s=-1, ethernet=ethernet)
        hook = t.observer()
        for f in frames:
            hook.observe_frame(*f)
        t.flush()
        assert len(events) == flows
        if not ethernet:
            f = events[0].fields
            assert "mac" not in f["source"] and f["destination"]["packets"] == 1
            assert f["flow"]["id"].startswith("EAL")  # flags 0x0210 (little-endian): IPv4 and UDP


def test_allow_mismatched_eth_is_a_flows_key(tmp_path):
    from pybeat.config import load, load_settings
    from pybeat.plugins import load_registry

    cfg = tmp_path / "pb.yml"
    cfg.write_text("packetbeat.protocols:\n  - type: dns\n    ports: [53]\n"
                   "packetbeat.flows:\n  allow_mismatched_eth: true\noutput.file.path: /tmp/x\n")
    settings = load_settings(load(str(cfg), env={}), load_registry())
    assert not [w for w in settings.warnings if "allow_mismatched_eth" in w]
