"""Where detectors run, and the order they see transactions in.

    capture process(es): ProtocolClient -> DetectionFeed ==pipe==> detection process: Detection
    worker 0 (or the only process): AlertClient <== alerts, counters, END ==pipe== detection process

By default (``packetbeat.detection_process: auto``, when the agent may use more than one CPU)
the detectors run in a process of their own. Why: they read every transaction and keep state
per client and per domain; on the capture thread they cost the replay about a third of its
speed, and a replay split across processes had to split by address pair so that one client's
transactions met in one process (a capture of one busy resolver then ran in one process).
Here a capture process only keeps each event's bytes (a snapshot: what the detector plugin's
``reduce_raw`` keeps of a pre-encoded event, or the JSON of an ordinary one) and hands them
over in batches; every worker splits by flow as without detectors, and the one detection
process sees every transaction of every worker, so its state is whole whatever the split.
``detection_process: false`` runs the same :class:`Detection` on the capture thread
(:class:`LocalDetection`).

The order, in both layouts: by emission time (the decoder's packet clock when the protocol
emitted the event: the packet that completed the transaction, or the tick that timed it out),
then by timestamp, with every detector's ``expire`` at each tick before the events emitted
after it, and ``flush`` at the end. Every worker reads every packet, so a transaction has the
same emission time in whichever worker emitted it, and the detection process shows an event
once every feed still open has moved its clock past that time (:class:`_Merger`): the alerts
of a split run are those of one process, except for transactions of two workers with the same
emission time and timestamp (their order is then that of the workers).

Contract kept: detectors get :class:`~pybeat.api.Event` objects (``timestamp_ns`` and the
document as the protocol emitted it, pre-encoded or not, and ``meta``), packet time only,
their alerts go through the receiving process's ``AlertClient`` (published at its ticks),
their counters are reported as ``detection.<name>.*`` there (as of the last period), and an
exception costs only that call (``detection.<name>.exceptions``).

Frames on both pipes: :data:`_HEAD` (kind, count, packet time, length) and a body. Ending:
each worker sends its last period and closes its feed at the end of its input; when every
feed has ended, the detection process flushes and closes its detectors (they persist their
state) and sends its last alerts, its counters and END, which the receiving worker waits for
in its flush (never past the shutdown deadline). The detection process ignores SIGINT and
SIGTERM (a terminal's Ctrl-C and a service manager's stop reach the whole process group): it
ends when its feeds do, so that it loses nothing the workers handed it. If it dies, the
workers log it once, count ``detection.process.lost`` and go on without detection.
"""
from __future__ import annotations

import array
import bisect
import collections
import gc
import importlib
import itertools
import operator
import os
import select
import signal
import struct
import threading
import time
from typing import Any, Callable

import orjson

from pybeat.agent.build import StartupError, _bound, _failed, _guarded
from pybeat.api import BeatInfo, DetectorContext, Event, Paths
from pybeat.pipeline.deadline import Deadline
from pybeat.pipeline.faults import FaultLog

__all__ = ["BATCH", "Detection", "DetectionFeed", "DetectionHost", "DetectionStartError", "LocalDetection", "wanted"]

#: events handed over per frame (and at every packet-time tick, whatever is pending)
BATCH = 512
_HEAD = struct.Struct("<BIqI")  # kind, count, packet time (ns), body length
# feed frames (worker -> detection process), each with the feed's clock: events; a tick
# (events, then the tick at that clock); the feed's last events (flush follows)
_EVENTS, _TICK, _LAST = 1, 2, 3  # _LAST: the feed's last period (flush follows, not expire)
# frames back (detection process -> the receiving worker)
_READY, _ERROR, _ALERT, _STATS, _END = 10, 11, 12, 13, 14
#: a frame larger than this is a broken stream, not a batch
_MAX_BODY = 1 << 30
_PIPE_SIZE = 1 << 20
#: events kept from one worker while waiting for another (then its pipe is left full: that
#: worker waits, and memory stays bounded)
_MAX_AHEAD = 65_536


def wanted(setting: bool | str, detectors: int) -> bool:
    """Whether the detectors get a process of their own: ``true``/``false``, or ``auto`` (when
    there are detectors and the agent may use more than one CPU). Never where processes are
    not forked (Windows): the detectors then run on the capture thread."""
    if not detectors or not hasattr(os, "fork"):
        return False
    if setting == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        return cpus > 1
    return bool(setting)


