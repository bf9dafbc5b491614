"""The ``_bulk`` wire format: request bodies and per-item outcomes. Pure, no I/O.

Owns: the action line (``create``/``index`` with ``_index``, ``pipeline``, ``_id``), the
document (``@timestamp`` in Beats' form, ``@metadata`` left out, the event's fields never
mutated), and sorting a bulk response into acked / duplicate / retry / non-indexable, with the
reason for every item that did not make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from pybeat.api import Event, escape_html, format_ts, json_default

__all__ = ["BulkEncoder", "ItemOutcome", "Outcome", "classify_status", "classify_response"]

_OPTS = orjson.OPT_NON_STR_KEYS


class Outcome(str, Enum):
    ACKED = "acked"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # 429 and 5xx: the cluster is busy or a shard is unavailable
    NON_INDEXABLE = "non_indexable"  # other 4xx: mapping conflicts and the like
    UNSENT = "unsent"  # the request carrying it failed as a whole (no node, 429/5xx for all): send again


@dataclass(frozen=True)
class ItemOutcome:
    outcome: Outcome
    status: int
    error_type: str = ""
    reason: str = ""


def classify_status(status: int, op: str = "create") -> Outcome:
    """libbeat's rule for one bulk item."""
    if status < 300:
        return Outcome.ACKED
    if status == 409 and op == "create":
        return Outcome.DUPLICATE
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.NON_INDEXABLE


def _error_fields(error: Any) -> tuple[str, str]:
    if isinstance(error, dict):
        etype = str(error.get("type", ""))
        reason = str(error.get("reason", ""))
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason = f"{reason}: {cause.get('type', '')}: {cause.get('reason')}"
        return etype, reason
    return "", "" if error is None else str(error)


def classify_response(body: Any, count: int, op: str = "create") -> list[ItemOutcome]:
    """One outcome per item of a bulk request of ``count`` actions.

    A response that does not list every item (a proxy's error page, a truncated body) makes
    the missing items retryable: they are never counted as acked without the cluster saying so.
    """
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return [ItemOutcome(Outcome.RETRY, 0, "invalid_response", "bulk response without items")] * count
    if not body.get("errors", True):
        if len(items) == count:
            return [ItemOutcome(Outcome.ACKED, 200)] * count
    out: list[ItemOutcome] = []
    for i in range(count):
        if i >= len(items) or not isinstance(items[i], dict) or not items[i]:
            out.append(ItemOutcome(Outcome.RETRY, 0, "invalid_response", "item missing from bulk response"))
            continue
        result = next(iter(items[i].values()))
        if not isinstance(result, dict):
            out.append(ItemOutcome(Outcome.RETRY, 0, "invalid_response", "item without a result"))
            continue
        status = result.get("status", 0)
        if not isinstance(status, int):
            status = 0
        outcome = classify_status(status, op) if status else Outcome.RETRY
        if outcome is Outcome.ACKED:
            out.append(ItemOutcome(outcome, status))
        else:
            etype, reason = _error_fields(result.get("error"))
            out.append(ItemOutcome(outcome, status, etype, reason))
    return out


class BulkEncoder:
    """Turns events into ``_bulk`` NDJSON lines. One per output worker (keeps small caches)."""

    def __init__(self, escape_html: bool = False):
        self.escape_html = escape_html
        self._actions: dict[tuple[str, str, str | None], bytes] = {}

    def action(self, op: str, index: str, pipeline: str | None = None, doc_id: str | None = None) -> bytes:
        if doc_id is not None:
            meta: dict[str, Any] = {"_index": index, "_id": doc_id}
            if pipeline:
                meta["pipeline"] = pipeline
            return orjson.dumps({op: meta})
        key = (op, index, pipeline)
        line = self._actions.get(key)
        if line is None:
            if len(self._actions) > 4096:
                self._actions.clear()
            meta = {"_index": index}
            if pipeline:
                meta["pipeline"] = pipeline
            line = self._actions[key] = orjson.dumps({op: meta})
        return line

    def document(self, event: Event) -> bytes:
        """The indexed document: ``@timestamp`` first, then the event's fields (a shallow copy)."""
        raw = event.raw
        if raw is not None and len(raw) > 2:  # pre-encoded (see Event): spliced as it is
            data = b'{"@timestamp":"' + format_ts(event.timestamp_ns).encode() + b'",' + raw[1:]
            return escape_html(data) if self.escape_html else data
        doc = {"@timestamp": format_ts(event.timestamp_ns)}
        doc.update(event.fields)
        data = orjson.dumps(doc, option=_OPTS, default=json_default)
        return escape_html(data) if self.escape_html else data

    @staticmethod
    def body(lines: list[bytes]) -> bytes:
        """The request body: every line followed by a newline (the last one too)."""
        return b"\n".join(lines) + b"\n" if lines else b""
