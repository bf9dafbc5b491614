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


def _shb_idb() -> bytes:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    return shb + idb


@pytest.mark.parametrize("btype", [6, 2])
def test_pcapng_packet_block_shorter_than_its_header_is_counted_not_raised(tmp_path, btype):
    frame = bytes(Ether() / IP() / UDP())
    pad = (-len(frame)) % 4
    good = struct.pack("<IIIIIII", 6, 32 + len(frame) + pad, 0, 0, 1, len(frame), len(frame)) + frame + b"\0" * pad
    good += struct.pack("<I", 32 + len(frame) + pad)
    short = struct.pack("<II", btype, 16) + b"\0" * 4 + struct.pack("<I", 16)
    path = tmp_path / "short.pcapng"
    path.write_bytes(_shb_idb() + good + short)
    src = PcapFileSource(str(path))
    got = list(src)
    assert [f for _, _, f in got] == [frame] and src.truncated_records == 1
    path.write_bytes(_shb_idb() + short + good)
    src = PcapFileSource(str(path))
    assert [f for _, _, f in src] == [frame] and src.truncated_records == 1


def test_a_rejected_file_is_closed(tmp_path, monkeypatch):
    import builtins

    opened = []
    real_open = builtins.open

    def tracking_open(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        opened.append(fh)
        return fh

    monkeypatch.setattr(builtins, "open", tracking_open)
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "bad.pcap").write_bytes(b"hello world, not a pcap")
    for name in ("empty.pcap", "bad.pcap"):
        with pytest.raises(CaptureFileError):
            PcapFileSource(str(tmp_path / name))
    assert len(opened) == 2 and all(fh.closed for fh in opened)
