"""ICMP and ICMPv6 protocol plugin (``type: icmp``): see :mod:`.analyzer` and ``docs/icmp_dhcp.md``."""
