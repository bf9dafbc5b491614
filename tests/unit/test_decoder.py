"""The decoding layer: link types, VLANs, IPv4/IPv6 with fragments, UDP dispatch, TCP
reassembly. Packets are crafted with scapy and decoded by pybeat's hand-written decoder."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, ICMPv6EchoRequest
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Raw

from pybeat.decode import Decoder
from tests.unit.recorder import Recorder

NS = 1_000_000_000


def make(udp_ports=(53,), tcp_ports=(53,), icmp=False):
    rec = Recorder()
    dec = Decoder({p: rec for p in udp_ports}, {p: rec for p in tcp_ports}, rec if icmp else None)
    return dec, rec


def test_ethernet_udp_reaches_the_analyzer_with_addresses_and_ports():
    dec, rec = make()
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53) / b"hello")
    dec.decode(5 * NS, 1, frame)
    (pkt, payload), = rec.udp
    assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("10.0.0.1", 40000, "10.0.0.2", 53)
    assert payload == b"hello" and pkt.transport == "udp" and pkt.ip_version == 4 and pkt.ts_ns == 5 * NS


def test_ethernet_padding_is_not_part_of_the_payload():
    dec, rec = make()
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53) / b"x") + b"\0" * 20
    dec.decode(0, 1, frame)
    assert rec.udp[0][1] == b"x"


def test_source_port_is_checked_before_destination_port():
    a, b = Recorder(), Recorder()
    dec = Decoder({53: a, 5353: b})
    dec.decode(0, 1, bytes(Ether() / IP() / UDP(sport=5353, dport=53) / b"q"))
    assert len(b.udp) == 1 and not a.udp


def test_vlan_and_qinq_tags_are_skipped_and_reported():
    dec, rec = make()
    one = Ether() / Dot1Q(vlan=100) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=9, dport=53) / b"a"
    two = Ether() / Dot1AD(vlan=300) / Dot1Q(vlan=200) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=9, dport=53) / b"b"
    dec.decode(0, 1, bytes(one))
    dec.decode(0, 1, bytes(two))
    assert [p.vlans for p, _ in rec.udp] == [(100,), (300, 200)]


def test_linux_cooked_sll_sll2_raw_and_null_link_types():
    dec, rec = make()
    ip = bytes(IP(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=9, dport=53) / b"z")
    dec.decode(0, 113, bytes(CookedLinux(proto=0x0800)) + ip)
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8)
    dec.decode(0, 276, sll2 + ip)
    dec.decode(0, 101, ip)
    dec.decode(0, 0, bytes(Loopback(type=2)) + ip)
    dec.decode(0, 228, ip)
    assert len(rec.udp) == 5 and dec.errors == {}


def test_unsupported_link_type_and_short_frames_are_counted_not_raised():
    dec, rec = make()
    dec.decode(0, 147, b"\x00" * 40)
    dec.decode(0, 1, b"\x00" * 5)
    dec.decode(0, 1, bytes(Ether() / IP()) [:20])
    assert dec.errors["unsupported_link_type"] == 1 and dec.errors["short_link_header"] == 1
    assert not rec.udp


def test_ipv4_fragments_are_reassembled_in_any_order():
    dec, rec = make()
    payload = bytes(range(256)) * 8
    frags = fragment(IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=53, dport=1000) / payload, fragsize=512)
    assert len(frags) > 2
    for f in reversed(frags):
        dec.decode(0, 1, bytes(Ether() / f))
    (pkt, got), = rec.udp
    assert got == payload
    assert dec.frags.reassembled == 1 and len(dec.frags) == 0


def test_ipv6_extension_headers_and_fragments():
    dec, rec = make()
    payload = b"A" * 3000
    base = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(id=9) / UDP(sport=53, dport=999) / payload
    from scapy.layers.inet6 import fragment6

    frags = fragment6(base, 1280)
    assert len(frags) >= 3
    for f in frags:
        dec.decode(0, 1, bytes(Ether() / f))
    (pkt, got), = rec.udp
    assert got == payload and pkt.ip_version == 6 and pkt.src_ip == "fd00::1"


def test_incomplete_fragments_expire_on_packet_time():
    dec, rec = make()
    frags = fragment(IP(src="10.0.0.1", dst="10.0.0.2", id=8) / UDP(sport=53, dport=1) / (b"x" * 2000), fragsize=512)
    dec.decode(0, 1, bytes(Ether() / frags[0]))
    assert len(dec.frags) == 1
    dec.decode(31 * NS, 1, bytes(Ether() / IP() / UDP(sport=7, dport=7)))
    assert len(dec.frags) == 0 and dec.frags.expired == 1


def test_icmp_goes_to_the_icmp_analyzer():
    dec, rec = make(icmp=True)
    dec.decode(0, 1, bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=8, id=1, seq=2) / b"p"))
    dec.decode(0, 1, bytes(Ether() / IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(id=1, seq=2)))
    assert [p.transport for p, _ in rec.icmp] == ["icmp", "ipv6-icmp"]
    assert rec.icmp[0][1][0] == 8 and rec.icmp[1][1][0] == 128


def _tcp(src, sport, dst, dport, seq, flags, data=b"", ack=0):
    return bytes(Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / Raw(data))


C, S = "10.0.0.1", "10.0.0.2"


def test_tcp_in_order_out_of_order_and_retransmitted_segments():
    dec, rec = make()
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 100, "S"))
    dec.decode(0, 1, _tcp(S, 53, C, 5000, 900, "SA"))
    dec.decode(1, 1, _tcp(C, 5000, S, 53, 101, "PA", b"abc"))
    dec.decode(2, 1, _tcp(C, 5000, S, 53, 107, "PA", b"ghi"))  # ahead: held
    dec.decode(3, 1, _tcp(C, 5000, S, 53, 101, "PA", b"abc"))  # retransmission: dropped
    dec.decode(4, 1, _tcp(C, 5000, S, 53, 104, "PA", b"def"))  # fills the hole
    dec.decode(5, 1, _tcp(S, 53, C, 5000, 901, "PA", b"reply"))
    assert rec.stream(True) == b"abcdefghi"
    assert rec.stream(False) == b"reply"
    conn = rec.conns[0]
    assert (conn.client_ip, conn.client_port, conn.server_port) == (C, 5000, 53)
    assert dec.tcp.retransmitted == 1


def test_tcp_overlapping_retransmission_delivers_only_new_bytes():
    dec, rec = make()
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 1, "PA", b"abcd"))
    dec.decode(1, 1, _tcp(C, 5000, S, 53, 3, "PA", b"cdef"))
    assert rec.stream(True) == b"abcdef"


def test_tcp_fin_closes_each_direction_and_removes_the_connection():
    dec, rec = make()
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 1, "PA", b"q"))
    dec.decode(1, 1, _tcp(C, 5000, S, 53, 2, "FA"))
    dec.decode(2, 1, _tcp(S, 53, C, 5000, 50, "PA", b"r"))
    dec.decode(3, 1, _tcp(S, 53, C, 5000, 51, "FA"))
    assert [k for k, *_ in rec.tcp] == ["data", "close", "data", "close"]
    assert len(dec.tcp) == 0


def test_tcp_gap_is_declared_when_the_hole_never_fills():
    rec = Recorder()
    from pybeat.decode import DecoderLimits

    dec = Decoder({}, {53: rec}, None, DecoderLimits(max_ooo_segments=2))
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 1, "PA", b"aa"))
    for i in range(3):
        dec.decode(1, 1, _tcp(C, 5000, S, 53, 100 + 2 * i, "PA", b"zz"))
    assert ("gap", True, 97) in rec.tcp
    assert rec.stream(True) == b"aa" + b"zz" * 3


def test_tcp_rst_closes_both_directions_and_flush_closes_the_rest():
    dec, rec = make()
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 1, "PA", b"q"))
    dec.decode(1, 1, _tcp(S, 53, C, 5000, 9, "R"))
    assert [k for k, *_ in rec.tcp].count("close") == 2
    dec.decode(2, 1, _tcp(C, 5001, S, 53, 1, "PA", b"q"))
    dec.flush()
    assert [k for k, *_ in rec.tcp].count("close") == 4 and rec.flushed


def test_tcp_client_is_the_side_talking_to_the_port_when_the_handshake_was_missed():
    dec, rec = make()
    dec.decode(0, 1, _tcp(S, 53, C, 6000, 500, "PA", b"answer first"))
    conn = rec.conns[0]
    assert (conn.client_ip, conn.client_port) == (C, 6000)
    assert rec.tcp[0][1] is False


def test_tcp_connection_cap_evicts_the_oldest():
    rec = Recorder()
    from pybeat.decode import DecoderLimits

    dec = Decoder({}, {53: rec}, None, DecoderLimits(max_tcp_connections=2))
    for port in (1, 2, 3):
        dec.decode(0, 1, _tcp(C, port, S, 53, 1, "PA", b"x"))
    assert len(dec.tcp) == 2 and dec.tcp.evicted == 1


def test_analyzers_expire_on_packet_time_ticks():
    dec, rec = make()
    dec.decode(10 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))
    dec.decode(11 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))
    assert rec.expired == [10 * NS, 11 * NS]


def test_an_analyzer_exception_is_counted_not_raised():
    class Broken(Recorder):
        def on_udp(self, pkt, payload):
            raise KeyError("bug")

    b = Broken()
    dec = Decoder({53: b})
    dec.decode(0, 1, bytes(Ether() / IP() / UDP(sport=1, dport=53) / b"x"))
    assert dec.errors == {"analyzer_exception": 1}


def test_inline_udp4_path_matches_the_general_path() -> None:
    """Decoder.decode's inline Ethernet/IPv4/UDP path hands analyzers exactly what the general
    path (_ethernet -> _ip -> _transport) does, and splits flows across shards alike."""
    from pybeat.api import Analyzer
    from pybeat.capture.pcapfile import PcapFileSource
    from tests.conftest import PCAPS, need

    class Rec(Analyzer):
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def on_udp(self, pkt, payload):  # type: ignore[no-untyped-def]
            self.calls.append((pkt.ts_ns, pkt.src_ip, pkt.dst_ip, pkt.src_port, pkt.dst_port, pkt.transport,
                               pkt.ip_version, pkt.vlans, bytes(payload)))

        def shard_key(self, payload: bytes) -> int:
            return (payload[0] << 8) | payload[1] if len(payload) >= 2 else 0

    for name in ("dns_udp_mixed.pcap", "dns_ip_fragments.pcap", "dhcp.pcap"):
        pcap = PCAPS / name
        need(pcap.exists(), f"capture {pcap}")
        frames = [f for f in PcapFileSource(str(pcap)) if f[1] == 1]
        for shard in (None, (0, 2), (1, 2)):
            fast, slow = Rec(), Rec()
            d_fast = Decoder({53: fast, 67: fast, 68: fast}, shard=shard)
            d_slow = Decoder({53: slow, 67: slow, 68: slow}, shard=shard)
            for ts, _link, frame in frames:
                d_fast.decode(ts, 1, frame)
                d_slow.now_ns = ts
                d_slow._ethernet(ts, frame)
            assert fast.calls == slow.calls, (name, shard)
            assert d_fast.skipped_other_shard == d_slow.skipped_other_shard


def _handshake(dec):
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 100, "S"))
    dec.decode(0, 1, _tcp(S, 53, C, 5000, 500, "SA"))
    dec.decode(1, 1, _tcp(C, 5000, S, 53, 101, "PA", b"AAAA"))


def test_tcp_bare_fin_overtaking_a_delayed_segment_waits_for_it():
    dec, rec = make()
    _handshake(dec)
    dec.decode(2, 1, _tcp(C, 5000, S, 53, 109, "FA"))  # FIN overtakes bytes 105..108
    dec.decode(3, 1, _tcp(C, 5000, S, 53, 105, "PA", b"BBBB"))
    assert rec.stream(True) == b"AAAABBBB"
    assert [e for e in rec.tcp if e[1] is True] == [("data", True, b"AAAA"), ("data", True, b"BBBB"), ("close", True, 0)]


def test_tcp_bare_fin_after_a_hole_that_never_fills_reports_the_gap_before_closing():
    dec, rec = make()
    _handshake(dec)
    dec.decode(2, 1, _tcp(C, 5000, S, 53, 109, "FA"))
    assert ("close", True, 0) not in rec.tcp
    dec.flush()
    assert [e for e in rec.tcp if e[1] is True] == [("data", True, b"AAAA"), ("gap", True, 4), ("close", True, 0)]
    assert dec.tcp.gaps == 1 and dec.tcp.gap_bytes == 4


def test_tcp_bare_fin_hole_is_closed_by_idle_expiry():
    dec, rec = make()
    _handshake(dec)
    dec.decode(2, 1, _tcp(C, 5000, S, 53, 109, "FA"))
    dec.decode(200 * NS, 1, bytes(Ether() / IP() / UDP(sport=7, dport=7)))
    assert [e for e in rec.tcp if e[1] is True][1:] == [("gap", True, 4), ("close", True, 0)]


def test_ipv4_overlapping_fragments_keep_the_first_bytes_received():
    from pybeat.decode.ipfrag import FragmentReassembler

    r = FragmentReassembler()
    assert r.add(("k",), 8, True, b"X" * 16, 1) is None
    assert r.add(("k",), 0, True, b"Y" * 16, 2) is None
    assert r.add(("k",), 24, False, b"Z" * 8, 3) == b"Y" * 8 + b"X" * 16 + b"Z" * 8


def test_fragment_bytes_held_per_datagram_are_capped():
    from pybeat.decode.ipfrag import FragmentReassembler

    r = FragmentReassembler()
    for i in range(63):
        r.add(("big",), i * 8, True, b"\0" * (65535 - i * 8 - 8), 1)
    held = sum(len(p) for e in r._pending.values() for p in e.pieces.values())
    assert held <= 65535 + 8


def test_ipv6_fragment_followed_by_destination_options_is_reassembled():
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt, fragment6

    dec, rec = make()
    payload = b"Q" * 3000
    base = (IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(id=11) / IPv6ExtHdrDestOpt()
            / UDP(sport=40000, dport=53) / payload)
    frags = fragment6(base, 1280)
    assert len(frags) >= 3
    for f in frags:
        dec.decode(0, 1, bytes(Ether() / f))
    (pkt, got), = rec.udp
    assert got == payload and pkt.dst_port == 53 and dec.errors == {}


def test_ipv6_atomic_fragment_followed_by_destination_options():
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt

    dec, rec = make()
    frame = Ether() / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(id=12, m=0, offset=0) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=53) / b"hi"
    dec.decode(0, 1, bytes(frame))
    assert [p for _, p in rec.udp] == [b"hi"]


def test_many_vlan_tags_in_a_cooked_capture_are_counted_not_recursed():
    dec, rec = make()
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\0" * 8, 0x8100)
    frame = sll + struct.pack("!HH", 1, 0x8100) * 5000 + bytes(IP() / UDP(sport=1, dport=53) / b"x")
    dec.decode(0, 113, frame)
    sll2 = struct.pack("!HHIHBB8s", 0x8100, 0, 2, 1, 0, 6, b"\0" * 8)
    dec.decode(0, 276, sll2 + frame[16:])
    assert dec.errors == {"bad_vlan": 2} and not rec.udp
    two = sll[:-2] + struct.pack("!H", 0x8100) + struct.pack("!HH", 5, 0x8100) + struct.pack("!HH", 6, 0x0800) + bytes(IP() / UDP(sport=1, dport=53) / b"y")
    dec.decode(0, 113, two)
    assert [p.vlans for p, _ in rec.udp] == [(5, 6)]


def test_an_analyzer_value_or_index_error_is_an_analyzer_exception_not_malformed():
    class Broken(Recorder):
        def on_udp(self, pkt, payload):
            raise ValueError("bug")

        def on_tcp_data(self, conn, from_client, data, ts_ns):
            raise IndexError("bug")

        def on_icmp(self, pkt, message):
            raise ValueError("bug")

    b = Broken()
    dec = Decoder({53: b}, {53: b}, b)
    dec.decode(0, 1, bytes(Ether() / IP() / UDP(sport=1, dport=53) / b"x"))  # inline path
    dec.decode(0, 1, bytes(Ether() / Dot1Q(vlan=3) / IP() / UDP(sport=1, dport=53) / b"x"))  # general path
    dec.decode(0, 1, _tcp(C, 5000, S, 53, 1, "PA", b"q"))
    dec.decode(0, 1, bytes(Ether() / IP() / ICMP() / b"p"))
    assert dec.errors == {"analyzer_exception": 4}
    assert isinstance(dec.last_exception, ValueError)


def test_one_far_future_frame_does_not_expire_everything_or_stop_the_ticks():
    dec, rec = make()
    dec.decode(10 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))
    dec.decode(4_000_000_000 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))  # year 2096
    dec.decode(11 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))
    dec.decode(12 * NS, 1, bytes(Ether() / IP() / UDP(sport=1, dport=2)))
    assert rec.expired == [10 * NS, 11 * NS, 12 * NS]
    assert dec.errors == {"timestamp_jump": 1}


def test_a_capture_with_one_outlier_timestamp_gives_the_same_dns_events(tmp_path):
    from pybeat.capture.pcapfile import PcapFileSource
    from tests.conftest import PCAPS, need
    from tests.golden.test_golden import run_capture

    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap}")
    frames = list(PcapFileSource(str(pcap)))
    outlier = (4_000_000_000 * NS, 1, bytes(Ether() / IP(src="10.9.9.9", dst="10.9.9.8") / UDP(sport=9, dport=9) / b"z"))
    frames.insert(len(frames) // 2, outlier)
    bad = tmp_path / "outlier.pcap"
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, _link, frame in frames:
        out.append(struct.pack("<IIII", ts // NS, ts % NS, len(frame), len(frame)) + bytes(frame))
    bad.write_bytes(b"".join(out))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want = run_capture(pcap, tmp_path / "a")
    got = run_capture(bad, tmp_path / "b")
    assert want and got == want


def test_split_by_must_be_a_known_mode():
    """A typo in the split mode is refused when the decoder is built, not ignored."""
    with pytest.raises(ValueError, match="address_pair"):
        Decoder(split_by="pair")


def test_address_pair_split_hash_ignores_ports_and_direction():
    """"address_pair" hashes the two addresses only: both directions and every port pair of
    one client and server give the same hash."""
    from pybeat.decode.decoder import split_hash

    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
    assert split_hash(a, 0, b, 0, 0) == split_hash(b, 0, a, 0, 0)

    class Keyed(Recorder):
        def shard_key(self, payload: bytes) -> int:
            return payload[0]

    dec = Decoder(shard=(0, 2), split_by="address_pair")
    owners = {dec._udp_mine(Keyed(), bytes([n]), a, port, b, 53) for n in range(8) for port in (1000, 2000, 3000)}
    owners |= {dec._udp_mine(Keyed(), bytes([n]), b, 53, a, port) for n in range(8) for port in (1000, 2000)}
    assert len(owners) == 1
