"""Real captures replayed through the agent's decoder into the DNS plugin, checked against
tshark's listings (truth/*.dns.csv) and Packetbeat's vector expectations.

Every capture with a ``truth/<name>.dns.csv`` is picked up, so a new capture dropped into the
shared folder is tested without touching this file.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.conftest import PCAPS, need
from tests.dns.dnstest import check_expected, load_json, replay, truth_rows
from pybeat.protocols.dns.tables import rcode_name

TRUTH = PCAPS / "truth"
CAPTURES = sorted(p.name[: -len(".dns.csv")] for p in TRUTH.glob("*.dns.csv")) if TRUTH.is_dir() else []
_ESC = re.compile(rb"\\(\d{3}|.)")


def _norm(name: str) -> str:
    """A name comparable between our presentation form (``\\DDD`` escapes) and tshark's (raw
    UTF-8 with U+FFFD for invalid bytes): unescape, then every non-ASCII run becomes ``?``."""
    raw = _ESC.sub(lambda m: bytes([int(m.group(1))]) if len(m.group(1)) == 3 else m.group(1), name.encode("utf-8", "surrogateescape"))
    text = re.sub(rb"[\x80-\xff]+", b"?", raw).decode("ascii", "replace")
    return text.lower().rstrip(".")


def _norm_truth(name: str) -> str:
    # tshark prints invalid UTF-8 as U+FFFD and some valid non-ASCII as a literal "\\uXXXX".
    name = re.sub(r"\\u[0-9A-Fa-f]{4}", "?", name)
    return re.sub(r"[^\x00-\x7f?]+|\?+", "?", re.sub(r"[^\x00-\x7f]", "?", name)).lower().rstrip(".")


def _skeleton(name: str) -> str:
    """Last resort for names tshark could not print faithfully (it turned an 8-bit byte into
    '=' in one iodine name): only letters, digits, dots, dashes and underscores are compared."""
    return re.sub(r"[^a-z0-9.\-_]", "", name)


def _answered_pairs(rows: list[dict[str, str]], port: int = 53) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(query row, response row) pairs, matched on the 5-tuple, transport and DNS id, in order."""
    queries: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    pairs = []
    for r in rows:
        if port not in (int(r["sport"]), int(r["dport"])):
            continue
        if r["qr"] == "0":
            queries[(r["transport"], r["src"], r["sport"], r["dst"], r["dport"], r["id"])].append(r)
        else:
            waiting = queries.get((r["transport"], r["dst"], r["dport"], r["src"], r["sport"], r["id"]))
            if waiting:
                pairs.append((waiting.pop(0), r))
    return pairs


# mdns.pcap has no port-53 traffic at all; its mDNS behaviour has tests of its own.
@pytest.mark.parametrize("capture", [c for c in CAPTURES if c != "mdns"])
def test_capture_matches_tshark(capture: str) -> None:
    """>= 99% of the answered port-53 transactions tshark decodes appear with the same client
    address and port, DNS id, question name, rcode and answer count."""
    pcap = PCAPS / f"{capture}.pcap"
    need(pcap.exists(), f"capture {pcap}")
    pairs = _answered_pairs(truth_rows(TRUTH / f"{capture}.dns.csv"))
    events, an = replay(pcap, ports=[53])
    assert pairs, f"{capture}: no answered port-53 transactions in the truth listing"
    by_client: dict[tuple, list] = defaultdict(list)
    for ev in events:
        by_client[(ev.get("client.ip"), ev.get("client.port"), ev.get("dns.id"))].append(ev)
    matched, misses = 0, []
    for q, r in pairs:
        cands = by_client.get((q["src"], int(q["sport"]), int(q["id"], 16)), [])
        raw_qname = (q["qname"] or r["qname"]).split(";")[0]
        qname = "" if raw_qname.lower() == "<root>" else _norm_truth(raw_qname)
        want = (qname, rcode_name(int(r["rcode"] or 0)), int(r["ancount"] or 0))
        got = [
            (_norm(ev.get("dns.question.name") or ev.get("resource") or ""), ev.get("dns.response_code"), ev.get("dns.answers_count"))
            for ev in cands if ev.get("dns.type") == "answer"
        ]
        if not raw_qname:  # tshark shows no name (UPDATE zone section, no question): any name
            got = [("", rc, an) for _n, rc, an in got]
        elif "?" in qname:
            want = (_skeleton(qname), *want[1:])
            got = [(_skeleton(n), rc, an) for n, rc, an in got]
        if want in got:
            matched += 1
        else:
            misses.append((q["frame"], want, got))
    ratio = matched / len(pairs)
    assert ratio >= 0.99, f"{capture}: {matched}/{len(pairs)} matched; first misses: {misses[:5]}"
    assert an.stats()["undecodable"] == 0


