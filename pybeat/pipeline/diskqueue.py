"""The disk queue (libbeat's ``queue.disk``): events kept in segment files until every output
has settled them, so that an agent crash or a stop with an output down loses nothing.

Owns: the segment files and ``state.json`` under ``queue.disk.path``, the events' sequence
numbers, one read position and one settled position per output, deleting segments every output
is done with, ``max_size`` (backpressure for a replay, counted drops for live capture), and
reporting damaged segments. Never encodes events for an output, never retries a delivery (the
pipeline and the outputs do), never reads the clock except to wait and to space state writes.

Durability, exactly: ``put`` returns only after the events it accepted are written and
``fdatasync``-ed (one sync per ``write_ahead`` events at most, one per call usually), so an
accepted event survives a crash of the agent and, where the disk honours flushes, of the
machine. What is settled (acked or dropped by an output) is written to ``state.json`` at most
``STATE_SYNC_INTERVAL`` seconds late, before any segment is deleted, and at close: a crash
resends at most the last second's settled events (duplicates, never losses). A torn frame
(a crash mid-write) can only be in a frame that ``put`` had not yet returned for.

Several outputs share one queue: an event is written once, each output reads it on its own,
and a segment is deleted when every output has settled all its events.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from pybeat.api import Event
from pybeat.pipeline.deadline import Deadline
from pybeat.pipeline.queue import RetryLine
from pybeat.pipeline import segment as seg_format
from pybeat.pipeline.segment import HEADER_SIZE, SegmentError

STATE_FILE = "state.json"
STATE_SYNC_INTERVAL = 1.0
_SEG_NAME = re.compile(r"^(\d+)\.seg$")
_READ_CHUNK = 1 << 20
_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def parse_size(value: int | str) -> int:
    """Bytes from ``10GB``, ``512MiB``, ``1048576`` (Beats' humanized sizes)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10GB or 512MiB")
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 10GB or 512MiB, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


@dataclass
class DiskQueueSettings:
    """``queue.disk`` with sizes in bytes and intervals in seconds (Beats' defaults)."""

    path: str
    max_size: int = 10 * 1000**3  # 0 = unbounded
    segment_size: int = 0  # 0 = max_size / 10 (1 GB when max_size is unbounded)
    read_ahead: int = 512
    write_ahead: int = 2048
    retry_interval: float = 1.0
    max_retry_interval: float = 30.0

    def __post_init__(self) -> None:
        if not self.segment_size:
            self.segment_size = self.max_size // 10 if self.max_size else 1000**3
        self.segment_size = max(self.segment_size, 4096)
        if self.max_size and self.max_size < 2 * self.segment_size:
            raise ValueError(
                f"queue.disk.max_size ({self.max_size} bytes) must be at least twice "
                f"queue.disk.segment_size ({self.segment_size} bytes)"
            )

    @classmethod
    def from_config(cls, cfg: Any, path_data: str) -> "DiskQueueSettings":
        """From the config model's ``queue.disk`` section (``path`` defaults to
        ``<path.data>/diskqueue``)."""
        max_size = parse_size(cfg.max_size) if cfg.max_size is not None else 10 * 1000**3
        return cls(
            path=cfg.path or os.path.join(path_data, "diskqueue"),
            max_size=max_size,
            segment_size=parse_size(cfg.segment_size) if cfg.segment_size is not None else 0,
            read_ahead=cfg.read_ahead,
            write_ahead=cfg.write_ahead,
            retry_interval=cfg.retry_interval,
            max_retry_interval=cfg.max_retry_interval,
        )


@dataclass
class _Segment:
    id: int
    path: str
    first_seq: int
    frames: int  # readable frames from the start
    end: int  # byte offset readers may read up to (written and synced)
    size: int  # bytes on disk, counted against max_size
    sealed: bool  # no more frames will be added
    damaged: bool = False  # a reader found damage: readers skip it, the writer leaves it
    #: (seq, byte offset) where each write of this run began: a reader seeks, not scans
    index: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.frames


_POLL = 0.25


class DiskQueue:
    """One queue shared by several outputs (``consumers``: the output names).

    ``put`` is called by the pipeline (one thread at a time); each output's workers use their
    :class:`DiskQueueConsumer` (``consumer(name)``), which has MemQueue's calls. ``deadline``
    (``expired()``, ``wait_time(poll)``): the agent's shutdown deadline; blocked puts and
    drains give up when it passes, and what is not settled stays on disk.
    """

    def __init__(self, settings: DiskQueueSettings, consumers: Iterable[str], logger: Any = None,
                 deadline: Deadline | None = None, window: int = 4096):
        self.settings = settings
        self.logger = logger
        self.deadline = deadline or Deadline()  # none set: never expires
        # The events of the last writes, in memory: an output that keeps up takes them from
        # here (the same Event objects, as the memory queue hands out) instead of reading them
        # back from disk. seq of _window[0] is _window_first.
        self._window: deque[Event] = deque()
        self._window_first = 0
        self._window_cap = max(0, window)
        self.dir = settings.path
        self._cond = threading.Condition()
        self._wlock = threading.Lock()
        self._segments: list[_Segment] = []
        self._wseg: _Segment | None = None
        self._wfd = -1
        self._closed = False
        self._stopped = False
        self._state_dirty = False
        self._state_written = 0.0
        # counters (read by stats())
        self.events_written = 0
        self.bytes_written = 0
        self.syncs = 0
        self.dropped_full = 0
        self.dropped_write_error = 0
        self.dropped_unencodable = 0
        self.write_errors = 0
        self.segments_deleted = 0
        self.damaged_segments = 0
        self.events_lost_damage = 0
        self.restored = 0
        self.peak_bytes = 0

        _make_private_dir(self.dir)
        self._scan()
        self.next_seq = max([s.end_seq for s in self._segments] + [self._state_next_seq(), 0])
        acked = self._load_state()
        oldest = self._segments[0].first_seq if self._segments else self.next_seq
        self._consumers: dict[str, DiskQueueConsumer] = {}
        for name in consumers:
            start = acked.get(name, oldest)
            start = min(max(start, oldest), self.next_seq)
            self._consumers[name] = DiskQueueConsumer(self, name, start)
        gone = sorted(set(acked) - set(self._consumers))
        if gone and logger is not None:
            logger.warning("disk queue: outputs no longer configured lose their place in the queue",
                           outputs=gone, path=self.dir)
        self.restored = self.next_seq - min([c._acked for c in self._consumers.values()] + [self.next_seq])
        if self.restored and logger is not None:
            logger.info("disk queue: events from an earlier run are sent first", events=self.restored, path=self.dir)
        self._write_state()
        self._delete_settled()

    # -- startup --------------------------------------------------------------------
    def _scan(self) -> None:
        ids = []
        for entry in os.listdir(self.dir):
            m = _SEG_NAME.match(entry)
            if m:
                ids.append(int(m.group(1)))
            elif entry.endswith(".tmp"):
                _unlink(os.path.join(self.dir, entry))
        self._next_id = max(ids) + 1 if ids else 1
        found: list[_Segment] = []
        for sid in sorted(ids):
            path = os.path.join(self.dir, f"{sid}.seg")
            try:
                scan = seg_format.scan_segment(path)
            except (SegmentError, OSError) as exc:
                self.damaged_segments += 1
                self._report("disk queue segment unreadable; skipped", path, str(exc))
                _unlink(path)  # nothing in it can be read: it only takes space
                continue
            if scan.damage is not None:
                self.damaged_segments += 1
                self._report("disk queue segment damaged; reading stops at the damage", path, scan.damage,
                             valid_frames=scan.frames, bytes_skipped=scan.size - scan.valid_end)
            found.append(_Segment(sid, path, scan.first_seq, scan.frames, scan.valid_end, scan.size, True))
        # A segment whose header claims sequence numbers before the end of the one before it
        # is not trusted (it would hand out events twice or out of order).
        kept: list[_Segment] = []
        for s in found:
            if kept and s.first_seq < kept[-1].end_seq:
                self.damaged_segments += 1
                self._report("disk queue segment out of order; skipped", s.path, "sequence numbers overlap")
                continue
            if kept and s.first_seq > kept[-1].end_seq:
                lost = s.first_seq - kept[-1].end_seq
                self.events_lost_damage += lost
                self._report("disk queue: events lost to a damaged segment", kept[-1].path,
                             f"{lost} events could not be read", events=lost)
            kept.append(s)
        self._segments = kept

    def _report(self, message: str, path: str, reason: str, **extra: Any) -> None:
        if self.logger is not None:
            self.logger.error(message, path=path, reason=reason, **extra)

    def _state_next_seq(self) -> int:
        return int(self._read_state().get("next_seq", 0))

    def _read_state(self) -> dict[str, Any]:
        path = os.path.join(self.dir, STATE_FILE)
        try:
            with open(path, "rb") as fh:
                state = orjson.loads(fh.read())
            if not isinstance(state, dict) or not isinstance(state.get("acked", {}), dict):
                raise ValueError("not a state object")
            return state
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Settled positions unknown: every output starts at the oldest event kept, so
            # events are sent again (duplicates), never lost.
            self._report("disk queue state unreadable; outputs resend what the queue holds", path, str(exc))
            return {}

    def _load_state(self) -> dict[str, int]:
        acked = self._read_state().get("acked", {})
        return {str(k): int(v) for k, v in acked.items() if isinstance(v, int)}

    # -- state ----------------------------------------------------------------------
    def _write_state(self) -> None:
        """Persist every output's settled position (atomically: temp file, fsync, rename)."""
        state = {
            "version": 1,
            "next_seq": self.next_seq,
            "acked": {name: c._acked for name, c in self._consumers.items()},
        }
        path = os.path.join(self.dir, STATE_FILE)
        tmp = path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, orjson.dumps(state))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self.dir)
        except OSError as exc:
            # Not fatal: an older state only means resending (duplicates).
            self.write_errors += 1
            self._report("disk queue state not written", path, str(exc))
            return
        self._state_dirty = False
        self._state_written = time.monotonic()

    def _after_settle(self) -> None:
        """Called under the lock when an output's settled position moved."""
        self._state_dirty = True
        if self._delete_settled():
            return
        if time.monotonic() - self._state_written >= STATE_SYNC_INTERVAL:
            self._write_state()

    def _min_acked(self) -> int:
        return min([c._acked for c in self._consumers.values()] + [self.next_seq])

    def _delete_settled(self) -> bool:
        """Delete the sealed segments every output is done with (state written first)."""
        done = self._min_acked()
        doomed = []
        for i, s in enumerate(self._segments):
            if not s.sealed:
                break
            nxt = self._segments[i + 1].first_seq if i + 1 < len(self._segments) else s.end_seq
            if max(s.end_seq, nxt) > done:
                break
            doomed.append(s)
        if not doomed:
            return False
        self._write_state()
        for s in doomed:
            _unlink(s.path)
            self.segments_deleted += 1
        del self._segments[: len(doomed)]
        _fsync_dir(self.dir)
        self._cond.notify_all()
        return True

    # -- writing --------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes the segments take on disk."""
        return sum(s.size for s in self._segments)

    def put(self, events: list[Event], block: bool = True) -> int:
        """Persist events; return how many were accepted (written and synced).

        ``block=True`` (replay) waits while ``max_size`` is reached or the disk is full, until
        outputs settle events and segments are deleted. ``block=False`` (live capture) takes
        what fits and counts the rest in ``dropped_full`` (``dropped_write_error`` for a
        write that failed).
        """
        if not events:
            return 0
        buf = bytearray()
        bounds = [0]  # frame i is buf[bounds[i]:bounds[i + 1]]
        kept = events
        encode = seg_format.encode_frame
        for k, ev in enumerate(events):
            try:
                encode(ev, buf)
            except (TypeError, ValueError) as exc:
                del buf[bounds[-1] :]
                self.dropped_unencodable += 1
                if self.logger is not None:
                    self.logger.warning("disk queue: event could not be encoded; dropped", error=str(exc))
                if kept is events:
                    kept = list(events[:k])
                continue
            bounds.append(len(buf))
            if kept is not events:
                kept.append(ev)
        with self._wlock:
            return self._write_frames(buf, bounds, kept, block)

    def _write_frames(self, buf: bytearray, bounds: list[int], events: list[Event], block: bool) -> int:
        settings = self.settings
        total = len(bounds) - 1
        i = 0
        delay = settings.retry_interval
        while i < total:
            with self._cond:
                if self._closed:
                    break
                seg = self._wseg
                first = bounds[i + 1] - bounds[i]
                if seg is not None and (seg.frames > 0 and seg.size + first > settings.segment_size or seg.damaged):
                    self._seal_write_segment()  # full (or found damaged): the next frames start a new one
                    continue
                room = settings.max_size - self.size if settings.max_size else 1 << 62
                head = HEADER_SIZE if seg is None else 0
                used = seg.size if seg is not None else HEADER_SIZE
                # as many frames as fit in the segment (at least one) and in max_size
                j = i
                while j < min(total, i + max(1, settings.write_ahead)):
                    n = bounds[j + 1] - bounds[i]
                    if (j > i and used + n > settings.segment_size) or head + n > room:
                        break
                    j += 1
                if j == i:
                    if self._min_acked() >= self.next_seq:
                        if seg is not None:
                            self._seal_write_segment()  # all settled: sealing lets it be deleted
                            continue
                        # nothing is queued, and still no room: this event never fits
                        self.dropped_full += 1
                        self._report("disk queue: event larger than max_size; dropped", self.dir,
                                     f"{first} bytes")
                        i += 1
                        continue
                    if not block:
                        self.dropped_full += total - i
                        break
                    if self.deadline.expired():
                        break  # shutdown gave up: the caller counts the rest as not delivered
                    self._cond.wait(self.deadline.wait_time(_POLL))  # outputs settling events free segments
                    continue
            try:
                if self._wseg is None:
                    self._open_write_segment()
                self._append(memoryview(buf)[bounds[i] : bounds[j]], events[i:j])
                i = j
                delay = settings.retry_interval
            except OSError as exc:
                self.write_errors += 1
                with self._cond:
                    pending = self._min_acked() < self.next_seq
                if block and self.deadline.expired():
                    return i  # shutdown gave up: the caller counts the rest as not delivered
                if not block or not pending or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    self.dropped_write_error += total - i
                    self._report("disk queue: writing events failed; dropped", self.dir, str(exc),
                                 events=total - i)
                    return i
                # Disk full while outputs still hold events: settling them frees space.
                self._report("disk queue: disk full; waiting for outputs to free space", self.dir, str(exc),
                             retry_in=delay)
                with self._cond:
                    self._cond.wait(self.deadline.wait_time(delay))
                delay = min(delay * 2, settings.max_retry_interval)
        return i

    def _open_write_segment(self) -> None:
        sid = self._next_id
        path = os.path.join(self.dir, f"{sid}.seg")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, seg_format.encode_header(self.next_seq))
            os.fdatasync(fd)
            _fsync_dir(self.dir)
        except OSError:
            os.close(fd)
            _unlink(path)
            raise
        self._next_id += 1
        with self._cond:
            self._wfd = fd
            self._wseg = _Segment(sid, path, self.next_seq, 0, HEADER_SIZE, HEADER_SIZE, False)
            self._segments.append(self._wseg)

    def _append(self, data: memoryview, events: list[Event]) -> None:
        seg = self._wseg
        assert seg is not None
        frames = len(events)
        try:
            _write_all(self._wfd, data)
            os.fdatasync(self._wfd)
        except OSError:
            # Cut the partial write back so the segment stays readable to its synced end.
            try:
                os.ftruncate(self._wfd, seg.end)
                os.lseek(self._wfd, seg.end, os.SEEK_SET)
            except OSError:
                with self._cond:
                    seg.sealed = True
                    self._seal_write_segment()
            raise
        with self._cond:
            seg.index.append((seg.end_seq, seg.end))
            if len(self._window) + frames > self._window_cap and self._window:
                drop = min(len(self._window), len(self._window) + frames - self._window_cap)
                for _ in range(drop):
                    self._window.popleft()
                self._window_first += drop
            if not self._window:
                self._window_first = self.next_seq
            if frames <= self._window_cap:
                self._window.extend(events)
            seg.frames += frames
            seg.end += len(data)
            seg.size = seg.end
            self.next_seq += frames
            self.events_written += frames
            self.bytes_written += len(data)
            self.syncs += 1
            size = self.size
            if size > self.peak_bytes:
                self.peak_bytes = size
            for c in self._consumers.values():
                used = self.next_seq - c._acked
                if used > c.peak:
                    c.peak = used
            self._cond.notify_all()

    def _seal_write_segment(self) -> None:
        """Under the lock: the write segment takes no more frames."""
        if self._wfd >= 0:
            os.close(self._wfd)
        self._wfd = -1
        if self._wseg is not None:
            self._wseg.sealed = True
        self._wseg = None
        self._delete_settled()

    # -- consumers and lifecycle ------------------------------------------------------
    def consumer(self, name: str) -> "DiskQueueConsumer":
        return self._consumers[name]

    @property
    def consumers(self) -> dict[str, "DiskQueueConsumer"]:
        return dict(self._consumers)

    def close(self) -> None:
        """No more puts; consumers drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Consumers stop taking events at once: what is not settled stays for the next start."""
        with self._cond:
            self._closed = True
            self._stopped = True
            self._cond.notify_all()

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until every output settled every event; False on timeout or at the deadline."""
        return self._wait(lambda: self._min_acked() >= self.next_seq, timeout)

    def _wait(self, done: Any, timeout: float | None) -> bool:
        with self._cond:
            return self.deadline.wait_for(self._cond, done, timeout, _POLL)

    def notify(self) -> None:
        """Wake every waiter (the deadline changed)."""
        with self._cond:
            self._cond.notify_all()

    def shutdown(self) -> None:
        """Write the final state and release the files (after the outputs stopped)."""
        with self._wlock, self._cond:
            self._closed = self._stopped = True
            self._write_state()
            if self._wseg is not None:
                self._seal_write_segment()
            self._delete_settled()
            self._cond.notify_all()
        for c in self._consumers.values():
            c._close_reader()

    def pending(self) -> dict[str, int]:
        """Events each output has not settled yet (kept on disk for the next start)."""
        with self._cond:
            return {name: self.next_seq - c._acked for name, c in self._consumers.items()}

    def stats(self) -> dict[str, int]:
        with self._cond:
            out = {
                "queue.disk.events_written": self.events_written,
                "queue.disk.bytes_written": self.bytes_written,
                "queue.disk.syncs": self.syncs,
                "queue.disk.bytes": self.size,
                "queue.disk.peak_bytes": self.peak_bytes,
                "queue.disk.max_size": self.settings.max_size,
                "queue.disk.segments": len(self._segments),
                "queue.disk.segments_deleted": self.segments_deleted,
                "queue.disk.damaged_segments": self.damaged_segments,
                "queue.disk.events_lost_damage": self.events_lost_damage,  # gaps found at start
                "queue.disk.restored": self.restored,
                "queue.disk.dropped_full": self.dropped_full,
                "queue.disk.dropped_write_error": self.dropped_write_error,
                "queue.disk.dropped_unencodable": self.dropped_unencodable,
                "queue.disk.write_errors": self.write_errors,
            }
            for name, c in self._consumers.items():
                out[f"queue.disk.pending.{name}"] = self.next_seq - c._acked
                out[f"queue.disk.events_lost_damage.{name}"] = c.lost_damage
        return out


class DiskQueueConsumer:
    """One output's view of the disk queue: MemQueue's ``get``/``requeue``/``close``/
    ``wait_empty``, and ``settled(events)`` instead of ``release(n)`` (the disk queue must know
    which events were settled, not only how many)."""

    def __init__(self, queue: DiskQueue, name: str, acked: int):
        self.queue = queue
        self.name = name
        self._acked = acked  # every event before this one is settled
        self._read_seq = acked  # the next event to read from disk
        self._done: set[int] = set()  # settled events at or after _acked
        self._gaps: dict[int, int] = {}  # unreadable ranges (damage): start -> end
        self._inflight: dict[int, int] = {}  # id(event) -> seq, handed out and not settled
        self._retry = RetryLine()  # groups handed back by the output, taken before new ones
        self._given_up = False  # take_all(): this output takes nothing more in this run
        self.peak = 0
        self._rlock = threading.Lock()
        self._seg: _Segment | None = None
        self._fd = -1
        self._buf = b""
        self._pos = 0
        self._buf_off = 0  # file offset of _buf[0]
        self._buf_seq = 0  # seq of the frame at _pos
        self.lost_damage = 0

    @property
    def used(self) -> int:
        """Events this output has not settled (queued, in flight, or kept from an earlier run);
        after ``take_all``, those still in flight (as MemQueue counts)."""
        if self._given_up:
            return len(self._inflight)
        return self.queue.next_seq - self._acked

    @property
    def capacity(self) -> int:
        return self.queue.settings.max_size

    @property
    def queued(self) -> int:
        """Events waiting for this output (not handed to it yet)."""
        q = self.queue
        with q._cond:
            return q.next_seq - self._read_seq + self._retry.events()

    @property
    def dropped_full(self) -> int:
        return self.queue.dropped_full

    # -- MemQueue's calls ---------------------------------------------------------------
    def get(self, max_events: int, timeout: float | None = None) -> tuple[list[Event], int] | None:
        """Up to ``max_events`` (retried groups first). None once the queue is closed and this
        output settled everything (or the queue was stopped); ``([], 0)`` on timeout."""
        q = self.queue
        n = max_events if max_events > 0 else q.settings.read_ahead
        end = None if timeout is None else time.monotonic() + timeout
        with self._rlock:
            while True:
                with q._cond:
                    if q._stopped or self._given_up:
                        return None
                    now = time.monotonic()
                    due = self._retry.due(now)
                    if due is not None:
                        return due
                    if self._read_seq >= q.next_seq:  # nothing new to read
                        # Stop only when nothing is in flight either: a batch another worker
                        # holds may still come back for retry.
                        if q._closed and not self._inflight and not self._retry:
                            return None
                        wait = self._retry.wait(now, q.deadline.wait_time(_POLL))
                        if end is not None:
                            if now >= end:
                                return [], 0
                            wait = min(wait, end - now)
                        q._cond.wait(wait)
                        continue
                before = self._read_seq
                events = self._read(n)
                if events:
                    return events, 0
                if self._read_seq == before:  # not readable yet (cannot last: a guard against spinning)
                    with q._cond:
                        q._cond.wait(0.05)

    def requeue(self, events: list[Event], retries: int, not_before: float = 0.0) -> None:
        """Events the output could not deliver come back first, from ``not_before``
        (``time.monotonic()``) on; after a stop they stay on disk for the next start."""
        q = self.queue
        with q._cond:
            if q._stopped or self._given_up:
                for ev in events:
                    self._inflight.pop(id(ev), None)
            else:
                self._retry.add(not_before, events, retries)
            q._cond.notify_all()

    def release(self, n: int) -> None:
        """MemQueue's call; the disk queue needs to know which events (``settled``)."""

    def take_all(self) -> int:
        """Shutdown gave up on this output: it takes nothing more; return how many events
        were waiting for it (they stay on disk for the next start, as do those in flight)."""
        q = self.queue
        with q._cond:
            n = q.next_seq - self._read_seq + self._retry.events()
            self._given_up = True
            for events in self._retry:
                for ev in events:
                    self._inflight.pop(id(ev), None)
            self._retry.clear()
            q._cond.notify_all()
            return n

    def notify(self) -> None:
        self.queue.notify()

    def settled(self, events: list[Event]) -> None:
        """These events were settled for good (acked or dropped by the output)."""
        q = self.queue
        with q._cond:
            inflight = self._inflight
            done = self._done
            for ev in events:
                seq = inflight.pop(id(ev), None)
                if seq is not None:
                    done.add(seq)
            before = self._acked
            self._advance()
            if self._acked != before:
                q._after_settle()
            q._cond.notify_all()

    def close(self) -> None:
        self.queue.close()

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until this output settled every event; False on timeout, at the deadline or
        after a stop (what is left stays on disk)."""
        q = self.queue
        return q._wait(lambda: q._stopped or self._given_up or self._acked >= q.next_seq, timeout) \
            and self._acked >= q.next_seq

    # -- internals ----------------------------------------------------------------------
    def _advance(self) -> None:
        acked, done, gaps = self._acked, self._done, self._gaps
        while True:
            if acked in done:
                done.discard(acked)
                acked += 1
            elif acked in gaps:
                acked = gaps.pop(acked)
            else:
                break
        self._acked = acked

    def _read(self, n: int) -> list[Event]:
        """Up to ``n`` events from ``_read_seq`` on (under ``_rlock``): from the queue's memory
        window when they are still there, else from disk."""
        q = self.queue
        with q._cond:
            first = q._window_first
            if first <= self._read_seq < first + len(q._window):
                start = self._read_seq - first
                events = list(itertools.islice(q._window, start, start + n))
                inflight = self._inflight
                seq = self._read_seq
                for ev in events:
                    inflight[id(ev)] = seq
                    seq += 1
                self._read_seq = seq
                if self._seg is not None:
                    self._close_reader()  # its position is behind now; reopened by seq if needed
                return events
        events = []
        seqs: list[int] = []
        while len(events) < n:
            seg = self._seg
            if seg is None:
                if not self._open_reader():
                    break
                continue
            limit = seg.end  # synced bytes (grows while this is the write segment)
            at = self._buf_off + self._pos
            try:
                got = seg_format.next_frame(self._buf, self._pos) if at < limit else None
                if got is None:
                    if at >= limit:
                        if seg.sealed and at >= seg.end:
                            self._close_reader()  # on to the next segment
                            continue
                        break  # nothing more synced yet
                    want = min(_READ_CHUNK, limit - (self._buf_off + len(self._buf)))
                    more = os.pread(self._fd, want, self._buf_off + len(self._buf)) if want > 0 else b""
                    if not more:
                        raise SegmentError(f"segment ends at byte {self._buf_off + len(self._buf)}, "
                                           f"{limit} expected")
                    self._buf = self._buf[self._pos :] + more
                    self._buf_off += self._pos
                    self._pos = 0
                    continue
                end, payload = got
                seq = self._buf_seq
                self._pos = end
                self._buf_seq += 1
                if seq >= self._read_seq:  # (after a restart, the settled ones are skipped)
                    events.append(seg_format.decode_payload(payload))
                    seqs.append(seq)
                    self._read_seq = seq + 1
            except (SegmentError, ValueError, OSError) as exc:
                self._damaged(seg, str(exc))
        if events:
            with q._cond:
                inflight = self._inflight
                for ev, seq in zip(events, seqs):
                    inflight[id(ev)] = seq
        return events

    def _open_reader(self) -> bool:
        """Open the segment holding ``_read_seq`` (False: nothing to read yet)."""
        q = self.queue
        with q._cond:
            segs = list(q._segments)
            next_seq = q.next_seq
        for s in segs:
            if s.damaged:
                continue
            if s.end_seq > self._read_seq or (not s.sealed and s.first_seq >= self._read_seq):
                break
        else:
            if self._read_seq < next_seq:  # only damaged segments hold them
                self._skip_to(next_seq)
            return False
        if s.first_seq > self._read_seq:
            self._skip_to(s.first_seq)  # lost with a damaged or unreadable segment
        try:
            fd = os.open(s.path, os.O_RDONLY)
        except OSError as exc:
            self._damaged(s, str(exc))
            return True
        self._close_reader()
        self._fd, self._seg = fd, s
        offset, seq = HEADER_SIZE, s.first_seq
        for at_seq, at in s.index:  # the last write that began at or before _read_seq
            if at_seq > self._read_seq:
                break
            seq, offset = at_seq, at
        self._buf, self._pos, self._buf_off, self._buf_seq = b"", 0, offset, seq
        return True

    def _damaged(self, seg: _Segment, reason: str) -> None:
        """A segment could not be read past ``_read_seq``: report, skip to the next one."""
        q = self.queue
        with q._cond:
            if not seg.damaged:
                q.damaged_segments += 1
            seg.damaged = True
            if seg is not q._wseg:
                seg.sealed = True  # (the writer seals the write segment before its next write)
            segs = q._segments
            idx = next((i for i, s in enumerate(segs) if s is seg), None)
            nxt = segs[idx + 1].first_seq if idx is not None and idx + 1 < len(segs) else q.next_seq
        q._report("disk queue segment damaged while reading; skipped to the next segment", seg.path, reason,
                  output=self.name, events=max(0, nxt - self._read_seq))
        self._close_reader()
        if nxt > self._read_seq:
            self._skip_to(nxt)

    def _skip_to(self, seq: int) -> None:
        q = self.queue
        with q._cond:
            self.lost_damage += seq - self._read_seq
            self._gaps[self._read_seq] = seq
            self._read_seq = seq
            self._advance()

    def _close_reader(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._seg = None
        self._buf, self._pos = b"", 0


# -- files ------------------------------------------------------------------------------
def _make_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
