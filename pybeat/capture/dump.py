"""Write captured frames to a classic pcap file (``--dump``).

Owns: the writer only. Nanosecond-resolution pcap (magic ``a1b23c4d``), as Packetbeat's dumper
writes, readable by tcpdump, tshark and ``PcapFileSource``. Writes are buffered; ``close``
flushes. The file is created 0600 whatever the umask (it holds raw traffic). Packetbeat names the file ``<prefix>-<yyyyMMddHHmmss>.pcap``: ``dump_file_name`` does
that for callers that take a prefix.
"""

from __future__ import annotations

import os
import struct
import time
from typing import BinaryIO

from pybeat.capture.errors import CaptureError

_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
PCAP_MAGIC_NS = 0xA1B23C4D


def dump_file_name(prefix: str, now: float | None = None) -> str:
    """Packetbeat's ``--dump`` naming: ``<prefix>-<yyyyMMddHHmmss>.pcap`` (local time)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{prefix}-{stamp}.pcap"


class PcapWriter:
    """A pcap file being written: ``write(ts_ns, frame)``, then ``close()``."""

    def __init__(self, path: str, link_type: int, snaplen: int = 262144):
        self.path = path
        self.packets = 0
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # also when the file was there before
            self._fh: BinaryIO | None = os.fdopen(fd, "wb")  # closed in close()
        except OSError as exc:
            raise CaptureError(f"cannot open dump file {path!r}: {exc.strerror}") from exc
        self._snaplen = snaplen
        self._fh.write(_FILE_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, link_type))

    def write(self, ts_ns: int, frame: bytes, orig_len: int | None = None) -> None:
        fh = self._fh
        if fh is None:
            return
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        caplen = len(frame)
        fh.write(_RECORD_HEADER.pack(sec & 0xFFFFFFFF, nsec, caplen, orig_len or caplen))
        fh.write(frame)
        self.packets += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
