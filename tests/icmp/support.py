"""Helpers for the ICMP tests: run frames or a pcap through the analyzer as the agent does
(``pybeat.testing``: the agent's decoder, context and envelope)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pybeat.api import Event, Packet
from pybeat.protocols.icmp.plugin import plugin as icmp_plugin
from pybeat.testing import ProtocolHarness


def harness(**config) -> ProtocolHarness:
    return ProtocolHarness(icmp_plugin, config)


def make(**config):
    h = harness(**config)
    return h.analyzer, h.events


def run_pcap(path: Path | str, **config):
    h = harness(**config)
    h.pcap(path)
    return h.analyzer, h.events


def run_frames(frames: Iterable[tuple[int, bytes]], link: int = 1, **config):
    h = harness(**config)
    h.frames(frames, link)
    h.flush()
    return h.analyzer, h.events


def pkt(src: str, dst: str, ts: int = 1_000_000_000, v6: bool = False) -> Packet:
    return Packet(ts, src, dst, 0, 0, "ipv6-icmp" if v6 else "icmp", 6 if v6 else 4)


def summary(e: Event) -> tuple:
    """(version, request type, response type, status) of one event."""
    icmp = e.fields["icmp"]
    return (
        icmp["version"],
        icmp.get("request", {}).get("type"),
        icmp.get("response", {}).get("type"),
        e.fields["status"],
    )


# -- tshark as the oracle -----------------------------------------------------------------------
import csv
import io
import subprocess
from collections import Counter

TSHARK_FIELDS = [
    "frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "icmp.type", "icmp.code",
    "icmpv6.type", "icmpv6.code", "icmp.ident", "icmp.seq", "icmpv6.echo.identifier",
    "icmpv6.echo.sequence_number",
]
V4_REQ, V4_REP = {8: 0, 13: 14, 15: 16, 17: 18}, {0, 14, 16, 18}


def tshark_rows(tshark: str, path: Path | str) -> list[dict[str, str]]:
    """One row per ICMP/ICMPv6 frame, outer header fields only (first occurrence)."""
    cmd = [tshark, "-n", "-r", str(path), "-Y", "icmp or icmpv6", "-T", "fields", "-E", "header=y",
           "-E", "separator=,", "-E", "quote=d", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    return list(csv.DictReader(io.StringIO(out)))


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _int(text: str) -> int:
    return int(text.split(",")[0], 0)


def expected_from_rows(rows: list[dict[str, str]]) -> dict[str, object]:
    """Pairs, unanswered requests and the other messages by (version, type, code), from tshark's
    decode: pairing on (version, src, dst, id, seq) with the reply's addresses reversed."""
    pending: dict[tuple, int] = {}
    pairs: Counter = Counter()
    unanswered: Counter = Counter()
    orphans: Counter = Counter()
    others: Counter = Counter()
    for row in rows:
        v6 = bool(row["icmpv6.type"])
        version = 6 if v6 else 4
        t = _int(row["icmpv6.type"] if v6 else row["icmp.type"])
        code = _int(row["icmpv6.code"] if v6 else row["icmp.code"])
        src = row["ipv6.src"] if v6 else row["ip.src"]
        dst = row["ipv6.dst"] if v6 else row["ip.dst"]
        requests, replies = ({128: 129}, {129}) if v6 else (V4_REQ, V4_REP)
        if t in requests or t in replies:
            ident = _int(row["icmpv6.echo.identifier"] if v6 else row["icmp.ident"])
            seq = _int(row["icmpv6.echo.sequence_number"] if v6 else row["icmp.seq"])
            if t in requests:
                key = (version, src, dst, ident, seq)
                if key in pending:
                    unanswered[(version, pending.pop(key))] += 1
                pending[key] = t
            else:
                req = pending.pop((version, dst, src, ident, seq), None)
                if req is None:
                    orphans[(version, t)] += 1
                else:
                    pairs[(version, req, t)] += 1
        else:
            others[(version, t, code)] += 1
    for (version, *_), t in pending.items():
        unanswered[(version, t)] += 1
    return {"pairs": pairs, "unanswered": unanswered, "orphans": orphans, "others": others}


def expected_from_events(events: list[Event]) -> dict[str, object]:
    pairs: Counter = Counter()
    unanswered: Counter = Counter()
    orphans: Counter = Counter()
    others: Counter = Counter()
    for e in events:
        icmp = e.fields["icmp"]
        v = icmp["version"]
        req, rep = icmp.get("request"), icmp.get("response")
        if req and rep:
            pairs[(v, req["type"], rep["type"])] += 1
        elif rep:
            orphans[(v, rep["type"])] += 1
        elif req["type"] in ({128} if v == 6 else V4_REQ):
            unanswered[(v, req["type"])] += 1
        else:
            others[(v, req["type"], req["code"])] += 1
    return {"pairs": pairs, "unanswered": unanswered, "orphans": orphans, "others": others}


def tshark_quotes(tshark: str, path: Path | str) -> dict[str, tuple]:
    """Per ICMP error frame time: (inner src, inner dst, inner sport, inner dport) as tshark reads the quote."""
    cmd = [tshark, "-n", "-r", str(path), "-Y", "icmp.type in {3,4,5,11,12} or icmpv6.type in {1,2,3,4}",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=l", "-e", "frame.time_epoch", "-e", "ip.src",
           "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "udp.srcport", "-e", "udp.dstport",
           "-e", "tcp.srcport", "-e", "tcp.dstport"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    quotes = {}
    for line in out.splitlines():
        ts, s4, d4, s6, d6, us, ud, ts_, td = line.split("|")
        sport = us or ts_
        dport = ud or td
        quotes[ts] = (s6 or s4, d6 or d4, int(sport) if sport else None, int(dport) if dport else None)
    return quotes
