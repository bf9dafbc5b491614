"""Helpers for the DNS plugin's tests: build an analyzer, replay a capture, check fields.

Built with ``pybeat.testing``: the replay is exactly what the agent does (capture -> Decoder ->
analyzer, the agent's context and envelope), so the tests exercise the real decoding layer,
not a shortcut.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from pybeat.api import Event, Packet, TcpConnection
from pybeat.protocols.dns.analyzer import DnsAnalyzer
from pybeat.protocols.dns.plugin import plugin
from pybeat.testing import ProtocolHarness

SECOND = 1_000_000_000

FLAG_KEYS = {
    "aa": "authoritative", "tc": "truncated_response", "rd": "recursion_desired",
    "ra": "recursion_available", "ad": "authentic_data", "cd": "checking_disabled",
}


def harness(**cfg: Any) -> ProtocolHarness:
    """The DNS plugin as the agent builds it (events as dicts: ``events_may_share`` off)."""
    return ProtocolHarness(plugin, {"ports": cfg.pop("ports", [53]), **cfg}, share_events=False)


def make(**cfg: Any) -> tuple[DnsAnalyzer, list[Event]]:
    h = harness(**cfg)
    an = h.analyzer
    assert isinstance(an, DnsAnalyzer)
    return an, h.events


def replay(path: Path | str, ports: Iterable[int] = (53,), **cfg: Any) -> tuple[list[Event], DnsAnalyzer]:
    h = harness(ports=list(ports), **cfg)
    h.pcap(path)
    an = h.analyzer
    assert isinstance(an, DnsAnalyzer)
    assert an.stats()["internal_errors"] == 0, "the DNS analyzer hit a bug (internal_errors)"
    return h.events, an


def udp(an: DnsAnalyzer, ts: int, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
    an.on_udp(Packet(ts, src, dst, sport, dport, "udp", 6 if ":" in src else 4), payload)


def tcp_conn(client: str = "10.0.0.1", cport: int = 34898, server: str = "192.168.0.1", sport: int = 53) -> TcpConnection:
    return TcpConnection(client, cport, server, sport, 4)


def get(event: Event, dotted: str, default: Any = None) -> Any:
    return event.get(dotted, default)


def check_expected(event: Event, expected: dict[str, Any]) -> tuple[int, list[str]]:
    """Compare an event with a vector's ``expected`` block; returns (fields checked, failures).

    Conventions of the vector files: ``null`` means absent (or, for a list, empty: Packetbeat's
    tests assert nil on a list it writes as ``[]``), ``"present..."`` means present,
    ``flags_true`` lists header flags that must be set,
    ``*.data_contains`` lists values that must appear among the records' ``data``, and free
    text (``not asserted ...``, ``same ... as ...``) is not a check.
    """
    checked, failures = 0, []
    for key, want in expected.items():
        if key in ("assertRequest", "assertMapStrData"):
            continue
        if isinstance(want, str) and (want.startswith("not asserted") or want.startswith("same ")):
            continue
        if key == "flags_true":
            # Only the listed flags are asserted (zoneAxfrTCP lists none although RA is set).
            for short in want:
                checked += 1
                got = get(event, f"dns.flags.{FLAG_KEYS[short]}")
                if got is not True:
                    failures.append(f"dns.flags.{FLAG_KEYS[short]}: {got!r} (flags_true={want})")
            continue
        checked += 1
        if key.endswith(".data_contains"):
            section = key[: -len(".data_contains")]
            datas = [r.get("data") for r in (get(event, section) or [])]
            missing = [w for w in want if w not in datas]
            if missing:
                failures.append(f"{section}: missing data {missing}, have {datas}")
            continue
        got = get(event, key)
        if want is None:
            # Go's nil: Packetbeat writes a nil list (no record could be rendered) as [].
            if got is not None and got != []:
                failures.append(f"{key}: expected absent, got {got!r}")
        elif isinstance(want, str) and want.startswith("present"):
            if got is None:
                failures.append(f"{key}: expected present")
        elif got != want:
            failures.append(f"{key}: expected {want!r}, got {got!r}")
    return checked, failures


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def truth_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
