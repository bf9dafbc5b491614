"""Protocol plugins that ask for pybeat.api 2.0 and 0.2."""

from __future__ import annotations

from typing import Any

from pybeat.api import Analyzer, CommonProtocolConfig


class FutureConfig(CommonProtocolConfig):
    type: str = "future_kv"


class FuturePlugin:
    name = "future_kv"
    api_version = "2.0"
    transports = frozenset({"udp"})
    config_model = FutureConfig

    def create(self, config: Any, ctx: Any) -> Analyzer:
        return Analyzer()


plugin = FuturePlugin()


class PastPlugin(FuturePlugin):
    name = "past_kv"
    api_version = "0.2"


past = PastPlugin()
