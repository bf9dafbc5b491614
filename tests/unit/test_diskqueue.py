"""The disk queue (pybeat/pipeline/diskqueue.py): persistence, per-output progress, damage,
max_size, full disk, permissions."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pybeat.api import Event
from pybeat.pipeline import diskqueue, segment
from pybeat.pipeline.diskqueue import DiskQueue, DiskQueueSettings, parse_size
from tests.delivery.fs import tmpfs


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, msg: str, **kw: Any) -> None:
        self.lines.append((level, msg, kw))

    def info(self, msg: str, **kw: Any) -> None:
        self._log("info", msg, **kw)

    def warning(self, msg: str, **kw: Any) -> None:
        self._log("warning", msg, **kw)

    def error(self, msg: str, **kw: Any) -> None:
        self._log("error", msg, **kw)

    def errors(self) -> list[str]:
        return [m for lvl, m, _ in self.lines if lvl == "error"]


def ev(i: int, raw: bool = False, meta: dict[str, Any] | None = None) -> Event:
    if raw:
        return Event(1_700_000_000_000_000_000 + i, None, meta=meta, raw=orjson.dumps({"n": i, "kind": "raw"}))
    return Event(1_700_000_000_000_000_000 + i, {"n": i, "dns": {"id": i}}, meta=meta)


def n_of(e: Event) -> int:
    return int(e.fields["n"])


def settings(path: Path, **kw: Any) -> DiskQueueSettings:
    kw.setdefault("max_size", 0)
    kw.setdefault("segment_size", 64 * 1024)
    return DiskQueueSettings(path=str(path), **kw)


def drain(q: DiskQueue, name: str, n: int = 100, settle: bool = True) -> list[Event]:
    """Every event the consumer can get now (settled if ``settle``)."""
    c = q.consumer(name)
    out: list[Event] = []
    while True:
        got = c.get(n, timeout=0.05)
        if got is None or not got[0]:
            return out
        out.extend(got[0])
        if settle:
            c.settled(got[0])


def test_round_trip_keeps_fields_raw_documents_and_metadata(tmp_path: Path) -> None:
    """What goes in comes out in order: field events, pre-encoded ones and @metadata."""
    q = DiskQueue(settings(tmp_path), ["out"])
    events = [ev(0), ev(1, raw=True), ev(2, meta={"_id": "abc", "pipeline": "p"})]
    assert q.put(events) == 3
    got = drain(q, "out")
    assert [e.timestamp_ns for e in got] == [e.timestamp_ns for e in events]
    assert got[0].fields == {"n": 0, "dns": {"id": 0}}
    assert got[1].raw == events[1].raw and got[1].fields["kind"] == "raw"
    assert got[2].meta == {"_id": "abc", "pipeline": "p"}
    assert q.wait_empty(0)


@pytest.mark.parametrize("window", [0, 4096])
def test_a_consumer_behind_the_memory_window_reads_from_disk(tmp_path: Path, window: int) -> None:
    """Events beyond the in-memory window (or with none) come from disk, in order, once each."""
    q = DiskQueue(settings(tmp_path, segment_size=8192), ["fast", "slow"], window=window)
    got: list[int] = []
    for i in range(0, 6000, 500):
        q.put([ev(j) for j in range(i, i + 500)])
        got += [n_of(e) for e in drain(q, "fast", n=300)]
    assert got == list(range(6000))
    assert [n_of(e) for e in drain(q, "slow", n=700)] == list(range(6000))


def test_events_not_settled_are_sent_first_after_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart hands out what no output settled, before anything new."""
    monkeypatch.setattr(diskqueue, "STATE_SYNC_INTERVAL", 0.0)  # (else written up to 1 s late)
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(10)])
    c = q.consumer("out")
    events, _ = c.get(4)
    c.settled(events)  # 0-3 delivered
    c.get(3)  # 4-6 in flight when the agent dies
    del q, c  # no shutdown: as a crash would leave it

    q2 = DiskQueue(settings(tmp_path), ["out"])
    assert q2.restored == 6
    q2.put([ev(100)])
    assert [n_of(e) for e in drain(q2, "out")] == [4, 5, 6, 7, 8, 9, 100]


