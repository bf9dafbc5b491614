"""DHCPv4 protocol plugin (``type: dhcpv4``): see :mod:`.analyzer` and ``docs/icmp_dhcp.md``."""
