"""The ``dns`` detector: reads each DNS transaction once (:func:`view_of`) and hands the view
to the enabled detectors. Packet time only; every table is capped and counts its evictions
(``stats()``, reported as ``detection.dns.<detector>.<counter>``)."""

from __future__ import annotations

import os
from typing import Any

from pybeat.api import Detector, DetectorContext, Event

from .config import DnsDetectionConfig
from .lookalike import LookalikeDetector
from .newdomain import NewDomainDetector
from .poisoning import PoisoningDetector
from .rate import RateDetector
from .tunnel import TunnelDetector
from . import fast, view
from .view import TxnView, view_of

__all__ = ["DnsDetector"]

_MDNS_PORT = 5353
#: the per-domain detectors see a registered domain again after this much packet time
#: (2^42 ns, 73 minutes: new_domain keeps its last-seen times to the hour)
_DOMAIN_PERIOD_SHIFT = 42
_GATE_MAX = 65_536


class DnsDetector(Detector):
    def __init__(self, config: DnsDetectionConfig, ctx: DetectorContext):
        self.config = config
        self.ctx = ctx
        emit = ctx.emit
        self.parts: dict[str, Any] = {}
        if config.tunnel.enabled:
            self.parts["tunnel"] = TunnelDetector(config.tunnel, emit)
        if config.poisoning.enabled:
            self.parts["poisoning"] = PoisoningDetector(config.poisoning, emit)
        if config.lookalike.enabled and config.protected_domains:
            self.parts["lookalike"] = LookalikeDetector(config.lookalike, config.protected_domains, emit)
        if config.rate_anomaly.enabled:
            self.parts["rate_anomaly"] = RateDetector(config.rate_anomaly, emit)
        self.new_domain: NewDomainDetector | None = None
        if config.new_domain.enabled:
            folder = os.path.join(ctx.paths.data, "detection")
            suffix = ctx.shard.suffix if ctx.shard is not None else ""
            self.new_domain = NewDomainDetector(config.new_domain, emit, folder, suffix, ctx.logger)
            self.parts["new_domain"] = self.new_domain
        # Per-transaction detectors see every transaction; the per-domain ones (lookalike judges
        # a registered domain once, new_domain remembers when it last saw one) see a domain
        # when it is new to this gate and then once per period: on ordinary traffic most
        # transactions are of domains seen moments ago. The gate is a cache (cleared when
        # full): whatever it forgets, those detectors are shown again and know what to do.
        per_domain = ("lookalike", "new_domain")
        self._observers = [p.observe for name, p in self.parts.items() if name not in per_domain]
        self._domain_observers = [p.observe for name, p in self.parts.items() if name in per_domain]
        self._gate: dict[str, int] = {}
        self._timers = [p.expire for p in self.parts.values() if hasattr(p, "expire")]
        self.events = 0
        self.unreadable = 0
        self._read_raw = view.raw_reader()
        self._core: Any = None
        if fast.CORE is not None:
            # the compiled twin of observe_raw/observe_view: the per-transaction detectors'
            # twins (each built with its detector), the per-domain ones through the same gate
            twins = [getattr(self.parts.get(n), "observe", None) for n in ("tunnel", "poisoning", "rate_anomaly")]
            self._core = fast.CORE.Dispatch(self._read_raw, self.observe, *twins, self._domain_observers, self._gate,
                                            _MDNS_PORT, _DOMAIN_PERIOD_SHIFT, _GATE_MAX)
            self.observe_raw = self._core.observe_raw  # type: ignore[method-assign]
            self.observe_view = self._core.observe_view  # type: ignore[method-assign]

    def observe(self, event: Event) -> None:
        v = view_of(event)
        if v is None:
            self.unreadable += 1
            return
        self.observe_view(v)

    def observe_raw(self, ts: int, raw: bytes) -> None:
        """``observe(Event(ts, None, raw=raw))`` without the event (pybeat._fastpath: the
        detection process calls it with what ``reduce_raw`` kept of a pre-encoded event)."""
        try:
            v = self._read_raw(ts, raw)
        except ValueError:  # not the DNS protocol's layout: read it the slow way
            self.observe(Event(ts, None, raw=raw))
            return
        if v is None:
            self.unreadable += 1
            return
        self.observe_view(v)

    def observe_view(self, v: TxnView) -> None:
        """Show one transaction to the detectors."""
        # (unpacking a view reads it faster than its attributes do: this runs per event)
        ts, _, client_port, _, _, _, _, msg = v
        if client_port == _MDNS_PORT:
            return  # multicast DNS: local service discovery, not lookups
        self.events += 1
        for observe in self._observers:
            observe(v)
        if self._domain_observers:
            rd = msg.registered_domain
            period = ts >> _DOMAIN_PERIOD_SHIFT
            gate = self._gate
            if gate.get(rd) != period:
                if len(gate) >= _GATE_MAX:
                    gate.clear()
                gate[rd] = period
                for observe in self._domain_observers:
                    observe(v)

    def expire(self, now_ns: int) -> None:
        for expire in self._timers:
            expire(now_ns)

    def flush(self, now_ns: int) -> None:
        self.expire(now_ns)

    def close(self) -> None:
        if self.new_domain is not None:
            self.new_domain.save()

    def stats(self) -> dict[str, int]:
        out = {"events": self.events, "unreadable": self.unreadable}
        if self._core is not None:
            out["events"] += self._core.events
            out["unreadable"] += self._core.unreadable
        for name, part in self.parts.items():
            for k, n in part.counters.items():
                out[f"{name}.{k}"] = n
        if "tunnel" in self.parts:
            out["tunnel.tracked"] = len(self.parts["tunnel"].state)
        if "poisoning" in self.parts:
            out["poisoning.tracked"] = len(self.parts["poisoning"].queries)
        if "rate_anomaly" in self.parts:
            out["rate_anomaly.tracked"] = len(self.parts["rate_anomaly"].clients)
        if self.new_domain is not None:
            out["new_domain.tracked"] = len(self.new_domain.seen)
        return out