def test_a_crash_without_the_state_file_resends_never_loses(tmp_path: Path) -> None:
    """Settled positions are written lazily: losing them resends events (duplicates), never loses."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(5)])
    drain(q, "out")
    os.unlink(tmp_path / "state.json")
    q2 = DiskQueue(settings(tmp_path), ["out"])
    assert [n_of(e) for e in drain(q2, "out")] == [0, 1, 2, 3, 4]


def test_each_output_keeps_its_own_position(tmp_path: Path) -> None:
    """One output acking everything does not remove what another has not delivered."""
    q = DiskQueue(settings(tmp_path, segment_size=4096), ["es", "file"])
    for i in range(0, 300, 50):
        q.put([ev(j) for j in range(i, i + 50)])
    assert len(drain(q, "file")) == 300
    es = drain(q, "es", n=50, settle=False)[:120]
    q.consumer("es").settled(es)
    assert q.pending() == {"es": 180, "file": 0}
    q.shutdown()

    q2 = DiskQueue(settings(tmp_path, segment_size=4096), ["es", "file"])
    assert [n_of(e) for e in drain(q2, "es")] == list(range(120, 300))
    assert drain(q2, "file") == []
    q2.shutdown()
    assert not list(tmp_path.glob("*.seg"))  # everything settled by both: no segment left


def test_out_of_order_settles_advance_only_the_contiguous_prefix(tmp_path: Path) -> None:
    """A later batch acked before an earlier one does not mark the earlier one delivered."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(6)])
    c = q.consumer("out")
    first, _ = c.get(3)
    second, _ = c.get(3)
    c.settled(second)
    assert c.used == 6
    c.settled(first)
    assert c.used == 0


def test_retried_events_come_back_before_new_ones(tmp_path: Path) -> None:
    """requeue() puts a batch at the front with its retry count, as MemQueue does."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(4)])
    c = q.consumer("out")
    batch, _ = c.get(2)
    c.requeue(batch, 1)
    again, retries = c.get(10)
    assert retries == 1 and [n_of(e) for e in again] == [0, 1]
    c.settled(again)
    rest, _ = c.get(10)
    assert [n_of(e) for e in rest] == [2, 3]


def test_settled_segments_are_deleted_while_running(tmp_path: Path) -> None:
    """Space comes back as soon as every output settled a whole segment."""
    q = DiskQueue(settings(tmp_path, segment_size=4096), ["out"])
    for i in range(20):
        q.put([ev(j) for j in range(i * 20, i * 20 + 20)])
    assert len(list(tmp_path.glob("*.seg"))) > 3
    drain(q, "out")
    assert len(list(tmp_path.glob("*.seg"))) == 1  # the one being written
    assert q.stats()["queue.disk.segments_deleted"] > 2


def test_get_returns_none_after_close_once_everything_is_settled(tmp_path: Path) -> None:
    """close(): the output drains, then its workers are told to stop."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(1)])
    q.close()
    c = q.consumer("out")
    got = c.get(10)
    assert got is not None and len(got[0]) == 1
    c.settled(got[0])
    assert c.get(10) is None


