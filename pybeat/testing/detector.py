"""Drive a detector plugin as the agent does: built with a :class:`DetectorContext`, shown
transaction events in the order given (or, from protocols, in the agent's order), its
``expire`` run every 0.5 s of packet time (the
decoder's tick, before the packet that reaches it) and ``flush`` at the end of input; its
alerts collected as it emitted them.

    h = DetectorHarness(plugin, {"threshold": 3})
    for event in events:                     # pybeat.api.Event or (ts_ns, fields)
        h.observe(event)
    alerts = h.flush()

To feed it straight from a capture, give :meth:`ProtocolHarness`'s events to :meth:`observe_all`,
or use :meth:`pcap`, which runs the protocols the detector watches on a capture.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from pybeat.api import BeatInfo, DetectorContext, Event, Paths, Shard
from pybeat.decode import DecoderLimits
from pybeat.testing._common import RecordingLogger, _Faults, checked, config_of, raise_first, fixed_beat
from pybeat.testing.frames import BASE_NS

if TYPE_CHECKING:
    from pybeat.testing.protocol import ProtocolHarness

__all__ = ["DetectorHarness"]

_ORDER = operator.itemgetter(0, 1)


class DetectorHarness:
    """One detector plugin. ``config``: its ``pybeat.detection.<name>`` settings (a mapping
    validated by the plugin's model, or a model instance)."""

    def __init__(
        self,
        plugin: Any,
        config: Mapping[str, Any] | Any = None,
        *,
        strict: bool = True,
        beat: BeatInfo | None = None,
        paths: Paths | None = None,
        shard: Shard | None = None,
        tick_interval_s: float = DecoderLimits.tick_interval_s,
    ):
        info = checked("detectors", plugin)
        self.name = info.name
        self.plugin = plugin
        self.strict = strict
        self.beat = beat or fixed_beat()
        self.logger = RecordingLogger()
        self.faults = _Faults(self.logger)
        self.config = config_of(plugin.config_model, config, f"packetbeat.detection.{self.name}")
        #: every alert, as the detector emitted it
        self.alerts: list[Event] = []
        ctx = DetectorContext(emit=self.alerts.append, beat=self.beat, logger=self.logger.bind(detector=self.name),
                              name=self.name, paths=paths or Paths.resolve(), shard=shard)
        self.detector = plugin.create(self.config, ctx)
        self._tick_ns = int(tick_interval_s * 1e9)
        #: events from protocols (pcap, protocols) until the tick: (emission time, time, event)
        self._period: list[tuple[int, int, Event]] = []
        self._source: Any = None
        self._next_tick = 0
        self._now = 0

    def _call(self, what: str, *args: Any) -> None:
        try:
            getattr(self.detector, what)(*args)
        except Exception as exc:  # contained as the agent does (_guarded in agent/build.py)
            self.faults.record("detector", self.name, exc, what)

    def _done(self, mark: int) -> list[Event]:
        raise_first(self.faults, self.strict)
        return self.alerts[mark:]

    def observe(self, event: Event | tuple[int, Mapping[str, Any]]) -> list[Event]:
        """One transaction event (or ``(ts_ns, fields)``); packet time moves to its timestamp
        first, running ``expire`` when a 0.5 s tick is due. Returns the alerts it caused."""
        if not isinstance(event, Event):
            ts, fields = event
            event = Event(ts, dict(fields))
        mark = len(self.alerts)
        ts = event.timestamp_ns
        if ts >= self._next_tick:
            self._tick(ts)
        self._now = max(self._now, ts)
        self._call("observe", event)
        return self._done(mark)

    def observe_all(self, events: Iterable[Event | tuple[int, Mapping[str, Any]]]) -> list[Event]:
        mark = len(self.alerts)
        for event in events:
            self.observe(event)
        return self.alerts[mark:]

    def _tick(self, now: int) -> None:
        self._next_tick = now + self._tick_ns
        self._call("expire", now)

    def advance(self, ts: int) -> list[Event]:
        """Packet time reaches ``ts`` without an event: one expiry at ``ts``."""
        mark = len(self.alerts)
        self._now = max(self._now, ts)
        self._tick(ts)
        return self._done(mark)

    def flush(self) -> list[Event]:
        """End of input: ``flush`` at the last packet time."""
        mark = len(self.alerts)
        self._call("flush", self._now or BASE_NS)
        return self._done(mark)

    def pcap(self, path: str | Path, protocols: Mapping[Any, Any], flush: bool = True) -> list[Event]:
        """Run a capture through protocol plugins (``{plugin or installed name: config}``) and
        show this detector their events as the agent does; returns the alerts."""
        mark = len(self.alerts)
        self.protocols(protocols).pcap(path, flush=flush)
        self._end_period()  # (without flush: what the agent would show at its next tick)
        return self._done(mark)

    def protocols(self, protocols: Mapping[Any, Any]) -> "ProtocolHarness":
        """A :class:`ProtocolHarness` of the given protocols (``{plugin or installed name:
        config}``) wired to this detector as in the agent: it observes each event of the
        protocols it watches in the agent's order (by emission time, the packet clock when the
        protocol emitted the event, then by timestamp: pybeat/agent/detection.py), before each
        of the decoder's packet-time ticks, where its ``expire`` runs, and its ``flush`` after
        the analyzers'. Feed the harness frames, payloads or captures."""
        from pybeat.plugins import load_registry
        from pybeat.testing.protocol import ProtocolHarness

        items: list[tuple[Any, Any]] = []
        registry = None
        for plugin, config in protocols.items():
            if isinstance(plugin, str):
                registry = registry or load_registry()
                plugin = registry.get("protocols", plugin)
            items.append((plugin, config))
        if not items:
            raise ValueError("name at least one protocol to run")
        (first, first_config), *rest = items
        harness = ProtocolHarness(first, first_config, strict=self.strict)
        for plugin, config in rest:
            harness.add(plugin, config)
        self._source = harness
        for name in set(self.plugin.protocols) & set(harness.analyzers):
            harness.watch(name, self._watched)
        harness.add_timer(_Timers(self))
        return harness

    def _watched(self, event: Event) -> None:
        # As the agent does (pybeat/agent/detection.py): kept, then shown by emission time (the
        # decoder's packet clock when the protocol emitted it), then by timestamp, before the
        # next tick.
        self._now = max(self._now, event.timestamp_ns)
        clock = self._source.decoder.now_ns if self._source is not None else event.timestamp_ns
        self._period.append((clock, event.timestamp_ns, event))

    def _end_period(self) -> None:
        period, self._period = self._period, []
        period.sort(key=_ORDER)
        for _, _, event in period:
            self._call("observe", event)

    def stats(self) -> dict[str, int]:
        """The detector's counters (``detection.<name>.<counter>``)."""
        return dict(self.detector.stats())

    def exceptions(self) -> int:
        """``detection.<name>.exceptions`` (``strict=False``)."""
        return self.faults.count("detector", self.name)

    def close(self) -> None:
        self._call("close")
        raise_first(self.faults, self.strict)


class _Timers:
    """The detector on the decoder's timers, as the agent puts it there."""

    def __init__(self, harness: DetectorHarness):
        self.harness = harness

    def expire(self, now_ns: int) -> None:
        self.harness._now = max(self.harness._now, now_ns)
        self.harness._end_period()
        self.harness._call("expire", self.harness._now)

    def flush(self, now_ns: int) -> None:
        self.harness._now = max(self.harness._now, now_ns)
        self.harness._end_period()
        self.harness._call("flush", self.harness._now)

