"""The one-screen summary printed at exit: packets, transactions by protocol and status,
the most frequent values each protocol asks for (``summary_field``: DNS question names),
notes, plugin faults, what the outputs did with the events, and why the exit status is not 0.

``SummaryObserver`` sees every published event; it does a couple of dict updates per event.
It knows no protocol: what it counts per event type comes from the protocol plugins.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from pybeat.api import Event, SummaryField


class SummaryObserver:
    def __init__(self, summary_fields: Mapping[str, SummaryField] | None = None, top_values_cap: int = 100_000):
        #: event type (the ``type`` field, the protocol's name) -> what to count for it
        self.summary_fields = dict(summary_fields or {})
        self.by_type: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        #: label -> value -> count (DNS: "names" -> question name -> count)
        self.top: dict[str, Counter[str]] = {}
        self.notes: Counter[str] = Counter()
        self._cap = top_values_cap

    def __call__(self, event: Event) -> None:
        digest = event.digest
        if digest is not None:  # a pre-encoded event says what the summary needs
            self._count(*digest)
            return
        f = event.fields
        etype = f.get("type", "?")
        spec = self.summary_fields.get(etype) if isinstance(etype, str) else None
        value = event.get(spec.field) if spec is not None else None
        err = f.get("error")
        msg = err.get("message") if isinstance(err, dict) else None
        self._count(
            etype if isinstance(etype, str) else "?", f.get("status"), value if isinstance(value, str) else None,
            msg if isinstance(msg, list) else [msg] if msg else None,
        )

    def _count(self, etype: str, status: str | None, value: str | None, notes: Any) -> None:
        self.by_type[etype] += 1
        if status:
            self.by_status[status] += 1
        if value is not None:
            spec = self.summary_fields.get(etype)
            label = spec.label if spec is not None else "values"
            top = self.top.get(label)
            if top is None:
                top = self.top[label] = Counter()
            n = top.get(value)
            if n is not None:
                top[value] = n + 1
            elif len(top) < self._cap:
                top[value] = 1
        if notes:
            self.notes.update(notes)

    def merge(self, other: "SummaryObserver") -> None:
        """Add another process's counts (a replay split across processes)."""
        self.summary_fields.update(other.summary_fields)
        self.by_type.update(other.by_type)
        self.by_status.update(other.by_status)
        for label, counts in other.top.items():
            self.top.setdefault(label, Counter()).update(counts)
        self.notes.update(other.notes)


def output_names(metrics: Mapping[str, Any]) -> list[str]:
    return sorted({k.split(".")[1] for k in metrics if k.startswith("output.") and k.endswith(".events.acked")})


#: a delivery longer than this after the input ended is shown apart from the decoding
WAIT_SHOWN_S = 1.0


def render(metrics: dict[str, Any], observer: SummaryObserver, elapsed: float, outputs: list[str],
           problems: list[str] | None = None, decoded: float | None = None) -> str:
    """The run's summary. ``decoded``: seconds until the input ended; when delivering the events
    then kept the run waiting (an output down: up to the shutdown deadline), packets/s are of
    the decoding and the wait is shown on its own."""
    m = metrics
    pkts = m.get("decode.packets", 0)
    waited = elapsed - decoded if decoded is not None else 0.0
    took = elapsed if waited < WAIT_SHOWN_S or decoded is None else decoded
    line = (f"  packets     {pkts:,} ({m.get('decode.bytes', 0):,} bytes) in {took:.2f}s"
            + (f" = {pkts / took:,.0f} packets/s" if took > 0 else ""))
    if took != elapsed:
        line += f"; {elapsed:.2f}s in all, {waited:.2f}s of it after the input ended, delivering the events"
    lines = ["pybeat summary", line]
    decode_errors = {k[len('decode.errors.'):]: v for k, v in m.items() if k.startswith("decode.errors.")}
    if decode_errors:
        lines.append("  undecodable " + ", ".join(f"{k} {v:,}" for k, v in sorted(decode_errors.items())))
    kernel = m.get("capture.kernel_dropped")
    if kernel is not None:
        lines.append(f"  capture     received {m.get('capture.received', 0):,}, kernel dropped {kernel:,}")
    total = sum(observer.by_type.values())
    by_type = ", ".join(f"{t} {n:,}" for t, n in observer.by_type.most_common())
    lines.append(f"  events      {total:,}" + (f" ({by_type})" if by_type else ""))
    if observer.by_status:
        by_status = ", ".join(f"{s} {n:,}" for s, n in observer.by_status.most_common())
        lines.append(f"  status      {by_status} (of the transactions seen: Error = the server answered "
                     "with an error, or no answer was seen)" if "Error" in observer.by_status
                     else f"  status      {by_status}")
    for label, counts in sorted(observer.top.items()):
        top = ", ".join(f"{value} ({n:,})" for value, n in counts.most_common(5))
        lines.append(f"  top {label:<7} {top}")
    for note, n in observer.notes.most_common(5):
        lines.append(f"  note        {n:,} x {note}")
    faults = sorted((k, v) for k, v in m.items() if k.endswith(".exceptions") and isinstance(v, int) and v)
    if faults:
        lines.append("  plugin bugs " + ", ".join(f"{k} {v:,}" for k, v in faults)
                     + " (each kind is logged once; the traceback with -d '*')")
    filtered = m.get("pipeline.events.filtered", 0)
    if filtered:
        lines.append(f"  filtered    {filtered:,} (dropped by processors)")
    not_published = m.get("pipeline.events.not_delivered", 0)
    if not_published:
        lines.append(f"  not queued  {not_published:,} (the agent stopped before they reached the outputs)")
    for name in outputs:
        p = f"output.{name}."
        acked = m.get(p + "events.acked", 0)
        parts = [f"acked {acked:,}"]
        for key, label in (("duplicates", "duplicates"), ("dropped", "dropped"),
                           ("dropped_max_retries", "of them after max_retries"),
                           ("not_delivered", "not delivered")):
            n = m.get(p + "events." + key, 0)
            if n or key == "dropped":
                parts.append(f"{label} {n:,}")
        full = m.get(p + "queue.dropped_full", 0)
        if full:
            parts.append(f"dropped (queue full) {full:,}")
        lines.append(f"  output      {name}: " + ", ".join(parts))
        rotated = m.get(p + "events.rotated_away", 0)
        if rotated:
            lines.append(f"              {rotated:,} events are in files rotation removed; raise "
                         f"output.{name}.number_of_files or rotate_every_kb to keep them")
        kept = m.get(f"pipeline.queue.disk.pending.{name}", 0)
        if kept:
            lines.append(f"              {kept:,} events kept in the disk queue: the next start sends them first")
        where = m.get(p + "location")
        if where:
            lines.append(f"  written to  {where}" if len(outputs) == 1 else f"  {name + ':':<11} {where}")
    for problem in problems or []:
        lines.append(f"  EXIT STATUS {problem}")
    return "\n".join(lines)
