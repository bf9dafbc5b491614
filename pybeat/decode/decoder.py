"""Frames in, protocol analyzer calls out.

Owns: link layers (Ethernet, Linux SLL and SLL2, raw IP, BSD loopback/null), 802.1Q / 802.1ad
VLAN tags, IPv4 (with options) and IPv6 (with extension headers), one level of IP-in-IP
tunnelling, fragment reassembly, UDP, TCP (through :class:`TcpReassembler`) and ICMP, and
dispatch to analyzers by port (UDP: source port first, then destination port, as Packetbeat).

It never raises for a packet: anything malformed is counted in ``errors`` by reason and the
packet is skipped. This is the hot path: plain code, ``struct`` calls, no per-packet logging.
An exception raised by an analyzer (whatever its type) costs only that packet: it goes to
``on_analyzer_error(analyzer, exc)`` when the agent gives one (counted and logged under the
plugin's name), else it is counted as ``analyzer_exception``, with ``last_exception`` set; never
as a malformed packet.

Time: packet time drives expiry, one tick (``tick``) every ``tick_interval_s`` of it. A frame
stamped more than ``MAX_TIME_JUMP_NS`` (one hour) after the previous frame does not tick on its
own: it is counted in ``errors.timestamp_jump`` and decoded as usual, but it neither expires
pending work nor moves the next tick. So one outlier frame (a broken clock saying 2097) changes
nothing, while a real jump (a capture resumed hours later) is confirmed by the frame after it,
which is at or after the jump, and ticks then. Two outlier frames in a row look like a real jump.
A first frame that is itself an outlier is not detected.

The compiled replay loop (``_replay.pyx``) drives a decoder through its public surface only:
``decode``, ``decode_udp4``, ``packet_tick`` / ``next_tick``, ``analyzer_failed``, the counters
(``packets``, ``bytes``, ``dispatched``, ``skipped_other_shard``, ``now_ns``) and the settings
(``udp_ports``, ``shard``, ``split_by``, ``observer``).
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from pybeat.api import Analyzer, Packet
from pybeat.decode.ipfrag import FragmentReassembler
from pybeat.decode.tcp import TcpReassembler
from pybeat.logs import get_logger

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OLD = 12
LINKTYPE_RAW_BSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINK_TYPES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW_OLD: "raw IP",
    LINKTYPE_RAW_BSD: "raw IP",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

#: How a split run (``shard``) assigns a packet to a process: "flow" hashes both endpoints
#: (address and port) and the analyzer's ``shard_key`` (DNS: the message id), so queries spread
#: evenly; "address_pair" hashes the two IP addresses only, so every transaction between one
#: client and one server lands in one process (what a detector keeping per-client state
#: needs). Analyzers with ``shard_by_key_only`` (DHCP: an exchange changes addresses) keep
#: their key in both modes.
SPLIT_MODES = ("flow", "address_pair")

#: a frame this far ahead of the previous one does not drive expiry on its own (timestamp_jump)
MAX_TIME_JUMP_NS = 3600 * 1_000_000_000

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = {0, 43, 60, 51, 135, 139, 140}
_NULL_IPV6 = {24, 28, 30}
_U16 = struct.Struct("!H").unpack_from
_UDP = struct.Struct("!HHH").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from
_IP4 = struct.Struct("!BxHHHBB").unpack_from  # vihl, total length, id, flags/offset, ttl, proto


def common_udp4(frame: bytes, flen: int) -> int:
    """The decoder's common case: an Ethernet frame of UDP in IPv4 without options, not a
    fragment, all of it inside the frame. Its IPv4 total length, else 0. The compiled loop's
    twin (``pybeat.decode._replay``) is tested against this one."""
    if (
        flen >= 42 and frame[23] == 17 and frame[14] == 0x45 and frame[12] == 8
        and frame[13] == 0 and not (frame[20] & 0x3F or frame[21])
    ):
        total = (frame[16] << 8) | frame[17]
        if 28 <= total <= flen - 14:
            return total
    return 0


def split_hash(src: bytes, sport: int, dst: bytes, dport: int, key: int) -> int:
    """The hash that assigns a packet to a process of a split run (24 bits): symmetric in the
    two endpoints (raw address, port), then mixed with the analyzer's key (multiplicative
    hashing, high bits) so that keys with constant low bits still spread. "address_pair" mode
    passes ports and key as 0. The compiled loop's twin (``pybeat.decode._replay``) is
    tested against this one."""
    h = zlib.crc32(src, sport) ^ zlib.crc32(dst, dport)
    return (((h ^ key) & 0xFFFFFFFF) * 0x9E3779B1 & 0xFFFFFFFF) >> 8


@dataclass
class DecoderLimits:
    """Caps of the decoding layer's buffers (see ipfrag.py and tcp.py)."""

    max_fragmented_datagrams: int = 1024
    fragment_timeout_s: float = 30.0
    max_tcp_connections: int = 65536
    tcp_idle_timeout_s: float = 120.0
    max_ooo_segments: int = 64
    max_ooo_bytes: int = 1 << 20
    tick_interval_s: float = 0.5


