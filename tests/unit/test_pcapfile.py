"""Capture file reading: pcap (µs and ns, both byte orders), pcapng, truncated files, loops."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, PcapWriter

from pybeat.capture.pcapfile import CaptureFileError, PcapFileSource


def _pkts(n=3):
    out = []
    for i in range(n):
        p = Ether() / IP() / UDP(sport=1000 + i, dport=53) / b"x"
        p.time = 1_700_000_000 + i + 0.123456
        out.append(p)
    return out


def test_classic_pcap_microseconds(tmp_path):
    path = tmp_path / "a.pcap"
    PcapWriter(str(path)).write(_pkts())
    got = list(PcapFileSource(str(path)))
    assert len(got) == 3
    assert got[0][0] == 1_700_000_000_123_456_000 and got[0][1] == 1


def test_classic_pcap_nanoseconds_and_big_endian(tmp_path):
    path = tmp_path / "ns.pcap"
    frame = bytes(Ether() / IP() / UDP())
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(">IIII", 1_700_000_000, 123_456_789, len(frame), len(frame)) + frame
    path.write_bytes(header + rec)
    (ts, link, got), = PcapFileSource(str(path))
    assert ts == 1_700_000_000_123_456_789 and link == 1 and got == frame


def test_pcapng(tmp_path):
    path = tmp_path / "a.pcapng"
    w = PcapNgWriter(str(path))
    w.write(_pkts())
    w.close()
    got = list(PcapFileSource(str(path)))
    assert [len(f) for _, _, f in got] == [len(bytes(p)) for p in _pkts()]
    assert got[1][0] == 1_700_000_001_123_456_000


def test_a_truncated_last_record_is_counted_not_raised(tmp_path):
    path = tmp_path / "cut.pcap"
    PcapWriter(str(path)).write(_pkts())
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    src = PcapFileSource(str(path))
    assert len(list(src)) == 2 and src.truncated_records == 1


def test_not_a_capture_file(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(b"hello world, not a pcap")
    with pytest.raises(CaptureFileError, match="not a pcap or pcapng"):
        PcapFileSource(str(path))
    with pytest.raises(CaptureFileError, match="cannot open"):
        PcapFileSource(str(tmp_path / "missing.pcap"))


def test_loops_shift_time_forward(tmp_path):
    path = tmp_path / "a.pcap"
    PcapWriter(str(path)).write(_pkts())
    stamps = [ts for ts, _, _ in PcapFileSource(str(path), loops=2)]
    assert len(stamps) == 6 and stamps == sorted(stamps)
