"""Shared test helpers.

``need(condition, what)``: a test that needs something missing on a developer's machine skips
with a reason naming it; under CI (``CI=true``) the same situation is a failure, because
``.ci/run`` installs and starts everything the tests need.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: the captures, vectors and configs the tests use, carried by the repository (tests/data/README.md)
DATA = REPO / "tests" / "data"
PCAPS = DATA / "pcaps"
VECTORS = DATA / "vectors"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: object, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when ``condition`` is falsy."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this but it is missing: {what}")
    pytest.skip(f"missing: {what}")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path, f"the {name!r} program (see .ci/run for how it is installed)")
    assert path is not None
    return path


def need_root() -> None:
    need(os.geteuid() == 0, "root (network namespaces)")


@pytest.fixture
def pcaps() -> Path:
    need(PCAPS.is_dir(), f"shared captures at {PCAPS}")
    return PCAPS
