"""The ``dns`` protocol plugin: configuration model and factory (entry point
``pybeat.protocols: dns = pybeat.protocols.dns.plugin:plugin``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, ProtocolContext, SummaryField, load_field_file
from pybeat.protocols.dns.analyzer import DnsAnalyzer

__all__ = ["DnsConfig", "DnsPlugin", "plugin"]


class DnsConfig(CommonProtocolConfig):
    """``packetbeat.protocols: - type: dns`` (Packetbeat's keys plus pybeat's caps)."""

    type: str = "dns"
    include_authorities: bool = False
    include_additionals: bool = False
    #: cap on queries waiting for a response; when full the oldest is published as
    #: unanswered (note + ``evicted`` counter), so a query flood cannot grow memory
    max_pending_transactions: int = Field(default=100_000, ge=1)
    #: report messages that fail to decode past their header as events with a note; false
    #: drops them as Packetbeat does (still counted as ``malformed``)
    report_malformed: bool = True
    #: treat UDP port 5353 as multicast DNS (RFC 6762) instead of pairing it like unicast DNS
    mdns: bool = True
    #: size of the per-name cache of public-suffix lookups
    domain_cache_size: int = Field(default=65_536, ge=1)
    #: decoded UDP messages remembered by their bytes (after the ID); 0 turns the cache off
    message_cache_size: int = Field(default=32_768, ge=0)


class DnsPlugin:
    name = "dns"
    api_version = "1.0"
    summary_field = SummaryField("names", "dns.question.name")
    transports = frozenset({"udp", "tcp"})
    config_model = DnsConfig

    def create(self, config: Any, ctx: ProtocolContext) -> Analyzer:
        if not isinstance(config, DnsConfig):
            config = DnsConfig.model_validate(config if isinstance(config, dict) else dict(config))
        analyzer: Analyzer = DnsAnalyzer(config, ctx)
        return analyzer

    def prepare(self) -> None:
        """Optional hook: build shared read-only state (the public suffix list) in the parent
        before a replay split across processes forks its workers."""
        from pybeat.protocols.dns.domain import prepare

        prepare()

    def fields(self) -> dict[str, str]:
        """The fields this protocol writes, for the index template (fields.yml beside this file)."""
        return load_field_file(Path(__file__).with_name("fields.yml"))


plugin = DnsPlugin()
