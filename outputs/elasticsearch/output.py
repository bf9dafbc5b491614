"""The running output: ``_bulk`` per batch, every event settled with a reason.

Owns: connecting, choosing each event's index and pipeline, sending the bulk request (gzip per
``compression_level``, split in halves on HTTP 413), sorting the per-item outcomes, the
dead-letter index, and its own counters (requests, connection errors, items refused).

The agent owns retries and backoff (pybeat.api's contract): a connection-level failure (no node
reachable, the whole request refused with 429/5xx or 401/403) settles the batch as *cancelled*
(sent again later, not counted against ``max_retries``); a retryable *item* (429/5xx in the bulk
response) as *retried* (counted); a refused item as dropped or dead-lettered.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from typing import Any

import orjson
from elastic_transport import TransportError

from pybeat.api import Batch, BeatInfo, Event, OutputContext, format_ts
from pybeat.outputs.elasticsearch.bulk import BulkEncoder, ItemOutcome, Outcome, classify_response
from pybeat.outputs.elasticsearch.client import AuthError, ClusterInfo, Connection
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from pybeat.outputs.elasticsearch.selector import Selector, SelectorError
from pybeat.outputs.elasticsearch.template import section

__all__ = ["ElasticsearchOutput", "Stats", "default_index"]

_FILTER = "filter_path=errors,items.*.status,items.*.error"
LOG_EVERY = 10.0


def default_index(beat: BeatInfo, info: ClusterInfo | None) -> str:
    """Beats 8's name ``<beat>-<version>`` as a data stream where the cluster has them (ES with
    x-pack), else Beats 7's daily ``<beat>-<version>-yyyy.MM.dd`` (OpenSearch, OSS/embedded ES)
    so ``<beat>-*`` data views keep working either way."""
    base = f"{beat.beat}-{beat.version}".lower()
    if info is not None and info.flavour == "elasticsearch" and info.data_streams:
        return base
    return base + "-%{+yyyy.MM.dd}"


class Stats:
    """Counters shared by the workers of one output (read by the metrics registry)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: Counter[str] = Counter()

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                if v:
                    self.c[k] += v

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.c)


class _Shared:
    """What every worker of one output shares: the connection pool, cluster info, counters."""

    def __init__(self, cfg: ElasticsearchConfig, ctx: OutputContext):
        self.conn = Connection(cfg, cfg.worker_count)
        self.stats = Stats()
        self.ctx = ctx
        self.setup_lock = threading.Lock()
        self.ready = False
        self.clients = 0  # open ElasticsearchOutput objects; the pool closes with the last
        self.log_lock = threading.Lock()
        # Repeated failure logs are folded: one line per reason per LOG_EVERY seconds, with
        # the number of events it stands for (a 429 storm must not become a log storm).
        self.log_state: dict[tuple[Any, ...], tuple[float, int]] = {}

    def should_log(self, key: tuple[Any, ...], count: int, now: float) -> int:
        """0 to stay quiet, else the number of events the line reports (folded ones included)."""
        with self.log_lock:
            last, folded = self.log_state.get(key, (-1e9, 0))
            if now - last < LOG_EVERY:
                self.log_state[key] = (last, folded + count)
                return 0
            if len(self.log_state) > 1000:
                self.log_state.clear()
            self.log_state[key] = (now, 0)
            return folded + count


