"""Fixtures for the packaging tests: ``packaging/build.sh`` run once per session into a
temporary dist directory, and (for the upgrade test) a copy of the checkout with the version
bumped, built again (.deb only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, need, need_tool

PYTHON311 = "/usr/bin/python3.11"


@dataclass(frozen=True)
class Built:
    version: str
    dist: Path

    @property
    def deb(self) -> Path:
        return self.dist / f"pybeat_{self.version}_amd64.deb"

    @property
    def rpm(self) -> Path:
        return self.dist / f"pybeat-{self.version}-1.x86_64.rpm"

    @property
    def windows_zip(self) -> Path:
        return self.dist / f"pybeat-{self.version}-windows-x86_64.zip"

    @property
    def sdist(self) -> Path:
        return self.dist / f"pybeat-{self.version}.tar.gz"

    def wheel(self) -> Path:
        (found,) = self.dist.glob(f"pybeat-{self.version}-cp311-cp311-*.whl")
        return found


def project_version(root: Path = REPO) -> str:
    out = subprocess.run([sys.executable, str(root / "packaging/version.py")], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def need_build_tools() -> None:
    need(os.path.exists(PYTHON311), f"{PYTHON311} (Debian 12's python3.11; tests/tooling/packaging/setup.sh)")
    need_tool("nfpm")
    need_tool("dpkg-deb")
    need_tool("rpm")


def run_build(root: Path, dist: Path, build: Path, targets: str) -> None:
    env = {**os.environ, "PYBEAT_DIST_DIR": str(dist), "PYBEAT_BUILD_DIR": str(build), "PYBEAT_TARGETS": targets}
    proc = subprocess.run(["bash", str(root / "packaging/build.sh")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"build.sh failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    need_build_tools()
    work = tmp_path_factory.mktemp("packages")
    run_build(REPO, work / "dist", work / "build", "deb rpm windows")
    return Built(project_version(), work / "dist")


@pytest.fixture(scope="session")
def built_upgrade(tmp_path_factory: pytest.TempPathFactory, built: Built) -> Built:
    """The same checkout with the version bumped (``<version>.1``), built again: the .deb an
    upgrade installs."""
    work = tmp_path_factory.mktemp("upgrade")
    tree = work / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / name)
    version = built.version + ".1"
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    assert f'version = "{built.version}"' in text
    pyproject.write_text(text.replace(f'version = "{built.version}"', f'version = "{version}"', 1))
    run_build(tree, work / "dist", work / "build", "deb")
    assert project_version(tree) == version
    return Built(version, work / "dist")
