"""The ``dns_features`` processor (entry point ``pybeat.processors: dns_features``): adds the
numbers the detectors compute to every DNS event, off unless configured:

    processors:
      - dns_features: {}

``dns_detection.query_length``, ``label_count``, ``subdomain_length``, ``subdomain_entropy``
(bits per character) and ``longest_label``. Like any processor it makes the pipeline take its
general path (each event decoded as a dict), which costs replay speed: measure before turning
it on for a busy sensor.
"""

from __future__ import annotations

from typing import Any

from pybeat.api import Event, PluginConfig, ProcessorContext

from .features import name_features

__all__ = ["DnsFeaturesConfig", "DnsFeaturesProcessor", "plugin"]


class DnsFeaturesConfig(PluginConfig):
    pass


class DnsFeaturesProcessor:
    def run(self, event: Event) -> Event | None:
        dns = event.fields.get("dns")
        if not isinstance(dns, dict):
            return event
        q = dns.get("question")
        if not isinstance(q, dict) or not isinstance(q.get("name"), str):
            return event
        name: str = q["name"]
        sub = q.get("subdomain") if isinstance(q.get("subdomain"), str) else ""
        f = name_features(sub or "")
        event.fields["dns_detection"] = {
            "query_length": len(name.rstrip(".")),
            "label_count": len([x for x in name.rstrip(".").split(".") if x]),
            "subdomain_length": f.length, "subdomain_entropy": round(f.entropy, 3), "longest_label": f.longest_label,
        }
        return event


class DnsFeaturesPlugin:
    name = "dns_features"
    api_version = "1.0"
    config_model = DnsFeaturesConfig

    def create(self, config: Any, ctx: ProcessorContext) -> DnsFeaturesProcessor:
        return DnsFeaturesProcessor()


plugin = DnsFeaturesPlugin()
