"""Helpers for the DHCP tests: run payloads or a pcap through the analyzers as the agent does,
and read tshark's decode of the same packets."""

from __future__ import annotations

import csv
import io
import subprocess
from collections import Counter
from pathlib import Path

from pybeat.api import BeatInfo, Event, Packet, ProtocolContext
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from pybeat.envelope import Envelope
from pybeat.protocols.dhcpv4.plugin import plugin as v4_plugin
from pybeat.protocols.dhcpv6.plugin import plugin as v6_plugin

S = 1_000_000_000


def make_v4(**config):
    events: list[Event] = []
    ctx = ProtocolContext(emit=events.append, beat=BeatInfo(), protocol_name="dhcpv4", envelope=Envelope())
    return v4_plugin.create(v4_plugin.config_model(type="dhcpv4", **config), ctx), events


def make_v6(**config):
    events: list[Event] = []
    ctx = ProtocolContext(emit=events.append, beat=BeatInfo(), protocol_name="dhcpv6", envelope=Envelope())
    return v6_plugin.create(v6_plugin.config_model(type="dhcpv6", **config), ctx), events


def run_pcap(path: Path | str, v4_config: dict | None = None, v6_config: dict | None = None):
    """Both analyzers on their default ports; returns (v4 analyzer, v4 events, v6 analyzer, v6 events)."""
    a4, e4 = make_v4(**(v4_config or {}))
    a6, e6 = make_v6(**(v6_config or {}))
    dec = Decoder(udp_ports={67: a4, 68: a4, 546: a6, 547: a6})
    for ts, link, frame in PcapFileSource(str(path)):
        dec.decode(ts, link, frame)
    dec.flush()
    return a4, e4, a6, e6


def udp(src: str, sport: int, dst: str, dport: int, ts: int = S) -> Packet:
    return Packet(ts, src, dst, sport, dport, "udp", 6 if ":" in src else 4)


TSHARK_FIELDS = [
    "frame.number", "icmp.type", "icmpv6.type", "dhcp.option.dhcp", "dhcp.id", "dhcp.ip.your",
    "dhcp.hw.mac_addr", "dhcpv6.msgtype", "dhcpv6.xid", "dhcpv6.iaaddr.ip",
]


def tshark_rows(tshark: str, path: Path | str) -> list[dict[str, str]]:
    cmd = [tshark, "-n", "-r", str(path), "-Y", "dhcp or dhcpv6", "-T", "fields", "-E", "header=y",
           "-E", "separator=,", "-E", "quote=d", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    return list(csv.DictReader(io.StringIO(out)))


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


V4_NAMES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}
V6_NAMES = {1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
            8: "release", 9: "decline", 10: "reconfigure", 11: "information-request", 12: "relay-forw",
            13: "relay-repl"}


def messages_from_rows(rows: list[dict[str, str]]) -> tuple[Counter, Counter]:
    """(DHCPv4 messages, DHCPv6 messages) as multisets of (type, xid, leased address); rows that are
    copies quoted inside an ICMP error are not messages."""
    v4: Counter = Counter()
    v6: Counter = Counter()
    for row in rows:
        if row.get("icmp.type") or row.get("icmpv6.type"):
            continue
        if row.get("dhcp.id"):
            your = row.get("dhcp.ip.your") or "0.0.0.0"
            mtype = V4_NAMES.get(int(row["dhcp.option.dhcp"]), "?") if row.get("dhcp.option.dhcp") else "bootp"
            v4[(mtype, int(row["dhcp.id"], 16), your if your != "0.0.0.0" else None)] += 1
        elif row.get("dhcpv6.msgtype"):
            mtype = V6_NAMES.get(int(row["dhcpv6.msgtype"]), "?")
            v6[(mtype, int(row["dhcpv6.xid"], 16), row.get("dhcpv6.iaaddr.ip") or None)] += 1
    return v4, v6


def messages_from_events(e4: list[Event], e6: list[Event]) -> tuple[Counter, Counter]:
    v4: Counter = Counter()
    v6: Counter = Counter()
    for e in e4:
        d = e.fields["dhcpv4"]
        v4[(d.get("option", {}).get("message_type", "bootp"), int(d["transaction_id"], 16), d.get("assigned_ip"))] += 1
    for e in e6:
        d = outer = e.fields["dhcpv6"]
        while "relayed" in d:  # tshark reports the relay's type with the relayed message's xid
            d = d["relayed"]
        addrs = [a["ip"] for ia in d.get("ia_na", []) for a in ia.get("addresses", [])]
        v6[(outer["message_type"], int(d["transaction_id"], 16), addrs[0] if addrs else None)] += 1
    return v4, v6
