"""Small plugins written against pybeat.api only, for the tests of pybeat.testing itself."""

from __future__ import annotations

import threading
from typing import Any

from pybeat.api import (
    Analyzer, Batch, CommonProtocolConfig, Detector, DetectorContext, Event, OutputContext, OutputGroup, Packet,
    PluginConfig, ProcessorContext, ProtocolContext, RetryPolicy, TcpConnection,
)

# -- a protocol: "PING <n>" / "PONG <n>" lines over UDP (one per datagram) or TCP (a stream) ---


class PingConfig(CommonProtocolConfig):
    type: str = "ping"


class _Pending:
    __slots__ = ("ts", "client", "server", "nbytes", "transport")

    def __init__(self, ts: int, client: tuple[str, int], server: tuple[str, int], nbytes: int, transport: str):
        self.ts, self.client, self.server, self.nbytes, self.transport = ts, client, server, nbytes, transport


class PingAnalyzer(Analyzer):
    def __init__(self, ctx: ProtocolContext, timeout_s: float):
        self.ctx = ctx
        self.timeout_ns = int(timeout_s * 1e9)
        self.pending: dict[tuple[Any, ...], _Pending] = {}
        self.counters = {"messages": 0, "transactions": 0, "unanswered": 0, "expire_calls": 0, "gaps": 0}
        self.explode_on = b"BOOM"

    def _message(self, ts: int, src: tuple[str, int], dst: tuple[str, int], line: bytes, transport: str) -> None:
        if line.startswith(self.explode_on):
            raise RuntimeError("the toy analyzer was told to fail")
        self.counters["messages"] += 1
        word, _, n = line.partition(b" ")
        if word == b"PING":
            self.pending[(src, dst, n)] = _Pending(ts, src, dst, len(line), transport)
        elif word == b"PONG":
            req = self.pending.pop((dst, src, n), None)
            if req is not None:
                self._publish(req, ts, len(line), "OK")

    def _publish(self, req: _Pending, end: int | None, resp_bytes: int, status: str) -> None:
        fields = self.ctx.envelope.build("ping", req.transport, req.client[0], req.client[1], req.server[0],
                                         req.server[1], req.ts, end, req.nbytes, resp_bytes)
        fields.update({"type": "ping", "status": status})
        if status != "OK":
            fields["error"] = {"message": "no response"}
        self.counters["transactions"] += 1
        self.ctx.emit(Event(req.ts, fields))

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self._message(pkt.ts_ns, (pkt.src_ip, pkt.src_port), (pkt.dst_ip, pkt.dst_port), payload.rstrip(b"\n"), "udp")

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        buf = (conn.state or {}).get(from_client, b"") + data
        *lines, rest = buf.split(b"\n")
        conn.state = {**(conn.state or {}), from_client: rest}
        client, server = (conn.client_ip, conn.client_port), (conn.server_ip, conn.server_port)
        for line in lines:
            src, dst = (client, server) if from_client else (server, client)
            self._message(ts_ns, src, dst, line, "tcp")

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        self.counters["gaps"] += 1

    def expire(self, now_ns: int) -> None:
        self.counters["expire_calls"] += 1
        for key, req in list(self.pending.items()):
            if now_ns - req.ts >= self.timeout_ns:
                del self.pending[key]
                self.counters["unanswered"] += 1
                self._publish(req, None, 0, "Error")

    def flush(self, now_ns: int) -> None:
        for key, req in list(self.pending.items()):
            del self.pending[key]
            self.counters["unanswered"] += 1
            self._publish(req, None, 0, "Error")

    def stats(self) -> dict[str, int]:
        return {**self.counters, "pending": len(self.pending)}


class PingPlugin:
    name = "ping"
    api_version = "1.0"
    transports = frozenset({"udp", "tcp"})
    config_model = PingConfig

    def create(self, config: PingConfig, ctx: ProtocolContext) -> Analyzer:
        return PingAnalyzer(ctx, config.transaction_timeout)


ping = PingPlugin()


