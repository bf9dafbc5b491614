"""The publishing pipeline: protocol events -> detectors, processors -> queue -> output workers.

Owns: the per-protocol client (its ``fields``, ``tags``, ``processors``, ``index``,
``keep_null``, and the detectors that watch its events), the agent's own fields (``agent.*``,
``ecs.version``, ``host.name``), global fields, tags and processors, batching
(``flush.min_events`` / ``flush.timeout``) and fan-out to one :class:`OutputRunner` per output
(see runner.py for retries, backoff and per-output accounting). The counts that prove nothing
was lost:

    published = (per output) acked + duplicates + dropped + not_delivered
    events    = published + filtered (dropped by a processor) + dropped_queue_full (live capture)
                + not_delivered (given up at a shutdown deadline before reaching a queue)

Several outputs may be enabled at once (Packetbeat allows one): each gets every event through
its own queue, and a replay waits for the slowest. With ``queue.disk`` the outputs share one
disk queue (pybeat/pipeline/diskqueue.py): an event is written once, each output reads it on
its own, and what an output did not settle stays on disk for the next start.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import orjson

from pybeat.api import BeatInfo, Event
from pybeat.pipeline.faults import FaultLog
from pybeat.pipeline.runner import OutputRunner
from pybeat.timefmt import MAX_NS, MIN_NS, note_out_of_range

ECS_VERSION = "8.0.0"
_ECS = {"version": ECS_VERSION}

__all__ = ["AlertClient", "ECS_VERSION", "OutputRunner", "Pipeline", "ProtocolClient"]


class _NoChain:
    """An empty processor chain."""

    def __bool__(self) -> bool:
        return False

    def run(self, event: Event) -> Event | None:
        return event

    def close(self) -> None:
        pass


def _as_chain(processors: Any) -> Any:
    """A Chain (pybeat.processors.build) as it is; a plain list of processors (tests) as a
    chain without fault containment; None as the empty chain."""
    if processors is None:
        return _NoChain()
    if isinstance(processors, list):
        if not processors:
            return _NoChain()
        from pybeat.processors.build import Chain

        return Chain([(type(p).__name__, p) for p in processors], FaultLog(None))
    return processors


class Pipeline:
    """Global fields, tags and processors, batching and fan-out to output runners."""

    def __init__(
        self,
        beat: BeatInfo,
        runners: list[OutputRunner],
        processors: Any = None,
        fields: dict[str, Any] | None = None,
        fields_under_root: bool = False,
        tags: list[str] | None = None,
        min_events: int = 1600,
        flush_timeout: float = 10.0,
        block: bool = True,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
        disk_queue: Any = None,
    ):
        self.beat = beat
        self.runners = runners
        #: the DiskQueue every runner reads from (instead of a MemQueue each), or None
        self.disk_queue = disk_queue
        self.processors = _as_chain(processors)
        self.global_fields = fields or {}
        self.fields_under_root = fields_under_root
        self.tags = tags or []
        self.min_events = max(1, min_events)
        self.flush_timeout = flush_timeout
        self.block = block
        self.clock = clock
        self.logger = logger
        self._pending: list[Event] = []
        self._pending_since = 0.0
        #: called with every event that passed the processors (e.g. the exit summary)
        self.observers: list[Callable[[Event], None]] = []
        self.published = 0
        self.filtered = 0
        self.dropped_full = 0
        self.not_delivered = 0
        self.batches_flushed = 0
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

    @property
    def raw_tail(self) -> bytes:
        """What closes a pre-encoded document on the direct path (see pybeat._fastpath)."""
        return self._raw_tail

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
        if self.processors:
            result = self.processors.run(event)
            if result is None:
                self.filtered += 1
                return
            event = result
        self._accept(event)

    def _accept(self, event: Event) -> None:
        """An event past every processor: count it, show it to the observers, batch it."""
        if not MIN_NS <= event.timestamp_ns <= MAX_NS:
            note_out_of_range(event)  # kept, with clamped times and a note, not lost
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
        self.batches_flushed += 1
        targets = [self.disk_queue] if self.disk_queue is not None else [r.queue for r in self.runners]
        for queue in targets:
            accepted = queue.put(events, block=self.block)
            if accepted < len(events):
                if self.block:  # a replay gave up at the shutdown deadline
                    self.not_delivered += len(events) - accepted
                else:
                    self.dropped_full += len(events) - accepted

    def tick(self) -> None:
        """Flush a partial batch older than ``flush.timeout`` (call from the capture loop)."""
        if self._pending and self.clock() - self._pending_since >= self.flush_timeout:
            self._flush_pending()

    def close(self, timeout: float | None = None) -> bool:
        """Flush, wait for the outputs to settle everything (until the shutdown deadline the
        runners share, or ``timeout`` seconds from now), stop the workers. True if every event
        was settled as delivered."""
        if timeout is not None:
            for runner in self.runners:
                runner.deadline.set_in(timeout)
        if self._pending:
            self._flush_pending()
        ok = self.not_delivered == 0
        for runner in self.runners:
            ok = runner.close() and ok
        if self.disk_queue is not None:
            self.disk_queue.shutdown()  # what was not delivered stays for the next start
        self.processors.close()
        if self.logger is not None:
            self.logger.debug("pipeline closed", published=self.published, batches=self.batches_flushed,
                              all_delivered=ok)
        return ok

    def stats(self) -> dict[str, Any]:
        out = {
            "events.published": self.published,
            "events.filtered": self.filtered,
            "events.dropped_queue_full": self.dropped_full,
            "events.not_delivered": self.not_delivered,
            "events.pending_batch": len(self._pending),
        }
        if self.disk_queue is not None:
            out.update(self.disk_queue.stats())
        return out


class ProtocolClient:
    """A protocol's connection to the pipeline (libbeat's per-input client): shows each event
    to the detectors watching the protocol, adds the agent's fields, the protocol's
    ``fields``/``tags``/``index``, runs its ``processors``, then hands the event to the
    pipeline. Its ``publish`` is the ``emit`` callback analyzers get."""

    def __init__(
        self,
        pipeline: Pipeline,
        processors: Any = None,
        fields: dict[str, Any] | None = None,
        fields_under_root: bool = False,
        tags: list[str] | None = None,
        index: str | None = None,
        keep_null: bool = False,
        watchers: Sequence[Callable[[Event], None]] = (),
    ):
        self.pipeline = pipeline
        self.processors = _as_chain(processors)
        self.fields = fields or {}
        self.fields_under_root = fields_under_root
        self.tags = tags or []
        self.index = index
        self.keep_null = keep_null
        #: detectors' observe functions (already guarded): they read events, never change them
        self.watchers = list(watchers)
        self.events = 0
        self._direct = self.events_may_share()  # the configuration does not change during a run
        #: what closes a pre-encoded document on the direct path (see pybeat._fastpath)
        self.raw_close: bytes | None = pipeline.raw_tail if self._direct else None

    def events_may_share(self) -> bool:
        """True when nothing between here and the outputs can change an event (no fields, tags,
        index or processors, here or globally): an analyzer may then hand over events that
        share nested objects (e.g. a memoised ``dns.answers`` list) with other events. Outputs,
        detectors and observers only read events."""
        p = self.pipeline
        return not (
            self.fields or self.tags or self.index or self.processors or p.global_fields or p.tags or p.processors
        )

    def publish_closed(self, event: Event) -> None:
        """``publish`` for a pre-encoded event that already ends with ``raw_close`` (direct path
        only: nothing configured can change an event)."""
        self.events += 1
        for watch in self.watchers:
            watch(event)
        self.pipeline._accept(event)

    def publish(self, event: Event) -> None:
        self.events += 1
        for watch in self.watchers:
            watch(event)
        pipeline = self.pipeline
        if self._direct:
            raw = event.raw
            if raw is not None and len(raw) > 2:
                # Pre-encoded (see pybeat._fastpath; it has no agent, ecs or host): the same
                # objects are spliced in as bytes.
                event.raw = raw[:-1] + pipeline.raw_tail
                pipeline._accept(event)
                return
            fields = event.fields
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
        fields = event.fields
        pipeline.builtin(fields)
        if self.fields:
            _merge_fields(fields, self.fields, self.fields_under_root)
        if self.tags:
            _add_tags(fields, self.tags)
        if self.index:
            event.meta["raw_index"] = self.index
        if self.processors:
            result = self.processors.run(event)
            if result is None:
                pipeline.filtered += 1
                return
            event = result
        if not self.keep_null and (self.fields or self.processors):
            # Beats leaves null fields out unless keep_null is set; only configuration
            # (fields, processors) puts a null into a protocol's event.
            _drop_nulls(event.fields)
        pipeline.publish(event)


class AlertClient:
    """How detectors publish their alerts: the agent's fields, then the global stage (global
    fields, tags and processors) like every event."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.events = 0

    def publish(self, event: Event) -> None:
        self.events += 1
        self.pipeline.builtin(event.fields)
        self.pipeline.publish(event)


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


def _drop_nulls(node: dict[str, Any]) -> None:
    for k in [k for k, v in node.items() if v is None]:
        del node[k]
    for v in node.values():
        if isinstance(v, dict):
            _drop_nulls(v)


def _add_tags(fields: dict[str, Any], tags: list[str]) -> None:
    existing = fields.get("tags")
    if not isinstance(existing, list):
        existing = fields["tags"] = []
    for t in tags:
        if t not in existing:
            existing.append(t)
