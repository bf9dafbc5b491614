"""Client/server exchanges through pybeat's real decoder and envelope (pybeat.testing):
pairing by origin timestamp, offset and delay, timeouts on packet time, the pending cap, the
notes, every other kind of message, and what the pipeline publishes."""

from __future__ import annotations

from typing import Any

import pytest
from ntpbytes import SECOND, message, ntp_ts, request, response

from pybeat.api import Event
from pybeat.testing import ConfigError, ProtocolHarness, at
from pybeat_ntp import plugin
from pybeat_ntp.analyzer import (
    DUPLICATE_REQUEST, EVICTED_REQUEST, NOT_SYNCHRONIZED, ORPHANED_REQUEST, ORPHANED_RESPONSE,
)

CLIENT = ("192.168.1.20", 40123)
SERVER = ("192.0.2.123", 123)
MS = SECOND // 1000


def exchange(h: ProtocolHarness, t1: int, t4: int, server_ahead_ns: int = 0, hold_ns: int = 5 * MS,
             client: tuple[str, int] = CLIENT, server: tuple[str, int] = SERVER, **kw: Any) -> list[Event]:
    """A client asking at t1 (its transmit timestamp: t1 on its clock) and the answer arriving
    at t4; the server, ``server_ahead_ns`` ahead, receives half-way and holds ``hold_ns``."""
    xmt = ntp_ts(t1)
    t2 = t1 + (t4 - t1 - hold_ns) // 2 + server_ahead_ns
    t3 = t2 + hold_ns
    events = h.udp(request(xmt), src=client, dst=server, ts=t1)
    return events + h.udp(response(xmt, ntp_ts(t2), ntp_ts(t3), **kw), src=server, dst=client, ts=t4)


def ntp(event: Event) -> dict[str, Any]:
    value = event.fields["ntp"]
    assert isinstance(value, dict)
    return value


def test_a_request_and_its_response_are_one_event_with_offset_and_delay() -> None:
    """RFC 5905: offset ((T2-T1)+(T3-T4))/2 = the server's 1.5 s lead; delay (T4-T1)-(T3-T2)
    = 20 ms round trip less the 5 ms the server held the request."""
    h = ProtocolHarness(plugin)
    (event,) = exchange(h, at(0), at(0.020), server_ahead_ns=1500 * MS)
    doc = event.fields
    assert (doc["type"], doc["status"], "error" not in doc) == ("ntp", "OK", True)
    assert ntp(event)["offset"] == pytest.approx(1.5, abs=1e-8)
    assert ntp(event)["delay"] == pytest.approx(0.015, abs=1e-8)
    assert {k: ntp(event)[k] for k in ("version", "mode", "stratum", "reference_id", "poll", "precision")} == {
        "version": 4, "mode": "client", "stratum": 2, "reference_id": "192.0.2.1", "poll": 6, "precision": -20}
    assert doc["client"] == {"ip": "192.168.1.20", "port": 40123, "bytes": 48}
    assert doc["server"] == {"ip": "192.0.2.123", "port": 123, "bytes": 48}
    assert doc["event"]["duration"] == 20 * MS and doc["network"]["protocol"] == "ntp"
    assert event.timestamp_ns == at(0)
    assert ntp(event)["receive_time"] == "2024-01-01T00:00:01.507500000Z"
    assert h.stats()["transactions"] == 1 and h.stats()["pending_requests"] == 0


def test_responses_pair_by_origin_timestamp_not_by_order() -> None:
    """Two requests on one flow answered in reverse order: each response finds its own request."""
    h = ProtocolHarness(plugin)
    a, b = ntp_ts(at(0)), ntp_ts(at(0.001))
    h.udp(request(a), src=CLIENT, dst=SERVER, ts=at(0))
    h.udp(request(b), src=CLIENT, dst=SERVER, ts=at(0.001))
    first = h.udp(response(b, ntp_ts(at(0.002)), ntp_ts(at(0.002))), src=SERVER, dst=CLIENT, ts=at(0.004))
    second = h.udp(response(a, ntp_ts(at(0.002)), ntp_ts(at(0.003)), stratum=3), src=SERVER, dst=CLIENT,
                   ts=at(0.005))
    assert [e.timestamp_ns for e in first + second] == [at(0.001), at(0)]
    assert [ntp(e)["stratum"] for e in first + second] == [2, 3]


