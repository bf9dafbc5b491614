"""Publishing DNS transactions: an event per :class:`~.pairing.Txn`, as a dict, or where nothing
downstream changes an event, as its pre-encoded JSON document (``Event.raw``).

Owns the %-templates of the pre-encoded documents and the names of their arguments
(:class:`Hole`: the one place that says which value goes where; Python fills them in
:meth:`Renderer.publish_raw`, the compiled lane in ``_fast.pyx`` by the same names). The
documents are the dict path's, byte for byte (tests/dns/test_dns_raw_events.py on every capture).
Never pairs, parses or keeps state beyond its caches.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import orjson

from pybeat._fastpath import fastpath_of
from pybeat.api import Envelope, Event, ProtocolContext, add_notes, format_ts
from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.event import (
    dns_fields, dns_json, head_fields, head_json, merge_messages, message_json, message_string, resolved_json,
)
from pybeat.protocols.dns.pairing import Txn
from pybeat.protocols.dns.wire import Message

__all__ = ["Hole", "RawTemplate", "Renderer", "raw_error"]


class Hole(IntEnum):
    """The values a pre-encoded DNS event is filled with: a template's holes name these."""

    REQUEST_BYTES = 0  # int: the query's length
    RESPONSE_BYTES = 1  # int: the response's length
    TOTAL_BYTES = 2  # int: network.bytes
    START = 3  # bytes: format_ts of the query's time
    END = 4  # bytes: format_ts of the response's time
    DURATION = 5  # int: ns
    RESOLVED = 6  # bytes: resolved_json (more related.ip entries)
    STATUS = 7  # bytes: OK or Error
    HEAD = 8  # bytes: head_json of the query (method, query, resource)
    ID = 9  # int: dns.id (the response's, else the query's)
    DNS = 10  # bytes: dns_json of the main message (the response, else the query)
    REQUEST_ID = 11  # int
    REQUEST = 12  # bytes: message_json of the query
    RESPONSE_ID = 13  # int
    RESPONSE = 14  # bytes: message_json of the response
    ERROR = 15  # bytes: raw_error of the notes


_INT_HOLES = frozenset((Hole.REQUEST_BYTES, Hole.RESPONSE_BYTES, Hole.TOTAL_BYTES, Hole.DURATION, Hole.ID,
                        Hole.REQUEST_ID, Hole.RESPONSE_ID))

#: Envelope.raw_head's holes, in its documented order
_ENVELOPE_ANSWERED = (Hole.REQUEST_BYTES, Hole.RESPONSE_BYTES, Hole.REQUEST_BYTES, Hole.RESPONSE_BYTES,
                      Hole.TOTAL_BYTES, Hole.START, Hole.END, Hole.DURATION)
_ENVELOPE_QUERY = (Hole.REQUEST_BYTES, Hole.REQUEST_BYTES, Hole.TOTAL_BYTES, Hole.START)


class RawTemplate:
    """A %-template (``%d``/``%b`` holes) and the :class:`Hole` each of its holes takes."""

    __slots__ = ("percent", "holes")

    def __init__(self, percent: bytes, holes: tuple[int, ...]) -> None:
        self.percent = percent
        self.holes = holes

    def fill(self, values: list[Any]) -> bytes:
        """The document for ``values`` (indexed by :class:`Hole`)."""
        return self.percent % tuple([values[h] for h in self.holes])


def _compose(*pieces: bytes | Hole) -> tuple[bytes, tuple[int, ...]]:
    """A template from literal pieces (``%`` doubled) and holes."""
    out = bytearray()
    holes = []
    for piece in pieces:
        if isinstance(piece, Hole):
            out += b"%d" if piece in _INT_HOLES else b"%b"
            holes.append(int(piece))
        else:
            out += piece.replace(b"%", b"%%")
    return bytes(out), tuple(holes)


def raw_error(notes: list[str] | None) -> bytes:
    """``error.message`` of a pre-encoded event: one note as a string, several as a list."""
    if not notes:
        return b""
    return b',"error":{"message":' + orjson.dumps(notes[0] if len(notes) == 1 else notes) + b"}"


