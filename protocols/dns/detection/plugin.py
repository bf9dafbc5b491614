"""The ``dns`` detector plugin (entry point ``pybeat.detectors: dns =
pybeat.protocols.dns.detection.plugin:plugin``), configured under ``pybeat.detection.dns``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pybeat.api import Detector, DetectorContext, load_field_file

from .config import DnsDetectionConfig
from .detector import DnsDetector
from .view import reduce_raw

__all__ = ["DnsDetectionPlugin", "plugin"]


class DnsDetectionPlugin:
    name = "dns"
    api_version = "1.0"
    protocols = frozenset({"dns"})
    config_model = DnsDetectionConfig

    #: pybeat._fastpath's hook: what a capture process hands the detection process of a
    #: pre-encoded DNS event (view.read_raw reads it as it reads the whole event)
    reduce_raw = staticmethod(reduce_raw)

    def create(self, config: Any, ctx: DetectorContext) -> Detector:
        if not isinstance(config, DnsDetectionConfig):
            config = DnsDetectionConfig.model_validate(config if isinstance(config, dict) else dict(config))
        return DnsDetector(config, ctx)

    def fields(self) -> dict[str, str]:
        """The fields of the alerts (and of the optional enrichment), for the index template."""
        return load_field_file(Path(__file__).with_name("fields.yml"))


plugin = DnsDetectionPlugin()
