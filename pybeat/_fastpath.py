"""Speed hooks for the built-in protocols only: not part of the plugin API.

Third-party plugins never need these (a plugin gets the same results without them) and must
not use them: they change whenever the hot path does. The built-in protocols may import this
module besides ``pybeat.api``.

- Pre-encoded events: ``Event(ts, None, raw=b'{...}', digest=(type, status, summary value,
  notes))``. ``raw`` is the JSON object of the event's fields without ``@timestamp`` and
  ``@metadata``; encoders splice it as it is, and anything that reads ``Event.fields`` gets
  it decoded (the event is an ordinary one from then on). ``digest`` is what the exit
  summary needs of it without decoding. A protocol may emit them only when
  ``ProtocolContext.events_may_share`` is True.
- :class:`FastPath` (``fastpath_of(ctx)``): where the pipeline lets it (nothing configured
  changes an event), ``raw_close`` is the bytes that close a pre-encoded document (the
  pipeline's ``agent``, ``ecs`` and ``host`` and the final ``}``) and ``emit_closed``
  publishes an event whose ``raw`` already ends with them, with no splice on the way.
- ``Analyzer.udp4_lane()`` (optional, looked up with ``getattr``): a compiled stand-in for
  ``on_udp4`` that the compiled replay loop calls without creating Python objects first.
- ``DetectorPlugin.reduce_raw(raw) -> bytes`` (optional, looked up with ``getattr``): when
  detectors run in their own process (pybeat/agent/detection.py), a capture process hands
  over a pre-encoded event of the protocols the detector watches as ``reduce_raw(raw)``: the
  part of it the detector reads, which it must read the same way as the whole event. Used
  only when every detector watching that protocol has the same one.
- ``Detector.observe_raw(ts_ns, raw)`` (optional): ``observe(Event(ts_ns, None, raw=raw))``
  without the ``Event``, for such a pre-encoded event, when it is the only detector of that
  protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pybeat._sdk.events import EmitFn

__all__ = ["FastPath", "fastpath_of"]


@dataclass(frozen=True)
class FastPath:
    raw_close: bytes
    emit_closed: EmitFn


def fastpath_of(ctx: Any) -> FastPath | None:
    """The hooks the agent offers this protocol context, or None."""
    fp = getattr(ctx, "_fastpath", None)
    return fp if isinstance(fp, FastPath) else None
