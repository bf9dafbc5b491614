"""The shared DHCP capture: DHCPv4 and DHCPv6 messages by type agree with tshark's decode."""

from __future__ import annotations

from collections import Counter

from tests.conftest import PCAPS, need, need_tool
from tests.dhcp.support import csv_rows, messages_from_events, messages_from_rows, run_pcap, tshark_rows


def _pcap():
    path = PCAPS / "dhcp.pcap"
    need(path.is_file(), f"shared capture {path}")
    return path


def test_messages_match_truth_csv():
    """23 DHCPv4 and 8 DHCPv6 messages, each with the type, xid and address of the truth CSV;
    the REPLY quoted inside an ICMPv6 error is not a message."""
    a4, e4, a6, e6 = run_pcap(_pcap())
    want4, want6 = messages_from_rows(csv_rows(PCAPS / "truth" / "dhcp.dhcp.csv"))
    got4, got6 = messages_from_events(e4, e6)
    assert got4 == want4 and got6 == want6
    assert Counter(t for (t, _, _), n in got4.items() for _ in range(n)) == Counter(
        {"request": 6, "ack": 5, "discover": 4, "offer": 3, "release": 3, "inform": 1, "nak": 1}
    )
    assert Counter(t for (t, _, _), n in got6.items() for _ in range(n)) == Counter(
        {"reply": 3, "solicit": 1, "advertise": 1, "request": 1, "release": 1, "information-request": 1}
    )
    assert a4.stats()["parse_failures"] == 0 and a6.stats()["parse_failures"] == 0


def test_messages_match_tshark():
    """Running tshark on the capture gives the same messages."""
    tshark = need_tool("tshark")
    path = _pcap()
    _, e4, _, e6 = run_pcap(path)
    assert messages_from_events(e4, e6) == messages_from_rows(tshark_rows(tshark, path))


def test_dhcpv4_fields_and_exchanges():
    """Host names, vendor class, NAK, INFORM and the exchanges an analyst follows."""
    a4, e4, _, _ = run_pcap(_pcap())
    f = [e.fields for e in e4]
    first = f[0]["dhcpv4"]
    assert first["client_mac"] == "02:99:03:00:00:11" and first["option"]["hostname"] == "labclient01"
    assert f[0]["client"]["ip"] == "0.0.0.0" and f[0]["server"]["ip"] == "255.255.255.255"
    offer = f[2]
    assert offer["dhcpv4"]["option"]["message_type"] == "offer"
    assert offer["client"]["ip"] == "10.99.3.100" and offer["server"]["ip"] == "10.99.3.1"
    assert "10.99.3.100" in offer["related"]["ip"]
    nak = next(x for x in f if x["dhcpv4"]["option"]["message_type"] == "nak")
    assert nak["dhcpv4"]["exchange"]["messages"] == ["request", "nak"]
    printer = [x for x in f if x["dhcpv4"].get("client_mac") == "02:99:03:00:00:44"]
    assert printer[0]["dhcpv4"]["option"]["class_identifier"] == "udhcp-lab-1.35"
    assert printer[0]["dhcpv4"]["option"]["hostname"] == "printer01"
    inform = next(x for x in f if x["dhcpv4"]["option"]["message_type"] == "inform")
    assert inform["dhcpv4"]["client_ip"] == "10.99.3.50"
    # DORA of the first client: the retransmitted DISCOVER, OFFER, REQUEST, ACK share one exchange
    ex = [x["dhcpv4"]["exchange"] for x in f[:5]]
    assert len({e["id"] for e in ex}) == 1 and ex[-1]["messages"] == ["discover", "discover", "offer", "request", "ack"]
    stats = a4.stats()
    # dhcping's REQUEST for 10.99.3.50 is never answered (MANIFEST.md)
    assert stats["unmatched_requests"] == 1 and stats["unmatched_responses"] == 0
    assert all("error" not in x for x in f)


def test_dhcpv6_fields():
    """DUIDs, the leased address and DNS options of the DHCPv6 exchanges."""
    _, _, a6, e6 = run_pcap(_pcap())
    f = [e.fields for e in e6]
    reply = f[3]
    d = reply["dhcpv6"]
    assert d["message_type"] == "reply" and d["transaction_id"] == "0x3634ae"
    assert d["client_id"]["link_layer_address"] == "02:99:03:00:00:44" and d["client_id"]["type"] == "LLT"
    assert d["server_id"]["link_layer_address"] == "4a:f8:b5:ca:7d:d7"
    assert d["ia_na"][0]["addresses"][0]["ip"] == "fd00:99:3::17bd"
    assert d["option"]["dns_servers"] == ["fd00:99:3::1"]
    assert "fd00:99:3::17bd" in reply["related"]["ip"]
    assert reply["client"]["ip"] == "fe80::99:3ff:fe00:44" and reply["server"]["port"] == 547
    assert reply["network"]["protocol"] == "dhcpv6" and reply["network"]["type"] == "ipv6"
    assert [x["dhcpv6"]["exchange"]["sequence"] for x in f] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert a6.stats()["unmatched_requests"] == 0


def test_shard_keys_tie_exchanges_together():
    """shard_key is the same for every message of one exchange (for runs split by flow)."""
    from pybeat.capture.pcapfile import PcapFileSource
    from pybeat.decode import Decoder

    a4, e4, a6, e6 = run_pcap(_pcap())
    keys: dict[str, set[int]] = {}

    class Keys:
        def on_udp(self, p, payload):
            analyzer = a6 if p.ip_version == 6 else a4
            xid = payload[1:4].hex() if p.ip_version == 6 else payload[4:8].hex()
            keys.setdefault(xid, set()).add(analyzer.shard_key(payload))

        def expire(self, now):
            pass

        def flush(self, now):
            pass

    k = Keys()
    dec = Decoder(udp_ports={67: k, 68: k, 546: k, 547: k})  # type: ignore[dict-item]
    for ts, link, frame in PcapFileSource(str(_pcap())):
        dec.decode(ts, link, frame)
    assert len(keys) == 8 + 4 and all(len(v) == 1 and 0 not in v for v in keys.values())


def test_two_workers_keep_each_exchange_in_one_process(tmp_path):
    """With the run split across 2 processes, every DHCPv4 exchange is counted whole in one."""
    import json
    import subprocess
    import sys

    from tests.conftest import PCAPS

    cfg = tmp_path / "w.yml"
    cfg.write_text("packetbeat.protocols: [{type: dhcpv4, ports: [67, 68]}]\n"
                   "packetbeat.workers: 2\noutput.file: {path: out, filename: d}\n")
    r = subprocess.run([sys.executable, "-m", "pybeat.cli", "run", "-c", str(cfg), "-I", str(PCAPS / "dhcp.pcap"), "-t"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for f in (tmp_path / "out").iterdir() for line in f.read_text().splitlines()]
    assert len(docs) == 23
    by_exchange: dict[str, list[dict]] = {}
    for d in docs:
        by_exchange.setdefault(d["dhcpv4"]["exchange"]["id"], []).append(d)
    for exchange in by_exchange.values():
        # "messages" is the count seen so far in the exchange: whole exchanges count 1..n in one process.
        seqs = sorted(d["dhcpv4"]["exchange"]["sequence"] for d in exchange)
        assert seqs[: len(set(seqs))] == list(range(1, len(set(seqs)) + 1)), exchange