def test_packetbeat_vector_pcaps() -> None:
    """Replaying packetbeat_vectors_{udp,tcp}.pcap reproduces >= 98% of the expected fields,
    matched by client port."""
    expected_path = PCAPS / "packetbeat_vectors_expected.json"
    need(expected_path.exists(), f"{expected_path}")
    expected = load_json(expected_path)
    events = []
    for name in ("packetbeat_vectors_udp.pcap", "packetbeat_vectors_tcp.pcap"):
        evs, _an = replay(
            PCAPS / name, include_authorities=True, include_additionals=True, send_request=True, send_response=True
        )
        events += evs
    by_port = {ev.get("client.port"): ev for ev in events}
    total = failed = 0
    problems = []
    for case in expected:
        ev = by_port.get(case["client.port"])
        if ev is None:
            n = len(case["expected"])
            total += n
            failed += n
            problems.append((case["vector"], "no event"))
            continue
        checked, failures = check_expected(ev, case["expected"])
        total += checked
        failed += len(failures)
        problems += [(case["vector"], f) for f in failures]
    ratio = (total - failed) / total
    assert ratio >= 0.98, f"{total - failed}/{total} fields; {problems[:10]}"
    assert len(by_port) == len(expected)


def test_tcp_capture_transfers_and_reuse() -> None:
    """dns_tcp.pcap: 26 transactions (25 TCP + the truncated UDP one), AXFR big.test with 196
    answers in one event, 444 transfer answers in all, bytes including the length prefix."""
    pcap = PCAPS / "dns_tcp.pcap"
    need(pcap.exists(), f"capture {pcap}")
    events, an = replay(pcap)
    assert len(events) == 26 and an.stats()["unmatched_responses"] == 0
    xfr = [e for e in events if e.get("dns.question.type") in ("AXFR", "IXFR") and e.get("status") == "OK"]
    assert sorted(e.get("dns.answers_count") for e in xfr) == [52, 196, 196]
    assert sum(e.get("dns.answers_count") for e in xfr) == 444
    assert all(e.get("error.message") is None for e in events)
    tcp = [e for e in events if e.get("network.transport") == "tcp"]
    assert len(tcp) == 25
    big = max(tcp, key=lambda e: e.get("destination.bytes"))
    assert big.get("destination.bytes") > 4096


def test_dnssec_capture_fields() -> None:
    """dns_dnssec.pcap: DNSSEC records and EDNS options are rendered with Packetbeat's keys."""
    pcap = PCAPS / "dns_dnssec.pcap"
    need(pcap.exists(), f"capture {pcap}")
    events, _an = replay(pcap, include_authorities=True, include_additionals=True)
    assert len(events) == 37 and all(e.get("status") in ("OK", "Error") for e in events)
    recs = [r for e in events for s in ("dns.answers", "dns.authorities", "dns.additionals") for r in (e.get(s) or [])]
    types = {r["type"] for r in recs}
    assert {"RRSIG", "DNSKEY", "NSEC", "NSEC3", "NSEC3PARAM", "DS", "SOA", "TXT", "SRV"} <= types
    rrsig = next(r for r in recs if r["type"] == "RRSIG")
    assert re.fullmatch(r"\d{14}", rrsig["expiration"]) and rrsig["key_tag"].isdigit()
    ds = [r for r in recs if r["type"] == "DS"]
    assert {r["key_tag"] for r in ds} == {"8881"} and {r["digest_type"] for r in ds} == {"SHA1", "SHA256"}
    nsec3 = next(r for r in recs if r["type"] == "NSEC3")
    assert nsec3["salt"] == "AABBCCDD" and nsec3["hash"] == "SHA1"
    opts = [e.get("dns.opt") for e in events if e.get("dns.opt")]
    assert any(o.get("nsid") == "ns1.lab.example.test".encode().hex() for o in opts)
    assert any(o.get("subnet") == "10.99.0.0/24/0" for o in opts)
    assert any(o.get("subnet") == "[fd00:99::]/56/0" for o in opts)
    assert any(e.get("dns.opt.do") and "DO" in e.get("dns.header_flags") for e in events)


