"""The agent: builds every component from validated settings and runs the capture loop.

    source -> Decoder -> protocol analyzers -> ProtocolClient -> Pipeline -> OutputRunner(s)

Owns: wiring (ports to analyzers, clients to the pipeline, outputs to runners), the run loop
(fast or timed replay of a capture file, or a live source), signals, shutdown order (stop the
source, flush analyzers, drain the queues) and the metrics that prove no event was lost.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

from pybeat.api import Analyzer, BeatInfo, Event, OutputContext, ProtocolContext
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.config.loader import ConfigError
from pybeat.config.models import InterfaceConfig
from pybeat.config.settings import Settings
from pybeat.decode import Decoder, DecoderLimits
from pybeat.decode.replay import best_replay
from pybeat.envelope import Envelope
from pybeat.monitoring import MetricsRegistry
from pybeat.pipeline import Pipeline, ProtocolClient
from pybeat.pipeline.pipeline import OutputRunner
from pybeat.plugins import Registry
from pybeat.processors import build_processors
from pybeat.summary import SummaryObserver, render
from pybeat.version import __version__


@dataclass
class Paths:
    home: str
    config: str
    data: str
    logs: str

    @classmethod
    def resolve(cls, home: str | None = None, config: str | None = None, data: str | None = None,
                logs: str | None = None) -> "Paths":
        home = os.path.abspath(home or os.getcwd())
        return cls(
            home,
            os.path.abspath(config or home),
            os.path.abspath(data or os.path.join(home, "data")),
            os.path.abspath(logs or os.path.join(home, "logs")),
        )


@dataclass
class RunOptions:
    file: str | None = None  # -I
    loops: int = 1  # -l (0 = forever)
    fast: bool = False  # -t
    dump: str | None = None  # --dump
    shutdown_timeout: float | None = None  # None: wait until every event is settled


@dataclass
class RunResult:
    metrics: dict[str, Any]
    summary: str
    all_settled: bool
    elapsed: float
    extra: dict[str, Any] = field(default_factory=dict)


def _agent_id(data_dir: str) -> str:
    """A stable agent id kept in ``<path.data>/meta.json`` (as Beats do)."""
    path = os.path.join(data_dir, "meta.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return str(json.load(fh)["uuid"])
    except (OSError, ValueError, KeyError):
        pass
    new = str(uuid.uuid4())
    try:
        os.makedirs(data_dir, mode=0o750, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"uuid": new}, fh)
    except OSError:
        pass
    return new


def _interfaces(settings: Settings) -> list[InterfaceConfig]:
    ifaces = settings.agent.packetbeat.interfaces
    return ifaces if isinstance(ifaces, list) else [ifaces]


class _IgnoreOutgoing:
    """``ignore_outgoing``: drop events whose direction is egress."""

    def run(self, event: Event) -> Event | None:
        net = event.fields.get("network")
        if isinstance(net, dict) and net.get("direction") == "egress":
            return None
        return event


class Agent:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        paths: Paths,
        logger: Any,
        options: RunOptions | None = None,
        stdout: Any = None,
        shard: tuple[int, int] | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.paths = paths
        self.log = logger
        self.options = options or RunOptions()
        ifaces = _interfaces(settings)
        if self.options.file is None and len(ifaces) == 1 and ifaces[0].file:
            # packetbeat.interfaces.file is -I: decided before building, since a replay applies
            # backpressure where live capture drops.
            self.options.file = ifaces[0].file
        self.metrics = MetricsRegistry()
        self._stop = threading.Event()
        self._stopped_at: float | None = None
        self._source: Any = None
        hostname = socket.gethostname()
        self.beat = BeatInfo(
            beat="packetbeat",
            name=settings.agent.name or hostname,
            hostname=hostname,
            version=__version__,
            agent_id=_agent_id(paths.data),
            ephemeral_id=str(uuid.uuid4()),
        )
        self.observer = SummaryObserver()
        #: put the garbage collector back as it was after ``run``. The first collection after
        #: that walks every object the run left (0.2-0.3 s on the bulk capture): a worker
        #: process that exits right after the run skips it.
        self.restore_gc = True
        self._stdout = stdout
        self.shard = shard
        self._build()

    # -- construction ------------------------------------------------------------------
    def _build(self) -> None:
        s = self.settings
        a = s.agent
        live = self.options.file is None
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
                dq_settings = DiskQueueSettings.from_config(a.queue.disk, self.paths.data)
                if self.shard is not None:  # each worker process has a queue of its own
                    dq_settings.path = os.path.join(dq_settings.path, f"w{self.shard[0]}")
                disk_queue = DiskQueue(dq_settings, [o.name for o in s.outputs], logger=self.log)
            except (ValueError, OSError) as exc:
                raise ConfigError(f"queue.disk: {exc}") from None

        shared: dict[str, Any] = {
            "path_data": self.paths.data,
            # the setup.* section: the Elasticsearch output installs its template on connect
            "setup": s.agent.setup.model_dump(by_alias=True),
        }
        if self.shard is not None:
            shared["file_suffix"] = f"-w{self.shard[0]}"
        if self._stdout is not None:
            shared["stdout"] = self._stdout
        self.runners: list[OutputRunner] = []
        for out in s.outputs:
            octx = OutputContext(beat=self.beat, metrics=self.metrics, logger=self.log, name=out.name, extra=shared)
            runner = OutputRunner(
                out.name,
                functools.partial(out.plugin.create, out.config, octx),
                out.plugin.workers(out.config),
                out.plugin.batch_size(out.config),
                queue_events,
                self.log,
                queue=disk_queue.consumer(out.name) if disk_queue is not None else None,
            )
            self.runners.append(runner)
            if out.name == "file" and runner.clients:
                path = getattr(runner.clients[0], "current_path", None)
                if path:
                    file_output: Any = runner.clients[0]
                    self.metrics.register("output.file", lambda: {"path": file_output.current_path})

        processors = build_processors(a.processors, self.registry, self.beat, "processors", s.raw)
        if a.packetbeat.ignore_outgoing or any(i.ignore_outgoing for i in _interfaces(s)):
            processors.insert(0, _IgnoreOutgoing())
        self.pipeline = Pipeline(
            self.beat,
            self.runners,
            processors=processors,
            fields=a.fields,
            fields_under_root=a.fields_under_root,
            tags=a.tags,
            min_events=min_events,
            flush_timeout=flush_timeout,
            block=not live,  # replay applies backpressure; live capture drops and counts
            disk_queue=disk_queue,
        )
        self.pipeline.observers.append(self.observer)
        self.metrics.register("pipeline", self.pipeline.stats)

        internal: list[str] = []
        for iface in _interfaces(s):
            internal += iface.internal_networks
        envelope = Envelope(internal, _local_ips())

        udp: dict[int, Analyzer] = {}
        tcp: dict[int, Analyzer] = {}
        icmp: Analyzer | None = None
        self.analyzers: dict[str, Analyzer] = {}
        for p in s.protocols:
            client = ProtocolClient(
                self.pipeline,
                processors=build_processors(p.config.processors, self.registry, self.beat, f"{p.key}.processors", s.raw),
                fields=p.config.fields,
                fields_under_root=p.config.fields_under_root,
                tags=p.config.tags,
                index=p.config.index,
            )
            ctx = ProtocolContext(
                emit=client.publish, beat=self.beat, protocol_name=p.name, envelope=envelope, logger=self.log,
                events_may_share=client.events_may_share(),
                raw_close=client.raw_close, emit_closed=client.publish_closed if client.raw_close else None,
            )
            analyzer = p.plugin.create(p.config, ctx)
            self.analyzers[p.name] = analyzer
            self.metrics.register(p.name, analyzer.stats)
            ports = getattr(p.config, "ports", []) or []
            for port in ports:
                if "udp" in p.plugin.transports:
                    udp[port] = analyzer
                if "tcp" in p.plugin.transports:
                    tcp[port] = analyzer
            if "icmp" in p.plugin.transports:
                icmp = analyzer
        limits = DecoderLimits(**a.packetbeat.limits.model_dump())
        self.decoder = Decoder(udp, tcp, icmp, limits, shard=self.shard)
        self.metrics.register("decode", self.decoder.stats)

    # -- sources -----------------------------------------------------------------------
    def _file_packets(self, source: PcapFileSource) -> Iterator[tuple[int, int, bytes] | None]:
        if self.options.fast:
            yield from source
            return
        # Replay with the capture's own timing.
        start_wall = None
        first_ts = 0
        for pkt in source:
            if start_wall is None:
                start_wall = time.monotonic()
                first_ts = pkt[0]
            delay = start_wall + (pkt[0] - first_ts) / 1e9 - time.monotonic()
            while delay > 0 and not self._stop.is_set():
                step = min(delay, 0.25)
                time.sleep(step)
                delay -= step
                yield None  # let timers run while waiting
            yield pkt

    def _open_source(self) -> Iterator[tuple[int, int, bytes] | None]:
        if self.options.file is not None:
            source = PcapFileSource(self.options.file, self.options.loops)
            self._source = source
            self.metrics.register(
                "capture", lambda: {"file.packets": source.packets, "file.truncated_records": source.truncated_records}
            )
            if self.options.fast:
                return iter(source)  # no wrapping generator: this is the per-packet loop
            return self._file_packets(source)
        ifaces = _interfaces(self.settings)
        if any(i.file for i in ifaces):
            raise ConfigError("packetbeat.interfaces.file: a capture file is read from a single interface entry")
        try:
            from pybeat.capture.bpf import build_filter
            from pybeat.capture.dump import dump_file_name
            from pybeat.capture.live import open_live, open_live_many
        except ImportError as exc:
            raise ConfigError(f"live capture is not available in this build: {exc}") from None
        iface = ifaces[0]
        bpf = iface.bpf_filter
        if bpf is None:
            protos = [
                (p.name, set(p.plugin.transports), list(getattr(p.config, "ports", []) or []))
                for p in self.settings.protocols if "icmp" not in p.plugin.transports
            ]
            has_icmp = any("icmp" in p.plugin.transports for p in self.settings.protocols)
            flows = self.settings.agent.packetbeat.flows
            bpf = "" if flows is not None and flows.enabled else build_filter(protos, has_icmp, iface.with_vlans)
        # --dump PREFIX writes PREFIX-<yyyyMMddHHmmss>.pcap, as Packetbeat names it.
        dump = dump_file_name(self.options.dump) if self.options.dump else None
        # ignore_outgoing is applied to events (network.direction egress, as Packetbeat's publisher
        # does), not to packets: dropping a DNS server's outgoing packets would lose its answers.
        live: Any
        if len(ifaces) == 1:
            live = open_live(iface, bpf or None, dump_path=dump)
        else:
            live = open_live_many(ifaces, bpf or None, dump_path=dump)
        self._source = live
        self.metrics.register("capture", live.stats)
        return live.packets()

    # -- running -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run loop to finish (signal-safe)."""
        self._stop.set()
        src = self._source
        if src is not None and hasattr(src, "stop"):
            src.stop()
        elif src is not None and not isinstance(src, PcapFileSource) and hasattr(src, "close"):
            src.close()

    def _stop_done(self) -> bool:
        """After a stop, a file replay ends at once; a live source is read until it ends (it
        hands over what its ring still holds), for at most 2 s."""
        if self.options.file is not None:
            return True
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        return time.monotonic() - self._stopped_at > 2.0

    def run(self, install_signals: bool = True) -> RunResult:
        started = time.monotonic()
        # Events are short-lived acyclic dicts freed by reference counting; the cyclic collector
        # scanning them every 700 allocations costs more than it ever frees. Freeze what startup
        # built and collect young objects far less often: a young collection walks every live
        # young container (events in the queue, the DNS message cache), ~50-80 ms each on the
        # bulk capture, so once per million allocations (6 -> 1 per 100k packets; cyclic
        # garbage, which the hot path does not make, still gets collected). See docs/performance.md.
        gc.freeze()
        old_threshold = gc.get_threshold()
        gc.set_threshold(1_000_000, 50, 100)
        old_handlers = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: Any) -> None:
                if self._stop.is_set():
                    raise KeyboardInterrupt
                self.log.info("stopping", signal=signal.Signals(signum).name)
                self.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, on_signal)
        metrics_thread = self._start_metrics_log()
        http = None
        if self.settings.agent.http.enabled:
            from pybeat.monitoring.http import StatsServer

            hc = self.settings.agent.http
            http = StatsServer(hc.host, hc.port, self.beat, self.metrics)
            self.http_port = http.port
            self.log.info("stats endpoint listening", host=hc.host, port=http.port)
        packets: Any = None
        try:
            packets = self._open_source()
            self.log.info("started", file=self.options.file, protocols=[p.name for p in self.settings.protocols],
                          outputs=[o.name for o in self.settings.outputs])
            live = self.options.file is None
            decode = self.decoder.decode
            pipeline_tick = self.pipeline.tick
            stop = self._stop
            n = 0
            if self.options.fast and isinstance(self._source, PcapFileSource):
                def check() -> bool:
                    pipeline_tick()
                    return stop.is_set() and self._stop_done()

                if best_replay()(self._source, self.decoder, check) is not None:
                    packets = iter(())  # replayed by the fused loop (classic pcap, Ethernet)
            for pkt in packets:
                if pkt is None:
                    pipeline_tick()
                    if live:
                        self.decoder.tick(time.time_ns())
                    if stop.is_set() and self._stop_done():
                        break
                    continue
                decode(pkt[0], pkt[1], pkt[2])
                n += 1
                if not n & 63:  # flush.timeout and stop requests are checked every 64 packets
                    pipeline_tick()
                    if stop.is_set() and self._stop_done():
                        break
        finally:
            # Even when the source failed mid-way, what was decoded is published.
            try:
                self.decoder.flush()
            except Exception as exc:
                self.log.error("flushing the decoder failed", error=repr(exc))
            # A generator left in the middle of the file: closing it runs its clean-up (the
            # source adds the packets of the pass read so far to its counters).
            close_packets = getattr(packets, "close", None)
            if callable(close_packets):
                try:
                    close_packets()
                except Exception as exc:
                    self.log.warning("closing the packet reader failed", error=repr(exc))
            if self._source is not None:
                try:
                    self._source.close()
                except Exception as exc:
                    self.log.warning("closing the capture source failed", error=repr(exc))
            timeout = self.options.shutdown_timeout
            if timeout is None and self.options.file is None:
                timeout = self.settings.agent.packetbeat.shutdown_timeout or 5.0
            settled = self.pipeline.close(timeout)
            self._metrics_stop.set()
            if metrics_thread is not None:
                metrics_thread.join(timeout=2)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if http is not None:
                http.close()
            if self.restore_gc:
                gc.set_threshold(*old_threshold)
                gc.unfreeze()
        elapsed = time.monotonic() - started
        snap = self.metrics.snapshot()
        summary = render(snap, self.observer, elapsed, [o.name for o in self.settings.outputs])
        self.log.info("stopped", settled=settled, elapsed_s=round(elapsed, 3),
                      metrics={k: v for k, v in snap.items() if v})
        return RunResult(snap, summary, settled, elapsed)

    def _start_metrics_log(self) -> threading.Thread | None:
        self._metrics_stop = threading.Event()
        cfg = self.settings.agent.logging.metrics
        if not cfg.enabled or cfg.period <= 0:
            return None

        def loop() -> None:
            while not self._metrics_stop.wait(cfg.period):
                deltas = self.metrics.deltas()
                if deltas:
                    self.log.info(f"Non-zero metrics in the last {cfg.period:g}s", monitoring=deltas)

        t = threading.Thread(target=loop, name="metrics-log", daemon=True)
        t.start()
        return t


