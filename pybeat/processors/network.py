"""Network processors as libbeat has them: ``add_network_direction``, ``community_id``,
``registered_domain`` and ``add_observer_metadata``."""

from __future__ import annotations

import copy
import ipaddress
import socket
import threading
import time
from typing import Any

from pydantic import Field

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext, build_condition, community_id

from ._fields import MISSING, FieldError, get_value, has_value, put_value
from .builtin import CacheConfig, GeoConfig, NetInfo, netinfo_fields


class _Plugin:
    name = ""
    api_version = "1.0"
    config_model: type[PluginConfig] = PluginConfig


# -- add_network_direction ---------------------------------------------------------------------------
class AddNetworkDirectionConfig(PluginConfig):
    source: str
    destination: str
    target: str
    internal_networks: list[str] | str

    def networks(self) -> list[str]:
        return [self.internal_networks] if isinstance(self.internal_networks, str) else list(self.internal_networks)


class AddNetworkDirection:
    """``internal`` (both ends internal), ``external`` (neither), ``outbound`` (internal
    source), ``inbound`` (internal destination); nothing when an address is missing or not an
    IP."""

    def __init__(self, config: AddNetworkDirectionConfig):
        self.source = config.source
        self.destination = config.destination
        self.target = config.target
        nets = config.networks()
        self._src_in = build_condition({"network": {config.source: nets}})
        self._dst_in = build_condition({"network": {config.destination: nets}})

    def run(self, event: Event) -> Event:
        for f in (self.source, self.destination):
            v = get_value(event, f)
            if not isinstance(v, str):
                return event
            try:
                ipaddress.ip_address(v)
            except ValueError:
                return event
        src, dst = self._src_in(event), self._dst_in(event)
        put_value(event, self.target, "internal" if src and dst else "outbound" if src else
                  "inbound" if dst else "external")
        return event


class AddNetworkDirectionPlugin(_Plugin):
    name = "add_network_direction"
    config_model = AddNetworkDirectionConfig

    def create(self, config: AddNetworkDirectionConfig, ctx: ProcessorContext) -> AddNetworkDirection:
        return AddNetworkDirection(config)


# -- community_id --------------------------------------------------------------------------------------
class CommunityIdFields(PluginConfig):
    source_ip: str = "source.ip"
    source_port: str = "source.port"
    destination_ip: str = "destination.ip"
    destination_port: str = "destination.port"
    iana_number: str = "network.iana_number"
    transport: str = "network.transport"
    icmp_type: str = "icmp.type"
    icmp_code: str = "icmp.code"


class CommunityIdConfig(PluginConfig):
    fields: CommunityIdFields = CommunityIdFields()
    target: str = "network.community_id"
    seed: int = Field(default=0, ge=0, le=65535)


TRANSPORTS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "ipv6-icmp": 58, "icmpv6": 58, "eigrp": 88,
              "ospf": 89, "pim": 103, "sctp": 132}


