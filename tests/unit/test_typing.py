"""The code is type-checked: mypy finds no error in pybeat, the protocols or the outputs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.conftest import REPO, need


def test_mypy_is_clean():
    need(importlib.util.find_spec("mypy") is not None, "mypy (pip install -e '.[test]')")
    r = subprocess.run([sys.executable, "-m", "mypy", "pybeat", "protocols", "outputs"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
