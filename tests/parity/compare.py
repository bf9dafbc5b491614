"""Elastic Packetbeat 7.17 as an oracle for pybeat's DNS events.

Runs Packetbeat (built by ``tests/tooling/packetbeat/setup.sh``) and pybeat on one capture with
the same DNS settings and file output, pairs their transactions (every Packetbeat transaction
must have a pybeat twin) and compares every field Packetbeat writes, leaf by leaf. The few
known differences are the rules of ``EXCEPTIONS`` below, each with its reason; everything else
counts as agreement or disagreement.

As a script, on any capture (pcap or pcapng), printing the agreement of each field:

    python3 tests/parity/compare.py CAPTURE [CAPTURE ...] [--ports 53,5353] [--show 5]

It exits 1 when a capture has a Packetbeat transaction without a twin or agrees on fewer than
99.9 % of the fields. Packetbeat runs with its metadata processors off (``processors: []``; no
``add_cloud_metadata`` or ``add_docker_metadata``), so it never probes a metadata address.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parents[2]
PACKETBEAT = REPO / "tests" / "tooling" / "packetbeat" / ".build" / "packetbeat"
SETUP = "tests/tooling/packetbeat/setup.sh"
#: the share of compared fields that must agree on every capture
THRESHOLD = 0.999

#: Packetbeat's DNS analyzer gives up on a query after this much *wall* time (its cache janitor);
#: with -t a capture is read in far less, so nothing expires early, and the janitor publishes
#: the queries never answered within SHUTDOWN, which is its wait before it stops.
PB_TRANSACTION_TIMEOUT = "2s"
PB_SHUTDOWN_TIMEOUT = "5s"
#: So read with -t, Packetbeat pairs a response however long after its query it came in packet
#: time; pybeat times out on packet time (docs/dns.md), so it gets a timeout beyond any capture's
#: gaps here. Queries never answered are published at the end by both.
PY_TRANSACTION_TIMEOUT = "24h"
#: DNS ports of both agents: Packetbeat's stock 53 and mDNS's 5353, so mDNS captures are compared
#: too. Packetbeat pairs port-5353 traffic as unicast DNS; pybeat does that with ``mdns: false``
#: (its default decodes mDNS as mDNS, a deliberate difference: docs/dns.md), set here for pybeat.
PORTS = [53, 5353]

_DNS = {
    "include_authorities": True,
    "include_additionals": True,
    "send_request": True,
    "send_response": True,
}


def packetbeat_binary() -> Path | None:
    """The Packetbeat 7.17.29 that setup.sh built, or None."""
    return PACKETBEAT if os.access(PACKETBEAT, os.X_OK) else None


# -- running both agents ------------------------------------------------------------------------


def _config(out: Path, filename: str, ports: list[int], extra_dns: dict[str, Any]) -> str:
    dns = {"type": "dns", "ports": ports, **_DNS, **extra_dns}
    doc = {
        "packetbeat.protocols": [dns],
        "processors": [],  # no add_cloud_metadata / add_docker_metadata: nothing leaves the machine
        "output.file": {
            "path": str(out),
            "filename": filename,
            "rotate_every_kb": 4 * 1024 * 1024,  # one file: rotation must not remove events
            "number_of_files": 2,
        },
    }
    return json.dumps(doc, indent=1)  # JSON is YAML


def _read_ndjson(files: Iterable[Path]) -> list[dict[str, Any]]:
    events = []
    for f in sorted(files):
        with f.open("rb") as fh:
            events.extend(json.loads(line) for line in fh if line.strip())
    return events


class PacketbeatCannotRead(RuntimeError):
    """Packetbeat refused the capture (e.g. Linux cooked v2, which 7.17 does not decode)."""


def run_packetbeat(capture: Path, work: Path, ports: list[int], binary: Path | None = None,
                   timeout: float = 600) -> list[dict[str, Any]]:
    """Packetbeat's events for ``capture`` (``-I capture -t``; file output)."""
    binary = binary or packetbeat_binary()
    if binary is None:
        raise FileNotFoundError(f"Packetbeat is not built: run {SETUP}")
    home = work / "packetbeat"
    out = home / "out"
    home.mkdir(parents=True)
    cfg = home / "packetbeat.yml"
    cfg.write_text(_config(out, "packetbeat", ports, {"transaction_timeout": PB_TRANSACTION_TIMEOUT}))
    cmd = [str(binary), "-c", str(cfg), "--strict.perms=false",
           "--path.home", str(home), "--path.data", str(home / "data"), "--path.logs", str(home / "logs"),
           "-E", f"packetbeat.shutdown_timeout={PB_SHUTDOWN_TIMEOUT}",
           "-I", str(capture), "-t"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        if "Unsupported link type" in proc.stderr:
            raise PacketbeatCannotRead(proc.stderr.strip().splitlines()[-1])
        raise RuntimeError(f"packetbeat exited {proc.returncode}: {proc.stderr[-2000:]}")
    return _read_ndjson(out.glob("packetbeat*"))


def _pybeat_command() -> list[str]:
    """pybeat from this interpreter, else the ``pybeat`` command on PATH (an activated venv)."""
    if importlib.util.find_spec("pybeat") is not None:
        return [sys.executable, "-m", "pybeat.cli"]
    found = shutil.which("pybeat")
    if found is None:
        raise FileNotFoundError("pybeat is not installed for this Python: pip install -e . (in a venv) first")
    return [found]


def run_pybeat(capture: Path, work: Path, ports: list[int], timeout: float = 600) -> list[dict[str, Any]]:
    """pybeat's events for ``capture`` with the same DNS settings (``-I capture -t``)."""
    home = work / "pybeat"
    out = home / "out"
    home.mkdir(parents=True)
    cfg = home / "pybeat.yml"
    cfg.write_text(_config(out, "pybeat", ports, {"transaction_timeout": PY_TRANSACTION_TIMEOUT, "mdns": False}))
    cmd = _pybeat_command() + ["run", "-c", str(cfg), "--path.data", str(home / "data"),
                                "--path.logs", str(home / "logs"), "-I", str(capture), "-t"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=home)
    if proc.returncode != 0:
        raise RuntimeError(f"pybeat exited {proc.returncode}: {proc.stderr[-2000:]}")
    return _read_ndjson(out.glob("*.ndjson"))


# -- flattening and pairing ---------------------------------------------------------------------


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path; a list of objects is indexed (``dns.answers.0.data``), a list of
    scalars is one value."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    flat.update(flatten(v, f"{path}.{i}."))
                else:
                    flat[f"{path}.{i}"] = v
        else:
            flat[path] = value
    return flat


def generic(path: str) -> str:
    """A field's name without list indices: ``dns.answers.*.data``."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", path)


def twin_key(flat: dict[str, Any]) -> tuple:
    """What a transaction is in both agents: its first packet's time, addresses, ports and DNS id."""
    return (flat.get("@timestamp"), flat.get("network.transport"), flat.get("source.ip"),
            flat.get("source.port"), flat.get("destination.ip"), flat.get("destination.port"),
            flat.get("dns.id"))


# -- the known differences ----------------------------------------------------------------------


@dataclass
class Pair:
    pb: dict[str, Any]  # flattened Packetbeat event
    py: dict[str, Any]  # flattened pybeat event
    capture: Path


@dataclass
class Exception_:
    name: str
    reason: str
    #: (pair, path) -> True when this rule explains the field's difference (or leaves it out)
    applies: Callable[[Pair, str], bool]
    #: True: the field is never compared; False: only a differing value is excused
    skip_always: bool = False
    used: Counter = field(default_factory=Counter)


#: the record types Packetbeat 7.17's rrToMapStr renders; every other type's data is written as
#: escaped raw bytes (its default case), in dns.*.data and in the request/response strings
_PB_RENDERED_TYPES = {"A", "AAAA", "CNAME", "DNSKEY", "DS", "MX", "NS", "NSEC", "NSEC3", "NSEC3PARAM",
                      "OPT", "PTR", "RRSIG", "SOA", "SRV", "TXT"}
_RECORD_DATA = re.compile(r"^(dns\.(?:answers|authorities|additionals)\.\d+)\.data$")
#: EDNS options miekg/dns 1.1.41 does not decode land in dns.opt.local as "code:0xhex"
_PB_LOCAL_OPTIONS = {11: "tcp_keepalive", 12: "padding", 15: "ede"}
_SUFFIX_FIELDS = {"dns.question.registered_domain", "dns.question.etld_plus_one",
                  "dns.question.top_level_domain", "dns.question.subdomain"}
_NO_RESPONSE = "No response to this query was received"
_ORPHAN = "Response: received without an associated Query"


def _notes(flat: dict[str, Any]) -> list[str]:
    notes = flat.get("error.message")
    return notes if isinstance(notes, list) else [notes] if notes else []


def _version_field(pair: Pair, path: str) -> bool:
    return path.split(".", 1)[0] in ("agent", "ecs", "host", "@metadata")


def _category(pair: Pair, path: str) -> bool:
    if path != "event.category":
        return False
    pb = [c for c in pair.pb.get(path) or [] if c != "network_traffic"]
    return pb == pair.py.get(path)


def _raw_rendered_type(pair: Pair, path: str) -> bool:
    m = _RECORD_DATA.match(path)
    if m:
        return pair.pb.get(m.group(1) + ".type") not in _PB_RENDERED_TYPES
    if path in ("request", "response"):
        return any(k.endswith(".type") and k.startswith(("dns.answers.", "dns.authorities.", "dns.additionals."))
                   and v not in _PB_RENDERED_TYPES for k, v in pair.pb.items())
    return False


def _unknown_edns_option(pair: Pair, path: str) -> bool:
    if path != "dns.opt.local":
        return False
    m = re.match(r"^(\d+):0x", str(pair.pb.get(path)))
    return bool(m) and f"dns.opt.{_PB_LOCAL_OPTIONS.get(int(m.group(1)))}" in pair.py


def _suffix_case(pair: Pair, path: str) -> bool:
    """For a name with upper case: the derived domain fields are lower-case in pybeat, and all
    four differ where the suffix match itself differed (the registered domains differ even
    without case). A subdomain differing in case alone is a difference: the wire's case is kept."""
    name = pair.pb.get("dns.question.name") or ""
    if path not in _SUFFIX_FIELDS or name == name.lower():
        return False
    reg = "dns.question.registered_domain"
    if str(pair.pb.get(reg) or "").lower() != str(pair.py.get(reg) or "").lower():
        return True
    return path != "dns.question.subdomain" and str(pair.pb.get(path) or "").lower() == pair.py.get(path)


def _unseen_half(pair: Pair) -> tuple | None:
    """When Packetbeat saw only one half of a transaction pybeat paired: (src, dst, DNS id) of
    the half it missed, else None. Packetbeat publishes the query alone as unanswered, or the
    response alone as an orphan."""
    pb, py = pair.pb, pair.py
    if pb.get("dns.type") == "query" and py.get("dns.type") == "answer" and _NO_RESPONSE in _notes(pb):
        return (pb.get("destination.ip"), pb.get("source.ip"), pb.get("dns.id"))  # the response
    if _ORPHAN in _notes(pb) and "source.bytes" in py and "source.bytes" not in pb:
        return (pb.get("source.ip"), pb.get("destination.ip"), pb.get("dns.id"))  # the query
    return None


def _fragmented_half(pair: Pair, path: str) -> bool:
    half = _unseen_half(pair)
    return half is not None and half in fragmented_datagrams(pair.capture)


def _header_only_response(pair: Pair, path: str) -> bool:
    half = _unseen_half(pair)
    return (half is not None and half[0] == pair.pb.get("destination.ip")
            and pair.py.get("destination.bytes") == 12)


#: Every known difference between Packetbeat 7.17.29 and pybeat, in one place. A rule either
#: leaves a field out of the comparison (skip_always) or excuses a differing value; nothing
#: else is excused.
EXCEPTIONS = [
    Exception_("version", "agent.*, ecs.*, host.*, @metadata.*: each agent's own identity and ECS version",
               _version_field, skip_always=True),
    Exception_("event.category", "Packetbeat 7.x adds 'network_traffic' to event.category (8.x does not); "
               "the rest of the list must agree", _category),
    Exception_("raw-rendered record type", "Packetbeat 7.17 writes the data of record types its rrToMapStr has no "
               "case for (CAA, NAPTR, HINFO, SVCB, HTTPS, ...) as escaped raw bytes; pybeat writes their "
               "presentation form (docs/dns.md, 'Readable modern records')", _raw_rendered_type),
    Exception_("EDNS option unknown to miekg 1.1.41", "TCP keepalive (11), padding (12) and extended DNS "
               "error (15) options are dns.opt.local '<code>:0x<hex>' in Packetbeat 7.17; pybeat names them "
               "(dns.opt.tcp_keepalive, padding, ede)", _unknown_edns_option),
    Exception_("suffix case", "Packetbeat matches the public suffix list case-sensitively; pybeat matches "
               "without case and writes the derived registered_domain, etld_plus_one and top_level_domain "
               "in lower case (deliberate fix, elastic/beats#36535; docs/dns.md): only for names with upper case; "
               "subdomain only where the registered domain was found differently",
               _suffix_case),
    Exception_("IP fragments", "Packetbeat does not reassemble IP fragments: a query or answer that came "
               "in fragments is missing there (query unanswered, or answer orphaned); pybeat pairs them "
               "(deliberate fix). Only when that half was fragmented in the capture", _fragmented_half),
    Exception_("header-only response", "Packetbeat drops every message of 12 bytes or less; pybeat pairs a "
               "header-only response (FORMERR to a malformed query) with its query (docs/dns.md)",
               _header_only_response),
]


_FRAGMENTS: dict[Path, set[tuple]] = {}


def fragmented_datagrams(capture: Path) -> set[tuple]:
    """(src ip, dst ip, DNS id) of every UDP datagram of ``capture`` that came in IP fragments,
    read from its first fragment (scapy; only called when a pair needs it)."""
    if capture not in _FRAGMENTS:
        from scapy.layers.inet import IP, UDP
        from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
        from scapy.utils import PcapReader

        found = set()
        with PcapReader(str(capture)) as reader:
            for pkt in reader:
                first = None
                if IP in pkt and pkt[IP].flags.MF and pkt[IP].frag == 0:
                    first, src, dst = pkt[IP].payload, pkt[IP].src, pkt[IP].dst
                elif IPv6ExtHdrFragment in pkt and pkt[IPv6ExtHdrFragment].m and pkt[IPv6ExtHdrFragment].offset == 0:
                    first, src, dst = pkt[IPv6ExtHdrFragment].payload, pkt[IPv6].src, pkt[IPv6].dst
                if first is not None and isinstance(first, UDP):
                    raw = bytes(first.payload)
                    if len(raw) >= 2:
                        found.add((src, dst, int.from_bytes(raw[:2], "big")))
        _FRAGMENTS[capture] = found
    return _FRAGMENTS[capture]


# -- comparing ----------------------------------------------------------------------------------


@dataclass
class Result:
    capture: Path
    packetbeat_events: int
    pybeat_events: int
    pairs: int
    missing: list[dict[str, Any]]  # Packetbeat transactions without a pybeat twin
    fields: dict[str, list[int]]  # generic field -> [agree, total]
    excepted: Counter  # exception name -> fields excused
    differences: list[tuple[str, Any, Any, tuple]]  # (path, packetbeat, pybeat, twin key)
    note: str = ""  # why there was nothing to compare, when Packetbeat could not read the capture

    @property
    def agree(self) -> int:
        return sum(a for a, _ in self.fields.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.fields.values())

    @property
    def ratio(self) -> float:
        return self.agree / self.total if self.total else 1.0

    @property
    def ok(self) -> bool:
        return not self.missing and self.ratio >= THRESHOLD


def _score(pb: dict[str, Any], py: dict[str, Any]) -> int:
    return sum(1 for k, v in pb.items() if py.get(k) == v)


def pair_events(pb_events: list[dict[str, Any]], py_events: list[dict[str, Any]]) -> tuple[list[tuple[dict, dict]], list[dict]]:
    """Twin each Packetbeat transaction with a pybeat one of the same key (``twin_key``); among
    several of one key (retransmissions), the one agreeing on the most fields. A Packetbeat
    orphan response whose query pybeat saw (``_unseen_half``) is keyed by the response's time
    instead: the pybeat event with the same addresses and ID that ended then. Returns the pairs
    and the Packetbeat events left without a twin."""
    pool: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    by_end: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for ev in py_events:
        flat = flatten(ev)
        pool[twin_key(flat)].append(flat)
        by_end[(flat.get("event.end"),) + twin_key(flat)[1:]].append(flat)
    pairs, missing = [], []
    for ev in pb_events:
        flat = flatten(ev)
        cands = pool.get(twin_key(flat))
        if not cands and _ORPHAN in _notes(flat):
            cands = by_end.get((flat.get("@timestamp"),) + twin_key(flat)[1:])
        if not cands:
            missing.append(flat)
            continue
        best = max(range(len(cands)), key=lambda i: _score(flat, cands[i]))
        twin = cands[best]
        for table, key in ((pool, twin_key(twin)), (by_end, (twin.get("event.end"),) + twin_key(twin)[1:])):
            rest = table.get(key)
            if rest is not None and any(t is twin for t in rest):
                rest[:] = [t for t in rest if t is not twin]
        pairs.append((flat, twin))
    return pairs, missing


def compare(capture: Path, pb_events: list[dict[str, Any]], py_events: list[dict[str, Any]]) -> Result:
    pairs, missing = pair_events(pb_events, py_events)
    fields: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    excepted: Counter = Counter()
    diffs = []
    for pb, py in pairs:
        pair = Pair(pb, py, capture)
        for path, value in pb.items():
            rule = next((e for e in EXCEPTIONS if e.skip_always and e.applies(pair, path)), None)
            if rule is not None:
                excepted[rule.name] += 1
                continue
            same = path in py and py[path] == value
            if not same:
                rule = next((e for e in EXCEPTIONS if not e.skip_always and e.applies(pair, path)), None)
                if rule is not None:
                    excepted[rule.name] += 1
                    continue
            counts = fields[generic(path)]
            counts[1] += 1
            if same:
                counts[0] += 1
            else:
                diffs.append((path, value, py.get(path, "<absent>"), twin_key(pb)))
    return Result(capture, len(pb_events), len(py_events), len(pairs), missing, dict(fields), excepted, diffs)


def run(capture: Path, ports: list[int] | None = None, work: Path | None = None) -> Result:
    """Both agents on ``capture``, compared."""
    ports = ports or PORTS
    with tempfile.TemporaryDirectory(prefix="parity-", dir=work) as tmp:
        py = run_pybeat(capture, Path(tmp), ports)
        try:
            pb = run_packetbeat(capture, Path(tmp), ports)
        except PacketbeatCannotRead as exc:
            res = compare(capture, [], py)
            res.note = f"Packetbeat cannot read this capture ({exc}): nothing to compare"
            return res
    return compare(capture, pb, py)


def report(res: Result, show: int = 5) -> str:
    lines = [f"{res.capture.name}: Packetbeat {res.packetbeat_events} events, pybeat {res.pybeat_events}, "
             f"{res.pairs} twins, {len(res.missing)} without a twin; fields agree {res.agree:,}/{res.total:,} "
             f"= {100 * res.ratio:.3f} % ({'OK' if res.ok else 'FAIL'})"]
    if res.note:
        lines.append(f"  note: {res.note}")
    for name, n in sorted(res.excepted.items()):
        lines.append(f"  excepted  {n:>8,}  {name}")
    for path, (agree, total) in sorted(res.fields.items()):
        mark = "" if agree == total else "   <-- differs"
        lines.append(f"  {100 * agree / total:7.3f} %  {agree:>8,}/{total:<8,} {path}{mark}")
    shown: Counter = Counter()
    for path, pb, py, key in res.differences:
        shown[generic(path)] += 1
        if shown[generic(path)] <= show:
            lines.append(f"  diff {path}: packetbeat={pb!r} pybeat={py!r} at {key}")
    for flat in res.missing[:show]:
        lines.append(f"  no twin: {twin_key(flat)} {flat.get('dns.question.name')!r} {flat.get('error.message')!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="+", type=Path)
    ap.add_argument("--ports", default=",".join(map(str, PORTS)),
                    help="DNS ports for both agents (default 53,5353: Packetbeat's stock port and mDNS's)")
    ap.add_argument("--show", type=int, default=5, help="how many differing values to print")
    args = ap.parse_args(argv)
    if packetbeat_binary() is None:
        print(f"Packetbeat is not built: run bash {SETUP}", file=sys.stderr)
        return 2
    ports = [int(p) for p in args.ports.split(",")]
    ok = True
    for capture in args.captures:
        try:
            res = run(capture.resolve(), ports)
        except FileNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(report(res, args.show))
        ok = ok and res.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