class ElasticsearchOutput:
    def __init__(self, cfg: ElasticsearchConfig, ctx: OutputContext, shared: _Shared):
        self.cfg = cfg
        self.ctx = ctx
        self.beat = ctx.beat
        self.shared = shared
        self.conn = shared.conn
        self.stats = shared.stats
        self.log = ctx.logger
        bind = getattr(ctx.logger, "bind", None)  # -d elasticsearch: its debug lines (a structlog-style bind)
        self.debug_log = bind(logger="elasticsearch") if bind is not None else None
        self.encoder = BulkEncoder(cfg.escape_html)
        self.meta_base = {"beat": ctx.beat.beat, "type": "_doc", "version": ctx.beat.version}
        self.index_sel: Selector | None = None
        self.pipeline_sel = Selector(cfg.pipeline, cfg.pipelines, "pipeline", ("pipeline",))
        dl = cfg.non_indexable_policy.dead_letter_index
        self.dead_letter = dl.index if dl else None
        self._closing = False
        self.op = "create"
        with shared.setup_lock:
            shared.clients += 1

    # -- logging ------------------------------------------------------------------------
    def _warn(self, msg: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.warning(msg, output="elasticsearch", **kw)

    def _info(self, msg: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.info(msg, output="elasticsearch", **kw)

    def _debug(self, msg: str, **kw: Any) -> None:
        if self.debug_log is not None:  # -d elasticsearch: once per connection or bulk request
            self.debug_log.debug(msg, **kw)

    def _folded_warn(self, msg: str, problem: str, count: int) -> None:
        """A failure that repeats while a cluster is down: one line per LOG_EVERY seconds."""
        total = self.shared.should_log(("conn", msg, problem[:120]), count, time.monotonic())
        if total:
            self._warn(msg, error=problem, events=total,
                       note=f"similar failures are logged at most every {LOG_EVERY:g}s; the agent retries with backoff")

    # -- connecting -------------------------------------------------------------------------
    def _ensure_connected(self) -> str | None:
        """Connect (once per output, shared by the clients): None when ready, else why not."""
        sh = self.shared
        if not sh.ready:
            if self._closing:
                return "the output is closing"
            with sh.setup_lock:
                if not sh.ready:
                    try:
                        self._debug("connecting", hosts=self.cfg.hosts)
                        info = self.conn.discover()
                        self._on_connect(info)
                    except (TransportError, AuthError, OSError) as exc:
                        self.stats.add(connection_errors=1)
                        return f"cannot connect: {exc}"
                    sh.ready = True
        if self.index_sel is None:
            info = self.conn.info
            self.index_sel = Selector(self.cfg.index or default_index(self.beat, info), self.cfg.indices, "index",
                                      ("raw_index",))
            self.op = info.bulk_op if info else "create"
        return None

    def _on_connect(self, info: ClusterInfo) -> None:
        self._info(
            "connected", flavour=info.flavour, version=info.number, ilm=info.ilm, ism=info.ism,
            data_streams=info.data_streams,
        )
        if info.flavour == "elasticsearch" and info.version[0] < 7:
            self._warn("Elasticsearch before 7.0 is not supported (bulk requests carry no _type)", version=info.number)
        setup = dict(self.ctx.setup)
        template = section(setup, "template")
        custom_names = bool(template.get("name") and template.get("pattern"))
        # Beats loads its template for the default index, or for a custom one when
        # setup.template.name and .pattern say which indices it is for.
        if template.get("enabled", True) not in (False, "false") and (not self.cfg.index or custom_names):
            from pybeat.outputs.elasticsearch.admin import ensure_index_management

            ensure_index_management(self.conn, setup, self.beat, self.log, self.ctx.field_types)

    # -- encoding ----------------------------------------------------------------------------
    def _meta(self, event: Event) -> dict[str, Any]:
        if not event.meta:
            return self.meta_base
        meta = dict(self.meta_base)
        meta.update(event.meta)
        return meta

    def _encode(self, events: list[Event]) -> tuple[list[Event], list[bytes], Counter[str]]:
        """Action and document lines; events that cannot be named or encoded are left out."""
        sel = self.index_sel
        assert sel is not None
        psel = self.pipeline_sel
        op = self.op
        enc = self.encoder
        kept: list[Event] = []
        lines: list[bytes] = []
        failed: Counter[str] = Counter()
        for ev in events:
            meta = self._meta(ev)
            try:
                index = sel.select(ev, meta)
                pipeline = psel.select(ev, meta)
                doc = enc.document(ev)
            except SelectorError as exc:
                failed[f"index selection failed: {exc}"] += 1
                continue
            except (TypeError, ValueError) as exc:
                failed[f"event could not be encoded: {exc}"] += 1
                continue
            doc_id = ev.meta.get("_id") if ev.meta else None
            lines.append(enc.action("create" if doc_id is not None else op, index or "", pipeline,
                                    None if doc_id is None else str(doc_id)))
            lines.append(doc)
            kept.append(ev)
        return kept, lines, failed

    # -- sending -------------------------------------------------------------------------
    def _post(self, lines: list[bytes]) -> tuple[int, Any] | str:
        """POST one bulk body: ``(status, parsed body)``, or why the request as a whole failed
        (no node reachable, 429/5xx or 401/403 for the whole request)."""
        body = self.encoder.body(lines)
        headers = {"content-type": "application/x-ndjson", "accept": "application/json"}
        level = self.cfg.compression_level
        if level > 0:
            body = gzip.compress(body, compresslevel=level)
            headers["content-encoding"] = "gzip"
        path = f"/_bulk?{_FILTER}{self.conn.query}"
        if self._closing:
            return "the output is closing"
        try:
            status, parsed = self.conn.request("POST", path, body=body, headers=headers)
        except TransportError as exc:
            self.stats.add(connection_errors=1)
            return f"{type(exc).__name__}: {exc}"
        if status == 413 or (200 <= status < 300) or status == 400 or status == 404:
            self.stats.add(bulk_requests=1)
            return status, parsed
        self.stats.add(connection_errors=1)
        problem = f"HTTP {status}: {str(parsed)[:300]}"
        if status in (401, 403):
            problem = f"authentication/authorization failed ({problem})"
        return problem

    def _send(self, events: list[Event], lines: list[bytes]) -> list[ItemOutcome]:
        """Outcomes for ``events`` (whose action+doc lines are ``lines``); splits on 413."""
        got = self._post(lines)
        if isinstance(got, str):
            return [ItemOutcome(Outcome.UNSENT, 0, "request_failed", got)] * len(events)
        status, body = got
        if status == 413:
            if len(events) == 1:
                return [ItemOutcome(Outcome.NON_INDEXABLE, 413, "request_entity_too_large", "document larger than http.max_content_length")]
            self.stats.add(batches_split=1)
            half = len(events) // 2
            return self._send(events[:half], lines[: 2 * half]) + self._send(events[half:], lines[2 * half:])
        if status in (400, 404):
            reason = str(body)[:300]
            return [ItemOutcome(Outcome.RETRY, status, "bulk_request_refused", reason)] * len(events)
        return classify_response(body, len(events), self.op)

    # -- publish ----------------------------------------------------------------------------
    def publish(self, batch: Batch) -> None:
        problem = self._ensure_connected()
        if problem is not None:
            self._folded_warn("cannot reach Elasticsearch", problem, len(batch.events))
            batch.cancel()
            return
        events, lines, failed = self._encode(batch.events)
        dropped = sum(failed.values())
        for reason, n in failed.items():
            self._warn("events dropped", count=n, reason=reason)
        self.stats.add(dropped_unencodable=dropped)
        if not events:
            batch.settle(dropped=dropped)
            return
        outcomes = self._send(events, lines)
        acked = duplicates = 0
        retry: list[Event] = []
        unsent: list[Event] = []
        bad: list[tuple[Event, ItemOutcome]] = []
        reasons: Counter[tuple[str, int, str]] = Counter()
        toomany = 0
        for ev, out in zip(events, outcomes):
            if out.outcome is Outcome.ACKED:
                acked += 1
            elif out.outcome is Outcome.DUPLICATE:
                duplicates += 1
            elif out.outcome is Outcome.RETRY:
                retry.append(ev)
                toomany += out.status == 429
                reasons[("retry", out.status, out.error_type or out.reason[:80])] += 1
            elif out.outcome is Outcome.UNSENT:
                unsent.append(ev)
            else:
                bad.append((ev, out))
                reasons[("non_indexable", out.status, f"{out.error_type}: {out.reason}"[:300])] += 1
        if unsent:
            self._folded_warn("bulk request failed", outcomes[events.index(unsent[0])].reason, len(unsent))
        now = time.monotonic()
        for (kind, status, why), n in reasons.items():
            total = self.shared.should_log((kind, status, why), n, now)
            if total:
                self._warn("bulk items failed", kind=kind, status=status, count=total, reason=why,
                           note=f"similar failures are logged at most every {LOG_EVERY:g}s")
        dl_acked, dl_unsent, dl_dropped = self._non_indexable(bad)
        acked += dl_acked
        unsent.extend(dl_unsent)
        dropped += dl_dropped
        self.stats.add(toomany=toomany)
        self._debug("bulk request settled", events=len(events), acked=acked, duplicates=duplicates,
                    retry=len(retry), unsent=len(unsent), dropped=dropped, attempt=batch.retries + 1)
        batch.settle(acked=acked, duplicates=duplicates, retry=retry, cancelled=unsent, dropped=dropped)

    def _non_indexable(self, bad: list[tuple[Event, ItemOutcome]]) -> tuple[int, list[Event], int]:
        """Dead-letter or drop what the cluster refused; returns (acked, to send again, dropped)."""
        if not bad:
            return 0, [], 0
        if self.dead_letter is None:
            self.stats.add(dropped_non_indexable=len(bad))
            return 0, [], len(bad)
        lines: list[bytes] = []
        for ev, out in bad:
            try:
                original = self.encoder.document(ev).decode("utf-8", "replace")
            except (TypeError, ValueError):
                original = repr(ev.fields)[:10000]
            doc = {
                "@timestamp": format_ts(ev.timestamp_ns),
                "message": original,
                "error": {"type": out.status, "message": f"{out.error_type}: {out.reason}"},
            }
            lines.append(self.encoder.action("create", self.dead_letter))
            lines.append(orjson.dumps(doc))
        dl_events = [ev for ev, _ in bad]
        acked, again, dropped = 0, [], 0
        for ev, out in zip(dl_events, self._send(dl_events, lines)):
            if out.outcome in (Outcome.ACKED, Outcome.DUPLICATE):
                acked += 1
            elif out.outcome in (Outcome.RETRY, Outcome.UNSENT):
                again.append(ev)
            else:
                dropped += 1
                self._warn("dead-letter document refused", status=out.status, reason=out.reason[:300])
        self.stats.add(dead_letter=acked, dropped_non_indexable=dropped)
        return acked, again, dropped

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        sh = self.shared
        with sh.setup_lock:
            sh.clients -= 1
            last = sh.clients == 0
        if last:
            self.conn.close()
