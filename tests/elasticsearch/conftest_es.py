"""Helpers for the Elasticsearch/OpenSearch tests: ``need`` from the suite's conftest, the
node launcher helper, event builders and an in-process pipeline runner.

A plain module (not a conftest) so test files can import it by name; pytest puts this folder
on sys.path because the test folders have no ``__init__.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
TOOLING = TESTS / "tooling" / "esnode"

_spec = importlib.util.spec_from_file_location("_pybeat_tests_root_conftest", TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
need = _root.need
need_tool = _root.need_tool
PCAPS: Path = _root.PCAPS
SHARED: Path = _root.SHARED
IN_CI: bool = _root.IN_CI

if str(TOOLING) not in sys.path:
    sys.path.insert(0, str(TOOLING))
import esnode  # noqa: E402  (tests/tooling/esnode/esnode.py)

__all__ = ["PCAPS", "SHARED", "IN_CI", "esnode", "need", "need_tool"]
