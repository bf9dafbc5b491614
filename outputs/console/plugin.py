"""``output.console``: one JSON document per line on stdout (``pretty`` indents them)."""

from __future__ import annotations

import sys
import threading
from typing import Any, BinaryIO

from pybeat.api import Batch, OutputContext, PluginConfig
from pybeat.codec import Codec, CodecConfig


class ConsoleOutputConfig(PluginConfig):
    enabled: bool = True
    pretty: bool = False
    codec: CodecConfig | None = None
    bulk_max_size: int = 2048
    queue: dict[str, Any] | None = None


class ConsoleOutput:
    def __init__(self, config: ConsoleOutputConfig, ctx: OutputContext, stream: BinaryIO | None = None):
        self.codec = Codec(ctx.beat, config.codec, pretty=config.pretty)
        self.stream = stream or ctx.extra.get("stdout") or sys.stdout.buffer
        self.logger = ctx.logger
        self._lock = threading.Lock()
        if hasattr(ctx.logger, "bind"):  # -d console
            ctx.logger.bind(logger="console").debug("console output ready", pretty=config.pretty,
                                                    bulk_max_size=config.bulk_max_size)

    def publish(self, batch: Batch) -> None:
        lines = []
        dropped = 0
        for event in batch.events:
            try:
                lines.append(self.codec.encode(event))
            except (TypeError, ValueError) as exc:
                dropped += 1
                if self.logger is not None:
                    self.logger.warning("event could not be encoded", output="console", error=str(exc))
        with self._lock:
            if lines:
                self.stream.write(b"\n".join(lines) + b"\n")
            self.stream.flush()
        batch.settle(acked=len(batch.events) - dropped, dropped=dropped)

    def close(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


class ConsolePlugin:
    name = "console"
    config_model = ConsoleOutputConfig

    def create(self, config: ConsoleOutputConfig, ctx: OutputContext) -> ConsoleOutput:
        return ConsoleOutput(config, ctx)

    def workers(self, config: ConsoleOutputConfig) -> int:
        return 1

    def batch_size(self, config: ConsoleOutputConfig) -> int:
        return config.bulk_max_size


plugin = ConsolePlugin()
