"""DNS transactions: pairing queries with responses over UDP and TCP, timeouts, mDNS.

Owns the pending-query table (bounded: the oldest query is evicted and counted when it is
full), Packetbeat's pairing rules and notes (reference §3.3), DNS-over-TCP framing (2-byte
length prefix; messages split over segments or several per segment; gaps; FIN), zone
transfers answered in several TCP messages (kept as one transaction), and mDNS on port 5353.
Sans-IO: time only comes from packet timestamps (``now_ns``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from pybeat._fastpath import fastpath_of
from pybeat.api import Analyzer, Envelope, Event, Packet, ProtocolContext, TcpConnection, add_notes, format_ts
from pybeat.protocols.dns import errors as notes_
from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.event import (
    dns_fields, dns_json, flags_json, head_fields, head_json, merge_messages, message_json, message_string,
    resolved_json,
)
from pybeat.protocols.dns.rdata import render_opt
from pybeat.protocols.dns.tables import TYPES, opcode_name
from pybeat.protocols.dns.wire import Message, MessageCache, parse_message

__all__ = ["DnsAnalyzer"]

#: pending-table key: (transport, client ip, client port, server ip, server port, id), or
#: ("mdns", transport, client ip, client port, id) for legacy mDNS queries
TxnKey = tuple[Any, ...]

MDNS_PORT = 5353
MAX_UDP_NON_EDNS = 512
_ZONE_TRANSFERS = (251, 252)  # IXFR, AXFR
_MDNS_GROUPS = ("224.0.0.251", "ff02::fb")


class _Txn:
    """One transaction: a query and/or its response(s), with the endpoints of the query."""

    __slots__ = (
        "ts", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "request", "responses",
        "resp_ts", "notes", "mdns_only", "req_id", "resp_id",
    )

    def __init__(self, ts: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, transport: str):
        self.ts = ts
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.transport = transport
        # Messages may be shared with the message cache (another ID): the IDs live here.
        self.request: Message | None = None
        self.req_id = 0
        self.responses: list[Message] | None = None  # several only for zone transfers
        self.resp_id = 0
        self.resp_ts = 0
        self.notes: list[str] | None = None  # most transactions have none: no list then
        self.mdns_only = False


def _note(txn: _Txn, text: str) -> None:
    if txn.notes is None:
        txn.notes = [text]
    else:
        txn.notes.append(text)


class _TcpState:
    """Per-connection parser state (kept in ``TcpConnection.state``); index = from_client."""

    __slots__ = ("bufs", "start_ts", "skip", "last_query", "transfer")

    def __init__(self) -> None:
        self.bufs = (bytearray(), bytearray())
        self.start_ts = [0, 0]
        self.skip = [0, 0]  # bytes of a message cut by a gap still to skip, to resync
        self.last_query: TxnKey | None = None  # pending key of the last query on this connection
        self.transfer: _Txn | None = None  # zone transfer still receiving answer messages


class DnsAnalyzer(Analyzer):
    def __init__(self, config: Any, ctx: ProtocolContext):
        self.emit = ctx.emit
        # Whether events may share nested objects with each other (memoised dns.* parts): only
        # when the agent says nothing downstream changes an event.
        self._shareable = ctx.events_may_share
        self.envelope: Envelope = ctx.envelope
        self.timeout_ns = int(config.transaction_timeout * 1_000_000_000)
        self.max_pending = config.max_pending_transactions
        self.include_authorities = config.include_authorities
        self.include_additionals = config.include_additionals
        self.send_request = config.send_request
        self.send_response = config.send_response
        self.mdns = config.mdns
        self.report_malformed = config.report_malformed
        self.domains = DomainParts(config.domain_cache_size)
        self.cache = MessageCache(config.message_cache_size)
        # Insertion-ordered (queries arrive in packet-time order), and an OrderedDict so that
        # taking the oldest entry stays O(1) however many were removed before it.
        self.pending: OrderedDict[TxnKey, _Txn] = OrderedDict()
        self.transfers: dict[int, tuple[_TcpState, _Txn]] = {}
        # Pre-encoded events (_publish_raw): a %-template per flow and shape (answered or
        # not), the envelope's head followed by the DNS part, which depends only on the
        # configuration.
        self._raw_templates: dict[tuple[Any, ...], bytes] = {}
        # Where the pipeline lets it, the document ends with the pipeline's agent, ecs and host
        # (pybeat._fastpath.FastPath.raw_close) and is published as it is; else with "}" and
        # they are spliced in by ``emit``.
        fast = fastpath_of(ctx)
        if fast is not None:
            end = fast.raw_close.replace(b"%", b"%%")  # a template
            self._emit_raw = fast.emit_closed
        else:
            end = b"}"
            self._emit_raw = self.emit
        self._raw_tail = (
            b'%b]},"type":"dns","status":"%b"%b,"dns":{"id":%d,%b,"type":"answer"}'
            + (b',"request":"ID %d; %b' if self.send_request else b"")
            + (b',"response":"ID %d; %b' if self.send_response else b"")
            + b"%b" + end
        )
        # The same for a query that got no answer (_publish_raw_query).
        self._raw_query_tail = (
            b'%b]},"type":"dns","status":"Error"%b,"dns":{"id":%d,%b,"type":"query"}'
            + (b',"request":"ID %d; %b' if self.send_request else b"")
            + b"%b" + end
        )
        self.counters = {
            "messages": 0, "transactions": 0, "unmatched_requests": 0, "unmatched_responses": 0,
            "duplicate_queries": 0, "evicted": 0, "malformed": 0, "undecodable": 0,
            "mdns_messages": 0, "tcp_errors": 0, "internal_errors": 0,
        }

    # -- sharding -----------------------------------------------------------------------------
    def shard_key(self, payload: bytes) -> int:
        """The DNS ID: with the flow, it keeps a query and its response in one process (mDNS
        legacy replies come from another address and may land elsewhere: see docs/dns.md)."""
        return (payload[0] << 8) | payload[1] if len(payload) >= 2 else 0

    # -- UDP ----------------------------------------------------------------------------------
    # The public entry points never raise: a bug here must cost one message, not the agent.
    # (try is free in CPython 3.11 until something is raised.)
    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        try:
            self._on_udp(pkt, payload)
        except Exception:
            self.counters["internal_errors"] += 1

    def on_udp4(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes) -> None:
        """``on_udp`` for plain IPv4 datagrams, with the usual transaction inline: a new query,
        or the response to a pending one, with nothing to note. Anything else takes the
        general path below with the same effects (the inline steps are a subset of
        ``_on_udp``/``_query``/``_response``; tests/dns/test_dns_udp4_inline.py compares)."""
        try:
            if len(payload) < 12 or (self.mdns and (src_port == MDNS_PORT or dst_port == MDNS_PORT)):
                self._on_udp(Packet(ts_ns, src_ip, dst_ip, src_port, dst_port, "udp", 4, ()), payload)
                return
            cache = self.cache
            msg = cache.entries.get(payload[2:]) if cache.size > 0 else None
            if msg is None:
                msg = cache.parse(payload, False)
                if msg is None:  # not reached: 12 bytes always parse
                    return
            else:
                cache.hits += 1
            c = self.counters
            c["messages"] += 1
            msg_id = (payload[0] << 8) | payload[1]
            if msg.error is None:
                pending = self.pending
                if msg.qr == 0:
                    key = ("udp", src_ip, src_port, dst_ip, dst_port, msg_id)
                    if key not in pending and len(pending) < self.max_pending and (
                        msg.opt is None or msg.length <= MAX_UDP_NON_EDNS
                    ):
                        txn = _Txn(ts_ns, src_ip, src_port, dst_ip, dst_port, "udp")
                        txn.request = msg
                        txn.req_id = msg_id
                        pending[key] = txn
                        return
                else:
                    key = ("udp", dst_ip, dst_port, src_ip, src_port, msg_id)
                    hit = pending.get(key)
                    if hit is not None and ts_ns - hit.ts < self.timeout_ns:
                        txn = hit
                        req = txn.request
                        if req is not None and txn.responses is None and (
                            (msg.opt is None and req.opt is None and msg.length <= MAX_UDP_NON_EDNS)
                            or (msg.opt is not None and req.opt is not None)
                        ):
                            del pending[key]
                            txn.responses = [msg]
                            txn.resp_id = msg_id
                            txn.resp_ts = ts_ns
                            self._publish(txn)
                            return
            else:
                c["malformed"] += 1
                if not self.report_malformed:
                    return
            self._message(msg, msg_id, ts_ns, src_ip, src_port, dst_ip, dst_port, "udp", None)
        except Exception:
            self.counters["internal_errors"] += 1

    def udp4_lane(self) -> Any:
        """``on_udp4`` and ``_publish_raw`` compiled, on this analyzer's own tables (see
        pybeat/_speedups.pyx), or None where the extension was not built."""
        try:
            from pybeat._speedups import DnsUdp4Lane
        except ImportError:
            return None
        return DnsUdp4Lane(
            self, _Txn, Event, format_ts, dns_json, message_json, head_json, resolved_json, _raw_error,
            self.fast_parser(),
        )

    def fast_parser(self) -> Any:
        """The compiled parser of the usual messages (pybeat/_speedups.pyx), configured as this
        analyzer renders ``dns.*``, or None where the extension was not built."""
        try:
            from pybeat._speedups import DnsFastParser
        except ImportError:
            return None
        return DnsFastParser(Message, flags_json, TYPES, opcode_name, self.domains,
                             self.include_authorities, self.include_additionals, render_opt)

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        try:
            self._on_tcp_data(conn, from_client, data, ts_ns)
        except Exception:
            self.counters["internal_errors"] += 1
            conn.state = None

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        try:
            self._on_tcp_gap(conn, from_client, nbytes, ts_ns)
        except Exception:
            self.counters["internal_errors"] += 1

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        try:
            self._on_tcp_close(conn, from_client, ts_ns)
        except Exception:
            self.counters["internal_errors"] += 1

    def expire(self, now_ns: int) -> None:
        try:
            self._expire(now_ns)
        except Exception:
            self.counters["internal_errors"] += 1

    def flush(self, now_ns: int) -> None:
        try:
            self._flush(now_ns)
        except Exception:
            self.counters["internal_errors"] += 1

    def _on_udp(self, pkt: Packet, payload: bytes) -> None:
        mdns = self.mdns and (pkt.src_port == MDNS_PORT or pkt.dst_port == MDNS_PORT)
        msg = self.cache.parse(payload, mdns)
        c = self.counters
        c["messages"] += 1
        if msg is None:
            c["undecodable"] += 1
            return
        if msg.error is not None:
            c["malformed"] += 1
            if not self.report_malformed:
                return
        msg_id = (payload[0] << 8) | payload[1]
        self._message(msg, msg_id, pkt.ts_ns, pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port, "udp", None)

    # -- TCP ----------------------------------------------------------------------------------
    def _on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        st = conn.state
        if st is None:
            st = conn.state = _TcpState()
        d = 1 if from_client else 0
        skip = st.skip[d]
        if skip:
            if len(data) <= skip:
                st.skip[d] = skip - len(data)
                return
            data = data[skip:]
            st.skip[d] = 0
        buf = st.bufs[d]
        if not buf:
            st.start_ts[d] = ts_ns
        buf += data
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length == 0:
                self._tcp_error(st, d, notes_.ZERO_LENGTH)
                pos = n  # the stream cannot be framed any more: drop what is buffered
                break
            if n - pos < length + 2:
                break
            raw = bytes(buf[pos + 2 : pos + 2 + length])
            pos += length + 2
            self._tcp_message(conn, st, d, raw, length + 2, st.start_ts[d])
            st.start_ts[d] = ts_ns
        if pos:
            del buf[:pos]

    def _on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        st = conn.state
        if st is None:
            return
        d = 1 if from_client else 0
        buf = st.bufs[d]
        if not buf:
            # Gap between messages: we cannot know where the next one starts; carry on as
            # Packetbeat does (the next bytes are read as a length prefix).
            return
        if len(buf) >= 2:
            missing = ((buf[0] << 8) | buf[1]) + 2 - len(buf)
            if nbytes <= missing:
                st.skip[d] = missing - nbytes  # resynchronise at the next message
        buf.clear()
        self._tcp_error(st, d, notes_.INCOMPLETE)

    def _on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        st = conn.state
        if st is None:
            return
        d = 1 if from_client else 0
        if st.bufs[d]:
            st.bufs[d].clear()
            self._tcp_error(st, d, notes_.INCOMPLETE)
        if st.transfer is not None:
            self._finish_transfer(st)

    def _tcp_error(self, st: _TcpState, d: int, note: str) -> None:
        """An error in one direction: on the response side, the connection's pending query is
        published with ``Response: <note>`` (Packetbeat's publishResponseError)."""
        self.counters["tcp_errors"] += 1
        if d == 1:
            return
        if st.transfer is not None:
            _note(st.transfer, notes_.response(note))
            self._finish_transfer(st)
            return
        key = st.last_query
        txn = self.pending.pop(key, None) if key is not None else None
        if txn is not None:
            _note(txn, notes_.response(note))
            self._publish(txn)

    def _tcp_message(self, conn: TcpConnection, st: _TcpState, d: int, raw: bytes, length: int, ts: int) -> None:
        c = self.counters
        c["messages"] += 1
        msg = parse_message(raw)
        if msg is None:
            c["undecodable"] += 1
            self._tcp_error(st, d, notes_.NON_DNS)
            return
        if msg.error is not None:
            c["malformed"] += 1
            if not self.report_malformed:
                self._tcp_error(st, d, notes_.NON_DNS)
                return
        msg.length = length
        if d:
            src_ip, sport, dst_ip, dport = conn.client_ip, conn.client_port, conn.server_ip, conn.server_port
        else:
            src_ip, sport, dst_ip, dport = conn.server_ip, conn.server_port, conn.client_ip, conn.client_port
        tr = st.transfer
        if tr is not None:
            if msg.qr and tr.request is not None and msg.id == tr.req_id and tr.responses is not None:
                tr.responses.append(msg)
                tr.resp_ts = ts
                if _transfer_complete(tr):
                    self._finish_transfer(st)
                return
            self._finish_transfer(st)
        self._message(msg, msg.id, ts, src_ip, sport, dst_ip, dport, "tcp", st)

    def _finish_transfer(self, st: _TcpState) -> None:
        txn = st.transfer
        st.transfer = None
        if txn is not None:
            self.transfers.pop(id(st), None)
            self._publish(txn)

    # -- pairing ------------------------------------------------------------------------------
    def _message(
        self, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int,
        transport: str, st: _TcpState | None,
    ) -> None:
        if msg.mdns:
            self.counters["mdns_messages"] += 1
        if msg.qr == 0:
            self._query(msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport, st)
        else:
            self._response(msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport, st)

    def _query(
        self, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int, transport: str,
        st: _TcpState | None,
    ) -> None:
        pending = self.pending
        if msg.mdns and dst_ip in _MDNS_GROUPS:
            if sport == MDNS_PORT:
                # A multicast mDNS query: answers go to the group, not back to this tuple.
                txn = _Txn(ts, src_ip, sport, dst_ip, dport, transport)
                txn.request = msg
                txn.req_id = msg_id
                txn.mdns_only = True
                self._note_malformed(txn, msg, False)
                self._publish(txn)
                return
            # Legacy unicast query (RFC 6762 §6.7): the reply comes from a responder's own address.
            key: TxnKey = ("mdns", transport, src_ip, sport, msg_id)
        else:
            key = (transport, src_ip, sport, dst_ip, dport, msg_id)
        old = pending.pop(key, None)
        if old is not None:
            if ts - old.ts >= self.timeout_ns:
                self._expire_one(old)
            else:
                self.counters["duplicate_queries"] += 1
                _note(old, notes_.DUPLICATE_QUERY)
                self._publish(old)
        txn = _Txn(ts, src_ip, sport, dst_ip, dport, transport)
        txn.request = msg
        txn.req_id = msg_id
        if msg.error is not None:
            self._note_malformed(txn, msg, False)
        if transport == "udp" and msg.opt is not None and msg.length > MAX_UDP_NON_EDNS:
            _note(txn, notes_.UDP_TOO_LARGE)
        if len(pending) >= self.max_pending:
            _oldest, victim = pending.popitem(last=False)
            self.counters["evicted"] += 1
            _note(victim, notes_.EVICTED)
            self._expire_one(victim)
        pending[key] = txn
        if st is not None:
            st.last_query = key

    def _response(
        self, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int, transport: str,
        st: _TcpState | None,
    ) -> None:
        pending = self.pending
        txn = pending.pop((transport, dst_ip, dport, src_ip, sport, msg_id), None)
        if txn is None and msg.mdns:
            txn = pending.pop(("mdns", transport, dst_ip, dport, msg_id), None)
        if txn is not None and ts - txn.ts >= self.timeout_ns:
            self._expire_one(txn)  # expired but not yet swept: invisible, as in Packetbeat
            txn = None
        if txn is None:
            if msg.mdns and sport == MDNS_PORT:
                # An mDNS announcement or multicast answer: an event of its own, not an error.
                txn = _Txn(ts, src_ip, sport, dst_ip, dport, transport)
                txn.mdns_only = True
                txn.responses = [msg]
                txn.resp_id = msg_id
                txn.resp_ts = ts
                self._note_malformed(txn, msg, True)
                self._publish(txn)
                return
            txn = _Txn(ts, dst_ip, dport, src_ip, sport, transport)
            _note(txn, notes_.ORPHANED_RESPONSE)
            self.counters["unmatched_responses"] += 1
        txn.responses = [msg]
        txn.resp_id = msg_id
        txn.resp_ts = ts
        if msg.error is not None:
            self._note_malformed(txn, msg, True)
        if transport == "udp":
            resp_edns = msg.opt is not None
            if not resp_edns and msg.length > MAX_UDP_NON_EDNS:
                _note(txn, notes_.RESP_UDP_TOO_LARGE)
            req = txn.request
            if req is not None:
                req_edns = req.opt is not None
                if req_edns and not resp_edns:
                    _note(txn, notes_.RESP_EDNS_NO_SUPPORT)
                elif resp_edns and not req_edns:
                    _note(txn, notes_.RESP_EDNS_UNEXPECTED)
        elif (
            st is not None and txn.request is not None and txn.request.questions
            and txn.request.questions[0][1] in _ZONE_TRANSFERS and not _transfer_complete(txn)
        ):
            st.transfer = txn
            self.transfers[id(st)] = (st, txn)
            return
        self._publish(txn)

    @staticmethod
    def _note_malformed(txn: _Txn, msg: Message, is_response: bool) -> None:
        if msg.error is not None:
            _note(txn, notes_.response(notes_.NON_DNS) if is_response else notes_.NON_DNS)

    # -- time ---------------------------------------------------------------------------------
    def _expire_one(self, txn: _Txn) -> None:
        _note(txn, notes_.NO_RESPONSE)
        self.counters["unmatched_requests"] += 1
        self._publish(txn)

    def _expire(self, now_ns: int) -> None:
        pending = self.pending
        limit = now_ns - self.timeout_ns
        while pending:
            key = next(iter(pending))
            txn = pending[key]
            if txn.ts > limit:
                break
            del pending[key]
            self._expire_one(txn)
        if self.transfers:
            for st, txn in list(self.transfers.values()):
                if txn.resp_ts <= limit:
                    self._finish_transfer(st)

    def _flush(self, now_ns: int) -> None:
        for st, _txn in list(self.transfers.values()):
            self._finish_transfer(st)
        pending = self.pending  # emptied in place: the compiled lane holds this table too
        while pending:  # oldest first; each one freed once published (it now holds its render)
            _key, txn = pending.popitem(last=False)
            self._expire_one(txn)

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out["pending"] = len(self.pending)
        out["message_cache_hits"] = self.cache.hits
        return out

    # -- events -------------------------------------------------------------------------------
    def _publish(self, txn: _Txn) -> None:
        self.counters["transactions"] += 1
        req = txn.request
        if self._shareable and req is not None:
            # The pre-encoded event when the transaction has the usual shape. A value orjson
            # cannot encode (TypeError) leaves it to the dict path, whose encoder copes.
            try:
                if txn.responses is None:
                    if self._publish_raw_query(txn, req):
                        return
                elif len(txn.responses) == 1 and self._publish_raw(txn, req, txn.responses[0]):
                    return
            except TypeError:
                pass
        self._publish_dict(txn)

    def _publish_dict(self, txn: _Txn) -> None:
        """The event as a dict (any shape, and whenever something downstream may change it)."""
        req = txn.request
        resp = merge_messages(txn.responses) if txn.responses else None
        main = resp if resp is not None else req
        assert main is not None
        main_id = txn.resp_id if resp is not None else txn.req_id
        shareable = self._shareable
        dns = dns_fields(main, main_id, self.domains, self.include_authorities, self.include_additionals,
                         shareable)
        if txn.mdns_only:
            # A lone mDNS message: its sender is the source, and it is not an error.
            fields = self.envelope.build(
                "dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                txn.ts, None, main.length, 0, main.resolved,
            )
            status = "OK" if main.rcode == 0 else "Error"
        elif req is not None and resp is not None:
            fields = self.envelope.build(
                "dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                txn.ts, txn.resp_ts, req.length, resp.length, resp.resolved,
            )
            status = "OK" if resp.rcode == 0 else "Error"
        elif req is not None:
            fields = self.envelope.build(
                "dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                txn.ts, None, req.length, 0, req.resolved,
            )
            status = "Error"
        else:
            assert resp is not None
            fields = self.envelope.build(
                "dns", txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port,
                None, txn.resp_ts, 0, resp.length, resp.resolved,
            )
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


    def _raw_template(self, txn: _Txn, main: Message, answered: bool) -> bytes | None:
        """The %-template of a pre-encoded event for this transaction's flow and shape (see
        ``Envelope.raw_head``), or None when the dict path must build the event: the flow has
        no such shape, or the answer names an endpoint (``related.ip`` lists it once)."""
        key = (answered, txn.transport, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port)
        tmpl = self._raw_templates.get(key)
        if tmpl is None:
            head = self.envelope.raw_head("dns", *key[1:], answered=answered)
            if len(self._raw_templates) > 65536:
                self._raw_templates.clear()
            tail = self._raw_tail if answered else self._raw_query_tail
            tmpl = self._raw_templates[key] = (head + tail) if head is not None else b""
        resolved = main.resolved
        if not tmpl or (resolved and (txn.src_ip in resolved or txn.dst_ip in resolved)):
            return None
        return tmpl

    def _publish_raw(self, txn: _Txn, req: Message, resp: Message) -> bool:
        """The usual transaction (a query and its one response, ports and a community id)
        published as a pre-encoded event (see Event.raw): the same document as the dict path
        below (tested on every capture), built from bytes memoised per flow and per message.
        False when the transaction has another shape: the caller then takes the dict path."""
        start, end = txn.ts, txn.resp_ts
        if txn.mdns_only or not start or end < start:
            return False
        tmpl = self._raw_template(txn, resp, True)
        if tmpl is None:
            return False
        rl, sl = req.length, resp.length
        ok = resp.rcode == 0
        notes = txn.notes
        error = _raw_error(notes)
        ts_start = format_ts(start).encode()
        args: tuple[Any, ...] = (
            rl, sl, rl, sl, rl + sl, ts_start, format_ts(end).encode() if end // 1_000_000 != start // 1_000_000 else ts_start,
            end - start, resolved_json(resp), b"OK" if ok else b"Error", head_json(req), txn.resp_id,
            dns_json(resp, self.domains, self.include_authorities, self.include_additionals),
        )
        if self.send_request:
            args += (txn.req_id, message_json(req))
        if self.send_response:
            args += (txn.resp_id, message_json(resp))
        raw = tmpl % (*args, error)
        name = resp.questions[0][0] if resp.questions else None
        self._emit_raw(Event(start, None, raw=raw, digest=("dns", "OK" if ok else "Error", name, notes)))
        return True


    def _publish_raw_query(self, txn: _Txn, req: Message) -> bool:
        """A query that got no answer (timed out, evicted, duplicated, flushed at the end),
        pre-encoded as in :meth:`_publish_raw`; the attack case (floods of random names)."""
        start = txn.ts
        if txn.mdns_only or not start:
            return False
        tmpl = self._raw_template(txn, req, False)
        if tmpl is None:
            return False
        rl = req.length
        notes = txn.notes
        error = _raw_error(notes)
        args: tuple[Any, ...] = (
            rl, rl, rl, format_ts(start).encode(), resolved_json(req), head_json(req), txn.req_id,
            dns_json(req, self.domains, self.include_authorities, self.include_additionals),
        )
        if self.send_request:
            args += (txn.req_id, message_json(req))
        raw = tmpl % (*args, error)
        name = req.questions[0][0] if req.questions else None
        self._emit_raw(Event(start, None, raw=raw, digest=("dns", "Error", name, notes)))
        return True


def _raw_error(notes: list[str] | None) -> bytes:
    """``error.message`` of a pre-encoded event: one note as a string, several as a list."""
    if not notes:
        return b""
    return b',"error":{"message":' + orjson.dumps(notes[0] if len(notes) == 1 else notes) + b"}"


def _transfer_complete(txn: _Txn) -> bool:
    """Whether a zone transfer answer is complete (RFC 5936, RFC 1995).

    Complete on an error, when the answer does not start with a SOA, for a lone SOA answering
    an IXFR (the client is up to date), or when the last record is a SOA with the first
    record's serial and that SOA has been seen as often as the format needs: twice for a full
    zone (first and last), three times for an incremental IXFR (first, the start of the last
    diff's additions, last), which is recognised by a second record that is also a SOA.
    """
    msgs = txn.responses
    if not msgs:
        return False
    first = msgs[0]
    if first.rcode != 0 or first.error is not None or not first.answers:
        return True
    head = first.answers[0]
    if head is None or head.get("type") != "SOA":
        return True
    records = [r for m in msgs for r in m.answers]
    req = txn.request
    if len(records) == 1:
        return bool(req and req.questions and req.questions[0][1] == 251)
    tail = records[-1]
    serial = head.get("serial")
    if tail is None or tail.get("type") != "SOA" or tail.get("serial") != serial:
        return False
    second = records[1]
    incremental = second is not None and second.get("type") == "SOA" and second.get("serial") != serial
    seen = sum(1 for r in records if r is not None and r.get("type") == "SOA" and r.get("serial") == serial)
    return seen >= (3 if incremental else 2)
