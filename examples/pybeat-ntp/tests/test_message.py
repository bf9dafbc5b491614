"""The NTP message parser on byte vectors: real messages (values as tshark decodes them),
every mode, and what is refused."""

from __future__ import annotations

import re

import pytest

from pybeat_ntp.message import MalformedMessage, parse, reference_id_text, short_seconds, to_unix_ns
from ntpbytes import SECOND, message

# ntpsec's sntp asking chrony (frames 13 and 14 of data/ntp_chrony_sntp.pcap)
SNTP_REQUEST = bytes.fromhex(
    "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eebb99e124c0a800")
CHRONY_RESPONSE = bytes.fromhex(
    "240800e600000000000000007f7f0101eebb99da7078524ceebb99e124c0a800eebb99e124ca6a0feebb99e12a1b10f6")
NEAR = 1_796_283_233 * SECOND  # 2026-12-03, when they were captured


def iso(ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SECOND)) + f".{ns % SECOND:09d}"


def test_a_real_client_request() -> None:
    m = parse(SNTP_REQUEST)
    assert (m.leap, m.version, m.mode, m.mode_name, m.length) == (3, 4, 3, "client", 48)
    assert (m.stratum, m.poll, m.origin_ts, m.receive_ts) == (0, 0, 0, 0)
    assert iso(to_unix_ns(m.transmit_ts, NEAR)) == "2026-12-03T07:33:53.143564701"


def test_a_real_server_response() -> None:
    """tshark: stratum 8, precision -26, reference ID 127.127.1.1, reference/origin/receive/
    transmit Dec 3, 2026 07:33:46.439335959 / 53.143564701 / 53.143713596 / 53.164475498."""
    m = parse(CHRONY_RESPONSE)
    assert (m.leap, m.version, m.mode, m.stratum, m.poll, m.precision) == (0, 4, 4, 8, 0, -26)
    assert reference_id_text(m.stratum, m.reference_id) == "127.127.1.1"
    assert [iso(to_unix_ns(t, NEAR)) for t in (m.reference_ts, m.origin_ts, m.receive_ts, m.transmit_ts)] == [
        "2026-12-03T07:33:46.439335959", "2026-12-03T07:33:53.143564701", "2026-12-03T07:33:53.143713596",
        "2026-12-03T07:33:53.164475498"]
    assert m.origin_ts == parse(SNTP_REQUEST).transmit_ts  # how RFC 5905 pairs them


def test_trailing_extension_fields_or_a_mac_are_allowed() -> None:
    assert parse(CHRONY_RESPONSE + bytes(20)).length == 68


def test_control_and_private_messages() -> None:
    """ntpq's mode 6 (READVAR, opcode 2) and ntpdc's mode 7 MON_GETLIST_1 (request code 42,
    the monlist of amplification attacks)."""
    ntpq = bytes.fromhex("160200010000000000000000")
    monlist = bytes.fromhex("1700032a") + bytes(44)
    assert (parse(ntpq).mode_name, parse(ntpq).opcode, parse(ntpq).version) == ("control", 2, 2)
    assert (parse(monlist).mode_name, parse(monlist).opcode) == ("private", 42)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty datagram"),
    (b"\x1b" + bytes(9), "10 bytes, an NTP header has 48"),
    (b"\x03" + bytes(47), "version 0"),
    (b"\x2b" + bytes(47), "version 5"),
    (b"\x20" + bytes(47), "mode 0 (reserved)"),
    (b"\x16\x02", "2 bytes, a control message has at least 12"),
    (b"\x17\x00", "2 bytes, a private message has at least 8"),
])
def test_what_is_not_an_ntp_message_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=re.escape(reason)):
        parse(data)


def test_every_mode_of_a_full_header() -> None:
    names = [parse(message(mode)).mode_name for mode in (1, 2, 3, 4, 5)]
    assert names == ["symmetric_active", "symmetric_passive", "client", "server", "broadcast"]


def test_reference_ids() -> None:
    assert reference_id_text(1, b"GPS\0") == "GPS"
    assert reference_id_text(0, b"RATE") == "RATE"
    assert reference_id_text(1, b"\x01\x02\x03\x04") == "01020304"  # not text: hex
    assert reference_id_text(3, b"\xc0\x00\x02\x01") == "192.0.2.1"
    assert reference_id_text(2, b"\0\0\0\0") is None


def test_timestamps_are_placed_in_the_era_nearest_packet_time() -> None:
    """Seconds 1 since 1900 reads as 2036-02-07T06:28:17 near 2036, as 1900 near 1900."""
    one = 1 << 32
    assert iso(to_unix_ns(one, 2_085_978_500 * SECOND)) == "2036-02-07T06:28:17.000000000"
    assert to_unix_ns(one, -2_208_988_800 * SECOND) == (1 - 2_208_988_800) * SECOND
    assert short_seconds(0x00018000) == 1.5
