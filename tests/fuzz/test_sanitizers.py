"""The fuzz tests again, on a build of the compiled extensions with AddressSanitizer and
UndefinedBehaviorSanitizer (tests/tooling/sanitizers/setup.sh builds it into its own
virtualenv): an out-of-bounds read or an undefined operation in the compiled replay loop, the
DNS lane or the parser aborts the run instead of passing unnoticed.

The fuzz tests run in a child process of that virtualenv, from a copy of tests/ (so that the
installed, sanitized pybeat is imported, not the working tree's), with the sanitizer runtime
preloaded into the interpreter. Skips locally without the build; fails under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tests" / "tooling" / "sanitizers" / ".build"
PYTHON = BUILD / "venv" / "bin" / "python"
#: the fuzz tests, and the compiled parser's generated and damaged messages
TESTS = [
    "tests/fuzz/test_compiled_loop_fuzz.py",
    "tests/fuzz/test_decode_fuzz.py",
    "tests/unit/test_speedups.py::test_parser_equals_the_python_parser_on_generated_messages",
    "tests/unit/test_speedups.py::test_parser_equals_the_python_parser_on_damaged_messages",
    "tests/unit/test_speedups.py::test_split_across_workers_is_the_pythons",
]


@pytest.mark.timeout(1800)
def test_fuzz_tests_pass_on_the_sanitizer_build(tmp_path: Path) -> None:
    need(PYTHON.exists() and (BUILD / "preload").exists(),
         "the ASan/UBSan build of the extensions (bash tests/tooling/sanitizers/setup.sh)")
    preload = (BUILD / "preload").read_text().strip()
    probe = subprocess.run(
        [str(PYTHON), "-P", "-c", "import pybeat.protocols.dns._fast as f, pybeat.decode._replay as r; "
                                  "print(f.__file__); print(r.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "LD_PRELOAD": preload,
                                                           "ASAN_OPTIONS": "detect_leaks=0"},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    for module in probe.stdout.split():
        assert module.endswith(".so") and str(BUILD / "venv") in module, module
        linked = subprocess.run(["ldd", module], capture_output=True, text=True).stdout
        assert "libasan" in linked and "libubsan" in linked, f"{module} is not a sanitizer build"
    # a copy of tests/ (its data linked, not copied) beside nothing else: `pybeat` resolves to
    # the sanitizer virtualenv's installed package
    shutil.copytree(REPO / "tests", tmp_path / "tests", symlinks=True,
                    ignore=shutil.ignore_patterns("data", "tooling", "__pycache__", ".build"))
    (tmp_path / "tests" / "data").symlink_to(REPO / "tests" / "data")
    env = {
        **os.environ,
        "LD_PRELOAD": preload,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "PYTHONMALLOC": "malloc",  # every Python allocation through ASan's malloc
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(tmp_path),  # the copy of tests/ (no pybeat there)
    }
    run = subprocess.run(
        [str(PYTHON), "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *TESTS],
        cwd=tmp_path, capture_output=True, text=True, env=env,
    )
    out = run.stdout + run.stderr
    assert "AddressSanitizer" not in out and "runtime error:" not in out, out[-6000:]
    assert run.returncode == 0, out[-6000:]
    assert " passed" in out and " failed" not in out, out[-3000:]
