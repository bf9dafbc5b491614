"""``dns``: reverse (PTR) lookups of IP fields, and A/AAAA/TXT/PTR lookups of name fields, as
libbeat's processor.

Keys as Beats: ``type`` (``reverse``; 8.x also ``A``, ``AAAA``, ``TXT``, ``PTR``), ``fields``
(source field: target field), ``action`` (``append``: the target becomes a list when it already
has a value; ``replace``), ``nameservers`` (``host[:port]``; default: ``/etc/resolv.conf``),
``timeout`` (500ms per query), ``tag_on_failure``, ``transport`` (``udp``; ``tls`` on port 853),
``success_cache.capacity.initial/max`` (1000/10000), ``success_cache.min_ttl`` (1m),
``failure_cache.capacity.initial/max``, ``failure_cache.ttl`` (1m).

As in Beats, a lookup that is not cached blocks that event for up to ``timeout`` per
nameserver (the caches make a repeated address cost a dictionary look-up). A missing or empty
source field is skipped; a failed lookup adds ``tag_on_failure`` to ``tags``.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
from collections import OrderedDict
from typing import Any, Literal

from pydantic import Field, field_validator

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext

from ._fields import MISSING, get_value, put_value

QTYPES = {"A": 1, "PTR": 12, "TXT": 16, "AAAA": 28}


class DnsError(Exception):
    """A lookup failed (timeout, NXDOMAIN, no record of the type, an unreadable answer)."""


# -- wire format: one question out, the answers of that type back ------------------------------------
def encode_query(qid: int, name: str, qtype: int) -> bytes:
    out = [struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)]
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not 0 < len(raw) < 64:
            raise DnsError(f"invalid name {name!r}")
        out.append(bytes([len(raw)]) + raw)
    out.append(b"\x00" + struct.pack("!HH", qtype, 1))
    return b"".join(out)


def _name(msg: bytes, pos: int, hops: int = 0) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    while True:
        if pos >= len(msg):
            raise DnsError("truncated name")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if hops > 32 or pos + 1 >= len(msg):
                raise DnsError("bad compression pointer")
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            hops += 1
            continue
        if n == 0:
            return ".".join(labels), (end if end is not None else pos + 1)
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n


def decode_answers(msg: bytes, qid: int, qtype: int) -> tuple[list[str], int]:
    """``(values, smallest TTL)`` of the answers of ``qtype``; DnsError for an error rcode."""
    if len(msg) < 12:
        raise DnsError("short answer")
    rid, flags, qd, an = struct.unpack_from("!HHHH", msg)
    if rid != qid or not flags & 0x8000:
        raise DnsError("not the answer to our query")
    rcode = flags & 0xF
    if rcode:
        raise DnsError({3: "NXDOMAIN", 2: "SERVFAIL", 5: "REFUSED"}.get(rcode, f"rcode {rcode}"))
    pos = 12
    for _ in range(qd):
        _, pos = _name(msg, pos)
        pos += 4
    values: list[str] = []
    ttl_min = 0
    for _ in range(an):
        _, pos = _name(msg, pos)
        if pos + 10 > len(msg):
            raise DnsError("truncated record")
        rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == qtype:
            if qtype == 12:
                values.append(_name(msg, pos)[0])
            elif qtype == 1 and rdlen == 4:
                values.append(socket.inet_ntop(socket.AF_INET, rdata))
            elif qtype == 28 and rdlen == 16:
                values.append(socket.inet_ntop(socket.AF_INET6, rdata))
            elif qtype == 16:
                i, txt = 0, []
                while i < len(rdata):
                    txt.append(rdata[i + 1:i + 1 + rdata[i]].decode("utf-8", "replace"))
                    i += 1 + rdata[i]
                values.append("".join(txt))
            ttl_min = ttl if not ttl_min else min(ttl_min, ttl)
        pos += rdlen
    if not values:
        raise DnsError("no record of that type")
    return values, ttl_min


def resolv_conf_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.split()[1] for line in fh if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return []


def _split_hostport(ns: str, default_port: int) -> tuple[str, int]:
    if ns.startswith("["):
        host, _, rest = ns[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if ns.count(":") == 1:
        host, port = ns.split(":")
        return host, int(port)
    return ns, default_port


class Resolver:
    def __init__(self, nameservers: list[str], timeout: float, transport: str):
        port = 853 if transport == "tls" else 53
        self.servers = [_split_hostport(ns, port) for ns in nameservers]
        self.timeout = timeout
        self.transport = transport

    def query(self, name: str, qtype: int) -> tuple[list[str], int]:
        last: Exception = DnsError("no nameserver")
        for host, port in self.servers:
            try:
                return self._ask(host, port, name, qtype)
            except (OSError, DnsError) as exc:
                if isinstance(exc, DnsError) and str(exc) in ("NXDOMAIN", "no record of that type"):
                    raise
                last = exc
        raise last if isinstance(last, DnsError) else DnsError(f"{type(last).__name__}: {last}")

    def _ask(self, host: str, port: int, name: str, qtype: int) -> tuple[list[str], int]:
        qid = random.getrandbits(16)
        query = encode_query(qid, name, qtype)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if self.transport == "tls":
            import ssl

            ctx = ssl.create_default_context()
            with socket.create_connection((host, port), timeout=self.timeout) as raw, \
                    ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(struct.pack("!H", len(query)) + query)
                head = s.recv(2)
                size = struct.unpack("!H", head)[0] if len(head) == 2 else 0
                data = b""
                while len(data) < size:
                    chunk = s.recv(size - len(data))
                    if not chunk:
                        break
                    data += chunk
                return decode_answers(data, qid, qtype)
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(self.timeout)
            s.sendto(query, (host, port))
            deadline = time.monotonic() + self.timeout
            while True:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                data, _ = s.recvfrom(4096)
                try:
                    return decode_answers(data, qid, qtype)
                except DnsError as exc:
                    if str(exc) != "not the answer to our query":
                        raise


class _Lru:
    """A bounded cache: key -> (value, expires at); the least recently used goes first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.data: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def get(self, key: str, now: float) -> Any:
        hit = self.data.get(key)
        if hit is None:
            return None
        if hit[1] < now:
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return hit

    def put(self, key: str, value: Any, expires: float) -> None:
        self.data[key] = (value, expires)
        self.data.move_to_end(key)
        while len(self.data) > self.capacity:
            self.data.popitem(last=False)


