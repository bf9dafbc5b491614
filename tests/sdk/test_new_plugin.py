"""``pybeat new-plugin KIND NAME`` writes a package whose own tests and ``mypy --strict`` pass
out of the box, once installed (as its README says)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybeat.testing import run_pybeat
from tests.conftest import need
from tests.sdk.test_example_plugin import pybeat_imports


@pytest.mark.parametrize("kind", ["protocol", "output", "processor", "detector"])
def test_each_kind_installs_and_passes_its_own_tests(kind: str, tmp_path: Path) -> None:
    name = f"my_{kind}"
    done = run_pybeat(["new-plugin", kind, name, "--dir", str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr
    root = tmp_path / f"pybeat-my-{kind}"
    assert f"wrote {root}" in done.stdout
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(root)], capture_output=True, text=True, timeout=600)
    need(install.returncode == 0, f"pip install of the generated package ({install.stderr.strip()[-300:]})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    listed = run_pybeat(["plugins"], tmp_path, env=env)
    assert any(line.split()[:2] == [kind, name] and line.endswith(" ok") for line in listed.stdout.splitlines()), \
        listed.stdout
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"], cwd=root,
                           env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "PASSED tests/test_typing.py::test_mypy_strict" in tests.stdout
    # written against the public surface only, as the example is
    assert {m for p in (root / "src").rglob("*.py") for m in pybeat_imports(p)} == {"pybeat.api"}
    assert {m for p in (root / "tests").rglob("*.py") for m in pybeat_imports(p)} == {"pybeat.api", "pybeat.testing"}


def test_names_that_cannot_be_used_are_refused(tmp_path: Path) -> None:
    taken = run_pybeat(["new-plugin", "protocol", "dns", "--dir", str(tmp_path)], tmp_path)
    assert taken.returncode == 1 and "a protocol plugin named 'dns' is installed already" in taken.stderr
    bad = run_pybeat(["new-plugin", "output", "My-Out", "--dir", str(tmp_path)], tmp_path)
    assert bad.returncode == 1 and "cannot name a plugin" in bad.stderr
    assert run_pybeat(["new-plugin", "processor", "twice", "--dir", str(tmp_path)], tmp_path).returncode == 0
    again = run_pybeat(["new-plugin", "processor", "twice", "--dir", str(tmp_path)], tmp_path)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "pybeat-twice"]
