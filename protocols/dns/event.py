"""The ``dns.*`` object, the ``query`` string and the ``request``/``response`` strings of an event.

Owns Packetbeat's ``addDNSToMapStr`` / ``dnsToString`` shapes (reference §3.5–3.7). Builds plain
dicts from a decoded :class:`Message`; never looks at packets or transactions.
"""

from __future__ import annotations

from typing import Any

import orjson

from pybeat.protocols.dns.domain import DomainParts, unicode_name
from pybeat.protocols.dns.tables import CLASSES, TYPES, opcode_name, rcode_name
from pybeat.protocols.dns.wire import Message

__all__ = [
    "dns_fields", "question_string", "message_string", "merge_messages",
    "dns_json", "message_json", "head_json", "resolved_json",
]

_RR_FIXED = frozenset(("name", "type", "class", "ttl", "data", "cache_flush"))


def question_string(name: str, qtype: int, qclass: int, mdns: bool = False) -> str:
    """``class IN, type A, elastic.co`` (Packetbeat's ``dnsQuestionToString``)."""
    if mdns:
        qclass &= 0x7FFF
    return f"class {CLASSES.get(qclass) or qclass}, type {TYPES.get(qtype) or qtype}, {name}"


_FLAG_BITS = (
    ("AA", "authoritative", 0x0400), ("TC", "truncated_response", 0x0200),
    ("RD", "recursion_desired", 0x0100), ("RA", "recursion_available", 0x0080),
    ("AD", "authentic_data", 0x0020), ("CD", "checking_disabled", 0x0010),
)
# Everything derived from the 16-bit flags word and the full RCODE (EDNS's extended bits above
# the header's 4), computed once per pair seen: flags dict, header_flags, op_code,
# response_code, the string's head.
_HEAD: dict[int, tuple[dict[str, bool], tuple[str, ...], str, str, str]] = {}


def _head(flags: int, rcode: int) -> tuple[dict[str, bool], tuple[str, ...], str, str, str]:
    key = flags | (rcode >> 4) << 16
    h = _HEAD.get(key)
    if h is None:
        if len(_HEAD) >= 65536:
            _HEAD.clear()
        fd = {long: bool(flags & bit) for _s, long, bit in _FLAG_BITS}
        hf = tuple(short for short, _l, bit in _FLAG_BITS if flags & bit)
        op = opcode_name((flags >> 11) & 0xF)
        rc = rcode_name(rcode)
        fl = " ".join(s.lower() for s in hf)
        text = f"QR {'response' if flags >> 15 else 'query'}; OPCODE {op}; FLAGS {fl}; RCODE {rc}"
        h = _HEAD[key] = (fd, hf, op, rc, text)
    return h


# How each key of a rendered dns.* object is copied for a new event: 0 dict, 1 list of
# dicts, 2 list of scalars.
_COPY_KINDS = (
    ("flags", 0), ("question", 0), ("opt", 0), ("answers", 1), ("authorities", 1),
    ("additionals", 1), ("header_flags", 2), ("resolved_ip", 2),
)


def dns_fields(
    msg: Message, msg_id: int, domains: DomainParts, authorities: bool, additionals: bool, share: bool = False
) -> dict[str, Any]:
    """``dns.*`` for one message (the response when there is one) with ID ``msg_id`` (a cached
    message may stand for messages with other IDs). ``resolved_ip`` included.

    The rendering is memoised on the message (shared with its cached copies) and every call
    returns fresh dicts and lists, so processors may change an event without touching another.
    With ``share`` (nothing downstream can change an event: no processors) only the top level
    is new and the nested objects are the memoised ones, shared by every event of that message.
    """
    base = _base(msg, domains, authorities, additionals)
    d: dict[str, Any] = {"id": msg_id}
    d.update(base)
    if share:
        return d
    plan = msg.parts.copy_plan
    assert plan is not None
    for key, kind in plan:
        v = base[key]
        if kind == 0:
            d[key] = v.copy()
        elif kind == 1:
            d[key] = [r.copy() for r in v]
        else:
            d[key] = list(v)
    return d


