"""Random and mutated bytes at the DHCPv4 and DHCPv6 analyzers never raise and never hang."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import VECTORS
from tests.dhcp.support import S, make_v4, make_v6, udp

_V4_SEEDS = []
if (VECTORS / "packetbeat_dhcpv4_vectors.json").is_file():
    _V4_SEEDS = [bytes.fromhex(v["payload_hex"]) for v in json.loads((VECTORS / "packetbeat_dhcpv4_vectors.json").read_text())
                 if "payload_hex" in v]
_V4_HEADER = bytes(236) + b"\x63\x82\x53\x63"
_V6_SEEDS = [
    bytes.fromhex("01abcdef0001000a00030001020000000001000800020096"),
    bytes.fromhex("0c00" + "20010db8000700000000000000000001" + "fe800000000000000000000000000050")
    + bytes.fromhex("0009000c01abcdef000800020096ffff"),
    bytes.fromhex("07000042000d000e00026e6f20616464726573736573001900290000000700000708000"
                  "00b40001a00190000000e1000001c203820010db8010000000000000000000000"),
]


def _mutate(data, seed: bytes) -> bytes:
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 12))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    return bytes(buf[:cut]) + data.draw(st.binary(max_size=32))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_dhcpv4(payload):
    """Random datagrams, bare or behind a valid header and cookie, never raise."""
    analyzer, events = make_v4(include_unmapped_options=True, custom_options={224: {"name": "x", "type": "ips"}})
    analyzer.on_udp(udp("10.0.0.1", 68, "10.0.0.2", 67), payload)
    analyzer.on_udp(udp("10.0.0.2", 67, "10.0.0.1", 68, 2 * S), _V4_HEADER + payload)
    analyzer.flush(3 * S)
    assert analyzer.stats()["total_packets"] == 2


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_dhcpv4(data):
    """Packetbeat's vectors with bytes flipped, cut or appended never raise."""
    seed = data.draw(st.sampled_from(_V4_SEEDS or [_V4_HEADER + b"\x35\x01\x01\xff"]))
    analyzer, events = make_v4(max_exchanges=2)
    for i in range(3):
        analyzer.on_udp(udp("0.0.0.0", 68, "255.255.255.255", 67, S + i), _mutate(data, seed))
    analyzer.expire(100 * S)
    analyzer.flush(100 * S)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_dhcpv6(payload):
    """Random datagrams (and random relay bodies) at the DHCPv6 analyzer never raise."""
    analyzer, events = make_v6()
    analyzer.on_udp(udp("fe80::1", 546, "ff02::1:2", 547), payload)
    analyzer.on_udp(udp("fe80::2", 547, "fe80::1", 547), b"\x0c\x00" + bytes(32) + payload)
    analyzer.flush(2 * S)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_dhcpv6(data):
    """Valid DHCPv6 messages with bytes flipped, cut or appended never raise."""
    analyzer, events = make_v6(max_exchanges=2)
    for i in range(3):
        analyzer.on_udp(udp("fe80::1", 546, "ff02::1:2", 547, S + i), _mutate(data, data.draw(st.sampled_from(_V6_SEEDS))))
    analyzer.flush(10 * S)


def test_deeply_nested_relays_are_bounded():
    """Relay messages nested far beyond the hop limit are cut off with a note."""
    inner = bytes.fromhex("01abcdef")
    for _ in range(50):
        inner = b"\x0c\x00" + bytes(32) + b"\x00\x09" + len(inner).to_bytes(2, "big") + inner
        if len(inner) > 60000:
            break
    analyzer, events = make_v6()
    analyzer.on_udp(udp("fe80::1", 547, "fe80::2", 547), inner)
    assert "nested deeper" in str(events[0].fields["error"]["message"])
    analyzer.shard_key(inner)  # bounded too


def test_relay_shard_key_is_the_relayed_transaction_id():
    """A relay's shard key is its client message's transaction id, so both land together."""
    solicit = bytes.fromhex("01abcdef00080002000a")
    relay = b"\x0c\x00" + bytes(32) + b"\x00\x09" + len(solicit).to_bytes(2, "big") + solicit
    analyzer, _ = make_v6()
    assert analyzer.shard_key(relay) == analyzer.shard_key(solicit) == 0xABCDEF
