"""DNS wire format: header, names with compression, questions and resource records.

Owns turning one DNS message (bytes, without any TCP length prefix) into a :class:`Message`.
Never raises for any input: what could not be read is left out and ``Message.error`` says why.
Caps: names are at most 255 octets on the wire and labels at most 63; a compression pointer
must point strictly before the name segment it is in, so pointer chains always move backwards
and end (no loops, no forward references). RR counts larger than the data stop decoding
silently at the end of the message, as miekg/dns does.

Record data is rendered here too (:mod:`.rdata`), straight into the dicts that become
``dns.answers[]`` etc., so a message is walked once.
"""

from __future__ import annotations

import struct
from typing import Any

from pybeat.protocols.dns.errors import DnsFormError
from pybeat.protocols.dns.names import MAX_LABEL, MAX_NAME, read_name
from pybeat.protocols.dns.rdata import render_opt, render_rdata
from pybeat.protocols.dns.tables import CLASSES, TYPES

__all__ = ["DnsFormError", "Message", "Parts", "MessageCache", "parse_message", "read_name", "MAX_NAME", "MAX_LABEL"]

HEADER_LEN = 12

#: a rendered record, or None for one that is counted but not shown (OPT, empty A/AAAA)
Record = dict[str, Any] | None

_HEADER = struct.Struct("!6H").unpack_from
_HH = struct.Struct("!HH").unpack_from
_RR = struct.Struct("!HHIH").unpack_from

class Parts:
    """A message's rendered parts, memoised by event.py (each None until first needed): shared
    by every event of that message and of its cached copies (other IDs)."""

    __slots__ = ("fields", "text", "copy_plan", "head", "dns_json", "text_json", "head_json", "resolved_json")

    def __init__(self) -> None:
        self.fields: dict[str, Any] | None = None  # dns.* without id (dns_fields)
        self.text: str | None = None  # the request/response text after "ID <n>; "
        self.copy_plan: tuple[tuple[str, int], ...] | None = None  # how fields are copied per event
        self.head: tuple[str, str | None, str | None] | None = None  # (method, query, resource)
        self.dns_json: bytes | None = None  # fields encoded, without the braces (dns_json)
        self.text_json: bytes | None = None  # text JSON-escaped, with its closing quote (message_json)
        self.head_json: bytes | None = None  # ,"method":..,"query":..,"resource":.. (head_json)
        self.resolved_json: bytes | None = None  # the answer's addresses for related.ip (resolved_json)


class Message:
    """One decoded DNS message.

    Record sections hold the rendered dicts (``name``, ``type``, ``class``, ``ttl``, ``data``
    and type-specific keys) or ``None`` for records Packetbeat counts but does not render
    (A/AAAA without address data, OPT). ``error`` is the reason decoding stopped early, if it did.
    """

    __slots__ = (
        "id", "flags", "qr", "opcode", "rcode", "questions", "answers", "authorities",
        "additionals", "opt", "resolved", "length", "error", "mdns", "counts", "parts",
    )

    def __init__(self, msg_id: int, flags: int, length: int, mdns: bool):
        self.id = msg_id
        self.flags = flags
        self.qr = flags >> 15
        self.opcode = (flags >> 11) & 0xF
        self.rcode = flags & 0xF  # with EDNS's extended bits once its OPT record is read
        # Tuples, not lists: a decoded message never changes, and tuples of plain dicts are
        # invisible to the cyclic GC (thousands of messages live in the cache).
        self.questions: tuple[tuple[str, int, int], ...] = ()
        self.answers: tuple[dict[str, Any] | None, ...] = ()
        self.authorities: tuple[dict[str, Any] | None, ...] = ()
        self.additionals: tuple[dict[str, Any] | None, ...] = ()
        self.opt: dict[str, Any] | None = None
        self.resolved: tuple[str, ...] = ()
        self.length = length
        self.error: str | None = None
        self.mdns = mdns
        self.counts: tuple[int, int, int, int] = (0, 0, 0, 0)
        # What the event builder renders of this message, once per distinct message (event.py).
        self.parts = Parts()