def _uint(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v >= 0 else None
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            return None
    return None


class CommunityId:
    def __init__(self, config: CommunityIdConfig):
        self.f = config.fields
        self.target = config.target
        self.seed = config.seed

    def _ip(self, event: Event, field: str) -> str | None:
        v = get_value(event, field)
        if not isinstance(v, str):
            return None
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            return None

    def run(self, event: Event) -> Event:
        if has_value(event, self.target):
            return event
        src, dst = self._ip(event, self.f.source_ip), self._ip(event, self.f.destination_ip)
        if src is None or dst is None or (":" in src) != (":" in dst):
            return event
        v = get_value(event, self.f.iana_number)
        if v is MISSING:
            v = get_value(event, self.f.transport)
            if v is MISSING:
                return event
        proto = TRANSPORTS.get(v.lower()) if isinstance(v, str) else None
        if proto is None:
            proto = _uint(v)
            if proto is None:
                return event
            proto &= 0xFF
        sport = dport = 0
        if proto in (6, 17, 132):
            sport, dport = _uint(get_value(event, self.f.source_port)) or 0, _uint(get_value(event, self.f.destination_port)) or 0
            if not (1 <= sport <= 65535 and 1 <= dport <= 65535):
                return event
        elif proto in (1, 58):
            t, c = _uint(get_value(event, self.f.icmp_type)), _uint(get_value(event, self.f.icmp_code))
            if t is not None and c is not None:
                sport, dport = t & 0xFF, c & 0xFF
        if proto in (1, 6, 17, 58, 132):
            cid = community_id(src, dst, proto, sport, dport, self.seed)
        else:
            cid = portless_community_id(src, dst, proto, self.seed)
        put_value(event, self.target, cid)
        return event


def portless_community_id(src: str, dst: str, proto: int, seed: int = 0) -> str:
    """Community ID v1 of a protocol without ports (the spec: addresses ordered, no ports)."""
    import base64
    import hashlib
    import struct

    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    if s > d:
        s, d = d, s
    data = struct.pack("!H", seed) + s + d + struct.pack("!Bx", proto)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


class CommunityIdPlugin(_Plugin):
    name = "community_id"
    config_model = CommunityIdConfig

    def create(self, config: CommunityIdConfig, ctx: ProcessorContext) -> CommunityId:
        return CommunityId(config)


# -- registered_domain ----------------------------------------------------------------------------------
class RegisteredDomainConfig(PluginConfig):
    field: str
    target_field: str
    target_etld_field: str = ""
    target_subdomain_field: str = ""
    ignore_missing: bool = False
    ignore_failure: bool = False
    id: str = ""


_PSL: Any = None
_PSL_LOCK = threading.Lock()


def _psl() -> Any:
    global _PSL
    with _PSL_LOCK:
        if _PSL is None:
            from publicsuffixlist import PublicSuffixList

            _PSL = PublicSuffixList()
    return _PSL


class RegisteredDomain:
    """The registered domain (eTLD+1, the public suffix list's ICANN and private sections, as
    Go's ``publicsuffix`` package that libbeat uses), and optionally the eTLD and subdomain."""

    def __init__(self, config: RegisteredDomainConfig):
        self.c = config
        self.psl = _psl()

    def _fail(self, message: str) -> None:
        if not self.c.ignore_failure:
            raise FieldError(message)

    def run(self, event: Event) -> Event:
        c = self.c
        v = get_value(event, c.field)
        if v is MISSING:
            if not c.ignore_missing:
                self._fail(f"registered_domain source field [{c.field}] not found")
            return event
        if not isinstance(v, str):
            self._fail(f"registered_domain source field [{c.field}] is not a string (type={type(v).__name__})")
            return event
        domain = v.strip(".")
        lowered = domain.lower()
        rd = self.psl.privatesuffix(lowered) if lowered else None
        if not rd:
            self._fail(f"failed to determine the registered domain for {v}")
            return event
        rd = domain[len(domain) - len(rd):]  # keep the case the name was written in
        put_value(event, c.target_field, rd)
        if c.target_etld_field:
            etld = self.psl.publicsuffix(lowered)
            if etld:
                put_value(event, c.target_etld_field, domain[len(domain) - len(etld):])
        if c.target_subdomain_field:
            sub = domain[: len(domain) - len(rd)].rstrip(".")
            if sub:
                put_value(event, c.target_subdomain_field, sub)
        return event


class RegisteredDomainPlugin(_Plugin):
    name = "registered_domain"
    config_model = RegisteredDomainConfig

    def create(self, config: RegisteredDomainConfig, ctx: ProcessorContext) -> RegisteredDomain:
        return RegisteredDomain(config)


# -- add_observer_metadata ----------------------------------------------------------------------------
class AddObserverMetadataConfig(PluginConfig):
    netinfo: NetInfo = NetInfo()
    cache: CacheConfig = CacheConfig()
    geo: GeoConfig | None = None
    overwrite: bool = False


def _observer(netinfo: bool, geo: GeoConfig | None) -> dict[str, Any]:
    observer: dict[str, Any] = {"hostname": socket.gethostname()}
    if netinfo:
        observer.update(netinfo_fields())
    if geo is not None:
        g = geo.fields()
        if g:
            observer["geo"] = g
    return {"observer": observer}


class AddObserverMetadata:
    def __init__(self, config: AddObserverMetadataConfig):
        self.c = config
        self._data = _observer(config.netinfo.enabled, config.geo)
        self._stamp = time.monotonic()

    def _refresh(self) -> None:
        self._data = _observer(self.c.netinfo.enabled, self.c.geo)

    def run(self, event: Event) -> Event:
        if time.monotonic() - self._stamp > self.c.cache.ttl:
            self._stamp = time.monotonic()
            threading.Thread(target=self._refresh, daemon=True).start()
        if not self.c.overwrite and "observer" in event.fields:
            return event
        event.fields["observer"] = copy.deepcopy(self._data["observer"])
        return event


class AddObserverMetadataPlugin(_Plugin):
    name = "add_observer_metadata"
    config_model = AddObserverMetadataConfig

    def create(self, config: AddObserverMetadataConfig, ctx: ProcessorContext) -> AddObserverMetadata:
        return AddObserverMetadata(config)


add_network_direction = AddNetworkDirectionPlugin()
community_id_processor = CommunityIdPlugin()
registered_domain = RegisteredDomainPlugin()
add_observer_metadata = AddObserverMetadataPlugin()
