"""The one-screen summary printed at exit: packets, transactions by protocol and status,
top question names, notes (errors) and what the outputs did with the events.

``SummaryObserver`` sees every published event; it does a couple of dict updates per event.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pybeat.api import Event


class SummaryObserver:
    def __init__(self, top_names_cap: int = 100_000) -> None:
        self.by_type: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.names: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self._cap = top_names_cap

    def __call__(self, event: Event) -> None:
        digest = event.digest
        if digest is not None:  # a pre-encoded event says what the summary needs
            self._count(*digest)
            return
        f = event.fields
        dns = f.get("dns")
        q = dns.get("question") if isinstance(dns, dict) else None
        err = f.get("error")
        msg = err.get("message") if isinstance(err, dict) else None
        self._count(
            f.get("type", "?"), f.get("status"), q.get("name") if isinstance(q, dict) else None,
            msg if isinstance(msg, list) else [msg] if msg else None,
        )

    def _count(self, etype: str, status: str | None, name: str | None, notes: Any) -> None:
        self.by_type[etype] += 1
        if status:
            self.by_status[status] += 1
        if name is not None:
            names = self.names
            n = names.get(name)
            if n is not None:
                names[name] = n + 1
            elif len(names) < self._cap:
                names[name] = 1
        if notes:
            self.notes.update(notes)


def render(metrics: dict[str, Any], observer: SummaryObserver, elapsed: float, outputs: list[str]) -> str:
    m = metrics
    pkts = m.get("decode.packets", 0)
    lines = [
        "pybeat summary",
        f"  packets     {pkts:,} ({m.get('decode.bytes', 0):,} bytes) in {elapsed:.2f}s"
        + (f" = {pkts / elapsed:,.0f} packets/s" if elapsed > 0 else ""),
    ]
    decode_errors = {k[len('decode.errors.'):]: v for k, v in m.items() if k.startswith("decode.errors.")}
    if decode_errors:
        lines.append("  undecodable " + ", ".join(f"{k} {v:,}" for k, v in sorted(decode_errors.items())))
    kernel = m.get("capture.kernel_dropped")
    if kernel is not None:
        lines.append(f"  capture     received {m.get('capture.received', 0):,}, kernel dropped {kernel:,}")
    total = sum(observer.by_type.values())
    by_type = ", ".join(f"{t} {n:,}" for t, n in observer.by_type.most_common())
    by_status = ", ".join(f"{s} {n:,}" for s, n in observer.by_status.most_common())
    lines.append(f"  events      {total:,}" + (f" ({by_type})" if by_type else "") + (f"; status {by_status}" if by_status else ""))
    if observer.names:
        top = ", ".join(f"{name} ({n:,})" for name, n in observer.names.most_common(5))
        lines.append(f"  top names   {top}")
    if observer.notes:
        for note, n in observer.notes.most_common(5):
            lines.append(f"  note        {n:,} x {note}")
    for name in outputs:
        acked = m.get(f"pipeline.output.{name}.events.acked", 0)
        dup = m.get(f"pipeline.output.{name}.events.duplicates", 0)
        dropped = m.get(f"pipeline.output.{name}.events.dropped", 0)
        full = m.get(f"pipeline.output.{name}.queue.dropped_full", 0)
        lines.append(
            f"  output      {name}: acked {acked:,}" + (f", duplicates {dup:,}" if dup else "")
            + f", dropped {dropped:,}" + (f", dropped (queue full) {full:,}" if full else "")
        )
    where = m.get("output.file.path")
    if where:
        lines.append(f"  written to  {where}")
    return "\n".join(lines)
