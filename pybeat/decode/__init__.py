"""Frames to datagrams and streams: link layers, IPv4/IPv6 (with fragment reassembly), UDP,
TCP stream reassembly, and dispatch to protocol analyzers by port.

No protocol knowledge lives here beyond the port map. Everything is sans-IO and driven by
packet time.
"""

from pybeat.decode.decoder import Decoder, DecoderLimits
from pybeat.decode.ipfrag import FragmentReassembler
from pybeat.decode.tcp import TcpReassembler

__all__ = ["Decoder", "DecoderLimits", "FragmentReassembler", "TcpReassembler"]