class MessageCache:
    """Decoded messages by their bytes after the ID, bounded (cleared when full).

    DNS repeats itself: stub resolvers ask the same questions and caches return identical
    answers (same TTL within a second), so most messages on a busy link were seen moments
    ago. A hit costs a dict lookup and a copy instead of a decode and a render.
    """

    def __init__(self, size: int):
        self.size = size
        self.entries: dict[bytes, Message] = {}
        self.mdns_entries: dict[bytes, Message] = {}
        self.hits = 0

    def parse(self, buf: bytes, mdns: bool) -> Message | None:
        """The decoded message for ``buf``, possibly shared: its ``id`` is the first sender's;
        callers take the ID from ``buf``. Nothing may change a returned message."""
        if self.size <= 0 or len(buf) < HEADER_LEN:
            return parse_message(buf, mdns)
        entries = self.mdns_entries if mdns else self.entries
        key = buf[2:]
        hit = entries.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        m = parse_message(buf, mdns)
        if m is not None:
            if len(entries) >= self.size:
                entries.clear()
            entries[key] = m
        return m


def parse_message(buf: bytes, mdns: bool = False) -> Message | None:
    """Decode ``buf``; ``None`` only if not even the 12-byte header is there.

    With ``mdns`` the top bit of a question's class is the QU bit and the top bit of a
    record's class is the cache-flush bit (RFC 6762 §5.4, §10.2); both are reported, not
    folded into the class number.
    """
    n = len(buf)
    if n < HEADER_LEN:
        return None
    msg_id, flags, qd, an, ns, ar = _HEADER(buf, 0)
    m = Message(msg_id, flags, n, mdns)
    m.counts = (qd, an, ns, ar)
    off = HEADER_LEN
    nc: dict[int, tuple[str, int]] = {}
    questions: list[tuple[str, int, int]] = []
    sections: tuple[list[Record], list[Record], list[Record]] = ([], [], [])
    resolved: list[str] = []
    try:
        for _ in range(qd):
            if off >= n:
                break
            name, off = read_name(buf, off, nc)
            if off + 4 > n:
                raise DnsFormError("question cut off")
            qtype, qclass = _HH(buf, off)
            off += 4
            questions.append((name, qtype, qclass))
        for sect_no, count in ((0, an), (1, ns), (2, ar)):
            section = sections[sect_no]
            for _ in range(count):
                if off >= n:
                    break
                off = _read_rr(buf, off, n, m, section, sect_no, nc, resolved)
    except DnsFormError as exc:
        m.error = str(exc)
    except (struct.error, IndexError, ValueError, UnicodeError, OverflowError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a decoder bug must not stop the agent; tests look for this text
        m.error = f"internal decoder error: {type(exc).__name__}: {exc}"
    if questions:
        m.questions = tuple(questions)
    if sections[0]:
        m.answers = tuple(sections[0])
    if sections[1]:
        m.authorities = tuple(sections[1])
    if sections[2]:
        m.additionals = tuple(sections[2])
    if resolved:
        m.resolved = tuple(resolved)
    if m.error is None and n == HEADER_LEN and (qd or an or ns or ar):
        m.error = "header announces records but the message has none"
    return m


def _read_rr(
    buf: bytes, off: int, n: int, m: Message, section: list[Record], sect_no: int, nc: dict[int, tuple[str, int]],
    resolved: list[str],
) -> int:
    name, off = read_name(buf, off, nc)
    if off + 10 > n:
        raise DnsFormError("record header cut off")
    rtype, rclass, ttl, rdlen = _RR(buf, off)
    off += 10
    end: int = off + rdlen
    if end > n:
        raise DnsFormError("record data runs past the end of the message")
    if rtype == 41:
        m.opt = render_opt(buf, off, end, rclass, ttl)
        # EDNS's extended RCODE: the OPT record's 8 high bits above the header's 4 (RFC 6891
        # §6.1.3), as miekg/dns (and so Packetbeat) combines them: 16 is BADVERS/BADSIG
        m.rcode = (m.flags & 0xF) | ((ttl >> 24) << 4)
        section.append(None)
        return end
    rec: dict[str, Any] = {"name": name, "type": "", "class": "", "ttl": str(ttl)}
    cache_flush = False
    if m.mdns and rclass & 0x8000:
        rclass &= 0x7FFF
        cache_flush = True
    ip = render_rdata(buf, off, end, rtype, rec, nc)
    if ip is None:  # A/AAAA with no address: counted, not rendered (Packetbeat skips it)
        section.append(None)
        return end
    if ip and sect_no == 0:
        resolved.append(ip)
    rec["type"] = TYPES.get(rtype) or str(rtype)
    rec["class"] = CLASSES.get(rclass) or str(rclass)
    if m.mdns:
        rec["cache_flush"] = cache_flush
    section.append(rec)
    return end