class Renderer:
    """Turns transactions into events (see the module docstring). Its attributes are what the
    compiled lane reads: the configuration, the template cache, and ``emit_raw``."""

    def __init__(self, config: Any, ctx: ProtocolContext, domains: DomainParts) -> None:
        self.emit = ctx.emit
        # Whether events may share nested objects with each other (memoised dns.* parts): only
        # when the agent says nothing downstream changes an event.
        self.shareable = bool(ctx.events_may_share)
        self.envelope: Envelope = ctx.envelope
        self.domains = domains
        self.include_authorities = bool(config.include_authorities)
        self.include_additionals = bool(config.include_additionals)
        self.send_request = bool(config.send_request)
        self.send_response = bool(config.send_response)
        # Where the pipeline lets it, the document ends with the pipeline's agent, ecs and host
        # (pybeat._fastpath.FastPath.raw_close) and is published as it is; else with "}" and
        # they are spliced in by ``emit``.
        fast = fastpath_of(ctx)
        if fast is not None:
            end = fast.raw_close
            self.emit_raw = fast.emit_closed
        else:
            end = b"}"
            self.emit_raw = self.emit
        request = (b',"request":"ID ', Hole.REQUEST_ID, b"; ", Hole.REQUEST) if self.send_request else ()
        response = (b',"response":"ID ', Hole.RESPONSE_ID, b"; ", Hole.RESPONSE) if self.send_response else ()
        #: the DNS part of an answered transaction's template, then of an unanswered query's
        self.answer_tail = _compose(
            Hole.RESOLVED, b']},"type":"dns","status":"', Hole.STATUS, b'"', Hole.HEAD, b',"dns":{"id":', Hole.ID,
            b",", Hole.DNS, b',"type":"answer"}', *request, *response, Hole.ERROR, end,
        )
        self.query_tail = _compose(
            Hole.RESOLVED, b']},"type":"dns","status":"Error"', Hole.HEAD, b',"dns":{"id":', Hole.ID, b",", Hole.DNS,
            b',"type":"query"}', *request, Hole.ERROR, end,
        )
        #: per flow and shape (answered or not): the template, or None where that flow never
        #: has the usual shape
        self.templates: dict[tuple[Any, ...], RawTemplate | None] = {}

    def publish(self, txn: Txn) -> None:
        """The transaction's event: pre-encoded when it has the usual shape, else a dict."""
        req = txn.request
        if self.shareable and req is not None:
            # A value orjson cannot encode (TypeError) leaves it to the dict path, whose
            # encoder copes.
            try:
                if txn.responses is None:
                    if self.publish_raw_query(txn, req):
                        return
                elif len(txn.responses) == 1 and self.publish_raw(txn, req, txn.responses[0]):
                    return
            except TypeError:
                pass
        self.publish_dict(txn)

    def publish_dict(self, txn: Txn) -> None:
        """The event as a dict (any shape, and whenever something downstream may change it)."""
        req = txn.request
        resp = merge_messages(txn.responses) if txn.responses else None
        main = resp if resp is not None else req
        assert main is not None
        main_id = txn.resp_id if resp is not None else txn.req_id
        dns = dns_fields(main, main_id, self.domains, self.include_authorities, self.include_additionals,
                         self.shareable)
        build = self.envelope.build
        if txn.mdns_only:
            # A lone mDNS message: its sender is the source, and it is not an error.
            fields = build("dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                           txn.ts, None, main.length, 0, main.resolved)
            status = "OK" if main.rcode == 0 else "Error"
        elif req is not None and resp is not None:
            fields = build("dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                           txn.ts, txn.resp_ts, req.length, resp.length, resp.resolved)
            status = "OK" if resp.rcode == 0 else "Error"
        elif req is not None:
            fields = build("dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                           txn.ts, None, req.length, 0, req.resolved)
            status = "Error"
        else:
            assert resp is not None
            fields = build("dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                           None, txn.resp_ts, 0, resp.length, resp.resolved)
            status = "Error"
        dns["type"] = "answer" if resp is not None else "query"
        fields["type"] = "dns"
        fields["status"] = status
        head = head_fields(req if req is not None else main)
        fields["method"] = head[0]
        if head[1] is not None:
            fields["query"] = head[1]
            fields["resource"] = head[2]
        fields["dns"] = dns
        if self.send_request and req is not None:
            fields["request"] = message_string(req, txn.req_id)
        if self.send_response and resp is not None:
            fields["response"] = message_string(resp, txn.resp_id)
        add_notes(fields, txn.notes)
        self.emit(Event(txn.ts, fields))

    def part(self, which: str, msg: Message) -> bytes:
        """One of event.py's memoised JSON parts of ``msg`` by name (for the compiled lane)."""
        if which == "dns_json":
            return dns_json(msg, self.domains, self.include_authorities, self.include_additionals)
        if which == "message_json":
            return message_json(msg)
        if which == "head_json":
            return head_json(msg)
        return resolved_json(msg)

    def template(self, txn: Txn, main: Message, answered: bool) -> RawTemplate | None:
        """The template of a pre-encoded event for this transaction's flow and shape (see
        ``Envelope.raw_head``), or None when the dict path must build the event: the flow has
        no such shape, or the answer names an endpoint (``related.ip`` lists it once)."""
        key = (answered, txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port)
        templates = self.templates
        if key in templates:
            tmpl = templates[key]
        else:
            head = self.envelope.raw_head("dns", *key[1:], answered=answered)
            if len(templates) > 65536:
                templates.clear()
            tmpl = templates[key] = self._template(head, answered) if head is not None else None
        resolved = main.resolved
        if tmpl is None or (resolved and (txn.src_ip in resolved or txn.dst_ip in resolved)):
            return None
        return tmpl

    def _template(self, head: bytes, answered: bool) -> RawTemplate | None:
        envelope = _ENVELOPE_ANSWERED if answered else _ENVELOPE_QUERY
        kinds = head.replace(b"%%", b"").split(b"%")[1:]
        if [k[:1] for k in kinds] != [b"d" if h in _INT_HOLES else b"b" for h in envelope]:
            return None  # not the holes Envelope.raw_head documents: the dict path
        tail, holes = self.answer_tail if answered else self.query_tail
        return RawTemplate(head + tail, envelope + holes)

    def publish_raw(self, txn: Txn, req: Message, resp: Message) -> bool:
        """The usual transaction (a query and its one response, ports and a community id)
        published as a pre-encoded event (see Event.raw): the same document as the dict path,
        built from bytes memoised per flow and per message. False when the transaction has
        another shape: the caller then takes the dict path."""
        start, end = txn.ts, txn.resp_ts
        if txn.mdns_only or not start or end < start:
            return False
        tmpl = self.template(txn, resp, True)
        if tmpl is None:
            return False
        ok = resp.rcode == 0
        notes = txn.notes
        v: list[Any] = [None] * len(Hole)
        v[Hole.REQUEST_BYTES] = rl = req.length
        v[Hole.RESPONSE_BYTES] = sl = resp.length
        v[Hole.TOTAL_BYTES] = rl + sl
        v[Hole.START] = ts_start = format_ts(start).encode()
        v[Hole.END] = format_ts(end).encode() if end // 1_000_000 != start // 1_000_000 else ts_start
        v[Hole.DURATION] = end - start
        v[Hole.RESOLVED] = resolved_json(resp)
        v[Hole.STATUS] = b"OK" if ok else b"Error"
        v[Hole.HEAD] = head_json(req)
        v[Hole.ID] = v[Hole.RESPONSE_ID] = txn.resp_id
        v[Hole.DNS] = dns_json(resp, self.domains, self.include_authorities, self.include_additionals)
        v[Hole.REQUEST_ID] = txn.req_id
        if self.send_request:
            v[Hole.REQUEST] = message_json(req)
        if self.send_response:
            v[Hole.RESPONSE] = message_json(resp)
        v[Hole.ERROR] = raw_error(notes)
        name = resp.questions[0][0] if resp.questions else None
        self.emit_raw(Event(start, None, raw=tmpl.fill(v), digest=("dns", "OK" if ok else "Error", name, notes)))
        return True

    def publish_raw_query(self, txn: Txn, req: Message) -> bool:
        """A query that got no answer (timed out, evicted, duplicated, flushed at the end),
        pre-encoded as in :meth:`publish_raw`; the attack case (floods of random names)."""
        start = txn.ts
        if txn.mdns_only or not start:
            return False
        tmpl = self.template(txn, req, False)
        if tmpl is None:
            return False
        notes = txn.notes
        v: list[Any] = [None] * len(Hole)
        v[Hole.REQUEST_BYTES] = v[Hole.TOTAL_BYTES] = req.length
        v[Hole.START] = format_ts(start).encode()
        v[Hole.RESOLVED] = resolved_json(req)
        v[Hole.HEAD] = head_json(req)
        v[Hole.ID] = v[Hole.REQUEST_ID] = txn.req_id
        v[Hole.DNS] = dns_json(req, self.domains, self.include_authorities, self.include_additionals)
        if self.send_request:
            v[Hole.REQUEST] = message_json(req)
        v[Hole.ERROR] = raw_error(notes)
        name = req.questions[0][0] if req.questions else None
        self.emit_raw(Event(start, None, raw=tmpl.fill(v), digest=("dns", "Error", name, notes)))
        return True
