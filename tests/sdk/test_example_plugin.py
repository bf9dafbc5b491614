"""The worked external plugin (examples/pybeat-ntp) as CI runs it: installed as a package of its
own (tests/tooling/plugins/setup.sh), its own test suite passing, ``mypy --strict`` included,
and written against pybeat's public surface only."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from tests.conftest import REPO, need

EXAMPLE = REPO / "examples" / "pybeat-ntp"


def installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def test_its_own_test_suite_passes_with_mypy_strict() -> None:
    need(installed("pybeat-ntp"),
         "the pybeat-ntp example installed as a package (bash tests/tooling/plugins/setup.sh)")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests"],
                          cwd=EXAMPLE, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "PASSED tests/test_typing.py::test_mypy_strict" in done.stdout
    assert "PASSED tests/test_capture.py::test_the_pybeat_command_on_the_capture" in done.stdout


def pybeat_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pybeat":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pybeat"}
    return found


def test_it_imports_only_pybeat_api_and_pybeat_testing() -> None:
    """The plugin itself uses pybeat.api only; its tests pybeat.api and pybeat.testing only."""
    plugin = {m for p in (EXAMPLE / "src").rglob("*.py") for m in pybeat_imports(p)}
    tests = {m for p in (EXAMPLE / "tests").rglob("*.py") for m in pybeat_imports(p)}
    assert plugin == {"pybeat.api"}
    assert tests <= {"pybeat.api", "pybeat.testing"} and "pybeat.testing" in tests
