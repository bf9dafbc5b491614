"""Plugin packages installed for a test, each into a folder of its own that a ``pybeat``
subprocess sees through PYTHONPATH: the shared Python environment is never changed (a broken
or clashing plugin installed there would break every other test's ``pybeat plugins``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import need

HERE = Path(__file__).resolve().parent
PACKAGES = ("legacy01", "future20", "broken", "twin")


class Installed:
    """``pip install --no-deps --target`` of the packages under tests/plugin_compat, once each
    per test session (from a copy: the build leaves files beside its sources)."""

    def __init__(self, root: Path):
        self.root = root
        self.sites: dict[str, Path] = {}

    def site(self, name: str) -> Path:
        if name not in self.sites:
            src = self.root / "src" / name
            shutil.copytree(HERE / name, src)
            target = self.root / "site" / name
            done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                                   str(target), str(src)], capture_output=True, text=True, timeout=600)
            need(done.returncode == 0, f"pip install of tests/plugin_compat/{name} ({done.stderr.strip()[-300:]})")
            self.sites[name] = target
        return self.sites[name]

    def env(self, *names: str) -> dict[str, str]:
        """The environment of a ``pybeat`` that also has these packages installed."""
        paths = [str(self.site(n)) for n in names]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {"PYTHONPATH": os.pathsep.join(paths)}