def run_sharded(
    settings: Settings, registry: Registry, paths: Paths, logger: Any, options: RunOptions, workers: int
) -> RunResult:
    """Replay a capture file in ``workers`` processes, each decoding its share of the flows
    (a DNS transaction's query and response always land in the same process: the split key is
    the flow plus what the analyzer's ``shard_key`` returns). Each process runs the whole
    pipeline with its own outputs (file outputs write ``<filename>-w<i>-...`` files); the
    metrics and the summary are added up here."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    _agent_id(paths.data)  # create meta.json once, so every worker reports the same agent.id
    results = ctx.Queue()

    def child(index: int) -> None:
        try:
            agent = Agent(settings, registry, paths, logger, options, shard=(index, workers))
            agent.restore_gc = False  # this process ends with the run
            res = agent.run(install_signals=False)
            results.put((index, res.metrics, res.all_settled, agent.observer, None))
        except BaseException as exc:  # report, never hang the parent
            results.put((index, {}, False, None, f"{type(exc).__name__}: {exc}"))

    started = time.monotonic()
    # Shared read-only state built once here is inherited by every worker (copy-on-write).
    for proto in settings.protocols:
        prepare = getattr(proto.plugin, "prepare", None)
        if callable(prepare):
            try:
                prepare()
            except Exception as exc:  # only an optimisation: the workers build it themselves
                logger.warning("protocol prepare hook failed", protocol=proto.name, error=repr(exc))
    procs = [ctx.Process(target=child, args=(i,), name=f"pybeat-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    import queue as queue_mod

    merged: dict[str, Any] = {}
    observer = SummaryObserver()
    settled = True
    errors = []
    reported: set[int] = set()
    while len(reported) < workers:
        try:
            index, metrics, ok, obs, error = results.get(timeout=1.0)
        except queue_mod.Empty:
            # A worker killed from outside (OOM, SIGKILL) never reports: do not wait for it.
            dead = [i for i, p in enumerate(procs) if i not in reported and p.exitcode is not None]
            if dead:
                time.sleep(0.5)  # a report sent just before exiting may still be in the pipe
                if results.empty():
                    for i in dead:
                        errors.append(f"worker {i}: ended with exit code {procs[i].exitcode} without reporting")
                        reported.add(i)
                        settled = False
            continue
        reported.add(index)
        if error:
            errors.append(f"worker {index}: {error}")
        settled = settled and ok
        for k, v in metrics.items():
            # Every worker reads and decodes every packet up to the split: what is counted before
            # it (packets, bytes, link/IP errors, fragments, the file) is worker 0's count.
            if _counted_before_split(k):
                if index == 0:
                    merged[k] = v
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith((".capacity", ".peak")):
                merged[k] = merged.get(k, 0) + v
            elif k not in merged:
                merged[k] = v
        if obs is not None:
            for attr in ("by_type", "by_status", "names", "notes"):
                getattr(observer, attr).update(getattr(obs, attr))
    for p in procs:
        p.join(timeout=10)
    if errors:
        raise RuntimeError("; ".join(errors))
    if isinstance(merged.get("output.file.path"), str):
        first = merged["output.file.path"]
        merged["output.file.path"] = os.path.join(os.path.dirname(first), "*-w[0-9]*.ndjson")
    elapsed = time.monotonic() - started
    summary = render(merged, observer, elapsed, [o.name for o in settings.outputs])
    return RunResult(merged, summary, settled, elapsed, {"workers": workers})


def _counted_before_split(metric: str) -> bool:
    if metric.startswith(("capture.", "decode.ip_fragments.")):
        return True
    if metric.startswith("decode.errors."):
        return metric != "decode.errors.analyzer_exception"
    return metric in ("decode.packets", "decode.bytes")


def _local_ips() -> list[str]:
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
