"""The fields every Packetbeat transaction event carries, computed as Packetbeat's
``pb.Fields.ComputeValues`` does: source/destination/client/server, ``network.*`` (bytes,
transport, type, community_id, direction), ``event.*`` and ``related.ip``.

Owns: Community ID v1, direction from local addresses and ``internal_networks``. Never
touches protocol fields. Values that are the same for every transaction of a flow
(community id, direction) are cached per flow, since this runs once per event.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
from typing import Any, Iterable, Sequence

import orjson

from pybeat.timefmt import format_ts

_PROTO_NUMBERS = {"udp": 17, "tcp": 6, "icmp": 1, "ipv6-icmp": 58}
# ICMP type -> its counterpart, for Community ID's one-way/two-way handling (spec table).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
_ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 144: 145, 145: 144}

NAMED_NETWORKS = {
    "loopback": ["127.0.0.0/8", "::1/128"],
    "private": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"],
    "link_local_unicast": ["169.254.0.0/16", "fe80::/10"],
    "link_local_multicast": ["224.0.0.0/24", "ff02::/16"],
    "interface_local_multicast": ["ff01::/16"],
    "multicast": ["224.0.0.0/4", "ff00::/8"],
    "unspecified": ["0.0.0.0/32", "::/128"],
}


def community_id(src_ip: str, dst_ip: str, proto: int, sport: int = 0, dport: int = 0, seed: int = 0) -> str:
    """Community ID v1 (https://github.com/corelight/community-id-spec), base64 form.

    For ICMP, pass the type as ``sport`` and the code as ``dport``; the counterpart mapping is
    applied here.
    """
    fam = socket.AF_INET6 if ":" in src_ip else socket.AF_INET
    s = socket.inet_pton(fam, src_ip)
    d = socket.inet_pton(fam, dst_ip)
    one_way = False
    if proto in (1, 58):
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        icmp_type, icmp_code = sport, dport
        if icmp_type in pairs:
            sport, dport = icmp_type, pairs[icmp_type]
        else:
            sport, dport = icmp_type, icmp_code
            one_way = True
    if not one_way and (s, sport) > (d, dport):  # one-way ICMP keeps its direction (the spec)
        s, d, sport, dport = d, s, dport, sport
    data = struct.pack("!H", seed) + s + d + struct.pack("!BxHH", proto, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def add_notes(fields: dict[str, Any], notes: Sequence[str] | None) -> None:
    """A transaction's notes as Packetbeat writes them: ``error.message`` is a string for one
    note and a list for several (and absent for none)."""
    if notes:
        fields["error"] = {"message": notes[0] if len(notes) == 1 else list(notes)}


def parse_networks(specs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDRs and Packetbeat's named ranges (``private``, ``loopback``, ...) as networks."""
    nets = []
    for spec in specs:
        if spec in NAMED_NETWORKS:
            nets += [ipaddress.ip_network(n) for n in NAMED_NETWORKS[spec]]
        elif spec == "unicast":
            nets += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        elif spec == "public":
            continue  # handled in Envelope._is_internal (everything not private/special)
        else:
            nets.append(ipaddress.ip_network(spec, strict=False))
    return nets


class Envelope:
    """Builds the common part of a transaction event."""

    def __init__(self, internal_networks: Iterable[str] = (), local_ips: Iterable[str] = ()):
        self.internal_specs = list(internal_networks)
        self.internal = parse_networks(self.internal_specs)
        self.public_is_internal = "public" in self.internal_specs
        self.local_ips = {str(ipaddress.ip_address(ip)) for ip in local_ips}
        self._flow_cache: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._facts: dict[tuple[Any, ...], tuple[str, str, str]] = {}
        self._ip_cache: dict[str, tuple[str, bool]] = {}

    def _host_class(self, ip: str) -> str:
        """'local' for loopback, link-local and this host's addresses, else ''."""
        addr = ipaddress.ip_address(ip)
        if addr.is_loopback or addr.is_link_local or ip in self.local_ips:
            return "local"
        if addr.is_multicast and (
            (addr.version == 4 and addr in ipaddress.ip_network("224.0.0.0/24"))
            or (addr.version == 6 and (addr.packed[1] & 0x0F) == 2)
        ):
            return "local"
        return ""

    def _is_internal(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if any(addr in n for n in self.internal if n.version == addr.version):
            return True
        return self.public_is_internal and addr.is_global

    def _ip_facts(self, ip: str) -> tuple[str, bool]:
        """(host class, internal) of an address, cached: a busy resolver sees every query on a
        new flow (random source port), but from a limited set of addresses."""
        hit = self._ip_cache.get(ip)
        if hit is None:
            if len(self._ip_cache) > 65536:
                self._ip_cache.clear()
            internal = self._is_internal(ip) if self.internal_specs else False
            hit = self._ip_cache[ip] = (self._host_class(ip), internal)
        return hit

    def direction(self, src_ip: str, dst_ip: str) -> str:
        dst = self._ip_facts(dst_ip)
        if dst[0]:
            return "ingress"
        src = self._ip_facts(src_ip)
        if src[0]:
            return "egress"
        if self.internal_specs:
            si, di = src[1], dst[1]
            if si and di:
                return "internal"
            if si:
                return "outbound"
            if di:
                return "inbound"
            return "external"
        return "unknown"

    def _flow(self, src_ip: str, dst_ip: str, proto: int, sport: int, dport: int) -> tuple[str, str]:
        key = (src_ip, dst_ip, proto, sport, dport)
        hit = self._flow_cache.get(key)
        if hit is None:
            if len(self._flow_cache) > 65536:
                self._flow_cache.clear()
            try:
                cid = community_id(src_ip, dst_ip, proto, sport, dport)
            except (OSError, ValueError):
                cid = ""
            hit = self._flow_cache[key] = (cid, self.direction(src_ip, dst_ip))
        return hit

    def _flow_facts(self, key: tuple[Any, ...]) -> tuple[str, str, str]:
        """(community_id, direction, network.type) of the flow ``build`` was called with."""
        transport, src_ip, src_port, dst_ip, dst_port, icmp_type_code = key
        proto = _PROTO_NUMBERS.get(transport, 0)
        if icmp_type_code is not None:
            cid, direction = self._flow(src_ip, dst_ip, proto, icmp_type_code[0], icmp_type_code[1])
        else:
            cid, direction = self._flow(src_ip, dst_ip, proto, src_port, dst_port)
        facts = self._facts
        if len(facts) > 65536:
            facts.clear()
        hit = facts[key] = (cid, direction, "ipv6" if ":" in src_ip else "ipv4")
        return hit

    def build(
        self,
        protocol: str,
        transport: str,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        start_ns: int | None,
        end_ns: int | None,
        src_bytes: int = 0,
        dst_bytes: int = 0,
        related_extra: Iterable[str] = (),
        event_type: list[str] | None = None,
        icmp_type_code: tuple[int, int] | None = None,
        dataset: str | None = None,
    ) -> dict[str, Any]:
        """The envelope of one transaction: a new dict the protocol adds its own fields to.

        This runs once per event: the per-flow facts are cached, and the common shapes
        (ports and bytes on both sides) are built as literals.
        """
        key = (transport, src_ip, src_port, dst_ip, dst_port, icmp_type_code)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._flow_facts(key)
        cid, direction, net_type = facts
        if src_port and src_bytes:
            source: dict[str, Any] = {"ip": src_ip, "port": src_port, "bytes": src_bytes}
            client: dict[str, Any] = {"ip": src_ip, "port": src_port, "bytes": src_bytes}
        else:
            source = {"ip": src_ip}
            if src_port:
                source["port"] = src_port
            if src_bytes:
                source["bytes"] = src_bytes
            client = dict(source)
        if dst_port and dst_bytes:
            destination: dict[str, Any] = {"ip": dst_ip, "port": dst_port, "bytes": dst_bytes}
            server: dict[str, Any] = {"ip": dst_ip, "port": dst_port, "bytes": dst_bytes}
        else:
            destination = {"ip": dst_ip}
            if dst_port:
                destination["port"] = dst_port
            if dst_bytes:
                destination["bytes"] = dst_bytes
            server = dict(destination)
        total = src_bytes + dst_bytes
        if protocol and total and cid:
            network: dict[str, Any] = {
                "transport": transport, "type": net_type, "direction": direction, "protocol": protocol,
                "bytes": total, "community_id": cid,
            }
        else:
            network = {"transport": transport, "type": net_type, "direction": direction}
            if protocol:
                network["protocol"] = protocol
            if total:
                network["bytes"] = total
            if cid:
                network["community_id"] = cid
        event: dict[str, Any] = {
            "kind": "event",
            "category": ["network"],
            "type": event_type or ["connection", "protocol"],
            "dataset": dataset or protocol,
        }
        if start_ns:
            event["start"] = format_ts(start_ns)
        if end_ns:
            event["end"] = format_ts(end_ns)
            if start_ns and end_ns >= start_ns:
                event["duration"] = end_ns - start_ns
        related = [src_ip] if src_ip == dst_ip else [src_ip, dst_ip]
        for ip in related_extra:
            if ip not in related:
                related.append(ip)
        return {
            "source": source,
            "destination": destination,
            "client": client,
            "server": server,
            "network": network,
            "event": event,
            "related": {"ip": related},
        }

    def raw_head(
        self, protocol: str, transport: str, src_ip: str, src_port: int, dst_ip: str, dst_port: int,
        answered: bool = True,
    ) -> bytes | None:
        """What :meth:`build` returns, pre-encoded, for the usual shape of a transaction of this
        flow: both ports, a community id, no extra related addresses, and either (``answered``)
        both byte counts, a start and an end not before it, or (not ``answered``) the source's
        bytes and a start only. A ``%``-template (bytes) for ``(src_bytes, dst_bytes,
        src_bytes, dst_bytes, total, start, end, duration)``, or ``(src_bytes, src_bytes,
        total, start)`` when not answered (start and end as bytes from ``format_ts``), that
        opens the document and ends inside ``related.ip``'s list: the caller adds the extra
        addresses, ``]}`` and the rest. None when this flow never has that shape (a port is 0,
        no community id). Not cached here: the caller keeps the templates it composes from it.
        The dict and the template give the same document (tested)."""
        cid, direction, net_type = self._facts.get((transport, src_ip, src_port, dst_ip, dst_port, None)) or \
            self._flow_facts((transport, src_ip, src_port, dst_ip, dst_port, None))
        head: bytes | None = None
        if src_port and dst_port and cid and protocol:
            def j(value: Any) -> bytes:  # JSON, with % doubled: this is a template
                return orjson.dumps(value).replace(b"%", b"%%")

            src = b'{"ip":' + j(src_ip) + b',"port":' + j(src_port) + b',"bytes":%d}'
            if answered:
                dst = b'{"ip":' + j(dst_ip) + b',"port":' + j(dst_port) + b',"bytes":%d}'
                times = b',"start":"%b","end":"%b","duration":%d}'
            else:
                dst = b'{"ip":' + j(dst_ip) + b',"port":' + j(dst_port) + b"}"
                times = b',"start":"%b"}'
            related = j(src_ip) if src_ip == dst_ip else j(src_ip) + b"," + j(dst_ip)
            head = (
                b'{"source":' + src + b',"destination":' + dst + b',"client":' + src + b',"server":' + dst
                + b',"network":{"transport":' + j(transport) + b',"type":' + j(net_type)
                + b',"direction":' + j(direction) + b',"protocol":' + j(protocol)
                + b',"bytes":%d,"community_id":' + j(cid) + b"}"
                + b',"event":{"kind":"event","category":["network"],"type":["connection","protocol"],"dataset":'
                + j(protocol) + times
                + b',"related":{"ip":[' + related
            )
        return head
