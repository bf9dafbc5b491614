"""Packet sources: capture files and live interfaces.

This is the only package that reads packets from the outside world. Every source yields
``(ts_ns, link_type, frame_bytes)`` and counts what it could not read. Live capture:
``live.open_live`` (af_packet ring or libpcap), ``devices`` (listing and resolving devices),
``bpf.build_filter`` (Packetbeat's generated filter), ``dump.PcapWriter`` (``--dump``).
"""

from pybeat.capture.errors import CaptureError
from pybeat.capture.pcapfile import CaptureFileError, PcapFileSource

__all__ = ["CaptureError", "CaptureFileError", "PcapFileSource"]
