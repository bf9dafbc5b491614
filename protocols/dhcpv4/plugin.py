"""Entry point of the ``dhcpv4`` protocol: config model and analyzer factory."""

from __future__ import annotations

from pathlib import Path

import re
from typing import Literal

from pydantic import Field, field_validator

from pybeat.api import Analyzer, CommonProtocolConfig, PluginConfig, ProtocolContext, load_field_file

from pybeat.protocols.dhcpv4.analyzer import Dhcpv4Analyzer

__all__ = ["CustomOption", "Dhcpv4Config", "Dhcpv4Plugin", "plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# keys map_options may already write under dhcpv4.option
_RESERVED = {
    "message_type", "parameter_request_list", "requested_ip_address", "server_identifier",
    "broadcast_address", "max_dhcp_message_size", "class_identifier", "domain_name", "dns_servers",
    "vendor_identifying_options", "subnet_mask", "utc_time_offset_sec", "router", "time_servers",
    "ntp_servers", "hostname", "ip_address_lease_time_sec", "renewal_time_sec", "rebinding_time_sec",
    "message", "boot_file_name", "relay_agent_information", "vendor_specific_information",
    "vendor_identifying_specific", "user_class", "unmapped",
}


class CustomOption(PluginConfig):
    """A site-specific option decoded into ``dhcpv4.option.<name>``."""

    name: str
    type: Literal["ip", "ips", "string", "hex", "uint8", "uint16", "uint32", "int32", "bool"] = "hex"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"option name {value!r} must be lower-case letters, digits and '_'")
        if value in _RESERVED:
            raise ValueError(f"option name {value!r} is already a dhcpv4.option field")
        return value


class Dhcpv4Config(CommonProtocolConfig):
    """``packetbeat.protocols: - type: dhcpv4`` plus pybeat's keys (see docs/icmp_dhcp.md)."""

    type: str = "dhcpv4"
    ports: list[int] = [67, 68]
    #: add dhcpv4.exchange (id, sequence, messages, start, duration) to every event
    track_exchanges: bool = True
    #: cap on exchanges followed at once; the least recently active one is closed first
    max_exchanges: int = Field(default=65536, ge=1)
    #: emit every option with no mapping as dhcpv4.option.unmapped [{code, name, data}]
    include_unmapped_options: bool = False
    #: site-specific options: {code: {name, type}}
    custom_options: dict[int, CustomOption] = {}

    @field_validator("custom_options")
    @classmethod
    def _valid_codes(cls, value: dict[int, CustomOption]) -> dict[int, CustomOption]:
        for code in value:
            if not 1 <= code <= 254:
                raise ValueError(f"option code {code} is not between 1 and 254")
        return value


class Dhcpv4Plugin:
    name = "dhcpv4"
    api_version = "1.0"
    transports = frozenset({"udp"})
    config_model = Dhcpv4Config

    def create(self, config: Dhcpv4Config, ctx: ProtocolContext) -> Analyzer:
        return Dhcpv4Analyzer(
            ctx,
            config.transaction_timeout,
            config.max_exchanges,
            track_exchanges=config.track_exchanges,
            custom={code: (opt.name, opt.type) for code, opt in config.custom_options.items()},
            unmapped=config.include_unmapped_options,
        )

    def fields(self) -> dict[str, str]:
        """The fields this protocol writes, for the index template (fields.yml beside this file)."""
        return load_field_file(Path(__file__).with_name("fields.yml"))


plugin = Dhcpv4Plugin()