def test_stop_leaves_what_is_not_settled_for_the_next_start(tmp_path: Path) -> None:
    """stop() (shutdown with an output down): workers stop, the events stay on disk."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(5)])
    c = q.consumer("out")
    batch, _ = c.get(2)
    q.stop()
    assert c.get(10) is None
    c.requeue(batch, 1)  # an output giving up after the stop
    assert q.pending() == {"out": 5}
    q.shutdown()
    q2 = DiskQueue(settings(tmp_path), ["out"])
    assert [n_of(e) for e in drain(q2, "out")] == [0, 1, 2, 3, 4]


def test_a_consumer_waiting_wakes_for_new_events(tmp_path: Path) -> None:
    """get() blocks until the writer syncs new events."""
    q = DiskQueue(settings(tmp_path), ["out"])
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.consumer("out").get(10, timeout=5)))
    t.start()
    time.sleep(0.1)
    q.put([ev(7)])
    t.join(5)
    assert [n_of(e) for e in got[0][0]] == [7]


def test_new_output_gets_the_backlog_and_removed_one_is_forgotten(tmp_path: Path) -> None:
    """Outputs added between runs start at the oldest kept event; removed ones are reported."""
    log = Log()
    q = DiskQueue(settings(tmp_path), ["a"])
    q.put([ev(i) for i in range(3)])
    q.shutdown()
    q2 = DiskQueue(settings(tmp_path), ["b"], logger=log)
    assert [n_of(e) for e in drain(q2, "b")] == [0, 1, 2]
    assert any("no longer configured" in m for _, m, _ in log.lines)


# -- damage -------------------------------------------------------------------------
def _three_segments(path: Path) -> list[Path]:
    """Three sealed segments of 10 events each (0-9, 10-19, 20-29)."""
    q = DiskQueue(settings(path, segment_size=4096), ["out"])
    for i in range(3):
        q.put([ev(j) for j in range(i * 10, i * 10 + 10)])
        with q._cond:
            q._seal_write_segment()
    q.shutdown()
    segs = sorted(path.glob("*.seg"), key=lambda p: int(p.stem))
    assert len(segs) == 3
    return segs


def test_a_truncated_segment_keeps_its_readable_start_and_the_segments_after_it(tmp_path: Path) -> None:
    """Truncation: the frames before the cut and every later segment are delivered."""
    segs = _three_segments(tmp_path)
    size = segs[1].stat().st_size
    os.truncate(segs[1], size // 2)
    log = Log()
    q = DiskQueue(settings(tmp_path), ["out"], logger=log)
    got = [n_of(e) for e in drain(q, "out")]
    assert got[:10] == list(range(10)) and got[-10:] == list(range(20, 30))
    lost = 30 - len(got)
    assert 0 < lost < 10 and got[10:-10] == list(range(10, 10 + 10 - lost))
    assert q.stats()["queue.disk.damaged_segments"] == 1
    assert q.stats()["queue.disk.events_lost_damage"] == lost
    assert any("damaged" in m for m in log.errors())


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path: Path) -> None:
    """A changed byte in a frame: reading that segment stops there, the next one is read."""
    segs = _three_segments(tmp_path)
    data = bytearray(segs[0].read_bytes())
    data[segment.HEADER_SIZE + 30] ^= 0x40  # inside the first frame's document
    segs[0].write_bytes(bytes(data))
    q = DiskQueue(settings(tmp_path), ["out"], logger=Log())
    assert [n_of(e) for e in drain(q, "out")] == list(range(10, 30))
    assert q.stats()["queue.disk.events_lost_damage"] == 10


def test_a_torn_last_frame_is_cut_off(tmp_path: Path) -> None:
    """A crash mid-write leaves part of a frame: the whole frames before it are delivered."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(5)])
    seg = next(tmp_path.glob("*.seg"))
    frame = bytearray()
    segment.encode_frame(ev(5), frame)
    with open(seg, "ab") as fh:
        fh.write(bytes(frame[: len(frame) // 2]))
    del q
    log = Log()
    q2 = DiskQueue(settings(tmp_path), ["out"], logger=log)
    assert [n_of(e) for e in drain(q2, "out")] == [0, 1, 2, 3, 4]
    assert any("torn frame" in str(kw.get("reason")) for _, _, kw in log.lines)
    q2.put([ev(6)])  # writing goes on in a new segment
    assert [n_of(e) for e in drain(q2, "out")] == [6]


def test_a_segment_with_a_bad_header_is_skipped(tmp_path: Path) -> None:
    """An unreadable header: the segment is reported and removed, the others delivered."""
    segs = _three_segments(tmp_path)
    segs[1].write_bytes(b"garbage" * 10)
    q = DiskQueue(settings(tmp_path), ["out"], logger=Log())
    assert [n_of(e) for e in drain(q, "out")] == list(range(10)) + list(range(20, 30))
    assert q.consumer("out").lost_damage == 10


def test_damage_appearing_while_running_is_skipped(tmp_path: Path) -> None:
    """A segment damaged after start (disk error): the reader reports it and moves on."""
    q = DiskQueue(settings(tmp_path, segment_size=4096), ["out"], logger=Log(), window=0)  # read from disk
    for i in range(3):
        q.put([ev(j) for j in range(i * 10, i * 10 + 10)])
        with q._cond:
            q._seal_write_segment()
    first = sorted(tmp_path.glob("*.seg"), key=lambda p: int(p.stem))[0]
    data = bytearray(first.read_bytes())
    data[-10] ^= 0xFF  # the last frame's checksum
    first.write_bytes(bytes(data))
    assert [n_of(e) for e in drain(q, "out")] == list(range(9)) + list(range(10, 30))
    assert q.wait_empty(0)


def test_a_corrupt_state_file_resends_everything_kept(tmp_path: Path) -> None:
    """Unreadable state.json: reported, and every kept event is sent again (no loss)."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(3)])
    q.consumer("out").settled(q.consumer("out").get(1)[0])  # type: ignore[index]
    del q
    (tmp_path / "state.json").write_bytes(b"{not json")
    log = Log()
    q2 = DiskQueue(settings(tmp_path), ["out"], logger=log)
    assert [n_of(e) for e in drain(q2, "out")] == [0, 1, 2]
    assert log.errors()


# -- size limits ------------------------------------------------------------------------
def test_max_size_blocks_a_replay_until_outputs_free_space(tmp_path: Path) -> None:
    """block=True: put waits for segments to be settled and deleted, then goes on."""
    q = DiskQueue(settings(tmp_path, max_size=8192, segment_size=4096), ["out"])
    big = [ev(i) for i in range(400)]
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(q.put(big, block=True)))
    t.start()
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while len(seen) < 400 and time.monotonic() < deadline:
        assert q.size <= 8192
        seen += [n_of(e) for e in drain(q, "out")]
    t.join(5)
    assert done == [400] and seen == list(range(400))
    assert q.stats()["queue.disk.dropped_full"] == 0


def test_max_size_drops_and_counts_in_live_capture(tmp_path: Path) -> None:
    """block=False: what does not fit is dropped and counted, at once."""
    q = DiskQueue(settings(tmp_path, max_size=8192, segment_size=4096), ["out"])
    accepted = q.put([ev(i) for i in range(400)], block=False)
    assert 0 < accepted < 400
    assert q.stats()["queue.disk.dropped_full"] == 400 - accepted
    assert q.size <= 8192
    assert [n_of(e) for e in drain(q, "out")] == list(range(accepted))


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    with tmpfs(tmp_path / "mnt", size="256k") as mnt:
        yield mnt


def test_a_full_disk_drops_live_events_counted_and_stays_readable(tiny_tmpfs: Path) -> None:
    """ENOSPC: the partial write is cut back, the rest dropped and counted, no segment damaged."""
    log = Log()
    q = DiskQueue(settings(tiny_tmpfs, segment_size=1 << 20, max_size=0), ["out"], logger=log)
    total = 0
    for i in range(100):
        total += q.put([ev(j) for j in range(i * 100, i * 100 + 100)], block=False)
    stats = q.stats()
    assert stats["queue.disk.dropped_write_error"] == 10_000 - total > 0
    assert any("writing events failed" in m for m in log.errors())
    assert [n_of(e) for e in drain(q, "out")] == list(range(total))
    q.shutdown()
    q2 = DiskQueue(settings(tiny_tmpfs, segment_size=1 << 20, max_size=0), ["out"], logger=log)
    assert q2.stats()["queue.disk.damaged_segments"] == 0


def test_a_full_disk_makes_a_replay_wait_for_outputs(tiny_tmpfs: Path) -> None:
    """ENOSPC with events still queued: a replay waits for them to be settled, then writes."""
    q = DiskQueue(settings(tiny_tmpfs, segment_size=32 * 1024, max_size=0, retry_interval=0.05,
                           max_retry_interval=0.2), ["out"], logger=Log())
    n = 4000  # about 400 KB of frames: more than the 256 KB disk
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(q.put([ev(i) for i in range(n)], block=True)))
    t.start()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while len(seen) < n and time.monotonic() < deadline:
        seen += [n_of(e) for e in drain(q, "out")]
    t.join(5)
    assert done == [n] and seen == list(range(n))


# -- files ------------------------------------------------------------------------------
def test_files_are_private(tmp_path: Path) -> None:
    """The folder is 0700, segments and state 0600, whatever the umask."""
    old = os.umask(0)
    try:
        path = tmp_path / "dq"
        q = DiskQueue(settings(path), ["out"])
        q.put([ev(1)])
        q.shutdown()
        q = DiskQueue(settings(path), ["out"])
        q.put([ev(2)])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    files = list(path.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_sizes_are_read_as_beats_writes_them() -> None:
    """max_size/segment_size: plain bytes or Beats' units."""
    assert parse_size("10GB") == 10 * 1000**3
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size(4096) == 4096
    with pytest.raises(ValueError):
        parse_size("ten")
    with pytest.raises(ValueError, match="twice"):
        DiskQueueSettings(path="x", max_size=10_000_000, segment_size=6_000_000)
    assert DiskQueueSettings(path="x", max_size=10 * 1000**3).segment_size == 1000**3


# -- the pipeline's calls at shutdown ----------------------------------------------------
class _Deadline:
    def __init__(self) -> None:
        self.at: float | None = None

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def wait_time(self, poll: float) -> float:
        return poll if self.at is None else max(0.0, min(poll, self.at - time.monotonic()))


def test_a_blocked_put_gives_up_at_the_shutdown_deadline(tmp_path: Path) -> None:
    """max_size reached and no output settling: put returns what it wrote once the deadline passes."""
    deadline = _Deadline()
    q = DiskQueue(settings(tmp_path, max_size=8192, segment_size=4096), ["out"], deadline=deadline)
    deadline.at = time.monotonic() + 0.5
    start = time.monotonic()
    accepted = q.put([ev(i) for i in range(400)], block=True)
    assert 0 < accepted < 400 and time.monotonic() - start < 3
    assert not q.wait_empty() and not q.consumer("out").wait_empty()


def test_requeued_events_wait_for_their_time_and_new_ones_go_meanwhile(tmp_path: Path) -> None:
    """requeue(not_before): the backoff of a retried batch does not hold events behind it."""
    q = DiskQueue(settings(tmp_path), ["out"])
    q.put([ev(i) for i in range(4)])
    c = q.consumer("out")
    first, _ = c.get(2)
    c.requeue(first, 1, not_before=time.monotonic() + 0.3)
    second, retries = c.get(10, timeout=1)
    assert retries == 0 and [n_of(e) for e in second] == [2, 3]
    again, retries = c.get(10, timeout=1)
    assert retries == 1 and [n_of(e) for e in again] == [0, 1]


def test_take_all_stops_an_output_and_keeps_its_events_for_the_next_start(tmp_path: Path) -> None:
    """take_all (shutdown gave up): counts what was waiting, hands out nothing more, deletes nothing."""
    q = DiskQueue(settings(tmp_path), ["es", "file"])
    q.put([ev(i) for i in range(10)])
    drain(q, "file")
    es = q.consumer("es")
    batch, _ = es.get(3)
    assert es.take_all() == 7
    assert es.get(10, timeout=0.1) is None
    es.settled(batch[:1])  # an in-flight batch still settles
    es.requeue(batch[1:], 1)
    q.shutdown()
    q2 = DiskQueue(settings(tmp_path), ["es", "file"])
    assert [n_of(e) for e in drain(q2, "es")] == list(range(1, 10))
    assert drain(q2, "file") == []
