"""A capture of hostile DNS traffic, crafted with scapy, replayed to the end: the intact
transactions are reported and the bad messages carry notes; the agent itself (CLI, file
output) exits 0 without a traceback."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, need
from tests.dns.dnstest import replay
from pybeat.protocols.dns import errors as notes

CLIENT, SERVER = "10.9.0.2", "10.9.0.1"


def _scapy():
    try:
        from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw, wrpcap  # type: ignore
    except ImportError:  # pragma: no cover - depends on the machine
        need(False, "the scapy package (pip install scapy)")
        raise
    return DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw, wrpcap


def _hdr(msg_id: int, flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", msg_id, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x04test\x00\x00\x01\x00\x01"

# (name, client port, query bytes or None, response bytes or None): the bad ones.
HOSTILE = [
    ("pointer_loop", 2001, _hdr(0x0201, 0x0100) + QUESTION, _hdr(0x0201, 0x8180, 1, 1) + QUESTION + b"\xc0\x22\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04"),
    ("forward_pointer", 2002, _hdr(0x0202, 0x0100) + QUESTION, _hdr(0x0202, 0x8180, 1, 1) + QUESTION + b"\xc0\x30\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04"),
    ("lying_counts", 2003, _hdr(0x0203, 0x0100, 3, 40, 40, 40) + QUESTION[:9], None),
    ("label_too_long", 2004, _hdr(0x0204, 0x0100) + b"\x50" + b"a" * 80 + b"\x00\x00\x01\x00\x01", None),
    ("name_too_long", 2005, _hdr(0x0205, 0x0100) + (b"\x3f" + b"b" * 63) * 5 + b"\x00\x00\x01\x00\x01", None),
    ("short_header", 2006, b"\x12\x34\x01", None),
    ("rdlength_past_end", 2007, _hdr(0x0207, 0x0100) + QUESTION, _hdr(0x0207, 0x8180, 1, 1) + QUESTION + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\xff\xff\x01"),
    ("bad_a_length", 2008, _hdr(0x0208, 0x0100) + QUESTION, _hdr(0x0208, 0x8180, 1, 1) + QUESTION + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x03\x01\x02\x03"),
    ("orphan_garbage", 2009, None, _hdr(0x0209, 0x8180, 0xFFFF, 0xFFFF) + os.urandom(40)),
]


def _build(path: Path, flood: int) -> int:
    """Write the capture; return the number of intact transactions in it."""
    DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw, wrpcap = _scapy()
    pkts = []
    t = 1_790_000_000.0

    def add(p, dt: float = 0.001) -> None:
        nonlocal t
        t += dt
        p.time = t
        pkts.append(p)

    def udp(sport: int, dport: int, src: str, dst: str, payload: bytes) -> None:
        add(Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))

    intact = 0
    for i in range(5):  # intact transactions before, between and after the hostile ones
        q = DNS(id=0x100 + i, rd=1, qd=DNSQR(qname=f"ok{i}.example.test"))
        r = DNS(id=0x100 + i, qr=1, rd=1, ra=1, qd=DNSQR(qname=f"ok{i}.example.test"),
                an=DNSRR(rrname=f"ok{i}.example.test", rdata=f"192.0.2.{i + 1}"))
        udp(3000 + i, 53, CLIENT, SERVER, bytes(q))
        udp(53, 3000 + i, SERVER, CLIENT, bytes(r))
        intact += 1
        if i == 2:
            for _name, port, query, resp in HOSTILE:
                if query is not None:
                    udp(port, 53, CLIENT, SERVER, query)
                if resp is not None:
                    udp(53, port, SERVER, CLIENT, resp)
    # TCP: a lying length prefix (65535 announced, 10 sent, then FIN), a zero length, and
    # an intact query/response on a second connection.
    def tcp_conn(cport: int, client_data: list[bytes], server_data: list[bytes]) -> None:
        cs, ss = 1000, 5000
        add(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=cport, dport=53, flags="S", seq=cs - 1))
        add(Ether() / IP(src=SERVER, dst=CLIENT) / TCP(sport=53, dport=cport, flags="SA", seq=ss - 1, ack=cs))
        for d in client_data:
            add(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=cport, dport=53, flags="PA", seq=cs, ack=ss) / Raw(d))
            cs += len(d)
        for d in server_data:
            add(Ether() / IP(src=SERVER, dst=CLIENT) / TCP(sport=53, dport=cport, flags="PA", seq=ss, ack=cs) / Raw(d))
            ss += len(d)
        add(Ether() / IP(src=SERVER, dst=CLIENT) / TCP(sport=53, dport=cport, flags="FA", seq=ss, ack=cs))
        add(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=cport, dport=53, flags="FA", seq=cs, ack=ss + 1))

    q = _hdr(0x0301, 0x0100) + QUESTION
    tcp_conn(4001, [struct.pack("!H", len(q)) + q], [b"\xff\xff" + b"x" * 10])
    q2 = _hdr(0x0302, 0x0100) + QUESTION
    tcp_conn(4002, [struct.pack("!H", len(q2)) + q2], [b"\x00\x00\x00\x00"])
    good_q = bytes(DNS(id=0x0303, rd=1, qd=DNSQR(qname="tcp.example.test")))
    good_r = bytes(DNS(id=0x0303, qr=1, rd=1, ra=1, qd=DNSQR(qname="tcp.example.test"),
                       an=DNSRR(rrname="tcp.example.test", rdata="192.0.2.99")))
    framed = struct.pack("!H", len(good_r)) + good_r
    tcp_conn(4003, [struct.pack("!H", len(good_q)) + good_q], [framed[:7], framed[7:]])
    intact += 1
    # A flood of unanswered queries from many ports (the pending cap must hold).
    for i in range(flood):
        udp(10_000 + i, 53, CLIENT, SERVER, bytes(DNS(id=i & 0xFFFF, qd=DNSQR(qname=f"f{i}.flood.test"))))
    wrpcap(str(path), pkts)
    return intact


@pytest.fixture(scope="module")
def hostile_pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("dns-hostile") / "hostile.pcap"
    intact = _build(path, flood=2000)
    return path, intact


def test_hostile_capture_replayed_to_the_end(hostile_pcap: tuple[Path, int]) -> None:
    """Every intact transaction is reported OK; every bad message carries a note; the pending
    table never exceeds its cap during the flood."""
    path, intact = hostile_pcap
    events, an = replay(path, max_pending_transactions=500)
    ok = [e for e in events if e.get("status") == "OK" and not e.get("error.message")]
    assert len(ok) == intact
    assert {e.get("dns.question.name") for e in ok} >= {f"ok{i}.example.test" for i in range(5)} | {"tcp.example.test"}
    by_port = {e.get("client.port"): e for e in events}
    for name, port, _q, _r in HOSTILE:
        if name == "short_header":
            continue  # fewer than 12 bytes: nothing to report but a counter
        ev = by_port.get(port)
        assert ev is not None, name
        msgs = ev.get("error.message")
        assert msgs, name
        text = msgs if isinstance(msgs, str) else " | ".join(msgs)
        assert "could not be decoded as DNS" in text or notes.ORPHANED_RESPONSE in text, (name, text)
    assert notes.response(notes.INCOMPLETE) == by_port[4001].get("error.message")
    assert notes.response(notes.ZERO_LENGTH) == by_port[4002].get("error.message")
    stats = an.stats()
    assert stats["evicted"] >= 2000 - 500 and stats["undecodable"] == 1 and stats["pending"] == 0
    assert stats["malformed"] >= 7


def test_hostile_capture_through_the_agent(hostile_pcap: tuple[Path, int], tmp_path: Path) -> None:
    """The whole agent (pybeat run -I) processes the hostile capture: exit 0, no traceback,
    the intact transactions in the file output."""
    path, intact = hostile_pcap
    out = tmp_path / "out"
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(
        "packetbeat.protocols:\n"
        "  - type: dns\n"
        "    ports: [53]\n"
        "    max_pending_transactions: 500\n"
        "output.file:\n"
        f"  path: {out}\n"
        "  filename: events\n"
    )
    cmd = [sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(path), "-t", "-e",
           "--strict.perms", "false", "--path.data", str(tmp_path / "data"), "--path.logs", str(tmp_path / "logs")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [json.loads(x) for f in sorted(out.glob("events*")) for x in f.read_text().splitlines() if x.strip()]
    dns_ok = [d for d in lines if d.get("type") == "dns" and d.get("status") == "OK" and "error" not in d]
    assert len(dns_ok) == intact