class Decoder:
    """Decode frames and call the analyzers registered for their ports.

    ``udp_ports``/``tcp_ports`` map a port to the analyzer that owns it; ``icmp`` receives every
    ICMP/ICMPv6 message when set.
    """

    def __init__(
        self,
        udp_ports: dict[int, Analyzer] | None = None,
        tcp_ports: dict[int, Analyzer] | None = None,
        icmp: Analyzer | None = None,
        limits: DecoderLimits | None = None,
        shard: tuple[int, int] | None = None,
        split_by: str = "flow",
        timers: list[Any] | None = None,
        on_analyzer_error: Any = None,
    ):
        self.limits = limits or DecoderLimits()
        #: called as (analyzer or None, exception) when an analyzer raises
        self.on_analyzer_error = on_analyzer_error
        #: (index, count): decode only this process's share of the flows (see agent.run_sharded)
        self.shard = shard if shard and shard[1] > 1 else None
        if split_by not in SPLIT_MODES:
            raise ValueError(f"split_by must be one of {', '.join(SPLIT_MODES)}, not {split_by!r}")
        #: how a split run assigns packets (see SPLIT_MODES)
        self.split_by = split_by
        self._by_pair = split_by == "address_pair"
        self.skipped_other_shard = 0
        #: optional: ``observe_frame(ts_ns, link, frame)`` sees every frame before it is
        #: decoded (the compiled loop calls a compiled ``PacketObserver`` without a bytes object)
        self.observer: Any = None
        self.udp_ports = dict(udp_ports or {})
        self.tcp_ports = dict(tcp_ports or {})
        self.icmp = icmp
        self.analyzers: list[Analyzer] = []
        for a in [*self.udp_ports.values(), *self.tcp_ports.values(), icmp]:
            if a is not None and all(a is not b for b in self.analyzers):
                self.analyzers.append(a)
        #: what else runs on packet time after the analyzers (the agent's detectors)
        self.timers: list[Any] = list(timers or [])
        get_logger("decoder").debug("decoder ready", udp_ports=sorted(self.udp_ports), tcp_ports=sorted(self.tcp_ports),
                                    icmp=icmp is not None, shard=self.shard, split_by=split_by, limits=vars(self.limits))
        self.frags = FragmentReassembler(
            self.limits.max_fragmented_datagrams, int(self.limits.fragment_timeout_s * 1e9)
        )
        self.tcp = TcpReassembler(
            self.limits.max_tcp_connections,
            self.limits.max_ooo_segments,
            self.limits.max_ooo_bytes,
            int(self.limits.tcp_idle_timeout_s * 1e9),
        )
        self._tick_ns = int(self.limits.tick_interval_s * 1e9)
        self.next_tick = 0
        self._jump_ns = -1  # stamp of the last frame counted in errors.timestamp_jump
        self.now_ns = 0
        self._ip4_cache: dict[bytes, str] = {}
        self._ip6_cache: dict[bytes, str] = {}
        self.packets = 0
        self.bytes = 0
        self.dispatched = 0
        self.errors: dict[str, int] = {}
        self.last_exception: BaseException | None = None

    # -- counters -------------------------------------------------------------------
    def _error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def analyzer_failed(self, exc: BaseException, analyzer: Any = None) -> None:
        self.last_exception = exc
        if self.on_analyzer_error is not None:
            self.on_analyzer_error(analyzer, exc)
        else:
            self._error("analyzer_exception")

    def stats(self) -> dict[str, int]:
        out = {
            "packets": self.packets,
            "bytes": self.bytes,
            "dispatched": self.dispatched,
            "skipped_other_shard": self.skipped_other_shard,
            "ip_fragments.reassembled": self.frags.reassembled,
            "ip_fragments.pending": len(self.frags),
            "ip_fragments.evicted": self.frags.evicted,
            "ip_fragments.expired": self.frags.expired,
            "ip_fragments.rejected": self.frags.rejected,
            "tcp.connections": self.tcp.connections,
            "tcp.active": len(self.tcp),
            "tcp.evicted": self.tcp.evicted,
            "tcp.expired": self.tcp.expired,
            "tcp.retransmitted": self.tcp.retransmitted,
            "tcp.gaps": self.tcp.gaps,
            "tcp.gap_bytes": self.tcp.gap_bytes,
        }
        for reason, count in self.errors.items():
            out[f"errors.{reason}"] = count
        return out

    # -- addresses ------------------------------------------------------------------
    def _ip4(self, raw: bytes) -> str:
        s = self._ip4_cache.get(raw)
        if s is None:
            if len(self._ip4_cache) > 65536:
                self._ip4_cache.clear()
            s = self._ip4_cache[raw] = socket.inet_ntop(socket.AF_INET, raw)
        return s

    def _ip6(self, raw: bytes) -> str:
        s = self._ip6_cache.get(raw)
        if s is None:
            if len(self._ip6_cache) > 65536:
                self._ip6_cache.clear()
            s = self._ip6_cache[raw] = socket.inet_ntop(socket.AF_INET6, raw)
        return s

    # -- entry point ----------------------------------------------------------------
    def decode(self, ts_ns: int, link: int, frame: bytes) -> None:
        """Decode one frame captured at ``ts_ns`` on a link of type ``link``."""
        self.packets += 1
        flen = len(frame)
        self.bytes += flen
        if self.observer is not None:
            self.observer.observe_frame(ts_ns, link, frame)
        if ts_ns >= self.next_tick:
            self.packet_tick(ts_ns)  # before now_ns moves: it compares with the previous frame
        self.now_ns = ts_ns
        try:
            if link == LINKTYPE_ETHERNET:
                # The common case inline (see common_udp4); anything else takes the general
                # path below, which gives the same result for these packets.
                total = common_udp4(frame, flen)
                if total:
                    self._udp4(ts_ns, frame, total)
                    return
                self._ethernet(ts_ns, frame)
            elif link == LINKTYPE_LINUX_SLL:
                if len(frame) < 16:
                    self._error("short_link_header")
                    return
                self._ether_payload(ts_ns, _U16(frame, 14)[0], frame, 16, ())
            elif link == LINKTYPE_LINUX_SLL2:
                if len(frame) < 20:
                    self._error("short_link_header")
                    return
                self._ether_payload(ts_ns, _U16(frame, 0)[0], frame, 20, ())
            elif link in (LINKTYPE_RAW, LINKTYPE_RAW_OLD, LINKTYPE_RAW_BSD, LINKTYPE_IPV4, LINKTYPE_IPV6):
                if not frame:
                    self._error("short_link_header")
                    return
                version = frame[0] >> 4
                self._ip(ts_ns, frame, 0, version, (), 0)
            elif link in (LINKTYPE_NULL, LINKTYPE_LOOP):
                if len(frame) < 4:
                    self._error("short_link_header")
                    return
                family = struct.unpack_from(">I" if link == LINKTYPE_LOOP else "=I", frame, 0)[0]
                if family > 0xFFFF:  # written on a host of the other byte order
                    family = struct.unpack_from("<I" if struct.pack("=I", 1)[0] == 0 else ">I", frame, 0)[0]
                if family == 2:
                    self._ip(ts_ns, frame, 4, 4, (), 0)
                elif family in _NULL_IPV6:
                    self._ip(ts_ns, frame, 4, 6, (), 0)
                else:
                    self._error("non_ip")
            else:
                self._error("unsupported_link_type")
        except (struct.error, IndexError, ValueError, OSError):
            self._error("malformed")
        except Exception as exc:  # an analyzer bug: count it, keep the agent alive
            self.analyzer_failed(exc)

    def decode_udp4(self, ts_ns: int, frame: bytes, total: int) -> None:
        """``decode``'s common case after its counters and tick: a frame ``common_udp4`` passed
        (``total`` is what it returned), with the same error handling."""
        try:
            self._udp4(ts_ns, frame, total)
        except (struct.error, IndexError, ValueError, OSError):
            self._error("malformed")
        except Exception as exc:
            self.analyzer_failed(exc)

    def _udp4(self, ts_ns: int, frame: bytes, total: int) -> None:
        """UDP in option-less, unfragmented IPv4 in Ethernet (``total`` fits in the frame)."""
        sport, dport, ulen = _UDP(frame, 34)
        udp_ports = self.udp_ports
        analyzer = udp_ports.get(sport) or udp_ports.get(dport)
        if analyzer is None:
            return
        payload = frame[42 : 34 + ulen] if 8 <= ulen <= total - 20 else frame[42 : 14 + total]
        if self.shard is not None and not self._udp_mine(analyzer, payload, frame[26:30], sport, frame[30:34], dport):
            return
        if payload:
            self.dispatched += 1
            src, dst = self._ip4(frame[26:30]), self._ip4(frame[30:34])
            try:  # free until something raises (CPython 3.11)
                on_udp4 = getattr(analyzer, "on_udp4", None)  # an analyzer need not subclass Analyzer
                if on_udp4 is not None:
                    on_udp4(ts_ns, src, sport, dst, dport, payload)
                else:
                    analyzer.on_udp(Packet(ts_ns, src, dst, sport, dport, "udp", 4, ()), payload)
            except Exception as exc:
                self.analyzer_failed(exc, analyzer)

    def _ethernet(self, ts_ns: int, frame: bytes) -> None:
        if len(frame) < 14:
            self._error("short_link_header")
            return
        self._ether_payload(ts_ns, (frame[12] << 8) | frame[13], frame, 14, ())  # VLAN tags there

    def _ether_payload(self, ts_ns: int, etype: int, frame: bytes, off: int, vlans: tuple[int, ...]) -> None:
        if etype == 0x0800:
            self._ip(ts_ns, frame, off, 4, vlans, 0)
        elif etype == 0x86DD:
            self._ip(ts_ns, frame, off, 6, vlans, 0)
        elif etype in _VLAN_TPIDS:  # 802.1Q/802.1ad tags (Ethernet and cooked captures): at most two
            while etype in _VLAN_TPIDS:
                if len(frame) < off + 4 or len(vlans) >= 2:
                    self._error("bad_vlan")
                    return
                vlans += (((frame[off] << 8) | frame[off + 1]) & 0x0FFF,)
                etype = (frame[off + 2] << 8) | frame[off + 3]
                off += 4
            self._ether_payload(ts_ns, etype, frame, off, vlans)
        else:
            self._error("non_ip")

    def _ip(self, ts_ns: int, frame: bytes, off: int, version: int, vlans: tuple[int, ...], depth: int) -> None:
        if version == 4:
            if len(frame) < off + 20:
                self._error("short_ipv4_header")
                return
            vihl, total, ident, frag, _ttl, proto = _IP4(frame, off)
            if vihl >> 4 != 4:
                self._error("bad_ip_version")
                return
            ihl = (vihl & 0x0F) * 4
            if ihl < 20 or total < ihl:
                self._error("bad_ipv4_header")
                return
            end = off + total
            if end > len(frame):
                self._error("truncated_ip")
                end = len(frame)
            src_raw = frame[off + 12 : off + 16]
            dst_raw = frame[off + 16 : off + 20]
            payload = frame[off + ihl : end]
            if frag & 0x3FFF:  # MF set or a non-zero offset
                whole = self.frags.add(
                    (4, src_raw, dst_raw, proto, ident), (frag & 0x1FFF) * 8, bool(frag & 0x2000), payload, ts_ns
                )
                if whole is None:
                    return
                payload = whole
            src = self._ip4(src_raw)
            dst = self._ip4(dst_raw)
        elif version == 6:
            if len(frame) < off + 40:
                self._error("short_ipv6_header")
                return
            plen = (frame[off + 4] << 8) | frame[off + 5]
            proto = frame[off + 6]
            src_raw = frame[off + 8 : off + 24]
            dst_raw = frame[off + 24 : off + 40]
            end = off + 40 + plen
            if end > len(frame):
                self._error("truncated_ip")
                end = len(frame)
            pos = off + 40
            if proto in _IPV6_EXT:
                proto, pos = self._ip6_ext(frame, pos, end, proto)
                if pos < 0:
                    return
            if proto == 44:
                # The Fragment header ends the unfragmentable part: what follows it (more
                # extension headers, then the transport) is in the reassembled payload.
                if pos + 8 > end:
                    self._error("bad_ipv6_extension")
                    return
                proto = frame[pos]
                fo = (frame[pos + 2] << 8) | frame[pos + 3]
                payload = frame[pos + 8 : end]
                if fo & 0xFFF9:  # a non-zero offset or M set (else an atomic fragment)
                    whole = self.frags.add(
                        (6, src_raw, dst_raw, struct.unpack_from("!I", frame, pos + 4)[0]),
                        fo & 0xFFF8, bool(fo & 1), payload, ts_ns,
                    )
                    if whole is None:
                        return
                    payload = whole
                if proto in _IPV6_EXT:
                    proto, pos = self._ip6_ext(payload, 0, len(payload), proto)
                    if pos < 0:
                        return
                    payload = payload[pos:]
                if proto == 44:  # a second Fragment header
                    self._error("bad_ipv6_extension")
                    return
            else:
                if pos > end:
                    self._error("bad_ipv6_extension")
                    return
                payload = frame[pos:end]
            src = self._ip6(src_raw)
            dst = self._ip6(dst_raw)
        else:
            self._error("bad_ip_version")
            return
        self._transport(ts_ns, proto, src, dst, version, payload, vlans, depth, src_raw, dst_raw)

    def _ip6_ext(self, data: bytes, pos: int, end: int, proto: int) -> tuple[int, int]:
        """Skip IPv6 extension headers other than Fragment from ``pos``: (next header, offset
        after them), or (proto, -1) when they run past ``end`` (counted)."""
        while proto in _IPV6_EXT:
            if pos + 8 > end:
                break
            nxt = data[pos]
            if proto == 51:
                pos += (data[pos + 1] + 2) * 4
            else:
                pos += (data[pos + 1] + 1) * 8
            proto = nxt
        if pos > end or proto in _IPV6_EXT:
            self._error("bad_ipv6_extension")
            return proto, -1
        return proto, pos

    def _transport(
        self, ts_ns: int, proto: int, src: str, dst: str, version: int, data: bytes,
        vlans: tuple[int, ...], depth: int, src_raw: bytes, dst_raw: bytes,
    ) -> None:
        if proto == 17:
            if len(data) < 8:
                self._error("short_udp_header")
                return
            sport, dport, ulen = _UDP(data, 0)
            analyzer = self.udp_ports.get(sport) or self.udp_ports.get(dport)
            if analyzer is None:
                return
            payload = data[8:ulen] if 8 <= ulen <= len(data) else data[8:]
            if self.shard is not None and not self._udp_mine(analyzer, payload, src_raw, sport, dst_raw, dport):
                return
            if payload:
                self.dispatched += 1
                pkt = Packet(ts_ns, src, dst, sport, dport, "udp", version, vlans)
                try:
                    analyzer.on_udp(pkt, payload)
                except Exception as exc:
                    self.analyzer_failed(exc, analyzer)
        elif proto == 6:
            if len(data) < 20:
                self._error("short_tcp_header")
                return
            sport, dport, seq, _ack, doff, flags = _TCP(data, 0)
            analyzer = self.tcp_ports.get(sport) or self.tcp_ports.get(dport)
            if analyzer is None:
                return
            if self.shard is not None and not (
                self._mine(src_raw, 0, dst_raw, 0, 0) if self._by_pair else self._mine(src_raw, sport, dst_raw, dport, 0)
            ):
                return
            hlen = (doff >> 4) * 4
            if hlen < 20 or hlen > len(data):
                self._error("bad_tcp_header")
                return
            self.dispatched += 1
            try:  # the reassembler parses nothing: what raises in it is the analyzer's
                self.tcp.segment(
                    src, sport, dst, dport, seq, flags, data[hlen:], ts_ns, analyzer,
                    dport in self.tcp_ports, version, vlans,
                )
            except Exception as exc:
                self.analyzer_failed(exc, analyzer)
        elif proto == 1 or proto == 58:
            if self.icmp is None:
                return
            if (proto == 1) != (version == 4):
                self._error("icmp_version_mismatch")
                return
            if len(data) < 4:
                self._error("short_icmp_header")
                return
            if self.shard is not None and not self._mine(src_raw, 0, dst_raw, 0, 0):
                return
            self.dispatched += 1
            transport = "icmp" if proto == 1 else "ipv6-icmp"
            pkt = Packet(ts_ns, src, dst, 0, 0, transport, version, vlans)
            try:
                self.icmp.on_icmp(pkt, data)
            except Exception as exc:
                self.analyzer_failed(exc, self.icmp)
        elif (proto == 4 or proto == 41) and depth == 0:
            self._ip(ts_ns, data, 0, 4 if proto == 4 else 6, vlans, 1)

    def _udp_mine(self, analyzer: Analyzer, payload: bytes, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        """Split runs only: whether this process owns the datagram (flow + the analyzer's key,
        or the key alone for analyzers whose exchanges change addresses)."""
        try:
            key = analyzer.shard_key(payload) if payload else 0
        except Exception as exc:
            self.analyzer_failed(exc, analyzer)
            return False
        if analyzer.shard_by_key_only:
            return self._mine(b"", 0, b"", 0, key)
        if self._by_pair:
            return self._mine(src, 0, dst, 0, 0)
        return self._mine(src, sport, dst, dport, key)

    def _mine(self, src: bytes, sport: int, dst: bytes, dport: int, key: int) -> bool:
        """Whether this process owns the flow (raw addresses; both directions hash alike)."""
        assert self.shard is not None
        if split_hash(src, sport, dst, dport, key) % self.shard[1] == self.shard[0]:
            return True
        self.skipped_other_shard += 1
        return False

    # -- time -------------------------------------------------------------------------
    def packet_tick(self, ts_ns: int) -> None:
        """A frame's time reached the next tick: tick, unless the frame jumped far ahead of the
        previous one and nothing confirms the jump yet (see the module docstring)."""
        prev = self.now_ns
        if self.packets > 1 and ts_ns - prev > MAX_TIME_JUMP_NS and not (
            self._jump_ns == prev and ts_ns >= prev
        ):
            self._error("timestamp_jump")
            self._jump_ns = ts_ns
            return
        self.tick(ts_ns)

    def tick(self, now_ns: int) -> None:
        """Expire buffers and pending transactions up to ``now_ns`` (packet time)."""
        self.next_tick = now_ns + self._tick_ns
        self.frags.expire(now_ns)
        self._guard(self.tcp.expire, now_ns)
        for a in self.analyzers:
            self._guard(a.expire, now_ns, a)
        for t in self.timers:
            t.expire(now_ns)

    def flush(self) -> None:
        """End of input: close streams, then let analyzers publish what is pending."""
        now = self.now_ns
        self._guard(self.tcp.flush, now)
        for a in self.analyzers:
            self._guard(a.flush, now, a)
        for t in self.timers:
            t.flush(now)

    def _guard(self, fn: Any, now_ns: int, analyzer: Any = None) -> None:
        try:
            fn(now_ns)
        except Exception as exc:  # an analyzer bug in a timer must not stop the agent
            self.analyzer_failed(exc, analyzer)
