"""pybeat-ntp: an NTP protocol plugin for pybeat, written against ``pybeat.api`` only.

Pairs a client's request (mode 3) with the server's response (mode 4) as RFC 5905 does (the
response's origin timestamp is the request's transmit timestamp) and publishes one ``ntp``
event per exchange: the server's stratum, reference ID, poll and precision, its timestamps, and
the clock offset and round-trip delay computed from the four timestamps. Unanswered requests,
responses to nothing seen, other modes (symmetric, broadcast, ntpq's control, ntpdc's private
``monlist``) and malformed datagrams are events too, with a note.
"""

from pybeat_ntp.plugin import NtpConfig, NtpPlugin, plugin

__all__ = ["NtpConfig", "NtpPlugin", "plugin"]