def test_an_unanswered_request_times_out_on_packet_time() -> None:
    """Published once transaction_timeout of packet time has passed (the decoder's 0.5 s
    ticks), never by the clock; what is still pending is published at the end of input."""
    h = ProtocolHarness(plugin, {"transaction_timeout": "2s"})
    h.udp(request(ntp_ts(at(0))), src=CLIENT, dst=SERVER, ts=at(0))
    h.udp(request(ntp_ts(at(1))), src=("192.168.1.21", 5000), dst=SERVER, ts=at(1))
    assert h.advance(at(1.9)) == []
    (late,) = h.advance(at(2.1))
    assert (late.fields["status"], late.fields["error"]["message"]) == ("Error", ORPHANED_REQUEST)
    assert "offset" not in ntp(late) and ntp(late)["poll"] == 6 and "destination" in late.fields
    (last,) = h.flush()
    assert last.fields["client"]["ip"] == "192.168.1.21"
    assert h.stats()["unmatched_requests"] == 2


def test_a_late_response_is_an_orphan() -> None:
    h = ProtocolHarness(plugin, {"transaction_timeout": "1s"})
    xmt = ntp_ts(at(0))
    h.udp(request(xmt), src=CLIENT, dst=SERVER, ts=at(0))
    events = h.udp(response(xmt, xmt, xmt), src=SERVER, dst=CLIENT, ts=at(1.5))
    assert [e.fields["error"]["message"] for e in events] == [ORPHANED_REQUEST, ORPHANED_RESPONSE]
    orphan = events[1]
    assert orphan.fields["client"]["ip"] == CLIENT[0] and ntp(orphan)["mode"] == "server"
    assert "offset" not in ntp(orphan) and h.stats()["unmatched_responses"] == 1


def test_a_repeated_request_closes_the_first() -> None:
    h = ProtocolHarness(plugin)
    xmt = ntp_ts(at(0))
    h.udp(request(xmt), src=CLIENT, dst=SERVER, ts=at(0))
    (dup,) = h.udp(request(xmt), src=CLIENT, dst=SERVER, ts=at(0.1))
    assert dup.fields["error"]["message"] == DUPLICATE_REQUEST and h.stats()["duplicate_requests"] == 1


def test_the_pending_table_is_bounded() -> None:
    """With max_pending_requests reached, the oldest request makes room, noted and counted."""
    h = ProtocolHarness(plugin, {"max_pending_requests": 3})
    evicted = []
    for i in range(5):
        evicted += h.udp(request(ntp_ts(at(i / 100))), src=("10.9.0.1", 1000 + i), dst=SERVER, ts=at(i / 100))
    assert [e.fields["client"]["port"] for e in evicted] == [1000, 1001]
    assert evicted[0].fields["error"]["message"] == [EVICTED_REQUEST, ORPHANED_REQUEST]
    assert h.stats()["pending_requests"] == 3 and h.stats()["evicted_requests"] == 2


def test_a_kiss_o_death_and_an_unsynchronized_server_are_errors() -> None:
    h = ProtocolHarness(plugin)
    (kod,) = exchange(h, at(0), at(0.01), stratum=0, ref_id=b"RATE")
    assert (kod.fields["status"], ntp(kod)["kiss_code"], "reference_id" in ntp(kod)) == ("Error", "RATE", False)
    assert kod.fields["error"]["message"] == "Kiss-o'-Death from the server: RATE"
    (unsync,) = exchange(h, at(1), at(1.01), stratum=16, leap=3, client=("192.168.1.30", 999))
    assert (unsync.fields["status"], unsync.fields["error"]["message"]) == ("Error", NOT_SYNCHRONIZED)


