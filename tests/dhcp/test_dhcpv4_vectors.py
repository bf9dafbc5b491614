"""Packetbeat's two DHCPv4 vectors reproduce their expected events field for field, and its
system test's four-message exchange is rebuilt from them."""

from __future__ import annotations

import json

import pytest

from pybeat.timefmt import format_ts
from tests.conftest import VECTORS, need
from tests.dhcp.support import S, make_v4, udp

TS = 1_546_300_800 * S + 123_000_000


@pytest.fixture(scope="module")
def vectors() -> dict:
    path = VECTORS / "packetbeat_dhcpv4_vectors.json"
    need(path.is_file(), f"shared vectors at {path}")
    return {v["name"]: v for v in json.loads(path.read_text())}


def _event(vec, **config):
    analyzer, events = make_v4(**config)
    (src, sport), (dst, dport) = (x.split(":") for x in (vec["packet_tuple"]["src"], vec["packet_tuple"]["dst"]))
    analyzer.on_udp(udp(src, int(sport), dst, int(dport), TS), bytes.fromhex(vec["payload_hex"]))
    assert len(events) == 1
    return events[0]


def _check(event, expected: dict) -> None:
    for key, want in expected.items():
        got = event.get(key)
        if key == "event.start":
            assert got == format_ts(TS)
        elif key == "network.direction":
            assert got == want.split()[0]
        elif key == "dhcpv4":
            got = dict(got)
            got.pop("exchange")  # pybeat's addition, checked separately
            assert got == want, key
        else:
            assert got == want, key


@pytest.mark.parametrize("name", ["dhcpRequest", "dhcpACK"])
def test_vector_fields(vectors, name):
    """Every expected field has its value; the only extra dhcpv4 key is the documented exchange."""
    vec = vectors[name]
    assert len(bytes.fromhex(vec["payload_hex"])) == vec["payload_len"]
    event = _event(vec)
    _check(event, vec["expected_event_fields"])
    assert set(event.fields) == {
        "source", "destination", "client", "server", "network", "event", "related", "type", "status", "dhcpv4",
    }
    assert event.timestamp_ns == TS


@pytest.mark.parametrize("name", ["dhcpRequest", "dhcpACK"])
def test_vector_exact_without_exchange_tracking(vectors, name):
    """With track_exchanges off the dhcpv4 object equals Packetbeat's exactly."""
    vec = vectors[name]
    event = _event(vec, track_exchanges=False)
    assert event.fields["dhcpv4"] == vec["expected_event_fields"]["dhcpv4"]


def _discover_and_offer(vectors) -> tuple[bytes, bytes]:
    """The system test's DISCOVER and OFFER: the REQUEST/ACK vectors with xid 0x3d1d and
    message types 1/2 (DISCOVER asks for 0.0.0.0 and names no server)."""
    req = bytearray(bytes.fromhex(vectors["dhcpRequest"]["payload_hex"]))
    ack = bytearray(bytes.fromhex(vectors["dhcpACK"]["payload_hex"]))
    req[4:8] = ack[4:8] = (0x3D1D).to_bytes(4, "big")
    opts = bytes.fromhex("350101" "3d0701000b8201fc42" "320400000000" "370401030 62a".replace(" ", "") + "ff")
    discover = bytes(req[:240]) + opts
    discover += b"\x00" * (272 - len(discover))
    ack[240 + 2] = 2  # option 53 value: OFFER
    return discover, bytes(ack)


def test_system_test_exchange(vectors):
    """DISCOVER, OFFER, REQUEST, ACK give test_0066_dhcp.py's fields and one exchange per xid."""
    discover, offer = _discover_and_offer(vectors)
    request = bytes.fromhex(vectors["dhcpRequest"]["payload_hex"])
    ack = bytes.fromhex(vectors["dhcpACK"]["payload_hex"])
    analyzer, events = make_v4()
    c, b, srv, lease = ("0.0.0.0", 68), ("255.255.255.255", 67), ("192.168.0.1", 67), ("192.168.0.10", 68)
    for i, (payload, src, dst) in enumerate([(discover, c, b), (offer, srv, lease), (request, c, b), (ack, srv, lease)]):
        analyzer.on_udp(udp(src[0], src[1], dst[0], dst[1], TS + i * S), payload)
    expected = vectors["system_test_dhcp_pcap"]["expected"]
    assert len(events) == len(expected) == 4
    for event, want in zip(events, expected):
        for key, value in want.items():
            if value == "present":
                assert event.get(key) is not None, key
            else:
                assert event.get(key) == value, key
    ex = [e.fields["dhcpv4"]["exchange"] for e in events]
    assert ex[0]["id"] == ex[1]["id"] != ex[2]["id"] == ex[3]["id"]
    assert ex[1]["messages"] == ["discover", "offer"] and ex[3]["messages"] == ["request", "ack"]
    assert ex[3]["sequence"] == 2 and ex[3]["duration"] == S
    analyzer.flush(TS + 10 * S)
    assert analyzer.stats()["unmatched_requests"] == 0


def test_exchange_id_is_the_same_in_every_process(vectors):
    """Two analyzers (two processes of a split run) seeing different messages of one exchange
    name it alike; an exchange resumed after a long gap restarts its sequence."""
    request = bytes.fromhex(vectors["dhcpRequest"]["payload_hex"])
    ack = bytes.fromhex(vectors["dhcpACK"]["payload_hex"])
    a1, e1 = make_v4()
    a2, e2 = make_v4()
    a1.on_udp(udp("0.0.0.0", 68, "255.255.255.255", 67, TS), request)
    a2.on_udp(udp("192.168.0.1", 67, "192.168.0.10", 68, TS + S), ack)
    assert e1[0].fields["dhcpv4"]["exchange"]["id"] == e2[0].fields["dhcpv4"]["exchange"]["id"]
    a1.on_udp(udp("0.0.0.0", 68, "255.255.255.255", 67, TS + 60 * S), request)
    assert e1[1].fields["dhcpv4"]["exchange"]["sequence"] == 1
    assert a1.stats()["unmatched_requests"] == 1  # the first REQUEST's exchange ended unanswered