# -- outputs -----------------------------------------------------------------------------------


class ListConfig(PluginConfig):
    workers: int = 1
    #: "ack", "forget" (never settles), "twice" (settles twice), "miscount", "raise",
    #: "flaky" (retries a batch the first time it sees it), "refuse" (always retries), "block"
    mode: str = "ack"


class ListClient:
    def __init__(self, mode: str, sink: list[Event], seen: set[int]):
        self.mode = mode
        self.sink = sink
        self.seen = seen  # batches retried once already (shared by the group's clients)
        self.closed = threading.Event()

    def publish(self, batch: Batch) -> None:
        mode = self.mode
        if mode == "forget":
            return
        if mode == "raise":
            raise ConnectionError("the toy output was told to fail")
        if mode == "twice":
            batch.ack()
            batch.ack()
            return
        if mode == "miscount":
            batch.settle(acked=len(batch.events) + 1)
            return
        if mode == "refuse":
            batch.retry()
            return
        if mode == "flaky" and id(batch.events[0]) not in self.seen:
            self.seen.add(id(batch.events[0]))
            batch.retry()
            return
        if mode == "block":
            self.closed.wait(30)
            batch.cancel()
            return
        self.sink.extend(batch.events)
        batch.ack()

    def close(self) -> None:
        self.closed.set()


class ListOutput:
    name = "list"
    api_version = "1.0"
    config_model = ListConfig

    def __init__(self) -> None:
        self.sink: list[Event] = []
        self.seen: set[int] = set()

    def create(self, config: ListConfig, ctx: OutputContext) -> OutputGroup:
        assert ctx.metrics is not None
        clients = [ListClient(config.mode, self.sink, self.seen) for _ in range(config.workers)]
        ctx.metrics.register("toy", lambda: {"delivered": len(self.sink)})
        return OutputGroup(clients=clients, batch_size=10, retry=RetryPolicy(max_retries=2, backoff_init=5.0))


# -- a processor ---------------------------------------------------------------------------------


class UpperConfig(PluginConfig):
    field: str


class Upper:
    def __init__(self, field: str):
        self.field = field
        self.closed = False

    def run(self, event: Event) -> Event | None:
        value = event.get(self.field)
        if value == "drop me":
            return None
        event.put(self.field, value.upper())  # raises on a value that is not a string
        return event

    def close(self) -> None:
        self.closed = True


class UpperPlugin:
    name = "upper"
    api_version = "1.0"
    config_model = UpperConfig

    def create(self, config: UpperConfig, ctx: ProcessorContext) -> Upper:
        assert ctx.name == "upper"
        return Upper(config.field)


upper = UpperPlugin()


# -- a detector: N transactions from one client within a window -------------------------------


class BurstConfig(PluginConfig):
    threshold: int = 3
    window_s: float = 10.0


class Burst(Detector):
    def __init__(self, config: BurstConfig, ctx: DetectorContext):
        self.ctx = ctx
        self.threshold = config.threshold
        self.window_ns = int(config.window_s * 1e9)
        self.seen: dict[str, list[int]] = {}
        self.expired = 0

    def observe(self, event: Event) -> None:
        client = event.get("client.ip")
        times = self.seen.setdefault(client, [])
        times.append(event.timestamp_ns)
        if len(times) == self.threshold:
            alert = {"type": "alert", "alert": {"client": client, "count": len(times)}}
            self.ctx.emit(Event(event.timestamp_ns, alert))

    def expire(self, now_ns: int) -> None:
        for client, times in list(self.seen.items()):
            if now_ns - times[0] > self.window_ns:
                del self.seen[client]
                self.expired += 1

    def stats(self) -> dict[str, int]:
        return {"clients": len(self.seen), "expired": self.expired}


class BurstPlugin:
    name = "burst"
    api_version = "1.0"
    config_model = BurstConfig
    protocols = frozenset({"ping"})

    def create(self, config: BurstConfig, ctx: DetectorContext) -> Detector:
        return Burst(config, ctx)


burst = BurstPlugin()
