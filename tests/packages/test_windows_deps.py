"""Every dependency of pybeat resolves to a wheel for 64-bit Windows (the Windows zip's
wheelhouse is made the same way): `pip download --platform win_amd64 --only-binary=:all:`.

pip evaluates environment markers for the interpreter it runs on, so the requirement list is
taken from pyproject.toml and its markers are evaluated here for Windows (that is how the
Windows-only pywin32 gets in). Needs PyPI.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LINUX: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
WINDOWS = {**LINUX, "sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"}


def windows_requirements() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    found = []
    for dep in deps:
        req = Requirement(dep)
        if req.marker is None or req.marker.evaluate(WINDOWS):
            req.marker = None
            found.append(str(req))
    return found


def test_pywin32_is_a_windows_only_dependency() -> None:
    """pywin32 is required on Windows and nowhere else."""
    names = {Requirement(r).name for r in windows_requirements()}
    assert "pywin32" in names
    with (REPO / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    (pywin32,) = [Requirement(d) for d in deps if Requirement(d).name == "pywin32"]
    assert pywin32.marker is not None and not pywin32.marker.evaluate({**LINUX, "sys_platform": "linux"})


@pytest.mark.parametrize("python_version", ["3.11", "3.12", "3.13"])
def test_every_dependency_has_a_win_amd64_wheel(tmp_path: Path, python_version: str) -> None:
    """pip resolves pybeat's whole dependency tree to wheels for win_amd64 on CPython 3.11-3.13."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--dest", str(tmp_path),
         "--only-binary=:all:", "--platform", "win_amd64", "--python-version", python_version,
         *windows_requirements()],
        capture_output=True, text=True, timeout=500,
    )
    assert proc.returncode == 0, proc.stderr
    wheels = [p.name for p in tmp_path.iterdir()]
    tag = "cp" + python_version.replace(".", "")
    assert any(w.startswith("pywin32-") and f"-{tag}-" in w and w.endswith("-win_amd64.whl") for w in wheels)
    assert all(w.endswith(".whl") for w in wheels)
