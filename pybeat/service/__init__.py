"""pybeat as a Windows service: ``pybeat service install|remove|start|stop``.

Owns the service's name, paths and command line (``control.py``), the object the Service
Control Manager drives (``PybeatService`` in ``runner.py``) and the script the service process
starts from (``host.py``). Every pywin32 call sits behind one seam, ``win32.py``, so everything
else runs, and is tested, on Linux. Never used on Linux, where the packages install a systemd unit.
"""

from __future__ import annotations

from pybeat.service.control import SERVICE_NAME, ServicePaths, main, service_paths

__all__ = ["SERVICE_NAME", "ServicePaths", "main", "service_paths"]
