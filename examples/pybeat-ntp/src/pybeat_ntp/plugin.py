"""The ``ntp`` protocol plugin: its settings, its fields and its factory (entry point
``pybeat.protocols: ntp = pybeat_ntp.plugin:plugin``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, ProtocolContext, SummaryField, load_field_file

from pybeat_ntp.analyzer import NtpAnalyzer

__all__ = ["FIELDS_FILE", "NtpConfig", "NtpPlugin", "plugin"]


class NtpConfig(CommonProtocolConfig):
    """``packetbeat.protocols: - type: ntp``."""

    type: str = "ntp"
    ports: list[int] = [123]
    #: cap on client requests waiting for their response; when full, the oldest is published
    #: as unanswered (noted, counted as ``evicted_requests``), so a flood cannot grow memory
    max_pending_requests: int = Field(default=10_000, ge=1)
    #: publish datagrams on the NTP port that are not NTP messages as events with a note;
    #: false only counts them (``malformed``)
    report_malformed: bool = True


#: the fields an ``ntp`` event carries, for the index template
FIELDS_FILE = Path(__file__).with_name("fields.yml")


class NtpPlugin:
    name = "ntp"
    api_version = "1.0"
    transports = frozenset({"udp"})
    config_model = NtpConfig
    summary_field = SummaryField("servers", "server.ip")

    def create(self, config: NtpConfig, ctx: ProtocolContext) -> Analyzer:
        return NtpAnalyzer(ctx, config.transaction_timeout, config.max_pending_requests, config.report_malformed)

    def fields(self) -> dict[str, str]:
        """The fields this protocol writes, for the index template (fields.yml beside this file)."""
        return load_field_file(FIELDS_FILE)


plugin = NtpPlugin()
