"""``legacy_stamp``: writes who processed an event into it, drops events whose key is
``drop-me``. Written for pybeat.api 0.1: ``create(config, beat)``."""

from __future__ import annotations

from pybeat.api import BeatInfo, Event, PluginConfig, Processor, ProcessorPlugin


class StampConfig(PluginConfig):
    field: str = "labels.stamped_by"
    drop_key: str = "drop-me"


class Stamp:
    def __init__(self, config: StampConfig, beat: BeatInfo):
        self.field = config.field
        self.drop_key = config.drop_key
        self.text = f"{beat.product} {beat.version} ({beat.beat})"

    def run(self, event: Event) -> Event | None:
        if event.get("legacy_kv.key") == self.drop_key:
            return None
        event.put(self.field, self.text)
        event.delete("legacy_kv.secret")
        return event


class StampPlugin:
    name = "legacy_stamp"
    config_model = StampConfig

    def create(self, config: StampConfig, beat: BeatInfo) -> Processor:
        return Stamp(config, beat)


plugin: ProcessorPlugin = StampPlugin()
