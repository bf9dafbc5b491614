"""Building a run: every component from the validated settings, wired together.

    outputs (OutputRunner per output) <- Pipeline <- ProtocolClient per protocol <- analyzers
                                                  <- AlertClient <- detectors (watch protocol clients)
    Decoder (ports -> analyzers; timers: analyzers, then detectors)

Owns the order of construction and what each plugin is given (its context); a plugin whose
``create`` fails stops the build with one line naming it (:class:`StartupError`). Builds
nothing twice and runs nothing: the run loop is in run.py.
"""

from __future__ import annotations

import json
import os
import socket
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from pybeat._compat import output_group
from pybeat._fastpath import FastPath
from pybeat.api import (
    Analyzer, BeatInfo, Event, Metrics, OutputContext, Paths, PluginSetupError, ProtocolContext,
    Shard,
)
from pybeat.config.loader import ConfigError
from pybeat.config.models import InterfaceConfig
from pybeat.config.settings import Settings
from pybeat.decode import Decoder, DecoderLimits
from pybeat.envelope import Envelope
from pybeat.fieldtypes import declared_field_types
from pybeat.monitoring import MetricsRegistry
from pybeat.pipeline import Pipeline, ProtocolClient
from pybeat.pipeline.deadline import Deadline
from pybeat.pipeline.faults import FaultLog
from pybeat.pipeline.pipeline import AlertClient
from pybeat.pipeline.runner import OutputRunner
from pybeat.plugins import Registry
from pybeat.processors.build import BuildContext, build_chain
from pybeat.summary import SummaryObserver
from pybeat.version import __version__


class StartupError(Exception):
    """A component could not be built: one line naming it (the CLI prints it, no traceback)."""


@dataclass
class Components:
    beat: BeatInfo
    metrics: MetricsRegistry
    faults: FaultLog
    deadline: Deadline
    runners: list[OutputRunner]
    pipeline: Pipeline
    analyzers: dict[str, Analyzer]
    detectors: dict[str, Any]
    decoder: Decoder
    observer: SummaryObserver
    closers: list[Callable[[], object]] = field(default_factory=list)


def agent_id(data_dir: str) -> str:
    """A stable agent id kept in ``<path.data>/meta.json`` (as Beats do), readable only by the
    agent's user."""
    path = os.path.join(data_dir, "meta.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return str(json.load(fh)["uuid"])
    except (OSError, ValueError, KeyError):
        pass
    new = str(uuid.uuid4())
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"uuid": new}, fh)
    except OSError as exc:  # as Beats: an agent that cannot keep its state does not start
        raise StartupError(f"path.data {data_dir}: cannot write {os.path.basename(path)} "
                           f"({exc.strerror or exc}); set path.data to a folder this user can write") from None
    return new


def interfaces(settings: Settings) -> list[InterfaceConfig]:
    ifaces = settings.agent.packetbeat.interfaces
    return ifaces if isinstance(ifaces, list) else [ifaces]


def beat_info(settings: Settings, paths: Paths) -> BeatInfo:
    hostname = socket.gethostname()
    return BeatInfo(
        beat="packetbeat",
        name=settings.agent.name or hostname,
        hostname=hostname,
        version=__version__,
        agent_id=agent_id(paths.data),
        ephemeral_id=str(uuid.uuid4()),
    )


class _IgnoreOutgoing:
    """``ignore_outgoing``: drop events whose direction is egress."""

    def run(self, event: Event) -> Event | None:
        net = event.fields.get("network")
        if isinstance(net, dict) and net.get("direction") == "egress":
            return None
        return event


class _ScopedMetrics:
    """An output's view of the registry: what it registers lands under ``output.<name>``."""

    def __init__(self, registry: MetricsRegistry, prefix: str):
        self._registry = registry
        self._prefix = prefix

    def register(self, namespace: str, provider: Any) -> None:
        self._registry.register(f"{self._prefix}.{namespace}" if namespace else self._prefix, provider)


def _failed(kind: str, name: str, exc: BaseException, logger: Any) -> StartupError:
    """One line for a plugin's ``create`` that failed; the traceback goes to the debug log."""
    if logger is not None:
        logger.debug(f"{kind} {name} could not start", traceback="".join(traceback.format_exception(exc))[-4000:])
    if isinstance(exc, PluginSetupError):
        return StartupError(f"{kind} {name}: {exc}")
    return StartupError(f"{kind} {name} could not start: {type(exc).__name__}: {exc} "
                        "(the traceback is logged with -d '*')")


def _bound(log: Any, **kw: Any) -> Any:
    bind = getattr(log, "bind", None)
    return bind(**kw) if callable(bind) else log


