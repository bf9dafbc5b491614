"""DHCPv6 protocol plugin (``type: dhcpv6``): see :mod:`.analyzer` and ``docs/icmp_dhcp.md``."""
