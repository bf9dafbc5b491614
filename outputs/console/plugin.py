"""``output.console``: one JSON document per line on stdout (``pretty`` indents them)."""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from pybeat.api import Batch, Codec, CodecConfig, OutputContext, OutputGroup, PluginConfig, RetryPolicy


class ConsoleOutputConfig(PluginConfig):
    enabled: bool = True
    pretty: bool = False
    codec: CodecConfig | None = None
    bulk_max_size: int = 2048


class ConsoleOutput:
    def __init__(self, config: ConsoleOutputConfig, ctx: OutputContext, stream: BinaryIO | None = None):
        self.codec = Codec(ctx.beat, config.codec, pretty=config.pretty)
        self.stream = stream or ctx.stdout
        self.logger = ctx.logger
        self._lock = threading.Lock()
        bind = getattr(ctx.logger, "bind", None)  # -d console: its debug lines (a structlog-style bind)
        if bind is not None:
            bind(logger="console").debug("console output ready", pretty=config.pretty, bulk_max_size=config.bulk_max_size)

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
    api_version = "1.0"
    config_model = ConsoleOutputConfig

    def create(self, config: ConsoleOutputConfig, ctx: OutputContext) -> OutputGroup:
        """One client (stdout is one stream); an event that cannot be encoded is dropped and
        counted, nothing is retried (as Beats' console output)."""
        return OutputGroup([ConsoleOutput(config, ctx)], batch_size=config.bulk_max_size,
                           retry=RetryPolicy(max_retries=0), location=lambda: "stdout")


plugin = ConsolePlugin()
