"""DNS transactions over UDP and TCP: the analyzer the decoder calls.

Owns the DNS flow of a message: decode it (through the message cache), then pair it in the
transaction table (``pairing.py``: the one place where a response meets its query) with
Packetbeat's rules and notes (reference §3.3), and publish the transaction (``render.py``).
The other concerns live beside it: DNS-over-TCP framing (``tcp.py``), zone transfers
(``transfer.py``), mDNS's pairing rules (``mdns.py``). The compiled lane (``_fast.pyx``, from
:meth:`DnsAnalyzer.udp4_lane`) takes the usual UDP/IPv4 message through the same table and
calls :meth:`DnsAnalyzer.message` / :meth:`DnsAnalyzer.answer` for every other one.
Sans-IO: time only comes from packet timestamps (``now_ns``).
"""

from __future__ import annotations

from typing import Any

from pybeat.api import Analyzer, Event, Packet, ProtocolContext, TcpConnection
from pybeat.protocols.dns import errors as notes_
from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.event import flags_json
from pybeat.protocols.dns.mdns import MDNS_PORT, is_multicast_query, legacy_key, lone_message
from pybeat.protocols.dns.names import SAFE_BYTES
from pybeat.protocols.dns.pairing import DUPLICATE, EVICTED, Txn, TxnKey, TxnTable
from pybeat.protocols.dns.rdata import TXT_SAFE, render_opt
from pybeat.protocols.dns.render import Hole, Renderer, raw_error
from pybeat.protocols.dns.tables import TYPES, opcode_name
from pybeat.protocols.dns.tcp import NEED_DATA, FramingError, TcpFramer
from pybeat.protocols.dns.transfer import Transfers, is_transfer, transfer_complete
from pybeat.protocols.dns.wire import Message, MessageCache, Parts, parse_message

__all__ = ["DnsAnalyzer", "MAX_UDP_NON_EDNS"]

MAX_UDP_NON_EDNS = 512


class _TcpState:
    """Per-connection state (kept in ``TcpConnection.state``); index = from_client."""

    __slots__ = ("framers", "last_query")

    def __init__(self) -> None:
        self.framers = (TcpFramer(), TcpFramer())
        self.last_query: TxnKey | None = None  # pending key of the last query on this connection


