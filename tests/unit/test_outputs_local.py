"""The file and console outputs: Beats' NDJSON shape, rotation, permissions (driven with
``pybeat.testing.OutputHarness``: every batch checked to be settled exactly once)."""

from __future__ import annotations

import io
import json
import os

from pybeat.api import BeatInfo, Event
from pybeat.outputs.console.plugin import ConsoleOutputConfig, plugin as console
from pybeat.outputs.file.plugin import FileOutputConfig, plugin as filep
from pybeat.testing import OutputHarness, Settlement


class Output:
    """The output's single client (file and console outputs are one stream each), fed through
    ``OutputHarness``."""

    def __init__(self, plugin, cfg, **kw):
        self.harness = OutputHarness(plugin, cfg, name="x", beat=BeatInfo(version="0.1.0"), **kw)
        (self.client,) = self.harness.clients

    def publish(self, events) -> Settlement:
        return self.harness.publish(events)

    def close(self):
        self.harness.close()

    def __getattr__(self, name):
        return getattr(self.client, name)


def client(plugin, cfg, **kw) -> Output:
    return Output(plugin, cfg, **kw)


def events(n):
    return [Event(1_700_000_000_123_456_789 + i, {"type": "dns", "i": i, "s": "<&>"}) for i in range(n)]


def counts(s: Settlement) -> dict:
    return {"acked": s.acked, "retry": len(s.retried), "dropped": s.dropped}


def test_file_output_writes_beats_ndjson(tmp_path):
    cfg = FileOutputConfig(path=str(tmp_path), filename="pb")
    out = client(filep, cfg)
    seen = counts(out.publish(events(3)))
    out.close()
    (name,) = os.listdir(tmp_path)
    assert name.startswith("pb-") and name.endswith(".ndjson")
    lines = (tmp_path / name).read_text().splitlines()
    doc = json.loads(lines[0])
    assert doc["@timestamp"] == "2023-11-14T22:13:20.123Z"
    assert doc["@metadata"] == {"beat": "packetbeat", "type": "_doc", "version": "0.1.0"}
    assert doc["s"] == "<&>" and len(lines) == 3 and seen == {"acked": 3, "retry": 0, "dropped": 0}
    assert oct(os.stat(tmp_path / name).st_mode & 0o777) == "0o600"


def test_file_output_rotates_and_keeps_number_of_files(tmp_path):
    cfg = FileOutputConfig(path=str(tmp_path), filename="pb", rotate_every_kb=1, number_of_files=3)
    out = client(filep, cfg)
    for _ in range(10):
        out.publish(events(10))
    out.close()
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3
    assert all(os.path.getsize(tmp_path / f) <= 1024 for f in files)


def test_file_output_rotates_on_startup(tmp_path):
    cfg = FileOutputConfig(path=str(tmp_path), filename="pb")
    for _ in range(2):
        out = client(filep, cfg)
        out.publish(events(1))
        out.close()
    assert len(os.listdir(tmp_path)) == 2


def test_unencodable_event_is_dropped_and_counted(tmp_path):
    out = client(filep, FileOutputConfig(path=str(tmp_path)))
    bad = Event(0, {"x": 2**70})  # orjson refuses integers beyond 64 bits
    seen = counts(out.publish([bad, *events(1)]))
    assert seen == {"acked": 1, "retry": 0, "dropped": 1}


def test_console_output_pretty(tmp_path):
    buf = io.BytesIO()
    out = client(console, ConsoleOutputConfig(pretty=True), stdout=buf)
    out.publish(events(1))
    text = buf.getvalue().decode()
    assert text.startswith("{\n") and json.loads(text)["type"] == "dns"


def test_a_write_error_drops_the_batch_counted_and_the_output_recovers(tmp_path):
    """As Beats' file output: a failed write is not retried forever (that would hold a replay on
    a full disk); the batch is dropped and counted, and the next batch is written once there is
    room again (a real full disk: a tmpfs)."""
    from tests.delivery.fs import fill, tmpfs

    with tmpfs(tmp_path / "mnt", size="64k") as mnt:
        out = client(filep, FileOutputConfig(path=str(mnt), filename="pb"))
        filler = fill(mnt)
        seen = counts(out.publish(events(3)))
        assert seen == {"acked": 0, "retry": 0, "dropped": 3} and out.write_errors == 1
        filler.unlink()
        seen2 = counts(out.publish(events(2)))
        out.close()
        assert seen2 == {"acked": 2, "retry": 0, "dropped": 0}
        assert sum(len(f.read_text().splitlines()) for f in mnt.glob("pb-*")) == 2


def test_metadata_written_by_a_processor_is_merged_not_duplicated():
    from pybeat.codec import Codec

    e = Event(1_700_000_000_000_000_000, {"type": "dns", "@metadata": {"pipeline": "dns-pipeline"}})
    text = Codec(BeatInfo(version="0.1.0")).encode(e).decode()
    assert text.count('"@metadata"') == 1
    assert json.loads(text)["@metadata"] == {"beat": "packetbeat", "type": "_doc", "version": "0.1.0", "pipeline": "dns-pipeline"}
