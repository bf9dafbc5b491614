"""``-I -`` and FIFOs: a capture read as a stream, record by record, as the data comes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, PcapWriter

from pybeat.capture.pcapfile import CaptureFileError, PcapFileSource
from tests.conftest import PCAPS, REPO

PYBEAT = [sys.executable, "-m", "pybeat.cli"]


def _pkts(n: int = 5) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(n):
        p = Ether() / IP() / UDP(sport=1000 + i, dport=53) / b"x"
        p.time = 1_700_000_000 + i + 0.25
        out.append(p)
    return out


def _feed(data: bytes, fd: int, pause_after: int | None = None) -> threading.Thread:
    """Write ``data`` to ``fd`` from a thread (with a pause after ``pause_after`` bytes), then close."""

    def run() -> None:
        with os.fdopen(fd, "wb") as fh:
            if pause_after is not None:
                fh.write(data[:pause_after])
                fh.flush()
                time.sleep(0.3)
                fh.write(data[pause_after:])
            else:
                fh.write(data)

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_fifo_gives_the_same_packets_as_the_file(tmp_path: Path, fmt: str) -> None:
    """A FIFO is read as a stream, and yields exactly what the same file yields."""
    path = tmp_path / f"a.{fmt}"
    if fmt == "pcap":
        PcapWriter(str(path)).write(_pkts())
    else:
        w = PcapNgWriter(str(path))
        w.write(_pkts())
        w.close()
    expected = list(PcapFileSource(str(path)))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = path.read_bytes()
    t = threading.Thread(target=lambda: fifo.write_bytes(data))
    t.start()
    src = PcapFileSource(str(fifo))
    got = [(ts, link, bytes(f)) for ts, link, f in src]
    t.join(5)
    assert got == [(ts, link, bytes(f)) for ts, link, f in expected]
    assert src.packets == 5 and src.truncated_records == 0


def test_packets_come_out_before_the_stream_ends(tmp_path: Path) -> None:
    """Streaming, not read-whole: the first packets are yielded while the writer still writes."""
    path = tmp_path / "a.pcap"
    PcapWriter(str(path)).write(_pkts())
    data = path.read_bytes()
    r, w = os.pipe()
    first_record_end = 24 + 16 + len(bytes(_pkts()[0]))
    t = _feed(data, w, pause_after=first_record_end)
    src = PcapFileSource(f"/dev/fd/{r}")
    it = iter(src)
    start = time.monotonic()
    next(it)
    assert time.monotonic() - start < 0.25  # the writer is still pausing
    assert len(list(it)) == 4
    t.join(5)
    os.close(r)


def test_a_stream_cut_mid_record_is_counted(tmp_path: Path) -> None:
    """A stream ending inside a record: the whole records, and one truncated record counted."""
    path = tmp_path / "a.pcap"
    PcapWriter(str(path)).write(_pkts())
    r, w = os.pipe()
    t = _feed(path.read_bytes()[:-5], w)
    src = PcapFileSource(f"/dev/fd/{r}")
    assert len(list(src)) == 4 and src.truncated_records == 1
    t.join(5)
    os.close(r)


def test_an_empty_stream_and_loops_on_a_stream_are_clear_errors(tmp_path: Path) -> None:
    """Nothing in the pipe, or -l on a stream: one clear error."""
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(CaptureFileError, match="stream .* is empty"):
        PcapFileSource(f"/dev/fd/{r}")
    os.close(r)
    r, w = os.pipe()
    with pytest.raises(CaptureFileError, match="read once"):
        PcapFileSource(f"/dev/fd/{r}", loops=2)
    os.close(r)
    os.close(w)


def test_run_reads_standard_input_with_dash_I(tmp_path: Path) -> None:
    """`pybeat run -I - -t` on a piped capture gives the same events as on the file."""
    pcap = PCAPS / "dns_udp_mixed.pcap"
    cfg = REPO / "packaging" / "sample" / "pybeat.yml"
    outs = []
    for how in ("file", "stdin"):
        out = tmp_path / how
        args = [*PYBEAT, "run", "-c", str(cfg), "-t", "-E", f"output.file.path={out}", "--path.data", str(tmp_path / "data")]
        if how == "file":
            r = subprocess.run([*args, "-I", str(pcap)], capture_output=True, timeout=120, cwd=REPO)
        else:
            with open(pcap, "rb") as fh:
                r = subprocess.run([*args, "-I", "-"], stdin=fh, capture_output=True, timeout=120, cwd=REPO)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        (f,) = out.glob("*.ndjson")
        docs = [json.loads(line) for line in f.read_bytes().splitlines()]
        for d in docs:
            del d["agent"]["ephemeral_id"]  # one per run
        outs.append(sorted(json.dumps(d, sort_keys=True) for d in docs))
    assert outs[0] == outs[1] and len(outs[0]) > 100
