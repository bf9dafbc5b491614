"""Transactions whose capture time cannot be rendered as it is (before year 1, from year 10000
on) are kept, with clamped times, instead of vanishing into an internal error counter."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pybeat.api import Event
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.timefmt import MAX_NS, MIN_NS, OUT_OF_RANGE_NOTE, format_ts, note_out_of_range
from tests.conftest import PCAPS, REPO

PYBEAT = [sys.executable, "-m", "pybeat.cli"]


@pytest.mark.parametrize(
    "ns, text",
    [
        (-1, "1969-12-31T23:59:59.999Z"),  # was "" (the cache's empty key matched -1 ms)
        (-1_000_000_000_000_000_000, "1938-04-24T22:13:20.000Z"),
        (MIN_NS, "0001-01-01T00:00:00.000Z"),
        (MIN_NS - 1, "0001-01-01T00:00:00.000Z"),
        (-(10**30), "0001-01-01T00:00:00.000Z"),  # was OverflowError
        (MAX_NS, "9999-12-31T23:59:59.999Z"),
        (MAX_NS + 1, "9999-12-31T23:59:59.999Z"),  # was "10000-01-01..."
        (10**30, "9999-12-31T23:59:59.999Z"),  # was OverflowError
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123Z"),
    ],
)
def test_format_ts_never_raises_and_always_gives_four_digit_years(ns: int, text: str) -> None:
    """Every integer renders as an RFC 3339 time with a four-digit year (clamped if needed)."""
    format_ts(ns - 1_000_000)  # a neighbour first: the cache must not answer for the wrong time
    assert format_ts(ns) == text


def test_the_note_is_added_once_and_kept_with_other_notes() -> None:
    """note_out_of_range: nothing for a usual time; the note beside an existing one."""
    ok = Event(1_700_000_000 * 10**9, {"a": 1})
    note_out_of_range(ok)
    assert "error" not in ok.fields
    bad = Event(10**30, {"error": {"message": "Response: received without an associated Query"}})
    note_out_of_range(bad)
    note_out_of_range(bad)
    assert bad.fields["error"]["message"] == ["Response: received without an associated Query", OUT_OF_RANGE_NOTE]
    raw = Event(-(10**30), None, raw=b'{"dns":{"id":1}}')
    note_out_of_range(raw)
    assert raw.fields == {"dns": {"id": 1}, "error": {"message": OUT_OF_RANGE_NOTE}}


def _pcapng_with_offset(src: Path, dst: Path, offset_s: int) -> int:
    """``src`` (classic pcap, Ethernet) as pcapng whose interface has ``if_tsoffset`` seconds."""
    frames = [(ts, bytes(f)) for ts, _, f in PcapFileSource(str(src))]
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    opts = struct.pack("<HHq", 14, 8, offset_s) + struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 0, 0)
    idb_len = 16 + len(opts) + 4
    idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, 65535) + opts + struct.pack("<I", idb_len)
    out = bytearray(shb + idb)
    for ts, frame in frames:
        pad = (-len(frame)) % 4
        blen = 32 + len(frame) + pad
        out += struct.pack("<IIIIIII", 6, blen, 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
        out += frame + b"\0" * pad + struct.pack("<I", blen)
    dst.write_bytes(bytes(out))
    return len(frames)


@pytest.mark.parametrize("offset_s", [10**12, -(10**12)])  # about year 33,700 and 29,700 BC
def test_transactions_with_out_of_range_times_are_kept(tmp_path: Path, offset_s: int) -> None:
    """A capture whose times are far out of range gives the same transactions as the original,
    with clamped @timestamp and event.start and the note in error.message, not none."""
    counts = []
    stamps: list[str] = []
    for name, offset in (("plain", 0), ("far", offset_s)):
        pcap = tmp_path / f"{name}.pcapng"
        _pcapng_with_offset(PCAPS / "dns_udp_mixed.pcap", pcap, offset)
        out = tmp_path / name
        r = subprocess.run(
            [*PYBEAT, "run", "-c", str(REPO / "packaging" / "sample" / "pybeat.yml"), "-t", "-I", str(pcap),
             "-E", f"output.file.path={out}", "--path.data", str(tmp_path / "data")],
            capture_output=True, timeout=120, cwd=REPO,
        )
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        docs = [json.loads(x) for f in out.glob("*.ndjson") for x in f.read_bytes().splitlines()]
        counts.append(len(docs))
        notes = [d.get("error", {}).get("message") for d in docs]
        if offset:
            stamps = sorted({d["@timestamp"] for d in docs})
            assert all(n == OUT_OF_RANGE_NOTE or (isinstance(n, list) and OUT_OF_RANGE_NOTE in n) for n in notes)
        else:
            assert not any(n == OUT_OF_RANGE_NOTE or (isinstance(n, list) and OUT_OF_RANGE_NOTE in n) for n in notes)
    assert counts[0] > 100 and counts[1] == counts[0]
    assert stamps == ["9999-12-31T23:59:59.999Z" if offset_s > 0 else "0001-01-01T00:00:00.000Z"]