def build(
    settings: Settings,
    registry: Registry,
    paths: Paths,
    logger: Any,
    *,
    live: bool,
    shard: Shard | None = None,
    stdout: Any = None,
    beat: BeatInfo | None = None,
    detection: Any = None,
) -> Components:
    """Every component of a run, wired. On failure, what was built is closed again.

    ``detection``: this process's :class:`~pybeat.agent.detection.DetectionFeed` when the
    detectors run in a process of their own (then none is built here)."""
    s = settings
    a = s.agent
    if logger is None:
        from pybeat._sdk.protocols import _NullLogger

        logger = _NullLogger()
    beat = beat or beat_info(settings, paths)
    metrics = MetricsRegistry()
    faults = FaultLog(logger)
    pipeline_logger = _bound(logger, logger="pipeline")  # -d pipeline: the pipeline, its output runners
    deadline = Deadline()
    field_types = declared_field_types(
        [(p.name, p.plugin) for p in s.protocols] + [(d.name, d.plugin) for d in s.detectors], logger)

    # Queue and batching (queue.mem; an output's own `queue` key is not supported yet).
    mem = a.queue.mem
    queue_events = mem.events if mem else 3200
    # A batch never exceeds the queue (libbeat caps it too): a bigger one could not be put
    # without blocking, and live capture would drop it whole.
    min_events = min(mem.flush.min_events if mem else 1600, queue_events)
    flush_timeout = mem.flush.timeout if mem else 10.0
    disk_queue = None
    if a.queue.disk is not None:
        from pybeat.pipeline.diskqueue import DiskQueue, DiskQueueSettings

        try:
            dq_settings = DiskQueueSettings.from_config(a.queue.disk, paths.data)
            if shard is not None:  # each worker process has a queue of its own
                dq_settings.path = os.path.join(dq_settings.path, f"w{shard.index}")
            disk_queue = DiskQueue(dq_settings, [o.name for o in s.outputs], logger=logger, deadline=deadline)
        except (ValueError, OSError) as exc:
            raise StartupError(f"queue.disk: {exc}") from None

    for kind, entries in registry.plugins.items():  # the plugins this config uses are the loaded ones
        for info in entries.values():
            if info.loaded and info.legacy and not info.error:
                logger.warning(f"{kind[:-1]} plugin declares no api_version: served as pybeat.api 0.1 (deprecated)",
                               plugin=info.name, entry_point=info.value)

    runners: list[OutputRunner] = []
    closers: list[Callable[[], object]] = []  # at the end of the run (the pipeline closes the runners)
    cleanup: list[Callable[[], object]] = []  # if building fails half-way
    try:
        setup_section = s.agent.setup.model_dump(by_alias=True)
        for out in s.outputs:
            info = registry.info("outputs", out.name)
            out_metrics: Metrics = metrics if info.legacy else _ScopedMetrics(metrics, f"output.{out.name}")
            octx = OutputContext(
                beat=beat,
                metrics=out_metrics,
                logger=_bound(logger, output=out.name), name=out.name, paths=paths, shard=shard,
                setup=setup_section, field_types=field_types,
                **({"stdout": stdout} if stdout is not None else {}),
            )
            try:
                group = output_group(out.plugin, out.config, octx, info.legacy)
                runner = OutputRunner(out.name, group, queue_events, pipeline_logger, faults, deadline,
                                      queue=disk_queue.consumer(out.name) if disk_queue is not None else None)
            except ConfigError:
                raise
            except Exception as exc:
                raise _failed("output", out.name, exc, logger) from None
            runners.append(runner)
            cleanup.append(runner.close)
            metrics.register(f"output.{out.name}", runner.stats)

        bctx = BuildContext(registry, beat, faults, paths, logger, s.raw)
        processors = build_chain(a.processors, bctx, "processors")
        if a.packetbeat.ignore_outgoing or any(i.ignore_outgoing for i in interfaces(s)):
            processors.steps.insert(0, ("ignore_outgoing", _IgnoreOutgoing()))
        pipeline = Pipeline(
            beat, runners, processors=processors, fields=a.fields, fields_under_root=a.fields_under_root,
            tags=a.tags, min_events=min_events, flush_timeout=flush_timeout,
            block=not live,  # replay applies backpressure; live capture drops and counts
            logger=pipeline_logger, disk_queue=disk_queue,
        )
        observer = SummaryObserver(
            {p.name: p.plugin.summary_field for p in s.protocols if getattr(p.plugin, "summary_field", None)})
        pipeline.observers.append(observer)
        metrics.register("pipeline", pipeline.stats)
        metrics.register("", faults.metrics)

        # Detectors: their alerts go through the global stage; they watch protocol clients
        # (agent/detection.py: in a process of their own, or in this one).
        alerts = AlertClient(pipeline)
        detectors: dict[str, Any] = {}
        watchers: dict[str, list[Callable[[Event], None]]] = {}
        timers: list[Any] = []
        local = False
        if s.detectors:
            from pybeat.agent.detection import Detection, LocalDetection

            if detection is None:
                in_process = Detection(s, alerts.publish, beat, paths, logger, faults, shard=shard)
                detectors = in_process.detectors
                detection = LocalDetection(in_process)
                local = True
            else:
                detection.emit, detection.deadline = alerts.publish, deadline
            closers.append(detection.close)
            metrics.register("detection", detection.metrics)
            for d in s.detectors:
                metrics.register(f"detection.{d.name}", detection.counters(d.name))
            for proto, code in Detection.watched(s).items():
                watchers[proto] = [detection.watcher(code, Detection.reducer(s, proto))]
            timers.append(detection)

        internal: list[str] = []
        for iface in interfaces(s):
            internal += iface.internal_networks
        envelope = Envelope(internal, local_ips())

        udp: dict[int, Analyzer] = {}
        tcp: dict[int, Analyzer] = {}
        icmp: Analyzer | None = None
        analyzers: dict[str, Analyzer] = {}
        for p in s.protocols:
            chain = build_chain(p.config.processors, bctx, f"{p.key}.processors")
            closers.append(chain.close)
            client = ProtocolClient(
                pipeline,
                processors=chain,
                fields=p.config.fields,
                fields_under_root=p.config.fields_under_root,
                tags=p.config.tags,
                index=p.config.index,
                keep_null=p.config.keep_null,
                watchers=watchers.get(p.name, ()),
            )
            fast = FastPath(client.raw_close, client.publish_closed) if client.raw_close else None
            ctx = ProtocolContext(
                emit=client.publish, beat=beat, protocol_name=p.name, envelope=envelope,
                logger=_bound(logger, protocol=p.name), events_may_share=client.events_may_share(),
                fastpath=fast,
            )
            try:
                analyzer = p.plugin.create(p.config, ctx)
            except Exception as exc:
                raise _failed("protocol", p.name, exc, logger) from None
            analyzers[p.name] = analyzer
            metrics.register(p.name, analyzer.stats)
            for port in getattr(p.config, "ports", []) or []:
                if "udp" in p.plugin.transports:
                    udp[port] = analyzer
                if "tcp" in p.plugin.transports:
                    tcp[port] = analyzer
            if "icmp" in p.plugin.transports:
                icmp = analyzer
        names = {id(an): name for name, an in analyzers.items()}

        def analyzer_failed(analyzer: Any, exc: BaseException) -> None:
            name = names.get(id(analyzer)) if analyzer is not None else None
            if name is None:  # raised where the decoder cannot tell whose it is
                name = next(iter(names.values())) if len(names) == 1 else "unknown"
            faults.record("protocol", name, exc, "packet")

        logger.debug("protocols built", udp_ports=sorted(udp), tcp_ports=sorted(tcp), icmp=icmp is not None,
                     detectors=sorted(detectors), shard=f"{shard.index}/{shard.count}" if shard else None)
        limits = DecoderLimits(**a.packetbeat.limits.model_dump())
        # Detectors keep per-client state: run in this process, a split replay then sends all
        # of one address pair's transactions to one process (DetectorContext.shard says so to
        # them). In their own process they see every worker's transactions (agent/detection.py).
        decoder = Decoder(udp, tcp, icmp, limits, shard=(shard.index, shard.count) if shard else None,
                          timers=timers, on_analyzer_error=analyzer_failed,
                          split_by="address_pair" if local else "flow")
        if detection is not None:
            detection.attach_clock(decoder)  # an event's emission time: the decoder's packet clock
        flows = a.packetbeat.flows
        if flows is not None and flows.enabled and (shard is None or shard.index == 0):  # worker 0 sees every frame
            from pybeat.flows import attach_flows

            attach_flows(flows, decoder, pipeline, bctx, metrics, closers)
        metrics.register("decode", decoder.stats)
    except BaseException:
        for close in reversed(cleanup + closers):
            try:
                close()
            except Exception:
                pass
        raise
    return Components(beat, metrics, faults, deadline, runners, pipeline, analyzers, detectors, decoder,
                      observer, closers)


def _guarded(faults: FaultLog, kind: str, name: str, fn: Callable[..., Any]) -> Callable[..., None]:
    """``fn`` with its exceptions counted against the plugin (a detector's fault is its own)."""

    def call(*args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            faults.record(kind, name, exc, getattr(fn, "__name__", ""))

    return call


def local_ips() -> list[str]:
    """This host's addresses (for network.direction)."""
    ips: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            ips.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    try:
        import ipaddress

        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            for line in fh:
                ips.add(str(ipaddress.ip_address(int(line.split()[0], 16))))
        with open("/proc/net/fib_trie", encoding="ascii") as fh:
            lines = fh.read().splitlines()
        for i, line in enumerate(lines):
            if "/32 host LOCAL" in line and i > 0:
                ips.add(lines[i - 1].split()[-1])
    except (OSError, ValueError):
        pass
    return sorted(ips)