class DnsAnalyzer(Analyzer):
    def __init__(self, config: Any, ctx: ProtocolContext):
        self.timeout_ns = int(config.transaction_timeout * 1_000_000_000)
        self.mdns = bool(config.mdns)
        self.report_malformed = bool(config.report_malformed)
        self.domains = DomainParts(config.domain_cache_size)
        self.cache = MessageCache(config.message_cache_size)
        self.counters = {
            "messages": 0, "transactions": 0, "unmatched_requests": 0, "unmatched_responses": 0,
            "duplicate_queries": 0, "evicted": 0, "malformed": 0, "undecodable": 0,
            "mdns_messages": 0, "tcp_errors": 0, "internal_errors": 0,
        }
        self.render = Renderer(config, ctx, self.domains)
        self.table = TxnTable(self.timeout_ns, config.max_pending_transactions, self._release)
        self.transfers = Transfers(self._publish)

    # -- sharding -----------------------------------------------------------------------------
    def shard_key(self, payload: bytes) -> int:
        """The DNS ID: with the flow, it keeps a query and its response in one process (mDNS
        legacy replies come from another address and may land elsewhere: see docs/dns.md)."""
        return (payload[0] << 8) | payload[1] if len(payload) >= 2 else 0

    # -- the decoder's calls ------------------------------------------------------------------
    # They never raise: a bug here must cost one message, not the agent.
    # (try is free in CPython 3.11 until something is raised.)
    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        try:
            self._udp(pkt.ts_ns, pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port, payload)
        except Exception:
            self.counters["internal_errors"] += 1

    def on_udp4(self, ts_ns: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes) -> None:
        """``on_udp`` for plain IPv4 datagrams, without building a :class:`Packet`."""
        try:
            self._udp(ts_ns, src_ip, src_port, dst_ip, dst_port, payload)
        except Exception:
            self.counters["internal_errors"] += 1

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        try:
            self._on_tcp_data(conn, from_client, data, ts_ns)
        except Exception:
            self.counters["internal_errors"] += 1
            conn.state = None

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        try:
            st = conn.state
            if st is not None:
                error = st.framers[1 if from_client else 0].gap(nbytes)
                if error is not None:
                    self._tcp_error(st, 1 if from_client else 0, error.note)
        except Exception:
            self.counters["internal_errors"] += 1

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        try:
            st = conn.state
            if st is not None:
                error = st.framers[1 if from_client else 0].close()
                if error is not None:
                    self._tcp_error(st, 1 if from_client else 0, error.note)
                self.transfers.finish(st)
        except Exception:
            self.counters["internal_errors"] += 1

    def expire(self, now_ns: int) -> None:
        try:
            self.table.expire(now_ns)
            if self.transfers.open:
                self.transfers.expire(now_ns - self.timeout_ns)
        except Exception:
            self.counters["internal_errors"] += 1

    def flush(self, now_ns: int) -> None:
        try:
            self.transfers.flush()
            self.table.drain()
        except Exception:
            self.counters["internal_errors"] += 1

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out["pending"] = len(self.table)
        out["message_cache_hits"] = self.cache.hits
        return out

    # -- compiled hot path --------------------------------------------------------------------
    def udp4_lane(self) -> Any:
        """The compiled lane of the usual UDP/IPv4 messages (``_fast.pyx``) on this analyzer's
        table, cache, counters and renderer, or None where the extension was not built."""
        try:
            from pybeat.protocols.dns._fast import DnsUdp4Lane
        except (ImportError, TypeError, ValueError):  # not built, or built apart from pairing.py
            return None
        return DnsUdp4Lane(
            self.table, self.cache, self.counters, self.render, self.fast_parser(), Hole, raw_error, Event,
            self.on_udp4, self.message, self.answer, self.mdns, self.report_malformed, MAX_UDP_NON_EDNS,
        )

    def fast_parser(self) -> Any:
        """The compiled parser of the usual messages (``_fast.pyx``), configured as this
        analyzer renders ``dns.*``, or None where the extension was not built."""
        try:
            from pybeat.protocols.dns._fast import DnsFastParser
        except (ImportError, TypeError, ValueError):  # not built, or built apart from pairing.py
            return None
        return DnsFastParser(Message, Parts, flags_json, TYPES, opcode_name, self.domains,
                             self.render.include_authorities, self.render.include_additionals, render_opt,
                             SAFE_BYTES, TXT_SAFE)

    # -- messages -----------------------------------------------------------------------------
    def _udp(self, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int, payload: bytes) -> None:
        mdns = self.mdns and (sport == MDNS_PORT or dport == MDNS_PORT)
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
        self.message(msg, (payload[0] << 8) | payload[1], ts, src_ip, sport, dst_ip, dport, "udp", None)

    def message(self, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int,
                transport: str, st: _TcpState | None = None) -> None:
        """A decoded message (``msg_id``: its own ID; a cached message may stand for others)."""
        if msg.mdns:
            self.counters["mdns_messages"] += 1
        if msg.qr == 0:
            self._query(msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport, st)
            return
        alt = ("mdns", transport, dst_ip, dport, msg_id) if msg.mdns else None
        txn = self.table.take((transport, dst_ip, dport, src_ip, sport, msg_id), ts, alt)
        self.answer(txn, msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport, st)

    def _query(self, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int,
               transport: str, st: _TcpState | None) -> None:
        if is_multicast_query(msg, dst_ip, sport):
            txn = lone_message(msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport)
            self._note_malformed(txn, msg, False)
            self._publish(txn)
            return
        key = legacy_key(msg, transport, src_ip, sport, dst_ip, msg_id) or (
            transport, src_ip, sport, dst_ip, dport, msg_id)
        txn = Txn(ts, src_ip, sport, dst_ip, dport, transport)
        txn.request = msg
        txn.req_id = msg_id
        self._note_malformed(txn, msg, False)
        if transport == "udp" and msg.opt is not None and msg.length > MAX_UDP_NON_EDNS:
            txn.note(notes_.UDP_TOO_LARGE)
        self.table.add(key, txn)
        if st is not None:
            st.last_query = key

    def answer(self, txn: Txn | None, msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str,
               dport: int, transport: str, st: _TcpState | None = None) -> None:
        """A response, with the query ``TxnTable.take`` found for it (None: an orphan, or an
        mDNS answer of its own): notes, then the event (or the rest of a zone transfer)."""
        if txn is None:
            if msg.mdns and sport == MDNS_PORT:
                # An mDNS announcement or multicast answer: an event of its own, not an error.
                txn = lone_message(msg, msg_id, ts, src_ip, sport, dst_ip, dport, transport)
                self._note_malformed(txn, msg, True)
                self._publish(txn)
                return
            txn = Txn(ts, dst_ip, dport, src_ip, sport, transport)
            txn.note(notes_.ORPHANED_RESPONSE)
            self.counters["unmatched_responses"] += 1
        txn.responses = [msg]
        txn.resp_id = msg_id
        txn.resp_ts = ts
        self._note_malformed(txn, msg, True)
        if transport == "udp":
            resp_edns = msg.opt is not None
            if not resp_edns and msg.length > MAX_UDP_NON_EDNS:
                txn.note(notes_.RESP_UDP_TOO_LARGE)
            req = txn.request
            if req is not None:
                req_edns = req.opt is not None
                if req_edns and not resp_edns:
                    txn.note(notes_.RESP_EDNS_NO_SUPPORT)
                elif resp_edns and not req_edns:
                    txn.note(notes_.RESP_EDNS_UNEXPECTED)
        elif st is not None and is_transfer(txn) and not transfer_complete(txn):
            self.transfers.start(st, txn)
            return
        self._publish(txn)

    @staticmethod
    def _note_malformed(txn: Txn, msg: Message, is_response: bool) -> None:
        if msg.error is not None:
            txn.note(notes_.response(notes_.NON_DNS) if is_response else notes_.NON_DNS)

    def _release(self, txn: Txn, reason: int) -> None:
        """A query that left the table without its answer (TxnTable's ``release``)."""
        if reason == DUPLICATE:
            self.counters["duplicate_queries"] += 1
            txn.note(notes_.DUPLICATE_QUERY)
            self._publish(txn)
            return
        if reason == EVICTED:
            self.counters["evicted"] += 1
            txn.note(notes_.EVICTED)
        txn.note(notes_.NO_RESPONSE)
        self.counters["unmatched_requests"] += 1
        self._publish(txn)

    def _publish(self, txn: Txn) -> None:
        self.counters["transactions"] += 1
        self.render.publish(txn)

    # -- TCP ----------------------------------------------------------------------------------
    def _on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        st = conn.state
        if st is None:
            st = conn.state = _TcpState()
        d = 1 if from_client else 0
        framer = st.framers[d]
        framer.feed(data, ts_ns)
        while True:
            event = framer.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, FramingError):
                self._tcp_error(st, d, event.note)
            else:
                self._tcp_message(conn, st, d, event.raw, event.length, event.ts)

    def _tcp_error(self, st: _TcpState, d: int, note: str) -> None:
        """An error in one direction: on the response side, the connection's pending query is
        published with ``Response: <note>`` (Packetbeat's publishResponseError)."""
        self.counters["tcp_errors"] += 1
        if d == 1:
            return
        transfer = self.transfers.get(st)
        if transfer is not None:
            transfer.note(notes_.response(note))
            self.transfers.finish(st)
            return
        key = st.last_query
        txn = self.table.pop(key) if key is not None else None
        if txn is not None:
            txn.note(notes_.response(note))
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
        transfer = self.transfers.get(st)
        if transfer is not None:
            if msg.qr and transfer.request is not None and msg.id == transfer.req_id and transfer.responses is not None:
                self.transfers.add(st, transfer, msg, ts)
                return
            self.transfers.finish(st)
        self.message(msg, msg.id, ts, src_ip, sport, dst_ip, dport, "tcp", st)
