"""The script a Windows service process starts with: ``python.exe -I host.py run -c ...``.

Run by the base interpreter (see ``control.py``), so it first puts the venv's site-packages,
three folders above this file, at the front of ``sys.path``, processing its ``.pth`` files
(pywin32's adds its DLL folder), then hands over to the service dispatcher. Only the standard
library may be imported before that.
"""

from __future__ import annotations

import os
import site
import sys


def site_packages(script: str) -> str:
    """``...\\Lib\\site-packages`` for ``...\\Lib\\site-packages\\pybeat\\service\\host.py``."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(script))))


def use_site_packages(folder: str) -> None:
    before = list(sys.path)
    site.addsitedir(folder)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before


def main() -> None:
    use_site_packages(site_packages(__file__))
    for name in ("stdout", "stderr"):  # a service has no console: keep print() harmless
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    from pybeat.service.control import SERVICE_NAME
    from pybeat.service.runner import PybeatService, run_pybeat
    from pybeat.service.win32 import load_win32

    load_win32().serve(SERVICE_NAME, PybeatService(sys.argv[1:], run_pybeat))


if __name__ == "__main__":
    main()
