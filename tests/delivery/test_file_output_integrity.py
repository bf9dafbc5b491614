"""The file output counts what is really in its files: partial writes, torn lines, removed
files and folders, rotation, permissions, clear errors for paths it cannot write to."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pybeat.api import BeatInfo, Event, PluginSetupError
from pybeat.outputs.file.plugin import FileOutputConfig, plugin as filep
from pybeat.testing import OutputHarness, RecordingLogger, Settlement
from tests.delivery.fs import fill, tmpfs


class Log:
    """What the output logged, as (level, message, fields), read from the harness's logger."""

    def __init__(self) -> None:
        self.source: RecordingLogger | None = None

    @property
    def lines(self) -> list[tuple[str, str, dict[str, Any]]]:
        records = self.source.records if self.source is not None else []
        return [(r.level, r.event, dict(r.fields)) for r in records]


class Output:
    """The file output's one client, fed through ``pybeat.testing.OutputHarness`` (every batch
    checked to be settled exactly once)."""

    def __init__(self, harness: OutputHarness):
        self.harness = harness
        (self.client,) = harness.clients

    def publish(self, evs: list[Event]) -> Settlement:
        return self.harness.publish(evs)

    def close(self) -> None:
        self.harness.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def make(path: Path, log: Log | None = None, **cfg: Any) -> Output:
    cfg.setdefault("filename", "pb")
    harness = OutputHarness(filep, FileOutputConfig(path=str(path), **cfg), name="file",
                            beat=BeatInfo(version="0.1.0"))
    if log is not None:
        log.source = harness.logger
    return Output(harness)


def events(n: int, start: int = 0, pad: int = 100) -> list[Event]:
    return [Event(1_700_000_000_000_000_000 + i, {"i": i, "pad": "x" * pad}) for i in range(start, start + n)]


def publish(out: Output, evs: list[Event]) -> dict[str, int]:
    s = out.publish(evs)
    return {"acked": s.acked, "retry": len(s.retried), "dropped": s.dropped}


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of every output file, each parsed (fails on a torn or glued line)."""
    docs = []
    for f in sorted(path.glob("pb-*.ndjson")):
        data = f.read_bytes()
        assert not data or data.endswith(b"\n"), f"{f} ends with a partial line"
        docs += [json.loads(line) for line in data.splitlines()]
    return docs


def test_a_batch_failing_part_way_is_counted_as_it_is_on_disk(tmp_path: Path) -> None:
    """Disk full mid-batch: the lines in the file are acked, the rest dropped, no torn line."""
    with tmpfs(tmp_path / "mnt", size="64k") as mnt:
        out = make(mnt, log=Log())
        seen = publish(out, events(1000))  # ~150 KB: more than the disk
        on_disk = lines(mnt)
        assert seen["acked"] == len(on_disk) > 0 and seen["dropped"] == 1000 - len(on_disk)
        assert [d["i"] for d in on_disk] == list(range(len(on_disk)))
        assert out.write_errors == 1 and out.written == len(on_disk)


def test_the_next_batch_after_a_failed_write_is_not_glued_to_a_torn_line(tmp_path: Path) -> None:
    """After ENOSPC and freed space, the next lines start on a line of their own."""
    with tmpfs(tmp_path / "mnt", size="64k") as mnt:
        out = make(mnt, log=Log())
        filler = fill(mnt)
        os.truncate(filler, max(0, filler.stat().st_size - 10000))  # room for about 50 lines
        first = publish(out, events(200))
        assert 0 < first["acked"] < 200
        filler.unlink()
        second = publish(out, events(5, start=1000))
        assert second == {"acked": 5, "retry": 0, "dropped": 0}
        docs = lines(mnt)
        assert [d["i"] for d in docs] == list(range(first["acked"])) + list(range(1000, 1005))


def test_a_torn_last_line_left_by_a_crash_is_cut_back_on_open(tmp_path: Path) -> None:
    """A file ending mid-line (a crash) is cut back to its last whole line before appending."""
    out = make(tmp_path, rotate_on_startup=False)
    publish(out, events(3))
    out.close()
    (f,) = tmp_path.glob("pb-*.ndjson")
    with open(f, "ab") as fh:
        fh.write(b'{"@timestamp":"2023-11-14T22:13:20.000Z","i":')
    log = Log()
    out = make(tmp_path, log=log, rotate_on_startup=False)
    publish(out, events(2, start=10))
    out.close()
    assert [d["i"] for d in lines(tmp_path)] == [0, 1, 2, 10, 11]
    assert any("partial line" in m for _, m, _ in log.lines)


def test_a_removed_file_is_noticed_and_recreated(tmp_path: Path) -> None:
    """rm of the current file mid-run: the next batch goes to a new file, with a warning."""
    log = Log()
    out = make(tmp_path, log=log)
    publish(out, events(3))
    for f in tmp_path.glob("pb-*.ndjson"):
        f.unlink()
    assert publish(out, events(2, start=3))["acked"] == 2
    assert [d["i"] for d in lines(tmp_path)] == [3, 4]
    assert out.recreated == 1 and out.removed_externally == 3
    assert any("removed or replaced" in m for _, m, _ in log.lines)


def test_a_removed_folder_is_recreated(tmp_path: Path) -> None:
    """rm -rf of the output folder mid-run: recreated (0700) and written to."""
    path = tmp_path / "out" / "events"
    out = make(path, log=Log())
    publish(out, events(3))
    shutil.rmtree(tmp_path / "out")
    assert publish(out, events(2, start=3))["acked"] == 2
    assert [d["i"] for d in lines(path)] == [3, 4]
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_the_folder_is_recreated_when_it_goes_missing_before_a_rotation(tmp_path: Path) -> None:
    """A rotation into a folder that was removed recreates it."""
    out = make(tmp_path / "ev", log=Log(), rotate_every_kb=1, number_of_files=50)
    publish(out, events(5))
    shutil.rmtree(tmp_path / "ev")
    seen = publish(out, events(30, start=5))  # spans several files
    assert seen["acked"] == 30
    assert [d["i"] for d in lines(tmp_path / "ev")] == list(range(5, 35))


def test_events_in_rotated_away_files_are_counted(tmp_path: Path) -> None:
    """Rotation deleting files with this run's events shows in events.rotated_away (#16)."""
    out = make(tmp_path, rotate_every_kb=2, number_of_files=3)  # the agent's ctx.metrics: output.file.*
    for i in range(20):
        publish(out, events(10, start=i * 10))
    kept = len(lines(tmp_path))
    snap = out.harness.metrics()
    assert out.written == 200
    assert snap["output.file.events.rotated_away"] == 200 - kept > 0


