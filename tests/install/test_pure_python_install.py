"""Without a C compiler pybeat installs as pure Python, and works.

``CC=/bin/false pip install '.[test]'`` of a clean copy of the repository goes into a fresh
virtualenv: the install succeeds, the installed package holds no compiled module, and the fast
test subset (unit, golden, DNS) passes against that installed package. Generic over which
extension modules setup.py lists: it looks for any compiled file in the installed tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, need

FAST_SUBSET = ["tests/unit", "tests/golden", "tests/dns"]
#: tests of the source tree itself, which a copy without sources cannot run
SOURCE_TREE_TESTS = ["tests/unit/test_typing.py", "tests/unit/test_structure.py"]


def _clean_copy(dest: Path) -> None:
    """The files git tracks (what a fresh clone has): no build/, no in-place .so, no .c."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_install_without_a_compiler_is_pure_python_and_passes_the_fast_tests(tmp_path: Path) -> None:
    """CC=/bin/false: the install succeeds without any compiled module and the fast subset of
    the suite passes against the installed package."""
    need(shutil.which("git") and (REPO / ".git").exists(), "a git checkout of pybeat (git ls-files)")
    src, venv = tmp_path / "src", tmp_path / "venv"
    _clean_copy(src)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYBEAT_REQUIRE_COMPILED")}
    env["CC"] = "/bin/false"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", ".[test]"], cwd=src, env=env,
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    site = subprocess.run([str(py), "-c", "import pybeat, os; print(os.path.dirname(pybeat.__file__))"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    compiled = [p.name for p in Path(site).rglob("*") if p.suffix in (".so", ".pyd")]
    assert not compiled, f"a compiled module was installed with CC=/bin/false: {compiled}"

    # The tests must import the installed package, not the copy's sources.
    for folder in ("pybeat", "protocols", "outputs"):
        shutil.rmtree(src / folder)
    env.pop("CC")
    env.pop("CI", None)  # tests of the compiled path skip here instead of failing
    args = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST_SUBSET]
    args += [f"--ignore={t}" for t in SOURCE_TREE_TESTS]
    run = subprocess.run(args, cwd=src, env=env, capture_output=True, text=True, timeout=1200)
    tail = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout.splitlines()[-1], tail