def _base(msg: Message, domains: DomainParts, authorities: bool, additionals: bool) -> dict[str, Any]:
    """The memoised rendering of ``dns.*`` (without the ID) and its copy plan."""
    parts = msg.parts
    base = parts.fields
    if base is None:
        base = parts.fields = _render(msg, domains, authorities, additionals)
        parts.copy_plan = tuple(kk for kk in _COPY_KINDS if kk[0] in base)
    return base


def _text(msg: Message) -> str:
    """The memoised request/response text after ``ID <n>; ``."""
    parts = msg.parts
    text = parts.text
    if text is None:
        text = parts.text = _message_text(msg)
    return text


def _render(msg: Message, domains: DomainParts, authorities: bool, additionals: bool) -> dict[str, Any]:
    fd, hf, op, rc, _text = _head(msg.flags, msg.rcode)
    # Without the ID: a cached message stands for messages with other IDs (dns_fields adds it).
    # header_flags always, empty too, as Packetbeat assigns it.
    d: dict[str, Any] = {"op_code": op, "flags": fd, "response_code": rc}
    opt = msg.opt
    d["header_flags"] = (*hf, "DO") if opt is not None and opt["do"] else hf
    if msg.questions:
        name, qtype, qclass = msg.questions[0]
        q: dict[str, Any] = {"name": name, "type": TYPES.get(qtype) or str(qtype)}
        if msg.mdns:
            q["class"] = CLASSES.get(qclass & 0x7FFF) or str(qclass & 0x7FFF)
            q["unicast_response"] = bool(qclass & 0x8000)
        else:
            q["class"] = CLASSES.get(qclass) or str(qclass)
        domains.add_to(q, name)
        if "n--" in name or "N--" in name:
            uni = unicode_name(name)
            if uni is not None:
                q["name_unicode"] = uni
        d["question"] = q
    if opt is not None:
        d["opt"] = opt
    answers = msg.answers
    d["answers_count"] = len(answers)
    if answers:
        # Packetbeat assigns the list even when no record could be rendered (an A record
        # without an address): "answers": [], as for the authorities below.
        d["answers"] = [r for r in answers if r is not None]
        if msg.resolved:
            d["resolved_ip"] = msg.resolved
    d["authorities_count"] = len(msg.authorities)
    if authorities and msg.authorities:
        d["authorities"] = [r for r in msg.authorities if r is not None]
    extra = msg.additionals
    d["additionals_count"] = len(extra) - 1 if opt is not None else len(extra)
    if additionals and extra:
        rendered = [r for r in extra if r is not None]
        if rendered:
            d["additionals"] = rendered
    return d


# Sorted string-valued keys of a record, by (type, number of keys): the value types of a
# record type's keys never change, so this is computed once per shape.
_STRING_KEYS: dict[tuple[str, int], tuple[str, ...]] = {}


def _rr_string(rec: dict[str, Any] | None) -> str:
    # Packetbeat's rrToString: string-valued keys sorted, then the data; numbers are skipped
    # because its switch only matches Go's int and string (the values are uint16/uint32).
    if rec is None:
        return ""
    shape = (rec["type"], len(rec))
    keys = _STRING_KEYS.get(shape)
    if keys is None:
        if len(_STRING_KEYS) > 4096:
            _STRING_KEYS.clear()
        keys = _STRING_KEYS[shape] = tuple(
            sorted(k for k in rec if k not in _RR_FIXED and isinstance(rec[k], str))
        )
    data: str = rec.get("data", "")
    if not keys:
        return data
    return "".join([f"{k} {rec[k]}, " for k in keys]) + data


# -- pre-encoded parts (an Event's raw document; see render.Renderer.publish_raw) ------------
# Each is memoised on the message (Message.parts) and is exactly the JSON of what the dict
# path puts in the event (tested).

