"""``output.logstash`` settings: Packetbeat's keys and defaults (reference §7.3, §7.7).

Validation only: parsing host strings, ranges, the ``worker``/``workers`` alias. Nothing here
opens a file or a socket; certificates are read when the output is built.
"""

from __future__ import annotations

import ipaddress

from pydantic import AliasChoices, Field, field_validator

from pybeat.api import BackoffConfig, Duration, PluginConfig, SslConfig


__all__ = ["BackoffConfig", "DEFAULT_PORT", "LogstashConfig", "SslConfig", "parse_host"]

DEFAULT_PORT = 5044


def parse_host(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    raw = text.strip()
    for scheme in ("tcp://", "lumberjack://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme) :]
    if not raw:
        raise ValueError("empty host")
    if "@" in raw:  # never echo it: what comes before the @ is usually a password
        raise ValueError("a Logstash host is host[:port]; user@ is not supported (Lumberjack has no "
                         "password: use ssl client certificates)")
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"unbalanced '[' in host {text!r}")
        host, rest = raw[1:end], raw[end + 1 :]
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in host {text!r}")
        port_text = rest[1:]
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:  # a name, an IPv4 address, or an IPv6 address without a port
        if ":" in raw:
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                raise ValueError(f"{text!r} is neither host:port nor an IPv6 address ([v6]:port)") from None
        return raw, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} of host {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of host {text!r} is out of range 1-65535")
    return host, port


class LogstashConfig(PluginConfig):
    enabled: bool = True
    hosts: list[str] = Field(min_length=1)
    loadbalance: bool = False
    worker: int = Field(default=1, ge=1, validation_alias=AliasChoices("worker", "workers"))
    bulk_max_size: int = 2048  # <= 0: a batch is sent as one window, whatever its size
    slow_start: bool = False
    pipelining: int = Field(default=2, ge=0)
    compression_level: int = Field(default=3, ge=0, le=9)
    escape_html: bool = False
    ttl: Duration = Field(default=0.0, ge=0)
    timeout: Duration = Field(default=30.0, gt=0)
    max_retries: int = 3  # < 0: retry forever
    backoff: BackoffConfig = BackoffConfig()
    index: str | None = None
    proxy_url: str | None = None
    proxy_use_local_resolver: bool = False
    ssl: SslConfig = SslConfig()

    @field_validator("hosts")
    @classmethod
    def _hosts_parse(cls, v: list[str]) -> list[str]:
        for h in v:
            parse_host(h)
        return v

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v and not v.startswith(("socks5://", "socks5h://")):
            raise ValueError(f"expected a socks5:// URL (the only proxy Beats' Logstash output supports), got {v!r}")
        return v

    @property
    def tls_enabled(self) -> bool:
        """As Beats: an ``ssl`` section turns TLS on unless it says ``enabled: false``."""
        return "ssl" in self.model_fields_set and self.ssl.enabled is not False

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [parse_host(h) for h in self.hosts]
