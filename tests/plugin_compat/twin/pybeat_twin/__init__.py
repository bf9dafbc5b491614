"""A processor that calls itself legacy_stamp, as pybeat-legacy01's does."""

from __future__ import annotations

from typing import Any

from pybeat.api import Event, PluginConfig, ProcessorContext


class TwinPlugin:
    name = "legacy_stamp"
    api_version = "1.0"
    config_model = PluginConfig

    def create(self, config: Any, ctx: ProcessorContext) -> Any:
        class Same:
            def run(self, event: Event) -> Event:
                return event

        return Same()


plugin = TwinPlugin()
