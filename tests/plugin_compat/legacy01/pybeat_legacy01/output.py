"""``legacy_jsonl``: events as JSON lines, one file per worker, under the agent's data folder.

Written for pybeat.api 0.1: ``workers(config)`` clients, each made by its own ``create`` call;
the folder from ``ctx.extra['path_data']`` and, in a replay split across processes, the file
name suffix from ``ctx.extra['file_suffix']``; its own counters registered with the agent's
registry (``ctx.metrics``); its own backoff when it hands a batch back for retry.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from typing import Any

from pybeat.api import Batch, Output, OutputContext, OutputPlugin, PluginConfig


class JsonlConfig(PluginConfig):
    path: str = "legacy-jsonl"  # under path.data unless absolute
    workers: int = 2
    batch_size: int = 50
    #: hand the first N batches back for retry (a flaky destination)
    fail_first: int = 0


class JsonlClient:
    def __init__(self, path: str, config: JsonlConfig, shared: dict[str, int], lock: threading.Lock):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.fh = open(path, "a", encoding="utf-8")
        self.config = config
        self.shared = shared
        self.lock = lock

    def publish(self, batch: Batch) -> None:
        with self.lock:
            failing = self.shared["failed"] < self.config.fail_first
            if failing:
                self.shared["failed"] += 1
        if failing:
            time.sleep(0.01)  # 0.1 outputs did their own backoff
            batch.retry()
            return
        lines, dropped = [], 0
        for event in batch.events:
            try:
                lines.append(json.dumps({"ts_ns": event.timestamp_ns, "retries": batch.retries, **event.fields},
                                        allow_nan=False))
            except (TypeError, ValueError):
                dropped += 1
        self.fh.write("".join(line + "\n" for line in lines))
        self.fh.flush()
        with self.lock:
            self.shared["written"] += len(lines)
        batch.settle(acked=len(lines), dropped=dropped)

    def close(self) -> None:
        self.fh.close()


class JsonlOutput:
    name = "legacy_jsonl"
    config_model = JsonlConfig

    def __init__(self) -> None:
        self._index = itertools.count()
        self._shared: dict[str, int] = {"written": 0, "failed": 0}
        self._lock = threading.Lock()

    def workers(self, config: JsonlConfig) -> int:
        return config.workers

    def batch_size(self, config: JsonlConfig) -> int:
        return config.batch_size

    def create(self, config: JsonlConfig, ctx: OutputContext) -> Output:
        base = config.path if os.path.isabs(config.path) else os.path.join(ctx.extra["path_data"], config.path)
        suffix = ctx.extra.get("file_suffix", "")
        index = next(self._index)
        path = os.path.join(base, f"{ctx.name}{suffix}-{index}.jsonl")
        if index == 0:
            shared = self._shared
            ctx.metrics.register(f"output.{ctx.name}.legacy", lambda: dict(shared))
            if ctx.logger is not None:
                ctx.logger.info("legacy_jsonl writing", folder=base, agent=f"{ctx.beat.product} {ctx.beat.version}")
        client = JsonlClient(path, config, self._shared, self._lock)
        assert isinstance(client, Output)
        return client


plugin: OutputPlugin = JsonlOutput()