_FLAGS_JSON: dict[int, tuple[bytes, bytes]] = {}


def flags_json(flags: int, do: bool = False, rcode: int | None = None) -> tuple[bytes, bytes]:
    """The members of ``dns.*`` that come from the flags word and EDNS's DO bit
    (``"op_code":..,"flags":{..},"response_code":..[,"header_flags":[..]]``, as ``_render``) and
    the head of the request/response text (``QR ..; OPCODE ..; FLAGS ..; RCODE ..``), both
    encoded, memoised per value (the compiled parser in _fast.pyx builds on them).
    ``rcode``: the full RCODE (default: the header's 4 bits)."""
    if rcode is None:
        rcode = flags & 0xF
    key = flags | (0x10000 if do else 0) | (rcode >> 4) << 17
    hit = _FLAGS_JSON.get(key)
    if hit is None:
        if len(_FLAGS_JSON) >= 65536:
            _FLAGS_JSON.clear()
        fd, hf, op, rc, text = _head(flags, rcode)
        d: dict[str, Any] = {"op_code": op, "flags": fd, "response_code": rc}
        d["header_flags"] = (*hf, "DO") if do else hf
        hit = _FLAGS_JSON[key] = (orjson.dumps(d)[1:-1], orjson.dumps(text)[1:-1])
    return hit



def dns_json(msg: Message, domains: DomainParts, authorities: bool, additionals: bool) -> bytes:
    """``dns.*`` of :func:`dns_fields` without ``id`` (and ``type``), encoded: the members,
    without the braces (the event puts ``id`` before them and ``type`` after, as the dict
    path orders them)."""
    parts = msg.parts
    enc = parts.dns_json
    if enc is None:
        enc = parts.dns_json = orjson.dumps(_base(msg, domains, authorities, additionals))[1:-1]
    return enc


def message_json(msg: Message) -> bytes:
    """The request/response string after ``ID <n>; ``, JSON-escaped, with its closing quote."""
    parts = msg.parts
    enc = parts.text_json
    if enc is None:
        enc = parts.text_json = orjson.dumps(_text(msg))[1:]
    return enc


def head_json(msg: Message) -> bytes:
    """``,"method":..,"query":..,"resource":..`` of the message that opens a transaction."""
    parts = msg.parts
    enc = parts.head_json
    if enc is None:
        method, query, resource = head_fields(msg)
        if query is None:
            enc = b',"method":' + orjson.dumps(method)
        else:
            enc = b"," + orjson.dumps({"method": method, "query": query, "resource": resource})[1:-1]
        parts.head_json = enc
    return enc


def head_fields(msg: Message) -> tuple[str, str | None, str | None]:
    """(method, query, resource) of the message that opens a transaction, memoised."""
    parts = msg.parts
    head = parts.head
    if head is None:
        if msg.questions:
            name, qtype, qclass = msg.questions[0]
            head = parts.head = (opcode_name(msg.opcode), question_string(name, qtype, qclass, msg.mdns), name)
        else:
            head = parts.head = (opcode_name(msg.opcode), None, None)
    return head


def resolved_json(msg: Message) -> bytes:
    """The answer's addresses for ``related.ip``, each once, encoded with a leading comma."""
    parts = msg.parts
    enc = parts.resolved_json
    if enc is None:
        resolved = msg.resolved
        enc = parts.resolved_json = b"," + orjson.dumps(list(dict.fromkeys(resolved)))[1:-1] if resolved else b""
    return enc


def message_string(msg: Message, msg_id: int) -> str:
    """The ``request``/``response`` string (Packetbeat's ``dnsToString``), memoised after the ID."""
    return f"ID {msg_id}; {_text(msg)}"


def _message_text(msg: Message) -> str:
    out = [_head(msg.flags, msg.rcode)[4]]
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