def _grow(fd: int) -> None:
    """A bigger pipe: fewer wake-ups per batch (Linux only; the default works too)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
    except (ImportError, OSError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Reader:
    """Frames from one pipe: ``(kind, count, ts, body)``; None at the end of the stream."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def fill(self) -> None:
        chunk = os.read(self.fd, _PIPE_SIZE)
        if chunk:
            self.buf += chunk
        else:
            self.eof = True

    def frames(self, most: int = -1) -> list[tuple[int, int, int, bytes]]:
        """The whole frames read so far (at most ``most`` of them); the rest stays buffered."""
        out: list[tuple[int, int, int, bytes]] = []
        buf = self.buf
        pos = 0
        size = _HEAD.size
        with memoryview(buf) as view:  # (a body is copied once, from the view)
            while len(buf) - pos >= size and len(out) != most:
                kind, count, ts, length = _HEAD.unpack_from(buf, pos)
                if length > _MAX_BODY:
                    raise ValueError(f"broken detection stream (a frame of {length} bytes)")
                if len(buf) - pos - size < length:
                    break
                out.append((kind, count, ts, bytes(view[pos + size:pos + size + length])))
                pos += size + length
        if pos:
            del buf[:pos]
        return out

    def read_frame(self, timeout: float | None) -> tuple[int, int, int, bytes] | None:
        """One frame, waiting at most ``timeout`` seconds; None at the end of the stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frames = self.frames(most=1)
            if frames:
                return frames[0]
            if self.eof:
                return None
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait is not None and wait == 0.0:
                raise TimeoutError("the detection process did not answer")
            r, _, _ = select.select([self.fd], [], [], wait)
            if r:
                self.fill()


def _frame(kind: int, body: bytes = b"", count: int = 0, ts: int = 0) -> bytes:
    return _HEAD.pack(kind, count, ts, len(body)) + body


class DetectionHost:
    """The detection process and its pipes, made before the processes that feed it (see the
    module docstring). ``feeds``: how many workers hand it events; worker 0 receives the
    alerts."""

    def __init__(self, settings: Any, paths: Paths, logger: Any, beat: BeatInfo, feeds: int,
                 start_timeout: float = 60.0):
        self.status: int | None = None
        self._closed = False
        self._pipes = [os.pipe() for _ in range(feeds)]
        for r, w in self._pipes:
            _grow(w)
        self._alert_r, self._alert_w = os.pipe()
        # A plain fork (not multiprocessing: its exit hook would join this process, which
        # ends only when every feed has, and could wait on a feed its own parent holds).
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                code = _serve(settings, paths, logger, beat, [r for r, _ in self._pipes],
                              [w for _, w in self._pipes], self._alert_r, self._alert_w)
            except BaseException as exc:  # never return into the caller's code
                try:
                    os.write(2, f"pybeat detection process failed: {type(exc).__name__}: {exc}\n".encode())
                except OSError:
                    pass
            finally:
                os._exit(code)
        for r, _ in self._pipes:
            os.close(r)
        os.close(self._alert_w)
        reader = _Reader(self._alert_r)
        try:
            first = reader.read_frame(start_timeout)
        except TimeoutError:
            first = (_ERROR, 0, 0, b"the detection process did not start within %d s" % start_timeout)
        if first is None or first[0] != _READY:
            message = first[3].decode("utf-8", "replace") if first else "the detection process ended at start"
            self.close_all()
            self.join(5)
            raise DetectionStartError(message)
        self._alert_reader = reader

    def feed(self, index: int, emit: Callable[[Event], None] | None, logger: Any) -> DetectionFeed:
        """Worker ``index``'s end (after a fork: the other workers' pipes are closed here)."""
        for i, (_, w) in enumerate(self._pipes):
            if i != index:
                _close(w)
        receiver = index == 0
        if not receiver:
            _close(self._alert_r)
        return DetectionFeed(self._pipes[index][1], self._alert_reader if receiver else None, emit, logger)

    def close_all(self) -> None:
        """The parent of a split replay keeps no end of any pipe (or the detection process
        would never see its feeds end). Once only: a closed descriptor's number is reused."""
        if self._closed:
            return
        self._closed = True
        for _, w in self._pipes:
            _close(w)
        _close(self._alert_r)

    def join(self, timeout: float | None = None) -> int | None:
        """Reap the detection process (it ends when its feeds have); its exit status, or None
        if it is still running after ``timeout`` seconds."""
        if self.pid <= 0:
            return self.status
        end = None if timeout is None else time.monotonic() + timeout
        _exited(self.pid, timeout)  # (it usually is by now, or within milliseconds)
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.pid, self.status = -1, None
                return None
            if pid:
                self.pid, self.status = -1, os.waitstatus_to_exitcode(status)
                return self.status
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(0.01)


