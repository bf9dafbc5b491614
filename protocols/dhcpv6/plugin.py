"""Entry point of the ``dhcpv6`` protocol: config model and analyzer factory."""

from __future__ import annotations

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, Plugin, ProtocolContext

from pybeat.protocols.dhcpv6.analyzer import Dhcpv6Analyzer

__all__ = ["Dhcpv6Config", "Dhcpv6Plugin", "plugin"]


class Dhcpv6Config(CommonProtocolConfig):
    """``packetbeat.protocols: - type: dhcpv6`` (pybeat only; see docs/icmp_dhcp.md)."""

    type: str = "dhcpv6"
    ports: list[int] = [546, 547]
    #: add dhcpv6.exchange (id, sequence, messages, start, duration) to every event
    track_exchanges: bool = True
    #: cap on exchanges followed at once; the least recently active one is closed first
    max_exchanges: int = Field(default=65536, ge=1)



class Dhcpv6Plugin(Plugin):
    name = "dhcpv6"
    transports = frozenset({"udp"})
    config_model = Dhcpv6Config

    def create(self, config: Dhcpv6Config, ctx: ProtocolContext) -> Analyzer:
        return Dhcpv6Analyzer(ctx, config.transaction_timeout, config.max_exchanges, config.track_exchanges)


plugin = Dhcpv6Plugin()
