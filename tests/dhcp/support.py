"""Helpers for the DHCP tests: run payloads or a pcap through the analyzers as the agent does
(``pybeat.testing``: the agent's decoder, context and envelope), and read tshark's decode of
the same packets."""

from __future__ import annotations

import csv
import io
import subprocess
from collections import Counter
from pathlib import Path

from pybeat.api import Event, Packet
from pybeat.protocols.dhcpv4.plugin import plugin as v4_plugin
from pybeat.protocols.dhcpv6.plugin import plugin as v6_plugin
from pybeat.testing import ProtocolHarness

S = 1_000_000_000


def make_v4(**config):
    h = ProtocolHarness(v4_plugin, config)
    return h.analyzer, h.events


def make_v6(**config):
    h = ProtocolHarness(v6_plugin, config)
    return h.analyzer, h.events


def run_pcap(path: Path | str, v4_config: dict | None = None, v6_config: dict | None = None):
    """Both analyzers on their default ports; returns (v4 analyzer, v4 events, v6 analyzer, v6 events)."""
    h = ProtocolHarness(v4_plugin, v4_config)
    h.add(v6_plugin, v6_config)
    h.pcap(path)
    return h.analyzers["dhcpv4"], h.events_of("dhcpv4"), h.analyzers["dhcpv6"], h.events_of("dhcpv6")


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
