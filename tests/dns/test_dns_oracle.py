"""dnspython as an independent oracle on every DNS message of the real captures.

Messages are taken from the captures through the agent's decoder (UDP payloads, and TCP
streams split on their length prefixes), then decoded by both parsers; names, types, section
counts, TTLs and record data must agree.
"""

from __future__ import annotations

import base64
import re

import pytest

from tests.conftest import PCAPS, need
from pybeat.api import Analyzer, Packet, TcpConnection
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from pybeat.protocols.dns.wire import Message, parse_message

dns = pytest.importorskip("dns.message")
import dns.rdata  # noqa: E402
import dns.rdatatype  # noqa: E402

CAPTURES = [
    "dns_udp_mixed", "dns_tcp", "dns_dnssec", "mdns", "dns_tunnel_iodine", "dns_vlan",
    "dns_linux_sll", "dns_linux_sll2", "dns_ip_fragments",
]
_ESC = re.compile(rb"\\(\d{3}|.)")


class _Recorder(Analyzer):
    """Collects every DNS message the decoder hands over, with its port (for mDNS)."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self.streams: dict[tuple[int, bool], bytearray] = {}

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self.messages.append((payload, 5353 in (pkt.src_port, pkt.dst_port)))

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        buf = self.streams.setdefault((id(conn), from_client), bytearray())
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + ((buf[0] << 8) | buf[1]):
            n = (buf[0] << 8) | buf[1]
            self.messages.append((bytes(buf[2 : 2 + n]), False))
            del buf[: 2 + n]


def _messages(capture: str) -> list[tuple[bytes, bool]]:
    pcap = PCAPS / f"{capture}.pcap"
    need(pcap.exists(), f"capture {pcap}")
    rec = _Recorder()
    dec = Decoder(udp_ports={53: rec, 5353: rec}, tcp_ports={53: rec})
    for ts, link, frame in PcapFileSource(str(pcap)):
        dec.decode(ts, link, frame)
    dec.flush()
    return rec.messages


def _unescape(name: str) -> bytes:
    if name == ".":
        return b""
    return _ESC.sub(lambda m: bytes([int(m.group(1))]) if len(m.group(1)) == 3 else m.group(1), name.encode())


def _dp_name(n) -> bytes:
    return b".".join(n.labels).rstrip(b".")


def _txt(s: str) -> bytes:
    return _ESC.sub(lambda m: bytes([int(m.group(1))]) if len(m.group(1)) == 3 else m.group(1), s.encode())


def _compare_rdata(rec: dict, rd) -> None:
    if isinstance(rd, dns.rdata.GenericRdata):
        return  # an mDNS record: dnspython sees class 0x8001 and keeps it opaque
    t = rd.rdtype
    if t in (dns.rdatatype.A, dns.rdatatype.AAAA):
        assert rec["data"] == rd.address
    elif t in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.DNAME):
        assert _unescape(rec["data"]) == _dp_name(rd.target)
    elif t == dns.rdatatype.MX:
        assert _unescape(rec["data"]) == _dp_name(rd.exchange) and rec["preference"] == rd.preference
    elif t == dns.rdatatype.SRV:
        assert _unescape(rec["data"]) == _dp_name(rd.target)
        assert (rec["priority"], rec["weight"], rec["port"]) == (rd.priority, rd.weight, rd.port)
    elif t == dns.rdatatype.SOA:
        assert _unescape(rec["data"]) == _dp_name(rd.mname) and _unescape(rec["rname"]) == _dp_name(rd.rname)
        assert (rec["serial"], rec["refresh"], rec["retry"], rec["expire"], rec["minimum"]) == (
            rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)
    elif t == dns.rdatatype.TXT:
        assert rec["data"].split(" ") == [_txt_escape(s) for s in rd.strings] or _txt(rec["data"]) == b" ".join(rd.strings)
    elif t == dns.rdatatype.DS:
        assert rec["data"] == rd.digest.hex().upper() and rec["key_tag"] == str(rd.key_tag)
    elif t == dns.rdatatype.DNSKEY:
        assert rec["data"] == base64.b64encode(rd.key).decode() and rec["flags"] == str(rd.flags)
    elif t == dns.rdatatype.RRSIG:
        assert rec["data"] == base64.b64encode(rd.signature).decode()
        assert _unescape(rec["signer_name"]) == _dp_name(rd.signer) and rec["key_tag"] == str(rd.key_tag)
        assert rec["original_ttl"] == str(rd.original_ttl)
    elif t == dns.rdatatype.NSEC:
        assert _unescape(rec["data"].rstrip(".")) == _dp_name(rd.next)
    elif t == dns.rdatatype.NSEC3:
        assert rec["iterations"] == str(rd.iterations) and rec["salt"] == (rd.salt.hex().upper() or "-")
    elif t == dns.rdatatype.NSEC3PARAM:
        assert rec["data"] == (rd.salt.hex().upper() or "-")
    elif t == dns.rdatatype.CAA:
        assert rec["tag"] == rd.tag.decode() and _txt(rec["value"]) == rd.value
    elif t == dns.rdatatype.SSHFP:
        assert rec["fingerprint"] == rd.fingerprint.hex().upper()
    elif t == dns.rdatatype.TLSA:
        assert rec["certificate"] == rd.cert.hex().upper()
    elif t == dns.rdatatype.HINFO:
        assert _txt(rec["cpu"]) == rd.cpu and _txt(rec["os"]) == rd.os


def _txt_escape(raw: bytes) -> str:
    from pybeat.protocols.dns.rdata import escape_txt

    return escape_txt(raw)


def _check(ours: Message, wire: bytes) -> None:
    theirs = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=True)
    assert ours.id == theirs.id and ours.rcode == theirs.rcode()  # with EDNS's extended bits
    assert len(ours.questions) == len(theirs.question)
    for (name, qtype, _qclass), rrset in zip(ours.questions, theirs.question):
        assert _unescape(name) == _dp_name(rrset.name) and qtype == rrset.rdtype
    opt = 1 if ours.opt is not None else 0
    sections = ((ours.answers, theirs.answer), (ours.authorities, theirs.authority))
    assert len(ours.additionals) - opt == len(theirs.additional)
    assert (ours.opt is not None) == (theirs.edns >= 0)
    for mine, other in (*sections, ([r for r in ours.additionals if r is not None or not opt], theirs.additional)):
        other_rrs = [(rrset, rd) for rrset in other for rd in rrset]
        mine_rendered = [r for r in mine if r is not None]
        assert len(mine_rendered) == len(other_rrs)
        for rec, (rrset, rd) in zip(mine_rendered, other_rrs):
            assert _unescape(rec["name"]) == _dp_name(rrset.name)
            assert rec["ttl"] == str(rrset.ttl)
            assert rec["type"] == dns.rdatatype.to_text(rd.rdtype) or rec["type"] == str(rd.rdtype)
            _compare_rdata(rec, rd)


@pytest.mark.parametrize("capture", CAPTURES)
def test_every_message_agrees_with_dnspython(capture: str) -> None:
    """Every message dnspython can decode is decoded the same way by ours; every message it
    rejects carries an error in ours (or is one dnspython is stricter about)."""
    messages = _messages(capture)
    assert messages
    compared = 0
    for wire, mdns in messages:
        ours = parse_message(wire, mdns)
        assert ours is not None
        assert not (ours.error or "").startswith("internal")
        try:
            dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=True)
        except Exception:
            assert ours.error is not None or mdns, f"dnspython rejects a message we accept: {wire.hex()}"
            continue
        if mdns:
            # dnspython folds the cache-flush/QU bit into the class; compare the rest.
            assert ours.error is None
        _check(ours, wire)
        compared += 1
    assert compared >= len(messages) * 0.95