def _exited(pid: int, timeout: float | None) -> None:
    """Wait until process ``pid`` has exited (not reaped), at most ``timeout`` seconds, without
    polling where Linux gives a descriptor to wait on (pidfd); elsewhere join() polls."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


class DetectionStartError(StartupError):
    """A detector could not be built in the detection process (its one-line reason)."""


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


_I64 = 1 << 63


def _snapshot(event: Event) -> bytes:
    """What detectors get of an event that is not pre-encoded: the JSON of its fields and meta."""
    return orjson.dumps({"f": event.fields, "m": event.meta}, default=str, option=orjson.OPT_NON_STR_KEYS)


class _PyBatch:
    """The events kept since the last frame, as lists (the reference of the compiled twin,
    ``_batch.pyx``, which writes the frame's buffers directly)."""

    def __init__(self, clock: list[Any], full: Callable[[], None], limit: int):
        self.tss: list[int] = []
        self.es: list[int] = []
        self.bodies: list[bytes] = []
        self.codes = bytearray()
        self.clock = clock
        self.full = full
        self.limit = limit
        #: events the detectors could not be handed (their snapshot failed); published all the same
        self.failed = 0

    def watcher(self, code: int, reduce: Callable[[bytes], bytes] | None = None) -> Callable[[Event], None]:
        if not 0 <= code < 128:
            raise ValueError(f"a protocol's code is 0-127, not {code}")
        tss, es, bodies, codes, clock = self.tss, self.es, self.bodies, self.codes, self.clock
        full, limit = self.full, self.limit
        plain, as_json = code << 1, (code << 1) | 1
        cut = reduce if reduce is not None else bytes  # (bytes(b) is b)

        def watch(event: Event) -> None:
            try:
                raw = event.raw
                if raw is not None and not event.meta:
                    body, code = cut(raw if type(raw) is bytes else bytes(raw)), plain
                else:
                    body, code = _snapshot(event), as_json
                ts = operator.index(event.timestamp_ns)
                if not -_I64 <= ts < _I64:  # (what a frame carries: an int64, as in _batch.pyx)
                    raise OverflowError("a timestamp beyond an int64")
                if type(body) is not bytes:
                    raise TypeError(f"a snapshot is bytes, not {type(body).__name__}")
            except Exception:  # the event is published all the same; only the detectors miss it
                self.failed += 1
                return
            bodies.append(body)
            codes.append(code)
            tss.append(ts)
            es.append(clock[0].now_ns)
            if len(bodies) >= limit:
                full()

        return watch

    def take(self) -> tuple[int, bytes]:
        """(count, the frame's body) of what was kept since the last call (the lists are
        reused: the watchers hold them)."""
        parts = (array.array("q", self.es).tobytes(), array.array("q", self.tss).tobytes(),
                 array.array("I", map(len, self.bodies)).tobytes(), bytes(self.codes), *self.bodies)
        out = (len(self.bodies), b"".join(parts))
        del self.es[:]
        del self.tss[:]
        del self.codes[:]
        del self.bodies[:]
        return out


_Batch: Any = _PyBatch
if os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
    try:
        _batch = importlib.import_module("pybeat.agent._batch")
    except ImportError:  # not built: the Python reference
        pass
    else:
        _batch.bind(_snapshot)
        _Batch = _batch.Batch


class _Batcher:
    """Watchers that keep what detectors read of each event: a snapshot (processors may change
    the event after the watchers saw it) of its timestamp, its emission time (the decoder's
    packet clock when the protocol emitted it), which protocol (``code``), and its bytes (what
    ``reduce_raw`` keeps of a pre-encoded event, or the JSON of the fields and meta), in the
    layout of a feed frame's body (:func:`_unpack`)."""

    def __init__(self) -> None:
        #: the decoder whose ``now_ns`` is the emission clock (build() sets it)
        self._clock: list[Any] = [_NoClock()]
        self._batch = _Batch(self._clock, self._full, BATCH)

    def attach_clock(self, decoder: Any) -> None:
        self._clock[0] = decoder

    def watcher(self, code: int, reduce: Callable[[bytes], bytes] | None = None) -> Callable[[Event], None]:
        """The watcher of the protocol numbered ``code`` (runs per event: appends only);
        ``reduce``: the detectors' ``reduce_raw`` for pre-encoded events (pybeat._fastpath)."""
        return self._batch.watcher(code, reduce)  # type: ignore[no-any-return]

    def _take(self) -> tuple[int, bytes]:
        """(count, frame body) of what was kept since the last call."""
        return self._batch.take()  # type: ignore[no-any-return]

    def _now(self) -> int:
        """The emission clock now: no event kept from here on is emitted earlier."""
        return int(self._clock[0].now_ns)

    def _full(self) -> None:
        """A batch is full."""


class _NoClock:
    now_ns = 0


class DetectionFeed(_Batcher):
    """A worker's end of the detection process: its watchers batch events to the pipe, a
    frame per :data:`BATCH` events and one at each tick; the worker that receives the alerts
    and counters publishes the alerts on its capture thread, at the ticks."""

    def __init__(self, fd: int, reader: _Reader | None, emit: Callable[[Event], None] | None, logger: Any):
        super().__init__()
        self.fd = fd
        self.logger = logger
        self.emit = emit
        self.deadline = Deadline()  # build() hands over the run's
        self.broken = False
        #: the detection process ended before its END (died, or killed): 1 in the metrics
        self.lost = False
        self.stats: dict[str, int] = {}
        self.alerts: collections.deque[Event] = collections.deque()
        self.ended = threading.Event()
        self._reader = reader
        if reader is not None:
            threading.Thread(target=self._receive, name="detection-alerts", daemon=True).start()

    def _full(self) -> None:
        self._send(_EVENTS, self._now())

    def _send(self, kind: int, clock: int) -> None:
        count, body = self._take()
        if self.broken:
            return
        try:
            _write_all(self.fd, _frame(kind, body, count, clock))
        except OSError as exc:
            self.broken = self.lost = True
            self.logger.error("the detection process is gone: detection is off for the rest of the run",
                              error=f"{type(exc).__name__}: {exc}")

    def expire(self, now_ns: int) -> None:
        """A packet-time tick (the decoder's timer): what was kept goes over with the tick;
        the alerts that came back are published."""
        self._send(_TICK, max(now_ns, self._now()))
        self._publish()

    def flush(self, now_ns: int) -> None:
        """The end of this worker's input: the feed ends; the receiver waits for the
        detection process's last alerts (until it ends, never past the shutdown deadline)."""
        self._send(_LAST, max(now_ns, self._now()))
        self.close()
        if self._reader is not None:
            deadline = self.deadline
            while not self.ended.wait(deadline.wait_time(0.25)):
                if deadline.expired():
                    self.logger.error("the detection process did not end before the shutdown deadline; "
                                      "its last alerts are lost")
                    break
            self._publish()

    def _publish(self) -> None:
        alerts = self.alerts
        emit = self.emit
        while alerts and emit is not None:
            emit(alerts.popleft())

    def _receive(self) -> None:
        reader = self._reader
        assert reader is not None
        try:
            while not reader.eof:
                r, _, _ = select.select([reader.fd], [], [])
                if r:
                    reader.fill()
                for kind, _, ts, body in reader.frames():
                    if kind == _ALERT:
                        doc = orjson.loads(body)
                        self.alerts.append(Event(ts, doc["f"], doc.get("m") or None))
                    elif kind == _STATS:
                        self.stats = orjson.loads(body)
                    elif kind == _END:
                        self.ended.set()
        except Exception as exc:  # never take the worker down
            self.logger.error("reading the detection process's alerts failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if not self.ended.is_set():
                self.lost = True
                self.logger.error("the detection process ended before its last alerts: detection is off "
                                  "for the rest of the run")
            self.ended.set()
            _close(reader.fd)

    def close(self) -> None:
        """This worker hands over nothing more (a build that failed, or the end of a run)."""
        self.broken = True
        if self.fd >= 0:
            _close(self.fd)
            self.fd = -1

    def metrics(self) -> dict[str, int]:
        """``detection.process.lost``: 1 when the detection process ended early;
        ``detection.snapshot_failed``: events the detectors were not handed."""
        return {"process.lost": int(self.lost), "snapshot_failed": self._batch.failed}

    def counters(self, name: str) -> Callable[[], dict[str, int]]:
        """Detector ``name``'s counters as the detection process last reported them."""
        prefix = f"detection.{name}."

        def read() -> dict[str, int]:
            n = len(prefix)
            return {k[n:]: v for k, v in self.stats.items() if k.startswith(prefix)}

        return read


class LocalDetection(_Batcher):
    """The detectors in this process (``detection_process: false``, or one CPU), in the order
    the detection process shows them transactions (so a run gives the same alerts either way)."""

    def __init__(self, runner: Detection):
        super().__init__()
        self.runner = runner
        self._merger = _Merger(runner, [0])
        self._closed = False

    def _hand(self, kind: int, clock: int) -> None:
        self._merger.add(0, kind, clock, *_unpack(*self._take()))
        self._merger.run()

    def _full(self) -> None:
        self._hand(_EVENTS, self._now())

    def expire(self, now_ns: int) -> None:
        self._hand(_TICK, max(now_ns, self._now()))

    def flush(self, now_ns: int) -> None:
        self._hand(_LAST, max(now_ns, self._now()))
        self._merger.end(0)
        self._merger.run()
        self.runner.flush(self._merger.now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.runner.close()

    def counters(self, name: str) -> Callable[[], dict[str, int]]:
        det = self.runner.detectors[name]
        return det.stats

    def metrics(self) -> dict[str, int]:
        """``detection.snapshot_failed``: events the detectors were not handed."""
        return {"snapshot_failed": self._batch.failed}


# -- running the detectors (in the detection process, or in this one) ----------------------

class Detection:
    """The detectors of a run, built from the settings: :meth:`run` shows them events (the
    snapshots of :class:`_Batcher`, in :class:`_Merger`'s order) and runs their ``expire`` at
    the ticks between them. ``faults`` counts what a detector raises, as
    ``detection.<name>.exceptions``."""

    def __init__(self, settings: Any, emit: Callable[[Event], None], beat: BeatInfo, paths: Paths, logger: Any,
                 faults: FaultLog, shard: Any = None):
        self.faults = faults
        self.detectors: dict[str, Any] = {}
        observers: dict[str, list[Callable[[Event], None]]] = {}
        for d in settings.detectors:
            dctx = DetectorContext(emit=emit, beat=beat, logger=_bound(logger, detector=d.name), name=d.name,
                                   paths=paths, shard=shard)
            try:
                det = d.plugin.create(d.config, dctx)
            except Exception as exc:
                self.close()  # the ones already built
                raise _failed("detector", d.name, exc, logger) from None
            self.detectors[d.name] = det
            for proto in d.plugin.protocols:
                observers.setdefault(proto, []).append(_guarded(faults, "detector", d.name, det.observe))
        protocols = [p.name for p in settings.protocols]
        self._observers = [observers.get(name, []) for name in protocols]
        # pybeat._fastpath: a protocol watched by one detector that reads pre-encoded events
        # itself (observe_raw) gets them without an Event object
        self._direct: list[tuple[str, Callable[[int, bytes], None]] | None] = []
        for name in protocols:
            watching = [d.name for d in settings.detectors if name in d.plugin.protocols]
            reader = getattr(self.detectors.get(watching[0]), "observe_raw", None) if len(watching) == 1 else None
            self._direct.append((watching[0], reader) if callable(reader) else None)
        self._expires = [_guarded(faults, "detector", n, d.expire) for n, d in self.detectors.items()]

    @staticmethod
    def watched(settings: Any) -> dict[str, int]:
        """The protocols some detector watches, with their codes (their place in the
        settings: the same in every process of a run)."""
        watched = {proto for d in settings.detectors for proto in d.plugin.protocols}
        return {p.name: i for i, p in enumerate(settings.protocols) if p.name in watched}

    @staticmethod
    def reducer(settings: Any, protocol: str) -> Callable[[bytes], bytes] | None:
        """The ``reduce_raw`` hook (pybeat._fastpath) for a protocol: only when every
        detector watching it has the same one."""
        hooks = {getattr(d.plugin, "reduce_raw", None) for d in settings.detectors if protocol in d.plugin.protocols}
        hook = hooks.pop() if len(hooks) == 1 else None
        return hook if callable(hook) else None

    def run(self, es: list[int], tss: list[int], codes: bytes, bodies: list[bytes], ticks: list[int]) -> None:
        """Events in their order (by emission time ``es``, then by timestamp ``tss``), with
        every detector's ``expire(tick)`` before the first event emitted at or after the tick."""
        observers, direct_of, faults = self._observers, self._direct, self.faults
        order = sorted(range(len(tss)), key=tss.__getitem__)
        order.sort(key=es.__getitem__)  # stable: by emission time, then by timestamp
        pending = iter(ticks)
        tick = next(pending, None)
        first = codes[0] if codes else 1
        direct = direct_of[first >> 1] if not first & 1 and (first >> 1) < len(direct_of) else None
        if direct is not None and codes.count(first) == len(codes):
            # the usual batch: one protocol's pre-encoded events, one detector reading them
            name, read = direct
            events = iter(order)
            while True:
                try:
                    for i in events:
                        while tick is not None and es[i] >= tick:
                            self.expire(tick)
                            tick = next(pending, None)
                        read(tss[i], bodies[i])
                    break
                except Exception as exc:  # that event only: the loop goes on with the next
                    faults.record("detector", name, exc, "observe")
            order = []
        new = Event.__new__
        for i in order:
            while tick is not None and es[i] >= tick:
                self.expire(tick)
                tick = next(pending, None)
            code = codes[i]
            index = code >> 1
            if index >= len(observers):
                continue
            direct = direct_of[index]
            if direct is not None and not code & 1:
                try:
                    direct[1](tss[i], bodies[i])
                except Exception as exc:  # that event only
                    faults.record("detector", direct[0], exc, "observe")
                continue
            if code & 1:
                doc = orjson.loads(bodies[i])
                event = Event(tss[i], doc["f"], doc.get("m") or None)
            else:
                event = new(Event)
                event.timestamp_ns = tss[i]
                event._fields = None
                event.meta = {}
                event.raw = bodies[i]
                event.digest = None
            for observe in observers[index]:
                observe(event)
        while tick is not None:
            self.expire(tick)
            tick = next(pending, None)

    def expire(self, tick: int) -> None:
        for run_expire in self._expires:
            run_expire(tick)

    def flush(self, now_ns: int) -> None:
        for name, det in self.detectors.items():
            _guarded(self.faults, "detector", name, det.flush)(now_ns)

    def close(self) -> None:
        """The run ends: detectors persist their state."""
        for name, det in self.detectors.items():
            _guarded(self.faults, "detector", name, det.close)()

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, det in self.detectors.items():
            try:
                for k, v in det.stats().items():
                    out[f"detection.{name}.{k}"] = v
            except Exception as exc:
                self.faults.record("detector", name, exc, "stats")
        out.update(self.faults.metrics())
        return out


class _Pending:
    """One feed's events not shown yet (in emission order), and its clock."""

    __slots__ = ("es", "tss", "codes", "bodies", "clock", "open")

    def __init__(self) -> None:
        self.es: list[int] = []
        self.tss: list[int] = []
        self.codes = bytearray()
        self.bodies: list[bytes] = []
        self.clock = 0
        self.open = True


class _Merger:
    """The events of one or more feeds in one order, the same whatever the split: by emission
    time (the decoder's packet clock when the protocol emitted the event: every worker reads
    every packet, so a transaction has the same emission time in whichever worker emitted it),
    then by timestamp; the ticks between them (each once). An event is shown once every feed
    still open has moved its clock past the event's emission time."""

    def __init__(self, detection: Detection, feeds: list[int]):
        self.detection = detection
        self.feeds = {f: _Pending() for f in feeds}
        self.ticks: list[int] = []
        self.now = 0

    def add(self, feed: int, kind: int, clock: int, es: list[int], tss: list[int], codes: bytes,
            bodies: list[bytes]) -> None:
        p = self.feeds[feed]
        p.es += es
        p.tss += tss
        p.codes += codes
        p.bodies += bodies
        if clock > p.clock:
            p.clock = clock
        if kind == _TICK and clock not in self.ticks:
            bisect.insort(self.ticks, clock)

    def end(self, feed: int) -> None:
        self.feeds[feed].open = False

    def run(self) -> bool:
        """Show what every open feed has moved past; whether a tick was run."""
        open_ = [p.clock for p in self.feeds.values() if p.open]
        mark = min(open_) if open_ else None
        es: list[int] = []
        tss: list[int] = []
        codes = bytearray()
        bodies: list[bytes] = []
        for p in self.feeds.values():
            k = len(p.es) if mark is None else bisect.bisect_left(p.es, mark)
            if k:
                es += p.es[:k]
                tss += p.tss[:k]
                codes += p.codes[:k]
                bodies += p.bodies[:k]
                del p.es[:k], p.tss[:k], p.codes[:k], p.bodies[:k]
        k = len(self.ticks) if mark is None else bisect.bisect_right(self.ticks, mark)
        ticks = self.ticks[:k]
        del self.ticks[:k]
        if es or ticks:
            self.detection.run(es, tss, bytes(codes), bodies, ticks)
        clocks = [p.clock for p in self.feeds.values()]
        self.now = max([self.now, *clocks, *ticks])
        return bool(ticks)


def _unpack(count: int, body: bytes) -> tuple[list[int], list[int], bytes, list[bytes]]:
    """A feed frame's events: emission times, timestamps, codes, bodies (ValueError when its
    lengths do not fit it)."""
    if count < 0 or 21 * count > len(body):
        raise ValueError("broken detection stream (a frame shorter than its events)")
    es = array.array("q")
    es.frombytes(body[:8 * count])
    tss = array.array("q")
    tss.frombytes(body[8 * count:16 * count])
    lens = array.array("I")
    lens.frombytes(body[16 * count:20 * count])
    ends = list(itertools.accumulate(lens, initial=21 * count))
    if ends[-1] > len(body):
        raise ValueError("broken detection stream (an event beyond its frame)")
    return es.tolist(), tss.tolist(), body[20 * count:21 * count], [body[a:b] for a, b in zip(ends, ends[1:])]



def _serve(settings: Any, paths: Paths, logger: Any, beat: BeatInfo, feed_fds: list[int], feed_ws: list[int],
           alert_r: int, alert_w: int) -> int:
    """The detection process's main (forked: it closes the ends it does not use); its exit
    status (1: a detector could not start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # As the packet loop does (run.py): what was built before is frozen, and young objects
    # are collected far less often (detector state is mostly acyclic, freed by refcounting).
    gc.freeze()
    gc.set_threshold(1_000_000, 50, 100)
    for fd in feed_ws + [alert_r]:
        _close(fd)

    def send(frame: bytes) -> None:
        try:
            _write_all(alert_w, frame)
        except OSError:
            pass  # the receiver is gone: the detectors still flush and close (their state)

    def emit(event: Event) -> None:
        body = orjson.dumps({"f": event.fields, "m": event.meta or None}, default=str)
        send(_frame(_ALERT, body, ts=event.timestamp_ns))

    try:
        detection = Detection(settings, emit, beat, paths, logger, FaultLog(logger))
    except Exception as exc:
        send(_frame(_ERROR, str(exc).encode()))
        return 1
    send(_frame(_READY))
    readers = {fd: _Reader(fd) for fd in feed_fds}
    merger = _Merger(detection, feed_fds)
    while readers:
        # A feed far ahead of another is not read (its pipe fills and that worker waits), so
        # what waits here for the others stays bounded.
        behind = [fd for fd in readers if len(merger.feeds[fd].es) < _MAX_AHEAD] or list(readers)
        r, _, _ = select.select(behind, [], [])
        for fd in r:
            rd = readers[fd]
            rd.fill()
            for kind, count, clock, body in rd.frames():
                merger.add(fd, kind, clock, *_unpack(count, body))
            if rd.eof:
                del readers[fd]
                _close(fd)
                merger.end(fd)
        if merger.run():
            send(_frame(_STATS, orjson.dumps(detection.stats())))
    now = merger.now
    detection.flush(now)
    detection.close()
    send(_frame(_STATS, orjson.dumps(detection.stats())))
    send(_frame(_END))
    _close(alert_w)
    return 0