def test_other_modes_are_events_of_their_own() -> None:
    h = ProtocolHarness(plugin)
    peer = ("192.0.2.7", 123)
    (sym,) = h.udp(message(1, stratum=2, ref_id=b"\x0a\0\0\x01"), src=SERVER, dst=peer)
    (bcast,) = h.udp(message(5, stratum=1, ref_id=b"GPS\0"), src=SERVER, dst=("192.0.2.255", 123))
    (ctl,) = h.udp(bytes.fromhex("160200010000000000000000"), src=CLIENT, dst=SERVER)
    (monlist,) = h.udp(bytes.fromhex("1700032a") + bytes(44), src=CLIENT, dst=SERVER)
    assert [ntp(e)["mode"] for e in (sym, bcast, ctl, monlist)] == [
        "symmetric_active", "broadcast", "control", "private"]
    assert (ntp(bcast)["reference_id"], ntp(monlist)["opcode"], ntp(ctl)["version"]) == ("GPS", 42, 2)
    assert all(e.fields["status"] == "OK" for e in (sym, bcast, ctl, monlist))
    assert h.stats()["other_modes"] == 4


def test_malformed_datagrams_are_reported_or_only_counted() -> None:
    h = ProtocolHarness(plugin)
    (bad,) = h.udp(b"\x1b" + bytes(9), src=CLIENT, dst=SERVER)
    assert bad.fields["status"] == "Error" and "ntp" not in bad.fields
    assert bad.fields["error"]["message"] == "Malformed NTP message: 10 bytes, an NTP header has 48"
    quiet = ProtocolHarness(plugin, {"report_malformed": False})
    assert quiet.udp(b"\x03" + bytes(47), src=CLIENT, dst=SERVER) == []
    assert quiet.stats()["malformed"] == 1


def test_ipv6_and_another_port() -> None:
    h = ProtocolHarness(plugin, {"ports": [10123]})
    (event,) = exchange(h, at(0), at(0.01), client=("2001:db8::20", 40000), server=("2001:db8::1", 10123))
    assert event.fields["network"]["type"] == "ipv6" and event.fields["server"]["port"] == 10123
    assert h.udp(request(1), src=CLIENT, dst=SERVER) == [] and h.stats()["messages"] == 2  # 123: not ours


def test_published_events_carry_the_agents_fields_and_the_processors_work() -> None:
    h = ProtocolHarness(plugin, {"tags": ["time"], "processors": [{"drop_fields": {"fields": ["ntp.origin_time"]}}]},
                        published=True)
    exchange(h, at(0), at(0.01))
    (doc,) = [e.fields for e in h.published]
    assert doc["tags"] == ["time"] and doc["agent"]["type"] == "packetbeat" and "origin_time" not in doc["ntp"]
    assert "origin_time" in ntp(h.events[0])  # as the analyzer emitted it


def test_a_request_and_its_response_land_in_the_same_process_of_a_split_replay() -> None:
    xmt = ntp_ts(at(3))
    analyzer = ProtocolHarness(plugin).analyzer
    assert analyzer.shard_key(request(xmt)) == analyzer.shard_key(response(xmt, 1, 2)) != 0


def test_config_mistakes_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"max_pending_requests.*greater than or equal to 1"):
        ProtocolHarness(plugin, {"max_pending_requests": 0})
    with pytest.raises(ConfigError, match=r"report_malformd: unknown key; did you mean 'report_malformed'"):
        ProtocolHarness(plugin, {"report_malformd": True})


def _leaves(prefix: str, value: Any) -> set[str]:
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)}
    return {prefix}


def test_fields_yml_declares_exactly_the_fields_the_events_carry() -> None:
    """fields() (the package's fields.yml) against every ``ntp.*`` field that an exchange, a
    kiss-o'-death and every other mode write: none undeclared, none declared for nothing."""
    h = ProtocolHarness(plugin)
    events = exchange(h, at(0), at(0.01), reference=ntp_ts(at(-60))) + exchange(
        h, at(1), at(1.01), stratum=0, ref_id=b"RATE",
        client=("192.168.1.30", 999))
    events += h.udp(message(1, stratum=2, ref_id=b"\x0a\0\0\x01"), src=SERVER, dst=("192.0.2.7", 123))
    events += h.udp(bytes.fromhex("1700032a") + bytes(44), src=CLIENT, dst=SERVER)
    written = {leaf for e in events for leaf in _leaves("ntp", ntp(e))}
    declared = plugin.fields()
    assert written == set(declared)
    assert declared["ntp.offset"] == "double" and declared["ntp.transmit_time"] == "date_nanos"
