"""Entry point of the ``dhcpv6`` protocol: config model and analyzer factory."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, ProtocolContext, load_field_file

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


class Dhcpv6Plugin:
    name = "dhcpv6"
    api_version = "1.0"
    transports = frozenset({"udp"})
    config_model = Dhcpv6Config

    def create(self, config: Dhcpv6Config, ctx: ProtocolContext) -> Analyzer:
        return Dhcpv6Analyzer(ctx, config.transaction_timeout, config.max_exchanges, config.track_exchanges)

    def fields(self) -> dict[str, str]:
        """The fields this protocol writes, for the index template (fields.yml beside this file)."""
        return load_field_file(Path(__file__).with_name("fields.yml"))


plugin = Dhcpv6Plugin()