def test_files_and_folders_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """0600 files, 0700 folders (parents included) unless permissions says otherwise."""
    old = os.umask(0)
    try:
        out = make(tmp_path / "a" / "b")
        publish(out, events(1))
        out2 = make(tmp_path / "c", filename="open", permissions="0644")
        publish(out2, events(1))
    finally:
        os.umask(old)
    (f,) = (tmp_path / "a" / "b").iterdir()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    (g,) = (tmp_path / "c").iterdir()
    assert stat.S_IMODE(g.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o755


def test_a_path_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    """output.file.path pointing at a file: one line naming the path, no OSError (the agent
    prints it as ``pybeat: error: output file: cannot write events to ...``)."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PluginSetupError, match=r"^cannot write events to .*afile: .*") as err:
        make(tmp_path / "afile")
    assert "\n" not in str(err.value)


def test_a_read_only_filesystem_is_one_clear_error(tmp_path: Path) -> None:
    """A read-only filesystem: one line saying so."""
    with tmpfs(tmp_path / "ro", size="64k", read_only=True) as mnt:
        with pytest.raises(PluginSetupError, match="Read-only file system"):
            make(mnt / "events")


def test_a_permission_error_is_one_clear_error(tmp_path: Path) -> None:
    """No right to create the folder (checked as an unprivileged user): one line saying so."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    code = (
        "from pybeat.api import BeatInfo, OutputContext\n"
        "from pybeat.outputs.file.plugin import FileOutputConfig, plugin\n"
        f"ctx = OutputContext(beat=BeatInfo(version='0'), metrics=None, logger=None, name='file')\n"
        "try:\n"
        f"    plugin.create(FileOutputConfig(path={str(locked / 'ev')!r}), ctx)\n"
        "except Exception as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", os.sys.executable, "-c", code],
                       capture_output=True, text=True, cwd="/")
    assert "Permission denied" in r.stdout and "cannot write events to" in r.stdout, r.stderr


def test_dump_files_are_private(tmp_path: Path) -> None:
    """--dump pcaps (raw traffic) are 0600 whatever the umask, also over an existing file."""
    from pybeat.capture.dump import PcapWriter

    old = os.umask(0)
    try:
        (tmp_path / "old.pcap").write_bytes(b"x")
        os.chmod(tmp_path / "old.pcap", 0o644)
        for name in ("new.pcap", "old.pcap"):
            with PcapWriter(str(tmp_path / name), 1) as w:
                w.write(1_700_000_000 * 10**9, b"\0" * 60)
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    finally:
        os.umask(old)
