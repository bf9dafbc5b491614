"""Running a built agent: the packet loop, stopping, and the result of a run.

    source -> Decoder -> analyzers -> ProtocolClient -> Pipeline -> OutputRunner(s)

Owns the run loop (fast or timed replay of a capture file, or a live source), the order of
shutdown (stop the source, flush the decoder, flush the pipeline, wait for the outputs until
the shutdown deadline), and the exit status. Signals are stop.py's; building is build.py's.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from pybeat.agent.build import Components, StartupError, beat_info, build, interfaces
from pybeat.agent.detection import wanted as detection_wanted
from pybeat.agent.stop import Stopper
from pybeat.api import Paths, Shard
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.config.settings import Settings
from pybeat.decode.replay import best_replay
from pybeat.plugins import Registry
from pybeat.summary import render

#: exit status of a run (documented in docs/operations.md)
EXIT_OK = 0
EXIT_EVENTS_LOST = 3  # events dropped or not delivered
EXIT_SOURCE_FAILED = 4  # the capture source failed during the run


@dataclass
class RunOptions:
    file: str | None = None  # -I
    loops: int = 1  # -l (0 = forever)
    fast: bool = False  # -t
    dump: str | None = None  # --dump
    #: seconds a stopping agent waits for the outputs; None: packetbeat.shutdown_timeout, and
    #: when that is 0 a replay that reached the end of its file waits until everything is
    #: delivered, while a stop by signal waits DEFAULT_STOP_TIMEOUT
    shutdown_timeout: float | None = None


@dataclass
class RunResult:
    metrics: dict[str, Any]
    summary: str
    all_settled: bool
    elapsed: float
    extra: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    problems: list[str] = field(default_factory=list)
    #: time.monotonic() when the input ended (the rest of ``elapsed`` is delivery)
    decoded_at: float | None = None


def exit_status(metrics: dict[str, Any], source_error: str | None = None) -> tuple[int, list[str]]:
    """Non-zero when events were dropped or not delivered, or the source failed; with why."""
    problems: list[str] = []
    if source_error:
        problems.append(f"{EXIT_SOURCE_FAILED}: the capture source failed: {source_error}")
    lost: list[str] = []
    for key, label in (("pipeline.events.dropped_queue_full", "dropped because a queue was full"),
                       ("pipeline.events.not_delivered", "never reached an output (stopped)")):
        if metrics.get(key):
            lost.append(f"{metrics[key]:,} {label}")
    for key, value in sorted(metrics.items()):
        if not key.startswith("output.") or not isinstance(value, int) or not value:
            continue
        name, _, what = key[len("output."):].partition(".")
        if what == "events.dropped":
            lost.append(f"{value:,} dropped by output {name}")
        elif what == "events.not_delivered":
            kept = metrics.get(f"pipeline.queue.disk.pending.{name}")  # queue.disk: sent at the next start
            lost.append(f"{value:,} not delivered to output {name}"
                        + (f" ({kept:,} kept in the disk queue for the next start)" if kept else ""))
    if lost:
        kept_all = all("kept in the disk queue" in item for item in lost)
        head = "events not delivered (kept for the next start)" if kept_all else "events lost or not delivered"
        problems.append(f"{EXIT_EVENTS_LOST}: {head}: " + "; ".join(lost))
    if source_error:
        return EXIT_SOURCE_FAILED, problems
    return (EXIT_EVENTS_LOST if lost else EXIT_OK), problems


class Agent:
    """One run: built from settings at construction, run by :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        paths: Paths,
        logger: Any,
        options: RunOptions | None = None,
        stdout: Any = None,
        shard: tuple[int, int] | None = None,
        detection: Any = None,
    ):
        self.settings = settings
        self.registry = registry
        self.paths = paths
        self.log = logger
        self.options = options or RunOptions()
        ifaces = interfaces(settings)
        if self.options.file is None and len(ifaces) == 1 and ifaces[0].file:
            # packetbeat.interfaces.file is -I: decided before building, since a replay applies
            # backpressure where live capture drops.
            self.options.file = ifaces[0].file
        self.shard = Shard(*shard) if shard is not None and shard[1] > 1 else None
        #: put the garbage collector back as it was after ``run``. The first collection after
        #: that walks every object the run left (0.2-0.3 s on the bulk capture): a worker
        #: process that exits right after the run skips it.
        self.restore_gc = True
        #: the detection process this run started (agent/detection.py); a split replay's
        #: parent starts it instead and hands each worker its ``detection`` feed
        self.detection_host: Any = None
        beat = None
        if detection is None and self.shard is None and detection_wanted(
                settings.agent.packetbeat.detection_process, len(settings.detectors)):
            from pybeat.agent.detection import DetectionHost

            beat = beat_info(settings, paths)  # before any thread starts: the host forks
            self.detection_host = DetectionHost(settings, paths, logger, beat, 1)
            detection = self.detection_host.feed(0, None, logger)
        try:
            self.parts: Components = build(settings, registry, paths, logger, live=self.options.file is None,
                                           shard=self.shard, stdout=stdout, beat=beat, detection=detection)
        except BaseException:
            if detection is not None:
                detection.close()  # the detection process sees its feed end, and ends
            if self.detection_host is not None:
                self.detection_host.join(10)
            raise
        self.stopper = Stopper(self.parts.deadline, self._stop_timeout(), logger)
        self._source: Any = None
        self.http_port: int | None = None

    # The parts a caller (tests, the sharded parent) reads.
    @property
    def beat(self) -> Any:
        return self.parts.beat

    @property
    def metrics(self) -> Any:
        return self.parts.metrics

    @property
    def observer(self) -> Any:
        return self.parts.observer

    @property
    def decoder(self) -> Any:
        return self.parts.decoder

    @property
    def pipeline(self) -> Any:
        return self.parts.pipeline

    @property
    def analyzers(self) -> Any:
        return self.parts.analyzers

    @property
    def runners(self) -> Any:
        return self.parts.runners

    def _stop_timeout(self) -> float | None:
        if self.options.shutdown_timeout is not None:
            return self.options.shutdown_timeout
        configured = self.settings.agent.packetbeat.shutdown_timeout
        return configured if configured and configured > 0 else None

    # -- sources -----------------------------------------------------------------------
    def _file_packets(self, source: PcapFileSource) -> Iterator[tuple[int, int, bytes] | None]:
        """Replay with the capture's own timing (``-I`` without ``-t``)."""
        start_wall = None
        first_ts = 0
        for pkt in source:
            if start_wall is None:
                start_wall = time.monotonic()
                first_ts = pkt[0]
            delay = start_wall + (pkt[0] - first_ts) / 1e9 - time.monotonic()
            while delay > 0 and not self.stopper.requested:
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
        from pybeat.agent.live import open_live_source

        live, packets = open_live_source(self.settings, self.options.dump)
        self._source = live
        self.metrics.register("capture", live.stats)
        return packets

    # -- running -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run loop to finish (signal-safe): what is in flight is still delivered,
        within the shutdown timeout."""
        self.stopper.request()
        src = self._source
        if src is not None and not isinstance(src, PcapFileSource):
            try:
                src.close()  # a live source's close wakes its reader
            except Exception:
                pass

    def _stop_done(self) -> bool:
        """After a stop, a file replay ends at once; a live source is read until it ends (it
        hands over what its ring still holds), for at most 2 s."""
        return self.options.file is not None or self.stopper.seconds_since_request() > 2.0

    def run(self, install_signals: bool = True) -> RunResult:
        started = time.monotonic()
        # Events are short-lived acyclic dicts freed by reference counting; the cyclic collector
        # scanning them every 700 allocations costs more than it ever frees. Freeze what startup
        # built and collect young objects far less often (see docs/performance.md).
        gc.freeze()
        old_threshold = gc.get_threshold()
        gc.set_threshold(1_000_000, 50, 100)
        if install_signals:
            self.stopper.install(self.stop)
        services = _Services(self)
        source_error: str | None = None
        packets: Any = None
        try:
            services.start()
            packets = self._open_source()
            self.log.info("started", file=self.options.file, protocols=[p.name for p in self.settings.protocols],
                          outputs=[o.name for o in self.settings.outputs],
                          detectors=[d.name for d in self.settings.detectors])
            self._loop(packets)
        except StartupError:
            raise
        except Exception as exc:
            if self._source is None:
                raise  # the source could not be opened: a startup failure, reported by the CLI
            source_error = f"{type(exc).__name__}: {exc}"
            self.log.error("the capture source failed; publishing what was decoded", error=source_error)
        finally:
            decoded_at = time.monotonic()
            settled = self._shut_down(packets)
            services.stop()
            self.stopper.uninstall()
            if self.detection_host is not None:
                self.detection_host.join(5)  # it ended with its feed (see _shut_down)
            if self.restore_gc:
                gc.set_threshold(*old_threshold)
                gc.unfreeze()
        elapsed = time.monotonic() - started
        snap = self.metrics.snapshot()
        code, problems = exit_status(snap, source_error)
        summary = render(snap, self.observer, elapsed, [o.name for o in self.settings.outputs], problems,
                         decoded=decoded_at - started)
        self.log.info("stopped", settled=settled, elapsed_s=round(elapsed, 3), exit_status=code,
                      metrics={k: v for k, v in snap.items() if v})
        return RunResult(snap, summary, settled, elapsed, exit_code=code, problems=problems, decoded_at=decoded_at)

    def _loop(self, packets: Any) -> None:
        live = self.options.file is None
        decode = self.decoder.decode
        pipeline_tick = self.pipeline.tick
        stopper = self.stopper
        if self.options.fast and isinstance(self._source, PcapFileSource):
            def check() -> bool:
                pipeline_tick()
                return stopper.requested and self._stop_done()

            if best_replay()(self._source, self.decoder, check) is not None:
                return  # replayed by the fused loop (classic pcap, Ethernet)
        n = 0
        for pkt in packets:
            if pkt is None:
                pipeline_tick()
                if live:
                    self.decoder.tick(time.time_ns())
                if stopper.requested and self._stop_done():
                    break
                continue
            decode(pkt[0], pkt[1], pkt[2])
            n += 1
            if not n & 63:  # flush.timeout and stop requests are checked every 64 packets
                pipeline_tick()
                if stopper.requested and self._stop_done():
                    break

    def _shut_down(self, packets: Any) -> bool:
        """Flush what was decoded, then deliver it within the shutdown deadline."""
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
        self.stopper.draining(live=self.options.file is None)
        settled = self.pipeline.close()
        for close in self.parts.closers:  # detectors (they may persist state), processor chains
            try:
                close()
            except Exception as exc:
                self.log.warning("closing a component failed", error=repr(exc))
        return settled


class _Services:
    """What runs beside the packet loop: the periodic metrics log and the HTTP stats endpoint."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: Any = None

    def start(self) -> None:
        a = self.agent
        cfg = a.settings.agent.logging.metrics
        if cfg.enabled and cfg.period > 0:
            def loop() -> None:
                while not self._stop.wait(cfg.period):
                    deltas = a.metrics.deltas()
                    if deltas:
                        a.log.info(f"Non-zero metrics in the last {cfg.period:g}s", monitoring=deltas)

            self._thread = threading.Thread(target=loop, name="metrics-log", daemon=True)
            self._thread.start()
        hc = a.settings.agent.http
        if hc.enabled:
            from pybeat.monitoring.http import StatsServer

            self._http = StatsServer(hc.host, hc.port, a.beat, a.metrics)
            a.http_port = self._http.port
            a.log.info("stats endpoint listening", host=hc.host, port=self._http.port)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._http is not None:
            self._http.close()


