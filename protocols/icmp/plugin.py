"""Entry point of the ``icmp`` protocol: config model and analyzer factory."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from pybeat.api import Analyzer, CommonProtocolConfig, ProtocolContext, load_field_file

from pybeat.protocols.icmp.analyzer import IcmpAnalyzer

__all__ = ["IcmpConfig", "IcmpPlugin", "plugin"]


class IcmpConfig(CommonProtocolConfig):
    """``packetbeat.protocols: - type: icmp``. ICMP is not port based: ``ports`` must stay empty."""

    type: str = "icmp"
    #: cap on echo-style requests waiting for their reply; the oldest is published (noted) first
    max_pending_requests: int = Field(default=65536, ge=1)

    @field_validator("ports")
    @classmethod
    def _no_ports(cls, value: list[int]) -> list[int]:
        if value:
            raise ValueError("icmp is not port based: remove 'ports' (every ICMP/ICMPv6 message is analysed)")
        return value


class IcmpPlugin:
    name = "icmp"
    api_version = "1.0"
    transports = frozenset({"icmp"})
    config_model = IcmpConfig

    def create(self, config: IcmpConfig, ctx: ProtocolContext) -> Analyzer:
        return IcmpAnalyzer(ctx, config.transaction_timeout, config.max_pending_requests)

    def fields(self) -> dict[str, str]:
        """The fields this protocol writes, for the index template (fields.yml beside this file)."""
        return load_field_file(Path(__file__).with_name("fields.yml"))


plugin = IcmpPlugin()
