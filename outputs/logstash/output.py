"""The Logstash output client: batches in, Lumberjack windows out, every event settled.

Owns the delivery rules of Beats' Logstash output (reference §7.3, §8):

* An event is acknowledged only when Logstash ACKed it (at-least-once): a batch that fails
  half-way settles the ACKed prefix and hands the rest back for retry.
* Connection failures (refused, unreachable, TLS handshake) settle the batch as *cancelled*:
  nothing was sent, so they do not count against ``max_retries``. A failure after sending
  settles the unACKed events as *retried*: one attempt each (the agent drops them past
  ``max_retries``, as Beats does for non-guaranteed events).
* The agent owns the backoff (pybeat.api's contract): the events go back to the queue *first*
  and this client then waits its backoff, so with ``loadbalance`` another host's client sends
  them at once while this one waits.
* ``slow_start``: windows start at 10 events, grow x1.5 per ACKed window up to
  ``bulk_max_size``, halve on errors, restart at 10 after a ``ttl`` reconnect.
* ``ttl``: reconnect (re-resolving and re-balancing) once the connection is that old; checked
  between batches, so it works with pipelining too.

One :class:`LogstashClient` per worker thread; it holds at most one connection at a time.
Clients of one output share a :class:`SharedState` (counters).
"""

from __future__ import annotations

import math
import random
import threading
from typing import Any

from pybeat.api import Batch, Codec, CodecConfig, Event, JsonCodecConfig, OutputContext
from pybeat.outputs.logstash.config import LogstashConfig
from pybeat.outputs.logstash.connection import ConnectError, Connection, SendError
from pybeat.outputs.logstash.tls import TlsSettings

SLOW_START_WINDOW = 10

__all__ = ["LogstashClient", "SharedState"]


