"""pybeat: a Packetbeat-compatible network agent in Python, built for DNS security monitoring.

The plugin interface is :mod:`pybeat.api`; the flow of a packet is described in ARCHITECTURE.md.
"""

from pybeat.version import __version__

__all__ = ["__version__"]
