"""DNS and mDNS protocol analyzer (UDP and TCP), Packetbeat-compatible events.

Public surface: :data:`pybeat.protocols.dns.plugin.plugin` (the entry point),
:func:`pybeat.protocols.dns.wire.parse_message` (the wire decoder).
"""

__all__: list[str] = []
