"""The publishing pipeline: protocol events -> processors -> queue -> output workers.

Owns: the per-protocol client (its ``fields``, ``tags``, ``processors``, ``index``), the
agent's own fields (``agent.*``, ``ecs.version``, ``host.name``), global fields, tags and
processors, batching (``flush.min_events`` / ``flush.timeout``), one bounded queue and a set of
worker threads per output, and the event accounting that proves nothing was lost:

    published = acked + dropped (by outputs) + dropped_full (live capture, queue full) + pending

Several outputs may be enabled at once (Packetbeat allows one): each gets every event through
its own queue, and replay waits for the slowest.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import orjson

from pybeat.api import Batch, BeatInfo, Event, Output
from pybeat.pipeline.queue import MemQueue
from pybeat.timefmt import MAX_NS, MIN_NS, note_out_of_range

ECS_VERSION = "8.0.0"
_ECS = {"version": ECS_VERSION}


class OutputRunner:
    """One output: its queue and its worker threads."""

    def __init__(
        self,
        name: str,
        make_client: Callable[[], Output],
        workers: int,
        batch_size: int,
        queue_events: int,
        logger: Any,
        queue: Any = None,
    ):
        self.name = name
        #: MemQueue, or this output's DiskQueueConsumer (told which events were settled)
        self.queue: Any = queue if queue is not None else MemQueue(queue_events)
        self._settled_events = getattr(self.queue, "settled", None)
        self.kept = 0  # disk queue: events left on disk for the next start
        self.batch_size = batch_size
        self.logger = logger
        self.clients = [make_client() for _ in range(max(1, workers))]
        self.acked = 0
        self.duplicates = 0
        self.dropped = 0
        self.retried = 0
        self.batches = 0
        self.failures = 0
        self._abandon = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(c,), name=f"output-{name}-{i}", daemon=True)
            for i, c in enumerate(self.clients)
        ]
        for t in self._threads:
            t.start()

    def _on_settle(self, batch: Batch, acked: int, duplicates: int, retry: list[Event], dropped: int) -> None:
        with self._lock:
            self.acked += acked - duplicates
            self.duplicates += duplicates
            self.dropped += dropped
            self.batches += 1
            if retry:
                self.retried += len(retry)
        if self._settled_events is not None:
            if retry:
                keep = {id(e) for e in retry}
                self._settled_events([e for e in batch.events if id(e) not in keep])
            else:
                self._settled_events(batch.events)
            if retry:
                # after a stop the disk queue keeps them for the next start
                self.queue.requeue(retry, batch.retries + 1)
            return
        self.queue.release(acked + dropped)
        if retry:
            if self._abandon:
                with self._lock:
                    self.dropped += len(retry)
                self.queue.release(len(retry))
            else:
                self.queue.requeue(retry, batch.retries + 1)

    def _work(self, client: Output) -> None:
        while True:
            got = self.queue.get(self.batch_size)
            if got is None:
                return
            events, retries = got
            if not events:
                continue
            if self._abandon:
                with self._lock:
                    self.dropped += len(events)
                self.queue.release(len(events))
                continue
            batch = Batch(events, self._on_settle, retries)
            try:
                client.publish(batch)
            except Exception as exc:  # an output bug must not lose events or kill the worker
                self.failures += 1
                if self.logger is not None:
                    self.logger.error("output publish failed", output=self.name, error=repr(exc))
                if not batch.settled:
                    time.sleep(min(1.0, 0.05 * (retries + 1)))
                    batch.retry()
                continue
            if not batch.settled:
                if self.logger is not None:
                    self.logger.error("output returned without settling its batch", output=self.name)
                batch.retry()

    def close(self, timeout: float | None) -> bool:
        """Wait for every queued event to settle (``timeout`` None = no limit), then stop."""
        self.queue.close()
        drained = self.queue.wait_empty(timeout)
        if not drained and self._settled_events is not None:
            # Disk queue: nothing is dropped; what is not delivered stays for the next start.
            self.kept = self.queue.take_all()
            self._close_clients()
            for t in self._threads:
                t.join(timeout=5.0)
            self.kept = self.queue.used
            return False
        if not drained:
            self._abandon = True
            # Closing the clients first wakes a worker that is backing off or waiting on a dead
            # server; what is still queued or in flight then settles as 'dropped' (counted).
            self._close_clients()
            self.queue.wait_empty(5.0)
        for t in self._threads:
            t.join(timeout=5.0)
        if drained:
            self._close_clients()
        return drained

    def _close_clients(self) -> None:
        for c in {id(c): c for c in self.clients}.values():
            try:
                c.close()
            except Exception as exc:
                if self.logger is not None:
                    self.logger.warning("output close failed", output=self.name, error=repr(exc))

    def stats(self) -> dict[str, int]:
        return {
            "events.acked": self.acked,
            "events.duplicates": self.duplicates,
            "events.dropped": self.dropped,
            "events.retried": self.retried,
            "events.failed_publish_calls": self.failures,
            "batches": self.batches,
            "queue.used": self.queue.used,
            "queue.capacity": self.queue.capacity,
            "queue.peak": self.queue.peak,
            "queue.dropped_full": self.queue.dropped_full,
            "events.kept_on_disk": self.kept,
        }


class Pipeline:
    """Processors, batching and fan-out to output runners."""

    def __init__(
        self,
        beat: BeatInfo,
        runners: list[OutputRunner],
        processors: list[Any] | None = None,
        fields: dict[str, Any] | None = None,
        fields_under_root: bool = False,
        tags: list[str] | None = None,
        min_events: int = 1600,
        flush_timeout: float = 10.0,
        block: bool = True,
        clock: Callable[[], float] = time.monotonic,
        disk_queue: Any = None,
    ):
        self.beat = beat
        self.runners = runners
        #: one DiskQueue shared by every output (instead of a MemQueue each)
        self.disk_queue = disk_queue
        self.processors = processors or []
        self.global_fields = fields or {}
        self.fields_under_root = fields_under_root
        self.tags = tags or []
        self.min_events = max(1, min_events)
        self.flush_timeout = flush_timeout
        self.block = block
        self.clock = clock
        self._pending: list[Event] = []
        self._pending_since = 0.0
        #: called with every event that passed the processors (e.g. the exit summary)
        self.observers: list[Callable[[Event], None]] = []
        self.published = 0
        self.filtered = 0
        self.dropped_full = 0
        self._agent = {
            "type": beat.beat,
            "name": beat.name or beat.hostname,
            "version": beat.version,
            "id": beat.agent_id,
            "ephemeral_id": beat.ephemeral_id,
            "build": {"original": f"{beat.product} {beat.version}"},
        }
        self._host_name = beat.name or beat.hostname
        self._host = {"name": self._host_name}
        # The same three objects for a pre-encoded event (Event.raw), spliced before its "}".
        self._raw_tail = (
            b',"agent":' + orjson.dumps(self._agent) + b',"ecs":' + orjson.dumps(_ECS)
            + b',"host":' + orjson.dumps(self._host) + b"}"
        )

    def builtin(self, fields: dict[str, Any]) -> None:
        """Fields libbeat adds to every event before the processors run."""
        # Independent copies, nested ones included: a processor may change them in one event.
        fields["agent"] = _copy(self._agent)
        fields["ecs"] = {"version": ECS_VERSION}
        host = fields.get("host")
        if not isinstance(host, dict):
            fields["host"] = {"name": self._host_name}

    def publish(self, event: Event) -> None:
        """Global stage: fields, tags, processors, then the batch buffer. Called per event."""
        if self.global_fields:
            _merge_fields(event.fields, self.global_fields, self.fields_under_root)
        if self.tags:
            _add_tags(event.fields, self.tags)
        for proc in self.processors:
            event = proc.run(event)
            if event is None:
                self.filtered += 1
                return
        self._accept(event)

    def _accept(self, event: Event) -> None:
        """An event past every processor: count it, show it to the observers, batch it."""
        if not MIN_NS <= event.timestamp_ns <= MAX_NS:
            note_out_of_range(event)  # kept with a note (and clamped times), not lost
        self.published += 1
        for observe in self.observers:
            observe(event)
        pending = self._pending
        if not pending:
            self._pending_since = self.clock()
        pending.append(event)
        if len(pending) >= self.min_events:
            self._flush_pending()

    def _flush_pending(self) -> None:
        events, self._pending = self._pending, []
        if self.disk_queue is not None:
            accepted = self.disk_queue.put(events, block=self.block)
            if accepted < len(events):
                self.dropped_full += len(events) - accepted
            return
        for runner in self.runners:
            accepted = runner.queue.put(events, block=self.block)
            if accepted < len(events):
                self.dropped_full += len(events) - accepted

    def tick(self) -> None:
        """Flush a partial batch older than ``flush.timeout`` (call from the capture loop)."""
        if self._pending and self.clock() - self._pending_since >= self.flush_timeout:
            self._flush_pending()

    def close(self, timeout: float | None = None) -> bool:
        """Flush, wait for outputs to settle everything, stop workers. True if all settled."""
        if self._pending:
            self._flush_pending()
        ok = True
        for runner in self.runners:
            ok = runner.close(timeout) and ok
        if self.disk_queue is not None:
            self.disk_queue.shutdown()
        return ok

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events.published": self.published,
            "events.filtered": self.filtered,
            "events.dropped_queue_full": self.dropped_full,
            "events.pending_batch": len(self._pending),
        }
        for runner in self.runners:
            for k, v in runner.stats().items():
                out[f"output.{runner.name}.{k}"] = v
        if self.disk_queue is not None:
            out.update(self.disk_queue.stats())
        return out


class ProtocolClient:
    """A protocol's connection to the pipeline (libbeat's per-input client): adds the agent's
    fields, the protocol's ``fields``/``tags``/``index``, runs its ``processors``, then hands the
    event to the pipeline. Its ``publish`` is the ``emit`` callback analyzers get."""

    def __init__(
        self,
        pipeline: Pipeline,
        processors: list[Any] | None = None,
        fields: dict[str, Any] | None = None,
        fields_under_root: bool = False,
        tags: list[str] | None = None,
        index: str | None = None,
    ):
        self.pipeline = pipeline
        self.processors = processors or []
        self.fields = fields or {}
        self.fields_under_root = fields_under_root
        self.tags = tags or []
        self.index = index
        self.events = 0
        self._direct = self.events_may_share()  # the configuration does not change during a run
        #: what closes a pre-encoded document on the direct path (see ProtocolContext.raw_close)
        self.raw_close: bytes | None = pipeline._raw_tail if self._direct else None

    def events_may_share(self) -> bool:
        """True when nothing between here and the outputs can change an event (no fields, tags,
        index or processors, here or globally): an analyzer may then hand over events that
        share nested objects (e.g. a memoised ``dns.answers`` list) with other events. Outputs
        and observers only read events."""
        p = self.pipeline
        return not (
            self.fields or self.tags or self.index or self.processors or p.global_fields or p.tags or p.processors
        )

    def publish_closed(self, event: Event) -> None:
        """``publish`` for a pre-encoded event that already ends with ``raw_close`` (direct path
        only: nothing configured can change an event)."""
        self.events += 1
        self.pipeline._accept(event)

    def publish(self, event: Event) -> None:
        self.events += 1
        pipeline = self.pipeline
        if self._direct:
            raw = event.raw
            if raw is not None and len(raw) > 2:
                # Pre-encoded (see Event; it has no agent, ecs or host): the same objects are
                # spliced in as bytes.
                event.raw = raw[:-1] + pipeline._raw_tail
                pipeline._accept(event)
                return
        fields = event.fields
        if self._direct:
            # Nothing configured can change an event (no fields, tags, index or processors
            # here or globally): the agent's fields are added (shared objects: nothing will
            # change them) and the event goes straight to the batch. Same documents as the
            # general path below, less work per event.
            fields["agent"] = pipeline._agent
            fields["ecs"] = _ECS
            host = fields.get("host")
            if not isinstance(host, dict):
                fields["host"] = pipeline._host
            pipeline._accept(event)
            return
        pipeline.builtin(fields)
        if self.fields:
            _merge_fields(fields, self.fields, self.fields_under_root)
        if self.tags:
            _add_tags(fields, self.tags)
        if self.index:
            event.meta["raw_index"] = self.index
        for proc in self.processors:
            event = proc.run(event)
            if event is None:
                pipeline.filtered += 1
                return
        pipeline.publish(event)


def _merge_fields(target: dict[str, Any], fields: dict[str, Any], under_root: bool) -> None:
    if under_root:
        _deep_update(target, fields)
    else:
        node = target.setdefault("fields", {})
        _deep_update(node, fields)


def _deep_update(target: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            _deep_update(target[k], v)
        else:
            target[k] = _copy(v)


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _add_tags(fields: dict[str, Any], tags: list[str]) -> None:
    existing = fields.get("tags")
    if not isinstance(existing, list):
        existing = fields["tags"] = []
    for t in tags:
        if t not in existing:
            existing.append(t)
