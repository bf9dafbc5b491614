"""The replay loop of a classic pcap file (``-I FILE -t``): records read and decoded in one loop.

Owns nothing of its own: it is ``PcapFileSource`` (record framing, time shift between passes,
its counters) and ``Decoder.decode`` (counters, ticks, the inline Ethernet/IPv4/UDP case)
fused into one loop for the common capture, Ethernet in classic pcap, so that a packet costs
no generator step and no extra call. Frames that are not that case go to ``Decoder.decode``
unchanged, and the other formats keep the generator: the results are the same either way
(tests/unit/test_replay_loop.py compares the two on every shared capture).
"""

from __future__ import annotations

import os
import struct
from typing import Callable

from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode.decoder import LINKTYPE_ETHERNET, Decoder

__all__ = ["replay_classic_pcap", "compiled_replay", "best_replay"]

try:  # the compiled twin of replay_classic_pcap (pybeat/_speedups.pyx), when it was built
    from pybeat._speedups import replay_classic_pcap as compiled_replay
except ImportError:  # pragma: no cover - a build without a C compiler
    compiled_replay = None


def best_replay() -> Callable[[PcapFileSource, Decoder, Callable[[], bool]], bool | None]:
    """The compiled loop when it was built, unless ``PYBEAT_PURE_PYTHON=1`` asks for the
    Python one (same results: tests/unit/test_speedups.py)."""
    if compiled_replay is not None and os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
        return compiled_replay
    return replay_classic_pcap


def replay_classic_pcap(
    source: PcapFileSource, decoder: Decoder, check: Callable[[], bool], passes: int = 0, shift: int = 0
) -> bool | None:
    """Replay ``source`` through ``decoder``; ``check`` runs every 64 packets and returns True
    to stop. None when the file is not classic pcap of Ethernet frames (nothing was read: use
    the source's iterator); else whether the whole file was read (False: stopped by ``check``).
    ``passes`` and ``shift``: the passes already made and their time shift (the compiled loop
    hands over here when its 64-bit times would overflow)."""
    layout = source.classic_layout()
    if layout is None or layout[3] != LINKTYPE_ETHERNET:
        return None
    buf, unpack, scale, link = layout
    source.link_types.add(link)
    end = len(buf)
    decode = decoder.decode
    udp4 = decoder._udp4
    tick_at = decoder._packet_tick
    n = 0
    while source.loops == 0 or passes < source.loops:
        pos = 24
        packets = nbytes = 0
        first = last = -1
        try:
            while pos + 16 <= end:
                sec, frac, caplen, _origlen = unpack(buf, pos)
                pos += 16
                if pos + caplen > end:
                    source.truncated_records += 1
                    break
                frame = buf[pos : pos + caplen]
                pos += caplen
                packets += 1
                nbytes += caplen
                last = sec * 1_000_000_000 + frac * scale
                if first < 0:
                    first = last
                ts = last + shift
                # Decoder.decode's Ethernet branch, inline (keep the two the same).
                if (
                    caplen >= 42 and frame[23] == 17 and frame[14] == 0x45 and frame[12] == 8
                    and frame[13] == 0 and not (frame[20] & 0x3F or frame[21])
                    and 28 <= ((frame[16] << 8) | frame[17]) <= caplen - 14
                ):
                    decoder.packets += 1
                    decoder.bytes += caplen
                    if ts >= decoder._next_tick:
                        tick_at(ts)
                    decoder.now_ns = ts
                    try:
                        udp4(ts, frame, (frame[16] << 8) | frame[17])
                    except (struct.error, IndexError, ValueError, OSError):
                        decoder._error("malformed")
                    except Exception as exc:
                        decoder._analyzer_failed(exc)
                else:
                    decode(ts, link, frame)
                n += 1
                if not n & 63 and check():  # as the agent's loop: flush timer, stop request
                    return False
            else:
                if pos != end:
                    source.truncated_records += 1
        finally:
            source.packets += packets
            source.bytes += nbytes
        passes += 1
        if first < 0:
            return True
        shift += last - first + 1000
    return True
