"""One plugin of each kind, written against pybeat.api only, appending ``[kind, call, thread
name]`` to the JSON-lines file named by the environment variable PYBEAT_LIFECYCLE_LOG for every
call the agent makes (tests/sdk/test_lifecycle.py compares that with docs/plugins.md)."""

from __future__ import annotations

import json
import os
import threading
from pybeat.api import (
    Analyzer, Batch, CommonProtocolConfig, Detector, DetectorContext, Event, OutputContext, OutputGroup, Packet,
    PluginConfig, ProcessorContext, ProtocolContext,
)

_lock = threading.Lock()


def record(kind: str, call: str) -> None:
    with _lock, open(os.environ["PYBEAT_LIFECYCLE_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps([kind, call, threading.current_thread().name, os.getpid()]) + "\n")


class ProtoConfig(CommonProtocolConfig):
    type: str = "lc_proto"
    ports: list[int] = [4444]


class ProtoAnalyzer(Analyzer):
    def __init__(self, ctx: ProtocolContext):
        self.ctx = ctx

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        record("protocol", "on_udp")
        fields = self.ctx.envelope.build("lc_proto", "udp", pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port,
                                         pkt.ts_ns, pkt.ts_ns, len(payload), 0)
        fields.update({"type": "lc_proto", "status": "OK"})
        self.ctx.emit(Event(pkt.ts_ns, fields))

    def expire(self, now_ns: int) -> None:
        record("protocol", "expire")

    def flush(self, now_ns: int) -> None:
        record("protocol", "flush")

    def stats(self) -> dict[str, int]:
        record("protocol", "stats")
        return {}


class ProtoPlugin:
    name = "lc_proto"
    api_version = "1.0"
    transports = frozenset({"udp"})
    config_model = ProtoConfig

    def create(self, config: ProtoConfig, ctx: ProtocolContext) -> Analyzer:
        record("protocol", "create")
        return ProtoAnalyzer(ctx)


class Empty(PluginConfig):
    pass


class OutClient:
    def publish(self, batch: Batch) -> None:
        record("output", "publish")
        batch.ack()

    def close(self) -> None:
        record("output", "close")


class OutPlugin:
    name = "lc_out"
    api_version = "1.0"
    config_model = Empty

    def create(self, config: Empty, ctx: OutputContext) -> OutputGroup:
        record("output", "create")
        return OutputGroup(clients=[OutClient(), OutClient()], batch_size=2)


class Proc:
    def run(self, event: Event) -> Event | None:
        record("processor", "run")
        return event

    def close(self) -> None:
        record("processor", "close")


class ProcPlugin:
    name = "lc_proc"
    api_version = "1.0"
    config_model = Empty

    def create(self, config: Empty, ctx: ProcessorContext) -> Proc:
        record("processor", "create")
        return Proc()


class Det(Detector):
    def observe(self, event: Event) -> None:
        record("detector", "observe")

    def expire(self, now_ns: int) -> None:
        record("detector", "expire")

    def flush(self, now_ns: int) -> None:
        record("detector", "flush")

    def close(self) -> None:
        record("detector", "close")


class DetPlugin:
    name = "lc_det"
    api_version = "1.0"
    config_model = Empty
    protocols = frozenset({"lc_proto"})

    def create(self, config: Empty, ctx: DetectorContext) -> Detector:
        record("detector", "create")
        return Det()


protocol, output, processor, detector = ProtoPlugin(), OutPlugin(), ProcPlugin(), DetPlugin()
__all__ = ["detector", "output", "processor", "protocol", "record"]
