"""Packet sources: capture files (and, later, live interfaces).

This is the only package that reads packets from the outside world. Every source yields
``(ts_ns, link_type, frame_bytes)`` and counts what it could not read.
"""

from pybeat.capture.pcapfile import CaptureFileError, PcapFileSource

__all__ = ["CaptureFileError", "PcapFileSource"]
