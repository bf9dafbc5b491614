"""The package and its tests pass ``mypy --strict`` (the settings are in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pybeat.api

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict(tmp_path: Path) -> None:
    env = dict(os.environ)
    # mypy reads an installed pybeat from site-packages (py.typed); an editable install of
    # pybeat lives in its source tree instead, which mypy is told about here.
    source = Path(pybeat.api.__file__).resolve().parent.parent
    if not str(source).startswith(sysconfig.get_paths()["purelib"]):
        env["MYPYPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