def test_udp_mixed_special_cases() -> None:
    """dns_udp_mixed.pcap: IDN names get a Unicode form, mixed case keeps the wire case but
    derives lower-case domains, BADVERS shows in ext_rcode, SVCB/HTTPS and CAA are readable."""
    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap}")
    events, an = replay(pcap, include_authorities=True, include_additionals=True)
    by_name = defaultdict(list)
    for e in events:
        by_name[e.get("dns.question.name")].append(e)
    assert by_name["xn--bcher-kva.example.test"][0].get("dns.question.name_unicode") == "bücher.example.test"
    assert by_name["xn--mnchen-3ya.test"][0].get("dns.question.name_unicode") == "münchen.test"
    mixed = by_name["WwW.ExAmPlE.TeSt"][0]
    assert mixed.get("dns.question.registered_domain") == "example.test"
    assert mixed.get("dns.question.subdomain") == "WwW"  # the wire's case (Packetbeat's too)
    assert any(e.get("dns.opt.ext_rcode") == "BADSIG" for e in events)  # 16: miekg's name
    https = [a for e in events for a in (e.get("dns.answers") or []) if a["type"] == "HTTPS"]
    assert https and "alpn=h2,h3" in https[0]["data"]
    caa = [a for e in events for a in (e.get("dns.answers") or []) if a["type"] == "CAA"]
    assert caa and caa[0]["tag"] in ("issue", "issuewild", "iodef")
    txt = [a for e in events if e.get("dns.question.name") == "longtxt.example.test" for a in (e.get("dns.answers") or [])]
    assert txt and '\\"' in txt[0]["data"] and "\\\\" in txt[0]["data"]
    assert an.stats()["malformed"] >= 1  # the query cut off mid-name
    cut = [e for e in events if e.get("dns.id") == 0x2222]
    assert cut and "Message's data could not be decoded as DNS" in str(cut[0].get("error.message"))


def test_iodine_tunnel_names_survive() -> None:
    """dns_tunnel_iodine.pcap: 8-bit labels are escaped, never lost; unanswered lazy-mode
    queries are reported as such."""
    pcap = PCAPS / "dns_tunnel_iodine.pcap"
    need(pcap.exists(), f"capture {pcap}")
    events, an = replay(pcap)
    assert len(events) == 302
    assert an.stats()["unmatched_requests"] == 17
    assert any("\\2" in (e.get("dns.question.name") or "") for e in events)
    assert all((e.get("dns.question.registered_domain") or "") == "tunnel.test" for e in events)


def _mdns_events() -> tuple[list, object]:
    pcap = PCAPS / "mdns.pcap"
    need(pcap.exists(), f"capture {pcap}")
    return replay(pcap, ports=[5353], include_authorities=True)


def test_mdns_multicast_messages_are_events_not_errors() -> None:
    """mdns.pcap: each multicast query and announcement is its own event with status OK; no
    orphans, no 'no response' errors; the 4 legacy unicast queries pair with their replies."""
    events, an = _mdns_events()
    stats = an.stats()
    assert stats["unmatched_responses"] == 0 and stats["duplicate_queries"] == 0
    assert stats["mdns_messages"] == 111
    queries = [e for e in events if e.get("dns.type") == "query"]
    answers = [e for e in events if e.get("dns.type") == "answer"]
    paired = [e for e in answers if e.get("source.bytes") and e.get("destination.bytes")]
    assert len(paired) == 4
    assert len(queries) == 53 - 4 + stats["unmatched_requests"]
    assert len(answers) == 58
    # dig's legacy queries carry EDNS and avahi answers without it: Packetbeat's EDNS note stays.
    errors = {e.get("error.message") for e in events if e.get("error.message")}
    assert errors <= {"No response to this query was received", "Responder does not support EDNS"}
    assert all(e.get("status") == "OK" for e in events if not e.get("error.message"))


def test_mdns_bits_decoded() -> None:
    """The QU bit of questions and the cache-flush bit of records are fields; class stays IN."""
    events, _an = _mdns_events()
    qu = [e for e in events if e.get("dns.question.unicast_response")]
    assert len(qu) >= 2 and all(e.get("dns.question.class") == "IN" for e in events if e.get("dns.question"))
    recs = [r for e in events for r in (e.get("dns.answers") or [])]
    assert any(r["cache_flush"] for r in recs) and any(not r["cache_flush"] for r in recs)
    assert {r["class"] for r in recs} == {"IN"}
    goodbyes = [r for r in recs if r["ttl"] == "0"]
    assert len(goodbyes) >= 1
    assert any(e.get("network.direction") == "ingress" for e in events)  # link-local multicast


def test_bulk_capture_pairs_every_transaction() -> None:
    """dns_bulk_100k.pcap: IDs wrap, yet all 50,000 transactions pair (no orphans, no expiries)."""
    pcap = PCAPS / "dns_bulk_100k.pcap"
    need(pcap.exists(), f"capture {pcap}")
    events, an = replay(pcap)
    stats = an.stats()
    assert len(events) == 50_000
    assert stats["unmatched_requests"] == 0 and stats["unmatched_responses"] == 0
    assert sum(1 for e in events if e.get("dns.response_code") == "REFUSED") > 0