class Capacity(PluginConfig):
    initial: int = Field(default=1000, ge=0)
    max: int = Field(default=10000, ge=1)


class SuccessCache(PluginConfig):
    capacity: Capacity = Capacity()
    min_ttl: Duration = 60.0


class FailureCache(PluginConfig):
    capacity: Capacity = Capacity()
    ttl: Duration = 60.0


class DnsConfig(PluginConfig):
    type: Literal["reverse", "A", "AAAA", "TXT", "PTR"]
    fields: dict[str, str]
    action: Literal["append", "replace"] = "append"
    nameservers: list[str] = []
    timeout: Duration = 0.5
    tag_on_failure: list[str] = []
    transport: Literal["udp", "tls"] = "udp"
    success_cache: SuccessCache = SuccessCache()
    failure_cache: FailureCache = FailureCache()

    @field_validator("fields", mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        """The loader expands dotted keys (``source.ip: source.domain`` arrives nested)."""
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for k, val in node.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                if isinstance(val, dict):
                    walk(key, val)
                else:
                    out[key] = val

        walk("", v)
        if not out:
            raise ValueError("dns needs at least one field mapping (source: target)")
        return out


class DnsProcessor:
    def __init__(self, config: DnsConfig, resolver: Resolver):
        self.c = config
        self.resolver = resolver
        self.qtype = QTYPES["PTR" if config.type == "reverse" else config.type]
        self.success = _Lru(config.success_cache.capacity.max)
        self.failure = _Lru(config.failure_cache.capacity.max)
        self.lookups = self.cache_hits = self.failures = 0

    def _query_name(self, value: str) -> str | None:
        if self.c.type == "reverse":
            try:
                return ipaddress.ip_address(value).reverse_pointer
            except ValueError:
                return None
        return value

    def lookup(self, value: str) -> list[str]:
        now = time.monotonic()
        hit = self.success.get(value, now)
        if hit is not None:
            self.cache_hits += 1
            return list(hit[0])
        if self.failure.get(value, now) is not None:
            self.cache_hits += 1
            raise DnsError("failed recently (failure cache)")
        name = self._query_name(value)
        if name is None:
            raise DnsError(f"{value!r} is not an IP address")
        self.lookups += 1
        try:
            values, ttl = self.resolver.query(name, self.qtype)
        except DnsError:
            self.failures += 1
            self.failure.put(value, True, now + self.c.failure_cache.ttl)
            raise
        values = [v.rstrip(".") for v in values]
        if self.qtype == 12:
            values = values[:1]  # Beats keeps the first PTR name
        self.success.put(value, values, now + max(float(ttl), self.c.success_cache.min_ttl))
        return values

    def run(self, event: Event) -> Event:
        failed = False
        for src, dst in self.c.fields.items():
            v = get_value(event, src)
            if not isinstance(v, str) or not v:
                continue
            try:
                results: list[Any] = self.lookup(v)
            except DnsError:
                failed = True
                continue
            current = get_value(event, dst)
            if self.c.action == "replace" or current is MISSING or current is None:
                put_value(event, dst, results[0] if len(results) == 1 else results)
            else:
                merged = current if isinstance(current, list) else [current]
                put_value(event, dst, merged + [r for r in results if r not in merged])
        if failed and self.c.tag_on_failure:
            tags = event.fields.get("tags")
            tags = tags if isinstance(tags, list) else ([] if tags is None else [tags])
            for t in self.c.tag_on_failure:
                if t not in tags:
                    tags.append(t)
            event.fields["tags"] = tags
        return event


class DnsPlugin:
    name = "dns"
    api_version = "1.0"
    config_model = DnsConfig

    def create(self, config: DnsConfig, ctx: ProcessorContext) -> DnsProcessor:
        servers = config.nameservers or resolv_conf_nameservers()
        if not servers:
            raise ValueError("dns: no nameservers configured and none in /etc/resolv.conf")
        return DnsProcessor(config, Resolver(servers, config.timeout, config.transport))


dns = DnsPlugin()
