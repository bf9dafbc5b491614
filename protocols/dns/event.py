"""The ``dns.*`` object, the ``query`` string and the ``request``/``response`` strings of an event.

Owns Packetbeat's ``addDNSToMapStr`` / ``dnsToString`` shapes (reference §3.5–3.7). Builds plain
dicts from a decoded :class:`Message`; never looks at packets or transactions.
"""

from __future__ import annotations

from typing import Any

from pybeat.protocols.dns.domain import DomainParts, unicode_name
from pybeat.protocols.dns.tables import CLASSES, TYPES, opcode_name, rcode_name
from pybeat.protocols.dns.wire import Message

__all__ = ["dns_fields", "question_string", "message_string", "merge_messages"]

_RR_FIXED = frozenset(("name", "type", "class", "ttl", "data", "cache_flush"))


def question_string(name: str, qtype: int, qclass: int, mdns: bool = False) -> str:
    """``class IN, type A, elastic.co`` (Packetbeat's ``dnsQuestionToString``)."""
    if mdns:
        qclass &= 0x7FFF
    return f"class {CLASSES.get(qclass) or qclass}, type {TYPES.get(qtype) or qtype}, {name}"


def dns_fields(msg: Message, domains: DomainParts, authorities: bool, additionals: bool) -> dict[str, Any]:
    """``dns.*`` for one message (the response when there is one). ``resolved_ip`` included.

    The rendering is memoised on the message (shared with its cached copies) and every call
    returns fresh dicts and lists, so processors may change an event without touching another.
    """
    memo = msg.memo
    base = memo[0]
    if base is None:
        base = memo[0] = _render(msg, domains, authorities, additionals)
    d = base.copy()
    d["id"] = msg.id
    d["flags"] = base["flags"].copy()
    q = base.get("question")
    if q is not None:
        d["question"] = q.copy()
    for key in _RECORD_KEYS:
        recs = base.get(key)
        if recs is not None:
            d[key] = [r.copy() for r in recs]
    for key in _LIST_KEYS:
        lst = base.get(key)
        if lst is not None:
            d[key] = list(lst)
    opt = base.get("opt")
    if opt is not None:
        d["opt"] = opt.copy()
    return d


_RECORD_KEYS = ("answers", "authorities", "additionals")
_LIST_KEYS = ("header_flags", "resolved_ip")


def _render(msg: Message, domains: DomainParts, authorities: bool, additionals: bool) -> dict[str, Any]:
    flags = msg.flags
    aa, tc, rd, ra, ad, cd = (
        bool(flags & 0x0400), bool(flags & 0x0200), bool(flags & 0x0100),
        bool(flags & 0x0080), bool(flags & 0x0020), bool(flags & 0x0010),
    )
    d: dict[str, Any] = {
        "id": msg.id,
        "op_code": opcode_name(msg.opcode),
        "flags": {
            "authoritative": aa,
            "truncated_response": tc,
            "recursion_desired": rd,
            "recursion_available": ra,
            "authentic_data": ad,
            "checking_disabled": cd,
        },
        "response_code": rcode_name(msg.rcode),
    }
    opt = msg.opt
    hf = [n for n, on in (("AA", aa), ("TC", tc), ("RD", rd), ("RA", ra), ("AD", ad), ("CD", cd)) if on]
    if opt is not None and opt["do"]:
        hf.append("DO")
    if hf:
        d["header_flags"] = hf
    if msg.questions:
        name, qtype, qclass = msg.questions[0]
        q: dict[str, Any] = {"name": name, "type": TYPES.get(qtype) or str(qtype)}
        if msg.mdns:
            q["class"] = CLASSES.get(qclass & 0x7FFF) or str(qclass & 0x7FFF)
            q["unicast_response"] = bool(qclass & 0x8000)
        else:
            q["class"] = CLASSES.get(qclass) or str(qclass)
        domains.add_to(q, name)
        uni = unicode_name(name) if "xn--" in name or "XN--" in name.upper() else None
        if uni is not None:
            q["name_unicode"] = uni
        d["question"] = q
    if opt is not None:
        d["opt"] = opt
    answers = msg.answers
    d["answers_count"] = len(answers)
    if answers:
        rendered = [r for r in answers if r is not None]
        if rendered:
            d["answers"] = rendered
        if msg.resolved:
            d["resolved_ip"] = msg.resolved
    d["authorities_count"] = len(msg.authorities)
    if authorities and msg.authorities:
        rendered = [r for r in msg.authorities if r is not None]
        if rendered:
            d["authorities"] = rendered
    extra = msg.additionals
    d["additionals_count"] = len(extra) - 1 if opt is not None else len(extra)
    if additionals and extra:
        rendered = [r for r in extra if r is not None]
        if rendered:
            d["additionals"] = rendered
    return d


def _rr_string(rec: dict[str, Any] | None) -> str:
    # Packetbeat's rrToString: string-valued keys sorted, then the data; numbers are skipped
    # because its switch only matches Go's int and string (the values are uint16/uint32).
    if rec is None:
        return ""
    parts = [f"{k} {rec[k]}, " for k in sorted(rec) if k not in _RR_FIXED and isinstance(rec[k], str)]
    return "".join(parts) + str(rec.get("data", ""))


def message_string(msg: Message) -> str:
    """The ``request``/``response`` string (Packetbeat's ``dnsToString``), memoised after the ID."""
    memo = msg.memo
    text = memo[1]
    if text is None:
        text = memo[1] = _message_text(msg)
    return f"ID {msg.id}; {text}"


def _message_text(msg: Message) -> str:
    flags = msg.flags
    fl = " ".join(
        n for n, bit in (("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080), ("ad", 0x0020), ("cd", 0x0010))
        if flags & bit
    )
    out = [f"QR {'response' if msg.qr else 'query'}; OPCODE {opcode_name(msg.opcode)}; FLAGS {fl}; RCODE {rcode_name(msg.rcode)}"]
    if msg.questions:
        out.append("QUESTION " + "; ".join(question_string(n, t, c, msg.mdns) for n, t, c in msg.questions))
    for title, section in (("ANSWER", msg.answers), ("AUTHORITY", msg.authorities), ("ADDITIONAL", msg.additionals)):
        if section:
            out.append(title + " " + "; ".join(_rr_string(r) for r in section))
    return "; ".join(out)


def merge_messages(msgs: list[Message]) -> Message:
    """One message standing for a multi-message answer (AXFR/IXFR over TCP): the first header,
    every record, the summed length."""
    if len(msgs) == 1:
        return msgs[0]
    first = msgs[0]
    m = Message(first.id, first.flags, sum(x.length for x in msgs), first.mdns)
    m.questions = first.questions
    m.opt = first.opt
    m.answers = tuple(r for x in msgs for r in x.answers)
    m.authorities = tuple(r for x in msgs for r in x.authorities)
    m.additionals = tuple(r for x in msgs for r in x.additionals)
    m.resolved = tuple(ip for x in msgs for ip in x.resolved)
    m.error = next((x.error for x in msgs if x.error), None)
    return m
