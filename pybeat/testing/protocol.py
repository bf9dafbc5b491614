"""Drive protocol plugins as the agent does: frames through the real :class:`Decoder` (link
layers, IP, fragments, UDP port dispatch, TCP reassembly, ICMP), analyzers built with the
agent's :class:`ProtocolContext` and :class:`Envelope`, packet time driving ``expire`` every
0.5 s and ``flush`` at the end of input.

    h = ProtocolHarness(plugin, {"ports": [123]})
    events = h.udp(request, src=("10.0.0.1", 40000), dst=("10.0.0.2", 123), ts=at(0))
    events += h.udp(response, src=("10.0.0.2", 123), dst=("10.0.0.1", 40000), ts=at(0.01))
    events += h.flush()
    h.stats()  # the analyzer's counters

Events are collected as the protocol emitted them (``events``); with ``published=True`` also
as the pipeline publishes them (``published``: the agent's ``agent``/``ecs``/``host`` fields,
the protocol's and the global ``fields``, ``tags``, ``index``, ``processors`` and
``keep_null``, through the agent's own :class:`ProtocolClient` and :class:`Pipeline`).

An exception an analyzer raises fails the test (:class:`PluginFault`) at the end of the call
that fed the packet; ``strict=False`` shows what the agent does instead (the packet is lost,
``<protocol>.exceptions`` counts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from pybeat._fastpath import FastPath
from pybeat.api import Analyzer, BeatInfo, Envelope, Event, Paths, ProtocolContext
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder, DecoderLimits
from pybeat.monitoring import MetricsRegistry
from pybeat.pipeline import Pipeline, ProtocolClient
from pybeat.processors.build import BuildContext, build_chain
from pybeat.testing import frames as f
from pybeat.testing._common import (
    RecordingLogger, _Faults, checked, config_of, raise_first, registry_with, snapshot, fixed_beat,
)

__all__ = ["ProtocolHarness", "TcpStream"]


@dataclass
class _Protocol:
    name: str
    plugin: Any
    config: Any
    analyzer: Analyzer
    client: ProtocolClient


class ProtocolHarness:
    """One or more protocol plugins on one decoder (``add`` another before the first packet).

    ``config``: the protocol's settings as in ``packetbeat.protocols`` (a mapping, validated by
    the plugin's model as the agent validates it; ``type`` is filled in), or a model instance.
    ``internal_networks``/``local_ips``: what ``network.direction`` is computed from (the agent
    uses the host's addresses; a test gives its own so results do not depend on the machine).
    ``processors``/``fields``/``tags``: the global ones (only with ``published=True``).
    ``limits``: the decoder's caps (``packetbeat.limits``). ``share_events``: what the
    analyzer is told in ``ctx.events_may_share`` (None: what the agent would tell it, True
    when nothing configured changes events), to test both forms of a protocol that shares.
    """

    def __init__(
        self,
        plugin: Any,
        config: Mapping[str, Any] | Any = None,
        *,
        published: bool = False,
        strict: bool = True,
        internal_networks: Sequence[str] = (),
        local_ips: Sequence[str] = (),
        processors: Sequence[Mapping[str, Any]] = (),
        fields: Mapping[str, Any] | None = None,
        fields_under_root: bool = False,
        tags: Sequence[str] = (),
        limits: DecoderLimits | None = None,
        beat: BeatInfo | None = None,
        paths: Paths | None = None,
        share_events: bool | None = None,
    ):
        self.beat = beat or fixed_beat()
        self.strict = strict
        self.published_mode = published
        self.share_events = share_events
        self.logger = RecordingLogger()
        self.faults = _Faults(self.logger)
        self.envelope = Envelope(list(internal_networks), list(local_ips))
        self.limits = limits
        self.paths = paths or Paths.resolve()
        #: every event, as the protocols emitted them, in order
        self.events: list[Event] = []
        #: every event as the pipeline published it (``published=True`` only)
        self.published: list[Event] = []
        self._by_protocol: dict[str, list[Event]] = {}
        self._protocols: list[_Protocol] = []
        self._decoder: Decoder | None = None
        self._watchers: dict[str, list[Callable[[Event], None]]] = {}
        self._timers: list[Any] = []
        self._now = 0
        self._registry = registry_with("protocols", checked("protocols", plugin))
        self._bctx = BuildContext(self._registry, self.beat, self.faults, self.paths, self.logger)
        chain = build_chain(list(processors), self._bctx, "processors")
        self.pipeline = Pipeline(self.beat, [], processors=chain, fields=dict(fields or {}),
                                 fields_under_root=fields_under_root, tags=list(tags), min_events=1 << 30,
                                 logger=self.logger)
        self.pipeline.observers.append(self.published.append)
        self.metrics_registry = MetricsRegistry()
        self.metrics_registry.register("", self.faults.metrics)
        self.add(plugin, config)

    # -- building ------------------------------------------------------------------------
    def add(self, plugin: Any, config: Mapping[str, Any] | Any = None) -> Analyzer:
        """Another protocol on the same decoder; returns its analyzer."""
        if self._decoder is not None:
            raise RuntimeError("add protocols before the first packet")
        info = checked("protocols", plugin)
        name = info.name
        if any(p.name == name for p in self._protocols):
            raise ValueError(f"protocol {name!r} is already in this harness")
        self._registry.plugins["protocols"][name] = info
        key = f"packetbeat.protocols.{len(self._protocols)}"
        cfg = config_of(plugin.config_model, config, key, {"type": name})
        chain = build_chain(list(getattr(cfg, "processors", []) or []), self._bctx, f"{key}.processors")
        client = ProtocolClient(
            self.pipeline, processors=chain, fields=getattr(cfg, "fields", None) or {},
            fields_under_root=getattr(cfg, "fields_under_root", False), tags=getattr(cfg, "tags", None) or [],
            index=getattr(cfg, "index", None), keep_null=getattr(cfg, "keep_null", False),
        )
        collected = self._by_protocol.setdefault(name, [])

        watchers = self._watchers.setdefault(name, [])

        def emitted(event: Event) -> None:
            copy = snapshot(event) if self.published_mode else event
            self.events.append(copy)
            collected.append(copy)
            for watch in watchers:
                watch(copy)

        if self.published_mode:
            def emit(event: Event) -> None:
                emitted(event)
                client.publish(event)

            def emit_closed(event: Event) -> None:
                emitted(event)
                client.publish_closed(event)

            fast = FastPath(client.raw_close, emit_closed) if client.raw_close else None
        else:
            emit, fast = emitted, None
        ctx = ProtocolContext(emit=emit, beat=self.beat, protocol_name=name, envelope=self.envelope,
                              logger=self.logger.bind(protocol=name),
                              events_may_share=client.events_may_share() if self.share_events is None
                              else self.share_events and client.events_may_share(), fastpath=fast)
        analyzer: Analyzer = plugin.create(cfg, ctx)
        self._protocols.append(_Protocol(name, plugin, cfg, analyzer, client))
        self.metrics_registry.register(name, analyzer.stats)
        return analyzer

    def watch(self, protocol: str, fn: Callable[[Event], None]) -> None:
        """Call ``fn`` with every event ``protocol`` emits, as it is emitted (what the agent does
        for the detectors watching a protocol)."""
        if protocol not in self._watchers:
            raise KeyError(protocol)
        self._watchers[protocol].append(fn)

    def add_timer(self, timer: Any) -> None:
        """Something with ``expire(now_ns)`` and ``flush(now_ns)`` that runs on the decoder's
        packet-time ticks after the analyzers (the agent's detectors)."""
        if self._decoder is not None:
            self._decoder.timers.append(timer)
        self._timers.append(timer)

    @property
    def decoder(self) -> Decoder:
        """The agent's decoder, with every protocol on its configured ports."""
        if self._decoder is None:
            udp: dict[int, Analyzer] = {}
            tcp: dict[int, Analyzer] = {}
            icmp: Analyzer | None = None
            for p in self._protocols:
                ports = list(getattr(p.config, "ports", []) or [])
                transports = set(p.plugin.transports)
                if transports & {"udp", "tcp"} and not ports:
                    raise ValueError(f"protocol {p.name} has no ports configured: pass {{'ports': [...]}}")
                for port in ports:
                    if "udp" in transports:
                        udp[port] = p.analyzer
                    if "tcp" in transports:
                        tcp[port] = p.analyzer
                if "icmp" in transports:
                    icmp = p.analyzer
            names = {id(p.analyzer): p.name for p in self._protocols}

            def failed(analyzer: Any, exc: BaseException) -> None:
                name = names.get(id(analyzer)) if analyzer is not None else None
                if name is None:
                    name = next(iter(names.values())) if len(names) == 1 else "unknown"
                self.faults.record("protocol", name, exc, "packet")

            self._decoder = Decoder(udp, tcp, icmp, self.limits, timers=self._timers, on_analyzer_error=failed)
            self.metrics_registry.register("decode", self._decoder.stats)
        return self._decoder

    @property
    def analyzer(self) -> Analyzer:
        """The analyzer (of the first protocol, when there are several)."""
        return self._protocols[0].analyzer

    @property
    def analyzers(self) -> dict[str, Analyzer]:
        return {p.name: p.analyzer for p in self._protocols}

    @property
    def config(self) -> Any:
        """The validated config (of the first protocol)."""
        return self._protocols[0].config

    def events_of(self, protocol: str) -> list[Event]:
        """The events one protocol emitted."""
        return list(self._by_protocol.get(protocol, []))

    # -- feeding -------------------------------------------------------------------------
    def _ts(self, ts: int | None) -> int:
        if ts is None:
            ts = self._now + 1_000 if self._now else f.BASE_NS
        self._now = max(self._now, ts)
        return ts

    def _fed(self, mark: int) -> list[Event]:
        raise_first(self.faults, self.strict)
        return self.events[mark:]

    def frame(self, frame: bytes, ts: int | None = None, link: int = f.LINKTYPE_ETHERNET) -> list[Event]:
        """One captured frame (``link``: its pcap link type); returns the events it caused."""
        mark = len(self.events)
        self.decoder.decode(self._ts(ts), link, frame)
        return self._fed(mark)

    def frames(self, packets: Iterable[tuple[int, bytes]], link: int = f.LINKTYPE_ETHERNET) -> list[Event]:
        """``(ts_ns, frame)`` pairs in capture order."""
        mark = len(self.events)
        decode = self.decoder.decode
        for ts, frame in packets:
            decode(self._ts(ts), link, frame)
        return self._fed(mark)

    def pcap(self, path: str | Path, flush: bool = True) -> list[Event]:
        """Every packet of a pcap or pcapng file, then (``flush``) the end of input."""
        mark = len(self.events)
        decode = self.decoder.decode
        with PcapFileSource(str(path)) as source:
            for ts, link, frame in source:
                decode(self._ts(ts), link, frame)
        if flush:
            self.decoder.flush()
        return self._fed(mark)

    def udp(self, payload: bytes, src: f.Address, dst: f.Address, ts: int | None = None,
            vlan: int | None = None) -> list[Event]:
        """A UDP datagram from ``src`` to ``dst`` (``(ip, port)``; IPv6 if the address says so)."""
        return self.frame(f.udp_frame(src, dst, payload, vlan), ts)

    def icmp(self, icmp_type: int, code: int, body: bytes = b"", *, src: str, dst: str,
             ts: int | None = None) -> list[Event]:
        """An ICMP (or, for IPv6 addresses, ICMPv6) message; ``body`` follows type, code and
        checksum."""
        return self.frame(f.icmp_frame(src, dst, icmp_type, code, body), ts)

    def tcp(self, client: f.Address, server: f.Address, ts: int | None = None,
            handshake: bool = True) -> "TcpStream":
        """A TCP connection (three-way handshake unless ``handshake=False``: a capture that
        started mid-stream); send on it with the returned :class:`TcpStream`."""
        return TcpStream(self, client, server, ts, handshake)

    # -- time ----------------------------------------------------------------------------
    def advance(self, ts: int) -> list[Event]:
        """Packet time reaches ``ts`` without a packet: the expiry the decoder runs every 0.5 s
        of packet time (analyzers' ``expire``, TCP and fragment timeouts)."""
        mark = len(self.events)
        self.decoder.tick(self._ts(ts))
        return self._fed(mark)

    def flush(self) -> list[Event]:
        """End of input: TCP streams closed, then every analyzer's ``flush``."""
        mark = len(self.events)
        self.decoder.flush()
        return self._fed(mark)

    @property
    def now(self) -> int:
        """The latest packet time fed (0 before the first packet)."""
        return self._now

    # -- results -------------------------------------------------------------------------
    def stats(self, protocol: str | None = None) -> dict[str, int]:
        """The analyzer's own counters (``stats()``)."""
        for p in self._protocols:
            if protocol is None or p.name == protocol:
                return dict(p.analyzer.stats())
        raise KeyError(protocol)

    def metrics(self) -> dict[str, Any]:
        """The agent's metric names for what ran here: ``<protocol>.<counter>``,
        ``<protocol>.exceptions``, ``decode.*``."""
        self.decoder  # registers decode.*
        return self.metrics_registry.snapshot()

    def close(self) -> None:
        """End of the run for processors (their ``close``)."""
        for p in self._protocols:
            p.client.processors.close()
        self.pipeline.processors.close()


class TcpStream:
    """One TCP connection fed to a :class:`ProtocolHarness`: sequence numbers are kept, data is
    cut into segments of at most ``mss`` bytes (set ``flow.mss`` to split it finer)."""

    def __init__(self, harness: ProtocolHarness, client: f.Address, server: f.Address, ts: int | None,
                 handshake: bool, mss: int = 1460):
        self.harness = harness
        self.flow = f.TcpFlow(client, server, mss)
        if handshake:
            self._feed(self.flow.handshake(), ts)

    def _feed(self, frames: list[bytes], ts: int | None) -> list[Event]:
        mark = len(self.harness.events)
        ts = self.harness._ts(ts)
        for frame in frames:
            self.harness.frame(frame, ts)
        return self.harness.events[mark:]

    def send(self, data: bytes, ts: int | None = None) -> list[Event]:
        """Bytes from the client to the server."""
        return self._feed(self.flow.data(True, data), ts)

    def reply(self, data: bytes, ts: int | None = None) -> list[Event]:
        """Bytes from the server to the client."""
        return self._feed(self.flow.data(False, data), ts)

    def skip(self, nbytes: int, from_client: bool = True) -> None:
        """``nbytes`` of one direction are never captured (the analyzer sees a gap once later
        data arrives and the stream gives up waiting, or at the end)."""
        self.flow.skip(nbytes, from_client)

    def close(self, ts: int | None = None) -> list[Event]:
        """FIN from the client, then from the server."""
        return self._feed(self.flow.fin(True) + self.flow.fin(False), ts)

    def reset(self, from_client: bool = True, ts: int | None = None) -> list[Event]:
        """An RST: both directions end."""
        return self._feed(self.flow.rst(from_client), ts)