class SharedState:
    """What the worker clients of one output share: counters (the agent counts the events'
    outcomes itself, as ``output.<name>.events.*``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_client = 0
        self.counters = {
            "encoding_errors": 0,
            "batches.acked": 0,
            "batches.failed": 0,
            "windows": 0,
            "connections.opened": 0,
            "connections.failed": 0,
            "connections.broken": 0,
            "connections.ttl_reconnects": 0,
            "connections.closed_by_server": 0,
            "batches.fallback": 0,
            "acks.keepalive": 0,
            "write.bytes": 0,  # Lumberjack frames as written (after compression, before TLS)
        }
        self.per_host: dict[str, int] = {}

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                key = k.replace("__", ".")
                self.counters[key] = self.counters.get(key, 0) + v

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = dict(self.counters)
            for host, n in self.per_host.items():
                out[f"hosts.{host}.events.acked"] = n
            return out


class LogstashClient:
    """One worker's client: see the module docstring for the rules it follows."""

    def __init__(
        self,
        config: LogstashConfig,
        ctx: OutputContext,
        shared: SharedState,
        hosts: list[tuple[str, int]],
        tls: TlsSettings | None,
        rng: random.Random | None = None,
        fallback_hosts: list[tuple[str, int]] | None = None,
    ):
        self.config = config
        self.shared = shared
        self.logger = ctx.logger
        bind = getattr(ctx.logger, "bind", None)  # -d logstash: its debug lines (a structlog-style bind)
        self.debug_log = bind(logger="logstash") if bind is not None else None
        codec_cfg = CodecConfig.model_validate({"json": JsonCodecConfig(escape_html=config.escape_html)})
        self.codec = Codec(ctx.beat, codec_cfg, index=config.index)
        self.hosts = hosts
        #: loadbalance: the other hosts, tried for a batch when this client's own host is down
        self.fallback_hosts = fallback_hosts or []
        self.tls = tls
        self.rng = rng or random.Random()
        # Beats' failover mode starts on a random host and sticks to it until it fails.
        self._host_index = self.rng.randrange(len(hosts)) if len(hosts) > 1 else 0
        self.conn = self._connection()
        self.limit = config.bulk_max_size if config.bulk_max_size > 0 else 1 << 30
        self.window = float(SLOW_START_WINDOW if config.slow_start else self.limit)

    # -- hosts and connections ------------------------------------------------------------------
    def _connection(self) -> Connection:
        host, port = self.hosts[self._host_index]
        c = self.config
        return Connection(
            host, port, c.timeout, c.compression_level, self.tls, c.proxy_url, c.proxy_use_local_resolver
        )

    def _next_host(self) -> None:
        if len(self.hosts) > 1:
            self.conn.close()
            self._host_index = (self._host_index + 1) % len(self.hosts)
            self.conn = self._connection()

    @property
    def host(self) -> str:
        return self.conn.where

    # -- window sizing (slow_start) -----------------------------------------------------------
    def _window_size(self) -> int:
        return int(self.window)

    def _window_acked(self, count: int) -> None:
        self.shared.add(windows=1)
        if self.config.slow_start:
            self.window = min(float(self.limit), float(math.ceil(self.window * 1.5)))

    def _shrink(self) -> None:
        if self.config.slow_start:
            self.window = max(1.0, float(int(self.window) // 2))

    # -- publishing ------------------------------------------------------------------------------------
    def publish(self, batch: Batch) -> None:
        payloads, sendable, bad = self._encode(batch.events)
        if not sendable:
            batch.settle(dropped=bad)
            return
        if not self._ensure_connection():
            if self.fallback_hosts and self._publish_via_fallback(batch, payloads, sendable, bad):
                return
            batch.settle(cancelled=sendable, dropped=bad)
            self._next_host()
            return
        self._send(self.conn, batch, payloads, sendable, bad)

    def _send(self, conn: Connection, batch: Batch, payloads: list[bytes], sendable: list[Event], bad: int) -> bool:
        """Send on ``conn`` and settle the batch either way; True if every event was ACKed."""
        keepalives, written = conn.keepalives, conn.bytes_sent
        try:
            conn.send(payloads, self._window_size, self.config.pipelining, self._window_acked)
        except SendError as exc:
            self.shared.add(write__bytes=conn.bytes_sent - written)
            self._send_failed(batch, conn, sendable, bad, exc, conn.keepalives - keepalives)
            return False
        self.shared.add(batches__acked=1, write__bytes=conn.bytes_sent - written,
                        acks__keepalive=conn.keepalives - keepalives)
        self._count_host(conn.where, len(sendable))
        self._log("debug", "batch acked", events=len(sendable), window=self._window_size(),
                  bytes=conn.bytes_sent - written)
        batch.settle(acked=len(sendable), dropped=bad)
        return True

    def _publish_via_fallback(self, batch: Batch, payloads: list[bytes], sendable: list[Event], bad: int) -> bool:
        """``loadbalance``: this client's host is down, so send this batch to another host on a
        connection opened for it. Handing the batch back and waiting would also work while the
        other hosts' clients are running, but at the end of a replay they may already have
        stopped, leaving the batch to a client that can never deliver it. True if settled."""
        c = self.config
        for host, port in self.fallback_hosts:
            conn = Connection(host, port, c.timeout, c.compression_level, self.tls, c.proxy_url,
                              c.proxy_use_local_resolver)
            try:
                conn.connect()
            except ConnectError:
                continue
            self.shared.add(connections__opened=1, batches__fallback=1)
            self._log("info", "own host down, batch sent to another host", fallback=conn.where)
            try:
                self._send(conn, batch, payloads, sendable, bad)
            finally:
                conn.close()
            return True
        return False

    def _encode(self, events: list[Event]) -> tuple[list[bytes], list[Event], int]:
        """JSON per event; an event the codec refuses is dropped alone (counted), as Beats does."""
        payloads: list[bytes] = []
        sendable: list[Event] = []
        bad = 0
        encode = self.codec.encode
        for ev in events:
            try:
                payloads.append(encode(ev))
            except (TypeError, ValueError) as exc:
                bad += 1
                self._log("warning", "event could not be encoded, dropped", error=str(exc))
                continue
            sendable.append(ev)
        if bad:
            self.shared.add(encoding_errors=bad)
        return payloads, sendable, bad

    def _ensure_connection(self) -> bool:
        """Reconnect when the TTL is up or the server closed the idle connection; False if no
        connection could be made (logged and counted)."""
        conn = self.conn
        ttl = self.config.ttl
        if ttl > 0 and conn.connected and conn.age() >= ttl:
            conn.close()
            self.shared.add(connections__ttl_reconnects=1)
            if self.config.slow_start:
                self.window = float(SLOW_START_WINDOW)
        if conn.stale():
            conn.close()
            self.shared.add(connections__closed_by_server=1)
        if conn.connected:
            return True
        try:
            self._log("debug", "connecting to logstash", timeout=self.config.timeout, window=self._window_size())
            conn.connect()
        except ConnectError as exc:
            self.shared.add(connections__failed=1)
            self._log("error", "logstash connect failed", error=str(exc), retry_in="backoff")
            return False
        self.shared.add(connections__opened=1)
        self._log("info", "connected to logstash", tls=self.tls is not None)
        return True

    def _send_failed(
        self, batch: Batch, conn: Connection, sendable: list[Event], bad: int, exc: SendError, keepalives: int
    ) -> None:
        """Settle the ACKed prefix and hand the rest back (the agent retries them with backoff)."""
        conn.close()
        self._shrink()
        acked = exc.acked
        rest = sendable[acked:]
        self.shared.add(batches__failed=1, connections__broken=1, acks__keepalive=keepalives)
        self._count_host(conn.where, acked)
        self._log("error", "logstash send failed", error=str(exc), acked=acked, unacked=len(rest))
        if exc.refused:  # TLS 1.3 refusal seen on the first read: a connection failure, nothing sent
            batch.settle(acked=acked, cancelled=rest, dropped=bad)
        else:
            batch.settle(acked=acked, retry=rest, dropped=bad)
        if conn is self.conn:
            self._next_host()

    def _count_host(self, where: str, n: int) -> None:
        if n:
            with self.shared.lock:
                self.shared.per_host[where] = self.shared.per_host.get(where, 0) + n

    def _log(self, level: str, msg: str, **kv: Any) -> None:
        logger = self.debug_log if level == "debug" else self.logger
        if logger is not None:
            getattr(logger, level)(msg, output="logstash", host=self.conn.where, **kv)

    def close(self) -> None:
        self.conn.close()
