"""The ``ntp`` protocol plugin: its settings, its fields and its factory (entry point
``pybeat.protocols: ntp = pybeat_ntp.plugin:plugin``)."""

from __future__ import annotations

from pydantic import Field

from pybeat.api import Analyzer, CommonProtocolConfig, ProtocolContext, SummaryField

from pybeat_ntp.analyzer import NtpAnalyzer

__all__ = ["FIELDS", "NtpConfig", "NtpPlugin", "plugin"]


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
FIELDS: dict[str, str] = {
    "ntp.version": "long",
    "ntp.mode": "keyword",
    "ntp.leap_indicator": "long",
    "ntp.stratum": "long",
    "ntp.poll": "long",
    "ntp.precision": "long",
    "ntp.root_delay": "double",
    "ntp.root_dispersion": "double",
    "ntp.reference_id": "keyword",
    "ntp.kiss_code": "keyword",
    "ntp.reference_time": "date_nanos",
    "ntp.origin_time": "date_nanos",
    "ntp.receive_time": "date_nanos",
    "ntp.transmit_time": "date_nanos",
    "ntp.offset": "double",
    "ntp.delay": "double",
    "ntp.opcode": "long",
}


class NtpPlugin:
    name = "ntp"
    api_version = "1.0"
    transports = frozenset({"udp"})
    config_model = NtpConfig
    summary_field = SummaryField("servers", "server.ip")

    def create(self, config: NtpConfig, ctx: ProtocolContext) -> Analyzer:
        return NtpAnalyzer(ctx, config.transaction_timeout, config.max_pending_requests, config.report_malformed)

    def fields(self) -> dict[str, str]:
        return dict(FIELDS)


plugin = NtpPlugin()
